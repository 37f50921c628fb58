import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { answer } from "../helpers/differential.js";
import { eventually, HERD_CLI, type HerdUp, startHerdUp } from "../helpers/herd-up.js";
import { scratchDir } from "../helpers/scratch-dir.js";
import { botOf, divergentShards, herdClient, onServer, within } from "./fault-kit.js";

// A cluster that grows: `herd up --workers 3` with data, stopped, then `herd up --workers 5` on the
// same data directory. The new workers get every reference table and a rebalance job evens out the
// shard groups by itself; answers stay the same. Then a drain empties a worker so it can be removed,
// and the rebalance endpoints and SQL functions answer as documented.
let scratch: { path: string; remove(): Promise<void> };
const run = promisify(execFile);
/** The `herd` CLI against this cluster (found through its data directory), as a user runs it. */
const herdCli = (...args: string[]) =>
  run(process.execPath, [HERD_CLI, ...args, "--data-dir", scratch.path]).then(
    ({ stdout }) => ({ code: 0, stdout }),
    (error: { code: number; stdout: string; stderr: string }) => ({
      code: error.code,
      stdout: `${error.stdout}${error.stderr}`,
    }),
  );
let cluster: HerdUp | undefined;
let herd: pg.Client;

const QUERIES = [
  "SELECT count(*), sum(total) FROM orders",
  "SELECT o.customer, count(*) FROM orders o JOIN order_items i ON i.order_id = o.id GROUP BY 1 ORDER BY 1 LIMIT 5",
  "SELECT r.name, count(*) FROM orders o JOIN regions r ON r.code = o.region GROUP BY 1 ORDER BY 1",
];

interface NodeRow {
  id: number;
  name: string;
  port: number;
  state: string;
}

