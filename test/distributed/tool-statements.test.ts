import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { divergentShards, herdClient, onServer, placements, serverClient, within } from "../faults/fault-kit.js";
import { answer, expectSameAnswer } from "../helpers/differential.js";
import { useHerdCluster } from "../helpers/herd-up.js";
import { type PlainTwin, startPlainTwin } from "../helpers/postgres.js";

// Statements tools send, over distributed tables: SQL-level PREPARE / EXECUTE / DEALLOCATE,
// cursors (DECLARE / FETCH / MOVE / CLOSE, WITH HOLD, SCROLL), VACUUM and ANALYZE, CREATE TABLE … AS,
// SELECT … INTO and CREATE TABLE … (LIKE …) — what ORMs' server-side prepare modes, psycopg's named cursors
// and hand-written scripts send — statement by statement against one plain PostgreSQL 18 with the
// same data: rows, tags and errors.
const herdUp = useHerdCluster("tool-statements", { workers: 2 });
let twin: PlainTwin;
let herd: pg.Client;
let plain: pg.Client;

const SCHEMA = [
  "CREATE TABLE orders (id int PRIMARY KEY, customer int, total numeric, note text)",
  "INSERT INTO orders SELECT i, i % 9, i * 2.5, 'n' || i FROM generate_series(1, 500) i",
];

beforeAll(async () => {
  herd = await herdClient(herdUp.cluster);
  twin = await startPlainTwin("tool-statements-plain", herd, SCHEMA);
  plain = twin.client;
  await herd.query("SELECT create_distributed_table('orders', 'id', shard_count => 4)");
}, 120_000);

afterAll(async () => {
  await herd?.end();
  await twin?.stop();
});

/** Each statement on both, in order; answers compared (unordered unless ORDER BY). */
async function same(...statements: string[]) {
  for (const sql of statements) await expectSameAnswer(herd, plain, sql);
}

describe("SQL PREPARE and EXECUTE over distributed tables", () => {
  it("routes, merges and writes through prepared statements, with declared or inferred parameter types", async () => {
    await same(
      "PREPARE one (int) AS SELECT * FROM orders WHERE id = $1",
      "EXECUTE one(5)",
      "EXECUTE one(400)",
      "EXECUTE one('7')",
      "PREPARE by_customer AS SELECT count(*), sum(total) FROM orders WHERE customer = $1",
      "EXECUTE by_customer(3)",
      "PREPARE totals AS SELECT customer, sum(total), max(note) FROM orders GROUP BY 1 ORDER BY 1",
      "EXECUTE totals",
      "PREPARE add (int, numeric) AS INSERT INTO orders VALUES ($1, $1 % 9, $2, 'added') RETURNING id, total",
      "EXECUTE add(1001, 10.5)",
      "EXECUTE add(1002, 1 + 2)",
      "PREPARE bump (int) AS UPDATE orders SET total = total + 1 WHERE customer = $1",
      "EXECUTE bump(2)",
      "SELECT * FROM orders WHERE customer = 2 ORDER BY id",
      "SELECT name, parameter_types::text FROM pg_prepared_statements ORDER BY name",
    );
  });

  it("says what PostgreSQL says for wrong arguments, unknown names, DEALLOCATE and DISCARD ALL", async () => {
    await same(
      "EXECUTE one(1, 2)",
      "EXECUTE nothing_here(1)",
      "DEALLOCATE one",
      "EXECUTE one(5)",
      "DEALLOCATE PREPARE by_customer",
      "EXECUTE by_customer(1)",
      "PREPARE again (int) AS SELECT note FROM orders WHERE id = $1",
      "EXECUTE again(10)",
      "DISCARD ALL",
      "EXECUTE again(10)",
      "PREPARE last (int) AS SELECT note FROM orders WHERE id = $1",
      "DEALLOCATE ALL",
      "EXECUTE last(10)",
      "SELECT count(*) FROM pg_prepared_statements",
    );
  });

  it("runs in a transaction block, and its writes go with the block's ROLLBACK", async () => {
    await same(
      "PREPARE put (int) AS INSERT INTO orders VALUES ($1, 1, 1, 'in a block')",
      "BEGIN",
      "EXECUTE put(2001)",
      "EXECUTE put(2002)",
      "SELECT count(*) FROM orders WHERE id > 2000",
      "ROLLBACK",
      "SELECT count(*) FROM orders WHERE id > 2000",
      // a name prepared again over an ordinary query is PostgreSQL's alone
      "DEALLOCATE put",
      "PREPARE put (int) AS SELECT $1 + 1",
      "EXECUTE put(41)",
    );
  });

  it("takes its arguments as parameters of the extended protocol too", async () => {
    await herd.query("PREPARE ext (int) AS SELECT id, note FROM orders WHERE id = $1");
    await plain.query("PREPARE ext (int) AS SELECT id, note FROM orders WHERE id = $1");
    // (PostgreSQL takes no protocol parameters in EXECUTE: the arguments are written in it)
    const [atHerd, atPlain] = await Promise.all([
      answer(herd, "EXECUTE ext(42)", []),
      answer(plain, "EXECUTE ext(42)", []),
    ]);
    expect(atHerd).toEqual(atPlain);
    expect(atHerd).toMatchObject({ rows: [["42", "n42"]] });
  });

  it("several sessions executing their own prepared update of one row end where one after the other would", async () => {
    const clients = await Promise.all([1, 2, 3, 4].map(() => herdClient(herdUp.cluster)));
    try {
      await Promise.all(
        clients.map(async (client) => {
          await client.query("PREPARE inc AS UPDATE orders SET total = total + 1 WHERE id = 250");
          for (let i = 0; i < 25; i += 1) await client.query("EXECUTE inc");
        }),
      );
    } finally {
      await Promise.all(clients.map((client) => client.end()));
    }
    const { rows } = await herd.query("SELECT total FROM orders WHERE id = 250");
    expect(rows).toEqual([{ total: "725.0" }]);
    await plain.query("UPDATE orders SET total = total + 100 WHERE id = 250");
  });
});

