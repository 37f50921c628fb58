import type { HerdError } from "@herd/shared";
import { MergeRoute, type MergeSplit } from "../executor/primitives/merge-route.js";
import type { Primitive } from "../executor/primitives/primitive.js";
import { Refuse } from "../executor/primitives/refuse.js";
import { Route } from "../executor/primitives/route.js";
import { ShardStatements } from "../executor/shard-statements.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import type { DistributedTable } from "../metadata/catalog-types.js";
import { type AnyNode, as, names, unwrap, walk } from "../parser/ast.js";
import { hasAggregates } from "./aggregates.js";
import { analyzeColocation } from "./colocation.js";
import { mergeSplit } from "./merge-planner.js";
import { PlannerErrors } from "./planner-errors.js";
import { type RelationRef, tableMentions } from "./relations.js";
import type { Semantics } from "./semantics/analyze.js";
import type { QueryLevel } from "./semantics/query-level.js";
import { pinRelations } from "./shard-pruning.js";

/**
 * Plans SELECT, UPDATE and DELETE over distributed and reference tables. The statement runs
 * whole on the one shard group its pins lead to (Route, router); when it reaches several, as
 * `planMultiShard` says: whole on each with the rows appended, or split into worker and combine
 * queries (MergeRoute, merge-planner.ts), or refused (the Route carries why).
 */
export function planRoute(statement: AnyNode, catalog: CatalogSnapshot, semantics: Semantics): Primitive {
  const [type, node] = unwrap(statement) as [string, AnyNode];
  const refs = semantics.relations;
  const local = refs.find((ref) => !ref.table);
  const distributedRefs = refs.filter((ref) => ref.table?.kind === "hash");
  const first = refs.find((ref) => ref.table) as RelationRef;
  if (local) return new Refuse(PlannerErrors.mixedLocal(local.rangeVar.relname, first.rangeVar.relname));

  const pins = pinRelations(semantics);
  const bounding = new Set(semantics.top?.entries.filter((entry) => !entry.nullable).map((entry) => entry.rangeVar));
  const anchors = distributedRefs.map((ref) => ({
    table: ref.table as DistributedTable,
    pin: pins.get(ref.rangeVar),
    bounds: bounding.has(ref.rangeVar),
  }));
  const group = anchors[0]?.table.colocationId;
  if (anchors.some((anchor) => anchor.table.colocationId !== group)) return new Refuse(PlannerErrors.complexJoin());
  const references = unique(
    refs.filter((ref) => ref.table?.kind === "reference").map((ref) => ref.table as DistributedTable),
  );

  let target: DistributedTable | undefined;
  if (type === "UpdateStmt" || type === "DeleteStmt") {
    target = catalog.resolve(node.relation.schemaname, node.relation.relname);
    if (target?.kind === "reference" && anchors.length > 0) {
      return new Refuse(PlannerErrors.notSupported("modifying a reference table with data from distributed tables"));
    }
    const problem = modificationProblem(type, node, target as DistributedTable, catalog);
    if (problem) return new Refuse(problem);
  }
  const ties = anchors.length === 0 ? undefined : analyzeColocation(semantics, catalog);
  const multiShard = ties ? planMultiShard(statement, catalog, semantics, ties) : APPEND;
  const route = new Route({
    statements: new ShardStatements(statement, tableMentions(refs, true)),
    anchors,
    references,
    target,
    workers: catalog.nodes,
    locksRows: type === "SelectStmt" && ((node.lockingClause as unknown[] | undefined)?.length ?? 0) > 0,
    severalShards: multiShard.kind === "error" ? multiShard.error : undefined,
    tied: ties !== undefined && ties.problem === undefined,
  });
  return multiShard.kind === "merge" ? new MergeRoute(route, multiShard.split) : route;
}

/**
 * Why the statement cannot run over several shard groups (an ordinary table mixed in, tables not
 * tied by distribution columns, a window or set operation that needs every row in one place), or
 * undefined when it can: what recursive planning asks before it pulls tables to the coordinator.
 */
