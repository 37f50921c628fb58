import { describe } from "vitest";
import { type Case, sameAnswers, sameAnswersOrRefusals, useAnalyticsDatabases } from "./analytics-cases.js";

// Multi-shard queries, herd vs one PostgreSQL: ORDER BY (with ties compared run by run), LIMIT
// and OFFSET, DISTINCT and DISTINCT ON, colocated joins and joins with reference tables,
// subqueries and CTEs, window functions partitioned by the distribution column, parameters.
const db = useAnalyticsDatabases("analytics-queries");
const sides = () => db.sides();

describe("rows from every shard, no merge step", () => {
  sameAnswers(sides, [
    "SELECT * FROM lineitem WHERE l_quantity > 48",
    "SELECT o_orderkey, o_clerk, o_placed_at FROM orders WHERE o_rush",
    "SELECT * FROM returns",
    "SELECT * FROM specials",
    "SELECT l_orderkey, l_linenumber FROM lineitem WHERE l_orderkey IN (3, 6, 1099511627837, -97)",
  ]);
});

describe("ORDER BY: total orders, ties, DESC, NULLS FIRST/LAST, expressions, positions, aliases", () => {
  const cases: Case[] = [
    "SELECT l_orderkey, l_linenumber, l_quantity FROM lineitem ORDER BY l_orderkey, l_linenumber",
    "SELECT l_orderkey, l_linenumber FROM lineitem ORDER BY l_orderkey DESC, l_linenumber DESC",
    { sql: "SELECT l_shipmode, l_orderkey, l_linenumber FROM lineitem ORDER BY l_shipmode", orderKeys: [0] },
    { sql: "SELECT l_shipmode, l_orderkey FROM lineitem ORDER BY l_shipmode NULLS FIRST", orderKeys: [0] },
    { sql: "SELECT l_shipmode, l_orderkey FROM lineitem ORDER BY l_shipmode DESC NULLS LAST", orderKeys: [0] },
    { sql: "SELECT l_shipmode, l_returnflag, l_orderkey FROM lineitem ORDER BY 1 DESC, 2", orderKeys: [0, 1] },
    "SELECT o_clerk, o_orderkey FROM orders ORDER BY o_clerk, o_orderkey",
    { sql: "SELECT o_clerk FROM orders ORDER BY o_clerk DESC", orderKeys: [0] },
    { sql: 'SELECT o_clerk, o_orderkey FROM orders ORDER BY o_clerk COLLATE "C" DESC NULLS LAST', orderKeys: [0] },
    "SELECT o_orderkey FROM orders ORDER BY o_totalprice DESC NULLS LAST, o_orderkey",
    { sql: "SELECT o_orderkey, o_totalprice FROM orders ORDER BY o_totalprice", orderKeys: [1] },
    "SELECT l_orderkey, l_linenumber, l_extendedprice * (1 - l_discount) AS net FROM lineitem ORDER BY net DESC NULLS LAST, 1, 2",
    "SELECT l_orderkey, l_linenumber FROM lineitem ORDER BY l_extendedprice * (1 - l_discount), l_orderkey, l_linenumber",
    "SELECT l_weight, l_orderkey, l_linenumber FROM lineitem ORDER BY 1, 2, 3",
    "SELECT o_orderdate, o_orderkey FROM orders ORDER BY o_orderdate NULLS FIRST, o_orderkey DESC",
    "SELECT o_placed_at, o_orderkey FROM orders ORDER BY o_placed_at DESC, o_orderkey",
    "SELECT o_rush, o_orderkey FROM orders ORDER BY o_rush, o_orderkey",
    "SELECT o_status, o_orderkey FROM orders ORDER BY o_status DESC, o_orderkey",
    "SELECT f8, s_id FROM specials ORDER BY f8, s_id",
    "SELECT f4, s_id FROM specials ORDER BY f4 DESC NULLS LAST, s_id",
    "SELECT n, s_id FROM specials ORDER BY n NULLS FIRST, s_id",
    "SELECT l_ratio, l_orderkey, l_linenumber FROM lineitem ORDER BY l_ratio DESC NULLS LAST, l_orderkey, l_linenumber",
    { sql: "SELECT l_comment FROM lineitem ORDER BY l_comment", orderKeys: [0] },
    "SELECT lower(o_clerk) AS lc, o_orderkey FROM orders ORDER BY lc, o_orderkey",
    "SELECT o_clerk, o_orderkey FROM orders ORDER BY length(o_clerk), o_clerk, o_orderkey",
    'SELECT l_orderkey, l_linenumber FROM lineitem ORDER BY l_shipmode COLLATE "C", l_orderkey, l_linenumber',
    "SELECT l_orderkey, l_linenumber, l_receipt FROM lineitem ORDER BY l_receipt, l_orderkey DESC, l_linenumber",
    "SELECT o_orderkey, o_custkey FROM orders ORDER BY o_custkey NULLS FIRST, o_orderdate DESC NULLS LAST, o_orderkey",
    { sql: "SELECT l_points, l_bonus FROM lineitem ORDER BY l_points", orderKeys: [0] },
    "SELECT c_custkey, c_acctbal FROM customer ORDER BY c_acctbal DESC NULLS LAST, c_custkey",
    "SELECT l_orderkey, l_linenumber FROM lineitem WHERE l_comment LIKE '%é%' ORDER BY l_comment, l_orderkey, l_linenumber",
    // an ICU collation: case and accents sort together, unlike C
    'SELECT o_clerk, o_orderkey FROM orders ORDER BY o_clerk COLLATE "und-x-icu", o_orderkey',
    'SELECT l_comment, l_orderkey, l_linenumber FROM lineitem ORDER BY l_comment COLLATE "und-x-icu" DESC NULLS FIRST, l_orderkey, l_linenumber LIMIT 40',
    'SELECT DISTINCT o_clerk COLLATE "und-x-icu" AS c FROM orders ORDER BY 1',
    'SELECT o_clerk COLLATE "und-x-icu" AS c, count(*) FROM orders GROUP BY 1 ORDER BY 1 DESC NULLS LAST',
    'SELECT min(o_clerk COLLATE "und-x-icu"), max(o_clerk COLLATE "und-x-icu"), min(o_clerk), max(o_clerk) FROM orders',
  ];
  sameAnswers(sides, cases);
});

