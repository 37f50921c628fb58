import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { answer, connectTo, expectSameAnswer } from "../helpers/differential.js";
import { eventually, useHerdCluster } from "../helpers/herd-up.js";
import { startTestPostgres, type TestPostgres } from "../helpers/postgres.js";
import { runAll } from "./schema.js";

// Roles, privileges and row-level security, herd against one plain PostgreSQL 18: the same roles,
// grants and policies on both, then the same statements as each role, compared answer for answer
// and SQLSTATE for SQLSTATE (42501 included), through herd's router, fan-out, merge, recursive
// plans, INSERT, UPDATE, DELETE, COPY and DDL. Before, only `postgres` could log in through herd,
// and routed statements ran on the workers as the superuser, so none of this was enforced.
const herdUp = useHerdCluster("privileges", { workers: 2 });
let plain: TestPostgres;
let herdAdmin: pg.Client;
let plainAdmin: pg.Client;
const execFileAsync = promisify(execFile);

const ROLES: Record<string, string> = {
  app: "app-password",
  nobody: "nobody-password",
  tenant1: "tenant1-password",
  keeper: "keeper-password",
};

const SETUP = [
  "CREATE ROLE reader NOLOGIN",
  "CREATE ROLE app LOGIN PASSWORD 'app-password'",
  "CREATE ROLE nobody LOGIN PASSWORD 'nobody-password'",
  "CREATE ROLE tenant1 LOGIN PASSWORD 'tenant1-password'",
  "CREATE ROLE keeper LOGIN PASSWORD 'keeper-password'",
  "GRANT reader TO app",
  "CREATE TABLE secret (id int PRIMARY KEY, tenant int NOT NULL, v text)",
  "CREATE TABLE items (id int PRIMARY KEY, tenant int NOT NULL, qty int)",
  "CREATE TABLE ref (id int PRIMARY KEY, label text, hidden text)",
  "CREATE TABLE notes (id int PRIMARY KEY, author text NOT NULL, body text)",
  "CREATE TABLE kept (id int PRIMARY KEY, n int)",
  "CREATE TABLE counters (id bigserial PRIMARY KEY, n int)",
  "CREATE SCHEMA vault",
  "CREATE TABLE vault.gold (id int PRIMARY KEY, grams int)",
  "INSERT INTO secret SELECT i, i % 3, 'secret ' || i FROM generate_series(1, 30) i",
  "INSERT INTO items SELECT i, i % 3, i * 10 FROM generate_series(1, 30) i",
  "INSERT INTO ref VALUES (1, 'one', 'h1'), (2, 'two', 'h2')",
  "INSERT INTO notes VALUES (1, 'app', 'by app'), (2, 'tenant1', 'by tenant1'), (3, 'nobody', 'by nobody')",
  "INSERT INTO kept SELECT i, i FROM generate_series(1, 10) i",
  "INSERT INTO vault.gold VALUES (1, 100), (2, 250)",
  // granted before the table is distributed: its shards must be made with it
  "GRANT SELECT (id, label) ON ref TO nobody",
  "CREATE TABLE allowed (id int)",
  "INSERT INTO allowed VALUES (1), (3)",
  "CREATE FUNCTION allowed_ids() RETURNS SETOF int SECURITY DEFINER LANGUAGE sql AS 'SELECT id FROM allowed'",
  "REVOKE ALL ON allowed FROM PUBLIC",
];
const DISTRIBUTE = [
  "SELECT create_distributed_table('secret', 'id')",
  "SELECT create_distributed_table('items', 'id', colocate_with => 'secret')",
  "SELECT create_reference_table('ref')",
  "SELECT create_distributed_table('notes', 'id')",
  "SELECT create_distributed_table('kept', 'id')",
  "SELECT create_distributed_table('vault.gold', 'id')",
  "SELECT create_distributed_table('counters', 'id')",
];
// granted once the tables are distributed: herd carries each to every placement
const GRANTS = [
  "GRANT SELECT ON secret TO reader",
  "GRANT SELECT, INSERT, UPDATE ON items TO app",
  "GRANT ALL ON items TO tenant1",
  "GRANT SELECT ON ref TO tenant1",
  "ALTER TABLE items ENABLE ROW LEVEL SECURITY",
  "CREATE POLICY tenant_one ON items FOR ALL TO tenant1 USING (tenant = 1) WITH CHECK (tenant = 1)",
  "CREATE POLICY app_reads ON items FOR SELECT TO app USING (qty < 100)",
  "CREATE POLICY app_writes ON items FOR INSERT TO app WITH CHECK (true)",
  "CREATE POLICY app_updates ON items FOR UPDATE TO app USING (qty < 100)",
  "GRANT SELECT, INSERT ON notes TO PUBLIC",
  "ALTER TABLE notes ENABLE ROW LEVEL SECURITY",
  "CREATE POLICY own_notes ON notes USING (author = current_user) WITH CHECK (author = current_user)",
  "ALTER TABLE kept OWNER TO keeper",
  "GRANT SELECT ON ALL TABLES IN SCHEMA vault TO app",
  "GRANT SELECT, INSERT ON counters TO app",
];

