import type { HerdError } from "@herd/shared";
import type { AnyNode } from "../parser/ast.js";
import { PlannerErrors } from "./planner-errors.js";

/** What users call the statements herd may refuse over distributed tables (parse node → SQL words). */
const STATEMENT_WORDS: Readonly<Record<string, string>> = {
  CreateStmt: "CREATE TABLE",
  RuleStmt: "CREATE RULE",
  CreateTrigStmt: "CREATE TRIGGER",
  ClusterStmt: "CLUSTER",
  ReindexStmt: "REINDEX",
  CreateStatsStmt: "CREATE STATISTICS",
  RefreshMatViewStmt: "REFRESH MATERIALIZED VIEW",
  MergeStmt: "MERGE",
  CommentStmt: "COMMENT",
  AlterTableStmt: "ALTER TABLE",
  RenameStmt: "ALTER … RENAME",
  AlterObjectSchemaStmt: "ALTER … SET SCHEMA",
  CreatePolicyStmt: "CREATE POLICY",
  AlterPolicyStmt: "ALTER POLICY",
  CreateTableSpaceStmt: "CREATE TABLESPACE",
  CallStmt: "CALL",
  NotifyStmt: "NOTIFY",
  ListenStmt: "LISTEN",
  SecLabelStmt: "SECURITY LABEL",
};

/**
 * The refusal for a statement over distributed tables that herd has no plan for, in the user's
 * words: the SQL command (not the parser's node name), and for the common cases what to do instead.
 */
export function unsupportedStatement(type: string, node: AnyNode): HerdError {
  if (type === "CreateStmt" && (node.inhRelations?.length ?? 0) > 0) {
    return PlannerErrors.notSupported(
      `${node.partbound ? "CREATE TABLE … PARTITION OF" : "CREATE TABLE … INHERITS"} a distributed table`,
    );
  }
  if (type === "RuleStmt") {
    return PlannerErrors.notSupported(
      "rules that involve distributed tables",
      "A rule runs on the coordinator's PostgreSQL, which holds only the tables' empty shells. Send the statement the rule would run to herd yourself.",
    );
  }
  const words =
    STATEMENT_WORDS[type] ??
    type
      .replace(/Stmt$/, "")
      .replace(/([a-z])([A-Z])/g, "$1 $2")
      .toUpperCase();
  return PlannerErrors.notSupported(`${words} on distributed tables`);
}