describe("ORDER BY over aggregates and group keys", () => {
  sameAnswers(sides, [
    "SELECT l_shipmode, count(*) FROM lineitem GROUP BY 1 ORDER BY 2 DESC, 1",
    "SELECT l_shipmode, count(*) FROM lineitem GROUP BY 1 ORDER BY sum(l_quantity), 1",
    "SELECT l_orderkey, sum(l_quantity) AS q FROM lineitem GROUP BY 1 ORDER BY q DESC NULLS LAST, 1",
    "SELECT l_returnflag, l_linestatus, sum(l_quantity), avg(l_extendedprice), count(*) FROM lineitem GROUP BY 1, 2 ORDER BY 1, 2",
    { sql: "SELECT o_priority, count(*) AS n FROM orders GROUP BY 1 ORDER BY n", orderKeys: [1] },
    "SELECT l_suppkey, avg(l_quantity) FROM lineitem GROUP BY 1 ORDER BY avg(l_quantity) DESC NULLS LAST, 1",
    "SELECT extract(year FROM o_orderdate) y, count(*) FROM orders GROUP BY 1 ORDER BY 1 NULLS FIRST",
    "SELECT l_shipmode FROM lineitem GROUP BY 1 ORDER BY max(l_receipt) DESC, 1",
    "SELECT l_shipmode, stddev(l_quantity) FROM lineitem GROUP BY 1 ORDER BY 2, 1",
    "SELECT l_shipmode, count(*) FROM lineitem GROUP BY 1 ORDER BY CASE WHEN l_shipmode LIKE '%A%' THEN 0 ELSE 1 END, 1",
    "SELECT o_clerk, count(*) FROM orders GROUP BY 1 ORDER BY o_clerk DESC",
    "SELECT lower(o_clerk), count(*) FROM orders GROUP BY 1 ORDER BY 1 NULLS FIRST",
    { sql: "SELECT l_linenumber, count(*) FROM lineitem GROUP BY 1 ORDER BY count(*) DESC", orderKeys: [1] },
    "SELECT l_orderkey, count(*) FROM lineitem GROUP BY l_orderkey ORDER BY l_orderkey",
    "SELECT l_fragile, min(l_orderkey), max(l_orderkey) FROM lineitem GROUP BY 1 ORDER BY 1 DESC NULLS LAST",
    "SELECT s_grp, max(f8) FROM specials GROUP BY 1 ORDER BY 2, 1",
    "SELECT count(*) FROM lineitem ORDER BY 1",
    "SELECT l_suppkey, sum(l_extendedprice) / count(*) AS mean FROM lineitem GROUP BY 1 ORDER BY sum(l_extendedprice) / count(*) DESC, 1",
    "SELECT l_shipmode, round(avg(l_quantity), 2) FROM lineitem GROUP BY 1 ORDER BY max(l_quantity) - min(l_quantity), avg(l_quantity) DESC, 1",
  ]);
});

