import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { answer, connectTo, expectSameAnswer } from "../helpers/differential.js";
import { eventually, useHerdCluster } from "../helpers/herd-up.js";
import { startTestPostgres, type TestPostgres } from "../helpers/postgres.js";
import { runAll } from "./schema.js";

// Unqualified names resolve through the session's search_path, as PostgreSQL resolves them:
// public.tt and s2.tt are both distributed on herd (ordinary tables on the plain PostgreSQL), and
// every statement must read and change the table PostgreSQL would, or fail as PostgreSQL does.
// Before, herd read public's table whatever the search_path, and UPDATE changed public.tt.
const herdUp = useHerdCluster("search-path", { workers: 2 });
let plain: TestPostgres;
let herd: pg.Client;
let direct: pg.Client;
const herdConfig = () => ({ host: "127.0.0.1", port: herdUp.cluster.sqlPort, user: "postgres", password: "postgres" });

const SCHEMA = [
  "CREATE SCHEMA s2",
  "CREATE SCHEMA s3",
  "CREATE TABLE public.tt (id int PRIMARY KEY, v text)",
  "CREATE TABLE s2.tt (id int PRIMARY KEY, v text)",
  "CREATE TABLE public.only_public (id int PRIMARY KEY, v text)",
];
const DISTRIBUTE = [
  "SELECT create_distributed_table('public.tt', 'id')",
  "SELECT create_distributed_table('s2.tt', 'id')",
  "SELECT create_distributed_table('public.only_public', 'id')",
];
const DATA = [
  "INSERT INTO public.tt SELECT i, 'public ' || i FROM generate_series(1, 20) i",
  "INSERT INTO s2.tt SELECT i, 's2 ' || i FROM generate_series(1, 10) i",
  "INSERT INTO only_public VALUES (1, 'only public')",
];

beforeAll(async () => {
  plain = await startTestPostgres("search-path-plain");
  herd = await connectTo(herdConfig());
  direct = await connectTo(plain.connection);
  // filled before they are distributed (the rows move to the shards)
  for (const client of [herd, direct]) await runAll(client, [...SCHEMA, ...DATA]);
  await runAll(herd, DISTRIBUTE);
});

afterAll(async () => {
  await herd?.end();
  await direct?.end();
  await plain?.stop();
});

/** Runs `sql` on both sides (setup), checking they agree on whether it worked. */
async function both(sql: string): Promise<void> {
  const [fromHerd, fromPlain] = await Promise.all([answer(herd, sql), answer(direct, sql)]);
  expect("error" in fromHerd, `${sql}: ${JSON.stringify(fromHerd)}`).toBe("error" in fromPlain);
}
const same = (sql: string, params?: unknown[]) => expectSameAnswer(herd, direct, sql, params, { ordered: false });
const tables = async () => {
  await same("SELECT * FROM public.tt");
  await same("SELECT * FROM s2.tt");
};

describe("SET search_path, simple and extended protocol", () => {
  it("reads the first schema's table, and public's once the path says so", async () => {
    await both("SET search_path TO s2, public");
    await same("SELECT * FROM tt");
    await same("SELECT v FROM tt WHERE id = $1", [3]);
    await same("SELECT count(*) FROM tt WHERE id > $1", [0]);
    await same("SELECT * FROM only_public");
    await both("SET search_path TO public, s2");
    await same("SELECT * FROM tt");
    await same("SELECT v FROM tt WHERE id = $1", [3]);
    await both("RESET search_path");
  });

  it("changes the table the path finds, and only it", async () => {
    await both("SET search_path TO s2, public");
    await same("UPDATE tt SET v = 'changed' WHERE id = 2 RETURNING *");
    await same("UPDATE tt SET v = $1 WHERE id = $2", ["changed too", 4]);
    await same("DELETE FROM tt WHERE id = 9 RETURNING id");
    await same("INSERT INTO tt VALUES (100, 'new') RETURNING *");
    await both("RESET search_path");
    await tables();
  });

  it("fails with 42P01 when no schema on the path has the table", async () => {
    await both("SET search_path TO s3");
    const result = await answer(herd, "SELECT * FROM tt");
    expect(result).toMatchObject({ error: { code: "42P01" } });
    await same("SELECT * FROM tt");
    await same("UPDATE tt SET v = 'x'");
    await both("RESET search_path");
  });

  it("follows SET LOCAL, undone by ROLLBACK, kept by COMMIT of SET", async () => {
    await both("BEGIN");
    await both("SET LOCAL search_path TO s2");
    await same("SELECT * FROM tt WHERE id = 1");
    await both("ROLLBACK");
    await same("SELECT * FROM tt WHERE id = 1");
    await both("BEGIN");
    await both("SET search_path TO s2");
    await same("SELECT * FROM tt WHERE id = 1");
    await both("ROLLBACK");
    await same("SELECT * FROM tt WHERE id = 1");
    await both("BEGIN");
    await both("SET search_path TO s2");
    await both("COMMIT");
    await same("SELECT * FROM tt WHERE id = 1");
    await both("RESET search_path");
  });

  it("follows set_config() and a path set in the same Query as the statement", async () => {
    await same("SELECT set_config('search_path', 's2', false)");
    await same("SELECT * FROM tt WHERE id = 1");
    await both("RESET search_path");
    for (const client of [herd, direct]) {
      const results = (await client.query(
        "SELECT v FROM tt WHERE id = 1; SET search_path TO s2; SELECT v FROM tt WHERE id = 1; RESET search_path; SELECT v FROM tt WHERE id = 1",
      )) as unknown as pg.QueryResult[];
      expect(results.filter((r) => r.command === "SELECT").map((r) => r.rows[0].v)).toEqual([
        "public 1",
        "s2 1",
        "public 1",
      ]);
    }
  });

  it("re-plans a named prepared statement when the path changes, as PostgreSQL does", async () => {
    const query = { name: "by_id", text: "SELECT v FROM tt WHERE id = $1", values: [1] };
    for (const client of [herd, direct]) {
      const first = await client.query(query);
      await client.query("SET search_path TO s2, public");
      const second = await client.query(query);
      await client.query("RESET search_path");
      expect([first.rows[0].v, second.rows[0].v]).toEqual(["public 1", "s2 1"]);
    }
  });
});

