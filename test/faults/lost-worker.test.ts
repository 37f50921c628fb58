import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type HerdUp, startHerdUp } from "../helpers/herd-up.js";
import { scratchDir } from "../helpers/scratch-dir.js";
import { divergentShards, herdClient, onServer, placements, serverPort, takeWorkerAway, within } from "./fault-kit.js";

// A worker gone for longer than HERD_REPLACE_LOST_AFTER_S (3 s here, 15 min by default): herd
// copies every shard group it held to the workers that answer, back to two copies each, while
// writes go on; its own copies are retired, and dropped once it answers again.
const OPTIONS = {
  workers: 4,
  env: { HERD_REPLACE_LOST_AFTER_S: "3", HERD_HEARTBEAT_TIMEOUT_MS: "2000", HERD_HEARTBEAT_INTERVAL_MS: "500" },
};
let scratch: { path: string; remove(): Promise<void> };
let cluster: HerdUp | undefined;
const herdUp = {
  get cluster(): HerdUp {
    return cluster as HerdUp;
  },
};
let herd: pg.Client;
const LOST = 4; // herd-4

beforeAll(async () => {
  scratch = await scratchDir("lost-worker");
  cluster = await startHerdUp({ ...OPTIONS, dataDir: scratch.path });
  herd = await herdClient(herdUp.cluster);
  herd.on("error", () => {});
  for (const sql of [
    "CREATE TABLE regions (code text PRIMARY KEY, name text)",
    "CREATE TABLE accounts (id int PRIMARY KEY, region text, balance numeric)",
    "CREATE TABLE entries (account_id int, amount numeric)",
    "INSERT INTO regions VALUES ('eu', 'Europe'), ('us', 'Americas')",
    "INSERT INTO accounts SELECT i, (ARRAY['eu','us'])[1 + i % 2], 100 FROM generate_series(1, 1000) i",
    "INSERT INTO entries SELECT i, 1 FROM generate_series(1, 1000) i",
    "SELECT create_reference_table('regions')",
    "SELECT create_distributed_table('accounts', 'id', shard_count => 8)",
    "SELECT create_distributed_table('entries', 'account_id', colocate_with => 'accounts')",
  ])
    await herd.query(sql);
});

afterAll(async () => {
  await herd?.end().catch(() => {});
  await cluster?.stop();
  await scratch?.remove();
});

const lostPort = () => serverPort(herdUp.cluster, LOST);