describe("LIMIT and OFFSET (pushed down as limit+offset only where that is exact)", () => {
  sameAnswers(sides, [
    "SELECT l_orderkey, l_linenumber FROM lineitem ORDER BY l_orderkey, l_linenumber LIMIT 10",
    "SELECT l_orderkey, l_linenumber FROM lineitem ORDER BY l_orderkey, l_linenumber OFFSET 100 LIMIT 7",
    "SELECT l_orderkey, l_linenumber FROM lineitem ORDER BY l_orderkey DESC, l_linenumber LIMIT 5 OFFSET 3000",
    "SELECT l_orderkey, l_linenumber FROM lineitem ORDER BY l_orderkey, l_linenumber LIMIT 0",
    "SELECT o_orderkey FROM orders ORDER BY o_orderkey LIMIT ALL",
    "SELECT o_orderkey FROM orders ORDER BY o_orderkey OFFSET 795",
    "SELECT o_orderkey FROM orders ORDER BY o_orderkey LIMIT NULL OFFSET 790",
    "SELECT o_orderkey, o_totalprice FROM orders ORDER BY o_totalprice DESC NULLS LAST, o_orderkey LIMIT 10",
    "SELECT l_shipmode, count(*) FROM lineitem GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3",
    "SELECT l_orderkey, sum(l_extendedprice) FROM lineitem GROUP BY 1 ORDER BY 2 DESC NULLS LAST, 1 LIMIT 10",
    "SELECT l_suppkey, count(*) FROM lineitem GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5 OFFSET 2",
    "SELECT l_partkey, sum(l_quantity) FROM lineitem GROUP BY 1 ORDER BY 2, 1 LIMIT 4",
    { sql: "SELECT o_orderkey, o_clerk FROM orders ORDER BY o_clerk, o_orderkey LIMIT $1 OFFSET $2", params: [12, 30] },
    { sql: "SELECT l_shipmode, count(*) FROM lineitem GROUP BY 1 ORDER BY 1 LIMIT $1", params: [2] },
    "SELECT o_orderkey FROM orders ORDER BY o_orderdate DESC NULLS LAST, o_orderkey FETCH FIRST 5 ROWS ONLY",
    {
      sql: "SELECT l_quantity, l_orderkey FROM lineitem ORDER BY l_quantity DESC NULLS LAST FETCH FIRST 3 ROWS WITH TIES",
      orderKeys: [0],
    },
    {
      sql: "SELECT l_shipmode, l_orderkey FROM lineitem ORDER BY l_shipmode FETCH FIRST 1 ROW WITH TIES",
      orderKeys: [0],
    },
    "SELECT o_clerk, o_orderkey FROM orders ORDER BY o_clerk DESC NULLS LAST, o_orderkey LIMIT 15",
    "SELECT count(*) FROM lineitem LIMIT 1",
    "SELECT count(*) FROM lineitem OFFSET 1",
    "SELECT * FROM lineitem LIMIT 0",
    "SELECT l_orderkey FROM lineitem ORDER BY l_orderkey DESC LIMIT 3",
    "SELECT DISTINCT l_suppkey FROM lineitem ORDER BY 1 LIMIT 5",
    "SELECT l_orderkey, l_linenumber FROM lineitem WHERE l_shipmode = 'MAIL' ORDER BY l_orderkey, l_linenumber LIMIT 5 OFFSET 5",
    "SELECT f8, s_id FROM specials ORDER BY f8 DESC, s_id LIMIT 4",
    "SELECT l_orderkey, count(*) FROM lineitem GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5 OFFSET 1",
    "SELECT l_returnflag, l_linestatus, count(*) FROM lineitem GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 OFFSET 2 LIMIT 2",
  ]);
});

