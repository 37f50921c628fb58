import knexFactory, { type Knex } from "knex";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { divergentShards, herdClient } from "../faults/fault-kit.js";
import { useHerdCluster } from "../helpers/herd-up.js";

// Knex 3 as an application uses it: migrations in Knex's default transactional mode (each
// migration in its own BEGIN … COMMIT) that create tables, distribute them and alter them; a
// migration that fails half-way; then CRUD through the query builder, with Knex's upsert
// (onConflict().merge(), which sets the key to excluded.key), and the migrations rolled back.
const herd = useHerdCluster("knex", { workers: 2 });
let db: Knex;

/** Migrations given to Knex in memory (a migration source), in order. */
type Migration = { up(knex: Knex): Promise<void>; down(knex: Knex): Promise<void> };
function source(migrations: Record<string, Migration>): Knex.MigratorConfig["migrationSource"] {
  return {
    getMigrations: async () => Object.keys(migrations),
    getMigrationName: (name: string) => name,
    getMigration: async (name: string) => migrations[name] as Migration,
  };
}

const SCHEMA: Record<string, Migration> = {
  "001_tenants_and_projects": {
    async up(knex) {
      await knex.schema.createTable("tenants", (t) => {
        t.integer("id").primary();
        t.string("name", 80).notNullable();
      });
      await knex.raw("SELECT create_reference_table('tenants')");
      await knex.schema.createTable("projects", (t) => {
        t.integer("tenant_id").notNullable().references("id").inTable("tenants");
        t.integer("id").notNullable();
        t.string("title", 200);
        t.primary(["tenant_id", "id"]);
      });
      await knex.raw("SELECT create_distributed_table('projects', 'tenant_id')");
    },
    async down(knex) {
      await knex.schema.dropTable("projects");
      await knex.schema.dropTable("tenants");
    },
  },
  "002_project_status": {
    async up(knex) {
      await knex.schema.alterTable("projects", (t) => {
        t.string("status", 20).notNullable().defaultTo("open");
        t.index(["tenant_id", "status"], "projects_status_idx");
      });
    },
    async down(knex) {
      await knex.schema.alterTable("projects", (t) => {
        t.dropIndex(["tenant_id", "status"], "projects_status_idx");
        t.dropColumn("status");
      });
    },
  },
};

beforeAll(async () => {
  db = knexFactory({
    client: "pg",
    connection: { host: "127.0.0.1", port: herd.cluster.sqlPort, user: "postgres", password: "postgres" },
    pool: { min: 0, max: 4 },
  });
});

afterAll(async () => {
  await db?.destroy();
});

