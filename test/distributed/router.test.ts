import { createConnection } from "node:net";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectTo, expectHerdError, expectSameAnswer, sorted } from "../helpers/differential.js";
import { useHerdCluster } from "../helpers/herd-up.js";
import { startTestPostgres, type TestPostgres } from "../helpers/postgres.js";
import { DISTRIBUTE, dataStatements, runAll, SCHEMA } from "./schema.js";

// The router's proof: the same schema, data and statements through herd (3 workers, 32 shards,
// every shard on two workers) and on one plain PostgreSQL; answers must be identical.
const herdUp = useHerdCluster("router", { workers: 3 });
let plain: TestPostgres;
let herd: pg.Client;
let direct: pg.Client;

beforeAll(async () => {
  plain = await startTestPostgres("router-plain");
  herd = await connectTo({ host: "127.0.0.1", port: herdUp.cluster.sqlPort, user: "postgres", password: "postgres" });
  direct = await connectTo(plain.connection);
  const data = dataStatements();
  for (const client of [herd, direct]) await runAll(client, SCHEMA);
  // customers are filled before they are distributed (their rows move to the shards), the rest after
  for (const client of [herd, direct]) await runAll(client, data.slice(0, 2));
  await runAll(herd, DISTRIBUTE);
  for (const client of [herd, direct]) await runAll(client, data.slice(2));
});

afterAll(async () => {
  await herd?.end();
  await direct?.end();
  await plain?.stop();
});

const same = (sql: string, params?: unknown[], options?: { ordered?: boolean }) =>
  expectSameAnswer(herd, direct, sql, params, options);

describe("router reads, herd vs one PostgreSQL", () => {
  const cases: [string, unknown[]?][] = [
    ["SELECT * FROM customers WHERE tenant_id = 7 ORDER BY id"],
    ["SELECT name, country FROM customers WHERE tenant_id = $1 AND id = $2", [3, 4]],
    ["SELECT * FROM customers WHERE id = 5 AND tenant_id = '12'"],
    ["SELECT tenant_id, id, since FROM customers WHERE tenant_id IN (1, 2, 19)"],
    ["SELECT tenant_id, id FROM customers WHERE tenant_id = ANY($1)", [[4, 5, 6]]],
    ["SELECT tenant_id, id FROM customers WHERE tenant_id = ANY(ARRAY[8, 9])"],
    [
      `SELECT c.name, o.id, o.amount FROM customers c JOIN orders o ON o.tenant_id = c.tenant_id AND o.customer_id = c.id
        WHERE c.tenant_id = 5 ORDER BY o.id`,
    ],
    [
      `SELECT o.id, co.name FROM orders o
         JOIN customers c ON c.tenant_id = o.tenant_id AND c.id = o.customer_id
         JOIN countries co ON co.code = c.country
        WHERE o.tenant_id = $1 ORDER BY o.id`,
      [8],
    ],
    [
      "SELECT status, count(*), sum(amount), avg(amount), min(placed_at) FROM orders WHERE tenant_id = 3 GROUP BY status ORDER BY status",
    ],
    ["SELECT * FROM orders WHERE tenant_id = 2 ORDER BY amount DESC NULLS LAST, id LIMIT 5 OFFSET 2"],
    ["WITH big AS (SELECT * FROM orders WHERE tenant_id = 4 AND amount > 50) SELECT count(*), sum(amount) FROM big"],
    [
      "SELECT id, amount, rank() OVER (ORDER BY amount DESC NULLS LAST, id) FROM orders WHERE tenant_id = 6 ORDER BY id",
    ],
    ["SELECT DISTINCT status FROM orders WHERE tenant_id = 9 ORDER BY 1"],
    [
      `SELECT * FROM customers c WHERE c.tenant_id = 10
          AND EXISTS (SELECT 1 FROM orders o WHERE o.tenant_id = 10 AND o.customer_id = c.id) ORDER BY id`,
    ],
    ["SELECT * FROM countries ORDER BY code"],
    ["SELECT count(*) FROM countries WHERE code LIKE $1", ["%e"]],
    ["SELECT count(*) FROM orders WHERE tenant_id = 999"],
    ["SELECT * FROM customers WHERE tenant_id = 11 AND id = 3 FOR UPDATE"],
    ["SELECT tenant_id, id, name FROM customers WHERE country = 'se'"],
    [
      "SELECT amount, placed_at, tenant_id::bigint AS t, amount * 2 AS double FROM orders WHERE tenant_id = 1 ORDER BY id",
    ],
    ["SELECT * FROM customers WHERE tenant_id = NULL"],
    ["SELECT 1 FROM customers WHERE tenant_id = 1 AND id = 1 AND name IS NOT NULL"],
  ];
  for (const [sql, params] of cases) {
    it(sql.replace(/\s+/g, " "), async () => {
      await same(sql, params);
    });
  }

  it("finds a uuid-distributed row by a parameter and by a literal", async () => {
    const { rows } = await direct.query("SELECT id FROM events ORDER BY id LIMIT 3");
    for (const { id } of rows as { id: string }[]) {
      await same("SELECT * FROM events WHERE id = $1", [id]);
      await same(`SELECT kind FROM events WHERE id = '${id}'`);
    }
  });

  it("runs a named prepared statement many times, each execution on its own shard", async () => {
    for (let tenant = 1; tenant <= 20; tenant += 1) {
      const query = {
        name: "by-tenant",
        text: "SELECT id, name FROM customers WHERE tenant_id = $1 ORDER BY id",
        values: [tenant],
      };
      const [a, b] = await Promise.all([herd.query(query), direct.query(query)]);
      expect(a.rows).toEqual(b.rows);
    }
  });
});