describe("LIMIT in a subquery, without ORDER BY: exact or refused", () => {
  sameAnswersOrRefusals(sides, [
    "SELECT count(*) FROM (SELECT 1 FROM lineitem LIMIT 17) s",
    "SELECT count(*) FROM (SELECT * FROM orders ORDER BY o_orderkey LIMIT 10) s",
  ]);
});

describe("DISTINCT and DISTINCT ON", () => {
  sameAnswers(sides, [
    "SELECT DISTINCT l_shipmode FROM lineitem",
    "SELECT DISTINCT l_returnflag, l_linestatus FROM lineitem",
    "SELECT DISTINCT l_orderkey FROM lineitem",
    "SELECT DISTINCT o_clerk FROM orders ORDER BY 1",
    "SELECT DISTINCT o_clerk FROM orders ORDER BY 1 DESC NULLS LAST",
    "SELECT DISTINCT l_weight FROM lineitem ORDER BY 1 NULLS FIRST",
    "SELECT DISTINCT l_ratio FROM lineitem",
    "SELECT DISTINCT l_fragile FROM lineitem",
    "SELECT DISTINCT extract(year FROM l_shipdate) FROM lineitem ORDER BY 1",
    "SELECT DISTINCT l_quantity % 10 FROM lineitem",
    "SELECT DISTINCT count(*) FROM lineitem GROUP BY l_orderkey",
    "SELECT DISTINCT count(*) FROM lineitem GROUP BY l_suppkey",
    "SELECT DISTINCT o_status FROM orders",
    "SELECT DISTINCT * FROM returns",
    "SELECT DISTINCT l_shipmode FROM lineitem WHERE l_quantity > 1000",
    "SELECT DISTINCT l_shipmode, l_returnflag FROM lineitem WHERE l_quantity > 48 ORDER BY 2, 1",
    "SELECT DISTINCT f8 FROM specials",
    "SELECT DISTINCT n FROM specials ORDER BY 1",
    "SELECT DISTINCT o_shipnation FROM orders ORDER BY 1 NULLS FIRST",
    "SELECT DISTINCT ON (l_shipmode) l_shipmode, l_orderkey, l_linenumber, l_quantity FROM lineitem ORDER BY l_shipmode, l_quantity DESC NULLS LAST, l_orderkey, l_linenumber",
    "SELECT DISTINCT ON (l_orderkey) l_orderkey, l_linenumber, l_extendedprice FROM lineitem ORDER BY l_orderkey, l_extendedprice DESC NULLS LAST, l_linenumber",
    "SELECT DISTINCT ON (o_clerk) o_clerk, o_orderkey FROM orders ORDER BY o_clerk, o_orderkey DESC",
    "SELECT DISTINCT ON (l_returnflag, l_linestatus) l_returnflag, l_linestatus, l_orderkey, l_linenumber FROM lineitem ORDER BY l_returnflag, l_linestatus, l_orderkey, l_linenumber",
    "SELECT DISTINCT ON (l_shipmode) l_shipmode, l_orderkey, l_linenumber FROM lineitem ORDER BY l_shipmode DESC, l_orderkey, l_linenumber LIMIT 3",
    "SELECT DISTINCT ON (lower(o_clerk)) lower(o_clerk), o_orderkey FROM orders ORDER BY lower(o_clerk), o_orderkey",
    "SELECT DISTINCT ON (o_priority) o_priority, o_totalprice, o_orderkey FROM orders ORDER BY o_priority NULLS FIRST, o_totalprice DESC NULLS LAST, o_orderkey",
    "SELECT DISTINCT ON (s_grp) s_grp, f8, s_id FROM specials ORDER BY s_grp, f8 DESC, s_id",
  ]);
});

