import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { herdClient } from "../faults/fault-kit.js";
import { useHerdCluster } from "../helpers/herd-up.js";

// get_rebalance_table_shards_plan() on a cluster that stays uneven (no automatic rebalance), as
// Citus answers it: one row per shard a rebalance would move, table_name a regclass that reads as
// the table's name (qualified when the session's search_path does not find it). In the rebalance
// fault test the plan is empty unless a worker joins at the wrong moment, so its rows were never
// looked at: they showed the table's oid.
const herdUp = useHerdCluster("rebalance-plan", { workers: 3, env: { HERD_AUTO_REBALANCE: "off" } });
let herd: pg.Client;

beforeAll(async () => {
  herd = await herdClient(herdUp.cluster);
  await herd.query("CREATE SCHEMA sales");
  await herd.query("CREATE TABLE sales.orders (id int PRIMARY KEY, total numeric)");
  await herd.query("INSERT INTO sales.orders SELECT g, g FROM generate_series(1, 600) g");
  await herd.query("SET citus.shard_replication_factor = 1");
  await herd.query("SELECT create_distributed_table('sales.orders', 'id', shard_count => 6)");
  // every shard of the first worker onto the second: 0 / 4 / 2, uneven
  const { rows } = await herd.query<{ shardid: string; nodename: string; nodeport: number }>(
    `SELECT shardid::text, nodename, nodeport FROM citus_shards WHERE table_name = 'sales.orders'::regclass ORDER BY shardid`,
  );
  const ports = [...new Set(rows.map((row) => row.nodeport))].sort();
  expect(ports).toHaveLength(3);
  for (const row of rows.filter((r) => r.nodeport === ports[0]))
    await herd.query("SELECT citus_move_shard_placement($1, $2, $3, $4, $5)", [
      row.shardid,
      row.nodename,
      row.nodeport,
      row.nodename,
      ports[1],
    ]);
}, 120_000);

afterAll(async () => {
  await herd?.end();
});

describe("get_rebalance_table_shards_plan", () => {
  it("lists the moves the admin API's dry run plans, the table by its name", async () => {
    const dry = (await (
      await herdUp.cluster.admin("/v1/rebalance", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ dryRun: true }),
      })
    ).json()) as { moves: { shardIds: number[] }[] };
    expect(dry.moves.length).toBeGreaterThan(0);
    const plan = await herd.query("SELECT * FROM get_rebalance_table_shards_plan()");
    expect(plan.rows.map((row) => Number(row.shardid)).sort()).toEqual(dry.moves.flatMap((m) => m.shardIds).sort());
    // not on the search_path: qualified, as PostgreSQL writes a regclass
    expect(new Set(plan.rows.map((row) => row.table_name))).toEqual(new Set(["sales.orders"]));
    await herd.query("SET search_path = sales, public");
    try {
      const named = await herd.query("SELECT * FROM get_rebalance_table_shards_plan('orders')");
      expect(named.rows.length).toBe(plan.rows.length);
      expect(new Set(named.rows.map((row) => row.table_name))).toEqual(new Set(["orders"]));
      // the same names through a query over the plan's rows (computed once, filtered on the coordinator)
      const filtered = await herd.query(
        "SELECT table_name::text, shardid FROM get_rebalance_table_shards_plan() WHERE shardid > 0 ORDER BY shardid",
      );
      expect(filtered.rows.map((row) => row.table_name)).toEqual(named.rows.map(() => "orders"));
    } finally {
      await herd.query("RESET search_path");
    }
  });

  it("plans nothing once the rebalance it lists has run", async () => {
    await herd.query("SELECT citus_rebalance_start()");
    await herd.query("SELECT citus_rebalance_wait()");
    expect((await herd.query("SELECT * FROM get_rebalance_table_shards_plan()")).rows).toEqual([]);
    expect((await herd.query("SELECT count(*)::int AS n, sum(total)::int AS s FROM sales.orders")).rows).toEqual([
      { n: 600, s: 180_300 },
    ]);
  });
});
