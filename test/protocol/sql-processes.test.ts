import { readdirSync, readlinkSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { sleep } from "@herd/shared";
import type pg from "pg";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { herdClient, within } from "../faults/fault-kit.js";
import { useHerdCluster } from "../helpers/herd-up.js";
import { processesMentioning } from "../helpers/processes.js";

// Three coordinator processes share the SQL port (HERD_SQL_PROCESSES=3): the bot's own and two
// it forks. A new connection goes to whichever accepts it first, so each case opens many and
// checks what must hold whichever process a session is in: every process serves, a change one
// session made is what every other session plans with at once, a cancel reaches the process
// holding the session, citus_stat_activity shows the statements of every process, the session
// limit counts every process's sessions, and a process that dies is started again while the
// others go on serving.
const PROCESSES = 3;
/** Session slots of the whole coordinator (HERD_MAX_CONNECTIONS), whichever process a client is in. */
const MAX_CONNECTIONS = 30;
const herdUp = useHerdCluster("sql-processes", {
  workers: 2,
  env: {
    HERD_SQL_PROCESSES: String(PROCESSES),
    HERD_MAX_CONNECTIONS: String(MAX_CONNECTIONS),
    HERD_SUPERUSER_RESERVED_CONNECTIONS: "0",
  },
});
let herd: pg.Client;

/** The forked coordinator processes of this cluster (the bot's own is not among them). */
function forkedProcesses(): number[] {
  return processesMentioning("sql-process-main")
    .filter((p) => p.cmdline.includes("sql-process-main") && p.env.HERD_DATA_DIR?.startsWith(herdUp.dir))
    .map((p) => p.pid);
}

/** The sockets a process holds open (its sessions' client and PostgreSQL connections among them). */
function openSockets(pid: number): number {
  let count = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:")) count += 1;
    } catch {
      // closed meanwhile
    }
  }
  return count;
}

async function connections(n: number): Promise<pg.Client[]> {
  return Promise.all(Array.from({ length: n }, () => herdClient(herdUp.cluster)));
}

beforeAll(async () => {
  herd = await herdClient(herdUp.cluster);
  // the last case kills a process, which may be the one holding this session
  herd.on("error", () => {});
  await herd.query("CREATE TABLE items (id int PRIMARY KEY, v text)");
  await herd.query("SELECT create_distributed_table('items', 'id')");
  await herd.query("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 1000) g");
});

afterAll(async () => {
  await herd?.end().catch(() => {});
});

