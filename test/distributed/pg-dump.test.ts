import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { herdClient, PASSWORD } from "../faults/fault-kit.js";
import { answer } from "../helpers/differential.js";
import { useHerdCluster } from "../helpers/herd-up.js";
import { startTestPostgres, type TestPostgres } from "../helpers/postgres.js";
import { scratchDir } from "../helpers/scratch-dir.js";

// pg_dump 18 of a herd database (distributed, colocated and reference tables with foreign keys,
// an ordinary table, a view, a sequence, awkward values), in plain, custom (-Fc), schema-only and
// single-table form. Restored into one plain PostgreSQL 18, every table holds the same rows as on
// herd; restored into herd, herd_distribution_script() distributes the tables again as they were.
// pg_dump, pg_restore and psql 18 come from the PyPI wheel the shell guard's build unpacks
// (packages/worker-bot/shell-guard/build.sh), as Debian bookworm has only 15.
const TOOLS = join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "herd", "pg18-dev", "bin");
const run = promisify(execFile);
const herdUp = useHerdCluster("pg-dump", { workers: 2 });
let herd: pg.Client;
let target: TestPostgres;
let scratch: { path: string; remove(): Promise<void> };

const TABLES = ["plans", "companies", "campaigns", "notes_local"];
const SCHEMA = [
  "CREATE TABLE plans (name text PRIMARY KEY, seats int NOT NULL)",
  "CREATE TABLE companies (id bigint PRIMARY KEY, name text NOT NULL, plan text REFERENCES plans (name), meta jsonb, logo bytea)",
  `CREATE TABLE campaigns (company_id bigint NOT NULL REFERENCES companies (id), id bigserial, name text,
     budget numeric(12, 2) DEFAULT 0 CHECK (budget >= 0), starts timestamptz, tags text[], PRIMARY KEY (company_id, id))`,
  "CREATE INDEX campaigns_name ON campaigns (name)",
  "CREATE TABLE notes_local (id serial PRIMARY KEY, body text)",
  "CREATE VIEW big_campaigns AS SELECT company_id, id, budget FROM campaigns WHERE budget > 500",
  "SELECT create_reference_table('plans')",
  "SELECT create_distributed_table('companies', 'id', shard_count => 6)",
  "SELECT create_distributed_table('campaigns', 'company_id', colocate_with => 'companies')",
  "INSERT INTO plans VALUES ('free', 1), ('pro', 10)",
  `INSERT INTO companies SELECT i, 'company ' || i || E'\\t"quoted"\\nline', CASE WHEN i % 2 = 0 THEN 'pro' END,
     jsonb_build_object('i', i, 'tags', jsonb_build_array('a', i)), decode(md5(i::text), 'hex')
     FROM generate_series(1, 40) i`,
  `INSERT INTO campaigns (company_id, name, budget, starts, tags)
     SELECT i % 40 + 1, CASE WHEN i % 7 = 0 THEN NULL ELSE 'c' || i END, i * 10.5, '2026-01-01 00:00+00'::timestamptz + i * interval '1 hour',
            ARRAY['x', i::text] FROM generate_series(1, 300) i`,
  "INSERT INTO notes_local (body) VALUES ('one'), (E'back\\\\slash'), (NULL)",
];

beforeAll(async () => {
  if (!existsSync(join(TOOLS, "pg_dump")))
    throw new Error(
      `${TOOLS}/pg_dump is missing: run \`pnpm build\` (shell-guard/build.sh unpacks PostgreSQL 18's tools)`,
    );
  herd = await herdClient(herdUp.cluster);
  for (const sql of SCHEMA) await herd.query(sql);
  target = await startTestPostgres("pg-dump-target");
  scratch = await scratchDir("pg-dump-files");
}, 120_000);

afterAll(async () => {
  await herd?.end();
  await target?.stop();
  await scratch?.remove();
});