describe("colocated joins on the distribution column (pushed down to each shard group)", () => {
  sameAnswers(sides, [
    "SELECT count(*) FROM orders JOIN lineitem ON l_orderkey = o_orderkey",
    "SELECT o_priority, count(*), sum(l_extendedprice) FROM orders JOIN lineitem ON l_orderkey = o_orderkey GROUP BY 1",
    "SELECT o_orderkey, o_clerk, count(l_linenumber) FROM orders LEFT JOIN lineitem ON l_orderkey = o_orderkey GROUP BY o_orderkey",
    "SELECT count(*), count(l_orderkey), sum(l_quantity) FROM orders LEFT JOIN lineitem ON l_orderkey = o_orderkey",
    "SELECT o_orderkey FROM orders LEFT JOIN lineitem ON l_orderkey = o_orderkey WHERE l_orderkey IS NULL",
    "SELECT l_orderkey, l_linenumber FROM orders RIGHT JOIN lineitem ON l_orderkey = o_orderkey WHERE o_orderkey IS NULL",
    "SELECT count(*), count(o_orderkey), count(l_orderkey) FROM orders FULL JOIN lineitem ON l_orderkey = o_orderkey",
    "SELECT o_orderkey, l_linenumber FROM orders JOIN lineitem ON l_orderkey = o_orderkey AND l_shipdate > o_orderdate + 1000",
    "SELECT o.o_orderkey, l.l_linenumber, l.l_quantity FROM orders o JOIN lineitem l ON (o.o_orderkey = l.l_orderkey) WHERE o.o_rush AND l.l_quantity > 40",
    "SELECT count(*), sum(r_amount) FROM orders JOIN lineitem ON l_orderkey = o_orderkey JOIN returns ON r_orderkey = l_orderkey",
    "SELECT o_orderkey, r_reason, r_amount FROM orders LEFT JOIN returns ON r_orderkey = o_orderkey WHERE o_orderkey < 40",
    "SELECT l_shipmode, sum(CASE WHEN o_priority IN ('1-URGENT', '2-HIGH') THEN 1 ELSE 0 END) AS high_line_count, sum(CASE WHEN o_priority NOT IN ('1-URGENT', '2-HIGH') THEN 1 ELSE 0 END) AS low_line_count FROM orders JOIN lineitem ON o_orderkey = l_orderkey WHERE l_shipmode IN ('MAIL', 'SHIP') AND l_shipdate < l_receipt::date GROUP BY l_shipmode ORDER BY l_shipmode",
    "SELECT l_orderkey, sum(l_extendedprice * (1 - l_discount)) AS revenue, o_orderdate, o_shippriority FROM orders JOIN lineitem ON l_orderkey = o_orderkey WHERE o_orderdate < '1995-03-15' AND l_shipdate > '1995-03-15' GROUP BY l_orderkey, o_orderdate, o_shippriority ORDER BY revenue DESC, o_orderdate, l_orderkey LIMIT 10",
    "SELECT o_orderkey, l_linenumber, l_quantity FROM orders, lineitem WHERE o_orderkey = l_orderkey AND o_status = 'F' AND l_quantity < 3",
    "SELECT count(*) FROM lineitem a JOIN lineitem b ON a.l_orderkey = b.l_orderkey AND a.l_linenumber < b.l_linenumber",
    "SELECT a.l_orderkey, a.l_linenumber, b.l_linenumber FROM lineitem a LEFT JOIN lineitem b ON a.l_orderkey = b.l_orderkey AND b.l_linenumber = a.l_linenumber + 1 WHERE a.l_quantity > 45",
    "SELECT o_status, count(DISTINCT l_partkey), avg(l_quantity) FROM orders JOIN lineitem ON l_orderkey = o_orderkey GROUP BY 1",
    "SELECT o_orderkey, sum(l_quantity) FROM orders JOIN lineitem ON l_orderkey = o_orderkey GROUP BY o_orderkey HAVING sum(l_quantity) > 250",
    "SELECT o_clerk, count(*) FROM orders JOIN lineitem ON l_orderkey = o_orderkey GROUP BY 1 ORDER BY 2 DESC, 1 NULLS FIRST LIMIT 5",
    "SELECT o_orderkey, l_linenumber FROM orders JOIN lineitem ON l_orderkey = o_orderkey ORDER BY o_totalprice DESC NULLS LAST, o_orderkey, l_linenumber LIMIT 12",
  ]);
});

