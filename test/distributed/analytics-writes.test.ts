import { join } from "node:path";
import { sleep } from "@herd/shared";
import { livePostmasterPid } from "@herd/worker-bot";
import { describe, expect, it } from "vitest";
import { answer, expectSameAnswer } from "../helpers/differential.js";
import { eventually } from "../helpers/herd-up.js";
import { botPid } from "../helpers/processes.js";
import { refusals, sameAnswers, selfCheck, useAnalyticsDatabases } from "./analytics-cases.js";
import { analyticsData } from "./analytics-schema.js";
import { runAll } from "./schema.js";

// Multi-shard statements that cannot run shard group by shard group — answered through recursive
// planning (their tables or subqueries read first) or refused (SQLSTATE 0A000, Citus's words) —
// EXPLAIN of distributed queries, and multi-shard UPDATE and DELETE compared with one PostgreSQL:
// the RETURNING rows and the tables left behind (the writes touch only the ledger tables).
const db = useAnalyticsDatabases("analytics-writes");
const sides = () => db.sides();

const COMPLEX_JOIN =
  "complex joins are only supported when all distributed tables are co-located and joined on their distribution columns";

describe("joins across colocation groups or off the distribution column: the tables are read first, the join computed on the coordinator", () => {
  sameAnswers(sides, [
    "SELECT count(*) FROM orders JOIN customer ON c_custkey = o_custkey",
    "SELECT c_mktsegment, count(*) FROM customer JOIN orders ON o_custkey = c_custkey GROUP BY 1",
    "SELECT count(*) FROM lineitem JOIN part ON p_partkey = l_partkey",
    "SELECT count(*) FROM customer JOIN part ON p_partkey = c_custkey",
    "SELECT count(*) FROM orders o JOIN lineitem l ON l.l_suppkey = o.o_custkey",
    "SELECT count(*) FROM orders a JOIN orders b ON a.o_custkey = b.o_custkey",
    "SELECT count(*) FROM orders, lineitem",
    "SELECT count(*) FROM orders JOIN lineitem ON l_orderkey = o_orderkey + 1",
    "SELECT o_orderkey, c_name FROM orders LEFT JOIN customer ON c_custkey = o_custkey",
    "SELECT count(*) FROM lineitem a JOIN lineitem b ON a.l_partkey = b.l_partkey",
    "SELECT l_shipmode, sum(p_retailprice) FROM lineitem, part WHERE p_partkey = l_partkey GROUP BY 1",
    "SELECT count(*) FROM orders JOIN lineitem ON l_orderkey = o_orderkey JOIN customer ON c_custkey = o_custkey",
  ]);
});

describe("subqueries herd refuses: across colocation groups or not on the distribution column", () => {
  refusals(sides, [
    {
      sql: "SELECT count(*) FROM lineitem WHERE EXISTS (SELECT 1 FROM part WHERE p_partkey = l_partkey)",
      message: COMPLEX_JOIN,
    },
    {
      sql: "SELECT count(*) FROM orders o WHERE EXISTS (SELECT 1 FROM lineitem l WHERE l.l_suppkey = o.o_custkey)",
      message: COMPLEX_JOIN,
    },
  ]);
});

describe("subqueries a shard group cannot compute alone run first (more in recursive-planning.test.ts)", () => {
  sameAnswers(sides, [
    "SELECT count(*) FROM orders WHERE o_custkey IN (SELECT c_custkey FROM customer WHERE c_acctbal > 0)",
    "SELECT count(*) FROM orders WHERE o_orderkey IN (SELECT l_partkey FROM lineitem)",
    "SELECT count(*) FROM orders WHERE o_orderkey IN (SELECT l_orderkey FROM lineitem ORDER BY l_orderkey LIMIT 10)",
    "SELECT count(*) FROM orders JOIN (SELECT l_suppkey, count(*) c FROM lineitem GROUP BY 1) s ON s.l_suppkey = o_orderkey",
    "SELECT count(*) FROM (SELECT l_orderkey, rank() OVER (ORDER BY l_quantity) r FROM lineitem) s WHERE r < 5",
    "SELECT o_orderkey FROM orders JOIN (SELECT DISTINCT l_suppkey FROM lineitem) s ON s.l_suppkey = o_orderkey",
  ]);
});

describe("outer joins with a reference table on the outer side: computed on the coordinator", () => {
  sameAnswers(sides, [
    "SELECT n_name, count(o_orderkey) FROM nation LEFT JOIN orders ON o_shipnation = n_nationkey GROUP BY 1",
    "SELECT count(*) FROM orders RIGHT JOIN nation ON n_nationkey = o_shipnation",
    "SELECT count(*) FROM nation FULL JOIN orders ON o_shipnation = n_nationkey",
  ]);
});