/** Runs one of PostgreSQL 18's client tools; resolves with its stdout. */
async function tool(name: string, args: string[], password: string): Promise<string> {
  const { stdout } = await run(join(TOOLS, name), args, {
    env: { ...process.env, PGPASSWORD: password },
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

const fromHerd = () => ["-h", "127.0.0.1", "-p", String(herdUp.cluster.sqlPort), "-U", "postgres", "-d", "postgres"];
const toTarget = (database: string) => [
  "-h",
  "127.0.0.1",
  "-p",
  String(target.connection.port),
  "-U",
  String(target.connection.user),
  "-d",
  database,
];

async function targetClient(database: string): Promise<pg.Client> {
  const client = new pg.Client({ ...target.connection, database });
  await client.connect();
  return client;
}

async function createTargetDatabase(name: string): Promise<void> {
  const admin = await targetClient("postgres");
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
}

/** Every table's rows on herd and on `other`, in one order, as text. */
async function expectSameRows(other: pg.Client, tables = TABLES): Promise<void> {
  for (const table of tables) {
    const sql = `SELECT * FROM ${table} ORDER BY 1, 2`;
    expect(await answer(other, sql), table).toEqual(await answer(herd, sql));
  }
}

describe("pg_dump 18 of a herd database", () => {
  it("plain: restores into a plain PostgreSQL with the same rows, and holds nothing of herd's", async () => {
    const file = join(scratch.path, "plain.sql");
    await tool("pg_dump", [...fromHerd(), "--exclude-extension=herd_catalog", "-f", file], PASSWORD);
    const dump = await readFile(file, "utf8");
    expect(dump).toContain("COPY public.campaigns");
    expect(dump).not.toMatch(/herd_shell_guard|herd\.|CREATE SCHEMA herd|EXTENSION/);
    await createTargetDatabase("plain_restore");
    await tool(
      "psql",
      [...toTarget("plain_restore"), "-v", "ON_ERROR_STOP=1", "-q", "-f", file],
      target.connection.password as string,
    );
    const restored = await targetClient("plain_restore");
    try {
      await expectSameRows(restored);
      expect(await answer(restored, "SELECT * FROM big_campaigns ORDER BY 1, 2")).toEqual(
        await answer(herd, "SELECT * FROM big_campaigns ORDER BY 1, 2"),
      );
      // and the sequences go on from where herd's were
      const last = (await herd.query("SELECT last_value::int AS n FROM campaigns_id_seq")).rows[0].n as number;
      expect(last).toBeGreaterThanOrEqual(300);
      expect((await restored.query("SELECT nextval('campaigns_id_seq')::int AS n")).rows).toEqual([{ n: last + 1 }]);
      // the keys came along: a campaign of a company that is not there is refused
      expect(await answer(restored, "INSERT INTO campaigns (company_id, name) VALUES (999, 'x')")).toMatchObject({
        error: { code: "23503" },
      });
    } finally {
      await restored.end();
    }
  });

  it("custom format (-Fc) through pg_restore, schema only (-s), and one table (-t)", async () => {
    const custom = join(scratch.path, "dump.custom");
    await tool("pg_dump", [...fromHerd(), "-Fc", "--exclude-extension=herd_catalog", "-f", custom], PASSWORD);
    await createTargetDatabase("custom_restore");
    await tool(
      "pg_restore",
      [...toTarget("custom_restore"), "--exit-on-error", custom],
      target.connection.password as string,
    );
    const restored = await targetClient("custom_restore");
    try {
      await expectSameRows(restored);
    } finally {
      await restored.end();
    }

    const schemaOnly = await tool("pg_dump", [...fromHerd(), "-s", "--exclude-extension=herd_catalog"], PASSWORD);
    expect(schemaOnly).toContain("CREATE TABLE public.campaigns");
    expect(schemaOnly).not.toMatch(/COPY |herd_shell_guard/);

    const oneTable = await tool("pg_dump", [...fromHerd(), "-t", "companies", "-a"], PASSWORD);
    const copied = oneTable.split("\n").filter((line) => /^\d+\t/.test(line));
    expect(copied).toHaveLength(40);
    expect(oneTable).not.toContain("COPY public.campaigns");
  });

  it("restored into herd, herd_distribution_script() makes the tables distributed again as they were", async () => {
    const script = (await herd.query("SELECT herd_distribution_script() AS call")).rows.map(
      (row) => row.call as string,
    );
    expect(script).toEqual([
      "SELECT create_reference_table('plans');",
      "SELECT create_distributed_table('companies', 'id', colocate_with => 'none', shard_count => 6);",
      "SELECT create_distributed_table('campaigns', 'company_id', colocate_with => 'companies');",
    ]);
    const file = join(scratch.path, "for-herd.sql");
    // as users run it: the whole database, the extension line included (CREATE EXTENSION IF NOT EXISTS on herd)
    await tool("pg_dump", [...fromHerd(), "-f", file], PASSWORD);
    const before = await targetClient("plain_restore");
    await herd.query("DROP VIEW big_campaigns");
    await herd.query("DROP TABLE campaigns, companies, plans, notes_local");
    await tool("psql", [...fromHerd(), "-v", "ON_ERROR_STOP=1", "-q", "-f", file], PASSWORD);
    for (const call of script) await herd.query(call);
    try {
      expect(
        (
          await herd.query(
            "SELECT table_name::text, citus_table_type, shard_count::int AS shard_count FROM citus_tables ORDER BY 1",
          )
        ).rows,
      ).toEqual([
        { table_name: "campaigns", citus_table_type: "distributed", shard_count: 6 },
        { table_name: "companies", citus_table_type: "distributed", shard_count: 6 },
        { table_name: "plans", citus_table_type: "reference", shard_count: 1 },
      ]);
      await expectSameRows(before);
      expect(await answer(herd, "INSERT INTO campaigns (company_id, name) VALUES (999, 'x')")).toMatchObject({
        error: { code: "23503" },
      });
    } finally {
      await before.end();
    }
  });
});
