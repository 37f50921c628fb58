import { describe } from "vitest";
import { type Case, sameAnswers, sameAnswersOrRefusals, useAnalyticsDatabases } from "./analytics-cases.js";

// Multi-shard aggregates, herd vs one PostgreSQL: every aggregate the issue lists on every column
// type, with NULLs, all-NULL groups, empty input, FILTER and DISTINCT; GROUP BY on and off the
// distribution column; HAVING; expressions over aggregates. Result column names and type OIDs
// are part of every comparison (sum(int4) is bigint, avg(int4) numeric, sum(int8) numeric, …).
const db = useAnalyticsDatabases("analytics-aggregates");
const sides = () => db.sides();

/** lineitem's columns by type (l_weight/l_size hold multiples of 0.25/0.5, so sums are exact). */
const NUMBERS = {
  int2: "l_quantity",
  int4: "l_linenumber",
  "int4 with NULLs": "l_bonus",
  int8: "l_points",
  "numeric(15,2)": "l_extendedprice",
  "numeric(6,4)": "l_tax",
  numeric: "l_ratio",
  float8: "l_weight",
  float4: "l_size",
} as const;
const EXACT = ["l_quantity", "l_bonus", "l_points", "l_extendedprice", "l_ratio"] as const;
const FLOATS = ["l_weight", "l_size"] as const;

describe("each aggregate on each numeric type, over all shards", () => {
  const cases: Case[] = [];
  for (const column of Object.values(NUMBERS)) {
    for (const aggregate of ["sum", "avg", "min", "max", "count"]) {
      cases.push(`SELECT ${aggregate}(${column}) FROM lineitem`);
    }
  }
  sameAnswers(sides, cases);
});

describe("aggregates per group off the distribution column (merged on the coordinator)", () => {
  sameAnswers(
    sides,
    Object.values(NUMBERS).map(
      (c) =>
        `SELECT l_shipmode, sum(${c}), avg(${c}), min(${c}), max(${c}), count(${c}) FROM lineitem GROUP BY l_shipmode`,
    ),
  );
});

describe("aggregates per group on the distribution column (pushed down)", () => {
  sameAnswers(
    sides,
    Object.values(NUMBERS).map(
      (c) =>
        `SELECT l_orderkey, sum(${c}), avg(${c}), min(${c}), max(${c}), count(${c}) FROM lineitem GROUP BY l_orderkey`,
    ),
  );
});

describe("the empty table and empty input: one row of NULLs and 0 without GROUP BY, no rows with it", () => {
  sameAnswers(sides, [
    "SELECT count(*), count(r_amount), sum(r_amount), avg(r_amount), min(r_amount), max(r_amount) FROM returns",
    "SELECT sum(r_linenumber), avg(r_linenumber), sum(r_points), avg(r_points), sum(r_weight), avg(r_weight) FROM returns",
    "SELECT min(r_reason), max(r_when), bool_and(r_ok), bool_or(r_ok), every(r_ok) FROM returns",
    "SELECT stddev(r_amount), variance(r_points), stddev_pop(r_weight), var_samp(r_linenumber) FROM returns",
    "SELECT array_agg(r_amount), string_agg(r_reason, ','), json_agg(r_ok) FROM returns",
    "SELECT count(DISTINCT r_reason), count(*) FILTER (WHERE r_ok) FROM returns",
    "SELECT r_reason, count(*), sum(r_amount) FROM returns GROUP BY r_reason",
    "SELECT r_orderkey, count(*) FROM returns GROUP BY r_orderkey",
    "SELECT count(*) FROM returns HAVING count(*) = 0",
    "SELECT count(*), sum(l_quantity), avg(l_quantity), min(l_shipdate), max(l_comment) FROM lineitem WHERE l_quantity > 1000",
    "SELECT bool_and(l_fragile), stddev(l_quantity), array_agg(l_quantity), string_agg(l_comment, ',') FROM lineitem WHERE l_quantity > 1000",
    "SELECT l_shipmode, count(*) FROM lineitem WHERE l_quantity > 1000 GROUP BY l_shipmode",
    "SELECT l_orderkey, sum(l_quantity) FROM lineitem WHERE false GROUP BY l_orderkey",
    "SELECT count(*) FROM lineitem WHERE false",
  ]);
});

