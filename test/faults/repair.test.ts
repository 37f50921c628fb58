import { sleep } from "@herd/shared";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useHerdCluster } from "../helpers/herd-up.js";
import { divergentShards, herdClient, placements, takeWorkerAway, within } from "./fault-kit.js";

// One worker away (a rolling update, a node drain, a crash): writes to every shard go on, on the
// copies that are there; the away worker's copies that missed writes are marked stale and never
// read; when the worker is back they are repaired from an active copy, automatically, and end up
// identical to it.
const herdUp = useHerdCluster("repair", { workers: 3, env: { HERD_REPAIR_INTERVAL_MS: "1000" } });
let herd: pg.Client;
let away: { back(): Promise<void> } | undefined;

const ROWS = 400;
/** What the table must hold: id → amount, kept by the test as it writes. */
const expected = new Map<number, number>();

beforeAll(async () => {
  herd = await herdClient(herdUp.cluster);
  await herd.query("CREATE TABLE regions (code text PRIMARY KEY, name text NOT NULL)");
  await herd.query("INSERT INTO regions VALUES ('eu', 'Europe'), ('us', 'Americas')");
  await herd.query("SELECT create_reference_table('regions')");
  await herd.query("CREATE TABLE orders (id int PRIMARY KEY, region text NOT NULL, amount int NOT NULL)");
  await herd.query(
    `INSERT INTO orders SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g FROM generate_series(1, ${ROWS}) g`,
  );
  await herd.query("SELECT create_distributed_table('orders', 'id')");
  for (let id = 1; id <= ROWS; id += 1) expected.set(id, id);
});

afterAll(async () => {
  await away?.back().catch(() => {});
  await herd?.end();
});

async function table(): Promise<Map<number, number>> {
  const { rows } = await herd.query<{ id: number; amount: number }>("SELECT id, amount FROM orders");
  return new Map(rows.map((row) => [row.id, row.amount]));
}

