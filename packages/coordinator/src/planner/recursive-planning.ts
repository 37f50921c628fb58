import type { SelectStmt } from "@pgsql/types";
import type { Primitive } from "../executor/primitives/primitive.js";
import { type SubPlan, SubPlans } from "../executor/primitives/subplans.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import { type AnyNode, columnRef, deparse, unwrap, walk, walkWithPath } from "../parser/ast.js";
import { analyzeColocation, subqueryProblem } from "./colocation.js";
import type { Semantics } from "./semantics/analyze.js";
import { type QueryLevel, selectOf } from "./semantics/query-level.js";
import { everyTablePinned } from "./shard-pruning.js";
import { tablesToPull } from "./table-pulling.js";

/**
 * Recursive planning (after Citus's recursive planner), for subqueries in expressions: a sublink
 * (`IN`, `NOT IN`, `EXISTS`, `ANY`/`ALL`, a scalar or ARRAY subquery) that reads distributed
 * tables, refers to nothing outside itself, and cannot run shard group by shard group with the
 * rest of the statement is planned as a statement of its own and run first; its rows replace it
 * as a VALUES list of typed literals (executor/primitives/subplans.ts), and the statement so
 * rewritten is planned again, against nothing but what it still reads.
 *
 * Worked example:
 *   SELECT count(*) FROM generate_series(1,3) g WHERE g IN (SELECT b FROM d)
 *   the statement's own level reads no distributed table: run per shard group it would count
 *   each g once per group. Subplan 1: SELECT b FROM d (a Route over every shard) → 1, 2, 1, …
 *   Outer: SELECT count(*) FROM generate_series(1,3) g
 *           WHERE g IN (SELECT * FROM (VALUES ('1'::integer), ('2'::integer), …) v)
 *   → no distributed table left: the coordinator's PostgreSQL answers it, exactly.
 *
 * A sublink keeps its SubLink node, so PostgreSQL still applies its own rules to the rows: NOT
 * IN's NULLs, `more than one row returned by a subquery used as an expression` (21000), an empty
 * scalar subquery's NULL.
 */
export function planSubPlans(
  statement: AnyNode,
  catalog: CatalogSnapshot,
  semantics: Semantics,
  plan: (statement: AnyNode) => Primitive,
): Primitive | undefined {
  const candidates = semantics.levels.filter(
    (level) => level.distributed && pullable(level, semantics, catalog) && standsAlone(statement, semantics, level),
  );
  // the outermost ones: a candidate inside another runs as part of it
  const outermost = candidates.filter(
    (level) => !candidates.some((other) => other !== level && contains(other.node, level.node)),
  );
  if (outermost.length === 0) {
    const pulled = tablesToPull(statement, catalog, semantics);
    if (!pulled) return undefined;
    const subPlans = pulled.map(({ path, table, query }) => ({
      path,
      field: "RangeVar",
      table: table.name,
      statement: query,
      sql: deparse(query),
      plan: plan(query),
    }));
    return new SubPlans(statement, subPlans, plan);
  }
  if (!needsSubPlans(statement, catalog, semantics)) return undefined;
  const subPlans: SubPlan[] = [];
  walkWithPath(statement, (node, key, path) => {
    const field = SUBQUERY_FIELDS[key];
    if (!field) return undefined;
    const select = unwrap(node[field])?.[1];
    const level = outermost.find((candidate) => candidate.node === select);
    if (!level) return undefined;
    const query: AnyNode = { SelectStmt: select };
    subPlans.push({ path: [...path], field, statement: query, sql: deparse(query), plan: plan(query) });
    return false;
  });
  return new SubPlans(statement, subPlans, plan);
}

/** Where a subquery hangs in the node that holds it: a sublink's, a FROM subquery's, a CTE's. */
const SUBQUERY_FIELDS: Record<string, string | undefined> = {
  SubLink: "subselect",
  RangeSubselect: "subquery",
  CommonTableExpr: "ctequery",
};

/**
 * Which subqueries run first when the statement cannot run as it is: every sublink, and a FROM
 * subquery or CTE whose own rows a shard group cannot compute alone (a LIMIT, an aggregate, a
 * DISTINCT or a window not by its distribution column). A FROM subquery or CTE joined on the
 * distribution column stays in the statement, which pushes it down with the rest.
 */
function pullable(level: QueryLevel, semantics: Semantics, catalog: CatalogSnapshot): boolean {
  if (level.role === "sublink") return true;
  if (level.role !== "from" && level.role !== "cte") return false;
  const select = selectOf(level);
  if (!select || level.kind !== "select") return false;
  return subqueryProblem(semantics, level, select, catalog) !== undefined;
}

/**
 * The statement cannot run as it is: its tables are not tied together by distribution columns,
 * or its own level reads no distributed table (a shard group's rows would be joined to every row
 * of it, once per group), or it mixes ordinary tables in. An INSERT's rows are computed on the
 * coordinator, where the tables a sublink reads are empty shells: always.
 */
function needsSubPlans(statement: AnyNode, catalog: CatalogSnapshot, semantics: Semantics): boolean {
  const [type] = unwrap(statement) ?? [""];
  if (type === "InsertStmt") return true;
  if (semantics.relations.some((ref) => !ref.table)) return true;
  const top = semantics.top;
  if (top && !top.distributed) return true;
  if (!analyzeColocation(semantics, catalog).problem) return false;
  return !everyTablePinned(semantics);
}

/**
 * The sublink refers to no column of the levels around it and to no CTE defined outside it, so
 * it can run as a statement of its own. A column it cannot place while a table inside it has
 * columns herd does not know (an ordinary table, a function) is taken to be that table's, as
 * PostgreSQL looks inside first: were it not, the subquery run alone fails with PostgreSQL's
 * "column does not exist" instead of giving a wrong answer.
 */
function standsAlone(statement: AnyNode, semantics: Semantics, level: QueryLevel): boolean {
  const inner = new Set<QueryLevel>([level]);
  walk(level.node, (child, key) => {
    if (key === "SelectStmt") {
      const found = semantics.levelOf(child as SelectStmt);
      if (found) inner.add(found);
    }
    return undefined;
  });
  const levels = [...inner];
  const unknownInside = levels.some((at) => at.entries.some((entry) => !entry.knownColumns));
  const outputNames = new Set(levels.flatMap((at) => [...at.outputs.keys()]));
  let alone = true;
  walk(level.node, (child, key) => {
    if (!alone) return false;
    const ref = { ColumnRef: child };
    const parts = key === "ColumnRef" ? columnRef(ref) : undefined;
    if (!parts) return undefined;
    if (unknownInside || levels.some((at) => semantics.resolve(ref, at, false))) return undefined;
    if (parts.length === 1 && outputNames.has(parts[0] as string)) return undefined; // ORDER BY an output's alias
    alone = false;
    return undefined;
  });
  if (!alone) return false;
  const definedOutside = new Set<string>();
  walk(statement, (child, key) => {
    if (key === "CommonTableExpr" && !contains(level.node, child)) definedOutside.add(child.ctename as string);
    return undefined;
  });
  walk(level.node, (child, key) => {
    if (key === "RangeVar" && !child.schemaname && definedOutside.has(child.relname as string)) alone = false;
    return undefined;
  });
  return alone;
}

/** `inner` is `outer` or an object inside it. */
function contains(outer: unknown, inner: unknown): boolean {
  let found = false;
  walk(outer, (child) => {
    if (child === inner) found = true;
    return !found;
  });
  return found || outer === inner;
}