describe("NULL inputs and all-NULL groups (l_shipmode = 'AIR' and o_status = 'P' are NULL in most columns)", () => {
  sameAnswers(sides, [
    "SELECT sum(l_weight), avg(l_points), min(l_comment), max(l_ratio), count(l_bonus) FROM lineitem WHERE l_shipmode = 'AIR'",
    "SELECT bool_and(l_fragile), bool_or(l_fragile), every(l_fragile) FROM lineitem WHERE l_shipmode = 'AIR'",
    "SELECT stddev(l_points), variance(l_ratio), var_pop(l_bonus) FROM lineitem WHERE l_shipmode = 'AIR'",
    "SELECT l_shipmode, sum(l_weight), avg(l_points), min(l_comment), bool_or(l_fragile), count(l_bonus), count(*) FROM lineitem GROUP BY 1",
    "SELECT l_shipmode IS NULL, count(*), count(l_shipmode) FROM lineitem GROUP BY 1",
    "SELECT o_status, sum(o_weight), avg(o_weight), min(o_comment), count(o_weight), count(*) FROM orders GROUP BY o_status",
    "SELECT sum(l_quantity + l_linenumber), sum(l_quantity) + sum(l_linenumber) FROM lineitem",
    "SELECT count(*), count(l_shipmode), count(l_comment), count(l_fragile), count(l_shipdate), count(l_receipt) FROM lineitem",
    "SELECT count(o_clerk), count(o_placed_at), count(o_rush), count(o_status) FROM orders",
  ]);
});

describe("min and max of non-numeric types (C collation; char(n), date, timestamptz)", () => {
  sameAnswers(sides, [
    "SELECT min(o_clerk), max(o_clerk) FROM orders",
    "SELECT o_priority, min(o_clerk), max(o_clerk) FROM orders GROUP BY 1",
    "SELECT min(l_comment), max(l_comment) FROM lineitem",
    "SELECT min(o_status), max(o_status), min(l_returnflag), max(l_returnflag) FROM orders, lineitem WHERE o_orderkey = l_orderkey",
    "SELECT min(o_orderdate), max(o_orderdate), min(o_placed_at), max(o_placed_at) FROM orders",
    "SELECT l_returnflag, min(l_shipdate), max(l_receipt) FROM lineitem GROUP BY 1",
    "SELECT min(l_linestatus), max(l_shipmode) FROM lineitem",
    "SELECT min(c_name), max(c_since), min(c_acctbal) FROM customer",
  ]);
});

describe("bool_and, bool_or, every", () => {
  sameAnswers(sides, [
    "SELECT bool_and(l_fragile), bool_or(l_fragile), every(l_fragile) FROM lineitem",
    "SELECT bool_and(o_rush), bool_or(o_rush), every(o_rush IS NOT NULL) FROM orders",
    "SELECT l_shipmode, bool_and(l_fragile), bool_or(l_fragile), every(l_quantity > 0) FROM lineitem GROUP BY 1",
    "SELECT l_orderkey, bool_and(l_fragile), bool_or(l_fragile) FROM lineitem GROUP BY 1",
    "SELECT bool_and(l_quantity < 50), bool_or(l_quantity = 50), every(l_quantity >= 1) FROM lineitem",
    "SELECT o_status, bool_or(o_rush) FROM orders GROUP BY 1",
  ]);
});