describe("joins with reference tables", () => {
  sameAnswers(sides, [
    "SELECT n_name, count(*) FROM orders JOIN nation ON n_nationkey = o_shipnation GROUP BY 1",
    "SELECT r_name, count(*), sum(o_totalprice) FROM orders JOIN nation ON n_nationkey = o_shipnation JOIN region ON r_regionkey = n_regionkey GROUP BY 1 ORDER BY 1",
    "SELECT o_orderkey, n_name FROM orders LEFT JOIN nation ON n_nationkey = o_shipnation WHERE o_orderkey < 100",
    "SELECT n_name, l_shipmode, count(*) FROM lineitem JOIN orders ON o_orderkey = l_orderkey JOIN nation ON n_nationkey = o_shipnation GROUP BY 1, 2",
    "SELECT n_name, count(*), avg(c_acctbal) FROM customer JOIN nation ON n_nationkey = c_nationkey GROUP BY 1",
    "SELECT c_custkey, n_name, r_name FROM customer LEFT JOIN nation ON n_nationkey = c_nationkey LEFT JOIN region ON r_regionkey = n_regionkey",
    "SELECT r_name, count(*) FROM orders CROSS JOIN region GROUP BY 1",
    "SELECT n_name, o_orderkey FROM orders JOIN nation ON n_nationkey = o_shipnation WHERE n_regionkey = 3 ORDER BY n_name, o_orderkey LIMIT 20",
    "SELECT n_regionkey, count(DISTINCT o_clerk) FROM orders JOIN nation ON n_nationkey = o_shipnation GROUP BY 1",
    "SELECT count(*) FROM orders o JOIN nation n ON n.n_nationkey = o.o_shipnation JOIN lineitem l ON l.l_orderkey = o.o_orderkey WHERE n.n_name LIKE 'C%'",
  ]);
});

describe("subqueries in WHERE that stay in the shard group, or read reference tables", () => {
  sameAnswers(sides, [
    "SELECT count(*) FROM orders WHERE EXISTS (SELECT 1 FROM lineitem WHERE l_orderkey = o_orderkey AND l_shipdate > '1997-01-01')",
    "SELECT o_priority, count(*) AS order_count FROM orders WHERE o_orderdate >= '1993-07-01' AND o_orderdate < '1996-10-01' AND EXISTS (SELECT * FROM lineitem WHERE l_orderkey = o_orderkey AND l_shipdate < l_receipt::date) GROUP BY o_priority ORDER BY o_priority",
    "SELECT o_orderkey FROM orders WHERE NOT EXISTS (SELECT 1 FROM lineitem WHERE l_orderkey = o_orderkey)",
    "SELECT count(*) FROM orders WHERE o_orderkey IN (SELECT l_orderkey FROM lineitem WHERE l_quantity > 48)",
    "SELECT count(*), sum(o_totalprice) FROM orders WHERE o_orderkey NOT IN (SELECT l_orderkey FROM lineitem WHERE l_returnflag = 'R')",
    "SELECT o_orderkey, o_totalprice, sum(l_quantity) FROM orders JOIN lineitem ON l_orderkey = o_orderkey WHERE o_orderkey IN (SELECT l_orderkey FROM lineitem GROUP BY l_orderkey HAVING sum(l_quantity) > 200) GROUP BY o_orderkey, o_totalprice ORDER BY o_totalprice DESC NULLS LAST, o_orderkey LIMIT 20",
    "SELECT count(*) FROM orders WHERE o_shipnation IN (SELECT n_nationkey FROM nation WHERE n_regionkey = 3)",
    "SELECT o_orderkey, o_clerk FROM orders WHERE o_shipnation = (SELECT n_nationkey FROM nation WHERE n_name = 'FRANCE')",
    "SELECT l_shipmode, count(*) FROM lineitem WHERE EXISTS (SELECT 1 FROM orders WHERE o_orderkey = l_orderkey AND o_rush) GROUP BY 1",
    "SELECT count(*) FROM lineitem WHERE l_orderkey IN (SELECT o_orderkey FROM orders WHERE o_status = 'P') AND l_quantity > 10",
    "SELECT count(*) FROM lineitem l WHERE l_quantity > (SELECT avg(l2.l_quantity) FROM lineitem l2 WHERE l2.l_orderkey = l.l_orderkey)",
    "SELECT count(*) FROM orders WHERE o_shipnation NOT IN (SELECT n_nationkey FROM nation WHERE n_regionkey <> 2)",
  ]);
});

