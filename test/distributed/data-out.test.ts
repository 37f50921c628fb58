import { execFile, spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { herdClient, within } from "../faults/fault-kit.js";
import { answer } from "../helpers/differential.js";
import { useHerdCluster } from "../helpers/herd-up.js";
import { startTestPostgres, TEST_PASSWORD, type TestPostgres } from "../helpers/postgres.js";
import { scratchDir } from "../helpers/scratch-dir.js";

// Data out. COPY … TO STDOUT of distributed and reference tables and of queries over them, through psql (a
// real client), against one plain PostgreSQL 18 holding the same rows: the bytes PostgreSQL would
// write (rows of an unordered COPY compared as sorted lines), in text, CSV and binary. And LOCK
// TABLE as pg_dump (ACCESS SHARE) and migrations (EXCLUSIVE) take it.
const herdUp = useHerdCluster("data-out", { workers: 2 });
let plain: TestPostgres;
let herd: pg.Client;
const run = promisify(execFile);

const SCHEMA = [
  "CREATE TABLE orders (id int PRIMARY KEY, customer int, note text, total numeric(10,2), placed date, tags text[])",
  "CREATE TABLE regions (code text PRIMARY KEY, name text)",
  `INSERT INTO orders SELECT i, i % 17, CASE WHEN i % 11 = 0 THEN NULL WHEN i % 7 = 0 THEN E'tab\\there, new\\nline, back\\\\slash, "quoted"; é' ELSE 'note ' || i END,
     i * 1.25, date '2026-01-01' + i, ARRAY['a', 'b,' || i] FROM generate_series(1, 3000) i`,
  "INSERT INTO regions VALUES ('eu', 'Europe'), ('us', 'Amer\"icas'), ('ap', NULL)",
];

/** What psql writes for `sql` against herd or the plain server (stdout bytes). */
async function psqlOut(target: "herd" | "plain", sql: string): Promise<Buffer> {
  const { stdout } = await run("psql", psqlArgs(target, sql), {
    env: psqlEnv(target),
    encoding: "buffer",
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

/** psql's arguments to run `sql` against herd's SQL port or the plain server, quietly. */
function psqlArgs(target: "herd" | "plain", sql: string): string[] {
  const port = target === "herd" ? herdUp.cluster.sqlPort : plain.port;
  return ["-X", "-q", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-c", sql];
}

function psqlEnv(target: "herd" | "plain"): NodeJS.ProcessEnv {
  return { ...process.env, PGPASSWORD: target === "herd" ? "postgres" : TEST_PASSWORD };
}

const lines = (out: Buffer) => out.toString("utf8").split("\n");
const sortedLines = (out: Buffer) => lines(out).sort();

beforeAll(async () => {
  plain = await startTestPostgres("copy-out-plain");
  herd = await herdClient(herdUp.cluster);
  for (const sql of SCHEMA) {
    await herd.query(sql);
    await plain.query(sql);
  }
  await herd.query("SELECT create_distributed_table('orders', 'id', shard_count => 6)");
  await herd.query("SELECT create_reference_table('regions')");
}, 120_000);

afterAll(async () => {
  await herd?.end();
  await plain?.stop();
});

describe("COPY … TO STDOUT", () => {
  it.each([
    "COPY orders TO STDOUT",
    "COPY orders TO STDOUT (FORMAT csv)",
    "COPY orders (note, id) TO STDOUT (FORMAT csv, FORCE_QUOTE *, NULL 'n/a')",
    "COPY orders TO STDOUT (DELIMITER '|', NULL '')",
    "COPY public.orders TO STDOUT WITH CSV",
    "COPY regions TO STDOUT (FORMAT csv)",
    "COPY (SELECT id, note FROM orders WHERE customer = 3) TO STDOUT",
    "COPY (SELECT o.id, r.name FROM orders o JOIN regions r ON r.code = (CASE WHEN o.id % 2 = 0 THEN 'eu' ELSE 'us' END)) TO STDOUT",
  ])("writes the rows PostgreSQL writes: %s", async (sql) => {
    const [atHerd, atPlain] = await Promise.all([psqlOut("herd", sql), psqlOut("plain", sql)]);
    expect(lines(atPlain).length).toBeGreaterThan(2);
    expect(sortedLines(atHerd)).toEqual(sortedLines(atPlain));
  });

  it.each([
    "COPY (SELECT * FROM orders WHERE id = 77) TO STDOUT",
    "COPY (SELECT * FROM orders ORDER BY id) TO STDOUT (FORMAT csv, HEADER)",
    "COPY (SELECT customer, count(*), sum(total), max(note) FROM orders GROUP BY customer ORDER BY customer) TO STDOUT (FORMAT csv, HEADER true)",
    "COPY (SELECT id, tags FROM orders ORDER BY total DESC LIMIT 25) TO STDOUT",
    "COPY (SELECT DISTINCT customer FROM orders ORDER BY 1) TO STDOUT",
  ])("writes the same bytes in the same order when the query orders them: %s", async (sql) => {
    const [atHerd, atPlain] = await Promise.all([psqlOut("herd", sql), psqlOut("plain", sql)]);
    expect(atHerd.toString("utf8")).toEqual(atPlain.toString("utf8"));
  });

  it("writes the header once, first, over every shard", async () => {
    const sql = "COPY orders TO STDOUT (FORMAT csv, HEADER)";
    const [atHerd, atPlain] = await Promise.all([psqlOut("herd", sql), psqlOut("plain", sql)]);
    expect(lines(atHerd)[0]).toBe("id,customer,note,total,placed,tags");
    expect(lines(atHerd).filter((line) => line === "id,customer,note,total,placed,tags")).toHaveLength(1);
    expect(sortedLines(atHerd)).toEqual(sortedLines(atPlain));
  });

  it.each([
    ["the table", "COPY orders TO STDOUT (FORMAT binary)"],
    ["a merged query", "COPY (SELECT * FROM orders ORDER BY id DESC LIMIT 500) TO STDOUT (FORMAT binary)"],
    ["one shard", "COPY (SELECT * FROM orders WHERE id = 12) TO STDOUT (FORMAT binary)"],
  ])("in binary, one stream that PostgreSQL reads back: %s", async (_, sql) => {
    const out = await psqlOut("herd", sql);
    expect(out.subarray(0, 11).toString("latin1")).toBe("PGCOPY\n\xff\r\n\0");
    expect(out.subarray(-2)).toEqual(Buffer.from([0xff, 0xff]));
    const scratch = await scratchDir("copy-out-binary");
    try {
      const file = join(scratch.path, "rows.bin");
      await writeFile(file, out);
      await plain.query("CREATE TABLE read_back (LIKE orders)");
      await psqlOut("plain", `\\copy read_back FROM '${file}' (FORMAT binary)`);
      const query = sql
        .replace(/^COPY \((.*)\) TO STDOUT.*$/, "$1")
        .replace(/^COPY orders TO STDOUT.*$/, "SELECT * FROM orders");
      const expected = await plain.query(`SELECT * FROM (${query}) q ORDER BY id`);
      const back = await plain.query("SELECT * FROM read_back ORDER BY id");
      expect(back).toEqual(expected);
      expect(back.length).toBeGreaterThan(0);
    } finally {
      await plain.query("DROP TABLE IF EXISTS read_back");
      await scratch.remove();
    }
  });

  it("sees its own transaction block's writes, on one shard and merged", async () => {
    const sql = [
      "BEGIN",
      "INSERT INTO orders VALUES (5001, 1, 'in the block', 1, '2026-12-02', '{}'), (5002, 2, 'too', 2, '2026-12-02', '{}')",
      "COPY (SELECT id, note FROM orders WHERE id = 5001) TO STDOUT",
      "COPY (SELECT id, note FROM orders WHERE id > 5000 ORDER BY id) TO STDOUT (FORMAT csv)",
      "ROLLBACK",
    ].join("; ");
    const out = await psqlOut("herd", sql);
    expect(out.toString()).toBe("5001\tin the block\n5001,in the block\n5002,too\n");
    expect(await psqlOut("herd", "COPY (SELECT count(*) FROM orders WHERE id > 5000) TO STDOUT")).toEqual(
      Buffer.from("0\n"),
    );
  });

  it("refuses what it cannot do, saying what and how else", async () => {
    expect(await answer(herd, "COPY orders TO '/tmp/orders.txt'")).toMatchObject({
      error: { code: "0A000", message: expect.stringMatching(/COPY TO a file or program from distributed tables/) },
    });
    // a query planned in steps (a distributed table joined off its distribution column)
    const stepped = await answer(herd, "COPY (SELECT a.id FROM orders a JOIN orders b ON a.customer = b.id) TO STDOUT");
    expect(stepped).toMatchObject({ error: { code: "0A000" } });
    // and a COPY of a local table still runs locally
    expect(await psqlOut("herd", "COPY (SELECT 1 AS one) TO STDOUT")).toEqual(Buffer.from("1\n"));
  });

  it("survives a client that leaves in the middle of a large COPY, and serves the next one", async () => {
    const child = spawn(
      "psql",
      psqlArgs("herd", "COPY (SELECT o.*, g FROM orders o, generate_series(1, 40) g WHERE o.customer < 100) TO STDOUT"),
      { env: psqlEnv("herd") },
    );
    let received = 0;
    await new Promise<void>((resolve) => {
      child.stdout.on("data", (chunk: Buffer) => {
        received += chunk.length;
        if (received > 64 * 1024) {
          child.kill("SIGKILL");
          resolve();
        }
      });
      child.on("exit", () => resolve());
    });
    expect(received).toBeGreaterThan(64 * 1024);
    await within(10_000, "the coordinator answers the next COPY", async () => {
      const out = await psqlOut("herd", "COPY (SELECT count(*) FROM orders) TO STDOUT");
      return out.toString() === "3000\n";
    });
  });
});

describe("LOCK TABLE on distributed tables", () => {
  it("needs a transaction block, as in PostgreSQL", async () => {
    const direct = await plainClient();
    const [atHerd, atPlain] = [await answer(herd, "LOCK orders"), await answer(direct, "LOCK orders")];
    await direct.end();
    expect(atHerd).toMatchObject({
      error: { code: "25P01", message: (atPlain as { error: { message: string } }).error.message },
    });
  });

  it("ACCESS SHARE (pg_dump's) lets writes through and holds DDL back until the block ends", async () => {
    const other = await herdClient(herdUp.cluster);
    try {
      await herd.query("BEGIN");
      await herd.query("LOCK TABLE public.orders IN ACCESS SHARE MODE");
      await other.query("UPDATE orders SET total = total WHERE id = 1");
      let altered = false;
      const ddl = other.query("ALTER TABLE orders ADD COLUMN lock_probe int").then(() => {
        altered = true;
      });
      await new Promise((resolve) => setTimeout(resolve, 700));
      expect(altered).toBe(false);
      await herd.query("COMMIT");
      await ddl;
      expect(altered).toBe(true);
      await other.query("ALTER TABLE orders DROP COLUMN lock_probe");
    } finally {
      await herd.query("ROLLBACK").catch(() => {});
      await other.end();
    }
  });

  it("EXCLUSIVE holds writes of every shard back until the block ends; reads go on", async () => {
    const other = await herdClient(herdUp.cluster);
    try {
      await herd.query("BEGIN");
      await herd.query("LOCK TABLE orders IN EXCLUSIVE MODE");
      let written = false;
      const write = other.query("UPDATE orders SET total = total + 0 WHERE id = 2").then(() => {
        written = true;
      });
      const reader = await herdClient(herdUp.cluster);
      expect((await reader.query("SELECT count(*)::int AS n FROM orders")).rows).toEqual([{ n: 3000 }]);
      await reader.end();
      await new Promise((resolve) => setTimeout(resolve, 700));
      expect(written).toBe(false);
      await herd.query("COMMIT");
      await write;
      expect(written).toBe(true);
    } finally {
      await herd.query("ROLLBACK").catch(() => {});
      await other.end();
    }
  });
});

async function plainClient(): Promise<pg.Client> {
  const { default: pgModule } = await import("pg");
  const client = new pgModule.Client(plain.connection);
  await client.connect();
  return client;
}
