import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useHerdCluster } from "../helpers/herd-up.js";

const herd = useHerdCluster("postgres-js", { workers: 1 });

let sql: postgres.Sql;

beforeAll(async () => {
  // one connection, so concurrent queries are pipelined on it
  sql = postgres({
    host: "127.0.0.1",
    port: herd.cluster.sqlPort,
    user: "postgres",
    password: "postgres",
    database: "postgres",
    max: 1,
    onnotice: () => {},
  });
});

afterAll(async () => {
  await sql?.end({ timeout: 5 });
});

describe("postgres.js", () => {
  it("pipelines many queries on one connection, each answered in order", async () => {
    await sql`CREATE TABLE events (id int PRIMARY KEY, payload jsonb)`;
    const results = await Promise.all(
      Array.from({ length: 500 }, (_, i) => sql`SELECT ${i}::int AS i, ${`v${i}`}::text AS v, pg_backend_pid() AS pid`),
    );
    expect(results.map((rows) => ({ i: rows[0]?.i, v: rows[0]?.v }))).toEqual(
      Array.from({ length: 500 }, (_, i) => ({ i, v: `v${i}` })),
    );
    // all of them went through one client connection, hence one PostgreSQL session
    expect(new Set(results.map((rows) => rows[0]?.pid)).size).toBe(1);
  });

  it("pipelines writes, and one failing query does not disturb the others", async () => {
    await Promise.all(
      Array.from({ length: 200 }, (_, i) => sql`INSERT INTO events VALUES (${i}, ${sql.json({ n: i })})`),
    );
    // one pipeline, same statement shape: 25 good inserts, a duplicate key, 25 more good ones
    const insert = (id: number) => sql`INSERT INTO events VALUES (${id}, ${sql.json({})})`;
    const before = Array.from({ length: 25 }, (_, i) => insert(1000 + i));
    const duplicate = insert(5).catch((error: { code: string }) => error.code);
    const after = Array.from({ length: 25 }, (_, i) => insert(2000 + i));
    await Promise.all([...before, ...after]);
    expect(await duplicate).toBe("23505");
    const count = await sql`SELECT count(*)::int AS n FROM events`;
    expect(count[0]?.n).toBe(250);
  });

  it("runs transactions with savepoints", async () => {
    await sql.begin(async (tx) => {
      await tx`INSERT INTO events VALUES (5000, '{}')`;
      await tx
        .savepoint(async (sp) => {
          await sp`INSERT INTO events VALUES (5001, '{}')`;
          throw new Error("undo the savepoint");
        })
        .catch(() => {});
    });
    const rows = await sql`SELECT id FROM events WHERE id >= 5000 ORDER BY id`;
    expect(rows.map((r) => r.id)).toEqual([5000]);
  });

  it("cancels a running query (CancelRequest through the coordinator)", async () => {
    const started = Date.now();
    const query = sql`SELECT pg_sleep(30)`;
    const outcome = query.catch((error: { code: string }) => error.code);
    await new Promise((resolve) => setTimeout(resolve, 300));
    query.cancel();
    expect(await outcome).toBe("57014");
    expect(Date.now() - started).toBeLessThan(25_000); // cancelled, not finished
    const after = await sql`SELECT 1 AS ok`;
    expect(after[0]?.ok).toBe(1);
  });
});
