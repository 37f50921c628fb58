import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { herdClient, onServer, placements, preparedTransactions, serverPort, within } from "../faults/fault-kit.js";
import { answer } from "../helpers/differential.js";
import { useHerdCluster } from "../helpers/herd-up.js";

// Migrations run in transaction blocks: Alembic, Knex, Rails, Django, Prisma and Flyway wrap
// their DDL in BEGIN … COMMIT. create_distributed_table, create_reference_table, DDL on
// distributed tables and views over them are part of the block's distributed transaction: all
// or nothing with the block's other statements, and the block's statements after them see the
// change (the block's own metadata snapshot, read through the session's connection).
const herdUp = useHerdCluster("migrations-in-blocks", { workers: 2 });
let herd: pg.Client;

beforeAll(async () => {
  herd = await herdClient(herdUp.cluster);
}, 60_000);

afterAll(async () => {
  await herd?.end();
});

/** The shard tables named `<table>_<id>` on every worker, by worker ordinal. */
async function shardTablesOnWorkers(table: string): Promise<number> {
  let count = 0;
  for (const ordinal of [1, 2]) {
    const rows = await onServer(
      herdUp.cluster,
      ordinal,
      "SELECT 1 FROM pg_class WHERE relname ~ $1 AND relkind = 'r'",
      [`^${table}_[0-9]+$`],
    );
    count += rows.length;
  }
  return count;
}

/** Worker backends in an open transaction (the blocks herd is running there), on both workers. */
async function openTransactionsOnWorkers(): Promise<number> {
  let count = 0;
  for (const ordinal of [1, 2]) {
    const [row] = await onServer<{ n: number }>(
      herdUp.cluster,
      ordinal,
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()",
    );
    count += row?.n ?? 0;
  }
  return count;
}

/** For every placement of `table`: its columns and index names, as the worker holding it says. */
async function placementDefinitions(table: string): Promise<{ columns: string; indexes: string }[]> {
  const out: { columns: string; indexes: string }[] = [];
  for (const placement of await placements(herd, table)) {
    const ordinal = [1, 2].find((o) => serverPort(herdUp.cluster, o) === placement.nodeport) as number;
    const shard = `${table}_${placement.shardid}`;
    const [row] = await onServer<{ columns: string; indexes: string }>(
      herdUp.cluster,
      ordinal,
      `SELECT (SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
                WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped) AS columns,
              (SELECT string_agg(regexp_replace(c.relname, '_[0-9]+$', ''), ',' ORDER BY c.relname)
                 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1::regclass) AS indexes`,
      [shard],
    );
    out.push(row as { columns: string; indexes: string });
  }
  return out;
}

