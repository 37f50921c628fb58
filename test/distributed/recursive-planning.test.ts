import { beforeAll, describe, expect, it } from "vitest";
import { expectSameAnswer } from "../helpers/differential.js";
import { type Case, refusals, sameAnswers, selfCheck, useAnalyticsDatabases } from "./analytics-cases.js";
import { analyticsData } from "./analytics-schema.js";
import { runAll } from "./schema.js";

// Recursive planning (planner/recursive-planning.ts), herd vs one PostgreSQL 18 on the analytics
// data: a subquery over distributed tables that cannot run shard group by shard group with the
// statement around it runs first, and its rows replace it. The wrong answers this replaces: an
// IN/EXISTS over a distributed table with nothing distributed around it ran once per shard and
// the answers were appended; a scalar subquery in INSERT … VALUES read the coordinator's empty
// shell and stored 0 (or NULL where PostgreSQL raises 21000).
const db = useAnalyticsDatabases("recursive-planning");
const sides = () => db.sides();

/** An ordinary table on both sides (on herd it stays on the coordinator). */
const LOCAL_TABLE = [
  "CREATE TABLE local_keys (k int4 PRIMARY KEY, label text)",
  "INSERT INTO local_keys SELECT i, 'k' || i FROM generate_series(1, 40) i",
];

beforeAll(async () => {
  const { herd, plain } = sides();
  for (const client of [herd, plain]) await runAll(client, LOCAL_TABLE);
});

describe("a distributed table only inside IN / EXISTS, nothing distributed around it", () => {
  sameAnswers(sides, [
    "SELECT count(*) FROM generate_series(1, 20) g WHERE g IN (SELECT l_linenumber FROM lineitem)",
    "SELECT g FROM generate_series(1, 20) g WHERE g IN (SELECT l_linenumber FROM lineitem) ORDER BY g",
    "SELECT 'x' WHERE EXISTS (SELECT 1 FROM orders WHERE o_status = 'F')",
    "SELECT 'x' WHERE EXISTS (SELECT 1 FROM orders WHERE o_orderkey < 0)",
    "SELECT count(*) FROM generate_series(1, 10) g WHERE EXISTS (SELECT 1 FROM orders)",
    "SELECT count(*) FROM generate_series(1, 10) g WHERE NOT EXISTS (SELECT 1 FROM returns)",
    "SELECT count(*) FROM generate_series(1, 10) g WHERE g NOT IN (SELECT l_linenumber FROM lineitem)",
    // NULLs in the list: NOT IN is never true
    "SELECT count(*) FROM generate_series(1, 10) g WHERE g NOT IN (SELECT l_bonus FROM lineitem)",
    "SELECT count(*) FROM generate_series(1, 10) g WHERE g = ANY (SELECT l_bonus FROM lineitem)",
    "SELECT count(*) FROM generate_series(1, 10) g WHERE g > ALL (SELECT l_linenumber FROM lineitem WHERE l_quantity > 45)",
    "SELECT count(*) FROM generate_series(1, 10) g WHERE (g, g) IN (SELECT l_linenumber, l_linenumber FROM lineitem)",
    "SELECT count(*) FROM generate_series(1, 10) g WHERE g IN (SELECT r_linenumber FROM returns)",
    "SELECT k, label FROM local_keys WHERE k IN (SELECT o_custkey FROM orders) ORDER BY k",
    "SELECT count(*) FROM local_keys WHERE k NOT IN (SELECT c_custkey FROM customer WHERE c_acctbal > 0)",
    "SELECT n_name FROM nation WHERE n_nationkey IN (SELECT c_nationkey FROM customer WHERE c_acctbal > 5000) ORDER BY 1",
    "SELECT r_name FROM region WHERE EXISTS (SELECT 1 FROM orders WHERE o_totalprice > 1000) ORDER BY 1",
    "SELECT 'x''y' NOT IN (SELECT l_comment FROM lineitem WHERE l_comment IS NOT NULL)",
  ]);
});

