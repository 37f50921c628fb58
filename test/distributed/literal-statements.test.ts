import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { herdClient } from "../faults/fault-kit.js";
import { expectSameAnswer } from "../helpers/differential.js";
import { useHerdCluster } from "../helpers/herd-up.js";
import { type PlainTwin, startPlainTwin } from "../helpers/postgres.js";

// Simple-protocol statements with literals, which herd runs with the literals as parameters so
// that statements differing only in them share one plan (parser/literal-normalizer.ts): the
// answers must be one PostgreSQL's for every kind of literal and place a literal can stand,
// including those a parameter would read differently (left as written). node-postgres sends a
// query without values as a simple Query.
const herdUp = useHerdCluster("literal-statements", { workers: 2 });
let twin: PlainTwin;
let herd: pg.Client;
let plain: pg.Client;

const SCHEMA = [
  `CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10, 2), born date, seen timestamptz,
     tags int[], doc jsonb, big bigint, flag boolean DEFAULT true)`,
  `INSERT INTO items SELECT i, 'item ' || i, i * 1.25, date '2026-01-01' + i, timestamptz '2026-01-01 00:00:00+00' + i * interval '1 hour',
     ARRAY[i % 3, i % 5], jsonb_build_object('k', 'v' || (i % 4), 'n', i), i::bigint * 1000000000, i % 2 = 0
     FROM generate_series(1, 200) i`,
];

beforeAll(async () => {
  herd = await herdClient(herdUp.cluster);
  twin = await startPlainTwin("literal-statements-plain", herd, SCHEMA);
  plain = twin.client;
  await herd.query("SELECT create_distributed_table('items', 'id', shard_count => 4)");
}, 120_000);

afterAll(async () => {
  await herd?.end();
  await twin?.stop();
});

async function same(...statements: string[]) {
  for (const sql of statements) await expectSameAnswer(herd, plain, sql);
}

describe("statements with literals, through the simple protocol", () => {
  it("read alike whatever the literal's kind and place", async () => {
    await same(
      "SELECT * FROM items WHERE id = 7",
      "SELECT * FROM items WHERE id = 8",
      "SELECT * FROM items WHERE id = '9'",
      "SELECT name, price FROM items WHERE id = 3000000000",
      "SELECT id FROM items WHERE id = -5 OR id = 10.0 ORDER BY id",
      "SELECT id, name FROM items WHERE name = 'item 12' OR name LIKE 'item 19%' ORDER BY id",
      "SELECT id FROM items WHERE id IN (1, 2, 3, 150) ORDER BY id",
      "SELECT id FROM items WHERE id BETWEEN 10 AND 14 ORDER BY id LIMIT 3 OFFSET 1",
      "SELECT id FROM items WHERE born > '2026-06-01' AND born < date '2026-06-10' ORDER BY id",
      "SELECT id FROM items WHERE seen >= '2026-01-05 10:00:00+00' AND seen < '2026-01-05 12:00+00' ORDER BY id",
      "SELECT id FROM items WHERE price * 2 > 400.5 ORDER BY id",
      "SELECT id FROM items WHERE id / 2 = 3 ORDER BY id",
      "SELECT id FROM items WHERE 5 / 2 = 2 AND id < 4 ORDER BY id",
      "SELECT id FROM items WHERE doc->>'k' = 'v1' AND (doc->>'n')::int < 30 ORDER BY id",
      "SELECT id FROM items WHERE tags @> '{2}' AND id = ANY('{2,7,12,17}') ORDER BY id",
      "SELECT id FROM items WHERE name = 'item ' || '42'",
      "SELECT id FROM items WHERE coalesce(big, 0) > 150000000000 AND flag ORDER BY id",
      "SELECT id FROM items WHERE CASE WHEN id > 195 THEN 'hi' ELSE 'lo' END = 'hi' ORDER BY id",
      "SELECT id FROM items WHERE id NOT IN (SELECT id FROM items WHERE id > 3) ORDER BY id",
      "SELECT id FROM items WHERE id = 7 AND name = E'item\\x207'",
      "SELECT id FROM items WHERE id = 1::int8 OR price = 2.50::numeric(10, 2) ORDER BY id",
      // the literals of the select list, ORDER BY and GROUP BY stay as written
      "SELECT 1 AS one, 'x' AS letter, id % 5, to_char(price, 'FM999.00') FROM items WHERE id < 4 ORDER BY 3, 1",
      "SELECT id % 5 AS bucket, count(*), sum(price) FROM items WHERE id > 20 GROUP BY id % 5 ORDER BY id % 5",
      "SELECT DISTINCT ON (id % 3) id % 3, id FROM items WHERE id < 30 ORDER BY id % 3, id",
    );
  });

  it("write alike: inserts, updates, upserts, deletes and RETURNING", async () => {
    await same(
      "INSERT INTO items (id, name, price, born) VALUES (500, 'new', 9.99, '2027-01-01'), (501, 'it''s', -1, NULL)",
      "INSERT INTO items (id, name) VALUES (502, 'x') RETURNING id, flag, name || '!'",
      "UPDATE items SET price = price + 1, name = 'renamed' WHERE id = 500",
      "UPDATE items SET big = 3000000000 WHERE id IN (501, 502) RETURNING id, big",
      "INSERT INTO items (id, name) VALUES (500, 'again') ON CONFLICT (id) DO UPDATE SET name = 'upserted', price = 7",
      "DELETE FROM items WHERE id = 502 RETURNING name",
      "DELETE FROM items WHERE id > 499 AND name <> 'upserted'",
      "SELECT * FROM items WHERE id >= 500 ORDER BY id",
    );
    // the same upsert prepared, its parameters in VALUES and in SET (a default to evaluate first)
    await expectSameAnswer(
      herd,
      plain,
      "INSERT INTO items (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = $3, price = $4 RETURNING id, name, price, flag",
      [500, "unused", "prepared upsert", 8],
    );
    // errors as one PostgreSQL words them
    await same(
      "INSERT INTO items (id, name) VALUES (500, 'dup')",
      "SELECT * FROM items WHERE id = 'seven'",
      "UPDATE items SET price = 123456789012 WHERE id = 1",
    );
  });

  it("a statement that differs only in its literals shares the plan, and each answer is its own", async () => {
    // many different literals through one normalized text, interleaved by two clients
    const other = await herdClient(herdUp.cluster);
    try {
      const results = await Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          (i % 2 === 0 ? herd : other).query(`SELECT id, name FROM items WHERE id = ${i + 1}`),
        ),
      );
      results.forEach((result, i) => {
        expect(result.rows).toEqual([{ id: i + 1, name: `item ${i + 1}` }]);
      });
    } finally {
      await other.end();
    }
  });
});