const up = () => cluster as HerdUp;
const json = async (path: string, init?: RequestInit) => {
  const response = await up().admin(path, {
    ...init,
    headers: init?.body === undefined ? {} : { "content-type": "application/json" },
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
};

/** Active placements per node, per colocation group, as the admin API lists them. */
async function spread(): Promise<Map<number, Map<number, number>>> {
  const tables = (await json("/v1/tables")).body.tables as { name: string; kind: string; colocationId: number }[];
  const nodes = ((await json("/v1/nodes")).body.nodes as NodeRow[]).filter((n) => n.state === "active");
  const result = new Map<number, Map<number, number>>();
  for (const table of tables.filter((t) => t.kind === "hash")) {
    const shards = (await json(`/v1/shards?table=${table.name}`)).body.shards as {
      placements: { nodeId: number; state: string }[];
    }[];
    const perNode = new Map(nodes.map((n) => [n.id, 0]));
    for (const shard of shards)
      for (const p of shard.placements)
        if (p.state === "active") perNode.set(p.nodeId, (perNode.get(p.nodeId) ?? 0) + 1);
    result.set(table.colocationId, perNode);
  }
  return result;
}

/** Until no rebalance or drain job is under way (automatic ones start by themselves). */
async function noJobRunning(): Promise<void> {
  await within(60_000, "no job runs", async () => {
    const jobs = (await json("/v1/jobs")).body.jobs as { state: string }[];
    return jobs.every((job) => job.state !== "running" && job.state !== "cancelling");
  });
}

/** No job runs and none would start by itself: the shard groups are even. */
async function settled(): Promise<void> {
  await within(90_000, "nothing left to rebalance", async () => {
    await noJobRunning();
    const plan = await json("/v1/rebalance", { method: "POST", body: JSON.stringify({ dryRun: true }) });
    return (plan.body.moves as unknown[]).length === 0;
  });
  await noJobRunning();
}

async function answers(client: pg.Client): Promise<string[]> {
  return Promise.all(QUERIES.map(async (sql) => JSON.stringify(await answer(client, sql))));
}

beforeAll(async () => {
  scratch = await scratchDir("rebalance");
  cluster = await startHerdUp({ dataDir: scratch.path, workers: 3 });
  herd = await herdClient(up());
  herd.on("error", () => {});
  for (const sql of [
    "CREATE TABLE regions (code text PRIMARY KEY, name text)",
    "CREATE TABLE orders (id int PRIMARY KEY, customer int, region text, total numeric)",
    "CREATE TABLE order_items (order_id int, line int, qty int, PRIMARY KEY (order_id, line))",
    "INSERT INTO regions VALUES ('eu', 'Europe'), ('us', 'Americas'), ('ap', 'Asia')",
    "INSERT INTO orders SELECT i, i % 40, (ARRAY['eu','us','ap'])[1 + i % 3], i * 2.5 FROM generate_series(1, 2000) i",
    "INSERT INTO order_items SELECT i, l, l FROM generate_series(1, 2000) i, generate_series(1, 2) l",
    "SELECT create_reference_table('regions')",
    "SELECT create_distributed_table('orders', 'id', shard_count => 8)",
    "SELECT create_distributed_table('order_items', 'order_id', colocate_with => 'orders')",
  ])
    await herd.query(sql);
});

afterAll(async () => {
  await herd?.end().catch(() => {});
  await cluster?.stop();
  await scratch?.remove();
});

describe("a cluster that grows", () => {
  it("gives new workers the reference tables and evens out the shards by itself, answers unchanged", async () => {
    const before = await answers(herd);
    await herd.end();
    expect(await up().stop()).toBe(0);
    cluster = await startHerdUp({ dataDir: scratch.path, workers: 5 });
    // the rebalance job starts by itself; its coordinator is killed (kill -9) after its first move
    type Job = { id: number; state: string; movesDone: number; movesTotal: number; error: string | null };
    const started = await eventually(
      async () => {
        const jobs = (await json("/v1/jobs")).body.jobs as Job[];
        return jobs.find((j) => j.state === "running" && j.movesDone >= 1);
      },
      90_000,
      "a rebalance job under way",
    );
    expect(started.movesTotal).toBeGreaterThan(started.movesDone);
    process.kill(await botOf(up(), 0), "SIGKILL");
    // herd up starts it again; the new coordinator goes on with the job from the metadata
    const job = await eventually(
      async () => {
        const current = (await json(`/v1/jobs/${started.id}`).catch(() => undefined))?.body as Job | undefined;
        return current?.state === "done" || current?.state === "failed" ? current : undefined;
      },
      120_000,
      "the same job ended by the restarted coordinator",
    );
    expect(job, JSON.stringify(job)).toMatchObject({ state: "done" });
    expect(job.movesDone).toBeGreaterThan(started.movesDone);
    const log = await readFile(join(scratch.path, "logs", "herd-0.log"), "utf8");
    expect(log).toMatch(/resuming a job of an earlier coordinator/);
    herd = await herdClient(up());
    herd.on("error", () => {});
    expect((await herd.query("SELECT id FROM herd.shard_moves WHERE state = 'copying'")).rows).toEqual([]);
    for (const perNode of (await spread()).values()) {
      const counts = [...perNode.values()];
      expect(counts.length).toBe(5);
      expect(Math.max(...counts) - Math.min(...counts), JSON.stringify([...perNode])).toBeLessThanOrEqual(1);
    }
    const regions = (await json("/v1/shards?table=regions")).body.shards as { placements: { state: string }[] }[];
    expect(regions[0]?.placements.filter((p) => p.state === "active").length).toBe(5);
    expect(await answers(herd)).toEqual(before);
    expect(await divergentShards(up(), herd)).toEqual([]);
  }, 240_000);

  it("plans nothing more once even (dry run), and refuses a second job while one runs", async () => {
    const plan = await json("/v1/rebalance", { method: "POST", body: JSON.stringify({ dryRun: true }) });
    expect(plan).toEqual({ status: 200, body: { moves: [] } });
    const started = await json("/v1/rebalance", { method: "POST", body: JSON.stringify({}) });
    expect(started.status).toBe(202);
    const job = await eventually(async () => {
      const current = (await json(`/v1/jobs/${started.body.id}`)).body as { state: string; movesTotal: number };
      return current.state === "done" ? current : undefined;
    });
    expect(job.movesTotal).toBe(0);
    expect((await json("/v1/jobs/99999")).status).toBe(404);
    expect((await json(`/v1/jobs/${started.body.id}`, { method: "DELETE" })).status).toBe(409);
  });

  it("drains a worker: its placements go elsewhere, then it can be removed", async () => {
    const nodes = (await json("/v1/nodes")).body.nodes as NodeRow[];
    const last = nodes.at(-1) as NodeRow;
    const before = await answers(herd);
    const drain = await json(`/v1/nodes/${last.id}/drain`, { method: "POST", body: JSON.stringify({}) });
    expect(drain.status, JSON.stringify(drain.body)).toBe(202);
    expect((await json("/v1/nodes")).body.nodes).toContainEqual(
      expect.objectContaining({ id: last.id, state: "draining" }),
    );
    const done = await eventually(
      async () => {
        const job = (await json(`/v1/jobs/${drain.body.id}`)).body as { state: string; movesDone: number };
        return job.state === "done" || job.state === "failed" ? job : undefined;
      },
      90_000,
      "the drain",
    );
    expect(done, JSON.stringify(done)).toMatchObject({ state: "done" });
    expect(await answers(herd)).toEqual(before);
    // its tables go a few seconds after, and then the node can be removed
    await within(60_000, "the drained node holds no placement", async () => {
      const detail = (await json(`/v1/nodes/${last.id}`)).body as { placements: unknown[] };
      return detail.placements.length === 0;
    });
    const ordinal = Number(last.name.split("-")[1]);
    expect(
      await onServer(
        up(),
        ordinal,
        "SELECT relname FROM pg_class WHERE relname ~ '^(orders|order_items|regions)_[0-9]+$'",
      ),
    ).toEqual([]);
    expect((await json(`/v1/nodes/${last.id}`, { method: "DELETE" })).status).toBe(200);
    expect(await answers(herd)).toEqual(before);
  });

  it("answers get_rebalance_table_shards_plan and citus_rebalance_status through SQL, as Citus does", async () => {
    // The plan can change between two reads even with no job under way: the node removed above
    // still has its bot running, which registers it again (empty) with its next heartbeat, as
    // docs/shard-placement.md says. So the SQL plan is compared with dry runs read just before and
    // just after it, and only when those two agree.
    type Move = { shardIds: number[]; from: string; to: string };
    const dryRun = async () =>
      (await json("/v1/rebalance", { method: "POST", body: JSON.stringify({ dryRun: true }) })).body.moves as Move[];
    const read: { dry: Move[]; plan?: pg.QueryResult; onlyItems?: pg.QueryResult; picked?: pg.QueryResult } = {
      dry: [],
    };
    await within(60_000, "two dry runs that agree around the SQL plans", async () => {
      await noJobRunning();
      read.dry = await dryRun();
      read.plan = await herd.query("SELECT * FROM get_rebalance_table_shards_plan()");
      read.onlyItems = await herd.query("SELECT * FROM get_rebalance_table_shards_plan('order_items')");
      // a query over the plan's rows (the plan is computed once, then filtered on the coordinator)
      read.picked = await herd.query(
        "SELECT shardid FROM get_rebalance_table_shards_plan() WHERE sourceport > 0 AND shardid > 0 ORDER BY shardid",
      );
      return JSON.stringify(await dryRun()) === JSON.stringify(read.dry);
    });
    const { dry, plan, onlyItems, picked } = read as Required<typeof read>;
    expect(plan.fields.map((field) => field.name)).toEqual([
      "table_name",
      "shardid",
      "shard_size",
      "sourcename",
      "sourceport",
      "targetname",
      "targetport",
    ]);
    // one row per shard moved: orders' and order_items' shards of each planned move
    expect(plan.rows.map((row) => Number(row.shardid)).sort()).toEqual(dry.flatMap((move) => move.shardIds).sort());
    expect(onlyItems.rows.every((row) => row.table_name === "order_items")).toBe(true);
    expect(picked.rows.map((row) => Number(row.shardid))).toEqual(
      plan.rows.map((row) => Number(row.shardid)).sort((a, b) => a - b),
    );
    expect(onlyItems.rows).toHaveLength(dry.length);
    const status = await herd.query<{
      job_id: string;
      state: string;
      job_type: string;
      details: { moves_done: number };
    }>("SELECT job_id, state, job_type, details FROM citus_rebalance_status()");
    const latest = ((await json("/v1/jobs")).body.jobs as { id: number; kind: string; movesDone: number }[]).find(
      (job) => job.kind === "rebalance",
    );
    // (the first test's job, at least, when the file runs whole)
    expect(status.rows).toEqual(
      latest
        ? [
            {
              job_id: String(latest.id),
              state: "finished",
              job_type: "rebalance",
              details: expect.objectContaining({ moves_done: latest.movesDone }),
            },
          ]
        : [],
    );
    const wrongForm = await answer(herd, "SELECT get_rebalance_table_shards_plan()");
    expect(wrongForm).toMatchObject({ error: { code: "0A000" } });
  });

  it("shows shards and rebalances from the CLI: herd shards, herd rebalance --dry-run, herd rebalance", async () => {
    const shards = await herdCli("shards", "--table", "orders");
    expect(shards.code, shards.stdout).toBe(0);
    const lines = shards.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^SHARD\s+TABLE\s+RANGE\s+PLACEMENTS$/);
    expect(lines.slice(1)).toHaveLength(8);
    expect(lines[1]).toMatch(/public\.orders\s+-2147483648 … -1610612737\s+herd-\d+ \d+ kB, herd-\d+ \d+ kB/);
    // the drained worker left an uneven spread behind, or none: either way the job ends done
    const plan = await herdCli("rebalance", "--dry-run");
    expect(plan.code, plan.stdout).toBe(0);
    // (an automatic rebalance after the drain may be under way or about to start: one job at a time)
    await settled();
    const rebalance = await herdCli("rebalance");
    expect(rebalance.code, rebalance.stdout).toBe(0);
    expect(rebalance.stdout).toMatch(/rebalance job \d+ done/);
    expect((await herdCli("drain", "herd-99")).stdout).toContain("no worker node is called herd-99");
  });

  it("rebalances through SQL: citus_rebalance_start and citus_rebalance_wait", async () => {
    await settled();
    const started = await herd.query<{ citus_rebalance_start: string }>("SELECT citus_rebalance_start()");
    expect(Number(started.rows[0]?.citus_rebalance_start)).toBeGreaterThan(0);
    await herd.query("SELECT citus_rebalance_wait()");
    const job = (await json(`/v1/jobs/${started.rows[0]?.citus_rebalance_start}`)).body as { state: string };
    expect(job.state).toBe("done");
    for (const perNode of (await spread()).values()) {
      const counts = [...perNode.values()];
      expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
    }
  });
});
