import type { ValueSource } from "../executor/distribution-value.js";
import type { Pin } from "../executor/shard-selection.js";
import { type AnyNode, as, columnRef, conjuncts, operatorName, walk } from "../parser/ast.js";
import type { RelationRef } from "./relations.js";
import { valueSource } from "./value-source.js";

/**
 * Shard pruning: which values a distributed table's distribution column is pinned to by a
 * statement, so the statement can go to the shards holding those values only.
 *
 * Each query level (a SELECT, UPDATE or DELETE, including every subquery) is looked at on its
 * own: the tables in its FROM list (through joins), and the conjuncts of its WHERE clause and of
 * its join conditions (not of FULL joins, which keep unmatched rows of both sides). Equalities
 * between columns put them into one equivalence class; an equality with a constant or a
 * parameter, an IN list or `= ANY(...)` pins a class to values. A table is pinned when its
 * distribution column's class is.
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
interface Entry {
  readonly ref: RelationRef;
  /** The name columns are qualified with: the alias, or the table's name. */
  readonly refName: string;
}

/** The pin of every distributed table reference of the statement (undefined: not pinned). */
export function pinRelations(tree: unknown, refs: readonly RelationRef[]): Map<AnyNode, Pin | undefined> {
  const byRangeVar = new Map(refs.map((ref) => [ref.rangeVar, ref]));
  const pins = new Map<AnyNode, Pin | undefined>();
  walk(tree, (node, key) => {
    if (key === "SelectStmt" || key === "UpdateStmt" || key === "DeleteStmt") pinLevel(key, node, byRangeVar, pins);
    return undefined;
  });
  return pins;
}

function pinLevel(
  kind: string,
  level: AnyNode,
  byRangeVar: ReadonlyMap<AnyNode, RelationRef>,
  pins: Map<AnyNode, Pin | undefined>,
): void {
  const entries: Entry[] = [];
  const quals: unknown[] = [...conjuncts(level.whereClause)];
  const addEntry = (rangeVar: AnyNode) => {
    const ref = byRangeVar.get(rangeVar);
    if (ref)
      entries.push({ ref, refName: (rangeVar.alias?.aliasname as string | undefined) ?? (rangeVar.relname as string) });
  };
  const addFromItem = (item: unknown) => {
    const rangeVar = as(item, "RangeVar");
    if (rangeVar) return addEntry(rangeVar);
    const join = as(item, "JoinExpr");
    if (join) {
      addFromItem(join.larg);
      addFromItem(join.rarg);
      if (join.jointype !== "JOIN_FULL") quals.push(...conjuncts(join.quals));
    }
  };
  if (kind !== "SelectStmt" && level.relation) addEntry(level.relation as AnyNode);
  for (const item of (level.fromClause ?? level.usingClause ?? []) as unknown[]) addFromItem(item);
  if (entries.length === 0) return;

  const classes = new EquivalenceClasses();
  const keyOf = (node: unknown): string | undefined => {
    const parts = columnRef(node);
    if (!parts) return undefined;
    if (parts.length === 2) return `${parts[0]}\u0000${parts[1]}`;
    if (parts.length !== 1) return undefined;
    const owners = entries.filter((e) => e.ref.table?.columns.some((c) => c.name === parts[0]));
    return owners.length === 1 ? `${(owners[0] as Entry).refName}\u0000${parts[0]}` : undefined;
  };
  for (const qual of quals) {
    const expr = as(qual, "A_Expr");
    if (!expr || operatorName(expr) !== "=") continue;
    const left = keyOf(expr.lexpr);
    if (expr.kind === "AEXPR_OP") {
      const right = keyOf(expr.rexpr);
      if (left && right) classes.union(left, right);
      else if (left) pinConstant(classes, left, expr.rexpr);
      else if (right) pinConstant(classes, right, expr.lexpr);
    } else if (expr.kind === "AEXPR_IN" && left) {
      const values = ((as(expr.rexpr, "List")?.items ?? []) as unknown[]).map(valueSource);
      if (values.length > 0 && values.every((v) => v !== undefined))
        classes.pin(left, { kind: "values", values: values as ValueSource[] });
    } else if (expr.kind === "AEXPR_OP_ANY" && left) {
      const array = as(expr.rexpr, "A_ArrayExpr");
      const param = valueSource(expr.rexpr);
      if (array) {
        const values = ((array.elements ?? []) as unknown[]).map(valueSource);
        if (values.length > 0 && values.every((v) => v !== undefined))
          classes.pin(left, { kind: "values", values: values as ValueSource[] });
      } else if (param?.kind === "param") classes.pin(left, { kind: "array-param", number: param.number });
    }
  }
  for (const entry of entries) {
    const column = entry.ref.table?.distributionColumn;
    if (!column) continue;
    pins.set(entry.ref.rangeVar, classes.pinOf(`${entry.refName}\u0000${column}`));
  }
}

function pinConstant(classes: EquivalenceClasses, key: string, node: unknown): void {
  const value = valueSource(node);
  if (value) classes.pin(key, { kind: "values", values: [value] });
}

/** Union-find over column keys, each class with the first pin found for it. */
class EquivalenceClasses {
  private readonly parent = new Map<string, string>();
  private readonly pins = new Map<string, Pin>();

  union(a: string, b: string): void {
    const rootA = this.find(a);
    const rootB = this.find(b);
    if (rootA === rootB) return;
    this.parent.set(rootB, rootA);
    const pinB = this.pins.get(rootB);
    if (pinB && !this.pins.has(rootA)) this.pins.set(rootA, pinB);
  }

  pin(key: string, pin: Pin): void {
    const root = this.find(key);
    if (!this.pins.has(root)) this.pins.set(root, pin);
  }

  pinOf(key: string): Pin | undefined {
    return this.pins.get(this.find(key));
  }

  private find(key: string): string {
    let root = key;
    for (let up = this.parent.get(root); up !== undefined; up = this.parent.get(root)) root = up;
    if (root !== key) this.parent.set(key, root);
    return root;
  }
}
