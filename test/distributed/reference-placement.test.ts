import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { botOf, herdClient, onServer, serverClient, serverPort, within } from "../faults/fault-kit.js";
import { answer } from "../helpers/differential.js";
import { useHerdCluster } from "../helpers/herd-up.js";

// A query that joins a shard with a reference table runs on one worker, which must hold both. A
// worker that joins gets every reference table from a background pass, but that pass waits while a
// rebalance job runs: CI once saw a rebalance move shards onto two new workers before they had the
// reference table, and joins answered 42P01 "relation regions does not exist". Here that moment is
// made on purpose and held: the background pass is parked on a lock of herd.jobs (its first read),
// and one worker's copy of the reference table is forgotten (its placement row deleted, its table
// dropped), as on a worker that has just joined.
const herdUp = useHerdCluster("reference-placement", { workers: 3, env: { HERD_AUTO_REBALANCE: "off" } });
let herd: pg.Client;
/** Holds herd.jobs locked while a test runs, so the background pass cannot copy reference tables. */
let jobsLock: pg.Client | undefined;
const JOIN =
  "SELECT r.name, count(*), sum(o.total) FROM orders o JOIN regions r ON r.code = o.region GROUP BY 1 ORDER BY 1";
let expected: unknown;

interface Placement {
  shardid: string;
  nodename: string;
  nodeport: number;
}

/** Active placements (citus_shards lists a moved shard's old one too, as shardstate 4, until it is dropped). */
const placementsOf = async (table: string) =>
  (
    await herd.query<Placement>(
      "SELECT shardid::text, nodename, nodeport FROM citus_shards WHERE table_name = $1::regclass AND shardstate = 1 ORDER BY shardid, nodeport",
      [table],
    )
  ).rows;

/** The ordinal of the worker whose PostgreSQL listens on `port`. */
const ordinalOf = (port: number) => {
  for (let ordinal = 1; ordinal <= 3; ordinal++) if (serverPort(herdUp.cluster, ordinal) === port) return ordinal;
  throw new Error(`no worker listens on ${port}`);
};

/** Parks the job runner's background pass on its first read, and waits until it is parked. */
async function holdBackgroundPass(): Promise<void> {
  await releaseBackgroundPass();
  jobsLock = await serverClient(herdUp.cluster, 0);
  jobsLock.on("error", () => {});
  await jobsLock.query("BEGIN");
  await jobsLock.query("LOCK TABLE herd.jobs IN ACCESS EXCLUSIVE MODE");
  await within(20_000, "the background pass waits on herd.jobs", async () => {
    const waiting = await onServer(
      herdUp.cluster,
      0,
      "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%FROM herd.jobs%'",
    );
    return waiting.length > 0;
  });
}

/**
 * Lets the background pass go on: the lock's session ends (never a ROLLBACK queued behind a LOCK
 * that may still wait, which would hang this file's afterAll and leave its cluster running).
 */
async function releaseBackgroundPass(): Promise<void> {
  const held = jobsLock;
  jobsLock = undefined;
  await held?.end().catch(() => {});
}

/** The worker on `port` loses its copy of regions, as a worker that has just joined has none. */
async function forgetReferenceCopy(port: number): Promise<void> {
  const [regions] = await placementsOf("regions");
  const shard = (regions as Placement).shardid;
  await onServer(
    herdUp.cluster,
    0,
    "DELETE FROM herd.placements p USING herd.nodes n WHERE p.node_id = n.id AND n.port = $1 AND p.shard_id = $2",
    [port, shard],
  );
  await onServer(herdUp.cluster, ordinalOf(port), `DROP TABLE public.regions_${Number(shard)}`);
  await within(10_000, "the coordinator knows the copy is gone", async () => {
    const ports = (await placementsOf("regions")).map((p) => p.nodeport);
    return !ports.includes(port);
  });
}