describe("stddev and variance: exact for integers and numeric", () => {
  const all = (c: string) =>
    `stddev(${c}), stddev_samp(${c}), stddev_pop(${c}), variance(${c}), var_samp(${c}), var_pop(${c})`;
  sameAnswers(sides, [
    ...EXACT.map((c) => `SELECT ${all(c)} FROM lineitem`),
    ...EXACT.map((c) => `SELECT l_shipmode, ${all(c)} FROM lineitem GROUP BY 1`),
    ...EXACT.map((c) => `SELECT l_orderkey, ${all(c)} FROM lineitem GROUP BY 1`),
    `SELECT ${all("l_tax")} FROM lineitem`,
    `SELECT ${all("o_totalprice")} FROM orders`,
    `SELECT ${all("l_quantity")} FROM lineitem WHERE l_orderkey IN (3, 1099511627837)`,
    `SELECT l_linenumber, ${all("l_extendedprice")} FROM lineitem GROUP BY 1`,
  ]);
});

describe("stddev and variance of floats (rounded: two correct summation orders may differ in the last digits)", () => {
  const all = (c: string) =>
    ["stddev", "stddev_samp", "stddev_pop", "variance", "var_samp", "var_pop"]
      .map((f) => `round(${f}(${c})::numeric, 8) AS ${f}`)
      .join(", ");
  sameAnswers(sides, [
    ...FLOATS.map((c) => `SELECT ${all(c)} FROM lineitem`),
    ...FLOATS.map((c) => `SELECT l_returnflag, ${all(c)} FROM lineitem GROUP BY 1`),
    `SELECT o_priority, ${all("o_weight")} FROM orders GROUP BY 1`,
    // the result type itself: float8 for float8 and float4 input
    "SELECT pg_typeof(stddev(l_weight)), pg_typeof(var_pop(l_size)), pg_typeof(stddev(l_quantity)) FROM lineitem",
  ]);
});

describe("array_agg, string_agg, json_agg", () => {
  sameAnswers(sides, [
    // grouped by the distribution column: pushed down, ORDER BY inside honoured by the shard
    `SELECT l_orderkey, array_agg(l_linenumber ORDER BY l_linenumber), string_agg(l_shipmode, ',' ORDER BY l_linenumber),
            json_agg(l_quantity ORDER BY l_linenumber DESC) FROM lineitem GROUP BY l_orderkey`,
    "SELECT l_orderkey, array_agg(l_comment ORDER BY l_comment NULLS FIRST, l_linenumber) FROM lineitem GROUP BY 1",
    "SELECT o_orderkey, json_agg(l_weight ORDER BY l_linenumber) FROM orders JOIN lineitem ON l_orderkey = o_orderkey GROUP BY 1",
    // one element per group: the order inside cannot differ
    "SELECT l_orderkey, l_linenumber, array_agg(l_shipmode), string_agg(l_comment, '|'), json_agg(l_receipt) FROM lineitem GROUP BY 1, 2",
    "SELECT o_orderkey, array_agg(o_clerk), json_agg(o_totalprice) FROM orders GROUP BY 1",
    // order-independent wrappings of unordered aggregates
    "SELECT cardinality(array_agg(l_quantity)), length(string_agg(l_linestatus, '')), json_array_length(json_agg(l_fragile)) FROM lineitem",
    "SELECT l_shipmode, cardinality(array_agg(l_bonus)), length(string_agg(l_comment, '')) FROM lineitem GROUP BY 1",
    "SELECT array_length(array_agg(r_amount), 1), string_agg(r_reason, '') FROM returns",
    "SELECT l_returnflag, cardinality(array_agg(l_orderkey)) FROM lineitem WHERE l_quantity > 45 GROUP BY 1",
    "SELECT pg_typeof(array_agg(l_points)), pg_typeof(json_agg(l_points)), pg_typeof(string_agg(l_comment, ',')) FROM lineitem",
  ]);
});

