import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { herdClient, onServer, within } from "../faults/fault-kit.js";
import { useHerdCluster } from "../helpers/herd-up.js";
import { msg, RawClient } from "../helpers/raw-client.js";

// Client sessions share the coordinator's own PostgreSQL connections between transactions
// (protocol/backend-pool.ts). Two coordinator processes, four shared connections in all (two
// each): many clients at once, each seeing only its own session state, transactions and
// temporary tables; a client that disconnects mid-transaction leaves nothing locked; a shared
// connection PostgreSQL ends is replaced; DROP DATABASE works although idle shared connections
// to that database were open.
const BACKENDS = 4;
const herdUp = useHerdCluster("shared-backends", {
  workers: 2,
  env: { HERD_SQL_PROCESSES: "2", HERD_COORDINATOR_BACKENDS: String(BACKENDS) },
});
let herd: pg.Client;

/** Whether some session holds the advisory lock 4242. */
const ADVISORY_HELD =
  "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND granted";

/** Coordinator connections of sessions whose application_name starts with `prefix`, as the coordinator's PostgreSQL counts them. */
async function backendsOf(prefix: string): Promise<number> {
  const rows = await onServer<{ n: number }>(
    herdUp.cluster,
    0,
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND application_name LIKE $1",
    [`${prefix}%`],
  );
  return rows[0]?.n ?? 0;
}

async function clients(n: number, application: string): Promise<[pg.Client, pg.Client, ...pg.Client[]]> {
  const list: pg.Client[] = [];
  // (one at a time: each first connection is a new one, and there is room for four)
  for (let i = 0; i < Math.max(n, 2); i++)
    list.push(await herdClient(herdUp.cluster, { application_name: application }));
  return list as [pg.Client, pg.Client, ...pg.Client[]];
}

async function endAll(list: pg.Client[]): Promise<void> {
  await Promise.all(list.map((client) => client.end().catch(() => {})));
}

beforeAll(async () => {
  herd = await herdClient(herdUp.cluster, { application_name: "shared-admin" });
  await herd.query("CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)");
  await herd.query("SELECT create_distributed_table('accounts', 'id')");
  await herd.query("INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 50) g");
  await herd.query("CREATE TABLE notes (id int PRIMARY KEY, body text)");
}, 120_000);

afterAll(async () => {
  await herd?.end().catch(() => {});
});