describe("scalar, ARRAY, ANY and ALL subqueries over distributed tables", () => {
  sameAnswers(sides, [
    "SELECT count(*) FROM orders WHERE o_totalprice > (SELECT avg(o_totalprice) FROM orders)",
    "SELECT count(*) FROM lineitem WHERE l_extendedprice > (SELECT avg(l_extendedprice) FROM lineitem)",
    "SELECT (SELECT count(*) FROM lineitem), (SELECT max(o_orderdate) FROM orders), (SELECT min(c_name) FROM customer)",
    "SELECT (SELECT o_orderkey FROM orders WHERE o_orderkey < 0)",
    "SELECT (SELECT o_orderkey FROM orders)",
    "SELECT cardinality(ARRAY(SELECT l_orderkey FROM lineitem WHERE l_quantity > 40))",
    "SELECT count(*) FROM orders WHERE o_custkey = ANY (SELECT c_custkey FROM customer WHERE c_nationkey = 3)",
    "SELECT count(*) FROM orders WHERE o_totalprice > ALL (SELECT c_acctbal FROM customer WHERE c_nationkey = 3)",
    "SELECT o_orderkey FROM orders WHERE o_custkey IN (SELECT c_custkey FROM customer WHERE c_acctbal > 9000) ORDER BY o_orderkey LIMIT 20",
    "SELECT count(*) FROM orders WHERE o_orderkey IN (SELECT l_partkey FROM lineitem)",
    "SELECT l_shipmode, count(*) FROM lineitem WHERE l_partkey IN (SELECT p_partkey FROM part WHERE p_size > 40) GROUP BY 1",
    // a subplan inside a subplan
    `SELECT count(*) FROM generate_series(1, 10) g WHERE g IN (SELECT l_linenumber FROM lineitem WHERE l_orderkey IN
       (SELECT o_orderkey FROM orders WHERE o_totalprice > (SELECT avg(o_totalprice) FROM orders)))`,
    "SELECT count(*) FROM customer WHERE c_acctbal > (SELECT avg(s.f8) FROM specials s) AND c_custkey < 100",
    // in HAVING of an aggregate merged on the coordinator: the subplan's value is kept in the combine query
    "SELECT l_shipmode, count(*) FROM lineitem GROUP BY 1 HAVING count(*) > (SELECT count(*) / 10 FROM orders) ORDER BY 1",
    "SELECT l_shipmode, count(*) * 100 / (SELECT count(*) FROM lineitem) AS pct FROM lineitem GROUP BY 1 ORDER BY 1",
    {
      sql: "SELECT count(*) FROM generate_series(1, $1::int) g WHERE g IN (SELECT l_linenumber FROM lineitem WHERE l_quantity > $2)",
      params: [5, 10],
    },
    {
      sql: "SELECT count(*) FROM orders WHERE o_totalprice > (SELECT avg(o_totalprice) FROM orders WHERE o_custkey < $1)",
      params: [50],
    },
    { sql: "SELECT $1::text AS t, (SELECT count(*) FROM orders WHERE o_orderkey > $2)", params: ["x", 100] },
  ] satisfies Case[]);
});

describe("CTEs, FROM subqueries, set operations and windows that need every row in one place", () => {
  sameAnswers(sides, [
    "WITH t AS (SELECT l_shipmode, count(*) AS n FROM lineitem GROUP BY 1) SELECT * FROM t ORDER BY l_shipmode",
    "WITH t AS MATERIALIZED (SELECT o_custkey, max(o_totalprice) AS m FROM orders GROUP BY 1) SELECT count(*), sum(m) FROM t",
    "WITH top AS (SELECT o_orderkey FROM orders ORDER BY o_totalprice DESC, o_orderkey LIMIT 5) SELECT count(*) FROM lineitem WHERE l_orderkey IN (SELECT o_orderkey FROM top)",
    "WITH t AS (SELECT DISTINCT l_shipmode FROM lineitem) SELECT k, t.l_shipmode FROM local_keys, t WHERE k < 3 ORDER BY 1, 2",
    "SELECT s.l_shipmode, s.n FROM (SELECT l_shipmode, count(*) AS n FROM lineitem GROUP BY 1) s WHERE s.n > 10 ORDER BY 1",
    "SELECT count(*) FROM (SELECT o_orderkey FROM orders ORDER BY o_orderkey LIMIT 20) s JOIN lineitem ON l_orderkey = s.o_orderkey",
    "SELECT o_orderkey FROM orders WHERE o_orderkey < 10 UNION SELECT l_orderkey FROM lineitem WHERE l_orderkey < 12 ORDER BY 1",
    "SELECT o_custkey FROM orders INTERSECT SELECT c_custkey FROM customer ORDER BY 1 LIMIT 15",
    "SELECT c_custkey FROM customer EXCEPT SELECT o_custkey FROM orders ORDER BY 1",
    "SELECT count(*) FROM (SELECT o_orderkey FROM orders UNION ALL SELECT l_orderkey FROM lineitem) u",
    "SELECT o_orderkey, rank() OVER (ORDER BY o_totalprice, o_orderkey) FROM orders ORDER BY 2 LIMIT 10",
    "SELECT c_nationkey, c_custkey, sum(c_acctbal) OVER (PARTITION BY c_nationkey ORDER BY c_custkey) FROM customer ORDER BY 1, 2",
    "SELECT count(*) FROM orders o JOIN customer c ON c.c_custkey = o.o_custkey WHERE c.c_acctbal > 0",
    "SELECT c_name, count(o_orderkey) FROM customer LEFT JOIN orders ON o_custkey = c_custkey GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10",
    "SELECT count(*) FROM customer FULL JOIN part ON p_partkey = c_custkey",
    "SELECT count(*) FROM orders JOIN local_keys ON k = o_custkey",
  ]);
});