describe("writes, herd vs one PostgreSQL", () => {
  const writes: [string, unknown[]?][] = [
    [
      "UPDATE orders SET status = 'paid', amount = amount * 2 WHERE tenant_id = 3 AND id % 2 = 0 RETURNING id, status, amount",
    ],
    ["DELETE FROM orders WHERE tenant_id = 4 AND amount < 20 RETURNING id"],
    [
      "INSERT INTO customers VALUES (1, 100, 'x', 'se', '2024-01-01'), (2, 100, 'y', 'no', NULL), (3, 100, 'z', 'dk', '2024-02-29') RETURNING *",
    ],
    [
      "INSERT INTO customers VALUES (1, 100, 'dup', 'se', NULL) ON CONFLICT (tenant_id, id) DO UPDATE SET name = EXCLUDED.name RETURNING *",
    ],
    ["INSERT INTO customers VALUES (1, 100, 'again', 'se', NULL) ON CONFLICT DO NOTHING"],
    [
      "INSERT INTO orders (tenant_id, customer_id, amount) VALUES ($1, $2, $3) RETURNING id, status, amount",
      [5, 2, "10.50"],
    ],
    [
      "INSERT INTO orders (tenant_id, customer_id, amount, placed_at) VALUES (5, 1, 10.5, '2024-03-01 10:00') RETURNING id",
    ],
    [
      "INSERT INTO orders (tenant_id, customer_id, amount, status) VALUES (6, 1, 1, DEFAULT), (7, 2, 2, 'paid'), (8, 3, 3, upper('x')) RETURNING *",
    ],
    [
      "INSERT INTO orders (tenant_id, customer_id, amount) VALUES ($1, 1, 5), ($2, 2, 6) RETURNING tenant_id, id",
      [9, 10],
    ],
    ["UPDATE customers SET name = upper(name) WHERE tenant_id IN (1, 2) AND id < 4"],
    [
      "UPDATE customers SET country = 'fi' FROM countries WHERE countries.code = customers.country AND countries.name = 'Norway' AND customers.tenant_id = 12",
    ],
    ["DELETE FROM orders WHERE status = 'cancelled' AND amount > 190"],
    [
      "UPDATE orders SET amount = NULL WHERE tenant_id = 13 AND id IN (SELECT id FROM orders WHERE tenant_id = 13 ORDER BY id LIMIT 2)",
    ],
    ["INSERT INTO countries VALUES ('is', 'Iceland') RETURNING *"],
    ["UPDATE countries SET name = 'Suomi' WHERE code = 'fi'"],
    ["INSERT INTO customers VALUES (4, 1, 'clash', 'se', NULL)"],
    [
      "INSERT INTO events VALUES ('00000000-0000-0000-0000-000000000001', 'x', '2024-01-01 00:00:00+00'::timestamptz + interval '1 day', '{}') RETURNING id, kind",
    ],
  ];
  for (const [sql, params] of writes) {
    it(sql.replace(/\s+/g, " "), async () => {
      await same(sql, params, { ordered: false });
    });
  }

  it("keeps a transaction block on one shard group: commit and rollback", async () => {
    for (const client of [herd, direct]) {
      await client.query("BEGIN");
      await client.query("INSERT INTO orders (tenant_id, customer_id, amount) VALUES (14, 1, 1.25)");
      await client.query("UPDATE customers SET name = 'in tx' WHERE tenant_id = 14 AND id = 1");
      await client.query("COMMIT");
      await client.query("BEGIN");
      await client.query("DELETE FROM orders WHERE tenant_id = 14");
      await client.query("ROLLBACK");
    }
    await same("SELECT * FROM orders WHERE tenant_id = 14 ORDER BY id");
    await same("SELECT * FROM customers WHERE tenant_id = 14 ORDER BY id");
  });

  it("sees its own writes inside a transaction block, and an error fails the block as PostgreSQL does", async () => {
    const steps = [
      "BEGIN",
      "INSERT INTO customers VALUES (15, 50, 'mine', 'se', NULL)",
      "SELECT name FROM customers WHERE tenant_id = 15 AND id = 50",
      "SAVEPOINT a",
      "UPDATE customers SET name = 'changed' WHERE tenant_id = 15 AND id = 50",
      "ROLLBACK TO SAVEPOINT a",
      "SELECT name FROM customers WHERE tenant_id = 15 AND id = 50",
      "SELECT 1 / 0 FROM customers WHERE tenant_id = 15",
      "SELECT name FROM customers WHERE tenant_id = 15 AND id = 50",
      "SELECT 1",
      "COMMIT",
      "SELECT count(*) FROM customers WHERE tenant_id = 15 AND id = 50",
    ];
    for (const sql of steps) await same(sql);
  });

  it("leaves the same tables behind", async () => {
    for (const table of ["customers", "orders", "countries", "events"]) {
      await same(`SELECT * FROM ${table}`);
    }
  });
});

