/** The cluster map as the planner and executor see it: an immutable snapshot, reloaded whole. */

export interface WorkerNode {
  readonly id: number;
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly state: "pending" | "active" | "draining";
}

export interface Column {
  readonly name: string;
  readonly typeOid: number;
  /** `format_type()` of the column: what a cast to it is written as. */
  readonly typeName: string;
  /** The default expression's text (`pg_get_expr`), when there is one. */
  readonly defaultExpr: string | undefined;
  readonly generated: boolean;
}

export interface Constraint {
  readonly name: string;
  /** pg_constraint.contype: p primary key, u unique, x exclusion, f foreign key, c check, n not null. */
  readonly type: string;
}

/** Constraints whose names PostgreSQL requires unique per schema (they own an index), or that
 * Citus suffixes: on shards they are named `<name>_<shardid>`. */
export function isSuffixedConstraint(type: string): boolean {
  return type === "p" || type === "u" || type === "x" || type === "f";
}

/** The same, for a Constraint node of a parse tree (`CONSTR_PRIMARY`, …). */
export function isSuffixedConstraintKind(contype: string): boolean {
  return (
    contype === "CONSTR_PRIMARY" ||
    contype === "CONSTR_UNIQUE" ||
    contype === "CONSTR_EXCLUSION" ||
    contype === "CONSTR_FOREIGN"
  );
}

export interface Placement {
  readonly id: number;
  readonly shardId: number;
  readonly nodeId: number;
  readonly state: "active" | "stale" | "to_delete";
}

export interface Shard {
  readonly id: number;
  readonly index: number;
  /** The shard's int32 hash range; both undefined for a reference table's one shard. */
  readonly min: number | undefined;
  readonly max: number | undefined;
  readonly placements: readonly Placement[];
  /**
   * herd.shards.placement_version: grows with every change of the shard's placements (one goes
   * stale, is repaired, added or removed). A write checks it under its lock (absent in fixtures: 0).
   */
  readonly placementVersion?: number;
}

export interface DistributedTable {
  readonly oid: number;
  readonly schema: string;
  readonly name: string;
  readonly kind: "hash" | "reference";
  readonly distributionColumn: string | undefined;
  readonly distributionType: number | undefined;
  readonly colocationId: number;
  readonly columns: readonly Column[];
  readonly constraints: readonly Constraint[];
  /** In shard-index order. */
  readonly shards: readonly Shard[];
}

/**
 * A view that reads distributed or reference tables (itself or through other views): its rows
 * are not in the coordinator's shells, so herd plans a statement that reads it with the view's
 * definition in its place (planner/view-inlining.ts).
 */
export interface DistributedView {
  readonly oid: number;
  readonly schema: string;
  readonly name: string;
  /** pg_get_viewdef(): the view's SELECT. */
  readonly definition: string;
  /** Its column names, in order. */
  readonly columns: readonly string[];
}

/** The name of a shard table on the workers: `events_102008` (same schema as the table). */
export function shardName(table: { readonly name: string }, shardId: number): string {
  return shardSuffixed(table.name, shardId);
}

/**
 * `<name>_<shardid>`, shortened to PostgreSQL's 63-byte identifier limit by cutting the name,
 * so that long index and table names stay distinct per shard instead of being truncated alike.
 */
export function shardSuffixed(name: string, shardId: number): string {
  const suffix = `_${shardId}`;
  let base = name;
  while (Buffer.byteLength(base) + suffix.length > 63) base = base.slice(0, -1);
  return base + suffix;
}

/** The shard of `table` in shard group `index` (a reference table's one shard for any index). */
export function shardOf(table: DistributedTable, index: number): Shard {
  const shard = table.kind === "reference" ? table.shards[0] : table.shards[index];
  if (!shard) throw new Error(`table ${table.name} has no shard ${index}`);
  return shard;
}