/** What each role runs, in order, on both sides. */
const STATEMENTS = [
  "SELECT current_user, session_user",
  "SELECT * FROM secret WHERE id = 1",
  "SELECT count(*) FROM secret",
  "SELECT tenant, count(*) FROM secret GROUP BY tenant ORDER BY tenant",
  "SELECT id, tenant, qty FROM items ORDER BY id",
  "SELECT tenant, sum(qty) FROM items GROUP BY tenant ORDER BY tenant",
  "SELECT i.id, s.v FROM items i JOIN secret s ON s.id = i.id WHERE i.id < 5 ORDER BY 1",
  "SELECT count(*) FROM items WHERE id IN (SELECT id FROM secret WHERE tenant = 2)",
  "WITH s AS MATERIALIZED (SELECT id FROM secret) SELECT count(*) FROM s",
  "SELECT id, label FROM ref ORDER BY id",
  "SELECT * FROM ref ORDER BY id",
  "SELECT id, author, body FROM notes ORDER BY id",
  "INSERT INTO notes VALUES (10 + length(current_user), current_user, 'mine')",
  "INSERT INTO notes VALUES (40 + length(current_user), 'someone else', 'not mine')",
  "SELECT id, author FROM notes ORDER BY id",
  "INSERT INTO items VALUES (100, 1, 5)",
  "INSERT INTO items VALUES (101, 2, 5)",
  "UPDATE items SET qty = qty + 1 WHERE id = 1",
  "UPDATE items SET qty = qty + 1 WHERE tenant = 1",
  "DELETE FROM items WHERE id = 100",
  "SELECT id, tenant, qty FROM items ORDER BY id",
  "SELECT count(*) FROM vault.gold",
  "INSERT INTO counters (n) VALUES (1) RETURNING n",
  "SELECT count(*) FROM allowed",
  "SELECT count(*) FROM allowed_ids()",
  "SELECT count(*) FROM kept",
  "UPDATE kept SET n = n + 1 WHERE id = 2",
  "CREATE INDEX kept_n ON kept (n)",
  "TRUNCATE items",
  "ALTER TABLE secret ADD COLUMN extra int",
  "DROP TABLE items",
];

/** SET ROLE in a session: the workers see the role the session has now. */
const SET_ROLE_STATEMENTS = [
  "SET ROLE reader",
  "SELECT current_user, session_user",
  "SELECT count(*) FROM secret",
  "SELECT count(*) FROM items",
  "RESET ROLE",
  "SELECT count(*) FROM items",
  "SET ROLE nobody",
  "SELECT current_user",
];

function roleConfig(port: number, user: string, password: string): pg.ClientConfig {
  return { host: "127.0.0.1", port, user, password, database: "postgres" };
}

async function asRole(user: string): Promise<{ herd: pg.Client; plain: pg.Client }> {
  const password = ROLES[user] as string;
  return {
    herd: await connectTo(roleConfig(herdUp.cluster.sqlPort, user, password)),
    plain: await connectTo(roleConfig(plain.port, user, password)),
  };
}

beforeAll(async () => {
  plain = await startTestPostgres("privileges-plain");
  herdAdmin = await connectTo(roleConfig(herdUp.cluster.sqlPort, "postgres", "postgres"));
  plainAdmin = await connectTo(plain.connection);
  for (const client of [herdAdmin, plainAdmin]) await runAll(client, SETUP);
  await runAll(herdAdmin, DISTRIBUTE);
  for (const client of [herdAdmin, plainAdmin]) await runAll(client, GRANTS);
});