describe("what herd refuses, with Citus's words", () => {
  it("refuses to change the distribution column", async () => {
    await expectHerdError(
      herd,
      "UPDATE customers SET tenant_id = 2 WHERE tenant_id = 1",
      "0A000",
      "modifying the partition value of rows is not allowed",
    );
  });

  it("refuses an INSERT without, or with a NULL, distribution column value", async () => {
    await expectHerdError(
      herd,
      "INSERT INTO customers (id, name) VALUES (1, 'x')",
      "22004",
      "cannot perform an INSERT without a partition column value",
    );
    await expectHerdError(
      herd,
      "INSERT INTO customers VALUES (NULL, 1, 'x')",
      "22004",
      "cannot perform an INSERT with NULL in the partition column",
    );
    await expectHerdError(
      herd,
      "INSERT INTO customers VALUES ($1, 1, 'x')",
      "22004",
      "cannot perform an INSERT with NULL in the partition column",
      [null],
    );
  });

  it("merges what reaches several shards instead of refusing it (multi-shard queries)", async () => {
    await same("SELECT count(*) FROM orders");
    await same("SELECT * FROM orders ORDER BY id LIMIT 3");
  });

  it("answers joins that are not on the distribution column by reading the tables first", async () => {
    await same("SELECT c.id, o.id FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.tenant_id = 1");
  });

  it("answers a subquery that reaches other shards than the outer query by running it first", async () => {
    await same("SELECT kind FROM events WHERE id = (SELECT id FROM events WHERE kind = 'kind1' ORDER BY id LIMIT 1)");
  });

  it("refuses to mix an ordinary table with a distributed one", async () => {
    await herd.query("CREATE TABLE notes (tenant_id int, note text)");
    await expectHerdError(
      herd,
      "SELECT * FROM notes n JOIN customers c ON c.tenant_id = n.tenant_id WHERE c.tenant_id = 1",
      "0A000",
      /both regular and distributed/,
    );
  });

  it("refuses volatile functions in a distributed UPDATE", async () => {
    await expectHerdError(
      herd,
      "UPDATE orders SET amount = random() WHERE tenant_id = 1",
      "0A000",
      "functions used in UPDATE queries on distributed tables must not be VOLATILE",
    );
  });

  it("runs writes reaching several shards inside a transaction block, all or nothing", async () => {
    const rows = () => herd.query("SELECT tenant_id, id, amount FROM orders ORDER BY tenant_id, id");
    const before = await rows();
    await herd.query("BEGIN");
    const updated = await herd.query("UPDATE orders SET amount = amount + 1000 WHERE amount IS NOT NULL");
    const priced = before.rows.filter((row) => row.amount !== null).length;
    expect(updated.rowCount).toBe(priced);
    // the block reads its own writes, on every shard
    const inBlock = await herd.query("SELECT count(*)::int AS n FROM orders WHERE amount >= 1000");
    expect(inBlock.rows[0].n).toBe(priced);
    await herd.query("ROLLBACK");
    expect((await rows()).rows).toEqual(before.rows);

    await herd.query("BEGIN");
    await herd.query("UPDATE orders SET amount = amount + 1000 WHERE amount IS NOT NULL");
    await herd.query("DELETE FROM orders WHERE amount IS NULL");
    await herd.query("UPDATE orders SET amount = amount - 1000 WHERE amount IS NOT NULL");
    await herd.query("COMMIT");
    expect((await rows()).rows).toEqual(before.rows.filter((row) => row.amount !== null));
  });
});

