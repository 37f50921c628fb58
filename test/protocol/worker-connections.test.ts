import type pg from "pg";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { herdClient, keyOf, onServer, sendCancel, within } from "../faults/fault-kit.js";
import { useHerdCluster } from "../helpers/herd-up.js";

// Client sessions share a capped number of connections to each worker (connection/worker-pool.ts):
// HERD_WORKER_CONNECTIONS=2 here, one coordinator process, two workers, every shard on both.
// A session that holds no worker connection waits for room; one that holds any (a transaction
// block, the first connection of a statement) never waits, so blocks that reach both workers
// cannot deadlock on each other's connections. Clients run as their own role, so the count on
// the workers is theirs alone (herd's own work logs in as postgres).
const CAP = 2;
const WORKERS = 2;
const herdUp = useHerdCluster("worker-connections", {
  workers: WORKERS,
  env: { HERD_SQL_PROCESSES: "1", HERD_WORKER_CONNECTIONS: String(CAP) },
});
const ROLE = "pooled_app";
const ROLE_PASSWORD = "pooled-secret";
let admin: pg.Client;
const opened: pg.Client[] = [];

function appClient(): Promise<pg.Client> {
  return herdClient(herdUp.cluster, {
    user: ROLE,
    password: ROLE_PASSWORD,
    database: "postgres",
    application_name: "pooled",
  }).then((client) => {
    opened.push(client);
    return client;
  });
}

/** Connections the clients' role has open on worker `ordinal` (1, 2), as its PostgreSQL counts them. */
async function appConnections(ordinal: number): Promise<number> {
  const rows = await onServer<{ n: number }>(
    herdUp.cluster,
    ordinal,
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1 AND backend_type = 'client backend'",
    [ROLE],
  );
  return rows[0]?.n ?? 0;
}

/** Sessions worker `ordinal`'s PostgreSQL has begun so far, every role's (the one asking included). */
async function sessionsOn(ordinal: number): Promise<number> {
  const rows = await onServer<{ n: number }>(
    herdUp.cluster,
    ordinal,
    "SELECT sessions::int AS n FROM pg_stat_database WHERE datname = current_database()",
  );
  return rows[0]?.n ?? 0;
}

/** The most connections of the clients' role seen on any worker while `work` runs (sampled every 20 ms). */
async function mostConnectionsDuring(work: () => Promise<void>): Promise<number> {
  let most = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      for (let ordinal = 1; ordinal <= WORKERS; ordinal++) most = Math.max(most, await appConnections(ordinal));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  try {
    await work();
  } finally {
    sampling = false;
    await sampler;
  }
  return most;
}

/** Whether `promise` is still pending after `ms`. */
async function pendingAfter(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const marker = Symbol("pending");
  const first = await Promise.race([
    promise.then(
      () => "settled",
      () => "settled",
    ),
    new Promise((resolve) => setTimeout(() => resolve(marker), ms)),
  ]);
  return first === marker;
}

/** Two sessions in transaction blocks that wrote to both workers: every connection the cap allows is held. */
async function holdAll(): Promise<pg.Client[]> {
  const holders = [await appClient(), await appClient()];
  for (const [i, holder] of holders.entries()) {
    await holder.query("BEGIN");
    await holder.query("UPDATE accounts SET balance = balance WHERE id = $1", [i + 1]);
  }
  expect(await appConnections(1)).toBe(CAP);
  return holders;
}

beforeAll(async () => {
  admin = await herdClient(herdUp.cluster, { application_name: "pooled-admin" });
  await admin.query("CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)");
  await admin.query("SELECT create_distributed_table('accounts', 'id')");
  await admin.query("INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 60) g");
  await admin.query(`CREATE ROLE ${ROLE} LOGIN PASSWORD '${ROLE_PASSWORD}'`);
  await admin.query(`GRANT SELECT, UPDATE ON accounts TO ${ROLE}`);
  // roles reach the workers within seconds
  await within(30_000, "the role reaches the workers", async () => {
    const probe = await appClient();
    try {
      await probe.query("SELECT count(*) FROM accounts");
      return true;
    } finally {
      await probe.end();
    }
  });
}, 120_000);

