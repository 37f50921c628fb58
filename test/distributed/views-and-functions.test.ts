import { beforeAll, describe, expect, it } from "vitest";
import { answer, expectSameAnswer } from "../helpers/differential.js";
import { type Case, refusals, sameAnswers, selfCheck, useAnalyticsDatabases } from "./analytics-cases.js";
import { runAll } from "./schema.js";

// Views and functions that read distributed tables, herd vs one PostgreSQL 18 on the analytics
// data. The coordinator's PostgreSQL holds only empty shells of distributed tables: before, a view
// read through it returned no rows and a function count(*) 0. Now herd plans a view as its
// definition (planner/view-inlining.ts), whether it was made before or after its tables were
// distributed, and refuses (0A000, naming the function) a call of a function that would read a
// shell (planner/shell-readers.ts).
const db = useAnalyticsDatabases("views-and-functions");
const sides = () => db.sides();

/** Views made after the tables were distributed (the analytics schema made `orders` etc. already). */
const VIEWS = [
  "CREATE VIEW big_orders AS SELECT o_orderkey, o_custkey, o_totalprice FROM orders WHERE o_totalprice > 200000",
  "CREATE VIEW order_lines (orderkey, lines, quantity) AS SELECT l_orderkey, count(*), sum(l_quantity) FROM lineitem GROUP BY l_orderkey",
  "CREATE VIEW big_order_lines AS SELECT b.o_orderkey, l.lines FROM big_orders b JOIN order_lines l ON l.orderkey = b.o_orderkey",
  "CREATE VIEW customer_nations AS SELECT c_custkey, c_name, n_name FROM customer JOIN nation ON n_nationkey = c_nationkey",
  "CREATE VIEW ship_modes AS SELECT l_shipmode, count(*) AS lines FROM lineitem GROUP BY l_shipmode",
];
const FUNCTIONS = [
  "CREATE FUNCTION order_count() RETURNS bigint LANGUAGE sql AS $$SELECT count(*) FROM orders$$",
  "CREATE FUNCTION max_line() RETURNS int LANGUAGE plpgsql AS $$BEGIN RETURN (SELECT max(l_linenumber) FROM lineitem); END$$",
  "CREATE FUNCTION atomic_count() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT count(*) FROM customer; END",
  "CREATE FUNCTION view_count() RETURNS bigint LANGUAGE sql AS $$SELECT count(*) FROM big_orders$$",
  "CREATE FUNCTION plain_math(x int) RETURNS int LANGUAGE sql AS $$SELECT x * 2$$",
];

beforeAll(async () => {
  const { herd, plain } = sides();
  for (const client of [herd, plain]) await runAll(client, [...VIEWS, ...FUNCTIONS]);
});

describe("views over distributed and reference tables", () => {
  sameAnswers(sides, [
    "SELECT * FROM big_orders",
    "SELECT count(*), sum(o_totalprice) FROM big_orders",
    "SELECT o_orderkey FROM big_orders WHERE o_orderkey = 7",
    "SELECT * FROM order_lines WHERE orderkey < 20 ORDER BY orderkey",
    "SELECT count(*), sum(quantity) FROM order_lines",
    "SELECT * FROM big_order_lines",
    "SELECT n_name, count(*) FROM customer_nations GROUP BY n_name ORDER BY n_name",
    "SELECT * FROM ship_modes ORDER BY l_shipmode",
    "SELECT v.o_orderkey, v.o_totalprice FROM big_orders v WHERE v.o_custkey < 30 ORDER BY 1",
    "SELECT b.o_orderkey, count(l.l_linenumber) FROM big_orders b JOIN lineitem l ON l.l_orderkey = b.o_orderkey GROUP BY 1",
    "SELECT count(*) FROM orders WHERE o_orderkey IN (SELECT o_orderkey FROM big_orders)",
    "SELECT count(*) FROM generate_series(1, 50) g WHERE g IN (SELECT orderkey FROM order_lines)",
    "WITH big_orders AS (SELECT 1 AS o_orderkey) SELECT * FROM big_orders",
    { sql: "SELECT o_orderkey FROM big_orders WHERE o_custkey = $1 ORDER BY 1", params: [17] },
  ] satisfies Case[]);
});