describe("cancel", () => {
  it("cancels a statement running on a worker (CancelRequest with the session's key)", async () => {
    const client = await connectTo({
      host: "127.0.0.1",
      port: herdUp.cluster.sqlPort,
      user: "postgres",
      password: "postgres",
    });
    const started = Date.now();
    const running = client
      .query("SELECT pg_sleep(30), name FROM customers WHERE tenant_id = 1 AND id = 1")
      .catch((e) => e);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const { processID, secretKey } = client as unknown as { processID: number; secretKey: number };
    await sendCancel(herdUp.cluster.sqlPort, processID, secretKey);
    const error = (await running) as { code?: string };
    expect(error.code).toBe("57014");
    expect(Date.now() - started).toBeLessThan(10_000);
    expect((await client.query("SELECT name FROM customers WHERE tenant_id = 1 AND id = 1")).rows).toHaveLength(1);
    await client.end();
  });
});

function sendCancel(port: number, processId: number, secretKey: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const packet = Buffer.alloc(16);
    packet.writeInt32BE(16, 0);
    packet.writeInt32BE(80877102, 4);
    packet.writeInt32BE(processId, 8);
    packet.writeInt32BE(secretKey, 12);
    const socket = createConnection({ host: "127.0.0.1", port }, () => socket.end(packet));
    socket.on("close", () => resolve());
    socket.on("error", reject);
  });
}

describe("the rows are where their hash says", () => {
  it("matches a plain PostgreSQL's count with the sum over shards", async () => {
    const herdRows = await herd.query("SELECT tenant_id, id FROM customers");
    const plainRows = await direct.query("SELECT tenant_id, id FROM customers");
    expect(sorted(herdRows.rows.map((r) => [String(r.tenant_id), String(r.id)]))).toEqual(
      sorted(plainRows.rows.map((r) => [String(r.tenant_id), String(r.id)])),
    );
  });
});
