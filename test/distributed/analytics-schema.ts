import type pg from "pg";
import { generator, runAll } from "./schema.js";

/**
 * The schema and data of the multi-shard (analytics) differential tests: TPC-H-like tables.
 *
 * - `orders` and `lineitem` are distributed on the order key (bigint) and colocated; `returns`
 *   is colocated with them and always empty.
 * - `customer` (int4 key) and `part` (int4 key, `colocate_with => 'none'`) are distributed in other
 *   colocation groups, for the joins herd must refuse.
 * - `nation` and `region` are reference tables.
 * - `specials` holds NaN and ±Infinity (float8, float4, numeric), which sort above every number,
 *   floats PostgreSQL prints with an exponent, and floats with more than 15 significant digits.
 * - `ledger`/`ledger_entries` (colocated) and `ledger_kinds` (reference) are for multi-shard
 *   UPDATE and DELETE, so the writes never disturb the tables the reads use.
 *
 * The data is generated from a seed, so herd and the plain PostgreSQL get the same rows. It is
 * chosen so that two correct evaluation orders give the same answer byte for byte: float8 and
 * float4 values are multiples of 0.25 and 0.5 (every partial sum is exact), and no two numerically
 * equal numerics differ in scale (min/max/GROUP BY would pick either). Rows with
 * `l_shipmode = 'AIR'` or `o_status = 'P'` have NULL in most columns (all-NULL groups);
 * text mixes case, accents, equal strings, emoji and fullwidth letters (whose C-collation order
 * differs from JavaScript's UTF-16 order).
 */
export const ANALYTICS_SCHEMA = [
  "CREATE TABLE region (r_regionkey int4 PRIMARY KEY, r_name text NOT NULL, r_comment text)",
  "CREATE TABLE nation (n_nationkey int2 PRIMARY KEY, n_name text NOT NULL, n_regionkey int4, n_comment text)",
  `CREATE TABLE customer (c_custkey int4 PRIMARY KEY, c_name text, c_nationkey int2, c_acctbal numeric(12,2),
     c_mktsegment text, c_since date)`,
  `CREATE TABLE part (p_partkey int4 PRIMARY KEY, p_name text, p_brand text, p_size int2, p_retailprice numeric(10,2),
     p_container text)`,
  `CREATE TABLE orders (o_orderkey int8 PRIMARY KEY, o_custkey int4, o_status char(1), o_totalprice numeric(12,2),
     o_orderdate date, o_priority text, o_clerk text, o_shippriority int2, o_placed_at timestamptz, o_rush boolean,
     o_weight float8, o_shipnation int2, o_comment text)`,
  `CREATE TABLE lineitem (l_orderkey int8 NOT NULL, l_linenumber int4 NOT NULL, l_partkey int4, l_suppkey int4,
     l_quantity int2, l_extendedprice numeric(15,2), l_discount numeric(4,2), l_tax numeric(6,4), l_ratio numeric,
     l_returnflag char(1), l_linestatus text, l_shipdate date, l_receipt timestamptz, l_shipmode text, l_comment text,
     l_weight float8, l_size float4, l_points int8, l_bonus int4, l_fragile boolean,
     PRIMARY KEY (l_orderkey, l_linenumber))`,
  `CREATE TABLE returns (r_orderkey int8 NOT NULL, r_linenumber int4, r_amount numeric(12,2), r_reason text,
     r_weight float8, r_points int8, r_ok boolean, r_when date)`,
  "CREATE TABLE specials (s_id int4 PRIMARY KEY, s_grp int2, f8 float8, f4 float4, n numeric)",
  `CREATE TABLE ledger (account int4 NOT NULL, id int4 NOT NULL, kind int2, amount numeric(12,2), note text,
     flag boolean, PRIMARY KEY (account, id))`,
  "CREATE TABLE ledger_entries (account int4 NOT NULL, seq int4 NOT NULL, delta numeric(12,2), PRIMARY KEY (account, seq))",
  "CREATE TABLE ledger_kinds (id int2 PRIMARY KEY, name text)",
];

/** herd only: the distribution calls (the plain PostgreSQL keeps ordinary tables). */
export const ANALYTICS_DISTRIBUTE = [
  "SELECT create_reference_table('region')",
  "SELECT create_reference_table('nation')",
  "SELECT create_reference_table('ledger_kinds')",
  "SELECT create_distributed_table('orders', 'o_orderkey')",
  "SELECT create_distributed_table('lineitem', 'l_orderkey', colocate_with => 'orders')",
  "SELECT create_distributed_table('returns', 'r_orderkey', colocate_with => 'orders')",
  "SELECT create_distributed_table('customer', 'c_custkey')",
  "SELECT create_distributed_table('part', 'p_partkey', colocate_with => 'none')",
  "SELECT create_distributed_table('specials', 's_id', shard_count => 8)",
  "SELECT create_distributed_table('ledger', 'account', colocate_with => 'none')",
  "SELECT create_distributed_table('ledger_entries', 'account', colocate_with => 'ledger')",
];