describe("a worker away", () => {
  it("keeps taking writes to every shard, in and out of blocks, on the copies that are there", async () => {
    away = await takeWorkerAway(herdUp.cluster, 3);
    const failures: string[] = [];
    const attempt = async (write: () => Promise<void>) => {
      try {
        await write();
      } catch (error) {
        failures.push(`${(error as { code?: string }).code}: ${(error as Error).message}`);
        await herd.query("ROLLBACK").catch(() => {});
      }
    };
    for (let id = 1; id <= ROWS; id += 4) {
      await attempt(async () => {
        await herd.query("UPDATE orders SET amount = amount + 1 WHERE id = $1", [id]);
        expected.set(id, (expected.get(id) ?? 0) + 1);
      });
    }
    for (let id = ROWS + 1; id <= ROWS + 40; id += 1) {
      await attempt(async () => {
        await herd.query("INSERT INTO orders VALUES ($1, 'eu', $1)", [id]);
        expected.set(id, id);
      });
    }
    await attempt(async () => {
      await herd.query("BEGIN");
      await herd.query("UPDATE orders SET amount = amount - 5 WHERE id = 2");
      await herd.query("UPDATE orders SET amount = amount + 5 WHERE id = 3");
      await herd.query("DELETE FROM orders WHERE id = 5");
      await herd.query("COMMIT");
      expected.set(2, (expected.get(2) ?? 0) - 5);
      expected.set(3, (expected.get(3) ?? 0) + 5);
      expected.delete(5);
    });
    await attempt(async () => {
      const update = await herd.query("UPDATE orders SET amount = amount * 2 WHERE amount % 7 = 0");
      for (const [id, amount] of expected) if (amount % 7 === 0) expected.set(id, amount * 2);
      expect(update.rowCount).toBeGreaterThan(0);
    });
    await attempt(async () => {
      await herd.query("INSERT INTO regions VALUES ('ap', 'Asia')");
    });
    expect(failures).toEqual([]);
    expect(await table()).toEqual(expected);

    // the away worker's copies that missed writes are stale; every shard keeps an active copy
    const awayPort = herdUp.cluster.sqlPort + 4;
    const all = await placements(herd);
    const stale = all.filter((p) => p.shardstate === 3);
    expect(stale.length).toBeGreaterThan(0);
    expect(stale.every((p) => p.nodeport === awayPort)).toBe(true);
    for (const shard of new Set(all.map((p) => p.shardid)))
      expect(all.some((p) => p.shardid === shard && p.shardstate === 1)).toBe(true);
    // where shards live reads with the worker down; what it cannot measure is NULL, with a warning
    const warnings: string[] = [];
    const onNotice = (notice: { message?: string }) => warnings.push(notice.message ?? "");
    herd.on("notice", onNotice);
    const sized = await herd
      .query("SELECT nodeport, shard_size FROM citus_shards")
      .finally(() => herd.off("notice", onNotice));
    expect(sized.rows).toHaveLength(all.length);
    for (const row of sized.rows) expect(row.shard_size === null, JSON.stringify(row)).toBe(row.nodeport === awayPort);
    if (all.some((p) => p.nodeport === awayPort && p.shardstate === 1))
      expect(warnings.some((message) => message.startsWith("sizes leave out herd-3"))).toBe(true);
    // the admin API's node view says the same
    const nodes = (await (await herdUp.cluster.admin("/v1/nodes")).json()) as {
      nodes: { name: string; placements: { stale: number } }[];
    };
    expect(nodes.nodes.find((n) => n.name === "herd-3")?.placements.stale).toBe(stale.length);
  });

  it("repairs the stale copies when the worker is back, to identical copies", async () => {
    const started = Date.now();
    await away?.back();
    const ms = await within(30_000, "every placement active again", async () =>
      (await placements(herd)).every((p) => p.shardstate === 1),
    );
    console.log(
      `repair: every stale placement active ${Date.now() - started} ms after the worker was resumed (${ms} ms after it answered)`,
    );
    expect(await divergentShards(herdUp.cluster, herd)).toEqual([]);
    expect(await table()).toEqual(expected);
    // the repaired copies answer reads: with herd-1 away, every shard herd-1 shared with herd-3
    // is read from herd-3's repaired copy, and the whole table is still exactly what was written
    const herd1 = await takeWorkerAway(herdUp.cluster, 1);
    try {
      expect(await table()).toEqual(expected);
      const regions = await herd.query("SELECT code FROM regions ORDER BY code");
      expect(regions.rows.map((row) => row.code)).toEqual(["ap", "eu", "us"]);
    } finally {
      await herd1.back();
    }
  });

  it("keeps repairing under writes: a copy is repaired while writers go on, and they lose nothing", async () => {
    away = await takeWorkerAway(herdUp.cluster, 2);
    let stop = false;
    const writers = await Promise.all(Array.from({ length: 4 }, () => herdClient(herdUp.cluster)));
    const failures: string[] = [];
    const acknowledged = new Map<number, number>();
    const loops = writers.map(async (client, i) => {
      for (let n = 0; !stop; n += 1) {
        const id = 10_000 + i * 10_000 + n;
        try {
          await client.query("INSERT INTO orders VALUES ($1, 'us', $2)", [id, n]);
          acknowledged.set(id, n);
        } catch (error) {
          failures.push((error as Error).message);
          // a connection that is gone fails at once, in a microtask: yield, or this loop would
          // starve the event loop and the test would hang instead of failing
          await sleep(10);
        }
      }
    });
    await within(10_000, "writes missed by herd-2's copies", async () =>
      (await placements(herd)).some((p) => p.shardstate === 3),
    );
    await sleep(500);
    await away.back();
    await within(30_000, "every placement active again", async () =>
      (await placements(herd)).every((p) => p.shardstate === 1),
    );
    await sleep(500);
    stop = true;
    await Promise.all(loops);
    await Promise.all(writers.map((client) => client.end()));
    expect(failures).toEqual([]);
    const now = await table();
    for (const [id, n] of acknowledged) expect(now.get(id)).toBe(n);
    expect(await divergentShards(herdUp.cluster, herd)).toEqual([]);
  });
});