describe("a view made before its table was distributed", () => {
  it.skipIf(selfCheck)("reads the distributed rows, not the empty shell", async () => {
    const { herd, plain } = sides();
    const setup = [
      "CREATE TABLE early_t (id int PRIMARY KEY, grp int)",
      "INSERT INTO early_t SELECT i, i % 7 FROM generate_series(1, 500) i",
      "CREATE VIEW early_v AS SELECT grp, count(*) AS n FROM early_t WHERE id > 30 GROUP BY grp",
    ];
    for (const client of [herd, plain]) await runAll(client, setup);
    await herd.query("SELECT create_distributed_table('early_t', 'id')");
    await expectSameAnswer(herd, plain, "SELECT * FROM early_v ORDER BY grp");
    await expectSameAnswer(herd, plain, "SELECT sum(n) FROM early_v");
  });
});

describe("functions whose body reads distributed tables: refused, naming the function", () => {
  refusals(sides, [
    { sql: "SELECT order_count()", message: /calling order_count\(\), which reads the distributed table orders/ },
    { sql: "SELECT max_line()", message: /calling max_line\(\), which reads the distributed table lineitem/ },
    { sql: "SELECT atomic_count()", message: /calling atomic_count\(\), which reads the distributed table customer/ },
    {
      sql: "SELECT view_count()",
      message: /calling view_count\(\), which reads the distributed table (orders|big_orders)/,
    },
    { sql: "SELECT o_orderkey, order_count() FROM orders WHERE o_orderkey = 1", message: /calling order_count\(\)/ },
    {
      sql: "DO $$BEGIN PERFORM count(*) FROM orders; END$$",
      message: /a DO block that reads the distributed table orders/,
    },
    { sql: "UPDATE big_orders SET o_totalprice = 0", message: /writing through the view big_orders/ },
  ]);
  sameAnswers(sides, ["SELECT plain_math(21)"]);
});

describe("CREATE VIEW and CREATE FUNCTION over distributed tables", () => {
  it.skipIf(selfCheck)("are known to the next statement, inside a transaction block too", async () => {
    const { herd, plain } = sides();
    for (const client of [herd, plain])
      await client.query("CREATE VIEW fresh AS SELECT o_orderkey FROM orders WHERE o_orderkey < 10");
    await expectSameAnswer(herd, plain, "SELECT * FROM fresh");
    // in a block, the block's own catalog knows the view at once; ROLLBACK forgets it
    const query = "SELECT o_orderkey, o_custkey FROM orders WHERE o_orderkey < 40";
    await herd.query("BEGIN");
    await herd.query(`CREATE VIEW fresh_in_block AS ${query}`);
    const inBlock = await answer(herd, "SELECT * FROM fresh_in_block ORDER BY 1");
    await herd.query("ROLLBACK");
    expect(inBlock).toEqual(await answer(plain, `${query} ORDER BY 1`));
    expect((inBlock as unknown as { rows: unknown[] }).rows.length).toBeGreaterThan(0);
    expect(await answer(herd, "SELECT to_regclass('fresh_in_block') IS NULL AS gone")).toMatchObject({
      rows: [["t"]],
    });
    // a view of ordinary things only is PostgreSQL's business, in a block too
    await herd.query("BEGIN");
    await herd.query("CREATE VIEW numbers AS SELECT generate_series(1, 3) AS n");
    expect((await herd.query("SELECT count(*)::int AS n FROM numbers")).rows).toEqual([{ n: 3 }]);
    await herd.query("ROLLBACK");
    await herd.query("CREATE FUNCTION fresh_count() RETURNS bigint LANGUAGE sql AS $$SELECT count(*) FROM lineitem$$");
    expect(await answer(herd, "SELECT fresh_count()")).toMatchObject({ error: { code: "0A000" } });
  });
});