describe("ordered aggregates across shards: PostgreSQL's exact answer, or a clear refusal", () => {
  sameAnswersOrRefusals(sides, [
    "SELECT array_agg(l_orderkey ORDER BY l_orderkey) FROM lineitem WHERE l_linenumber = 7",
    "SELECT string_agg(o_clerk, ',' ORDER BY o_clerk, o_orderkey) FROM orders WHERE o_orderkey < 300",
    "SELECT l_returnflag, json_agg(l_orderkey ORDER BY l_orderkey DESC, l_linenumber) FROM lineitem WHERE l_quantity > 48 GROUP BY 1",
    "SELECT (array_agg(l_quantity ORDER BY l_extendedprice DESC NULLS LAST, l_orderkey, l_linenumber))[1:5] FROM lineitem",
    // DISTINCT inside sorts the elements
    "SELECT array_agg(DISTINCT l_returnflag) FROM lineitem",
    "SELECT l_shipmode, array_agg(DISTINCT l_linestatus) FROM lineitem GROUP BY 1",
    "SELECT string_agg(DISTINCT l_shipmode, ',') FROM lineitem",
  ]);
});

describe("count(DISTINCT x): pushed down when grouped by the key, else grouped on x at the workers", () => {
  sameAnswers(sides, [
    "SELECT count(DISTINCT l_shipmode) FROM lineitem",
    "SELECT count(DISTINCT l_orderkey) FROM lineitem",
    "SELECT count(DISTINCT l_partkey), count(*) FROM lineitem",
    "SELECT count(DISTINCT l_weight) FROM lineitem",
    "SELECT count(DISTINCT o_clerk) FROM orders",
    "SELECT count(DISTINCT l_ratio) FROM lineitem",
    "SELECT count(DISTINCT l_fragile) FROM lineitem",
    "SELECT l_shipmode, count(DISTINCT l_partkey) FROM lineitem GROUP BY 1",
    "SELECT l_returnflag, count(DISTINCT l_orderkey), count(*) FROM lineitem GROUP BY 1",
    "SELECT l_orderkey, count(DISTINCT l_returnflag), count(DISTINCT l_shipmode) FROM lineitem GROUP BY 1",
    "SELECT o_priority, count(DISTINCT o_custkey) FROM orders GROUP BY 1",
    "SELECT count(DISTINCT l_suppkey) FILTER (WHERE l_fragile) FROM lineitem",
    "SELECT l_shipmode FROM lineitem GROUP BY 1 HAVING count(DISTINCT l_suppkey) > 45",
    "SELECT count(DISTINCT lower(o_clerk)) FROM orders",
    "SELECT count(DISTINCT l_shipmode) FROM lineitem WHERE l_quantity > 1000",
  ]);
});

describe("DISTINCT inside other aggregates, grouped by the key (pushed down)", () => {
  sameAnswers(sides, [
    "SELECT l_orderkey, sum(DISTINCT l_quantity), avg(DISTINCT l_discount), array_agg(DISTINCT l_returnflag) FROM lineitem GROUP BY 1",
    "SELECT o_orderkey, sum(DISTINCT l_suppkey), count(DISTINCT l_partkey) FROM orders JOIN lineitem ON l_orderkey = o_orderkey GROUP BY 1",
  ]);
});

describe("DISTINCT inside aggregates off the key, several DISTINCT columns: exact or refused", () => {
  sameAnswersOrRefusals(sides, [
    "SELECT sum(DISTINCT l_quantity), avg(DISTINCT l_quantity) FROM lineitem",
    "SELECT l_shipmode, sum(DISTINCT l_discount) FROM lineitem GROUP BY 1",
    "SELECT l_returnflag, count(DISTINCT l_orderkey), count(DISTINCT l_suppkey) FROM lineitem GROUP BY 1",
    "SELECT count(DISTINCT l_shipmode), count(DISTINCT l_returnflag) FROM lineitem",
    "SELECT count(DISTINCT (l_returnflag, l_linestatus)) FROM lineitem",
  ]);
});