describe("window functions not partitioned by the distribution column: computed on the coordinator", () => {
  sameAnswers(sides, [
    "SELECT o_orderkey, rank() OVER (ORDER BY o_totalprice) FROM orders",
    "SELECT o_orderkey, sum(o_totalprice) OVER (PARTITION BY o_custkey) FROM orders",
    "SELECT o_orderkey, count(*) OVER () FROM orders",
    "SELECT l_returnflag, sum(sum(l_quantity)) OVER () FROM lineitem GROUP BY 1",
    "SELECT l_orderkey, row_number() OVER (PARTITION BY l_orderkey % 4 ORDER BY l_orderkey) FROM lineitem",
    "SELECT l_orderkey, row_number() OVER w FROM lineitem WINDOW w AS (ORDER BY l_linenumber, l_orderkey)",
    "SELECT o_orderkey, rank() OVER (PARTITION BY l_shipmode ORDER BY l_linenumber) FROM orders JOIN lineitem ON l_orderkey = o_orderkey",
    "SELECT l_shipmode, rank() OVER (ORDER BY count(*)) FROM lineitem GROUP BY 1",
  ]);
});

describe("a distributed table with an ordinary one", () => {
  it.skipIf(selfCheck)("joins them on the coordinator, reading the distributed table first", async () => {
    const { herd } = sides();
    await herd.query("CREATE TABLE scratch_local (k int8, label text)");
    await herd.query("INSERT INTO scratch_local SELECT i, 'k' || i FROM generate_series(1, 30) i");
    const joined = await herd.query("SELECT count(*)::int AS n FROM orders JOIN scratch_local ON k = o_orderkey");
    const direct = await herd.query("SELECT count(*)::int AS n FROM orders WHERE o_orderkey BETWEEN 1 AND 30");
    expect(joined.rows).toEqual(direct.rows);
    const inList = await herd.query(
      "SELECT count(*)::int AS n FROM lineitem WHERE l_orderkey IN (SELECT k FROM scratch_local)",
    );
    const lines = await herd.query("SELECT count(*)::int AS n FROM lineitem WHERE l_orderkey BETWEEN 1 AND 30");
    expect(inList.rows).toEqual(lines.rows);
  });
});

describe.skipIf(selfCheck)("EXPLAIN of a multi-shard query", () => {
  it("shows the distributed plan without running it, and EXPLAIN ANALYZE adds timings", async () => {
    const { herd, plain } = sides();
    const plan = (await herd.query("EXPLAIN SELECT l_shipmode, count(*) FROM lineitem GROUP BY 1")).rows
      .map((row) => row["QUERY PLAN"])
      .join("\n");
    // a distributed plan names the shards (lineitem_<shardid>), which no plain plan does
    expect(plan).toMatch(/lineitem_\d+/);
    const analyzed = (await herd.query("EXPLAIN ANALYZE SELECT count(*) FROM lineitem")).rows
      .map((row) => row["QUERY PLAN"])
      .join("\n");
    expect(analyzed).toMatch(/lineitem_\d+/);
    expect(analyzed).toMatch(/time/i);
    await herd.query("EXPLAIN DELETE FROM ledger");
    await plain.query("EXPLAIN DELETE FROM ledger");
    await expectSameAnswer(herd, plain, "SELECT count(*) FROM ledger");
  });

  it("fails for a refused statement as the statement does", async () => {
    const { herd } = sides();
    const refused = await answer(
      herd,
      "EXPLAIN SELECT count(*) FROM generate_series(1, 3) g WHERE EXISTS (SELECT 1 FROM orders WHERE o_orderkey = g)",
    );
    expect(refused).toMatchObject({ error: { code: "0A000", message: "cannot push down this subquery" } });
  });
});

describe("multi-shard writes herd refuses, leaving the tables as they were", () => {
  refusals(sides, [
    {
      sql: "UPDATE ledger SET amount = random()",
      message: "functions used in UPDATE queries on distributed tables must not be VOLATILE",
    },
    { sql: "UPDATE ledger SET account = account + 1", message: "modifying the partition value of rows is not allowed" },
    {
      sql: "UPDATE ledger SET note = now()::text",
      message: "STABLE functions such as now() are not supported in modifications of replicated tables yet",
    },
  ]);
  sameAnswers(sides, ["SELECT * FROM ledger", "SELECT * FROM ledger_entries"]);
});