afterAll(async () => {
  await herdAdmin?.end();
  await plainAdmin?.end();
  await plain?.stop();
});

describe("logging in", () => {
  it("lets every role with a password log in through herd, as itself", async () => {
    for (const user of Object.keys(ROLES)) {
      const { herd, plain: direct } = await asRole(user);
      try {
        await expectSameAnswer(herd, direct, "SELECT current_user, session_user, pg_has_role('reader', 'MEMBER')");
      } finally {
        await herd.end();
        await direct.end();
      }
    }
  });

  it.each([
    ["app", "wrong-password"],
    ["reader", "anything"],
    ["no_such_role", "anything"],
  ])("refuses %s with %s as PostgreSQL does", async (user, password) => {
    const failure = async (port: number) => {
      const client = new pg.Client(roleConfig(port, user, password));
      const error = (await client.connect().then(
        () => undefined,
        (e: unknown) => e,
      )) as { code?: string; message?: string } | undefined;
      await client.end().catch(() => {});
      return { code: error?.code, message: error?.message };
    };
    const [fromHerd, fromPlain] = [await failure(herdUp.cluster.sqlPort), await failure(plain.port)];
    expect(fromHerd.code).toBe("28P01");
    expect(fromHerd).toEqual(fromPlain);
  });

  it("keeps a role's application password off the workers (herd logs in there with its own)", async () => {
    const { rows } = await herdAdmin.query<{ nodeport: number }>("SELECT nodeport FROM pg_dist_node");
    expect(rows.length).toBe(2);
    for (const { nodeport } of rows) {
      for (const [user, password] of [
        ["app", ROLES.app],
        ["postgres", "postgres"],
      ] as const) {
        const client = new pg.Client(roleConfig(nodeport, user, password as string));
        await expect(client.connect()).rejects.toMatchObject({ code: "28P01" });
        await client.end().catch(() => {});
      }
    }
  });
});

