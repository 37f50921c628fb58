import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useHerdCluster } from "../helpers/herd-up.js";
import { herdClient, killPostgres, onServer, preparedTransactions, untilServerAnswers, within } from "./fault-kit.js";

// create_distributed_table of a table that holds rows, interrupted: its rows leave the shell
// through temporary files on the coordinator (operations/shard-row-files.ts) and stream into
// the shards inside one two-phase transaction, so a worker's crash or the client's disconnect
// while they stream leaves the table as it was (ordinary, every row in it) or distributed with
// every row; no shard table or prepared transaction is left behind, and distributing it again
// works. The test strikes once herd's COPY into a shard is running on the worker.
const ROWS = 300_000;
const herdUp = useHerdCluster("distribute-kills", { workers: 2 });
let herd: pg.Client;

beforeAll(async () => {
  herd = await herdClient(herdUp.cluster);
});

afterAll(async () => {
  await herd?.end();
});

/** Loads `table` (ordinary) with ROWS rows. */
async function load(table: string): Promise<void> {
  await herd.query(`CREATE TABLE ${table} (id bigint, note text)`);
  await herd.query(`INSERT INTO ${table} SELECT g, repeat('n', 80) FROM generate_series(1, ${ROWS}) g`);
}

/** Waits until a herd COPY into one of the table's shards runs on worker `ordinal`. */
async function copyingOn(ordinal: number, table: string): Promise<void> {
  await within(30_000, `a COPY into ${table}'s shards on herd-${ordinal}`, async () => {
    const rows = await onServer(
      herdUp.cluster,
      ordinal,
      "SELECT pid FROM pg_stat_activity WHERE application_name = 'herd' AND query LIKE $1",
      [`COPY %${table}_%FROM STDIN%`],
    );
    return rows.length > 0;
  });
}

/** What is left of `table`: how it is distributed, its rows through herd, its shard tables on the workers. */
async function state(table: string): Promise<{ distributed: boolean; rows: number; shardTables: number }> {
  const distributed =
    (await herd.query("SELECT count(*)::int AS n FROM pg_dist_partition WHERE logicalrelid::text = $1", [table]))
      .rows[0].n === 1;
  const rows = Number((await herd.query(`SELECT count(*) FROM ${table}`)).rows[0].count);
  let shardTables = 0;
  for (const ordinal of [1, 2]) {
    const found = await onServer(
      herdUp.cluster,
      ordinal,
      "SELECT count(*)::int AS n FROM pg_class WHERE relname ~ $1 AND relkind = 'r'",
      [`^${table}_[0-9]+$`],
    );
    shardTables += found[0]?.n as number;
  }
  return { distributed, rows, shardTables };
}

async function nothingLeftPrepared(): Promise<void> {
  for (const ordinal of [1, 2])
    await within(30_000, `nothing prepared on herd-${ordinal}`, async () => {
      return (await preparedTransactions(herdUp.cluster, ordinal)).length === 0;
    });
}

describe("create_distributed_table of a loaded table, interrupted", () => {
  it("a worker's PostgreSQL killed while rows stream in: the table stays as it was (or, killed after the prepare, is whole), and distributing it again works", async () => {
    await load("crashy");
    const client = await herdClient(herdUp.cluster);
    client.on("error", () => {});
    let outcome: string | undefined;
    try {
      const call = client.query("SELECT create_distributed_table('crashy', 'id')").then(
        () => "done",
        (error: { code?: string }) => `failed ${error.code}`,
      );
      await copyingOn(2, "crashy");
      await killPostgres(herdUp.cluster, 2);
      outcome = await call;
    } finally {
      await client.end().catch(() => {});
    }
    await untilServerAnswers(herdUp.cluster, 2);
    await nothingLeftPrepared();
    // The kill lands while a COPY into herd-2 runs, or (on a loaded machine) just after the last
    // one ended and the transaction was prepared everywhere: then the commit stands and recovery
    // finishes it on herd-2. Either way the table is whole; which one happened is printed.
    console.log(`distribute-kills: create_distributed_table with herd-2 killed: ${outcome}`);
    if (outcome === "done") {
      expect(await state("crashy")).toEqual({ distributed: true, rows: ROWS, shardTables: 64 });
      return;
    }
    expect(outcome).toMatch(/^failed/);
    expect(await state("crashy")).toEqual({ distributed: false, rows: ROWS, shardTables: 0 });
    await herd.query("SELECT create_distributed_table('crashy', 'id')");
    expect(await state("crashy")).toMatchObject({ distributed: true, rows: ROWS });
  });

  it("the client gone while rows stream in: all of it or none, nothing left behind", async () => {
    await load("abandoned");
    const client = await herdClient(herdUp.cluster);
    client.on("error", () => {});
    const call = client.query("SELECT create_distributed_table('abandoned', 'id')").catch(() => undefined);
    await copyingOn(1, "abandoned");
    (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    await call;
    await nothingLeftPrepared();
    let settled: { distributed: boolean; rows: number; shardTables: number } | undefined;
    await within(30_000, "the distribution is whole or undone", async () => {
      settled = await state("abandoned");
      return settled.distributed ? settled.shardTables === 64 : settled.shardTables === 0;
    });
    expect(settled?.rows).toBe(ROWS);
    // nothing holds its lock: it can be distributed (again) at once
    if (!settled?.distributed) await herd.query("SELECT create_distributed_table('abandoned', 'id')");
    expect(await state("abandoned")).toMatchObject({ distributed: true, rows: ROWS, shardTables: 64 });
  });
});