const REGIONS = ["AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST"];
const NATIONS: [string, number][] = [
  ["ALGERIA", 0],
  ["ARGENTINA", 1],
  ["BRAZIL", 1],
  ["CANADA", 1],
  ["EGYPT", 4],
  ["ETHIOPIA", 0],
  ["FRANCE", 3],
  ["GERMANY", 3],
  ["INDIA", 2],
  ["INDONESIA", 2],
  ["IRAN", 4],
  ["IRAQ", 4],
  ["JAPAN", 2],
  ["JORDAN", 4],
  ["KENYA", 0],
  ["MOROCCO", 0],
  ["MOZAMBIQUE", 0],
  ["PERU", 1],
  ["CHINA", 2],
  ["ROMANIA", 3],
  ["SAUDI ARABIA", 4],
  ["VIETNAM", 2],
  ["RUSSIA", 3],
  ["UNITED KINGDOM", 3],
  ["UNITED STATES", 1],
];
const SEGMENTS = ["AUTOMOBILE", "BUILDING", "FURNITURE", "HOUSEHOLD", "MACHINERY"];
const PRIORITIES = ["1-URGENT", "2-HIGH", "3-MEDIUM", "4-NOT SPECIFIED", "5-LOW"];
/** Collation traps: case, accents, equal strings, '' and ' ', emoji (U+1F600) vs fullwidth (U+FF21). */
export const CLERKS = [
  "Clerk#001",
  "clerk#001",
  "Clerk#002",
  "Álvaro",
  "alvaro",
  "Zoë",
  "zoe",
  "Émile",
  "émile",
  "Ångström",
  "ß",
  "ss",
  "日本",
  "😀 smile",
  "Ａｌｐｈａ",
  "",
  " space",
  "Z",
  "a",
];
const SHIPMODES = ["AIR", "MAIL", "SHIP", "TRUCK", "RAIL", "REG AIR", "FOB"];
const WORDS = [
  "quick",
  "Quick",
  "QUICK",
  "fox",
  "Fox",
  "café",
  "cafe",
  "naïve",
  "über",
  "Über",
  "zebra",
  "ápple",
  "😀",
];
/** Numerics of many scales; numerically distinct, so min/max/GROUP BY never choose between 1.5 and 1.50. */
const RATIOS = [
  "1",
  "1.5",
  "0.125",
  "3.14159",
  "-2.0000001",
  "100",
  "0.3333333333333333333333",
  "-0.5",
  "12345678901234567890.123",
  "7",
  "0.00001",
  "-42.42",
];
const CONTAINERS = ["SM BOX", "LG CASE", "MED BAG", "JUMBO PKG", "WRAP JAR"];

function quote(value: string | null | undefined): string {
  return value === null || value === undefined ? "NULL" : `'${value.replaceAll("'", "''")}'`;
}