describe("subqueries in FROM and CTEs that are colocated or grouped by the key", () => {
  sameAnswers(sides, [
    "SELECT avg(n) FROM (SELECT l_orderkey, count(*) n FROM lineitem GROUP BY l_orderkey) s",
    "SELECT n, count(*) FROM (SELECT l_orderkey, count(*) n FROM lineitem GROUP BY 1) s GROUP BY n ORDER BY n",
    "SELECT * FROM (SELECT o_orderkey, o_totalprice FROM orders WHERE o_totalprice > 400000) s",
    "SELECT o_priority, max(total) FROM orders JOIN (SELECT l_orderkey, sum(l_extendedprice) total FROM lineitem GROUP BY 1) l ON l.l_orderkey = o_orderkey GROUP BY 1",
    "SELECT count(*) FROM (SELECT DISTINCT l_orderkey FROM lineitem) s",
    "SELECT s.l_orderkey, s.q FROM (SELECT l_orderkey, sum(l_quantity) q FROM lineitem GROUP BY 1) s WHERE s.q > 220",
    "SELECT s.l_orderkey, s.q FROM (SELECT l_orderkey, sum(l_quantity) q FROM lineitem GROUP BY l_orderkey) s WHERE s.q > 220",
    "SELECT n, count(*) FROM (SELECT l_orderkey, count(*) n FROM lineitem GROUP BY l_orderkey) s GROUP BY n ORDER BY n",
    "SELECT c_count, count(*) AS custdist FROM (SELECT o_orderkey, count(l_linenumber) FROM orders LEFT JOIN lineitem ON l_orderkey = o_orderkey GROUP BY o_orderkey) AS c_orders (c_key, c_count) GROUP BY c_count ORDER BY custdist DESC, c_count DESC",
    "WITH big AS (SELECT * FROM orders WHERE o_totalprice > 300000) SELECT o_status, count(*) FROM big GROUP BY 1",
    "WITH per_order AS (SELECT l_orderkey, sum(l_quantity) q FROM lineitem GROUP BY 1) SELECT o_priority, avg(q), max(q) FROM orders JOIN per_order ON l_orderkey = o_orderkey GROUP BY 1",
    "WITH r AS (SELECT n_nationkey FROM nation WHERE n_regionkey = 1) SELECT count(*) FROM orders WHERE o_shipnation IN (SELECT * FROM r)",
    "WITH a AS (SELECT o_orderkey, o_clerk FROM orders WHERE o_rush), b AS (SELECT l_orderkey, count(*) c FROM lineitem GROUP BY 1) SELECT a.o_clerk, sum(b.c) FROM a JOIN b ON b.l_orderkey = a.o_orderkey GROUP BY 1",
    "WITH lines AS (SELECT * FROM lineitem WHERE l_fragile) SELECT l_shipmode, count(*), sum(l_weight) FROM lines GROUP BY 1 ORDER BY 1",
    "SELECT max(rn) FROM (SELECT row_number() OVER (PARTITION BY l_orderkey ORDER BY l_linenumber) rn FROM lineitem) s",
  ]);
});

describe("subqueries and CTEs across shard groups that PostgreSQL answers: exact or refused", () => {
  sameAnswersOrRefusals(sides, [
    "SELECT count(*) FROM (SELECT DISTINCT l_shipmode FROM lineitem) s",
    "SELECT max(s) FROM (SELECT l_shipmode, sum(l_quantity) s FROM lineitem GROUP BY 1) x",
    "SELECT o_orderkey, (SELECT count(*) FROM lineitem WHERE l_orderkey = o_orderkey) FROM orders",
    "WITH m AS MATERIALIZED (SELECT l_orderkey, l_quantity FROM lineitem) SELECT count(*), sum(l_quantity) FROM m",
    "SELECT o_orderkey FROM orders UNION SELECT l_orderkey FROM lineitem",
    "SELECT l_orderkey FROM lineitem WHERE l_quantity > 45 INTERSECT SELECT o_orderkey FROM orders WHERE o_rush",
    "SELECT count(*) FROM orders WHERE o_totalprice > (SELECT avg(o_totalprice) FROM orders)",
    "SELECT l_shipmode, count(*) FROM lineitem GROUP BY 1 HAVING count(*) > (SELECT count(*) / 10 FROM orders)",
  ]);
});