/** The background pass held, and the last worker holding orders without its copy of regions. */
async function bareWorker(): Promise<{ target: number; orders: Placement[] }> {
  await holdBackgroundPass();
  const orders = await placementsOf("orders");
  const target = (orders.at(-1) as Placement).nodeport;
  await forgetReferenceCopy(target);
  return { target, orders };
}

const MOVE = "SELECT citus_move_shard_placement($1, $2, $3, $4, $5)";
/** citus_move_shard_placement's arguments: `moved` onto the worker on port `target`. */
const moveArgs = (moved: Placement, target: number) => [
  moved.shardid,
  moved.nodename,
  moved.nodeport,
  moved.nodename,
  target,
];

/** A session of the coordinator once it answers again (herd up restarts a killed one). */
async function reconnect(): Promise<pg.Client> {
  let client: pg.Client | undefined;
  await within(60_000, "the coordinator is back", async () => {
    const next = await herdClient(herdUp.cluster).catch(() => undefined);
    if (!next) return false;
    next.on("error", () => {});
    const answers = await next.query("SELECT 1").then(
      () => true,
      () => false,
    );
    if (answers) client = next;
    else await next.end().catch(() => {});
    return answers;
  });
  return client as pg.Client;
}

beforeAll(async () => {
  herd = await herdClient(herdUp.cluster);
  for (const sql of [
    "CREATE TABLE regions (code text PRIMARY KEY, name text)",
    "INSERT INTO regions VALUES ('eu', 'Europe'), ('us', 'Americas'), ('ap', 'Asia')",
    "SELECT create_reference_table('regions')",
    "CREATE TABLE orders (id int PRIMARY KEY, region text, total numeric)",
    "INSERT INTO orders SELECT i, (ARRAY['eu','us','ap'])[1 + i % 3], i FROM generate_series(1, 600) i",
    "SET citus.shard_replication_factor = 1",
    "SELECT create_distributed_table('orders', 'id', shard_count => 6)",
  ])
    await herd.query(sql);
  expected = await answer(herd, JOIN);
  expect(expected).toMatchObject({
    rows: [
      ["Americas", "200", "59900"],
      ["Asia", "200", "60100"],
      ["Europe", "200", "60300"],
    ],
  });
}, 120_000);

afterAll(async () => {
  await releaseBackgroundPass();
  await herd?.end().catch(() => {});
});

