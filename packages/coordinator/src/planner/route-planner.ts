import type { Catalog } from "../metadata/catalog.js";
import { type DistributedTable, shardName } from "../metadata/catalog-types.js";
import { type AnyNode, as, deparse, names, unwrap, walk } from "./ast.js";
import type { Plan } from "./plan.js";
import { PlannerErrors } from "./planner-errors.js";
import { type RelationRef, renameRelations } from "./relations.js";
import { pinRelations } from "./shard-pruning.js";

/**
 * Plans SELECT, UPDATE and DELETE over distributed and reference tables. The statement runs
 * whole on shards: on the one shard group its pins lead to (router), or, when it reads a single
 * distributed table and its result is a plain row set, on each shard it may reach, with the
 * rows appended (the merge steps of issue 5 will lift that restriction).
 */
export function planRoute(statement: AnyNode, catalog: Catalog, refs: readonly RelationRef[]): Plan {
  const [type, node] = unwrap(statement) as [string, AnyNode];
  const local = refs.find((ref) => !ref.table);
  const distributedRefs = refs.filter((ref) => ref.table?.kind === "hash");
  const first = refs.find((ref) => ref.table) as RelationRef;
  if (local) return { kind: "error", error: PlannerErrors.mixedLocal(local.rangeVar.relname, first.rangeVar.relname) };

  const pins = pinRelations(statement, distributedRefs);
  const anchors = distributedRefs.map((ref) => ({ table: ref.table as DistributedTable, pin: pins.get(ref.rangeVar) }));
  const colocation = anchors[0]?.table.colocationId;
  if (anchors.some((anchor) => anchor.table.colocationId !== colocation))
    return { kind: "error", error: PlannerErrors.complexJoin() };
  const references = unique(
    refs.filter((ref) => ref.table?.kind === "reference").map((ref) => ref.table as DistributedTable),
  );

  let target: DistributedTable | undefined;
  if (type === "UpdateStmt" || type === "DeleteStmt") {
    target = catalog.resolve(node.relation.schemaname, node.relation.relname);
    if (target?.kind === "reference" && anchors.length > 0) {
      return {
        kind: "error",
        error: PlannerErrors.notSupported("modifying a reference table with data from distributed tables"),
      };
    }
    const problem = modificationProblem(type, node, target as DistributedTable, catalog);
    if (problem) return problem;
  }
  const notConcatenableBecause =
    distributedRefs.length > 1
      ? "joins or subqueries"
      : references.length > 0 && hasOuterJoin(node)
        ? "outer joins with reference tables"
        : type === "SelectStmt"
          ? notConcatenable(node, catalog)
          : undefined;

  const sqlCache: (string | undefined)[] = [];
  return {
    kind: "route",
    route: {
      tree: statement,
      anchors,
      references,
      target,
      concatenable: notConcatenableBecause === undefined,
      notConcatenableBecause,
      sqlFor(index: number): string {
        const cached = sqlCache[index];
        if (cached !== undefined) return cached;
        const copy = structuredClone(statement);
        renameRelations(copy, catalog, (table) => shardName(table, shardOf(table, index).id), true);
        const sql = deparse(copy);
        sqlCache[index] = sql;
        return sql;
      },
    },
  };
}

/** The shard of `table` in shard group `index` (a reference table's one shard for any index). */
export function shardOf(table: DistributedTable, index: number) {
  const shard = table.kind === "reference" ? table.shards[0] : table.shards[index];
  if (!shard) throw new Error(`table ${table.name} has no shard ${index}`);
  return shard;
}

function unique<T>(items: T[]): T[] {
  return [...new Set(items)];
}

/** What Citus refuses in UPDATE and DELETE: changing the distribution column, volatile functions. */
function modificationProblem(
  type: string,
  node: AnyNode,
  target: DistributedTable,
  catalog: Catalog,
): Plan | undefined {
  if (type === "UpdateStmt" && target.distributionColumn) {
    for (const item of node.targetList as unknown[]) {
      const name = as(item, "ResTarget")?.name as string | undefined;
      if (name === target.distributionColumn) return { kind: "error", error: PlannerErrors.partitionValueChange() };
    }
  }
  const replicated = target.kind === "reference" || target.shards.some((shard) => shard.placements.length > 1);
  let problem: Plan | undefined;
  walk(node, (child, key) => {
    if (problem) return false;
    if (key === "FuncCall") {
      const name = names(child.funcname).at(-1) as string;
      if (catalog.functions.volatile.has(name)) problem = { kind: "error", error: PlannerErrors.volatileFunction() };
      else if (replicated && catalog.functions.stable.has(name))
        problem = { kind: "error", error: PlannerErrors.stableFunction(name) };
    } else if (key === "SQLValueFunction" && replicated) {
      problem = { kind: "error", error: PlannerErrors.stableFunction("now") };
    }
    return undefined;
  });
  return problem;
}

/** An outer join repeats the preserved side's unmatched rows in every shard's result. */
function hasOuterJoin(node: AnyNode): boolean {
  let outer = false;
  walk(node, (child, key) => {
    if (key === "JoinExpr" && child.jointype !== "JOIN_INNER") outer = true;
    return !outer;
  });
  return outer;
}

/** Why a SELECT's rows from several shards could not simply be appended; undefined when they can. */
function notConcatenable(select: AnyNode, catalog: Catalog): string | undefined {
  if (select.op && select.op !== "SETOP_NONE") return "UNION, INTERSECT, or EXCEPT";
  if (select.groupClause) return "GROUP BY";
  if (select.havingClause) return "HAVING";
  if (select.sortClause) return "ORDER BY";
  if (select.limitCount || select.limitOffset) return "LIMIT or OFFSET";
  if (select.distinctClause) return "DISTINCT";
  if (select.windowClause) return "window functions";
  let reason: string | undefined;
  walk(select.targetList, (child, key) => {
    if (reason) return false;
    if (key === "FuncCall") {
      if (child.over) reason = "window functions";
      else if (
        child.agg_star ||
        child.agg_distinct ||
        catalog.functions.aggregates.has(names(child.funcname).at(-1) as string)
      )
        reason = "aggregates";
    } else if (key === "SubLink") reason = "subqueries";
    return undefined;
  });
  return reason;
}
