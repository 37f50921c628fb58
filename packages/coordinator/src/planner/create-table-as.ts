import { Local } from "../executor/primitives/local.js";
import { CreateMaterializedView } from "../executor/primitives/materialized-view.js";
import type { Primitive } from "../executor/primitives/primitive.js";
import { SubPlans } from "../executor/primitives/subplans.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import { type AnyNode, as, deparse, walk } from "../parser/ast.js";

/**
 * `CREATE TABLE t AS <query>` and `SELECT … INTO t` over distributed tables: the query runs first
 * as a statement of its own (any shape herd answers), its rows are kept on the coordinator (up to
 * citus.max_intermediate_result_size) and stand in for it as a VALUES list, and the table is
 * created on the coordinator's PostgreSQL from them: an ordinary table, with the query's column
 * names and types, which create_distributed_table can then distribute. `WITH NO DATA` needs no
 * rows: PostgreSQL makes the empty table from the shells. A materialized view is made and
 * refreshed with the tables' rows brought to the coordinator (executor/primitives/materialized-view.ts).
 */
export function planCreateTableAs(
  type: string,
  node: AnyNode,
  statement: AnyNode,
  plan: (query: AnyNode) => Primitive,
): Primitive | undefined {
  let ctas: AnyNode;
  if (type === "CreateTableAsStmt") ctas = node;
  else if (type === "SelectStmt" && node.intoClause) {
    // SELECT … INTO t is CREATE TABLE t AS SELECT … (same tag: SELECT n)
    const { intoClause, ...select } = node;
    ctas = { query: { SelectStmt: select }, into: intoClause, objtype: "OBJECT_TABLE" };
  } else return undefined;
  if (ctas.objtype === "OBJECT_MATVIEW") return new CreateMaterializedView(statement);
  if ((ctas.into as AnyNode).skipData) return new Local();
  const tree = type === "CreateTableAsStmt" ? statement : { CreateTableAsStmt: ctas };
  const query = ctas.query as AnyNode;
  return new SubPlans(
    tree,
    [{ path: ["CreateTableAsStmt"], field: "query", statement: query, sql: deparse(query), plan: plan(query) }],
    plan,
  );
}

/**
 * `CREATE TABLE t (LIKE dist …)`: an ordinary table made from the shell's definition, which holds
 * the distributed table's columns, defaults, constraints and indexes: the coordinator's PostgreSQL
 * makes it as written. Undefined when the statement names a distributed table anywhere else (a
 * foreign key to one, INHERITS).
 */
export function planCreateLike(node: AnyNode, catalog: CatalogSnapshot): Primitive | undefined {
  const likes = ((node.tableElts ?? []) as unknown[]).filter((element) => as(element, "TableLikeClause"));
  if (likes.length === 0) return undefined;
  let elsewhere = (node.inhRelations as unknown[] | undefined)?.length ?? 0;
  walk(node.tableElts, (value, key) => {
    if (key === "TableLikeClause") return false;
    const rangeVar = (value as AnyNode).pktable as AnyNode | undefined;
    if (rangeVar && catalog.resolve(rangeVar.schemaname, rangeVar.relname)) elsewhere += 1;
    return undefined;
  });
  return elsewhere > 0 ? undefined : new Local();
}