describe("a worker lost for longer than HERD_REPLACE_LOST_AFTER_S", () => {
  it("has its shard groups copied to the others while writes go on, back to two copies each", async () => {
    const held = (await placements(herd, "accounts")).filter((p) => p.nodeport === lostPort()).length;
    expect(held).toBeGreaterThan(0);
    const away = await takeWorkerAway(herdUp.cluster, LOST);
    try {
      // writes while it is away: its copies of the shards written go stale
      let acknowledged = 0;
      let writing = true;
      const writes = (async () => {
        while (writing) {
          const id = 1 + (acknowledged % 1000);
          await herd.query("UPDATE accounts SET balance = balance + 1 WHERE id = $1", [id]);
          await herd.query("INSERT INTO entries VALUES ($1, 1)", [id]);
          acknowledged += 1;
        }
      })();
      // (the reference table's copy on it is retired after the hash shards' copies: wait for both,
      // else the digests below would try to read the lost worker's copy)
      await within(90_000, "every hash shard has two active copies, nothing active on the lost worker", async () => {
        const all = (await placements(herd)).filter((p) => p.shardstate === 1);
        const active = all.filter((p) => p.table_name !== "regions");
        const counts = new Map<string, number>();
        for (const p of active) if (p.nodeport !== lostPort()) counts.set(p.shardid, (counts.get(p.shardid) ?? 0) + 1);
        return (
          counts.size === 16 &&
          [...counts.values()].every((n) => n === 2) &&
          all.every((p) => p.nodeport !== lostPort())
        );
      });
      writing = false;
      await writes;
      expect(acknowledged).toBeGreaterThan(0);
      // the hash shards: two active copies each, none on the lost worker (its copies retired)
      const hash = (await placements(herd)).filter((p) => p.table_name !== "regions");
      const byShard = new Map<string, number[]>();
      for (const p of hash.filter((row) => row.shardstate === 1))
        byShard.set(p.shardid, [...(byShard.get(p.shardid) ?? []), p.nodeport]);
      expect(byShard.size).toBe(16);
      for (const ports of byShard.values()) {
        expect(new Set(ports).size).toBe(2);
        expect(ports).not.toContain(lostPort());
      }
      const totals = await herd.query("SELECT sum(balance)::int AS balance, count(*)::int AS n FROM accounts");
      expect(totals.rows).toEqual([{ balance: 100_000 + acknowledged, n: 1000 }]);
      const entries = await herd.query("SELECT count(*)::int AS n FROM entries");
      expect(entries.rows).toEqual([{ n: 1000 + acknowledged }]);
      expect(await divergentShards(herdUp.cluster, herd)).toEqual([]);
      const log = await readFile(join(herdUp.cluster.dataDir, "logs", "herd-0.log"), "utf8");
      expect(log).toMatch(/re-creating the copies of a lost worker/);
    } finally {
      await away.back();
    }
  });

  it("drops the retired copies when the worker answers again, and every shard stays whole", async () => {
    // its retired tables go; then (a worker with room) the reference table comes back and a
    // rebalance may give it shard groups again: whatever it holds at the end is in the catalog
    await within(90_000, "the worker's retired placements are gone and no job runs", async () => {
      const retired = await herd.query("SELECT 1 FROM herd.placements WHERE state = 'to_delete'");
      const running = await herd.query("SELECT 1 FROM herd.jobs WHERE state IN ('running', 'cancelling')");
      const moves = await herd.query("SELECT 1 FROM herd.shard_moves");
      const regions = (await placements(herd, "regions")).filter((p) => p.shardstate === 1);
      return retired.rows.length + running.rows.length + moves.rows.length === 0 && regions.length === 4;
    });
    const onLost = await onServer<{ relname: string }>(
      herdUp.cluster,
      LOST,
      "SELECT relname FROM pg_class WHERE relname ~ '^(accounts|entries|regions)_[0-9]+$' ORDER BY 1",
    );
    const placed = (await placements(herd))
      .filter((p) => p.nodeport === lostPort())
      .map((p) => p.shard_name)
      .sort();
    expect(onLost.map((row) => row.relname)).toEqual(placed);
    expect((await placements(herd)).filter((p) => p.shardstate !== 1)).toEqual([]);
    expect(await divergentShards(herdUp.cluster, herd)).toEqual([]);
    expect((await herd.query("SELECT count(*)::int AS n FROM accounts")).rows).toEqual([{ n: 1000 }]);
  });

  it("loses nobody when the whole cluster was down longer than that and starts again", async () => {
    // settled first: no rebalance left to run (the worker that came back may have been given shards)
    await within(90_000, "nothing left to rebalance", async () => {
      const plan = await herdUp.cluster.admin("/v1/rebalance", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ dryRun: true }),
      });
      const jobs = await herd.query("SELECT 1 FROM herd.jobs WHERE state IN ('running', 'cancelling')");
      const moves = await herd.query("SELECT 1 FROM herd.shard_moves");
      return (
        ((await plan.json()) as { moves: unknown[] }).moves.length === 0 && jobs.rows.length + moves.rows.length === 0
      );
    });
    const before = await herd.query("SELECT count(*)::int AS n, sum(balance)::int AS b FROM accounts");
    const placed = (await placements(herd)).map((p) => `${p.shardid}:${p.nodeport - herdUp.cluster.sqlPort}`).sort();
    await herd.end();
    expect(await herdUp.cluster.stop()).toBe(0);
    // every worker's last heartbeat is now older than HERD_REPLACE_LOST_AFTER_S
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    cluster = await startHerdUp({
      ...OPTIONS,
      dataDir: scratch.path,
      ports: { sqlPort: herdUp.cluster.sqlPort, adminPort: herdUp.cluster.adminPort },
    });
    herd = await herdClient(herdUp.cluster);
    herd.on("error", () => {});
    // a few passes of the job runner (every 5 s)
    await new Promise((resolve) => setTimeout(resolve, 12_000));
    expect((await herd.query("SELECT count(*)::int AS n FROM herd.placements WHERE state <> 'active'")).rows).toEqual([
      { n: 0 },
    ]);
    const now = (await placements(herd)).map((p) => `${p.shardid}:${p.nodeport - herdUp.cluster.sqlPort}`).sort();
    expect(now).toEqual(placed);
    expect((await herd.query("SELECT count(*)::int AS n, sum(balance)::int AS b FROM accounts")).rows).toEqual(
      before.rows,
    );
    const log = await readFile(join(herdUp.cluster.dataDir, "logs", "herd-0.log"), "utf8");
    expect(log.slice(log.lastIndexOf("coordinator serving"))).not.toMatch(/lost worker/);
  });
});
