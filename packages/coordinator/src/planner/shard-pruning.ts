import type { ValueSource } from "../executor/distribution-value.js";
import type { Pin } from "../executor/shard-selection.js";
import { type AnyNode, as, operatorName } from "../parser/ast.js";
import type { Semantics } from "./semantics/analyze.js";
import { EquivalenceClasses } from "./semantics/equivalence-classes.js";
import type { QueryLevel } from "./semantics/query-level.js";
import { valueSource } from "./value-source.js";

/**
 * Shard pruning: which values a distributed table's distribution column is pinned to by a
 * statement, so the statement can go to the shards holding those values only.
 *
 * Each query level (semantics/analyze.ts) is looked at on its own: the conjuncts of its WHERE
 * clause and of its inner joins' conditions (not of outer joins, which keep unmatched rows).
 * Equalities between columns put them into one equivalence class; an equality with a constant or
 * a parameter, an IN list or `= ANY(...)` pins a class to values. A table of the level is pinned
 * when its distribution column's class is.
 *
 * Worked example:
 *   SELECT … FROM orders o JOIN items i ON i.order_id = o.order_id WHERE o.order_id = $1
 *   classes: {o.order_id, i.order_id} pinned to [$1]
 *   → orders and items are both pinned to $1; if they are colocated, both live in the shard
 *     group holding hash($1), and the whole statement runs there.
 *   SELECT … FROM orders WHERE order_id IN (3, 7) → pinned to [3, 7]: at most two shards.
 *   SELECT … FROM orders WHERE order_id = 3 OR order_id = 7 → not pinned (OR is not read).
 * Pinning only ever narrows where rows can be: every condition stays in the statement the
 * shards run, so a pin taken from one of several conditions is still exact.
 */
export function pinRelations(semantics: Semantics): Map<AnyNode, Pin | undefined> {
  const pins = new Map<AnyNode, Pin | undefined>();
  for (const level of semantics.levels) {
    const tables = level.entries.filter((entry) => entry.table?.kind === "hash" && entry.rangeVar);
    if (tables.length === 0) continue;
    const classes = levelClasses(semantics, level);
    for (const entry of tables) {
      const key = entry.columns.get(entry.table?.distributionColumn as string);
      pins.set(entry.rangeVar as AnyNode, key === undefined ? undefined : classes.valueOf(key));
    }
  }
  return pins;
}

/** The equivalence classes of a level's columns, with the values that pin them. */
function levelClasses(semantics: Semantics, level: QueryLevel): EquivalenceClasses<Pin> {
  const classes = new EquivalenceClasses<Pin>();
  const keyOf = (node: unknown) => semantics.resolve(node, level, true);
  const pinValues = (key: string, values: readonly (ValueSource | undefined)[]) => {
    if (values.length > 0 && values.every((value) => value !== undefined))
      classes.set(key, { kind: "values", values: values as ValueSource[] });
  };
  for (const { node, source } of level.conditions) {
    // an outer join's ON does not bound the preserved side's rows: `c LEFT JOIN p ON p.id =
    // c.k AND p.id = 5` keeps every row of c, so neither its equalities nor its values pin
    if (source === "full-join" || source === "outer-join") continue;
    const expr = as(node, "A_Expr");
    if (!expr || operatorName(expr) !== "=") continue;
    const left = keyOf(expr.lexpr);
    if (expr.kind === "AEXPR_OP") {
      const right = keyOf(expr.rexpr);
      if (left && right) classes.union(left, right);
      else if (left) pinValues(left, [valueSource(expr.rexpr)]);
      else if (right) pinValues(right, [valueSource(expr.lexpr)]);
    } else if (expr.kind === "AEXPR_IN" && left) {
      pinValues(left, ((as(expr.rexpr, "List")?.items ?? []) as unknown[]).map(valueSource));
    } else if (expr.kind === "AEXPR_OP_ANY" && left) {
      const array = as(expr.rexpr, "A_ArrayExpr");
      const param = valueSource(expr.rexpr);
      if (array) pinValues(left, ((array.elements ?? []) as unknown[]).map(valueSource));
      else if (param?.kind === "param") classes.set(left, { kind: "array-param", number: param.number });
    }
  }
  return classes;
}

/**
 * Every distributed table the statement names is pinned to distribution values: the router finds
 * at execution whether they all meet in one shard group, so nothing needs planning in steps.
 */
export function everyTablePinned(semantics: Semantics): boolean {
  const pins = pinRelations(semantics);
  return semantics.relations.every((ref) => ref.table?.kind !== "hash" || pins.get(ref.rangeVar) !== undefined);
}