describe("FILTER", () => {
  sameAnswers(sides, [
    "SELECT count(*) FILTER (WHERE l_fragile), sum(l_quantity) FILTER (WHERE l_returnflag = 'R'), avg(l_extendedprice) FILTER (WHERE l_discount > 0.05) FROM lineitem",
    "SELECT l_shipmode, count(*) FILTER (WHERE l_quantity > 25), min(l_shipdate) FILTER (WHERE l_fragile) FROM lineitem GROUP BY 1",
    "SELECT l_orderkey, count(*) FILTER (WHERE l_quantity > 25), max(l_comment) FILTER (WHERE l_linenumber > 1) FROM lineitem GROUP BY 1",
    "SELECT count(*) FILTER (WHERE l_quantity > 1000), sum(l_points) FILTER (WHERE false), avg(l_bonus) FILTER (WHERE l_quantity < 0) FROM lineitem",
    "SELECT bool_and(l_fragile) FILTER (WHERE l_quantity > 40), stddev(l_quantity) FILTER (WHERE l_returnflag = 'A') FROM lineitem",
    "SELECT l_returnflag, variance(l_extendedprice) FILTER (WHERE l_linestatus = 'F') FROM lineitem GROUP BY 1",
    "SELECT o_status, count(*) FILTER (WHERE o_rush), count(*) FILTER (WHERE NOT o_rush), count(*) FILTER (WHERE o_rush IS NULL) FROM orders GROUP BY 1",
  ]);
});

describe("NaN, ±Infinity, exponents (float8, float4, numeric): NaN sorts above every number", () => {
  sameAnswers(sides, [
    "SELECT sum(f8), avg(f8), min(f8), max(f8), count(f8) FROM specials",
    "SELECT sum(f4), avg(f4), min(f4), max(f4), count(f4) FROM specials",
    "SELECT sum(n), avg(n), min(n), max(n), count(n) FROM specials",
    "SELECT s_grp, sum(f8), avg(f8), min(f8), max(f8) FROM specials GROUP BY 1",
    "SELECT s_grp, sum(f4), avg(f4), min(f4), max(f4) FROM specials GROUP BY 1",
    "SELECT s_grp, sum(n), avg(n), min(n), max(n) FROM specials GROUP BY 1",
    "SELECT s_grp, stddev(n), var_pop(n), round(stddev(f8)::numeric, 8), round(var_samp(f8)::numeric, 8) FROM specials WHERE s_grp < 8 GROUP BY 1",
    "SELECT s_grp, sum(f8), avg(f8), sum(f4), avg(f4), sum(n), avg(n) FROM specials WHERE s_grp >= 8 GROUP BY 1",
    "SELECT sum(f8), max(f8), min(f4) FROM specials WHERE s_grp IN (8, 9)",
    // variance of floats from the float8 values themselves (these have 16 and 17 significant digits)
    "SELECT round(stddev(f8)::numeric, 8), round(var_pop(f8)::numeric, 8), round(variance(f8)::numeric, 8) FROM specials WHERE s_grp = 10",
    "SELECT s_grp, round(stddev_pop(f8)::numeric, 8), round(var_samp(f8)::numeric, 8) FROM specials WHERE s_grp >= 8 GROUP BY 1",
    "SELECT s_grp, count(DISTINCT f8) FROM specials GROUP BY 1",
  ]);
});