describe("what still cannot be answered is refused, never appended per shard", () => {
  const NO_PUSHDOWN = /^(cannot push down this subquery|complex joins are only supported .*)$/;
  refusals(sides, [
    {
      sql: "SELECT count(*) FROM generate_series(1, 3) g WHERE EXISTS (SELECT 1 FROM orders WHERE o_orderkey = g)",
      message: NO_PUSHDOWN,
    },
    {
      sql: "SELECT n_name FROM nation n WHERE EXISTS (SELECT 1 FROM customer c WHERE c.c_nationkey = n.n_nationkey)",
      message: NO_PUSHDOWN,
    },
    {
      sql: "SELECT (SELECT count(*) FROM orders o WHERE o.o_custkey = g) FROM generate_series(1, 3) g",
      message: NO_PUSHDOWN,
    },
  ]);
});

describe("subqueries in INSERT … VALUES, UPDATE … SET and DELETE … WHERE run first, exactly once", () => {
  const writes: [string, unknown[]?][] = [
    ["INSERT INTO ledger_entries VALUES (3, 1001, (SELECT count(*) FROM orders)) RETURNING *"],
    ["INSERT INTO ledger_entries VALUES (3, 1002, (SELECT sum(delta) FROM ledger_entries WHERE account = 2))"],
    ["INSERT INTO ledger_entries VALUES (3, 1003, (SELECT o_orderkey FROM orders))"],
    ["INSERT INTO ledger_entries VALUES (3, 1004, (SELECT o_orderkey FROM orders WHERE o_orderkey < 0))"],
    [
      "INSERT INTO ledger_entries VALUES (4, 1005, (SELECT max(delta) FROM ledger_entries)), (5, 1006, (SELECT min(delta) FROM ledger_entries)) RETURNING account, seq, delta",
    ],
    ["INSERT INTO ledger_entries VALUES ($1, 1007, (SELECT count(*) FROM lineitem WHERE l_quantity > $2))", [6, 20]],
    [
      "UPDATE ledger SET amount = (SELECT max(o_totalprice) FROM orders) WHERE account = 5 RETURNING account, id, amount",
    ],
    ["UPDATE ledger SET note = 'big' WHERE amount > (SELECT avg(amount) FROM ledger)"],
    [
      "DELETE FROM ledger_entries WHERE seq IN (SELECT l_linenumber FROM lineitem WHERE l_quantity > 45) RETURNING account, seq",
    ],
    ["DELETE FROM ledger WHERE id IN (SELECT l_linenumber FROM lineitem)"],
    ["UPDATE local_keys SET label = 'ordered' WHERE k IN (SELECT o_custkey FROM orders WHERE o_totalprice > 1000)"],
  ];
  const reload = [
    "TRUNCATE ledger",
    "TRUNCATE ledger_entries",
    "UPDATE local_keys SET label = 'k' || k",
    ...analyticsData().filter((sql) => /^INSERT INTO ledger(_entries)? VALUES/.test(sql)),
  ];
  for (const [sql, params] of writes) {
    it.skipIf(selfCheck && sql.includes("local_keys"))(sql, async () => {
      const { herd, plain } = sides();
      for (const client of [herd, plain]) await runAll(client, reload);
      await expectSameAnswer(herd, plain, sql, params, { ordered: false });
      for (const table of ["ledger", "ledger_entries", "local_keys"])
        await expectSameAnswer(herd, plain, `SELECT * FROM ${table}`, undefined, { ordered: false });
    });
  }
});

