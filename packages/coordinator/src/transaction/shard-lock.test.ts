import { describe, expect, it } from "vitest";
import type { DistributedTable, Shard } from "../metadata/catalog-types.js";
import { MAX_VALUE_LOCKS_PER_GROUP, openingWithWorkerLocks, shardLock, workerLockSql } from "./shard-lock.js";

// The locks a write of copies takes on their workers: the keys herd.lock_value and
// herd.lock_shards take on the coordinator (migration 5), in one statement, in one order.
describe("workerLockSql", () => {
  it("takes a value's lock as the coordinator does: the group shared, the value exclusively", () => {
    expect(workerLockSql([{ group: 65_537, hashes: [-5, 3], version: 1 }])).toBe(
      "SELECT pg_catalog.pg_advisory_xact_lock_shared(7522544526414643201), " +
        "pg_catalog.pg_advisory_xact_lock(65537, -5), pg_catalog.pg_advisory_xact_lock(65537, 3)",
    );
  });

  it("takes a whole group exclusively, groups in order, each lock once", () => {
    expect(
      workerLockSql([
        { group: 65_538, hashes: undefined, version: 1 },
        { group: 65_537, hashes: [9], version: 1 },
        { group: 65_537, hashes: [9], version: 1 },
      ]),
    ).toBe(
      "SELECT pg_catalog.pg_advisory_xact_lock_shared(7522544526414643201), " +
        "pg_catalog.pg_advisory_xact_lock(65537, 9), pg_catalog.pg_advisory_xact_lock(7522544526414643202)",
    );
  });

  it("locks thousands of values of a batch through an array (a target list holds at most 1664 entries)", () => {
    const hashes = Array.from({ length: 5_000 }, (_, i) => 2_500 - i);
    const sql = workerLockSql([{ group: 65_537, hashes, version: 1 }]) as string;
    expect(sql.startsWith("SELECT pg_catalog.pg_advisory_xact_lock_shared(7522544526414643201), (SELECT ")).toBe(true);
    expect(sql).toContain("pg_catalog.pg_advisory_xact_lock(65537, h)) FROM pg_catalog.unnest('{-2499,-2498,");
    expect(sql.split(",").length).toBeLessThan(5_010);
  });

  it("is nothing for no lock", () => {
    expect(workerLockSql([])).toBeUndefined();
  });

  it("rides in the Query of the BEGIN that opens the worker's part, or alone", () => {
    const lock = { group: 65_538, hashes: undefined, version: 1 };
    const lockSql = "SELECT pg_catalog.pg_advisory_xact_lock(7522544526414643202)";
    expect(openingWithWorkerLocks("BEGIN", [lock])).toBe(`BEGIN; ${lockSql}`);
    expect(openingWithWorkerLocks(undefined, [lock])).toBe(lockSql);
    expect(openingWithWorkerLocks("BEGIN", [])).toBe("BEGIN");
    expect(openingWithWorkerLocks(undefined, [])).toBeUndefined();
  });
});

describe("shardLock", () => {
  const table = { colocationId: 3 } as DistributedTable;
  const shard = { index: 5, placementVersion: 2 } as Shard;

  it("locks the values a write is pinned to, up to 64 of them", () => {
    const hashes = Array.from({ length: MAX_VALUE_LOCKS_PER_GROUP }, (_, i) => i * 7);
    expect(shardLock(table, shard, hashes)).toEqual({ group: 3 * 65_536 + 5, hashes, version: 2 });
    // many rows of few values are few locks
    const repeated = Array.from({ length: 10_000 }, (_, i) => i % 3);
    expect(shardLock(table, shard, repeated).hashes).toBe(repeated);
  });

  it("locks the whole group past 64 values (an INSERT … SELECT of 200,000 rows ran PostgreSQL out of lock space)", () => {
    const hashes = Array.from({ length: MAX_VALUE_LOCKS_PER_GROUP + 1 }, (_, i) => i);
    expect(shardLock(table, shard, hashes)).toEqual({ group: 3 * 65_536 + 5, hashes: undefined, version: 2 });
  });
});