describe("result names and types", () => {
  sameAnswers(sides, [
    "SELECT count(*) AS n, sum(l_quantity) total, avg(l_quantity) FROM lineitem",
    "SELECT sum(l_quantity)::int AS s, avg(l_quantity)::numeric(10,2), max(l_points)::text FROM lineitem",
    "SELECT 1 AS one, 'x' AS label, NULL AS nothing, count(*) FROM lineitem",
    "SELECT count(*) + 0.5, count(*)::float8, count(*)::int2 FROM lineitem",
    'SELECT l_shipmode AS mode, count(*) AS "Count Of Lines" FROM lineitem GROUP BY 1',
    "SELECT pg_typeof(sum(l_quantity)), pg_typeof(sum(l_linenumber)), pg_typeof(sum(l_points)), pg_typeof(sum(l_size)) FROM lineitem",
    "SELECT pg_typeof(avg(l_quantity)), pg_typeof(avg(l_points)), pg_typeof(avg(l_weight)), pg_typeof(avg(l_size)) FROM lineitem",
    "SELECT pg_typeof(count(*)), pg_typeof(min(o_status)), pg_typeof(max(o_placed_at)) FROM orders",
  ]);
});

describe("GROUP BY on the key, off the key, by expressions, positions and aliases", () => {
  sameAnswers(sides, [
    "SELECT l_orderkey, count(*), sum(l_quantity) FROM lineitem GROUP BY l_orderkey",
    "SELECT l_orderkey, l_returnflag, count(*) FROM lineitem GROUP BY 1, 2",
    "SELECT l_returnflag, l_linestatus, count(*), sum(l_quantity), avg(l_discount) FROM lineitem GROUP BY l_returnflag, l_linestatus",
    "SELECT extract(year FROM l_shipdate) AS y, count(*) FROM lineitem GROUP BY 1",
    "SELECT date_trunc('month', l_receipt) AS m, count(*), sum(l_quantity) FROM lineitem GROUP BY 1",
    "SELECT l_orderkey % 5 AS bucket, count(*) FROM lineitem GROUP BY l_orderkey % 5",
    "SELECT lower(o_clerk), count(*) FROM orders GROUP BY lower(o_clerk)",
    "SELECT o_clerk, count(*), min(o_orderkey) FROM orders GROUP BY o_clerk",
    "SELECT l_fragile, count(*) FROM lineitem GROUP BY l_fragile",
    "SELECT l_weight, count(*) FROM lineitem GROUP BY l_weight",
    "SELECT l_ratio, count(*), sum(l_ratio) FROM lineitem GROUP BY 1",
    "SELECT o_status, o_priority, count(*), min(o_orderdate), max(o_placed_at) FROM orders GROUP BY 1, 2",
    "SELECT l_shipmode AS mode, count(*) FROM lineitem GROUP BY mode",
    "SELECT l_quantity > 25 AS big, count(*) FROM lineitem GROUP BY 1",
    "SELECT count(*), sum(l_extendedprice) FROM lineitem GROUP BY l_shipmode",
    "SELECT l_shipmode FROM lineitem GROUP BY l_shipmode",
    "SELECT l_suppkey, l_returnflag, count(*) FROM lineitem GROUP BY l_suppkey, l_returnflag",
    "SELECT o_orderdate, count(*) FROM orders GROUP BY o_orderdate",
    "SELECT l_orderkey, l_quantity > 25, count(*) FROM lineitem GROUP BY 1, 2",
    "SELECT o_shippriority, o_status, sum(o_totalprice), avg(o_weight) FROM orders GROUP BY o_shippriority, o_status",
    "SELECT l_discount, l_tax, count(*) FROM lineitem GROUP BY 1, 2",
    "SELECT o_placed_at::date, count(*) FROM orders GROUP BY 1",
    "SELECT coalesce(l_shipmode, 'none'), count(*) FROM lineitem GROUP BY 1",
    "SELECT l_linenumber, count(*), avg(l_quantity) FROM lineitem GROUP BY l_linenumber",
    "SELECT c_mktsegment, count(*), sum(c_acctbal), avg(c_acctbal) FROM customer GROUP BY 1",
    "SELECT p_brand, count(*), max(p_retailprice), min(p_size) FROM part GROUP BY 1",
    "SELECT l_returnflag, l_linestatus, l_shipmode, count(*) FROM lineitem GROUP BY 3, 1, 2",
  ]);
});

