import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectTo, expectSameAnswer } from "../helpers/differential.js";
import { useHerdCluster } from "../helpers/herd-up.js";
import { startTestPostgres, type TestPostgres } from "../helpers/postgres.js";
import { msg, RawClient } from "../helpers/raw-client.js";

// The merge step's mechanics, beyond the answers the differential suites compare: EXPLAIN
// ANALYZE, transaction blocks, errors on either side of the merge, parameters through the
// extended protocol, a result larger than any buffer, and sessions merging side by side.
const herdUp = useHerdCluster("multi-shard", { workers: 3 });
let plain: TestPostgres;
let herd: pg.Client;
let direct: pg.Client;

const SETUP = [
  "CREATE TABLE sales (id int PRIMARY KEY, region text, qty int, price numeric(10,2))",
  `INSERT INTO sales SELECT g, (ARRAY['north', 'south', 'East', 'wést', NULL])[g % 5 + 1], g % 11, (g % 37) / 4.0
     FROM generate_series(1, 20000) g`,
];

beforeAll(async () => {
  plain = await startTestPostgres("multi-shard-plain");
  const herdConfig = { host: "127.0.0.1", port: herdUp.cluster.sqlPort, user: "postgres", password: "postgres" };
  herd = await connectTo(herdConfig);
  direct = await connectTo(plain.connection);
  for (const client of [herd, direct]) for (const sql of SETUP) await client.query(sql);
  await herd.query("SELECT create_distributed_table('sales', 'id')");
});

afterAll(async () => {
  await herd?.end();
  await direct?.end();
  await plain?.stop();
});

const same = (sql: string, params?: unknown[]) => expectSameAnswer(herd, direct, sql, params);

describe("merging on the coordinator", () => {
  it("explains the distributed plan, and EXPLAIN ANALYZE runs it with timings", async () => {
    const plan = await herd.query("EXPLAIN SELECT region, sum(qty) FROM sales GROUP BY region");
    const lines = plan.rows.map((row) => row["QUERY PLAN"] as string);
    expect(lines[0]).toMatch(
      /^Merge on coordinator \(partial aggregates\) sql=SELECT c1 AS region, \(sum\(c2\)\)::int8 AS sum FROM pg_temp.herd_merge GROUP BY c1$/,
    );
    expect(lines[1]).toMatch(/^ {2}Route read shards=\[(\d+,){31}\d+\] sql=SELECT region, sum\(qty\) FROM sales_\d+/);
    const analyzed = await herd.query("EXPLAIN ANALYZE SELECT region, sum(qty) FROM sales GROUP BY region");
    const text = analyzed.rows.map((row) => row["QUERY PLAN"]).join("\n");
    expect(text).toMatch(/Merge on coordinator .* \(actual time=\d+\.\d+ ms\)/);
    expect(text).toMatch(/Route read .* \(actual time=\d+\.\d+ ms rows=\d+ shards=32\)/);
    expect(text).toMatch(/^Rows: 5$/m);
    expect(text).toMatch(/^Execution Time: \d+\.\d+ ms$/m);
  });

  it("takes parameters in the worker part (WHERE) and the coordinator part (HAVING, LIMIT)", async () => {
    await same(
      "SELECT region, count(*), avg(price) FROM sales WHERE qty > $1 GROUP BY region HAVING count(*) > $2 ORDER BY 1 LIMIT $3",
      [3, 100, 3],
    );
    await same("SELECT id, price FROM sales WHERE region = $1 ORDER BY price DESC, id LIMIT $2 OFFSET $3", [
      "north",
      5,
      7,
    ]);
  });

  it("merges inside a transaction block and leaves no merge table behind", async () => {
    await herd.query("BEGIN");
    const first = await herd.query("SELECT count(*) AS n FROM sales");
    const second = await herd.query("SELECT region, count(*) FROM sales GROUP BY region ORDER BY region");
    await herd.query("COMMIT");
    expect(first.rows[0].n).toBe("20000");
    expect(second.rows).toHaveLength(5);
    const left = await herd.query("SELECT count(*) AS n FROM pg_class WHERE relname = 'herd_merge'");
    expect(left.rows[0].n).toBe("0");
  });

  it("reports a shard's error and a combine error as PostgreSQL would, and the session goes on", async () => {
    await same("SELECT sum(qty / (id - id)) FROM sales");
    await same("SELECT region, sum(qty) / (count(*) - count(*)) FROM sales GROUP BY region");
    await herd.query("BEGIN");
    const failed = await herd.query("SELECT sum(qty) / 0 FROM sales").catch((error: { code?: string }) => error);
    expect((failed as { code?: string }).code).toBe("22012");
    const aborted = await herd.query("SELECT count(*) FROM sales").catch((error: { code?: string }) => error);
    expect((aborted as { code?: string }).code).toBe("25P02");
    await herd.query("ROLLBACK");
    await same("SELECT count(*), sum(price) FROM sales");
  });

  it("streams a large ordered result through the merge", async () => {
    const herdRows = await herd.query("SELECT id, region, price FROM sales ORDER BY price, id");
    const plainRows = await direct.query("SELECT id, region, price FROM sales ORDER BY price, id");
    expect(herdRows.rowCount).toBe(20000);
    expect(herdRows.rows).toEqual(plainRows.rows);
  });

  it("lets several sessions merge at the same time", async () => {
    const config = { host: "127.0.0.1", port: herdUp.cluster.sqlPort, user: "postgres", password: "postgres" };
    const clients = await Promise.all(Array.from({ length: 4 }, () => connectTo(config)));
    try {
      const expected = await direct.query("SELECT region, sum(qty) FROM sales GROUP BY region ORDER BY region");
      const answers = await Promise.all(
        clients.flatMap((client) =>
          [1, 2, 3].map(() => client.query("SELECT region, sum(qty) FROM sales GROUP BY region ORDER BY region")),
        ),
      );
      for (const answer of answers) expect(answer.rows).toEqual(expected.rows);
    } finally {
      await Promise.all(clients.map((client) => client.end()));
    }
  });
});

