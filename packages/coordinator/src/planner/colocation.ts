import type { HerdError } from "@herd/shared";
import type { SelectStmt } from "@pgsql/types";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import {
  type AnyNode,
  as,
  conjuncts,
  groupByExpression,
  names,
  nodeOf,
  operatorName,
  unwrap,
  walk,
} from "../parser/ast.js";
import { hasAggregates } from "./aggregates.js";
import { PlannerErrors } from "./planner-errors.js";
import type { Semantics } from "./semantics/analyze.js";
import { EquivalenceClasses } from "./semantics/equivalence-classes.js";
import { type QueryLevel, selectOf } from "./semantics/query-level.js";

/**
 * Whether a statement over distributed tables can run shard group by shard group: the answer of
 * each group computed on its own, all of them together the whole answer. That holds when every
 * row combination the statement can form is made of rows of one shard group, i.e. when every
 * distributed table is tied to the others by equality of distribution columns (which colocated
 * tables hash to the same shard group), through joins, WHERE conditions, `IN (subquery)` and
 * correlated subqueries, at any query level.
 *
 * Worked example:
 *   SELECT … FROM orders o JOIN lineitem l ON l.l_orderkey = o.o_orderkey
 *    WHERE EXISTS (SELECT 1 FROM returns r WHERE r.orderkey = l.l_orderkey)
 *   keys: o.o_orderkey = l.l_orderkey (join), r.orderkey = l.l_orderkey (correlated) → one class
 *   → every combination lives in one shard group: each group answers for its own rows.
 *   SELECT … FROM orders WHERE o_total > (SELECT avg(o_total) FROM orders) → two classes: the
 *   inner average would be per shard, so the statement is refused.
 *
 * A subquery's own GROUP BY, DISTINCT, window or aggregate is exact per group only when it
 * groups by (or is correlated on) its distribution column; a subquery's LIMIT never is. A
 * reference table (or function) on the preserved side of an outer join with a distributed table
 * would repeat its unmatched rows once per shard group. Every name is read as the semantic pass
 * (semantics/analyze.ts) resolved it.
 */
export interface Colocation {
  /** Why it cannot run group by group; undefined when it can. */
  readonly problem: HerdError | undefined;
  /**
   * Whether a column reference of the top query level is the distribution column of a table
   * whose rows it keeps (not on the nullable side of an outer join): grouping or partitioning by
   * it keeps every group within one shard group.
   */
  isKeyColumn(node: unknown): boolean;
}

export function analyzeColocation(semantics: Semantics, catalog: CatalogSnapshot): Colocation {
  const ties = new EquivalenceClasses<never>();
  let problem: HerdError | undefined;
  const fail = (error: HerdError | undefined) => {
    problem ??= error;
  };
  for (const level of semantics.levels) {
    tie(semantics, level, ties);
    if (level.role === "cte" && level.kind !== "select")
      fail(PlannerErrors.cannotPushDown("data-modifying CTEs are not supported in multi-shard queries yet"));
    if (level.preservesRowsWithoutShards) fail(PlannerErrors.referenceOuterJoin());
    if (level.kind === "set-operation" && level.role !== "statement" && level.distributed)
      fail(PlannerErrors.cannotPushDown("UNION, INTERSECT or EXCEPT in a subquery is not supported yet"));
    const select = level.kind === "select" ? selectOf(level) : undefined;
    if (select && level.role !== "statement" && level.role !== "source" && level.distributed)
      fail(subqueryProblem(semantics, level, select, catalog));
  }
  // tables not tied together is the more basic problem than what a subquery of them does
  const roots = new Set(semantics.distributionKeys.map((key) => ties.find(key)));
  if (roots.size > 1) problem = PlannerErrors.complexJoin();
  const top = semantics.top;
  // each shard group would join its rows to every row of the statement's own level, which holds
  // none of them: that level's rows would come once per group
  if (top && !top.distributed && top.kind !== "insert" && semantics.levels.some((level) => level.distributed))
    problem ??= PlannerErrors.cannotPushDown(
      "a subquery that refers to the query around it reads distributed tables, and the query around it reads none",
    );
  return {
    problem,
    isKeyColumn: (ref) => {
      const key = top && semantics.resolve(ref, top, false);
      if (!key) return false;
      return top.entries.some(
        (entry) =>
          entry.table?.kind === "hash" &&
          !entry.nullable &&
          entry.columns.get(entry.table.distributionColumn as string) === key,
      );
    },
  };
}

