import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useHerdCluster } from "../helpers/herd-up.js";
import { divergentShards, herdClient, onServer, placements, shardDigest } from "./fault-kit.js";

// citus_copy_shard_placement: a new copy of a shard (and those colocated with it) on a worker
// that has none, and the repair of a stale copy on demand, including one that missed DDL. The
// automatic repair is slowed down here (HERD_REPAIR_INTERVAL_MS) so that the test decides when
// a stale copy is repaired.
const herdUp = useHerdCluster("copy-placement", { workers: 3, env: { HERD_REPAIR_INTERVAL_MS: "3600000" } });
let herd: pg.Client;

beforeAll(async () => {
  herd = await herdClient(herdUp.cluster);
  await herd.query("CREATE TABLE events (tenant int NOT NULL, id int NOT NULL, body text, PRIMARY KEY (tenant, id))");
  await herd.query("INSERT INTO events SELECT g % 17, g, md5(g::text) FROM generate_series(1, 600) g");
  await herd.query("SELECT create_distributed_table('events', 'tenant')");
  await herd.query("CREATE TABLE notes (tenant int NOT NULL, note text)");
  await herd.query("INSERT INTO notes SELECT g % 17, 'n' || g FROM generate_series(1, 100) g");
  await herd.query("SELECT create_distributed_table('notes', 'tenant', colocate_with => 'events')");
});

afterAll(async () => {
  await herd?.end();
});

/** A shard of events, the nodes holding it, and a worker holding none of it. */
async function shardWithFreeWorker(): Promise<{ shardId: string; on: number[]; free: number }> {
  const all = await placements(herd, "events");
  const ports = [2, 3, 4].map((ordinal) => herdUp.cluster.sqlPort + ordinal);
  const shardId = all.find((p) => all.filter((q) => q.shardid === p.shardid).length < ports.length)?.shardid as string;
  const on = all.filter((p) => p.shardid === shardId).map((p) => p.nodeport);
  const free = ports.find((port) => !on.includes(port)) as number;
  return { shardId, on, free };
}

describe("citus_copy_shard_placement", () => {
  it("makes a new copy of a shard and its colocated shards on a worker that has none", async () => {
    const { shardId, on, free } = await shardWithFreeWorker();
    const before = await placements(herd);
    await herd.query("SELECT citus_copy_shard_placement($1, '127.0.0.1', $2, '127.0.0.1', $3)", [shardId, on[0], free]);
    const after = await placements(herd);
    const had = new Set(before.map((p) => `${p.shardid}@${p.nodeport}`));
    const copied = after.filter((p) => !had.has(`${p.shardid}@${p.nodeport}`));
    expect(copied.every((p) => p.nodeport === free && p.shardstate === 1)).toBe(true);
    // the events shard and the notes shard colocated with it
    expect(copied.map((p) => p.table_name).sort()).toEqual(["events", "notes"]);
    expect(after.filter((p) => p.shardid === shardId)).toHaveLength(3);
    expect(await divergentShards(herdUp.cluster, herd)).toEqual([]);
    // writes reach the new copy too
    await herd.query("UPDATE events SET body = 'changed' WHERE id % 2 = 0");
    expect(await divergentShards(herdUp.cluster, herd)).toEqual([]);
  });

  it("refuses what cannot be done, with Citus's errors", async () => {
    const { shardId, on, free } = await shardWithFreeWorker();
    const copy = (args: unknown[]) =>
      herd.query("SELECT citus_copy_shard_placement($1, '127.0.0.1', $2, '127.0.0.1', $3)", args);
    await expect(copy([shardId, on[0], on[0]])).rejects.toMatchObject({ code: "22023" });
    await expect(copy([shardId, on[0], on[1]])).rejects.toMatchObject({ code: "55000" });
    await expect(copy([999_999_999, on[0], free])).rejects.toMatchObject({ code: "42704" });
    await expect(copy([shardId, 1, free])).rejects.toMatchObject({ code: "22023" });
    await herd.query("BEGIN");
    await expect(copy([shardId, on[0], free])).rejects.toMatchObject({ code: "25001" });
    await herd.query("ROLLBACK");
  });

  it("repairs a stale copy that missed rows and DDL, re-creating its table like the active one", async () => {
    const all = await placements(herd, "events");
    const victim = all.find((p) => p.shardstate === 1) as (typeof all)[number];
    const source = all.find(
      (p) => p.shardid === victim.shardid && p.nodeport !== victim.nodeport,
    ) as (typeof all)[number];
    // the copy goes stale (as when its worker missed a write), then misses rows and a column
    await onServer(
      herdUp.cluster,
      0,
      "UPDATE herd.placements SET state = 'stale' WHERE shard_id = $1 AND node_id = (SELECT id FROM herd.nodes WHERE port = $2)",
      [victim.shardid, victim.nodeport],
    );
    await herd.query("ALTER TABLE events ADD COLUMN seen boolean NOT NULL DEFAULT false");
    const late = Array.from({ length: 17 }, (_, t) => `(${t}, ${10_000 + t}, 'late')`).join(", ");
    await herd.query(`INSERT INTO events (tenant, id, body) VALUES ${late}`);
    await herd.query("UPDATE events SET seen = true WHERE id % 3 = 0");
    const before = await shardDigest(herdUp.cluster, victim);
    const good = await shardDigest(herdUp.cluster, source);
    expect(before.md5).not.toBe(good.md5);

    await herd.query("SELECT citus_copy_shard_placement($1, $2::int, $3::int)", [
      victim.shardid,
      (
        await onServer<{ id: number }>(herdUp.cluster, 0, "SELECT id FROM herd.nodes WHERE port = $1", [
          source.nodeport,
        ])
      )[0]?.id,
      (
        await onServer<{ id: number }>(herdUp.cluster, 0, "SELECT id FROM herd.nodes WHERE port = $1", [
          victim.nodeport,
        ])
      )[0]?.id,
    ]);
    expect((await placements(herd)).every((p) => p.shardstate === 1)).toBe(true);
    expect(await shardDigest(herdUp.cluster, victim)).toEqual(good);
    const columns = await onServer<{ attname: string }>(
      herdUp.cluster,
      victim.nodeport - herdUp.cluster.sqlPort - 1,
      "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
      [victim.shard_name],
    );
    expect(columns.map((c) => c.attname)).toEqual(["tenant", "id", "body", "seen"]);
    expect(await divergentShards(herdUp.cluster, herd)).toEqual([]);
  });
});