describe("a migration in one transaction block", () => {
  it("distributes, indexes, alters, seeds and records its version, all committed together", async () => {
    for (const sql of [
      "BEGIN",
      "CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL)",
      "SELECT create_distributed_table('accounts', 'id', shard_count => 4)",
      "CREATE INDEX accounts_name ON accounts (name)",
      "ALTER TABLE accounts ADD COLUMN plan text DEFAULT 'free'",
      "INSERT INTO accounts (id, name) SELECT i, 'acct' || i FROM generate_series(1, 50) i",
      "CREATE TABLE plans (name text PRIMARY KEY, seats int)",
      "SELECT create_reference_table('plans')",
      "INSERT INTO plans VALUES ('free', 1), ('pro', 10)",
      "CREATE TABLE users (account_id bigint, id bigint, email text, PRIMARY KEY (account_id, id))",
      "SELECT create_distributed_table('users', 'account_id', colocate_with => 'accounts')",
      "INSERT INTO users SELECT i % 50 + 1, i, 'u' || i FROM generate_series(1, 200) i",
      "CREATE VIEW account_seats AS SELECT a.id, p.seats FROM accounts a JOIN plans p ON p.name = a.plan",
      "UPDATE accounts SET plan = 'pro' WHERE id % 5 = 0",
      "CREATE TABLE schema_migrations (version text PRIMARY KEY)",
      "INSERT INTO schema_migrations VALUES ('20261202_accounts')",
    ])
      await herd.query(sql);
    // inside the block, its statements see what it made, through herd
    expect((await herd.query("SELECT sum(seats)::int AS seats FROM account_seats")).rows).toEqual([{ seats: 140 }]);
    expect(
      (
        await herd.query(
          "SELECT count(*)::int AS n FROM users u JOIN accounts a ON a.id = u.account_id WHERE a.plan = $1",
          ["pro"],
        )
      ).rows,
    ).toEqual([{ n: 40 }]);
    await herd.query("COMMIT");

    expect(
      (await herd.query("SELECT count(*)::int AS n, count(*) FILTER (WHERE plan = 'pro')::int AS pro FROM accounts"))
        .rows,
    ).toEqual([{ n: 50, pro: 10 }]);
    expect((await herd.query("SELECT count(*)::int AS n FROM users")).rows).toEqual([{ n: 200 }]);
    expect(
      (await herd.query("SELECT logicalrelid::text AS t, partmethod FROM pg_dist_partition ORDER BY 1")).rows,
    ).toEqual([
      { t: "accounts", partmethod: "h" },
      { t: "plans", partmethod: "n" },
      { t: "users", partmethod: "h" },
    ]);
    // every placement got the index and the column, on both replicas
    const definitions = await placementDefinitions("accounts");
    expect(definitions).toHaveLength(8);
    for (const definition of definitions)
      expect(definition).toEqual({ columns: "id,name,plan", indexes: "accounts_name,accounts_pkey" });
    expect((await herd.query("SELECT * FROM schema_migrations")).rows).toEqual([{ version: "20261202_accounts" }]);
    for (const ordinal of [1, 2]) expect(await preparedTransactions(herdUp.cluster, ordinal)).toEqual([]);
  });

  it("ROLLBACK undoes all of it: the new table, its shards, and the DDL on an existing one", async () => {
    for (const sql of [
      "BEGIN",
      "CREATE TABLE invoices (account_id bigint, id bigint, total numeric)",
      "SELECT create_distributed_table('invoices', 'account_id')",
      "INSERT INTO invoices VALUES (1, 1, 9.5), (2, 2, 3)",
      "ALTER TABLE accounts ADD COLUMN archived boolean",
      "DROP INDEX accounts_name",
      "DELETE FROM accounts WHERE id > 40",
    ])
      await herd.query(sql);
    expect((await herd.query("SELECT count(*)::int AS n FROM invoices")).rows).toEqual([{ n: 2 }]);
    await herd.query("ROLLBACK");

    expect((await herd.query("SELECT to_regclass('invoices') IS NULL AS gone")).rows).toEqual([{ gone: true }]);
    expect(await shardTablesOnWorkers("invoices")).toBe(0);
    expect(
      (await herd.query("SELECT count(*)::int AS n FROM pg_dist_shard WHERE logicalrelid::text = 'invoices'")).rows,
    ).toEqual([{ n: 0 }]);
    expect((await herd.query("SELECT count(*)::int AS n FROM accounts")).rows).toEqual([{ n: 50 }]);
    for (const definition of await placementDefinitions("accounts"))
      expect(definition).toEqual({ columns: "id,name,plan", indexes: "accounts_name,accounts_pkey" });
    // a later migration can make the same table again
    await herd.query("CREATE TABLE invoices (account_id bigint, id bigint)");
    await herd.query("SELECT create_distributed_table('invoices', 'account_id', colocate_with => 'accounts')");
    await herd.query("INSERT INTO invoices VALUES (3, 1)");
    expect((await herd.query("SELECT count(*)::int AS n FROM invoices")).rows).toEqual([{ n: 1 }]);
  });

  it("a failed statement fails the block: COMMIT rolls back what the migration had done", async () => {
    await herd.query("BEGIN");
    await herd.query("CREATE TABLE events (account_id bigint, at int)");
    await herd.query("SELECT create_distributed_table('events', 'account_id')");
    await herd.query("ALTER TABLE accounts ADD COLUMN region text");
    const failed = await answer(herd, "ALTER TABLE accounts ADD COLUMN region text");
    expect(failed).toMatchObject({ error: { code: "42701" } });
    expect(await answer(herd, "SELECT 1")).toMatchObject({ error: { code: "25P02" } });
    const commit = await herd.query("COMMIT");
    expect(commit.command).toBe("ROLLBACK");
    expect((await herd.query("SELECT to_regclass('events') IS NULL AS gone")).rows).toEqual([{ gone: true }]);
    expect(await shardTablesOnWorkers("events")).toBe(0);
    for (const definition of await placementDefinitions("accounts")) expect(definition.columns).toBe("id,name,plan");
  });

  it("ROLLBACK TO SAVEPOINT undoes a create_distributed_table and the block goes on with a local table", async () => {
    await herd.query("BEGIN");
    await herd.query("CREATE TABLE drafts (id int PRIMARY KEY)");
    await herd.query("SAVEPOINT before_distribute");
    await herd.query("SELECT create_distributed_table('drafts', 'id')");
    await herd.query("INSERT INTO drafts VALUES (1)");
    await herd.query("ROLLBACK TO SAVEPOINT before_distribute");
    // a local table again, in the same block: the row goes to the coordinator's PostgreSQL
    await herd.query("INSERT INTO drafts VALUES (2)");
    await herd.query("COMMIT");
    expect((await herd.query("SELECT id FROM drafts")).rows).toEqual([{ id: 2 }]);
    expect(
      (await herd.query("SELECT count(*)::int AS n FROM pg_dist_partition WHERE logicalrelid::text = 'drafts'")).rows,
    ).toEqual([{ n: 0 }]);
    expect(await shardTablesOnWorkers("drafts")).toBe(0);
  });

  it("CREATE and DROP INDEX CONCURRENTLY: refused in a block as PostgreSQL refuses them, run on every placement outside", async () => {
    await herd.query("BEGIN");
    expect(await answer(herd, "CREATE INDEX CONCURRENTLY accounts_plan ON accounts (plan)")).toMatchObject({
      error: { code: "25001", message: "CREATE INDEX CONCURRENTLY cannot run inside a transaction block" },
    });
    await herd.query("ROLLBACK");
    await herd.query("BEGIN");
    expect(await answer(herd, "DROP INDEX CONCURRENTLY accounts_name")).toMatchObject({
      error: { code: "25001", message: "DROP INDEX CONCURRENTLY cannot run inside a transaction block" },
    });
    await herd.query("ROLLBACK");
    await herd.query("CREATE INDEX CONCURRENTLY accounts_plan ON accounts (plan)");
    for (const definition of await placementDefinitions("accounts"))
      expect(definition.indexes).toBe("accounts_name,accounts_pkey,accounts_plan");
    await herd.query("DROP INDEX CONCURRENTLY accounts_plan");
    for (const definition of await placementDefinitions("accounts"))
      expect(definition.indexes).toBe("accounts_name,accounts_pkey");
  });
});