describe("multi-shard UPDATE and DELETE: RETURNING and the tables left behind", () => {
  const writes: [string, unknown[]?][] = [
    ["UPDATE ledger SET amount = amount + 1 WHERE note LIKE 'q%' RETURNING account, id, amount"],
    ["UPDATE ledger SET flag = NOT flag"],
    [
      "UPDATE ledger SET note = upper(note) WHERE account IN (SELECT account FROM ledger_entries WHERE delta > 5) RETURNING account, id, note",
    ],
    [
      "UPDATE ledger SET note = k.name FROM ledger_kinds k WHERE k.id = ledger.kind AND ledger.amount < 0 RETURNING ledger.account, ledger.id, ledger.note, k.id",
    ],
    [
      "UPDATE ledger SET amount = (SELECT sum(delta) FROM ledger_entries e WHERE e.account = ledger.account) WHERE id = 5 RETURNING account, amount",
    ],
    ["UPDATE ledger SET amount = amount * $1 WHERE flag = $2 RETURNING account, id, amount", ["1.5", true]],
    ["DELETE FROM ledger WHERE amount < 10 RETURNING *"],
    [
      "DELETE FROM ledger WHERE EXISTS (SELECT 1 FROM ledger_entries e WHERE e.account = ledger.account AND e.delta < -8) RETURNING account, id",
    ],
    ["DELETE FROM ledger WHERE false"],
    ["UPDATE ledger SET kind = NULL WHERE kind = 4"],
    ["DELETE FROM ledger_entries WHERE delta IS NULL RETURNING account, seq"],
    ["UPDATE ledger_entries SET delta = -delta RETURNING account, seq, delta"],
    ["DELETE FROM ledger WHERE kind IN (SELECT id FROM ledger_kinds WHERE name = 'fee') RETURNING id, kind"],
    ["UPDATE ledger SET note = note || '!' WHERE account % 2 = 0"],
    ["DELETE FROM ledger WHERE account IN (3, 4, 5) RETURNING account, id"],
    ["UPDATE ledger SET amount = 0 WHERE amount IS NULL RETURNING account, id"],
    ["DELETE FROM ledger_entries"],
    [
      "UPDATE ledger SET note = 'x' FROM orders WHERE orders.o_custkey = ledger.account RETURNING ledger.account, ledger.id",
    ],
    ["UPDATE ledger SET note = 'x' FROM ledger_entries e WHERE e.seq = ledger.account"],
  ];
  // each write starts from the generated rows, so one refused or wrong write does not spoil the next
  const reload = [
    "TRUNCATE ledger",
    "TRUNCATE ledger_entries",
    ...analyticsData().filter((sql) => /^INSERT INTO ledger(_entries)? VALUES/.test(sql)),
  ];
  for (const [sql, params] of writes) {
    it(sql, async () => {
      const { herd, plain } = sides();
      for (const client of [herd, plain]) await runAll(client, reload);
      await expectSameAnswer(herd, plain, sql, params, { ordered: false });
      await expectSameAnswer(herd, plain, "SELECT * FROM ledger", undefined, { ordered: false });
      await expectSameAnswer(herd, plain, "SELECT * FROM ledger_entries", undefined, { ordered: false });
    });
  }

  sameAnswers(sides, [
    "SELECT count(*), sum(amount), avg(amount), count(DISTINCT note) FROM ledger",
    "SELECT kind, count(*), sum(amount) FROM ledger GROUP BY 1",
    "SELECT account, id FROM ledger ORDER BY amount DESC NULLS LAST, account, id LIMIT 10",
  ]);
});

// last: it takes a worker away (every shard has a placement on another worker)
describe.skipIf(selfCheck)("a worker that is down", () => {
  it("sends each shard's read to its other placement", async () => {
    const { herd, plain } = sides();
    const dataDir = db.herdDataDir();
    const pgdata = join(dataDir, "herd-2", "pgdata");
    const bot = botPid(dataDir, "herd-2");
    const postmaster = await livePostmasterPid(pgdata);
    expect(bot && postmaster, "the worker herd-2 and its PostgreSQL").toBeTruthy();
    // the bot is paused so it does not restart its PostgreSQL while the reads run
    process.kill(bot as number, "SIGSTOP");
    try {
      process.kill(postmaster as number, "SIGKILL");
      await sleep(500); // its backends notice the postmaster's death and exit
      for (const sql of [
        "SELECT * FROM lineitem WHERE l_quantity > 48",
        "SELECT count(*), sum(l_extendedprice), avg(l_quantity) FROM lineitem",
        "SELECT l_shipmode, count(*), sum(l_weight) FROM lineitem GROUP BY 1",
        "SELECT o_priority, count(*) FROM orders JOIN lineitem ON l_orderkey = o_orderkey GROUP BY 1",
        "SELECT o_orderkey, o_totalprice FROM orders ORDER BY o_totalprice DESC NULLS LAST, o_orderkey LIMIT 10",
      ]) {
        await expectSameAnswer(herd, plain, sql);
      }
    } finally {
      process.kill(bot as number, "SIGCONT");
    }
    await eventually(() => livePostmasterPid(pgdata), 30_000, "herd-2's PostgreSQL restarted");
  });
});