describe("a worker without a reference table", () => {
  it("gets it before a shard is moved there, and the joins routed to it answer", async () => {
    const { target, orders } = await bareWorker();
    const moved = orders.find((p) => p.nodeport !== target) as Placement;
    await herd.query(MOVE, moveArgs(moved, target));
    // the move copied regions first (the background pass is still parked)
    expect((await placementsOf("regions")).map((p) => p.nodeport)).toContain(target);
    const regionsShard = Number((await placementsOf("regions"))[0]?.shardid);
    const onTarget = await onServer(
      herdUp.cluster,
      ordinalOf(target),
      `SELECT count(*)::int AS n FROM regions_${regionsShard}`,
    );
    expect(onTarget).toEqual([{ n: 3 }]);
    expect(await answer(herd, JOIN)).toEqual(expected);
    // and every routed join, shard by shard
    for (const id of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) {
      const routed = await answer(
        herd,
        "SELECT r.name FROM orders o JOIN regions r ON r.code = o.region WHERE o.id = $1",
        [id],
      );
      expect(routed).toMatchObject({ rows: [[["Europe", "Americas", "Asia"][id % 3]]] });
    }
  });

  it("refuses a routed join with a clear error rather than ask a worker that lacks the table", async () => {
    const orders = await placementsOf("orders");
    const port = (orders[0] as Placement).nodeport;
    await forgetReferenceCopy(port);
    // an order whose shard lives on that worker (replication factor 1: nowhere else)
    const ids = await herd.query<{ id: number }>("SELECT id FROM orders ORDER BY id");
    let onIt: number | undefined;
    for (const { id } of ids.rows) {
      const { rows } = await herd.query<{ shardid: string }>(
        "SELECT get_shard_id_for_distribution_column('orders', $1::int)::text AS shardid",
        [id],
      );
      if (orders.some((p) => p.shardid === rows[0]?.shardid && p.nodeport === port)) {
        onIt = id;
        break;
      }
    }
    expect(onIt).toBeDefined();
    const routed = await answer(
      herd,
      "SELECT r.name FROM orders o JOIN regions r ON r.code = o.region WHERE o.id = $1",
      [onIt],
    );
    expect(routed).toMatchObject({
      error: {
        code: "55000",
        message: expect.stringMatching(/^no worker holds shard \d+ together with an active copy of public\.regions$/),
      },
    });
    // reads of orders alone still answer there
    expect(await answer(herd, "SELECT id FROM orders WHERE id = $1", [onIt])).toMatchObject({ rows: [[String(onIt)]] });
    // once the background pass runs again, the worker gets its copy back and the join answers
    await releaseBackgroundPass();
    await within(30_000, "the background pass copies regions back", async () =>
      (await placementsOf("regions")).some((p) => p.nodeport === port),
    );
    // (with several coordinator processes, the session's learns of the copy by NOTIFY, a moment later)
    await within(10_000, "the join answers again", async () => {
      const joined = await answer(herd, JOIN);
      return JSON.stringify(joined) === JSON.stringify(expected);
    });
  });

  it("gets it once when two clients move shards onto it at the same time", async () => {
    await holdBackgroundPass();
    const orders = await placementsOf("orders");
    const target = (orders[0] as Placement).nodeport;
    const [first, second] = orders.filter((p) => p.nodeport !== target);
    await forgetReferenceCopy(target);
    const clients = [await herdClient(herdUp.cluster), await herdClient(herdUp.cluster)];
    try {
      const moves = [first, second].map((moved, i) =>
        answer(clients[i] as pg.Client, MOVE, moveArgs(moved as Placement, target)),
      );
      for (const moved of await Promise.all(moves)) expect(moved).toMatchObject({ command: "SELECT 1" });
    } finally {
      await Promise.all(clients.map((client) => client.end()));
    }
    expect((await placementsOf("regions")).filter((p) => p.nodeport === target)).toHaveLength(1);
    const moved = (await placementsOf("orders")).filter((p) => p.nodeport === target).map((p) => p.shardid);
    expect(moved).toEqual(expect.arrayContaining([first?.shardid, second?.shardid]));
    expect(await answer(herd, JOIN)).toEqual(expected);
    await releaseBackgroundPass();
  });

  it("a coordinator killed while it copies the reference table for a move leaves neither half done", async () => {
    const { target, orders } = await bareWorker();
    const moved = orders.find((p) => p.nodeport !== target) as Placement;
    // the copy waits for the reference shard group's write lock, held here
    const groupLock = await serverClient(herdUp.cluster, 0);
    groupLock.on("error", () => {});
    await groupLock.query("BEGIN");
    await groupLock.query(
      `SELECT herd.lock_shards(ARRAY(SELECT t.colocation_id::bigint * 65536 FROM herd.distributed_tables t
                                      WHERE t.relation = 'regions'::regclass), '{}', '{}')`,
    );
    const mover = await herdClient(herdUp.cluster);
    mover.on("error", () => {});
    const moving = answer(mover, MOVE, moveArgs(moved, target));
    await within(20_000, "the reference copy waits for its lock", async () => {
      const waiting = await onServer(
        herdUp.cluster,
        0,
        "SELECT 1 FROM pg_stat_activity WHERE wait_event = 'advisory' AND query LIKE '%herd.lock_shards%'",
      );
      return waiting.length > 0;
    });
    herd.on("error", () => {});
    process.kill(await botOf(herdUp.cluster, 0), "SIGKILL");
    expect(await moving).toMatchObject({ error: {} });
    await groupLock.end().catch(() => {});
    await releaseBackgroundPass();
    await mover.end().catch(() => {});
    await herd.end().catch(() => {});
    herd = await reconnect();
    // the shard is where it was, no move is recorded, and the target holds nothing of it
    expect((await placementsOf("orders")).filter((p) => p.shardid === moved.shardid).map((p) => p.nodeport)).toEqual([
      moved.nodeport,
    ]);
    expect((await herd.query("SELECT id FROM herd.shard_moves WHERE state = 'copying'")).rows).toEqual([]);
    const shardTable = `orders_${Number(moved.shardid)}`;
    expect(
      await onServer(herdUp.cluster, ordinalOf(target), "SELECT 1 FROM pg_class WHERE relname = $1", [shardTable]),
    ).toEqual([]);
    // a regions copy on the target is there whole or not at all (the restarted pass may have made it)
    const regionsShard = Number((await placementsOf("regions"))[0]?.shardid);
    const onTarget = await onServer<{ n: number }>(
      herdUp.cluster,
      ordinalOf(target),
      "SELECT count(*)::int AS n FROM pg_class WHERE relname = $1",
      [`regions_${regionsShard}`],
    );
    const listed = (await placementsOf("regions")).some((p) => p.nodeport === target);
    expect(onTarget).toEqual([{ n: listed ? 1 : 0 }]);
    // asked again, it moves, and the joins answer
    const again = await answer(herd, MOVE, moveArgs(moved, target));
    expect(again).toMatchObject({ command: "SELECT 1" });
    expect(await answer(herd, JOIN)).toEqual(expected);
  });

  it("gets it before create_distributed_table puts shards there, with foreign keys to it", async () => {
    const { target: port } = await bareWorker();
    for (const sql of [
      "CREATE TABLE shipments (id int PRIMARY KEY, region text REFERENCES regions (code))",
      "SELECT create_distributed_table('shipments', 'id', shard_count => 6)",
      "INSERT INTO shipments SELECT i, (ARRAY['eu','us','ap'])[1 + i % 3] FROM generate_series(1, 300) i",
    ])
      expect(await answer(herd, sql)).not.toHaveProperty("error");
    // shards on every worker (that one too), and regions there before them
    expect(new Set((await placementsOf("shipments")).map((p) => p.nodeport))).toContain(port);
    expect((await placementsOf("regions")).map((p) => p.nodeport)).toContain(port);
    expect(
      await answer(
        herd,
        "SELECT r.name, count(*) FROM shipments s JOIN regions r ON r.code = s.region GROUP BY 1 ORDER BY 1",
      ),
    ).toMatchObject({
      rows: [
        ["Americas", "100"],
        ["Asia", "100"],
        ["Europe", "100"],
      ],
    });
    // the foreign key holds on each shard's worker
    expect(await answer(herd, "INSERT INTO shipments VALUES (1000, 'xx')")).toMatchObject({ error: { code: "23503" } });
    // (its foreign keys would hold the next test's forgotten copy of regions)
    await herd.query("DROP TABLE shipments");
    await releaseBackgroundPass();
  });

  it("gets it at once from replicate_reference_tables(), which refuses to run inside a transaction block", async () => {
    const { target: port } = await bareWorker();
    await herd.query("BEGIN");
    expect(await answer(herd, "SELECT replicate_reference_tables()")).toMatchObject({ error: { code: "25001" } });
    await herd.query("ROLLBACK");
    expect((await placementsOf("regions")).map((p) => p.nodeport)).not.toContain(port);
    const replicated = await answer(herd, "SELECT replicate_reference_tables()");
    expect(replicated).toMatchObject({ rows: [[""]], command: "SELECT 1" });
    expect((await placementsOf("regions")).map((p) => p.nodeport).sort()).toEqual(
      [1, 2, 3].map((ordinal) => serverPort(herdUp.cluster, ordinal)).sort(),
    );
    expect(await answer(herd, JOIN)).toEqual(expected);
    // nothing left to give: a second call copies nothing and says the same
    expect(await answer(herd, "SELECT replicate_reference_tables()")).toEqual(replicated);
  });
});