describe("cursors over distributed tables", () => {
  it("fetches and moves through a query's rows in a transaction block", async () => {
    await same(
      "BEGIN",
      "DECLARE c CURSOR FOR SELECT id, customer, total FROM orders WHERE id <= 300 ORDER BY id",
      "FETCH 5 FROM c",
      "FETCH NEXT FROM c",
      "MOVE 10 IN c",
      "FETCH 2 FROM c",
      "FETCH FORWARD ALL FROM c",
      "FETCH 1 FROM c",
      "CLOSE c",
      "COMMIT",
    );
  });

  it("scrolls, holds past COMMIT, and is empty when the query finds nothing", async () => {
    await same(
      "BEGIN",
      "DECLARE s SCROLL CURSOR FOR SELECT customer, count(*), sum(total) FROM orders GROUP BY 1 ORDER BY 1",
      "FETCH LAST FROM s",
      "FETCH PRIOR FROM s",
      "FETCH ABSOLUTE 3 FROM s",
      "FETCH BACKWARD 2 FROM s",
      "COMMIT",
      "DECLARE h CURSOR WITH HOLD FOR SELECT id, note FROM orders WHERE customer = 4 ORDER BY id DESC",
      "FETCH 3 FROM h",
      "FETCH 3 FROM h",
      "CLOSE h",
      "BEGIN",
      "DECLARE e CURSOR FOR SELECT * FROM orders WHERE id < 0",
      "FETCH ALL FROM e",
      "COMMIT",
    );
  });

  it("says what PostgreSQL says outside a block and for an unknown cursor", async () => {
    await same("DECLARE x CURSOR FOR SELECT * FROM orders", "FETCH 1 FROM nowhere", "CLOSE nowhere");
  });
});

describe("VACUUM and ANALYZE of distributed tables", () => {
  /** pg_stat_user_tables of every placement of orders' shards: the column asked for. */
  async function shardStats(column: "last_analyze" | "last_vacuum"): Promise<(string | null)[]> {
    const values: (string | null)[] = [];
    for (const placement of await placements(herd, "orders")) {
      const ordinal = placement.nodeport - herdUp.cluster.sqlPort - 1;
      const rows = await onServer<{ at: string | null }>(
        herdUp.cluster,
        ordinal,
        `SELECT ${column}::text AS at FROM pg_stat_user_tables WHERE relname = $1`,
        [placement.shard_name.replace(/^.*\./, "")],
      );
      values.push(rows[0]?.at ?? null);
    }
    return values;
  }

  it("run on every placement of every shard, and answer as PostgreSQL does", async () => {
    await same("ANALYZE orders", "ANALYZE orders (total, note)", "VACUUM (ANALYZE) orders", "VACUUM orders (total)");
    const analyzed = await shardStats("last_analyze");
    expect(analyzed.length).toBe(8); // 4 shards, 2 copies each
    expect(analyzed.every((at) => at !== null)).toBe(true);
    expect((await shardStats("last_vacuum")).every((at) => at !== null)).toBe(true);
  });

  it("VACUUM in a transaction block is refused with PostgreSQL's words; ANALYZE runs there", async () => {
    await same("BEGIN", "VACUUM orders", "ROLLBACK", "BEGIN", "ANALYZE orders", "COMMIT");
  });
});

