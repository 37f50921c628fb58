import type { DistributedTable, Shard } from "../metadata/catalog-types.js";

/**
 * What a write locks on the coordinator for one shard it writes (migration 5, herd.lock_value and
 * herd.lock_shards). Locks are per shard group: the shards of one colocation group at one index,
 * which hold the same distribution values. A write pinned to values locks each value (its hash)
 * in the group and shares the group; a write of a whole shard (not pinned, COPY, DDL, a repair)
 * takes the group exclusively. So a transaction that writes one tenant in several colocated
 * tables (the multi-tenant pattern, pgbench's accounts and history) takes one lock, once; the
 * price is that a whole-shard write of one table also holds back writes of its colocated tables
 * in that group until it commits.
 */
export interface ShardLock {
  /** The shard group's lock key (`lockGroup`). */
  readonly group: number;
  /** The hashes of the distribution values written, or (undefined) the whole group. */
  readonly hashes: readonly number[] | undefined;
  /** The shard's placement version in the catalog the write was planned with. */
  readonly version: number;
}

/** Shard indexes are below this (shard_count is at most 64000). */
const INDEXES_PER_GROUP = 65_536;

/** The lock key of shard group `index` of colocation group `colocationId`, as migration 5 computes it. */
export function lockGroup(colocationId: number, index: number): number {
  return colocationId * INDEXES_PER_GROUP + index;
}

/** The lock a write of `shard` of `table` takes: the values hashed in `hashes`, or (undefined) all of it. */
export function shardLock(table: DistributedTable, shard: Shard, hashes?: readonly number[]): ShardLock {
  return { group: lockGroup(table.colocationId, shard.index), hashes, version: shard.placementVersion ?? 0 };
}
