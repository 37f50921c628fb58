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

/**
 * Each value locked is an entry in PostgreSQL's shared lock table, which holds
 * max_locks_per_transaction × (max_connections + max_prepared_transactions) of them for every
 * transaction together (some 38,000 on herd's servers): an INSERT … SELECT of 200,000 rows took
 * one per row and ran out of it (53200 out of shared memory, for every session). So a statement
 * that writes more than this many values of one shard group locks the whole group instead, as
 * COPY does: bulk writes of a group then go one after the other.
 */
export const MAX_VALUE_LOCKS_PER_GROUP = 64;

/**
 * A transaction block that has locked this many values in all (thousands of single-row INSERTs)
 * locks the groups of its next values whole. Not sooner: a transaction that holds values of a
 * group and then locks it whole waits for the group's other writers, and two doing so at once
 * wait for each other (a deadlock PostgreSQL finds on the coordinator, 40P01), so concurrent
 * blocks of a few hundred rows each keep their value locks.
 */
export const MAX_VALUE_LOCKS_PER_TRANSACTION = 1024;

/**
 * The lock a write of `shard` of `table` takes: the values hashed in `hashes`, or (undefined) all
 * of it, also when they are more than MAX_VALUE_LOCKS_PER_GROUP.
 */
export function shardLock(table: DistributedTable, shard: Shard, hashes?: readonly number[]): ShardLock {
  const many = hashes !== undefined && hashes.length > MAX_VALUE_LOCKS_PER_GROUP;
  const locked = many && new Set(hashes).size > MAX_VALUE_LOCKS_PER_GROUP ? undefined : hashes;
  return { group: lockGroup(table.colocationId, shard.index), hashes: locked, version: shard.placementVersion ?? 0 };
}

/** Values of one group locked one call each; more go through an array. */
const MANY_VALUES = 32;

/** The high half of a group lock's bigint key (migration 5): "herd" in ASCII. */
const GROUP_KEY_BASE = 1_751_478_884n << 32n;

/**
 * The same locks, taken on a worker inside the write's transaction there (one statement,
 * pipelined before the write): a prepared part keeps its locks until COMMIT PREPARED. A writer
 * whose coordinator lock was let go by the previous writer's COMMIT may reach a worker before
 * that writer's COMMIT PREPARED did, in another coordinator process that cannot know of it, and a
 * row the previous writer inserted is invisible there: its UPDATE would miss it on that copy and
 * not on the other. Waiting for the lock on the worker first, it sees what each copy committed.
 * Only copies can disagree: a shard with one placement needs none. Undefined when nothing is locked.
 */
export function workerLockSql(locks: readonly ShardLock[]): string | undefined {
  const calls = new Set<string>();
  for (const lock of [...locks].sort((a, b) => a.group - b.group)) {
    const group = (GROUP_KEY_BASE + BigInt(lock.group)).toString();
    if (lock.hashes === undefined) {
      calls.add(`pg_catalog.pg_advisory_xact_lock(${group})`);
      continue;
    }
    calls.add(`pg_catalog.pg_advisory_xact_lock_shared(${group})`);
    const key = lock.group % 2_147_483_648;
    const hashes = [...new Set(lock.hashes)].sort((a, b) => a - b);
    if (hashes.length <= MANY_VALUES) {
      for (const hash of hashes) calls.add(`pg_catalog.pg_advisory_xact_lock(${key}, ${hash})`);
    } else {
      // up to MAX_VALUE_LOCKS_PER_GROUP values (shardLock locks the group past them; a caller
      // may pass more): one call per row of an array, not one per column (a target list holds
      // at most 1664)
      calls.add(
        `(SELECT pg_catalog.count(pg_catalog.pg_advisory_xact_lock(${key}, h)) FROM pg_catalog.unnest('{${hashes.join(",")}}'::int[]) h)`,
      );
    }
  }
  // numbers only (herd's own keys and hashes): nothing of a client's in the statement's text
  return calls.size === 0 ? undefined : `SELECT ${[...calls].join(", ")}`;
}

/**
 * What opens a worker's part of a write: its BEGIN (with the block's savepoints) when it joins
 * now, and the worker locks of the shards with copies it writes, in one Query; undefined for neither.
 */
export function openingWithWorkerLocks(opening: string | undefined, locks: readonly ShardLock[]): string | undefined {
  const lockSql = locks.length > 0 ? workerLockSql(locks) : undefined;
  if (lockSql === undefined) return opening;
  return opening ? `${opening}; ${lockSql}` : lockSql;
}
