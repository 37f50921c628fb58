import { createHash } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useHerdCluster } from "../helpers/herd-up.js";

const herd = useHerdCluster("node-postgres", { workers: 1 });

let client: pg.Client;

beforeAll(async () => {
  client = new pg.Client({
    host: "127.0.0.1",
    port: herd.cluster.sqlPort,
    user: "postgres",
    password: "postgres",
    application_name: "herd-test",
  });
  await client.connect();
});

afterAll(async () => {
  await client?.end();
});

describe("node-postgres (pg)", () => {
  it("round-trips parameters of many types", async () => {
    const { rows } = await client.query(
      "SELECT $1::int AS i, $2::bigint AS b, $3::text AS t, $4::numeric AS n, $5::bool AS flag, $6::date AS d, $7::timestamptz AS ts, $8::int AS nothing, $9::jsonb AS j, $10::int[] AS arr, $11::bytea AS bytes",
      [
        42,
        "9007199254740993",
        "héllo 🐘",
        "12345.678901234567890",
        true,
        "2026-11-21",
        new Date("2026-11-21T12:34:56.789Z"),
        null,
        { a: [1, 2] },
        [1, 2, 3],
        Buffer.from([0, 1, 255]),
      ],
    );
    expect(rows[0]).toEqual({
      i: 42,
      b: "9007199254740993",
      t: "héllo 🐘",
      n: "12345.678901234567890",
      flag: true,
      d: expect.any(Date),
      ts: new Date("2026-11-21T12:34:56.789Z"),
      nothing: null,
      j: { a: [1, 2] },
      arr: [1, 2, 3],
      bytes: Buffer.from([0, 1, 255]),
    });
  });

  it("uses named prepared statements repeatedly", async () => {
    await client.query("CREATE TABLE kv (k int PRIMARY KEY, v text)");
    for (let i = 0; i < 20; i += 1) {
      await client.query({ name: "put", text: "INSERT INTO kv VALUES ($1, $2)", values: [i, `v${i}`] });
    }
    const { rows } = await client.query({ name: "get", text: "SELECT v FROM kv WHERE k = $1", values: [7] });
    expect(rows).toEqual([{ v: "v7" }]);
    expect((await client.query({ name: "get", text: "SELECT v FROM kv WHERE k = $1", values: [19] })).rows).toEqual([
      { v: "v19" },
    ]);
  });

  it("reports errors with their fields and keeps the connection usable", async () => {
    const error = await client.query("INSERT INTO kv VALUES (1, 'dup')").catch((e: pg.DatabaseError) => e);
    expect(error).toMatchObject({ code: "23505", constraint: "kv_pkey", table: "kv", schema: "public" });
    expect((error as pg.DatabaseError).detail).toBe("Key (k)=(1) already exists.");
    expect((await client.query("SELECT count(*)::int AS n FROM kv")).rows).toEqual([{ n: 20 }]);
  });

  it("delivers notices and keeps transaction semantics", async () => {
    const notices: string[] = [];
    client.on("notice", (notice) => notices.push(notice.message ?? ""));
    await client.query("DO $$ BEGIN RAISE NOTICE 'from plpgsql'; END $$");
    expect(notices).toEqual(["from plpgsql"]);
    await client.query("BEGIN");
    await client.query("DELETE FROM kv");
    await client.query("ROLLBACK");
    expect((await client.query("SELECT count(*)::int AS n FROM kv")).rows).toEqual([{ n: 20 }]);
  });

  it("streams a large result intact", async () => {
    const { rows } = await client.query("SELECT g, md5(g::text) AS h FROM generate_series(1, 100000) g");
    expect(rows).toHaveLength(100000);
    expect(rows[99999]).toEqual({ g: 100000, h: createHash("md5").update("100000").digest("hex") });
    expect(rows.every((row, i) => row.g === i + 1)).toBe(true);
  });

  it("passes startup parameters through and reports PostgreSQL 18", async () => {
    const { rows } = await client.query(
      "SELECT current_setting('application_name') AS app, current_setting('server_encoding') AS enc",
    );
    expect(rows).toEqual([{ app: "herd-test", enc: "UTF8" }]);
    const version = await client.query("SHOW server_version");
    expect(version.rows[0].server_version).toMatch(/^18\./);
  });

  it("reports the PostgreSQL backend's pid as its process id, so a client recognizes its own notifications", async () => {
    const processId = (client as unknown as { processID: number }).processID;
    const { rows } = await client.query("SELECT pg_backend_pid() AS pid");
    expect(processId).toBe(rows[0].pid);
    const received = new Promise<pg.Notification>((resolve) => client.once("notification", resolve));
    await client.query("LISTEN herd_test");
    await client.query("NOTIFY herd_test, 'hello'");
    expect(await received).toMatchObject({ channel: "herd_test", payload: "hello", processId });
  });
});