describe("window functions partitioned by the distribution column (pushed down)", () => {
  sameAnswers(sides, [
    "SELECT l_orderkey, l_linenumber, row_number() OVER (PARTITION BY l_orderkey ORDER BY l_linenumber DESC) FROM lineitem",
    "SELECT l_orderkey, l_linenumber, sum(l_quantity) OVER (PARTITION BY l_orderkey) FROM lineitem",
    "SELECT l_orderkey, l_linenumber, rank() OVER (PARTITION BY l_orderkey ORDER BY l_quantity DESC NULLS LAST) FROM lineitem",
    "SELECT l_orderkey, l_linenumber, lag(l_extendedprice) OVER (PARTITION BY l_orderkey ORDER BY l_linenumber) FROM lineitem",
    "SELECT l_orderkey, l_linenumber, first_value(l_shipmode) OVER w, count(*) OVER w FROM lineitem WINDOW w AS (PARTITION BY l_orderkey ORDER BY l_linenumber)",
    "SELECT l_orderkey, l_linenumber, dense_rank() OVER (PARTITION BY l_orderkey ORDER BY l_shipdate) FROM lineitem ORDER BY l_orderkey, l_linenumber LIMIT 20",
    "SELECT o_orderkey, l_linenumber, sum(l_extendedprice) OVER (PARTITION BY o_orderkey) FROM orders JOIN lineitem ON l_orderkey = o_orderkey",
    "SELECT l_orderkey, sum(l_quantity), rank() OVER (PARTITION BY l_orderkey ORDER BY sum(l_quantity)) FROM lineitem GROUP BY l_orderkey",
    "SELECT * FROM (SELECT l_orderkey, l_linenumber, row_number() OVER (PARTITION BY l_orderkey ORDER BY l_extendedprice DESC NULLS LAST, l_linenumber) rn FROM lineitem) s WHERE rn = 1",
    "SELECT count(*) FROM (SELECT row_number() OVER (PARTITION BY l_orderkey ORDER BY l_linenumber) rn FROM lineitem) s WHERE rn <= 2",
    "SELECT l_orderkey, l_linenumber, l_returnflag, count(*) OVER (PARTITION BY l_orderkey, l_returnflag) FROM lineitem",
    "SELECT l_orderkey, l_linenumber, avg(l_weight) OVER (PARTITION BY l_orderkey ORDER BY l_linenumber ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM lineitem",
    "SELECT l_orderkey, l_linenumber, ntile(2) OVER (PARTITION BY l_orderkey ORDER BY l_linenumber), percent_rank() OVER (PARTITION BY l_orderkey ORDER BY l_linenumber) FROM lineitem WHERE l_quantity > 20",
    "SELECT l_orderkey, l_linenumber, sum(l_quantity) OVER (PARTITION BY l_orderkey ORDER BY l_linenumber) AS running FROM lineitem ORDER BY running DESC NULLS LAST, l_orderkey, l_linenumber LIMIT 10",
  ]);
});

describe("parameters through the extended protocol", () => {
  sameAnswers(sides, [
    {
      sql: "SELECT o_orderkey, o_totalprice FROM orders WHERE o_totalprice > $1 ORDER BY o_totalprice DESC, o_orderkey",
      params: ["450000"],
    },
    { sql: "SELECT DISTINCT l_shipmode FROM lineitem WHERE l_quantity = $1", params: [50] },
    {
      sql: "SELECT n_name, count(*) FROM orders JOIN nation ON n_nationkey = o_shipnation WHERE n_regionkey = $1 GROUP BY 1",
      params: [2],
    },
    {
      sql: "SELECT count(*) FROM orders WHERE EXISTS (SELECT 1 FROM lineitem WHERE l_orderkey = o_orderkey AND l_quantity > $1)",
      params: [47],
    },
    {
      sql: "SELECT l_orderkey, l_linenumber, rank() OVER (PARTITION BY l_orderkey ORDER BY l_linenumber) FROM lineitem WHERE l_shipmode = $1",
      params: ["RAIL"],
    },
    {
      sql: "SELECT DISTINCT ON (l_shipmode) l_shipmode, l_orderkey FROM lineitem WHERE l_quantity < $1 ORDER BY l_shipmode, l_orderkey DESC",
      params: [4],
    },
    {
      sql: "SELECT l_orderkey, l_linenumber FROM lineitem WHERE l_receipt >= $1 ORDER BY l_receipt, l_orderkey, l_linenumber LIMIT $2",
      params: ["1998-01-01 00:00:00+00", 6],
    },
  ]);
});
