import type { HerdError } from "@herd/shared";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
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
export function unsupportedStatement(type: string, node: AnyNode, catalog: CatalogSnapshot): HerdError {
  const foreignKey = type === "CreateStmt" ? foreignKeyToDistributed(node, catalog) : undefined;
  if (foreignKey) {
    return PlannerErrors.notSupported(
      `a foreign key from the ordinary table ${node.relation?.relname} to the distributed table ${foreignKey}`,
      "herd cannot check keys that live on the workers from the coordinator. Distribute the new table too, or create it without the foreign key.",
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

/** The distributed or reference table a CREATE TABLE's foreign key points at, if any. */
function foreignKeyToDistributed(node: AnyNode, catalog: CatalogSnapshot): string | undefined {
  const constraints: AnyNode[] = [];
  for (const element of (node.tableElts ?? []) as AnyNode[]) {
    if (element.Constraint) constraints.push(element.Constraint);
    for (const constraint of (element.ColumnDef?.constraints ?? []) as AnyNode[])
      if (constraint.Constraint) constraints.push(constraint.Constraint);
  }
  for (const constraint of constraints) {
    if (constraint.contype !== "CONSTR_FOREIGN" || !constraint.pktable) continue;
    const table = catalog.resolve(constraint.pktable.schemaname, constraint.pktable.relname);
    if (table) return table.name;
  }
  return undefined;
}