describe("tables made from distributed ones", () => {
  const columnsOf = (table: string) =>
    `SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns
      WHERE table_name = '${table}' ORDER BY ordinal_position`;

  it("CREATE TABLE … AS and SELECT … INTO hold the query's rows, with its column names and types", async () => {
    await same(
      "CREATE TABLE per_customer AS SELECT customer, count(*) AS n, sum(total) AS total FROM orders GROUP BY customer",
      "SELECT * FROM per_customer",
      columnsOf("per_customer"),
      "SELECT id, note INTO few FROM orders WHERE customer = 3 AND id < 100",
      "SELECT * FROM few",
      "CREATE TABLE none_yet AS SELECT * FROM orders WITH NO DATA",
      columnsOf("none_yet"),
      "CREATE TABLE nothing AS SELECT id FROM orders WHERE id < 0",
      "SELECT * FROM nothing",
      "BEGIN",
      "CREATE TABLE gone AS SELECT id FROM orders WHERE customer = 1",
      "ROLLBACK",
      "SELECT * FROM gone",
    );
    // and such a table can be distributed in its turn
    await herd.query("SELECT create_distributed_table('per_customer', 'customer')");
    expect((await herd.query("SELECT sum(n)::int AS n FROM per_customer")).rows).toEqual([{ n: 502 }]);
  });

  it("CREATE TABLE … (LIKE dist INCLUDING ALL) copies the definition, not the rows", async () => {
    await same(
      "CREATE TABLE orders_archive (LIKE orders INCLUDING ALL)",
      columnsOf("orders_archive"),
      "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'orders_archive'",
      "SELECT count(*) FROM orders_archive",
    );
  });

  it("materialized views over distributed tables: made, refreshed and read as PostgreSQL's, through views too", async () => {
    await same(
      "CREATE MATERIALIZED VIEW customer_totals AS SELECT customer, count(*) AS n, sum(total) AS total FROM orders GROUP BY customer",
      "SELECT * FROM customer_totals ORDER BY customer",
      "CREATE VIEW costly AS SELECT id, total FROM orders WHERE total > 1000",
      "CREATE MATERIALIZED VIEW costly_ids AS SELECT id FROM costly ORDER BY id DESC LIMIT 5",
      "CREATE MATERIALIZED VIEW later AS SELECT id FROM orders WITH NO DATA",
      "SELECT * FROM costly_ids ORDER BY id",
      "UPDATE orders SET total = total + 1000 WHERE customer = 2",
      "INSERT INTO orders VALUES (5000, 2, 99999, 'big')",
      "REFRESH MATERIALIZED VIEW customer_totals",
      "REFRESH MATERIALIZED VIEW costly_ids",
      "REFRESH MATERIALIZED VIEW later",
      "SELECT * FROM customer_totals ORDER BY customer",
      "SELECT * FROM costly_ids ORDER BY id",
      "SELECT count(*) FROM later",
    );
    // the shells hold no rows afterwards (read on purpose: the shell guard would refuse it)
    const coordinator = await serverClient(herdUp.cluster, 0);
    try {
      await coordinator.query("SET herd.shell_guard = off");
      expect((await coordinator.query("SELECT count(*)::int AS n FROM ONLY orders")).rows).toEqual([{ n: 0 }]);
    } finally {
      await coordinator.end();
    }
    // in a block, and rolled back with it
    await herd.query("BEGIN");
    await herd.query("DELETE FROM orders WHERE customer = 2");
    await herd.query("REFRESH MATERIALIZED VIEW customer_totals");
    expect((await herd.query("SELECT count(*)::int AS n FROM customer_totals WHERE customer = 2")).rows).toEqual([
      { n: 0 },
    ]);
    await herd.query("ROLLBACK");
    await same("SELECT * FROM customer_totals ORDER BY customer");
  });
});

describe("Citus's session settings", () => {
  it("citus.shard_count and citus.shard_replication_factor shape the next create_distributed_table", async () => {
    await herd.query("SET citus.shard_count = 3");
    await herd.query("SET citus.shard_replication_factor = 1");
    try {
      await herd.query("CREATE TABLE shaped (id int PRIMARY KEY)");
      await herd.query("SELECT create_distributed_table('shaped', 'id')");
      const { rows } = await herd.query(
        "SELECT count(DISTINCT shardid)::int AS shards, count(*)::int AS placements FROM citus_shards WHERE table_name = 'shaped'::regclass",
      );
      expect(rows).toEqual([{ shards: 3, placements: 3 }]);
    } finally {
      await herd.query("RESET citus.shard_count");
      await herd.query("RESET citus.shard_replication_factor");
    }
  });

  it("a citus.* setting herd does not act on is kept, with a NOTICE that says so", async () => {
    const notices: string[] = [];
    const listener = (notice: { message?: string }) => notices.push(notice.message ?? "");
    herd.on("notice", listener);
    try {
      await herd.query("SET citus.enable_schema_based_sharding TO on");
      expect((await herd.query("SHOW citus.enable_schema_based_sharding")).rows).toEqual([
        { "citus.enable_schema_based_sharding": "on" },
      ]);
    } finally {
      herd.off("notice", listener);
    }
    expect(notices).toEqual([
      "herd does not act on citus.enable_schema_based_sharding; the setting is kept but changes nothing",
    ]);
  });
});