describe("several coordinator processes on one SQL port", () => {
  it("every process serves sessions", async () => {
    const forked = forkedProcesses();
    expect(forked).toHaveLength(PROCESSES - 1);
    // which process accepts a connection is the kernel's choice: open rounds of sessions until
    // each forked process has taken some (its open sockets grow while they last)
    const served = new Set<number>();
    for (let round = 0; round < 10 && served.size < forked.length; round += 1) {
      const before = new Map(forked.map((pid) => [pid, openSockets(pid)]));
      const clients = await connections(24);
      try {
        await Promise.all(
          clients.map(async (client, i) => {
            for (let query = 0; query < 5; query += 1) {
              const id = ((round * 240 + i * 10 + query) % 1000) + 1;
              const { rows } = await client.query("SELECT v FROM items WHERE id = $1", [id]);
              expect(rows).toEqual([{ v: `item ${id}` }]);
            }
          }),
        );
        for (const pid of forked) if (openSockets(pid) > (before.get(pid) as number)) served.add(pid);
      } finally {
        await Promise.all(clients.map((client) => client.end()));
      }
    }
    expect([...served].sort()).toEqual([...forked].sort());
    // clients that said goodbye are no lost connection to report
    await sleep(500);
    const log = await readFile(join(herdUp.cluster.dataDir, "logs", "herd-0.log"), "utf8");
    expect(log).not.toMatch(/connection of a session lost/);
  });

  it("a table distributed in one session is distributed for every session's next statement", async () => {
    const clients = await connections(12);
    try {
      // every session has planned with the catalog of its process before the change
      for (const client of clients) await client.query("SELECT count(*) FROM items");
      for (let round = 0; round < 5; round += 1) {
        const table = `moved_${round}`;
        await herd.query(`CREATE TABLE ${table} (id int PRIMARY KEY)`);
        await herd.query(`INSERT INTO ${table} SELECT generate_series(1, 100)`);
        await herd.query(`SELECT create_distributed_table('${table}', 'id')`);
        // the shell's rows went to the shards: a process that planned on the shell would count 0
        const counts = await Promise.all(
          clients.map(async (client) => (await client.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n),
        );
        expect(counts).toEqual(clients.map(() => 100));
      }
    } finally {
      await Promise.all(clients.map((client) => client.end()));
    }
  });

  it("a cancel reaches the session whichever process accepted the CancelRequest", async () => {
    const sql = postgres({
      host: "127.0.0.1",
      port: herdUp.cluster.sqlPort,
      user: "postgres",
      password: "postgres",
      database: "postgres",
      max: 8,
      onnotice: () => {},
    });
    try {
      const started = Date.now();
      const queries = Array.from({ length: 8 }, (_, i) => sql`SELECT pg_sleep(30), v FROM items WHERE id = ${i + 1}`);
      const outcomes = queries.map((query) =>
        query.then(() => "finished").catch((error: { code: string }) => error.code),
      );
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      for (const query of queries) query.cancel();
      expect(await Promise.all(outcomes)).toEqual(queries.map(() => "57014"));
      expect(Date.now() - started).toBeLessThan(25_000);
    } finally {
      await sql.end();
    }
  });

  it("citus_stat_activity shows the statements herd runs for sessions of every process", async () => {
    const clients = await connections(9);
    try {
      const sleeping = clients.map((client, i) =>
        client.query(`SELECT pg_sleep(4), v FROM items WHERE id = ${i + 1} /* busy ${i} */`),
      );
      await within(10_000, "every sleeping statement shows", async () => {
        const { rows } = await herd.query(
          `SELECT query FROM citus_stat_activity
            WHERE NOT is_worker_query AND state = 'active' AND query LIKE '%/* busy %' AND pid <> pg_backend_pid()`,
        );
        return rows.length === clients.length;
      });
      await Promise.all(sleeping);
    } finally {
      await Promise.all(clients.map((client) => client.end()));
    }
  });

  it("HERD_MAX_CONNECTIONS counts the sessions of every process", async () => {
    // `herd` holds one slot
    const clients = await connections(MAX_CONNECTIONS - 1);
    try {
      const refused = await herdClient(herdUp.cluster).then(
        async (client) => {
          await client.end();
          return undefined;
        },
        (error: { code?: string; message: string }) => error,
      );
      expect(refused).toMatchObject({ code: "53300", message: "sorry, too many clients already" });
      // a slot freed, in whichever process, is a slot taken again
      await clients.pop()?.end();
      await within(5_000, "a freed slot can be taken", async () => {
        const client = await herdClient(herdUp.cluster).catch(() => undefined);
        if (client) clients.push(client);
        return client !== undefined;
      });
    } finally {
      await Promise.all(clients.map((client) => client.end()));
    }
  });

  it("a process that dies is started again; the others serve meanwhile", async () => {
    const [victim] = forkedProcesses();
    process.kill(victim as number, "SIGKILL");
    // new sessions keep working (they go to the processes that are there)
    for (let i = 0; i < 10; i += 1) {
      const client = await herdClient(herdUp.cluster);
      expect((await client.query("SELECT count(*)::int AS n FROM items")).rows).toEqual([{ n: 1000 }]);
      await client.end();
    }
    await within(15_000, "the process is started again", async () => {
      const now = forkedProcesses();
      return now.length === PROCESSES - 1 && !now.includes(victim as number);
    });
    const log = await readFile(join(herdUp.cluster.dataDir, "logs", "herd-0.log"), "utf8");
    expect(log).toMatch(/a coordinator process exited; starting it again/);
  });
});
