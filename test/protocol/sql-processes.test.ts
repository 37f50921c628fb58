import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
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

/** User + system CPU ticks a process has used. */
function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  return Number(fields[11]) + Number(fields[12]);
}

async function connections(n: number): Promise<pg.Client[]> {
  return Promise.all(Array.from({ length: n }, () => herdClient(herdUp.cluster)));
}

beforeAll(async () => {
  herd = await herdClient(herdUp.cluster);
  await herd.query("CREATE TABLE items (id int PRIMARY KEY, v text)");
  await herd.query("SELECT create_distributed_table('items', 'id')");
  await herd.query("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 1000) g");
});

afterAll(async () => {
  await herd?.end();
});

describe("several coordinator processes on one SQL port", () => {
  it("every process serves sessions", async () => {
    const forked = forkedProcesses();
    expect(forked).toHaveLength(PROCESSES - 1);
    const before = new Map(forked.map((pid) => [pid, cpuTicks(pid)]));
    const clients = await connections(24);
    try {
      await Promise.all(
        clients.map(async (client, i) => {
          for (let round = 0; round < 40; round += 1) {
            const id = ((i * 40 + round) % 1000) + 1;
            const { rows } = await client.query("SELECT v FROM items WHERE id = $1", [id]);
            expect(rows).toEqual([{ v: `item ${id}` }]);
          }
        }),
      );
    } finally {
      await Promise.all(clients.map((client) => client.end()));
    }
    for (const pid of forked) expect(cpuTicks(pid)).toBeGreaterThan(before.get(pid) as number);
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
