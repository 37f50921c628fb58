import type { HerdError } from "@herd/shared";
import type { Catalog } from "../metadata/catalog.js";
import { type DistributedTable, shardName } from "../metadata/catalog-types.js";
import { type AnyNode, as, deparse, names, unwrap, walk } from "../parser/ast.js";
import { hasAggregates } from "./aggregates.js";
import { analyzeColocation } from "./colocation.js";
import { mergeTemplate } from "./merge-planner.js";
import type { MultiShardPlan, Plan } from "./plan.js";
import { PlannerErrors } from "./planner-errors.js";
import { type RelationRef, renameRelations } from "./relations.js";
import { pinRelations } from "./shard-pruning.js";

/**
 * Plans SELECT, UPDATE and DELETE over distributed and reference tables. The statement runs
 * whole on the one shard group its pins lead to (router); when it reaches several, as
 * `multiShard` says: whole on each with the rows appended, or split into worker and combine
 * queries (merge-planner.ts), or refused.
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
  const multiShard = anchors.length === 0 ? ({ kind: "append" } as const) : planMultiShard(statement, catalog);

  const sqlCache: (string | undefined)[] = [];
  return {
    kind: "route",
    route: {
      tree: statement,
      anchors,
      references,
      target,
      multiShard,
      sqlFor(index: number): string {
        const cached = sqlCache[index];
        if (cached !== undefined) return cached;
        const sql = shardSql(statement, catalog, index);
        sqlCache[index] = sql;
        return sql;
      },
    },
  };
}

/** A statement with its distributed and reference tables renamed to their shards of group `index`. */
export function shardSql(tree: AnyNode, catalog: Catalog, index: number): string {
  const copy = structuredClone(tree);
  renameRelations(copy, catalog, (table) => shardName(table, shardOf(table, index).id), true);
  return deparse(copy);
}

/**
 * How the statement runs when it reaches several shard groups: every distributed table must be
 * tied to the others by their distribution columns (colocation.ts); then a SELECT's rows are
 * appended when they are final and unordered, or merged on the coordinator (merge-planner.ts).
 */
function planMultiShard(statement: AnyNode, catalog: Catalog): MultiShardPlan {
  const colocation = analyzeColocation(statement, catalog);
  if (colocation.problem) return { kind: "error", error: colocation.problem };
  const [type, select] = unwrap(statement) as [string, AnyNode];
  if (type !== "SelectStmt") return { kind: "append" };
  if (select.op && select.op !== "SETOP_NONE")
    return { kind: "error", error: PlannerErrors.multiShard("UNION, INTERSECT, or EXCEPT") };
  const groupedByKey = ((select.groupClause ?? []) as unknown[]).some((item) => colocation.isKeyColumn(item));
  const aggregated = Boolean(select.groupClause || select.havingClause) || hasAggregates(select, catalog);
  // a window sees its partition's rows only when they all live in one shard group
  const windows = windowDefinitions(select);
  const partitionedByKey = windows.every((def) =>
    ((def.partitionClause ?? []) as unknown[]).some((item) => colocation.isKeyColumn(item)),
  );
  if (!partitionedByKey || (aggregated && !groupedByKey && windows.length > 0))
    return { kind: "error", error: PlannerErrors.windowFunction() };
  try {
    if (!aggregated || groupedByKey) {
      const final = !select.sortClause && !select.limitCount && !select.limitOffset && !select.distinctClause;
      if (final) return { kind: "append" };
    }
    const template = mergeTemplate(select, aggregated && !groupedByKey ? "aggregate" : "rows", catalog);
    return { kind: "merge", template, built: new Map() };
  } catch (error) {
    return { kind: "error", error: error as HerdError };
  }
}

/** The window definitions of the top level's window function calls (named windows resolved). */
function windowDefinitions(select: AnyNode): AnyNode[] {
  const named = new Map(
    ((select.windowClause ?? []) as unknown[]).map((item) => {
      const def = as(item, "WindowDef") as AnyNode;
      return [def.name as string, def];
    }),
  );
  const definitions: AnyNode[] = [];
  walk([select.targetList, select.sortClause], (child, key) => {
    if (key === "SubLink") return false;
    if (key === "FuncCall" && child.over) {
      const over = (as(child.over, "WindowDef") ?? child.over) as AnyNode;
      const def = over.name ? (named.get(over.name as string) ?? over) : over;
      const base = def.refname ? named.get(def.refname as string) : undefined;
      definitions.push({ ...def, partitionClause: def.partitionClause ?? base?.partitionClause });
    }
    return undefined;
  });
  return definitions;
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