describe("Knex", () => {
  it("runs migrations that create, distribute and alter tables, each in its transaction", async () => {
    const [batch, log] = await db.migrate.latest({ migrationSource: source(SCHEMA) });
    expect(batch).toBe(1);
    expect(log).toEqual(["001_tenants_and_projects", "002_project_status"]);
    const kinds = await db.raw(
      "SELECT logicalrelid::text AS t, partmethod FROM pg_dist_partition WHERE logicalrelid::text IN ('tenants', 'projects') ORDER BY 1",
    );
    expect(kinds.rows).toEqual([
      { t: "projects", partmethod: "h" },
      { t: "tenants", partmethod: "n" },
    ]);
    const columns = await db("information_schema.columns")
      .where({ table_name: "projects" })
      .orderBy("ordinal_position")
      .pluck("column_name");
    expect(columns).toEqual(["tenant_id", "id", "title", "status"]);
  });

  it("a migration that fails half-way leaves nothing of itself, and the next run goes on from there", async () => {
    /** Creates and distributes `tasks`; `thenFail`: also alters projects, then fails. */
    const tasks = (thenFail: boolean): Migration => ({
      async up(knex) {
        await knex.schema.createTable("tasks", (t) => {
          t.integer("tenant_id").notNullable();
          t.integer("id").notNullable();
          t.primary(["tenant_id", "id"]);
        });
        await knex.raw("SELECT create_distributed_table('tasks', 'tenant_id', colocate_with => 'projects')");
        if (!thenFail) return;
        await knex.schema.alterTable("projects", (t) => t.integer("priority"));
        await knex.raw("SELECT 1/0");
      },
      async down(knex) {
        await knex.schema.dropTable("tasks");
      },
    });
    const failing: Record<string, Migration> = { ...SCHEMA, "003_tasks_then_failure": tasks(true) };
    await expect(db.migrate.latest({ migrationSource: source(failing) })).rejects.toThrow(/division by zero/);
    expect(await db.schema.hasTable("tasks")).toBe(false);
    expect(await db.schema.hasColumn("projects", "priority")).toBe(false);
    expect(
      (await db.raw("SELECT count(*)::int AS n FROM pg_dist_partition WHERE logicalrelid::text = 'tasks'")).rows,
    ).toEqual([{ n: 0 }]);
    // the same migration, fixed, then applies
    const fixed: Record<string, Migration> = { ...SCHEMA, "003_tasks_then_failure": tasks(false) };
    const [batch, log] = await db.migrate.latest({ migrationSource: source(fixed) });
    expect([batch, log]).toEqual([2, ["003_tasks_then_failure"]]);
    await db.migrate.rollback({ migrationSource: source(fixed) });
    expect(await db.schema.hasTable("tasks")).toBe(false);
  });

  it("reads and writes through the query builder: inserts, upserts with merge(), joins, updates, deletes", async () => {
    await db("tenants").insert([
      { id: 1, name: "acme" },
      { id: 2, name: "globex" },
    ]);
    const inserted = await db("projects")
      .insert([
        { tenant_id: 1, id: 1, title: "roadmap" },
        { tenant_id: 1, id: 2, title: "hiring" },
        { tenant_id: 2, id: 1, title: "launch" },
      ])
      .returning(["tenant_id", "id", "status"]);
    expect(inserted).toHaveLength(3);
    for (const row of inserted) expect(row.status).toBe("open");
    // Knex's upsert: ON CONFLICT (tenant_id, id) DO UPDATE SET tenant_id = excluded.tenant_id, …
    await db("projects")
      .insert([
        { tenant_id: 1, id: 2, title: "hiring (2027)" },
        { tenant_id: 2, id: 2, title: "support" },
      ])
      .onConflict(["tenant_id", "id"])
      .merge();
    await db("projects").where({ tenant_id: 1, id: 1 }).update({ status: "done" });
    await db("projects").where({ tenant_id: 2, id: 1 }).del();
    const joined = await db("projects as p")
      .join("tenants as t", "t.id", "p.tenant_id")
      .select("t.name", "p.id", "p.title", "p.status")
      .orderBy([{ column: "t.name" }, { column: "p.id" }]);
    expect(joined).toEqual([
      { name: "acme", id: 1, title: "roadmap", status: "done" },
      { name: "acme", id: 2, title: "hiring (2027)", status: "open" },
      { name: "globex", id: 2, title: "support", status: "open" },
    ]);
    const counts = await db("projects").select("status").count("* as n").groupBy("status").orderBy("status");
    expect(counts).toEqual([
      { status: "done", n: "1" },
      { status: "open", n: "2" },
    ]);
    // a Knex transaction over several shards: all of it or none
    await expect(
      db.transaction(async (trx) => {
        await trx("projects").insert({ tenant_id: 1, id: 9, title: "doomed" });
        await trx("projects").insert({ tenant_id: 2, id: 9, title: "doomed" });
        await trx("projects").insert({ tenant_id: 1, id: 1, title: "duplicate" });
      }),
    ).rejects.toThrow(/duplicate key/);
    expect(await db("projects").where({ id: 9 }).count("* as n")).toEqual([{ n: "0" }]);
    const client = await herdClient(herd.cluster);
    try {
      expect(await divergentShards(herd.cluster, client)).toEqual([]);
    } finally {
      await client.end();
    }
  });

  it("rolls every migration back to none", async () => {
    await db.migrate.rollback({ migrationSource: source(SCHEMA) }, true);
    expect(await db.schema.hasTable("projects")).toBe(false);
    expect(await db.schema.hasTable("tenants")).toBe(false);
    expect((await db.raw("SELECT count(*)::int AS n FROM pg_dist_partition")).rows).toEqual([{ n: 0 }]);
  });
});