function day(base: string, offset: number): string {
  const date = new Date(`${base}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() + offset);
  return date.toISOString().slice(0, 10);
}

function inserts(table: string, rows: string[], batch = 400): string[] {
  const statements: string[] = [];
  if (reverseRows) rows = [...rows].reverse();
  for (let i = 0; i < rows.length; i += batch) {
    statements.push(`INSERT INTO ${table} VALUES ${rows.slice(i, i + batch).join(",\n")}`);
  }
  return statements;
}

/** The order keys: mostly small positive, some above 2^40 and some negative. */
export function orderKey(i: number): bigint {
  if (i % 97 === 0) return BigInt(-i);
  if (i % 61 === 0) return 2n ** 40n + BigInt(i);
  return BigInt(i * 3);
}

export const ORDER_COUNT = 800;

let reverseRows = false;

/**
 * INSERT statements (literals only) filling every table; the same on herd and on PostgreSQL.
 * `reversed` inserts the same rows in the opposite order (for the suite's self-check).
 */
export function analyticsData(reversed = false): string[] {
  reverseRows = reversed;
  const random = generator(20240505);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const int = (low: number, high: number) => low + Math.floor(random() * (high - low + 1));
  const maybe = (probability: number, value: string) => (random() < probability ? "NULL" : value);
  const statements: string[] = [];

  statements.push(
    ...inserts(
      "region",
      REGIONS.map(
        (name, key) => `(${key}, ${quote(name)}, ${key === 2 ? "NULL" : quote(`region ${name.toLowerCase()}`)})`,
      ),
    ),
  );
  statements.push(
    ...inserts(
      "nation",
      NATIONS.map(([name, region], key) => `(${key}, ${quote(name)}, ${region}, ${maybe(0.2, quote(pick(WORDS)))})`),
    ),
  );

  const customers: string[] = [];
  for (let key = 1; key <= 150; key += 1) {
    customers.push(
      `(${key}, ${quote(`Customer#${String(key).padStart(6, "0")}`)}, ${maybe(0.05, String(int(0, 24)))}, ${maybe(
        0.05,
        (int(-99999, 999999) / 100).toFixed(2),
      )}, ${maybe(0.05, quote(pick(SEGMENTS)))}, ${maybe(0.1, quote(day("1990-01-01", int(0, 3000))))})`,
    );
  }
  statements.push(...inserts("customer", customers));

  const parts: string[] = [];
  for (let key = 1; key <= 200; key += 1) {
    parts.push(
      `(${key}, ${quote(`part ${pick(WORDS)} ${key}`)}, ${quote(`Brand#${int(1, 5)}${int(1, 5)}`)}, ${maybe(
        0.05,
        String(int(1, 50)),
      )}, ${(int(90000, 200000) / 100).toFixed(2)}, ${maybe(0.05, quote(pick(CONTAINERS)))})`,
    );
  }
  statements.push(...inserts("part", parts));

  const orders: string[] = [];
  const lines: string[] = [];
  for (let i = 1; i <= ORDER_COUNT; i += 1) {
    const key = orderKey(i);
    const status = random() < 0.04 ? null : pick(["O", "F", "P"]);
    const pending = status === "P";
    const date = maybe(0.03, quote(day("1992-01-01", int(0, 2400))));
    const placed = maybe(
      0.04,
      quote(
        `${day("1995-01-01", int(0, 900))} ${String(int(0, 23)).padStart(2, "0")}:${String(int(0, 59)).padStart(2, "0")}:${String(int(0, 59)).padStart(2, "0")}${random() < 0.3 ? ".25" : ""}+0${int(0, 5)}`,
      ),
    );
    orders.push(
      `(${key}, ${maybe(0.03, String(int(1, 160)))}, ${quote(status)}, ${maybe(0.05, (int(100, 50000000) / 100).toFixed(2))}, ${date}, ${maybe(
        0.05,
        quote(pick(PRIORITIES)),
      )}, ${maybe(0.04, quote(pick(CLERKS)))}, ${maybe(0.1, String(int(0, 3)))}, ${placed}, ${maybe(
        0.1,
        random() < 0.5 ? "true" : "false",
      )}, ${pending ? "NULL" : maybe(0.05, String(int(-40, 4000) * 0.25))}, ${maybe(
        0.05,
        String(random() < 0.05 ? 99 : int(0, 24)),
      )}, ${pending ? "NULL" : maybe(0.1, quote(`${pick(WORDS)} ${pick(WORDS)}`))})`,
    );
    // every tenth order has no lineitems (LEFT JOIN and EXISTS have something to find)
    if (i % 10 === 0) continue;
    const count = int(1, 7);
    for (let line = 1; line <= count; line += 1) lines.push(lineitem(key, line));
  }
  // lineitems of orders that do not exist (RIGHT/FULL JOIN, NOT EXISTS)
  for (let j = 1; j <= 20; j += 1) lines.push(lineitem(BigInt(1_000_000 + j), 1));
  statements.push(...inserts("orders", orders));
  statements.push(...inserts("lineitem", lines));

  function lineitem(key: bigint, line: number): string {
    const mode = random() < 0.04 ? null : pick(SHIPMODES);
    const air = mode === "AIR";
    const quantity = int(1, 50);
    const nullable = (value: string) => (air ? "NULL" : maybe(0.08, value));
    const points = BigInt(int(0, 4_000_000)) * 1_000_000_000_007n - 2_000_000_000_000_000_000n;
    return `(${key}, ${line}, ${maybe(0.03, String(int(1, 220)))}, ${maybe(0.03, String(int(1, 50)))}, ${maybe(
      0.03,
      String(quantity),
    )}, ${maybe(0.03, ((quantity * int(90000, 200000)) / 100).toFixed(2))}, ${maybe(0.03, (int(0, 10) / 100).toFixed(2))}, ${maybe(
      0.03,
      (int(0, 800) / 10000).toFixed(4),
    )}, ${nullable(pick(RATIOS))}, ${maybe(0.03, quote(pick(["A", "N", "R"])))}, ${maybe(
      0.03,
      quote(pick(["O", "F"])),
    )}, ${maybe(0.05, quote(day("1992-01-01", int(0, 2500))))}, ${maybe(
      0.05,
      quote(`${day("1992-01-01", int(0, 2500))} 0${int(0, 9)}:30:00+00`),
    )}, ${quote(mode)}, ${nullable(quote(`${pick(WORDS)} ${pick(WORDS)}`))}, ${nullable(
      String(int(-400, 4000) * 0.25),
    )}, ${nullable(String(int(0, 200) * 0.5))}, ${nullable(String(points))}, ${nullable(
      String(random() < 0.1 ? int(1_900_000_000, 2_000_000_000) : int(-1000, 1000)),
    )}, ${nullable(random() < 0.5 ? "true" : "false")})`;
  }

  const specials: [number, string, string, string][] = [
    [1, "1.5", "1.5", "1.5"],
    [1, "NaN", "NaN", "NaN"],
    [1, "-2.25", "-2.25", "-2.25"],
    [2, "Infinity", "Infinity", "Infinity"],
    [2, "3", "3", "3"],
    [3, "-Infinity", "-Infinity", "-Infinity"],
    [3, "Infinity", "Infinity", "Infinity"],
    [4, "NULL", "NULL", "NULL"],
    [4, "NULL", "NULL", "NULL"],
    [5, "NaN", "NaN", "NaN"],
    [6, "0.5", "0.5", "0.5"],
    [7, "-Infinity", "-Infinity", "-Infinity"],
    [7, "-1", "-1", "-1"],
    // PostgreSQL prints these with exponents (3.5e+15, 2.384185791015625e-07), JavaScript does not
    [8, "1e15", "1e15", "1e15"],
    [8, "2.5e15", "2.5e15", "2.5e15"],
    [9, "1.1920928955078125e-07", "1.1920928955078125e-07", "1.1920928955078125e-07"],
    [9, "1.1920928955078125e-07", "1.1920928955078125e-07", "1.1920928955078125e-07"],
    // floats with more than 15 significant digits (float8::numeric keeps only 15)
    [10, "1e15", "1e15", "1e15"],
    [10, "1000000000000000.5", "1000000000000000.5", "1000000000000000.5"],
    [10, "1000000000000001", "1000000000000001", "1000000000000001"],
    [10, "1000000000000001.5", "1000000000000001.5", "1000000000000001.5"],
  ];
  statements.push(
    ...inserts(
      "specials",
      specials.map(([group, f8, f4, n], index) => {
        const lit = (v: string) => (v === "NULL" ? v : `'${v}'`);
        return `(${index * 7 + 1}, ${group}, ${lit(f8)}, ${lit(f4)}, ${lit(n)})`;
      }),
    ),
  );

  statements.push("INSERT INTO ledger_kinds VALUES (1, 'deposit'), (2, 'withdrawal'), (3, 'fee'), (4, NULL)");
  const ledger: string[] = [];
  const entries: string[] = [];
  for (let account = 1; account <= 60; account += 1) {
    for (let id = 1; id <= 5; id += 1) {
      ledger.push(
        `(${account}, ${id}, ${maybe(0.1, String(int(1, 5)))}, ${maybe(0.05, (int(-5000, 50000) / 100).toFixed(2))}, ${maybe(
          0.1,
          quote(`${pick(WORDS)} ${id}`),
        )}, ${maybe(0.1, random() < 0.5 ? "true" : "false")})`,
      );
    }
    for (let seq = 1; seq <= int(0, 4); seq += 1) {
      entries.push(`(${account}, ${seq}, ${maybe(0.1, (int(-1000, 1000) / 100).toFixed(2))})`);
    }
  }
  statements.push(...inserts("ledger", ledger));
  statements.push(...inserts("ledger_entries", entries));
  return reversed ? statements.reverse() : statements;
}

/**
 * Creates the schema and data on herd (distributed) and on a plain PostgreSQL (ordinary tables).
 * With `selfCheck`, "herd" is a second plain PostgreSQL holding the rows in the opposite physical
 * order: an ORDER BY the suite wrongly takes for total then shows up as a difference.
 */
export async function loadAnalytics(herd: pg.Client, plain: pg.Client, selfCheck = false): Promise<void> {
  for (const client of [herd, plain]) await runAll(client, ANALYTICS_SCHEMA);
  if (selfCheck) {
    await runAll(herd, analyticsData(true));
    await herd.query("SET enable_hashagg = off");
  } else {
    await runAll(herd, ANALYTICS_DISTRIBUTE);
    await runAll(herd, analyticsData());
  }
  await runAll(plain, analyticsData());
}