describe("coordinator connections shared between sessions", () => {
  it("forty clients at once are served by four connections, each answered its own rows", async () => {
    const many = await clients(40, "shared-many");
    try {
      let most = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          most = Math.max(most, await backendsOf("shared-"));
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      })();
      for (let round = 0; round < 3; round++) {
        const answers = await Promise.all(
          many.map(async (client, i) => {
            const id = (i % 50) + 1;
            // forwarded to the coordinator's PostgreSQL, routed to a shard, a write in a block
            const local = await client.query("SELECT $1::int * 2 AS doubled", [i]);
            const routed = await client.query("SELECT id, balance FROM accounts WHERE id = $1", [id]);
            await client.query("BEGIN");
            await client.query("UPDATE accounts SET balance = balance + 1 WHERE id = $1", [id]);
            await client.query("INSERT INTO notes VALUES ($1, 'x') ON CONFLICT (id) DO UPDATE SET body = 'y'", [id]);
            await client.query("COMMIT");
            return { doubled: local.rows[0].doubled, id: routed.rows[0].id };
          }),
        );
        expect(answers).toEqual(many.map((_, i) => ({ doubled: i * 2, id: (i % 50) + 1 })));
      }
      sampling = false;
      await sampler;
      // the admin session's and the forty's, together
      expect(most).toBeLessThanOrEqual(BACKENDS);
      const { rows } = await herd.query("SELECT sum(balance)::int AS total FROM accounts");
      expect(rows[0].total).toBe(50 * 100 + 40 * 3);
    } finally {
      await endAll(many);
    }
  });

  it("keeps each session's settings, temporary tables, prepared statements and locks to itself", async () => {
    const [owner, ...others] = await clients(4, "shared-state");
    try {
      await owner.query("SET work_mem = '7MB'");
      await owner.query("CREATE TEMP TABLE scratch (v int)");
      await owner.query("INSERT INTO scratch VALUES (42)");
      await owner.query("PREPARE twice (int) AS SELECT $1 * 2 AS v");
      await owner.query("SELECT pg_advisory_lock(4242)");
      // the others run meanwhile, on what connections are left
      for (let i = 0; i < 5; i++) {
        for (const other of others) {
          expect((await other.query("SHOW work_mem")).rows[0].work_mem).toBe("4MB");
          // (taking the lock would make that session keep its connection too: it only looks)
          expect((await other.query(ADVISORY_HELD)).rows[0].n).toBe(1);
          await expect(other.query("SELECT v FROM scratch")).rejects.toMatchObject({ code: "42P01" });
        }
        expect((await owner.query("SHOW work_mem")).rows[0].work_mem).toBe("7MB");
        expect((await owner.query("SELECT v FROM scratch")).rows).toEqual([{ v: 42 }]);
        expect((await owner.query("EXECUTE twice(21)")).rows).toEqual([{ v: 42 }]);
      }
      await owner.end();
      // its connection was ended, not shared: the lock and the temporary table went with it
      await within(10_000, "the advisory lock is free", async () => {
        return (await others[0].query(ADVISORY_HELD)).rows[0].n === 0;
      });
    } finally {
      await endAll(others);
    }
  });

  it("delivers notifications to a listening session while the others share the rest", async () => {
    const [listener, ...others] = await clients(3, "shared-listen");
    try {
      await listener.query("LISTEN shared_channel");
      const received = new Promise<pg.Notification>((resolve) => listener.once("notification", resolve));
      for (const other of others) await other.query("SELECT 1");
      await others[0].query("NOTIFY shared_channel, 'hello'");
      expect(await received).toMatchObject({ channel: "shared_channel", payload: "hello" });
    } finally {
      await endAll([listener, ...others]);
    }
  });

  it("keeps a transaction's connection and its uncommitted rows to the session until it ends", async () => {
    const [writer, reader] = await clients(2, "shared-tx");
    try {
      await writer.query("BEGIN");
      await writer.query("INSERT INTO notes VALUES (1001, 'uncommitted')");
      for (let i = 0; i < 5; i++) {
        expect((await reader.query("SELECT count(*)::int AS n FROM notes WHERE id = 1001")).rows[0].n).toBe(0);
        expect((await writer.query("SELECT count(*)::int AS n FROM notes WHERE id = 1001")).rows[0].n).toBe(1);
      }
      await writer.query("ROLLBACK");
      expect((await reader.query("SELECT count(*)::int AS n FROM notes WHERE id = 1001")).rows[0].n).toBe(0);
    } finally {
      await endAll([writer, reader]);
    }
  });

  it("a client that disconnects inside a transaction leaves no lock and no connection behind", async () => {
    const [leaving, waiting] = await clients(2, "shared-leave");
    try {
      leaving.on("error", () => {}); // its socket is destroyed below
      await leaving.query("BEGIN");
      await leaving.query("UPDATE notes SET body = 'locked' WHERE id = 1");
      (leaving as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
      // the row is free again: the coordinator ended that connection (PostgreSQL rolled it back)
      await waiting.query("SET lock_timeout = '10s'");
      await waiting.query("UPDATE notes SET body = 'free' WHERE id = 1");
      expect((await waiting.query("SELECT body FROM notes WHERE id = 1")).rows).toEqual([{ body: "free" }]);
      await within(
        10_000,
        "no connection of the gone client is left",
        async () => (await backendsOf("shared-leave")) <= 1,
      );
    } finally {
      await endAll([waiting]);
    }
  });

  it("replaces a shared connection PostgreSQL ended while it was idle", async () => {
    const list = await clients(6, "shared-killed");
    try {
      await Promise.all(list.map((client) => client.query("SELECT 1")));
      await onServer(
        herdUp.cluster,
        0,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'shared-killed' AND state = 'idle'",
      );
      // (a connection ended while a session takes it again answers that session with the FATAL,
      // as it would a client of its own: the sessions ask once the ended ones are gone)
      await within(5_000, "the ended connections are gone", async () => (await backendsOf("shared-killed")) === 0);
      const answers = await Promise.all(list.map((client, i) => client.query("SELECT $1::int AS i", [i])));
      expect(answers.map((result) => result.rows[0].i)).toEqual(list.map((_, i) => i));
    } finally {
      await endAll(list);
    }
  });

  it("binds an unnamed statement parsed in an earlier batch on the connection it goes to now", async () => {
    const client = await RawClient.ready(herdUp.cluster.sqlPort, "postgres", { application_name: "shared-unnamed" });
    try {
      client.send(msg.parse("", "SELECT $1::int + 100 AS v"), msg.sync());
      expect(await client.untilReady()).toEqual(["1", "Z"]);
      // the connection it was parsed on ends while the session holds nothing on it
      await onServer(herdUp.cluster, 0, "SELECT pg_terminate_backend($1)", [client.key?.processId]);
      await within(5_000, "that connection is gone", async () => (await backendsOf("shared-unnamed")) === 0);
      client.send(msg.bind("", "", ["1"]), msg.execute(""), msg.sync());
      const frames: string[] = [];
      let value = "";
      for (;;) {
        const frame = await client.next();
        frames.push(String.fromCharCode(frame.type));
        if (frame.type === 0x44) value = frame.body.subarray(6).toString();
        if (frame.type === 0x5a) break;
      }
      expect(frames).toEqual(["2", "D", "C", "Z"]);
      expect(value).toBe("101");
    } finally {
      client.end();
    }
  });

  it("ends a session whose connection PostgreSQL ended while it held session state, and only that one", async () => {
    const [holder, bystander] = await clients(2, "shared-ended");
    holder.on("error", () => {});
    try {
      await holder.query("SET work_mem = '9MB'");
      const { rows } = await holder.query("SELECT pg_backend_pid() AS pid");
      await onServer(herdUp.cluster, 0, "SELECT pg_terminate_backend($1)", [rows[0].pid]);
      // its setting is gone with the connection: the session is not carried on without it
      await expect(holder.query("SHOW work_mem")).rejects.toThrow();
      expect((await bystander.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
    } finally {
      await endAll([holder, bystander]);
    }
  });

  it("drops a database that sessions used: their idle shared connections to it are ended first", async () => {
    await herd.query("CREATE DATABASE shared_other");
    const list = await clients(3, "shared-db").then(async (previous) => {
      await endAll(previous);
      return Promise.all(
        Array.from({ length: 3 }, () =>
          herdClient(herdUp.cluster, { database: "shared_other", application_name: "shared-db" }),
        ),
      );
    });
    await Promise.all(list.map((client) => client.query("SELECT 1")));
    await endAll(list);
    await herd.query("DROP DATABASE shared_other");
    const { rows } = await herd.query("SELECT count(*)::int AS n FROM pg_database WHERE datname = 'shared_other'");
    expect(rows[0].n).toBe(0);
  });
});