describe("the same answers as PostgreSQL, role by role", () => {
  it.each(Object.keys(ROLES))("as %s", async (user) => {
    const { herd, plain: direct } = await asRole(user);
    try {
      for (const sql of STATEMENTS) await expectSameAnswer(herd, direct, sql);
    } finally {
      await herd.end();
      await direct.end();
    }
  });

  it("as app after SET ROLE, and RESET ROLE", async () => {
    const { herd, plain: direct } = await asRole("app");
    try {
      for (const sql of SET_ROLE_STATEMENTS) await expectSameAnswer(herd, direct, sql);
      // inside a transaction block: SET LOCAL ROLE ends with it, and ROLLBACK undoes a SET ROLE
      for (const sql of [
        "BEGIN",
        "SET LOCAL ROLE reader",
        "SELECT count(*) FROM items",
        "COMMIT",
        "SELECT count(*) FROM items",
        "BEGIN",
        "SET ROLE reader",
        "ROLLBACK",
        "SELECT current_user, count(*) FROM items GROUP BY 1",
        "SELECT set_config('role', 'reader', false)",
        "SELECT current_user, count(*) FROM secret GROUP BY 1",
        "SELECT count(*) FROM items",
      ])
        await expectSameAnswer(herd, direct, sql);
    } finally {
      await herd.end();
      await direct.end();
    }
  });

  it("as postgres after SET SESSION AUTHORIZATION", async () => {
    const herd = await connectTo(roleConfig(herdUp.cluster.sqlPort, "postgres", "postgres"));
    const direct = await connectTo(plain.connection);
    try {
      for (const sql of [
        "SET SESSION AUTHORIZATION tenant1",
        "SELECT current_user, session_user",
        "SELECT id, tenant FROM items WHERE id < 10 ORDER BY id",
        "SELECT count(*) FROM secret",
        "RESET SESSION AUTHORIZATION",
        "SELECT count(*) FROM secret",
      ])
        await expectSameAnswer(herd, direct, sql);
    } finally {
      await herd.end();
      await direct.end();
    }
  });

  it("COPY into a table follows the role's privileges and policies", async () => {
    const file = join(herdUp.dir, "items.csv");
    await writeFile(file, "200,1,1\n201,1,2\n");
    const copyAs = async (port: number, user: string) =>
      execFileAsync(
        "psql",
        [
          "-X",
          "-h",
          "127.0.0.1",
          "-p",
          String(port),
          "-U",
          user,
          "-d",
          "postgres",
          "-c",
          `\\copy items FROM '${file}' WITH (FORMAT csv)`,
        ],
        { env: { ...process.env, PGPASSWORD: ROLES[user] } },
      ).then(
        ({ stdout }) => stdout.trim(),
        (error: { stderr: string }) => error.stderr.trim(),
      );
    for (const user of ["nobody", "tenant1"]) {
      const [fromHerd, fromPlain] = [await copyAs(herdUp.cluster.sqlPort, user), await copyAs(plain.port, user)];
      expect(fromHerd, user).toBe(fromPlain);
    }
    await expectSameAnswer(herdAdmin, plainAdmin, "SELECT id, tenant, qty FROM items WHERE id >= 200 ORDER BY id");
  });

  it("a sequence's privileges hold for the defaults herd evaluates", async () => {
    await expectSameAnswer(herdAdmin, plainAdmin, "GRANT USAGE ON SEQUENCE counters_id_seq TO app");
    const { herd, plain: direct } = await asRole("app");
    try {
      for (const sql of [
        "INSERT INTO counters (n) VALUES (2) RETURNING id, n",
        "SELECT id, n FROM counters ORDER BY id",
      ])
        await expectSameAnswer(herd, direct, sql);
    } finally {
      await herd.end();
      await direct.end();
    }
  });

  it("REVOKE and DROP POLICY reach every placement as well", async () => {
    for (const sql of ["REVOKE SELECT ON secret FROM reader", "DROP POLICY app_reads ON items"]) {
      await expectSameAnswer(herdAdmin, plainAdmin, sql);
    }
    const { herd, plain: direct } = await asRole("app");
    try {
      for (const sql of [
        "SELECT count(*) FROM secret",
        "SELECT count(*) FROM items",
        "SELECT count(*) FROM secret WHERE id = 3",
      ])
        await expectSameAnswer(herd, direct, sql);
    } finally {
      await herd.end();
      await direct.end();
    }
    await expectSameAnswer(herdAdmin, plainAdmin, "GRANT SELECT ON secret TO reader");
  });
});