// every test starts from 100 in each account, with no client of an earlier test left holding anything
beforeEach(async () => {
  await admin.query("UPDATE accounts SET balance = 100");
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((client) => client.end().catch(() => {})));
});

afterAll(async () => {
  await admin?.end().catch(() => {});
});

describe("worker connections capped per worker", () => {
  it("thirty clients writing and reading outside blocks stay within the cap's bound, answers exact", async () => {
    const clients = await Promise.all(Array.from({ length: 30 }, () => appClient()));
    const most = await mostConnectionsDuring(async () => {
      await Promise.all(
        clients.map(async (client, i) => {
          for (let round = 0; round < 4; round++) {
            const from = ((i + round) % 60) + 1;
            const to = ((i * 7 + round + 13) % 60) + 1;
            // a routed read, then two single-row writes (each on both placements, committed in two phases)
            await client.query("SELECT balance FROM accounts WHERE id = $1", [from]);
            await client.query("UPDATE accounts SET balance = balance - 1 WHERE id = $1", [from]);
            await client.query("UPDATE accounts SET balance = balance + 1 WHERE id = $1", [to]);
          }
        }),
      );
    });
    // sessions holding nothing enter only below the cap (2 per worker), and a write waits for room
    // on both its workers at once: the cap holds exactly (without the cap: one per client, 30;
    // when a write's first room let it past the cap on its second worker: up to CAP × WORKERS)
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(CAP);
    const { rows } = await admin.query("SELECT sum(balance)::int AS total, count(*)::int AS n FROM accounts");
    expect(rows[0]).toEqual({ total: 60 * 100, n: 60 });
    await Promise.all(clients.map((client) => client.end()));
  });

  it("keeps its connections while sessions queue for them: a statement does not open one", async () => {
    // A waiter granted room takes the connection the last one gave back. It opened a new one for
    // nearly every write while (a) room and connections were counted together — a connection given
    // back while granted room had not taken its own yet looked over the cap and was closed — and
    // (b) a write's first room let it past the cap on its other worker, where the connection
    // opened was closed on its way back: 1000 clients' single-row writes ran 7× slower than
    // without the cap (worker-pool.ts counts them apart, and reserves all of a write's room at once).
    const clients = await Promise.all(Array.from({ length: 30 }, () => appClient()));
    const before = await Promise.all([1, 2].map((ordinal) => sessionsOn(ordinal)));
    await Promise.all(
      clients.map(async (client, i) => {
        for (let round = 0; round < 4; round++) {
          const id = ((i + round * 30) % 60) + 1;
          await client.query("SELECT balance FROM accounts WHERE id = $1", [id]);
          await client.query("UPDATE accounts SET balance = balance - 1 WHERE id = $1", [id]);
          await client.query("UPDATE accounts SET balance = balance + 1 WHERE id = $1", [id]);
        }
      }),
    );
    const after = await Promise.all([1, 2].map((ordinal) => sessionsOn(ordinal)));
    // 240 writes and 120 reads: a handful of connections anew per worker, not one per write (the
    // old code: 241). Besides the cap's own, herd's own work (recovery, role sync) logs in as
    // postgres, and at a cap of 2 each of its passes swaps an idle connection of the other role for
    // its own and back (6 seen once on a loaded CI run); this test's probe counts one too.
    for (const [i, count] of after.entries()) expect(count - (before[i] as number) - 1).toBeLessThanOrEqual(12);
    const { rows } = await admin.query("SELECT sum(balance)::int AS total FROM accounts");
    expect(rows[0]).toEqual({ total: 60 * 100 });
  });

  it("thirty clients moving money in blocks across both workers never wait on each other (no deadlock)", async () => {
    // a session in a block may hold row locks others wait for: it never waits for room itself
    // (the cap is exceeded instead), or a lock wait and a room wait could close a cycle nobody sees
    const clients = await Promise.all(Array.from({ length: 30 }, () => appClient()));
    await Promise.all(
      clients.map(async (client, i) => {
        for (let round = 0; round < 4; round++) {
          const from = ((i + round) % 60) + 1;
          const to = ((i * 7 + round + 13) % 60) + 1;
          await client.query("BEGIN");
          await client.query("UPDATE accounts SET balance = balance - 1 WHERE id = $1", [from]);
          await client.query("UPDATE accounts SET balance = balance + 1 WHERE id = $1", [to]);
          await client.query("COMMIT");
        }
      }),
    );
    const { rows } = await admin.query("SELECT sum(balance)::int AS total, count(*)::int AS n FROM accounts");
    expect(rows[0]).toEqual({ total: 60 * 100, n: 60 });
    await Promise.all(clients.map((client) => client.end()));
  }, 120_000);

  it("multi-shard reads and routed reads of twenty clients answer exactly within the bound", async () => {
    const clients = await Promise.all(Array.from({ length: 20 }, () => appClient()));
    const answers: unknown[] = [];
    const most = await mostConnectionsDuring(async () => {
      await Promise.all(
        clients.map(async (client, i) => {
          for (let round = 0; round < 3; round++) {
            const all = await client.query("SELECT count(*)::int AS n, sum(balance)::int AS total FROM accounts");
            const one = await client.query("SELECT id FROM accounts WHERE id = $1", [(i % 60) + 1]);
            answers.push([all.rows[0], one.rows[0].id === (i % 60) + 1]);
          }
        }),
      );
    });
    expect(answers).toEqual(Array.from({ length: 60 }, () => [{ n: 60, total: 6000 }, true]));
    // a multi-shard read spreads its shards over two connections per worker (HERD_SHARD_CONNECTIONS)
    expect(most).toBeLessThanOrEqual(CAP * WORKERS * 2);
    await Promise.all(clients.map((client) => client.end()));
  });

  it("a session holding nothing waits while the cap is held, and goes on once a block ends", async () => {
    const holders = await holdAll();
    const waiter = await appClient();
    const waiting = waiter.query("SELECT balance FROM accounts WHERE id = 30");
    expect(await pendingAfter(waiting, 1000)).toBe(true);
    // statements on the coordinator alone are not held up meanwhile, nor is a new block
    const other = await appClient();
    expect((await other.query("SELECT 1 + 1 AS two")).rows).toEqual([{ two: 2 }]);
    await other.query("BEGIN");
    expect((await other.query("SELECT balance FROM accounts WHERE id = 29")).rows).toEqual([{ balance: 100 }]);
    await other.query("COMMIT");
    await holders[0]?.query("COMMIT");
    expect((await waiting).rows).toEqual([{ balance: 100 }]);
    await holders[1]?.query("ROLLBACK");
    await Promise.all([...holders, waiter, other].map((client) => client.end()));
  });

  it("a session in a block reaches the next worker while others wait (no hold-and-wait)", async () => {
    const holders = await holdAll();
    const waiter = await appClient();
    const waiting = waiter.query("UPDATE accounts SET balance = balance WHERE id = 40");
    expect(await pendingAfter(waiting, 500)).toBe(true);
    // the holders go on, to any shard and worker, although the cap is reached
    for (const [i, holder] of holders.entries()) {
      await holder.query("UPDATE accounts SET balance = balance + 5 WHERE id = $1", [50 + i]);
      await holder.query("UPDATE accounts SET balance = balance - 5 WHERE id = $1", [50 + i]);
      expect((await holder.query("SELECT count(*)::int AS n FROM accounts")).rows).toEqual([{ n: 60 }]);
    }
    await Promise.all(holders.map((holder) => holder.query("COMMIT")));
    expect((await waiting).command).toBe("UPDATE");
    await Promise.all([...holders, waiter].map((client) => client.end()));
  });

  it("a CancelRequest ends the wait with 57014 and the session goes on", async () => {
    const holders = await holdAll();
    const waiter = await appClient();
    const waiting = waiter.query("SELECT balance FROM accounts WHERE id = 31").then(
      () => undefined,
      (error: { code?: string }) => error,
    );
    expect(await pendingAfter(waiting, 500)).toBe(true);
    const { processId, secretKey } = keyOf(waiter);
    await sendCancel(herdUp.cluster.sqlPort, processId, secretKey);
    expect(await waiting).toMatchObject({ code: "57014" });
    await Promise.all(holders.map((holder) => holder.query("ROLLBACK")));
    expect((await waiter.query("SELECT balance FROM accounts WHERE id = 31")).rows).toEqual([{ balance: 100 }]);
    await Promise.all([...holders, waiter].map((client) => client.end()));
  });

  it("the session's statement_timeout ends a wait for room with 57014, a write's as well as a read's", async () => {
    const holders = await holdAll();
    const waiter = await appClient();
    await waiter.query("SET statement_timeout = '400ms'");
    for (const sql of [
      "SELECT balance FROM accounts WHERE id = 33",
      "UPDATE accounts SET balance = balance + 1 WHERE id = 33",
    ]) {
      const started = Date.now();
      const refused = await waiter.query(sql).then(
        () => undefined,
        (error: { code?: string; message?: string }) => error,
      );
      expect(refused).toMatchObject({ code: "57014", message: "canceling statement due to statement timeout" });
      // (not the 120 s limit's 53300: the statement's own timeout)
      expect(Date.now() - started).toBeGreaterThanOrEqual(350);
      expect(Date.now() - started).toBeLessThan(10_000);
    }
    await Promise.all(holders.map((holder) => holder.query("ROLLBACK")));
    // nothing was written, and the session goes on with its timeout
    expect((await waiter.query("UPDATE accounts SET balance = balance + 1 WHERE id = 33")).rowCount).toBe(1);
    expect((await waiter.query("SELECT balance FROM accounts WHERE id = 33")).rows).toEqual([{ balance: 101 }]);
    await Promise.all([...holders, waiter].map((client) => client.end()));
  });

  it("clients that disconnect while waiting or holding leave the cap whole", async () => {
    const holders = await holdAll();
    const leavers = [await appClient(), await appClient()];
    for (const leaver of leavers) {
      leaver.query("SELECT balance FROM accounts WHERE id = 32").catch(() => {});
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    // one waiter and one holder (mid-transaction) go away without a word
    for (const client of [leavers[0], holders[0]]) {
      client?.on("error", () => {});
      (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    }
    await holders[1]?.query("COMMIT");
    // both slots are free again: two new sessions hold a block each, at once
    const fresh = await holdAll();
    await Promise.all(fresh.map((client) => client.query("COMMIT")));
    expect((await leavers[1]?.query("SELECT balance FROM accounts WHERE id = 32"))?.rows).toEqual([{ balance: 100 }]);
    await within(10_000, "the disconnected holder's transaction is gone", async () => (await appConnections(1)) <= CAP);
    await Promise.all([holders[1], leavers[1], ...fresh].map((client) => client?.end()));
  });

  it("holders whose worker connections are killed free their room once their blocks end", async () => {
    const holders = await holdAll();
    const waiter = await appClient();
    const waiting = waiter.query("SELECT balance FROM accounts WHERE id = 33");
    expect(await pendingAfter(waiting, 500)).toBe(true);
    // an operator's pg_terminate_backend of the holders' connections, on both workers
    for (let ordinal = 1; ordinal <= WORKERS; ordinal++) {
      await onServer(
        herdUp.cluster,
        ordinal,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND state = 'idle in transaction'",
        [ROLE],
      );
    }
    for (const [i, holder] of holders.entries()) {
      // (each its own row, which it locked already)
      await expect(holder.query("UPDATE accounts SET balance = balance + 1 WHERE id = $1", [i + 1])).rejects.toThrow();
      await holder.query("ROLLBACK");
    }
    expect((await waiting).rows).toEqual([{ balance: 100 }]);
    const { rows } = await admin.query("SELECT sum(balance)::int AS total FROM accounts");
    expect(rows[0].total).toBe(60 * 100);
    await Promise.all([...holders, waiter].map((client) => client.end()));
  });
});