/**
 * The level's ties: equalities of columns in its WHERE and join conditions (FULL joins too: both
 * sides still meet only within a shard group), its USING joins, and `x IN (subquery)` tying x to
 * the subquery's first column (NOT IN too: the distribution column is never NULL, so NOT IN's
 * NULL rule cannot reach across groups).
 */
function tie(semantics: Semantics, level: QueryLevel, ties: EquivalenceClasses<never>): void {
  for (const [left, right] of level.usingPairs) ties.union(left, right);
  for (const { node } of level.conditions) {
    const expr = as(node, "A_Expr");
    if (expr?.kind === "AEXPR_OP" && operatorName(expr) === "=") {
      const left = semantics.resolve(expr.lexpr, level, true);
      const right = semantics.resolve(expr.rexpr, level, true);
      if (left && right) ties.union(left, right);
      continue;
    }
    const negated = nodeOf(node, "BoolExpr");
    const sublink =
      nodeOf(node, "SubLink") ??
      (negated?.boolop === "NOT_EXPR" && negated.args?.length === 1 ? nodeOf(negated.args[0], "SubLink") : undefined);
    if (sublink?.subLinkType !== "ANY_SUBLINK") continue;
    const operator = names(sublink.operName).at(-1);
    if (operator !== undefined && operator !== "=") continue;
    const inner = semantics.levelOf(nodeOf(sublink.subselect, "SelectStmt"));
    const left = semantics.resolve(sublink.testexpr, level, true);
    const first = inner && [...inner.outputs.values()][0];
    if (left && first) ties.union(left, first);
  }
}

/** What a subquery that reads distributed tables may not do per shard group. */
export function subqueryProblem(
  semantics: Semantics,
  level: QueryLevel,
  select: SelectStmt,
  catalog: CatalogSnapshot,
): HerdError | undefined {
  if (select.limitCount || select.limitOffset)
    return PlannerErrors.cannotPushDown("LIMIT or OFFSET in a subquery would apply per shard");
  const isKey = (node: unknown) => isLevelKey(semantics, node, level);
  const targets = select.targetList ?? [];
  const isInput = (name: string) => level.entries.some((entry) => entry.columns.has(name));
  const grouped = (select.groupClause ?? []).some((item) => isKey(groupByExpression(item, targets, isInput)));
  const distinctOnKey = (select.distinctClause ?? []).some(isKey);
  const distinctAll =
    Array.isArray(select.distinctClause) && select.distinctClause.length === 1 && !unwrap(select.distinctClause[0]);
  const outputsKey = targets.some((item) => isKey(as(item, "ResTarget")?.val));
  const correlated = correlatedOnKey(semantics, level, select);
  if (select.distinctClause && !(distinctOnKey || (distinctAll && outputsKey) || grouped || correlated))
    return PlannerErrors.cannotPushDown("DISTINCT in a subquery must include the distribution column");
  const aggregates = select.groupClause || select.havingClause || hasAggregates(select as AnyNode, catalog);
  if (aggregates && !grouped && !correlated)
    return PlannerErrors.cannotPushDown("aggregates in a subquery must be grouped by the distribution column");
  let windowProblem = false;
  walk(select.targetList, (child, key) => {
    if (key === "FuncCall" && child.over) {
      const partition = (as(child.over, "WindowDef") ?? child.over).partitionClause as unknown[] | undefined;
      if (!(partition ?? []).some(isKey) && !correlated) windowProblem = true;
    }
    return undefined;
  });
  return windowProblem
    ? PlannerErrors.cannotPushDown("window functions in a subquery must be partitioned by the distribution column")
    : undefined;
}

/** A WHERE equality ties the level's distribution column to a column of an outer level. */
function correlatedOnKey(semantics: Semantics, level: QueryLevel, select: SelectStmt): boolean {
  for (const qual of conjuncts(select.whereClause)) {
    const expr = as(qual, "A_Expr");
    if (expr?.kind !== "AEXPR_OP" || operatorName(expr) !== "=") continue;
    const sides = [expr.lexpr, expr.rexpr];
    for (const [mine, other] of [sides, [...sides].reverse()]) {
      if (
        isLevelKey(semantics, mine, level) &&
        !semantics.resolve(other, level, false) &&
        semantics.resolve(other, level, true)
      )
        return true;
    }
  }
  return false;
}

/** The column is the distribution column of a distributed table of this level. */
function isLevelKey(semantics: Semantics, node: unknown, level: QueryLevel): boolean {
  const key = semantics.resolve(node, level, false);
  return (
    key !== undefined &&
    level.entries.some(
      (entry) => entry.table?.kind === "hash" && entry.columns.get(entry.table.distributionColumn as string) === key,
    )
  );
}