describe("other sessions while a migration's block is open", () => {
  it("a writer of an altered table waits for the block and then sees the new column", async () => {
    const writer = await herdClient(herdUp.cluster);
    try {
      await herd.query("BEGIN");
      await herd.query("ALTER TABLE accounts ADD COLUMN tier int DEFAULT 3");
      let written = false;
      const writing = writer
        .query("INSERT INTO accounts (id, name) VALUES (1001, 'late') RETURNING tier")
        .then((result) => {
          written = true;
          return result.rows;
        });
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(written).toBe(false);
      await herd.query("COMMIT");
      expect(await writing).toEqual([{ tier: 3 }]);
      expect((await writer.query("SELECT tier FROM accounts WHERE id = 7")).rows).toEqual([{ tier: 3 }]);
    } finally {
      await writer.end();
    }
  });

  it("a session gone in the middle of a migration leaves nothing: no table, no shards, no prepared transaction", async () => {
    const migrator = await herdClient(herdUp.cluster);
    migrator.on("error", () => {});
    await migrator.query("BEGIN");
    await migrator.query("CREATE TABLE abandoned (id int PRIMARY KEY)");
    await migrator.query("SELECT create_distributed_table('abandoned', 'id')");
    await migrator.query("INSERT INTO abandoned SELECT generate_series(1, 20)");
    // (the shard tables are not committed: other connections see only the open transactions)
    expect(await openTransactionsOnWorkers()).toBeGreaterThan(0);
    // the client vanishes without ROLLBACK
    (migrator as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    await within(30_000, "the workers rolled the block back", async () => (await openTransactionsOnWorkers()) === 0);
    expect(await shardTablesOnWorkers("abandoned")).toBe(0);
    expect((await herd.query("SELECT to_regclass('abandoned') IS NULL AS gone")).rows).toEqual([{ gone: true }]);
    for (const ordinal of [1, 2]) expect(await preparedTransactions(herdUp.cluster, ordinal)).toEqual([]);
    // the name is free again
    await herd.query("CREATE TABLE abandoned (id int PRIMARY KEY)");
    await herd.query("SELECT create_distributed_table('abandoned', 'id')");
  });
});