describe("grouping sets, ROLLUP, CUBE: exact or refused", () => {
  sameAnswersOrRefusals(sides, [
    "SELECT l_returnflag, l_linestatus, count(*) FROM lineitem GROUP BY ROLLUP (l_returnflag, l_linestatus)",
    "SELECT l_returnflag, l_linestatus, sum(l_quantity) FROM lineitem GROUP BY CUBE (1, 2)",
    "SELECT l_shipmode, l_returnflag, count(*) FROM lineitem GROUP BY GROUPING SETS ((l_shipmode), (l_returnflag), ())",
    "SELECT l_orderkey, l_returnflag, count(*) FROM lineitem GROUP BY ROLLUP (l_orderkey, l_returnflag)",
  ]);
});

describe("HAVING, after merging the groups", () => {
  sameAnswers(sides, [
    "SELECT l_shipmode, count(*) FROM lineitem GROUP BY 1 HAVING count(*) > 380",
    "SELECT l_shipmode FROM lineitem GROUP BY 1 HAVING avg(l_quantity) > 25.5",
    "SELECT l_orderkey, sum(l_quantity) FROM lineitem GROUP BY 1 HAVING sum(l_quantity) > 200",
    "SELECT l_returnflag, sum(l_extendedprice) FROM lineitem GROUP BY 1 HAVING min(l_shipdate) < '1992-03-01' AND max(l_quantity) = 50",
    "SELECT l_suppkey, count(*) FROM lineitem GROUP BY 1 HAVING count(*) > 60 OR sum(l_quantity) < 1400",
    "SELECT l_suppkey FROM lineitem GROUP BY 1 HAVING bool_or(l_fragile) AND stddev(l_quantity) > 14.5",
    "SELECT l_shipmode, count(*) FROM lineitem GROUP BY 1 HAVING count(*) FILTER (WHERE l_fragile) > 150",
    "SELECT count(*) FROM lineitem HAVING count(*) > 0",
    "SELECT count(*) FROM lineitem HAVING count(*) > 100000",
    "SELECT o_priority, count(*) FROM orders GROUP BY 1 HAVING o_priority LIKE '%-H%'",
    "SELECT o_clerk, count(*) FROM orders GROUP BY 1 HAVING count(*) BETWEEN 40 AND 45",
    "SELECT l_orderkey FROM lineitem GROUP BY 1 HAVING count(*) = 7 AND min(l_quantity) > 5",
    "SELECT l_linenumber, max(l_weight) FROM lineitem GROUP BY 1 HAVING sum(l_weight) IS NOT NULL",
    "SELECT l_shipmode, count(*) FROM lineitem GROUP BY 1 HAVING sum(l_weight) IS NULL",
  ]);
});

