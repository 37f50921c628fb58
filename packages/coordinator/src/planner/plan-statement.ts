import { HerdError } from "@herd/shared";
import { CatalogDdl } from "../executor/primitives/catalog-ddl.js";
import { Explain } from "../executor/primitives/explain.js";
import { HONORED_CITUS_SETTINGS, IgnoredSetting } from "../executor/primitives/ignored-setting.js";
import { Local } from "../executor/primitives/local.js";
import { LockTables } from "../executor/primitives/lock-tables.js";
import { RefreshMaterializedView } from "../executor/primitives/materialized-view.js";
import type { Primitive } from "../executor/primitives/primitive.js";
import { Refuse } from "../executor/primitives/refuse.js";
import { SqlDeallocate, SqlExecute, SqlPrepare } from "../executor/primitives/sql-prepared.js";
import { TransactionControl } from "../executor/primitives/transaction-control.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import { type AnyNode, deparse, unwrap } from "../parser/ast.js";
import { planClusterActivity } from "./cluster-activity-planner.js";
import { planCopy, planCopyTo } from "./copy-planner.js";
import { planCreateLike, planCreateTableAs } from "./create-table-as.js";
import { planDeclareCursor } from "./cursor-planner.js";
import { planDdl } from "./ddl-planner.js";
import { planKeyToDistributed } from "./foreign-keys.js";
import { planFunctionCall } from "./function-call.js";
import { planHerdFunctionSubplans } from "./herd-function-subplans.js";
import { planInsert, planInsertSelect } from "./insert-planner.js";
import { pushDownInsertSelect } from "./insert-select-pushdown.js";
import { planMaintenance } from "./maintenance-planner.js";
import { planMergeStatement } from "./merge-statement-planner.js";
import { PlannerErrors } from "./planner-errors.js";
import { planSubPlans } from "./recursive-planning.js";
import { unsupportedStatement } from "./refusal-words.js";
import { planRoleStatement } from "./role-planner.js";
import { planRoute } from "./route-planner.js";
import { planSecurityDdl } from "./security-planner.js";
import { analyzeStatement } from "./semantics/analyze.js";
import { planShardSizes } from "./shard-sizes-planner.js";
import { functionReadsDistributed, shellReadProblem } from "./shell-readers.js";
import { inlineViews } from "./view-inlining.js";

const LOCAL = new Local();
/** Statements whose FROM may name a view that herd plans as its definition. */
const QUERIES = new Set(["SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt"]);

/**
 * The planner's cascade (after Citus): transaction control → herd's functions → EXPLAIN → DDL on
 * distributed tables → COPY → INSERT → SELECT/UPDATE/DELETE routed to shards; whatever names no
 * distributed or reference table is local and runs on the coordinator's PostgreSQL as is. Each
 * strategy returns the plan, a tree of primitives, or a Refuse carrying why it cannot be run.
 */