export function multiShardProblem(
  statement: AnyNode,
  catalog: CatalogSnapshot,
  semantics: Semantics,
): HerdError | undefined {
  const local = semantics.relations.find((ref) => !ref.table);
  const first = semantics.relations.find((ref) => ref.table);
  if (local && first) return PlannerErrors.mixedLocal(local.rangeVar.relname, first.rangeVar.relname);
  const hashTables = semantics.relations.filter((ref) => ref.table?.kind === "hash").map((ref) => ref.table);
  if (hashTables.some((table) => table?.colocationId !== hashTables[0]?.colocationId))
    return PlannerErrors.complexJoin();
  const multiShard = planMultiShard(statement, catalog, semantics);
  return multiShard.kind === "error" ? multiShard.error : undefined;
}

/**
 * Whether the statement runs shard group by shard group with every group's rows final (no merge
 * on the coordinator, no reason to refuse): what pushing an INSERT … SELECT down needs.
 */
export function runsGroupByGroup(statement: AnyNode, catalog: CatalogSnapshot, semantics: Semantics): boolean {
  return planMultiShard(statement, catalog, semantics).kind === "append";
}

/** How a statement runs when it reaches several shard groups. */
type MultiShard =
  | { readonly kind: "append" }
  | { readonly kind: "merge"; readonly split: MergeSplit }
  | { readonly kind: "error"; readonly error: HerdError };

const APPEND: MultiShard = { kind: "append" };

/**
 * How the statement runs when it reaches several shard groups: every distributed table must be
 * tied to the others by their distribution columns (colocation.ts); then a SELECT's rows are
 * appended when they are final and unordered, or merged on the coordinator (merge-planner.ts).
 */
function planMultiShard(
  statement: AnyNode,
  catalog: CatalogSnapshot,
  semantics: Semantics,
  colocation = analyzeColocation(semantics, catalog),
): MultiShard {
  if (colocation.problem) return { kind: "error", error: colocation.problem };
  const [type, select] = unwrap(statement) as [string, AnyNode];
  if (type !== "SelectStmt") return APPEND;
  if (select.op && select.op !== "SETOP_NONE")
    return { kind: "error", error: PlannerErrors.multiShard("UNION, INTERSECT, or EXCEPT") };
  const groupedByKey = ((select.groupClause ?? []) as unknown[]).some((item) =>
    colocation.isKeyColumn(groupingExpression(item, select)),
  );
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
      if (final) return APPEND;
    }
    const kind = aggregated && !groupedByKey ? "aggregate" : "rows";
    return { kind: "merge", split: mergeSplit(select, kind, catalog, semantics.top as QueryLevel) };
  } catch (error) {
    return { kind: "error", error: error as HerdError };
  }
}

/** A GROUP BY item as the expression it groups by: `GROUP BY 1` is the first output's. */
function groupingExpression(item: unknown, select: AnyNode): unknown {
  const position = as(item, "A_Const")?.ival?.ival as number | undefined;
  if (position === undefined) return item;
  return as(((select.targetList ?? []) as unknown[])[position - 1], "ResTarget")?.val ?? item;
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

function unique<T>(items: T[]): T[] {
  return [...new Set(items)];
}

/** What Citus refuses in UPDATE and DELETE: changing the distribution column, volatile functions. */
function modificationProblem(
  type: string,
  node: AnyNode,
  target: DistributedTable,
  catalog: CatalogSnapshot,
): HerdError | undefined {
  if (type === "UpdateStmt" && target.distributionColumn) {
    for (const item of node.targetList as unknown[]) {
      const name = as(item, "ResTarget")?.name as string | undefined;
      if (name === target.distributionColumn) return PlannerErrors.partitionValueChange();
    }
  }
  const replicated = target.kind === "reference" || target.shards.some((shard) => shard.placements.length > 1);
  let problem: HerdError | undefined;
  walk(node, (child, key) => {
    if (problem) return false;
    if (key === "FuncCall") {
      const name = names(child.funcname).at(-1) as string;
      if (catalog.functions.volatile.has(name)) problem = PlannerErrors.volatileFunction();
      else if (replicated && catalog.functions.stable.has(name)) problem = PlannerErrors.stableFunction(name);
    } else if (key === "SQLValueFunction" && replicated) {
      problem = PlannerErrors.stableFunction("now");
    }
    return undefined;
  });
  return problem;
}