describe("search_path set elsewhere than SET", () => {
  it("follows the startup packet's options", async () => {
    const options = "-c search_path=s2,public";
    const [viaHerd, viaPlain] = await Promise.all([
      connectTo({ ...herdConfig(), options }),
      connectTo({ ...plain.connection, options }),
    ]);
    try {
      await expectSameAnswer(viaHerd, viaPlain, "SELECT * FROM tt WHERE id < 4", undefined, { ordered: false });
    } finally {
      await viaHerd.end();
      await viaPlain.end();
    }
  });

  it("follows ALTER ROLE … SET search_path for new sessions", async () => {
    await both("ALTER ROLE CURRENT_USER SET search_path = s2, public");
    try {
      const [viaHerd, viaPlain] = await Promise.all([connectTo(herdConfig()), connectTo(plain.connection)]);
      try {
        await expectSameAnswer(viaHerd, viaPlain, "SELECT * FROM tt WHERE id < 4", undefined, { ordered: false });
      } finally {
        await viaHerd.end();
        await viaPlain.end();
      }
    } finally {
      await both("ALTER ROLE CURRENT_USER RESET search_path");
    }
  });
});

describe("names a newer relation takes over", () => {
  it("reads a temporary table of the same name first (pg_temp), and the distributed one once it is dropped", async () => {
    await both("CREATE TEMP TABLE tt (id int, v text)");
    await both("INSERT INTO tt VALUES (7, 'temporary')");
    await same("SELECT * FROM tt");
    await same("SELECT * FROM public.tt WHERE id = 7");
    await both("DROP TABLE pg_temp.tt");
    await same("SELECT * FROM tt WHERE id = 7");
  });

  it("reads an ordinary table created later in an earlier schema of the path", async () => {
    await both("SET search_path TO s3, public");
    await same("SELECT * FROM only_public");
    await both("CREATE TABLE s3.only_public (id int, v text)");
    await both("INSERT INTO s3.only_public VALUES (5, 'shadow')");
    await same("SELECT * FROM only_public");
    await same("UPDATE only_public SET v = 'shadow changed' RETURNING *");
    await both("DROP TABLE s3.only_public");
    await same("SELECT * FROM only_public");
    await both("RESET search_path");
  });

  it("sees another session's new table on the path once that session committed it", async () => {
    const other = await connectTo(herdConfig());
    try {
      await herd.query("SET search_path TO s3, public");
      expect((await herd.query("SELECT v FROM only_public")).rows).toEqual([{ v: "only public" }]);
      await other.query("CREATE TABLE s3.only_public (id int, v text)");
      await other.query("INSERT INTO s3.only_public VALUES (1, 'from the other session')");
      // the other session's DDL reaches this one as a notification (migration 6)
      await eventually(async () => {
        expect((await herd.query("SELECT v FROM only_public")).rows).toEqual([{ v: "from the other session" }]);
        return true;
      });
    } finally {
      await other.query("DROP TABLE IF EXISTS s3.only_public");
      await other.end();
      await herd.query("RESET search_path");
    }
  });
});