describe("MERGE into distributed tables", () => {
  it("runs shard group by shard group when the source is colocated and joined on the key, as PostgreSQL answers", async () => {
    for (const sql of [
      "CREATE TABLE order_changes (id int PRIMARY KEY, total numeric, note text)",
      "INSERT INTO order_changes SELECT i, CASE WHEN i % 5 = 0 THEN NULL ELSE i * 3 END, 'changed ' || i FROM generate_series(480, 620) i",
    ])
      await same(sql);
    await herd.query("SELECT create_distributed_table('order_changes', 'id', colocate_with => 'orders')");
    await same(
      `MERGE INTO orders o USING order_changes c ON o.id = c.id
         WHEN MATCHED AND c.total IS NULL THEN DELETE
         WHEN MATCHED THEN UPDATE SET total = c.total, note = c.note
         WHEN NOT MATCHED THEN INSERT (id, customer, total, note) VALUES (c.id, c.id % 9, c.total, c.note)`,
      "SELECT * FROM orders ORDER BY id",
      `MERGE INTO orders AS o USING order_changes AS c ON c.id = o.id AND c.id > 600
         WHEN MATCHED THEN UPDATE SET note = 'again'
         RETURNING merge_action(), o.id, o.note`,
      `MERGE INTO orders o USING order_changes c ON o.id = c.id
         WHEN NOT MATCHED BY SOURCE AND o.id < 5 THEN DELETE`,
      "SELECT * FROM orders ORDER BY id",
    );
    const plan = (
      await herd.query("EXPLAIN MERGE INTO orders o USING order_changes c ON o.id = c.id WHEN MATCHED THEN DELETE")
    ).rows
      .map((row) => row["QUERY PLAN"])
      .join("\n");
    expect(plan).toMatch(
      /^Route write shards=\[[0-9,]+\] sql=MERGE INTO orders_[0-9]+ AS o USING order_changes_[0-9]+ AS c /,
    );
  });

  it("several clients merging the same rows at once end where one after the other would, both copies alike", async () => {
    const merge = `MERGE INTO orders o USING order_changes c ON o.id = c.id
      WHEN MATCHED THEN UPDATE SET total = coalesce(c.total, 0) + 1
      WHEN NOT MATCHED THEN INSERT (id, customer, total) VALUES (c.id, 1, coalesce(c.total, 0) + 1)`;
    const clients = await Promise.all([1, 2, 3].map(() => herdClient(herdUp.cluster)));
    try {
      await Promise.all(
        clients.map(async (client) => {
          for (let i = 0; i < 4; i++) await client.query(merge);
        }),
      );
    } finally {
      await Promise.all(clients.map((client) => client.end()));
    }
    await plain.query(merge);
    await expectSameAnswer(herd, plain, "SELECT * FROM orders ORDER BY id");
    expect(await divergentShards(herdUp.cluster, herd, "orders")).toEqual([]);
  });

  it("runs through the coordinator when the source is not colocated: another group's table, a reference or ordinary table, a subquery", async () => {
    for (const client of [herd, plain]) {
      await client.query("CREATE TABLE order_other (id int, total numeric)");
      await client.query(
        "INSERT INTO order_other SELECT i, CASE WHEN i % 7 = 0 THEN NULL ELSE i * 5 END FROM generate_series(450, 720, 3) i",
      );
      await client.query("CREATE TABLE ref_changes (id int PRIMARY KEY, note text)");
      await client.query("INSERT INTO ref_changes SELECT i, 'ref ' || i FROM generate_series(1, 600, 11) i");
      await client.query("CREATE TABLE few_totals (id int, total numeric)");
      await client.query("INSERT INTO few_totals VALUES (900, 1), (901, 2), (5, 3)");
    }
    await herd.query("SELECT create_distributed_table('order_other', 'id', colocate_with => 'none')");
    await herd.query("SELECT create_reference_table('ref_changes')");
    await same(
      `MERGE INTO orders o USING order_other x ON o.id = x.id
         WHEN MATCHED AND x.total IS NULL THEN DELETE
         WHEN MATCHED THEN UPDATE SET total = x.total
         WHEN NOT MATCHED THEN INSERT (id, customer, total) VALUES (x.id, 2, x.total)`,
      "SELECT * FROM orders ORDER BY id",
      `MERGE INTO orders o USING ref_changes r ON r.id = o.id
         WHEN MATCHED THEN UPDATE SET note = r.note RETURNING merge_action(), o.id, o.note`,
      "MERGE INTO orders o USING few_totals f ON o.id = f.id WHEN NOT MATCHED THEN INSERT (id, customer, note) VALUES (f.id, 3, 'from few')",
      `MERGE INTO orders o USING (SELECT customer AS cid, sum(total) AS t FROM orders GROUP BY customer) s ON o.id = s.cid
         WHEN MATCHED THEN UPDATE SET total = s.t`,
      // every shard runs: target rows no source row matches change too
      "MERGE INTO orders o USING order_other x ON o.id = x.id WHEN NOT MATCHED BY SOURCE AND o.id > 700 THEN DELETE",
      "MERGE INTO orders o USING (SELECT id FROM order_other WHERE false) x ON o.id = x.id WHEN MATCHED THEN DELETE",
      // a target row matched twice: PostgreSQL's own error, all of the statement undone
      `MERGE INTO orders o USING (SELECT 6 AS id UNION ALL SELECT 900 UNION ALL SELECT 6) d ON o.id = d.id
         WHEN MATCHED THEN UPDATE SET note = 'twice'`,
      "SELECT * FROM orders ORDER BY id",
    );
    // several clients at once on the same rows: each MERGE whole, as one after the other
    const bump = `MERGE INTO orders o USING ref_changes r ON o.id = r.id
      WHEN MATCHED THEN UPDATE SET total = coalesce(o.total, 0) + 1
      WHEN NOT MATCHED THEN INSERT (id, customer, total) VALUES (r.id, 4, 1)`;
    const clients = await Promise.all([1, 2, 3].map(() => herdClient(herdUp.cluster)));
    try {
      await Promise.all(
        clients.map(async (client) => {
          for (let i = 0; i < 3; i++) await client.query(bump);
        }),
      );
    } finally {
      await Promise.all(clients.map((client) => client.end()));
    }
    for (let i = 0; i < 9; i++) await plain.query(bump);
    await same("SELECT * FROM orders ORDER BY id");
    expect(await divergentShards(herdUp.cluster, herd, "orders")).toEqual([]);
    const plan = (
      await herd.query("EXPLAIN MERGE INTO orders o USING few_totals f ON o.id = f.id WHEN MATCHED THEN DELETE")
    ).rows
      .map((row) => row["QUERY PLAN"])
      .join("\n");
    expect(plan).toMatch(/^Merge via the coordinator into orders/);
  });

  it("is refused as Citus refuses it when no source column meets the target's key", async () => {
    for (const [sql, detail] of [
      ["MERGE INTO orders o USING order_changes c ON o.customer = c.id WHEN MATCHED THEN DELETE", /o\.id = c\./],
      [
        "MERGE INTO orders o USING few_totals f ON o.id = f.id WHEN MATCHED AND EXISTS (SELECT FROM order_other) THEN DELETE",
        /another distributed table/,
      ],
    ] as const) {
      const refused = await answer(herd, sql);
      expect(refused, sql).toMatchObject({ error: { code: "0A000" } });
      expect(JSON.stringify(refused)).toMatch(/co-located and joined on their distribution columns/);
      const { detail: said } = (await herd.query(sql).catch((error) => error)) as { detail?: string };
      expect(said).toMatch(detail);
    }
    for (const source of ["order_changes c", "few_totals c"])
      expect(
        await answer(
          herd,
          `MERGE INTO orders o USING ${source} ON o.id = c.id WHEN NOT MATCHED THEN INSERT (id, customer) VALUES (c.id + 1, 1)`,
        ),
      ).toMatchObject({
        error: { code: "0A000", message: "MERGE INSERT must use the source table distribution column value" },
      });
    expect(
      await answer(
        herd,
        "MERGE INTO orders o USING (SELECT 5::numeric AS id) s ON o.id = s.id WHEN MATCHED THEN DELETE",
      ),
    ).toMatchObject({ error: { code: "0A000", message: expect.stringContaining("another type") } });
    expect(
      await answer(
        herd,
        "MERGE INTO orders o USING (SELECT NULL::int AS id) s ON o.id = s.id WHEN NOT MATCHED THEN INSERT (id, customer) VALUES (s.id, 1)",
      ),
    ).toMatchObject({ error: { code: "22004" } });
  });
});

