import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useHerdCluster } from "../helpers/herd-up.js";
import { herdClient, serverClient } from "./fault-kit.js";

// Distributed deadlocks: two transactions that lock rows on different workers in opposite
// orders wait for each other. herd takes every write lock (and the locks of SELECT … FOR UPDATE
// in a block) on the coordinator first, so the wait is one PostgreSQL sees whole: its deadlock
// detector cancels one of them with 40P01 (after deadlock_timeout, 1 s) and the other commits.
// A cycle that also passes through waits on a worker (here a session connected to the worker
// directly) is found by herd's own detector (transaction/deadlock-detector.ts).
const herdUp = useHerdCluster("deadlocks", { workers: 3 });
let herd: pg.Client;
/** Two accounts whose shards are on different sets of workers. */
let pair: [number, number];

beforeAll(async () => {
  herd = await herdClient(herdUp.cluster);
  await herd.query("CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)");
  await herd.query("INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, 200) g");
  await herd.query("SELECT create_distributed_table('accounts', 'id')");
  const workersOf = async (id: number) => {
    const shard = await herd.query("SELECT get_shard_id_for_distribution_column('accounts', $1) AS s", [id]);
    const { rows } = await herd.query<{ nodeport: number }>(
      "SELECT nodeport FROM citus_shards WHERE shardid = $1 ORDER BY nodeport",
      [shard.rows[0].s],
    );
    return rows.map((row) => row.nodeport).join(",");
  };
  const first = await workersOf(1);
  for (let id = 2; ; id += 1) {
    if ((await workersOf(id)) !== first) {
      pair = [1, id];
      break;
    }
  }
});

afterAll(async () => {
  await herd?.end();
});

/** Runs the two transactions crosswise: each locks its first row, then the other's. */
async function crosswise(first: string, second: string): Promise<{ outcomes: string[]; ms: number }> {
  const [a, b] = await Promise.all([herdClient(herdUp.cluster), herdClient(herdUp.cluster)]);
  try {
    const [x, y] = pair;
    await a.query("BEGIN");
    await b.query("BEGIN");
    await a.query(first, [x]);
    await b.query(first, [y]);
    const started = Date.now();
    const outcomes = await Promise.all(
      [
        [a, y],
        [b, x],
      ].map(async ([client, id]) => {
        const c = client as pg.Client;
        try {
          await c.query(second, [id]);
          await c.query("COMMIT");
          return "committed";
        } catch (error) {
          await c.query("ROLLBACK");
          return (error as { code?: string }).code ?? String(error);
        }
      }),
    );
    return { outcomes: outcomes.sort(), ms: Date.now() - started };
  } finally {
    await Promise.all([a.end(), b.end()]);
  }
}

describe("two transactions locking rows on two workers in opposite order", () => {
  it("UPDATEs: one gets 40P01 within seconds, the other commits", async () => {
    const before = await herd.query("SELECT sum(balance)::int AS total FROM accounts");
    const { outcomes, ms } = await crosswise(
      "UPDATE accounts SET balance = balance - 10 WHERE id = $1",
      "UPDATE accounts SET balance = balance + 10 WHERE id = $1",
    );
    expect(outcomes).toEqual(["40P01", "committed"]);
    expect(ms).toBeLessThan(3_000);
    // the committed transfer moved money, the other nothing
    expect((await herd.query("SELECT sum(balance)::int AS total FROM accounts")).rows).toEqual(before.rows);
  });

  it("SELECT … FOR UPDATE: one gets 40P01 within seconds, the other commits", async () => {
    const { outcomes, ms } = await crosswise(
      "SELECT balance FROM accounts WHERE id = $1 FOR UPDATE",
      "SELECT balance FROM accounts WHERE id = $1 FOR UPDATE",
    );
    expect(outcomes).toEqual(["40P01", "committed"]);
    expect(ms).toBeLessThan(3_000);
  });

  it("a row lock and an UPDATE: one gets 40P01 within seconds, the other commits", async () => {
    const { outcomes, ms } = await crosswise(
      "SELECT balance FROM accounts WHERE id = $1 FOR UPDATE",
      "UPDATE accounts SET balance = balance WHERE id = $1",
    );
    expect(outcomes).toEqual(["40P01", "committed"]);
    expect(ms).toBeLessThan(3_000);
  });
});

