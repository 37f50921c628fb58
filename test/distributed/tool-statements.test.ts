import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { herdClient, onServer, placements } from "../faults/fault-kit.js";
import { answer, expectSameAnswer } from "../helpers/differential.js";
import { useHerdCluster } from "../helpers/herd-up.js";
import { startTestPostgres, type TestPostgres } from "../helpers/postgres.js";

// Statements tools send, over distributed tables: SQL-level PREPARE / EXECUTE / DEALLOCATE,
// cursors (DECLARE / FETCH / MOVE / CLOSE, WITH HOLD, SCROLL), VACUUM and ANALYZE — what ORMs' server-side prepare modes, psycopg's named cursors
// and hand-written scripts send — statement by statement against one plain PostgreSQL 18 with the
// same data: rows, tags and errors.
const herdUp = useHerdCluster("tool-statements", { workers: 2 });
let plainServer: TestPostgres;
let herd: pg.Client;
let plain: pg.Client;

const SCHEMA = [
  "CREATE TABLE orders (id int PRIMARY KEY, customer int, total numeric, note text)",
  "INSERT INTO orders SELECT i, i % 9, i * 2.5, 'n' || i FROM generate_series(1, 500) i",
];

beforeAll(async () => {
  plainServer = await startTestPostgres("tool-statements-plain");
  plain = new pg.Client(plainServer.connection);
  await plain.connect();
  herd = await herdClient(herdUp.cluster);
  for (const sql of SCHEMA) {
    await herd.query(sql);
    await plain.query(sql);
  }
  await herd.query("SELECT create_distributed_table('orders', 'id', shard_count => 4)");
}, 120_000);

afterAll(async () => {
  await herd?.end();
  await plain?.end();
  await plainServer?.stop();
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