describe("another database on the coordinator", () => {
  it("holds ordinary tables only, even under a distributed table's name, and refuses herd's functions", async () => {
    await herd.query("CREATE DATABASE other_app");
    const other = await herdClient(herdUp.cluster, { database: "other_app" });
    try {
      await other.query("CREATE TABLE orders (id int PRIMARY KEY, note text)");
      await other.query("INSERT INTO public.orders VALUES (1, 'other_app''s own')");
      // qualified or not, the name means the table of this database (herd's catalog is postgres's)
      expect((await other.query("SELECT * FROM public.orders")).rows).toEqual([{ id: 1, note: "other_app's own" }]);
      expect((await other.query("SELECT count(*)::int AS n FROM orders")).rows).toEqual([{ n: 1 }]);
      expect(await answer(other, "SELECT create_distributed_table('orders', 'id')")).toMatchObject({
        error: {
          code: "0A000",
          message: `herd's distributed tables live in one database; this session is connected to "other_app"`,
        },
      });
    } finally {
      await other.end();
    }
    expect((await herd.query("SELECT count(*)::int AS n FROM orders WHERE note = 'other_app''s own'")).rows).toEqual([
      { n: 0 },
    ]);
    await herd.query("DROP DATABASE other_app");
  });
});

describe("Citus's everyday catalog", () => {
  it("citus_version(), pg_dist_colocation and citus_get_active_worker_nodes() answer as Citus's do", async () => {
    expect((await herd.query("SELECT citus_version() LIKE 'Citus 13%' AS citus")).rows).toEqual([{ citus: true }]);
    const colocation = await herd.query(
      `SELECT c.shardcount, c.replicationfactor, c.distributioncolumntype::regtype::text AS type
         FROM pg_dist_colocation c JOIN pg_dist_partition p ON p.colocationid = c.colocationid
        WHERE p.logicalrelid = 'orders'::regclass`,
    );
    expect(colocation.rows).toEqual([{ shardcount: 4, replicationfactor: 2, type: "integer" }]);
    const workers = await herd.query("SELECT node_name, node_port FROM citus_get_active_worker_nodes()");
    expect(workers.rows).toHaveLength(2);
    expect(workers.rows.every((row) => row.node_name === "127.0.0.1" && Number(row.node_port) > 0)).toBe(true);
  });

  it("citus_relation_size, citus_table_size and citus_total_relation_size sum one copy of each shard", async () => {
    // what each shard's first copy (herd's catalog order: by node id, as reads pick) measures, on
    // its worker; a vacuum on a worker between the two readings can add a visibility map to a
    // copy, so both are read again until they agree
    await herd.query("VACUUM orders");
    const nodeIds = new Map(
      (await herd.query("SELECT nodeport, nodeid FROM pg_dist_node")).rows.map((row) => [row.nodeport, row.nodeid]),
    );
    const measure = async () => {
      const expected = { pg_relation_size: 0, pg_table_size: 0, pg_total_relation_size: 0 };
      const measured = new Set<string>();
      const byNodeId = (await placements(herd, "orders")).sort(
        (a, b) => Number(a.shardid) - Number(b.shardid) || nodeIds.get(a.nodeport) - nodeIds.get(b.nodeport),
      );
      for (const placement of byNodeId) {
        if (measured.has(placement.shardid) || placement.shardstate !== 1) continue;
        measured.add(placement.shardid);
        const [row] = await onServer<Record<keyof typeof expected, string>>(
          herdUp.cluster,
          placement.nodeport - herdUp.cluster.sqlPort - 1,
          `SELECT pg_relation_size($1::regclass) AS pg_relation_size, pg_table_size($1::regclass) AS pg_table_size,
                  pg_total_relation_size($1::regclass) AS pg_total_relation_size`,
          [placement.shard_name],
        );
        for (const key of Object.keys(expected) as (keyof typeof expected)[]) expected[key] += Number(row?.[key]);
      }
      expect(measured.size).toBe(4);
      expect(expected.pg_relation_size).toBeGreaterThan(0);
      return expected;
    };
    const size = async (fn: string) =>
      Number((await herd.query(`SELECT ${fn}('orders') AS size`)).rows[0].size as string);
    const answers = async () => ({
      pg_relation_size: await size("citus_relation_size"),
      pg_table_size: await size("citus_table_size"),
      pg_total_relation_size: await size("citus_total_relation_size"),
    });
    // the same sizes read inside queries, as Citus's users read them: the table taken from the
    // rows, a call inside another function, citus_tables' pretty size
    const inQueries = async () => {
      const [row] = (
        await herd.query(
          `SELECT citus_relation_size(logicalrelid) AS pg_relation_size, citus_table_size(logicalrelid) AS pg_table_size,
                  citus_total_relation_size(logicalrelid) AS pg_total_relation_size,
                  pg_size_pretty(citus_total_relation_size('orders')) AS pretty,
                  (SELECT table_size FROM citus_tables WHERE table_name = 'orders'::regclass) AS listed
             FROM pg_dist_partition WHERE logicalrelid = 'orders'::regclass`,
        )
      ).rows;
      return row;
    };
    let last: unknown;
    await within(15_000, "herd's sizes are the copies' sizes", async () => {
      const [expected, given, queried] = [await measure(), await answers(), await inQueries()];
      const pretty = (await plain.query("SELECT pg_size_pretty($1::bigint) AS p", [expected.pg_total_relation_size]))
        .rows[0].p;
      const asQueried = {
        pg_relation_size: Number(queried.pg_relation_size),
        pg_table_size: Number(queried.pg_table_size),
        pg_total_relation_size: Number(queried.pg_total_relation_size),
      };
      last = { expected, given, queried, pretty };
      return (
        JSON.stringify(expected) === JSON.stringify(given) &&
        JSON.stringify(expected) === JSON.stringify(asQueried) &&
        queried.pretty === pretty &&
        queried.listed === pretty
      );
    }).catch((error) => {
      throw new Error(`${(error as Error).message}: ${JSON.stringify(last)}`);
    });
    expect(await answer(herd, "SELECT citus_table_size('pg_class')")).toMatchObject({
      error: { code: "42P16", message: "cannot calculate the size because relation 'pg_class' is not distributed" },
    });
    expect(await answer(herd, "SELECT pg_size_pretty(citus_table_size('pg_class'))")).toMatchObject({
      error: { code: "42P16" },
    });
    // every copy of every shard in citus_shards, with its size on its worker
    const shards = (
      await herd.query(
        "SELECT shard_name, nodeport, shard_size FROM citus_shards WHERE table_name = 'orders'::regclass ORDER BY 1, 2",
      )
    ).rows;
    expect(shards).toHaveLength(8);
    for (const shard of shards) {
      const [row] = await onServer(
        herdUp.cluster,
        shard.nodeport - herdUp.cluster.sqlPort - 1,
        "SELECT pg_total_relation_size($1::regclass)::text AS size",
        [shard.shard_name],
      );
      expect(shard.shard_size, shard.shard_name).toBe(row?.size);
    }
  });

  it("run_command_on_workers runs a command on every worker, as the session's role, in both of Citus's forms", async () => {
    const rows = (await herd.query("SELECT * FROM run_command_on_workers($$SHOW max_connections$$)")).rows;
    expect(rows).toHaveLength(2);
    for (const row of rows) expect(row).toMatchObject({ nodename: "127.0.0.1", success: true, result: "300" });
    const ports = rows.map((row) => row.nodeport as number).sort();
    expect(ports).toEqual([herdUp.cluster.sqlPort + 2, herdUp.cluster.sqlPort + 3]);
    const failed = (await herd.query("SELECT * FROM run_command_on_workers('SELECT 1/0')")).rows;
    expect(failed.map((row) => [row.success, row.result])).toEqual([
      [false, "division by zero"],
      [false, "division by zero"],
    ]);
    const records = (await herd.query("SELECT run_command_on_workers($$SELECT current_user$$)")).rows;
    expect(records.map((row) => row.run_command_on_workers).sort()).toEqual(
      ports.map((port) => `(127.0.0.1,${port},t,postgres)`),
    );
  });

  it("run_command_on_shards runs a command once per shard on every copy, its %s the shard's name", async () => {
    for (const client of [herd, plain]) {
      await client.query("CREATE TABLE per_shard (id int PRIMARY KEY, v int)");
      await client.query("INSERT INTO per_shard SELECT i, i % 5 FROM generate_series(1, 200) i");
    }
    await herd.query("SELECT create_distributed_table('per_shard', 'id', shard_count => 4)");
    const shardIds = (await placements(herd, "per_shard")).map((p) => Number(p.shardid));
    const counted = (await herd.query("SELECT * FROM run_command_on_shards('per_shard', 'SELECT count(*) FROM %s')"))
      .rows;
    expect(counted.map((row) => Number(row.shardid))).toEqual([...new Set(shardIds)].sort((a, b) => a - b));
    expect(counted.every((row) => row.success === true)).toBe(true);
    expect(counted.reduce((sum, row) => sum + Number(row.result), 0)).toBe(200);
    // a change reaches both copies of each shard: the copies stay alike, the table is what one PostgreSQL has
    const deleted = (await herd.query("SELECT run_command_on_shards('per_shard', $$DELETE FROM %s WHERE v = 0$$)"))
      .rows;
    expect(deleted).toHaveLength(4);
    for (const row of deleted) expect(row.run_command_on_shards).toMatch(/^\(\d+,t,"DELETE \d+"\)$/);
    await plain.query("DELETE FROM per_shard WHERE v = 0");
    await same("SELECT * FROM per_shard ORDER BY id");
    expect(await divergentShards(herdUp.cluster, herd, "per_shard")).toEqual([]);
    // %I and %L as format() has them; a failing command fails its shard, naming the worker
    const named = (await herd.query("SELECT * FROM run_command_on_shards('per_shard', 'SELECT %L')")).rows;
    expect(named.map((row) => row.result)).toEqual(
      shardIds
        .filter((id, i) => shardIds.indexOf(id) === i)
        .sort((a, b) => a - b)
        .map((id) => `per_shard_${id}`),
    );
    const failed = (await herd.query("SELECT * FROM run_command_on_shards('per_shard', 'SELECT nope FROM %s')")).rows;
    for (const row of failed) {
      expect(row.success).toBe(false);
      expect(row.result).toMatch(/^herd-\d+: column "nope" does not exist$/);
    }
    expect(await answer(herd, "SELECT * FROM run_command_on_shards('per_shard', 'SELECT %s %s')")).toMatchObject({
      error: { code: "22023" },
    });
    expect(await answer(herd, "SELECT * FROM run_command_on_shards('pg_class', 'SELECT 1')")).toMatchObject({
      error: { code: "42P16" },
    });
    // a query over its rows runs over all of them (ORDER BY, LIMIT, WHERE, an alias with column names)
    const firstTwo = (
      await herd.query(
        "SELECT shardid, result FROM run_command_on_shards('per_shard', 'SELECT count(*) FROM %s') ORDER BY result::int DESC, shardid LIMIT 2",
      )
    ).rows;
    const current = (await herd.query("SELECT * FROM run_command_on_shards('per_shard', 'SELECT count(*) FROM %s')"))
      .rows;
    const byCount = current
      .map((row) => ({ shardid: row.shardid, result: row.result }))
      .sort((a, b) => Number(b.result) - Number(a.result) || Number(a.shardid) - Number(b.shardid));
    expect(firstTwo).toEqual(byCount.slice(0, 2));
    const filtered = await herd.query(
      "SELECT count(*)::int AS n, sum(rows::int)::int AS total FROM run_command_on_shards('per_shard', 'SELECT count(*) FROM %s') AS s (id, ok, rows) WHERE ok",
    );
    expect(filtered.rows).toEqual([{ n: 4, total: 160 }]);
    expect(
      (await herd.query("SELECT count(*)::int AS n FROM run_command_on_workers('SELECT 1') WHERE success")).rows,
    ).toEqual([{ n: 2 }]);
  });

  it("citus_stat_activity shows every server's activity, with the statements herd runs for its sessions", async () => {
    const busy = await herdClient(herdUp.cluster);
    try {
      await busy.query("SET application_name = 'busy-app'");
      // a routed statement: the coordinator's backend of that session sits idle while a worker runs it
      const sleeping = busy.query("SELECT pg_sleep(3), id FROM orders WHERE id = 7");
      let rows: Record<string, unknown>[] = [];
      await within(10_000, "the sleeping statement shows", async () => {
        rows = (
          await herd.query(
            `SELECT nodeid, is_worker_query, global_pid, pid, state, query, application_name
               FROM citus_stat_activity WHERE query LIKE '%pg_sleep(3)%' AND pid <> pg_backend_pid()`,
          )
        ).rows;
        return rows.some((row) => !row.is_worker_query) && rows.some((row) => row.is_worker_query);
      });
      const session = rows.find((row) => !row.is_worker_query) as Record<string, unknown>;
      expect(session).toMatchObject({
        nodeid: 99999999,
        state: "active",
        application_name: "busy-app",
        query: "SELECT pg_sleep(3), id FROM orders WHERE id = 7",
      });
      expect(String(session.global_pid)).toBe(String(99999999n * 10000000000n + BigInt(session.pid as number)));
      // the shard statement on the worker that holds id 7
      const worker = rows.find((row) => row.is_worker_query) as Record<string, unknown>;
      expect(worker.state).toBe("active");
      expect(String(worker.query)).toMatch(/orders_\d+/);
      const nodeIds = (await herd.query("SELECT nodeid FROM pg_dist_node")).rows.map((row) => row.nodeid);
      expect(nodeIds).toContain(worker.nodeid);
      await sleeping;
    } finally {
      await busy.end();
    }
    // every worker answers; filters, joins and ORDER BY run over the whole cluster's rows
    const byNode = await herd.query(
      `SELECT a.nodeid, count(*) > 0 AS some FROM pg_catalog.citus_stat_activity a
         LEFT JOIN pg_dist_node n USING (nodeid) GROUP BY 1 ORDER BY 1`,
    );
    expect(byNode.rows.map((row) => row.nodeid)).toHaveLength(3);
    // described like the view (the extended protocol asks before it runs)
    const prepared = await herd.query({
      name: "activity",
      text: "SELECT datname, backend_start FROM citus_stat_activity WHERE pid = $1",
      values: [0],
    });
    expect(prepared.fields.map((field) => field.name)).toEqual(["datname", "backend_start"]);
    expect(prepared.rows).toEqual([]);
  });

  it("undistribute_table brings a table's rows back to the coordinator as an ordinary table", async () => {
    for (const client of [herd, plain]) {
      await client.query("CREATE TABLE undo_me (id int PRIMARY KEY, v text, n numeric)");
      await client.query("INSERT INTO undo_me SELECT i, 'v' || i, i / 7.0 FROM generate_series(1, 300) i");
      await client.query("CREATE TABLE undo_ref (code text PRIMARY KEY)");
      await client.query("INSERT INTO undo_ref VALUES ('a'), ('b')");
    }
    await herd.query("SELECT create_distributed_table('undo_me', 'id', shard_count => 4)");
    await herd.query("SELECT create_reference_table('undo_ref')");
    await same("UPDATE undo_me SET v = 'changed' WHERE id % 10 = 0", "DELETE FROM undo_me WHERE id > 290");
    await herd.query("SELECT undistribute_table('undo_me')");
    await herd.query("SELECT undistribute_table('undo_ref')");
    expect(
      (await herd.query("SELECT count(*)::int AS n FROM pg_dist_partition WHERE logicalrelid::text LIKE 'undo%'")).rows,
    ).toEqual([{ n: 0 }]);
    await same("SELECT * FROM undo_me ORDER BY id", "SELECT * FROM undo_ref ORDER BY code");
    // the shards are gone from the workers, and the table takes writes as an ordinary one
    const left = await herd.query(
      "SELECT * FROM run_command_on_workers($$SELECT count(*) FROM pg_class WHERE relname ~ '^undo_(me|ref)_[0-9]+$'$$)",
    );
    expect(left.rows.map((row) => row.result)).toEqual(["0", "0"]);
    await same("INSERT INTO undo_me VALUES (1000, 'local', 1)", "SELECT count(*) FROM undo_me");
    // the metadata of a table that is still a shell cannot be dropped behind herd's back
    expect(await answer(herd, "SELECT herd.forget_undistributed('orders')")).toMatchObject({
      error: { code: "55000", message: "table public.orders is still a shell" },
    });
    expect(await answer(herd, "SELECT undistribute_table('undo_me')")).toMatchObject({
      error: { code: "42P16", message: 'cannot undistribute table because relation "undo_me" is not distributed' },
    });
  });

  it("alter_distributed_table changes a table's shard count or distribution column, keeping its rows", async () => {
    for (const client of [herd, plain]) {
      await client.query("CREATE TABLE reshaped (id int, grp int, v text)");
      await client.query("INSERT INTO reshaped SELECT i, i % 7, 'v' || i FROM generate_series(1, 400) i");
    }
    await herd.query("SELECT create_distributed_table('reshaped', 'id', shard_count => 4)");
    const shape = async () =>
      (
        await herd.query(
          "SELECT distribution_column, shard_count::int AS shards FROM citus_tables WHERE table_name = 'reshaped'::regclass",
        )
      ).rows;
    await herd.query("SELECT alter_distributed_table('reshaped', shard_count => 6)");
    expect(await shape()).toEqual([{ distribution_column: "id", shards: 6 }]);
    await same("SELECT * FROM reshaped ORDER BY id");
    await herd.query("SELECT alter_distributed_table('reshaped', distribution_column => 'grp')");
    expect(await shape()).toEqual([{ distribution_column: "grp", shards: 6 }]);
    await same("SELECT * FROM reshaped ORDER BY id", "SELECT grp, count(*) FROM reshaped GROUP BY grp ORDER BY grp");
    // in a block it is part of the block: rolled back with it
    await herd.query("BEGIN");
    await herd.query("SELECT alter_distributed_table('reshaped', shard_count => 3)");
    expect(await shape()).toEqual([{ distribution_column: "grp", shards: 3 }]);
    await herd.query("ROLLBACK");
    expect(await shape()).toEqual([{ distribution_column: "grp", shards: 6 }]);
    await same("SELECT count(*) FROM reshaped");
    expect(await answer(herd, "SELECT alter_distributed_table('reshaped')")).toMatchObject({
      error: { code: "22023", message: "alter_distributed_table: nothing to change" },
    });
  });

  it("truncate_local_data_after_distributing_table empties the shell, as herd did already", async () => {
    expect((await herd.query("SELECT truncate_local_data_after_distributing_table('orders') AS t")).rows).toEqual([
      { t: "" },
    ]);
    expect((await herd.query("SELECT count(*)::int AS n FROM orders")).rows).toEqual([
      (await plain.query("SELECT count(*)::int AS n FROM orders")).rows[0],
    ]);
    expect(await answer(herd, "SELECT truncate_local_data_after_distributing_table('pg_class')")).toMatchObject({
      error: { code: "22023", message: "supplied parameter is not a distributed relation" },
    });
  });

  it("herd's functions reached other than as a statement of their own say how to call them", async () => {
    for (const sql of [
      "SELECT create_distributed_table('orders', 'id'), 1",
      "DO $$ BEGIN PERFORM create_reference_table('few'); END $$",
    ]) {
      const refused = await answer(herd, sql);
      expect(refused).toMatchObject({
        error: { message: expect.stringMatching(/\(\) runs only as a statement of its own/) },
      });
      expect(JSON.stringify(refused)).not.toMatch(/must be called through/);
    }
  });
});