describe("a merge in a read-only transaction", () => {
  it("is refused with a clear error, and one shard still answers", async () => {
    await herd.query("BEGIN READ ONLY");
    try {
      const error = await herd.query("SELECT count(*) FROM sales").catch((e: { code?: string; message: string }) => e);
      expect(error).toMatchObject({
        code: "25006",
        message: "herd cannot merge the shards' rows in a read-only transaction",
      });
    } finally {
      await herd.query("ROLLBACK");
    }
    await herd.query("BEGIN READ ONLY");
    const { rows } = await herd.query("SELECT count(*) AS n FROM sales WHERE id = 7");
    await herd.query("COMMIT");
    expect(rows[0].n).toBe("1");
  });
});

describe("a client that does not read", () => {
  it("holds the workers back instead of buffering the result in herd", async () => {
    // 20,000 rows of 5 kB (100 MB), appended from every shard: far more than socket buffers hold
    const sql = "SELECT id, repeat('x', 5000) FROM sales";
    const client = await RawClient.ready(herdUp.cluster.sqlPort);
    try {
      client.socket.pause();
      client.send(msg.query(sql));
      const workers = await Promise.all(
        [2, 3, 4].map((offset) =>
          // herd up: the coordinator's PostgreSQL on the SQL port + 1, the workers' after it
          connectTo({
            host: "127.0.0.1",
            port: herdUp.cluster.sqlPort + offset,
            user: "postgres",
            password: herdUp.cluster.internalPassword,
          }),
        ),
      );
      try {
        const waiting = async () => {
          const states = await Promise.all(
            workers.map((worker) =>
              worker.query<{ wait_event: string | null }>(
                "SELECT wait_event FROM pg_stat_activity WHERE query LIKE 'SELECT id, repeat%' AND state = 'active'",
              ),
            ),
          );
          return states.flatMap((state) => state.rows.map((row) => row.wait_event));
        };
        let events: (string | null)[] = [];
        for (let i = 0; i < 50 && !events.includes("ClientWrite"); i += 1) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          events = await waiting();
        }
        // a worker is blocked writing to herd, and stays so while the client does not read (herd
        // reading on regardless would have taken the 100 MB in well under these 4 s)
        expect(events).toContain("ClientWrite");
        await new Promise((resolve) => setTimeout(resolve, 4000));
        expect(await waiting()).toContain("ClientWrite");
      } finally {
        await Promise.all(workers.map((worker) => worker.end()));
      }
      client.socket.resume();
      let rows = 0;
      for (;;) {
        const frame = await client.next(30_000);
        if (frame.type === 0x44) rows += 1;
        if (frame.type === 0x5a) break;
      }
      expect(rows).toBe(20000);
    } finally {
      client.end();
    }
  });
});