describe("EXPLAIN shows each subplan; EXPLAIN ANALYZE its rows", () => {
  it.skipIf(selfCheck)("lists the subplan's route under the statement", async () => {
    const { herd } = sides();
    const sql = "SELECT count(*) FROM generate_series(1, 20) g WHERE g IN (SELECT l_linenumber FROM lineitem)";
    const plan = (await herd.query(`EXPLAIN ${sql}`)).rows.map((row) => row["QUERY PLAN"] as string);
    expect(plan[0]).toMatch(/^Subplans 1 /);
    expect(plan[1]).toMatch(/^ {2}Route read shards=\[.*\] sql=SELECT l_linenumber FROM lineitem_\d+ AS lineitem$/);
    const analyzed = (await herd.query(`EXPLAIN ANALYZE ${sql}`)).rows.map((row) => row["QUERY PLAN"] as string);
    const lineitems = Number((await herd.query("SELECT count(*) FROM lineitem")).rows[0].count);
    expect(analyzed[0]).toMatch(new RegExp(`actual time=[\\d.]+ ms rows=${lineitems} bytes=\\d+\\)$`));
  });

  it.skipIf(selfCheck)("re-runs a prepared statement with a subplan after the catalog changed", async () => {
    const { herd, plain } = sides();
    const query = {
      name: "with_subplan",
      text: "SELECT count(*) FROM generate_series(1, 20) g WHERE g IN (SELECT l_linenumber FROM lineitem WHERE l_quantity > $1)",
      values: [10],
    };
    const expected = (await plain.query(query)).rows;
    expect((await herd.query(query)).rows).toEqual(expected);
    await herd.query("CREATE TABLE catalog_bump (id int)");
    await herd.query("SELECT create_distributed_table('catalog_bump', 'id')");
    expect((await herd.query(query)).rows).toEqual(expected);
  });

  it.skipIf(selfCheck)("refuses an intermediate result over citus.max_intermediate_result_size (54000)", async () => {
    const { herd } = sides();
    await herd.query("SET citus.max_intermediate_result_size = '4kB'");
    try {
      const failed = await herd
        .query("SELECT count(*) FROM generate_series(1, 3) g WHERE g IN (SELECT l_linenumber FROM lineitem)")
        .then(
          () => undefined,
          (error: { code?: string; message: string }) => error,
        );
      expect(failed?.code).toBe("54000");
      expect(failed?.message).toMatch(/citus\.max_intermediate_result_size/);
      await herd.query("SET citus.max_intermediate_result_size = -1");
      const unlimited = await herd.query(
        "SELECT count(*) FROM generate_series(1, 3) g WHERE g IN (SELECT l_linenumber FROM lineitem)",
      );
      expect(Number(unlimited.rows[0].count)).toBe(3);
    } finally {
      await herd.query("RESET citus.max_intermediate_result_size");
    }
  });
});

// A pin bounds the statement's rows only where its table's rows bound them. Before: an outer
// join's ON pinned the preserved side too (`o LEFT JOIN l ON l.l_orderkey = o.o_orderkey AND
// l.l_orderkey = 7` answered from one shard group: the other orders were lost), and a table
// pinned beside an unpinned subquery table was refused as a complex join.
describe("pins of outer joins and of subqueries correlated on the distribution column", () => {
  sameAnswers(sides, [
    "SELECT count(*) FROM orders o LEFT JOIN lineitem l ON l.l_orderkey = o.o_orderkey AND l.l_orderkey = 7",
    "SELECT count(*) FROM lineitem l RIGHT JOIN orders o ON l.l_orderkey = o.o_orderkey AND o.o_orderkey = 7",
    "SELECT count(l.l_orderkey) FROM orders o LEFT JOIN lineitem l ON l.l_orderkey = o.o_orderkey AND o.o_orderkey IN (7, 9)",
    `SELECT count(*) FROM orders o LEFT JOIN (lineitem l JOIN returns r ON r.r_orderkey = l.l_orderkey AND l.l_orderkey = 7)
       ON l.l_orderkey = o.o_orderkey`,
    "SELECT count(*) FROM orders o LEFT JOIN lineitem l ON l.l_orderkey = o.o_orderkey WHERE o.o_orderkey = 7",
    "SELECT count(*) FROM orders o LEFT JOIN lineitem l ON l.l_orderkey = o.o_orderkey WHERE l.l_orderkey = 7",
    "SELECT count(*) FROM orders o WHERE o.o_orderkey = 7 AND NOT EXISTS (SELECT 1 FROM returns r WHERE r.r_orderkey = o.o_orderkey)",
    "SELECT count(*) FROM orders o WHERE o.o_orderkey = 7 AND EXISTS (SELECT 1 FROM lineitem l WHERE l.l_orderkey = o.o_orderkey)",
    "SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM lineitem l WHERE l.l_orderkey = o.o_orderkey AND l.l_orderkey = 7)",
    `SELECT count(*) FROM orders o WHERE o.o_orderkey IN (7, 9)
       AND NOT EXISTS (SELECT 1 FROM lineitem l WHERE l.l_orderkey = o.o_orderkey AND l.l_orderkey = 7)`,
    {
      sql: "SELECT o_orderkey FROM orders o WHERE o.o_orderkey = $1 AND NOT EXISTS (SELECT 1 FROM returns r WHERE r.r_orderkey = o.o_orderkey) ORDER BY 1",
      params: [11],
    },
  ] satisfies Case[]);
});