describe("roles on the workers", () => {
  it("follow CREATE, ALTER, GRANT, RENAME and DROP ROLE, also from a transaction block", async () => {
    const workerRoles = async () => {
      const { rows } = await herdAdmin.query<{ nodeport: number }>("SELECT nodeport FROM pg_dist_node ORDER BY 1");
      return Promise.all(
        rows.map(async ({ nodeport }) => {
          const client = await connectTo({
            ...roleConfig(nodeport, "postgres", herdUp.cluster.internalPassword),
          });
          try {
            const result = await client.query<{ r: string }>(
              `SELECT r.rolname || ':' || r.rolcanlogin || ':' || r.rolcreatedb ||
                      coalesce(':' || (SELECT string_agg(g.rolname, ',' ORDER BY g.rolname) FROM pg_auth_members m
                                        JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid), '') AS r
                 FROM pg_roles r WHERE r.rolname LIKE 'temp\\_%' ORDER BY 1`,
            );
            return result.rows.map((row) => row.r);
          } finally {
            await client.end();
          }
        }),
      );
    };
    await runAll(herdAdmin, [
      "CREATE ROLE temp_a LOGIN PASSWORD 'a'",
      "ALTER ROLE temp_a CREATEDB",
      "CREATE ROLE temp_b",
      "GRANT temp_b TO temp_a",
    ]);
    expect(await workerRoles()).toEqual([
      ["temp_a:true:true:temp_b", "temp_b:false:false"],
      ["temp_a:true:true:temp_b", "temp_b:false:false"],
    ]);
    await runAll(herdAdmin, ["ALTER ROLE temp_b RENAME TO temp_c", "REVOKE temp_c FROM temp_a"]);
    expect(await workerRoles()).toEqual([
      ["temp_a:true:true", "temp_c:false:false"],
      ["temp_a:true:true", "temp_c:false:false"],
    ]);
    await runAll(herdAdmin, ["BEGIN", "CREATE ROLE temp_d", "DROP ROLE temp_c", "COMMIT"]);
    // the next distributed statement of the session finds them synced
    await herdAdmin.query("SELECT count(*) FROM secret");
    expect(await workerRoles()).toEqual([
      ["temp_a:true:true", "temp_d:false:false"],
      ["temp_a:true:true", "temp_d:false:false"],
    ]);
    // a role made where herd does not look (a DO block) arrives with the periodic pass
    await herdAdmin.query("DO $$ BEGIN CREATE ROLE temp_e; END $$");
    await eventually(async () =>
      (await workerRoles()).every((roles) => roles.includes("temp_e:false:false")) ? true : undefined,
    );
    await runAll(herdAdmin, ["DROP ROLE temp_a", "DROP ROLE temp_d", "DROP ROLE temp_e"]);
    expect(await workerRoles()).toEqual([[], []]);
  });

  it("lets a table's owner distribute it, use it and drop it, and nobody else", async () => {
    await herdAdmin.query("GRANT CREATE ON SCHEMA public TO keeper");
    const keeper = await connectTo(roleConfig(herdUp.cluster.sqlPort, "keeper", ROLES.keeper as string));
    const nobody = await connectTo(roleConfig(herdUp.cluster.sqlPort, "nobody", ROLES.nobody as string));
    try {
      await runAll(keeper, [
        "CREATE TABLE mine (id int PRIMARY KEY, v text)",
        "INSERT INTO mine SELECT i, 'v' || i FROM generate_series(1, 20) i",
        "CREATE TABLE theirs (id int PRIMARY KEY)",
      ]);
      expect(await answer(nobody, "SELECT create_distributed_table('mine', 'id')")).toMatchObject({
        error: { code: "42501", message: "must be owner of table mine" },
      });
      await keeper.query("SELECT create_distributed_table('mine', 'id')");
      expect((await keeper.query("SELECT count(*)::int AS n FROM mine")).rows).toEqual([{ n: 20 }]);
      expect((await keeper.query("UPDATE mine SET v = 'x' WHERE id = 3")).rowCount).toBe(1);
      expect(await answer(nobody, "SELECT count(*) FROM mine")).toMatchObject({ error: { code: "42501" } });
      expect(await answer(nobody, "DROP TABLE mine")).toMatchObject({
        error: { code: "42501", message: "must be owner of table mine" },
      });
      await keeper.query("DROP TABLE mine");
      await keeper.query("DROP TABLE theirs");
      expect(
        (await herdAdmin.query("SELECT count(*)::int AS n FROM pg_dist_partition WHERE logicalrelid::text = 'mine'"))
          .rows,
      ).toEqual([{ n: 0 }]);
    } finally {
      await keeper.end();
      await nobody.end();
    }
  });

  it("refuses to change the SQL user's password in SQL (it is the cluster's)", async () => {
    const result = await answer(herdAdmin, "ALTER ROLE postgres PASSWORD 'x'");
    expect(result).toMatchObject({ error: { code: "0A000" } });
  });

  it("keeps several roles' sessions apart on shared worker connections", async () => {
    const sessions = await Promise.all(
      ["app", "tenant1", "nobody", "keeper"].map(async (user) => ({
        user,
        client: await connectTo(roleConfig(herdUp.cluster.sqlPort, user, ROLES[user] as string)),
      })),
    );
    const expected = new Map<string, string>();
    for (const { user, client } of sessions) {
      const result = await answer(client, "SELECT current_user, count(*) FROM notes GROUP BY 1");
      expected.set(user, JSON.stringify(result));
    }
    try {
      await Promise.all(
        sessions.map(async ({ user, client }) => {
          for (let i = 0; i < 40; i += 1) {
            const result = await answer(client, "SELECT current_user, count(*) FROM notes GROUP BY 1");
            expect(JSON.stringify(result), user).toBe(expected.get(user));
          }
        }),
      );
    } finally {
      await Promise.all(sessions.map(({ client }) => client.end()));
    }
    expect(new Set(expected.values()).size).toBe(4);
  });
});