describe("expressions over aggregates", () => {
  sameAnswers(sides, [
    "SELECT sum(l_quantity) / count(*) FROM lineitem",
    "SELECT sum(l_extendedprice) / count(*), sum(l_points) / count(*) FROM lineitem",
    "SELECT round(avg(l_extendedprice), 2), round(avg(l_quantity), 2), round(avg(l_ratio), 5) FROM lineitem",
    "SELECT max(l_shipdate) - min(l_shipdate), max(l_receipt) - min(l_receipt), max(l_quantity) - min(l_quantity) FROM lineitem",
    "SELECT l_shipmode, CASE WHEN count(*) > 380 THEN 'busy' ELSE 'quiet' END FROM lineitem GROUP BY 1",
    "SELECT sum(l_extendedprice * l_discount) AS revenue FROM lineitem WHERE l_shipdate >= '1994-01-01' AND l_shipdate < '1995-01-01' AND l_discount BETWEEN 0.05 AND 0.07 AND l_quantity < 24",
    "SELECT 100.00 * sum(CASE WHEN l_returnflag = 'R' THEN l_extendedprice ELSE 0 END) / sum(l_extendedprice) FROM lineitem",
    "SELECT coalesce(sum(r_amount), 0), coalesce(max(r_when), '2000-01-01'), coalesce(count(*), -1) FROM returns",
    "SELECT count(*) * 2 + 1, -sum(l_quantity), abs(min(l_bonus)) FROM lineitem",
    "SELECT sum(l_weight) / nullif(count(l_weight), 0), sum(l_size) / count(*) FROM lineitem",
    "SELECT avg(l_quantity) - avg(l_quantity) FILTER (WHERE l_fragile) FROM lineitem",
    "SELECT greatest(max(l_quantity), max(l_linenumber)), least(min(l_bonus), 0) FROM lineitem",
    "SELECT count(*) FILTER (WHERE l_fragile)::float8 / count(*) FROM lineitem",
    "SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty, sum(l_extendedprice) AS sum_base_price, sum(l_extendedprice * (1 - l_discount)) AS sum_disc_price, sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS sum_charge, avg(l_quantity) AS avg_qty, avg(l_extendedprice) AS avg_price, avg(l_discount) AS avg_disc, count(*) AS count_order FROM lineitem WHERE l_shipdate <= date '1998-12-01' - interval '90' day GROUP BY l_returnflag, l_linestatus",
    "SELECT l_orderkey, sum(l_extendedprice) / sum(l_quantity), max(l_weight) - min(l_weight) FROM lineitem GROUP BY 1",
    "SELECT to_char(sum(l_extendedprice), 'FM99999999999.00'), avg(l_quantity)::numeric(10,3) FROM lineitem",
    "SELECT sum(l_points) + 1, sum(l_points) * 2, avg(l_points) / 1000 FROM lineitem",
    "SELECT sum(l_quantity * 1.5), sum(l_quantity)::numeric * 1.5 FROM lineitem",
    "SELECT max(o_totalprice) / min(o_totalprice) FROM orders WHERE o_totalprice > 0",
    "SELECT l_shipmode, sum(l_quantity) > 9000 AND avg(l_discount) < 0.05 FROM lineitem GROUP BY 1",
  ]);
});

describe("parameters through the extended protocol", () => {
  sameAnswers(sides, [
    { sql: "SELECT count(*), sum(l_quantity) FROM lineitem WHERE l_quantity > $1", params: [25] },
    {
      sql: "SELECT l_shipmode, sum(l_quantity) FROM lineitem WHERE l_shipdate >= $1 GROUP BY 1",
      params: ["1995-01-01"],
    },
    { sql: "SELECT l_shipmode, count(*) FROM lineitem GROUP BY 1 HAVING count(*) > $1", params: [390] },
    { sql: "SELECT sum(l_quantity * $1::int), avg(l_extendedprice * $2::numeric) FROM lineitem", params: [3, "0.5"] },
    {
      sql: "SELECT count(*) FILTER (WHERE l_shipmode = $1), count(*) FILTER (WHERE l_shipmode = $2) FROM lineitem",
      params: ["MAIL", "AIR"],
    },
    {
      sql: "SELECT o_priority, count(*) FROM orders WHERE o_clerk = ANY($1) GROUP BY 1",
      params: [["Zoë", "zoe", "ß"]],
    },
    { sql: "SELECT $1::text AS label, count(*) FROM lineitem", params: ["all lines"] },
    { sql: "SELECT count(*) FROM lineitem WHERE l_shipmode IS NOT DISTINCT FROM $1", params: [null] },
    { sql: "SELECT l_orderkey, sum(l_quantity) FROM lineitem GROUP BY 1 HAVING sum(l_quantity) > $1", params: [180] },
    { sql: "SELECT count(DISTINCT l_partkey) FROM lineitem WHERE l_receipt < $1", params: ["1994-06-01 00:00:00+00"] },
  ]);
});