describe("a deadlock no single server sees", () => {
  it("T1 waits for a worker session, that session for T2, T2 for T1 on the coordinator: T2 gets 40P01, the rest commit", async () => {
    // the cycle: T1 →(worker W, row a) D →(worker W, row c) T2 →(coordinator, value b) T1.
    // W sees T1 → D → T2 (T2 waits elsewhere), the coordinator T2 → T1: neither finds a cycle.
    const { rows } = await herd.query<{ nodeport: number; shardid: string }>(
      "SELECT nodeport, shardid FROM citus_shards WHERE table_name = 'accounts'::regclass ORDER BY shardid, nodeport",
    );
    const port = rows[0]?.nodeport as number;
    const ordinal = port - herdUp.cluster.sqlPort - 1;
    const onW = new Set(rows.filter((row) => row.nodeport === port).map((row) => row.shardid));
    const shardOf = async (id: number) =>
      String((await herd.query("SELECT get_shard_id_for_distribution_column('accounts', $1) AS s", [id])).rows[0].s);
    const ids: number[] = [];
    for (let id = 20; ids.length < 2; id += 1) if (onW.has(await shardOf(id))) ids.push(id);
    const [a, c] = ids as [number, number];
    const b = 300;
    await herd.query("INSERT INTO accounts VALUES ($1, 1000) ON CONFLICT DO NOTHING", [b]);
    const shardTable = async (id: number) => `accounts_${await shardOf(id)}`;
    const balancesOf = async () => {
      const found = await herd.query("SELECT id, balance FROM accounts WHERE id = ANY($1)", [[a, b, c]]);
      return Object.fromEntries(found.rows.map((row) => [row.id as number, row.balance as number]));
    };
    const before = await balancesOf();
    const [direct, t1, t2] = await Promise.all([
      serverClient(herdUp.cluster, ordinal),
      herdClient(herdUp.cluster),
      herdClient(herdUp.cluster),
    ]);
    try {
      await direct.query("BEGIN");
      await direct.query(`UPDATE ${await shardTable(a)} SET balance = balance WHERE id = $1`, [a]);
      await t1.query("BEGIN");
      await t1.query("UPDATE accounts SET balance = balance - 1 WHERE id = $1", [b]);
      await t2.query("BEGIN");
      await t2.query("UPDATE accounts SET balance = balance - 1 WHERE id = $1", [c]);
      const settle = (client: pg.Client, sql: string, params: unknown[]) =>
        client.query(sql, params).then(
          () => "done",
          (error: { code?: string }) => error.code ?? String(error),
        );
      const started = Date.now();
      const first = settle(t1, "UPDATE accounts SET balance = balance + 1 WHERE id = $1", [a]);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const bridge = settle(direct, `UPDATE ${await shardTable(c)} SET balance = balance WHERE id = $1`, [c]);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const second = await settle(t2, "UPDATE accounts SET balance = balance + 1 WHERE id = $1", [b]);
      expect(second).toBe("40P01");
      expect(Date.now() - started).toBeLessThan(10_000);
      await t2.query("ROLLBACK");
      expect(await bridge).toBe("done");
      await direct.query("COMMIT");
      expect(await first).toBe("done");
      await t1.query("COMMIT");
      // T1 moved one from b to a; T2's change of c is gone with it. (Read in T1's session: its
      // COMMIT PREPAREDs may still be on their way to the workers, and a session reads its own
      // writes; another session may see them a moment later.)
      const found = await t1.query("SELECT id, balance FROM accounts WHERE id = ANY($1)", [[a, b, c]]);
      const after = Object.fromEntries(found.rows.map((row) => [row.id as number, row.balance as number]));
      expect(after).toEqual({ ...before, [a]: (before[a] as number) + 1, [b]: (before[b] as number) - 1 });
    } finally {
      await Promise.all([direct.end(), t1.end(), t2.end()]);
    }
  });
});

describe("many writers on one row", () => {
  it("serialise: 8 clients, 40 increments each, in and out of blocks, none lost, none stuck", async () => {
    await herd.query("UPDATE accounts SET balance = 0 WHERE id = 7");
    const clients = await Promise.all(Array.from({ length: 8 }, () => herdClient(herdUp.cluster)));
    const started = Date.now();
    await Promise.all(
      clients.map(async (client, i) => {
        for (let n = 0; n < 40; n += 1) {
          if ((i + n) % 2 === 0) {
            await client.query("BEGIN");
            await client.query("SELECT balance FROM accounts WHERE id = 7");
            await client.query("UPDATE accounts SET balance = balance + 1 WHERE id = 7");
            await client.query("COMMIT");
          } else await client.query("UPDATE accounts SET balance = balance + 1 WHERE id = 7");
        }
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    await Promise.all(clients.map((client) => client.end()));
    expect((await herd.query("SELECT balance FROM accounts WHERE id = 7")).rows).toEqual([{ balance: 320 }]);
    expect(seconds).toBeLessThan(60);
  });
});