export function planStatement(statement: AnyNode, catalog: CatalogSnapshot): Primitive {
  const unwrapped = unwrap(statement);
  if (!unwrapped) return LOCAL;
  const [type, node] = unwrapped;
  if (type === "TransactionStmt") return new TransactionControl(node);
  if (type === "VariableSetStmt") {
    const name = String(node.name ?? "").toLowerCase();
    if (name.startsWith("citus.") && !HONORED_CITUS_SETTINGS.has(name)) return new IgnoredSetting(name);
  }
  if (type === "PrepareStmt") {
    const inner = planStatement(node.query as AnyNode, catalog);
    if (inner.kind === "refuse") return inner;
    return new SqlPrepare(node.name as string, inner.kind === "local" ? undefined : (node.query as AnyNode));
  }
  if (type === "ExecuteStmt") {
    const args = (node.params ?? []) as AnyNode[];
    return new SqlExecute(node.name as string, args, (tree) => planStatement(tree, catalog));
  }
  if (type === "VacuumStmt") {
    const maintenance = planMaintenance(node, catalog);
    if (maintenance) return maintenance;
  }
  if (type === "DeallocateStmt") return new SqlDeallocate(node.isall || !node.name ? undefined : (node.name as string));
  if (type === "SelectStmt") {
    const call = planFunctionCall(node);
    if (call && call.kind !== "refuse") return call;
    const inQuery = planHerdFunctionSubplans(statement, (rewritten) => planStatement(rewritten, catalog));
    if (inQuery) return inQuery;
    if (call) return call;
  }
  if (type === "ExplainStmt") {
    const explained = node.query as AnyNode;
    const inner = planStatement(explained, catalog);
    if (inner.kind === "local" || inner.kind === "refuse") return inner;
    const analyze = ((node.options ?? []) as AnyNode[]).some(
      (option) => option.DefElem?.defname === "analyze" && option.DefElem?.arg?.Boolean?.boolval !== false,
    );
    return new Explain(inner, explained, deparse(explained), analyze);
  }
  if (type === "CopyStmt" && !node.is_from) {
    const copyOut = planCopyTo(node, catalog, (query) => planStatement(query, catalog));
    if (copyOut) return copyOut;
  }
  if (type === "RefreshMatViewStmt") return new RefreshMaterializedView(node.relation);
  const roles = planRoleStatement(type, node, statement, catalog);
  if (roles) return roles;
  const shellRead = shellReadProblem(statement, catalog);
  if (shellRead) return new Refuse(shellRead);
  const like = type === "CreateStmt" ? planCreateLike(node, catalog) : undefined;
  if (like) return like;
  const ddl = planSecurityDdl(type, node, statement, catalog) ?? planDdl(type, node, statement, catalog);
  if (ddl) return ddl;
  if (type === "ViewStmt" || type === "CreateFunctionStmt") return planCatalogDdl(type, node, catalog);
  if (QUERIES.has(type)) {
    const activity = planClusterActivity(statement, (rewritten) => planStatement(rewritten, catalog));
    if (activity) return activity;
    const sizes = planShardSizes(statement, (rewritten) => planStatement(rewritten, catalog));
    if (sizes) return sizes;
    const inlined = inlineViews(statement, catalog);
    if (inlined instanceof HerdError) return new Refuse(inlined);
    if (inlined !== statement) return planStatement(inlined, catalog);
  }
  const semantics = analyzeStatement(statement, catalog);
  const refs = semantics.relations;
  // CREATE TABLE/MATERIALIZED VIEW … AS a query of views over distributed tables reads them too
  const viaViews =
    (type === "CreateTableAsStmt" || (type === "SelectStmt" && node.intoClause)) &&
    refs.some((ref) =>
      catalog.resolveView(ref.rangeVar.schemaname as string | undefined, ref.rangeVar.relname as string),
    );
  if (!refs.some((ref) => ref.table) && !viaViews) return LOCAL;
  if (type === "InsertStmt") {
    const pushed = pushDownInsertSelect(node, statement, catalog);
    if (pushed) return pushed;
    const pulled = planInsertSelect(node, statement, (query) => planStatement(query, catalog));
    if (pulled) return pulled;
  }
  const created = planCreateTableAs(type, node, statement, (query) => planStatement(query, catalog));
  if (created) return created;
  if (type === "MergeStmt")
    return planMergeStatement(node, statement, catalog, refs, (query) => planStatement(query, catalog));
  if (type === "DeclareCursorStmt") return planDeclareCursor(node, statement, (query) => planStatement(query, catalog));
  const recursive = planSubPlans(statement, catalog, semantics, (rewritten) => planStatement(rewritten, catalog));
  if (recursive) return recursive;
  switch (type) {
    case "SelectStmt":
    case "UpdateStmt":
    case "DeleteStmt":
      return planRoute(statement, catalog, semantics);
    case "InsertStmt": {
      const table = catalog.resolve(node.relation.schemaname, node.relation.relname);
      if (!table)
        return new Refuse(PlannerErrors.notSupported("INSERT … SELECT from distributed tables into ordinary tables"));
      return planInsert(node, statement, table, catalog, refs);
    }
    case "CopyStmt":
      return planCopy(node, catalog);
    case "LockStmt": {
      const tables = refs.flatMap((ref) => (ref.table ? [ref.table] : []));
      // modes 5 (SHARE) and up conflict with row writes; 8 (ACCESS EXCLUSIVE, the default) with reads
      const mode = Number(node.mode ?? 8);
      return new LockTables(tables, mode >= 5, mode === 8);
    }
    default:
      // a new ordinary table whose foreign key references a distributed one: PostgreSQL's, until it
      // is distributed too (its key then holds on the shards; the shell guard refuses its use before)
      if (type === "CreateStmt" && (node.inhRelations?.length ?? 0) === 0) return LOCAL;
      if (type === "AlterTableStmt") {
        const key = planKeyToDistributed(node, catalog);
        if (key) return key;
      }
      return new Refuse(unsupportedStatement(type, node));
  }
}

/**
 * CREATE VIEW and CREATE FUNCTION run on the coordinator's PostgreSQL; when what they define
 * reads distributed tables herd must know it before the next statement (CatalogDdl).
 */
function planCatalogDdl(type: string, node: AnyNode, catalog: CatalogSnapshot): Primitive {
  if (type === "CreateFunctionStmt")
    return functionReadsDistributed(node, catalog)
      ? new CatalogDdl("CREATE FUNCTION reading distributed tables")
      : LOCAL;
  const query = node.query as AnyNode;
  // it names a view of distributed tables (or cannot be inlined), or a distributed table itself
  const reads =
    inlineViews(query, catalog) !== query || analyzeStatement(query, catalog).relations.some((r) => r.table);
  return reads ? new CatalogDdl("CREATE VIEW over distributed tables") : LOCAL;
}
