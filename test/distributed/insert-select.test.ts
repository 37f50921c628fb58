import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_VALUE_LOCKS_PER_TRANSACTION } from "../../packages/coordinator/src/transaction/shard-lock.js";
import {
  divergentShards,
  herdClient,
  killPostgres,
  onServer,
  placements,
  preparedTransactions,
  untilServerAnswers,
  within,
} from "../faults/fault-kit.js";
import { answer, expectSameAnswer } from "../helpers/differential.js";
import { useHerdCluster } from "../helpers/herd-up.js";
import { type PlainTwin, startPlainTwin } from "../helpers/postgres.js";

// INSERT … SELECT into distributed, reference and ordinary tables, on herd and on one plain
// PostgreSQL 18 with the same data: the statements' answers (tags, RETURNING rows, errors) and
// the tables afterwards compared. The rollup is the Citus real-time analytics tutorial's
// (http_request → http_request_1min, with its ON CONFLICT upsert), on generated requests.
const herdUp = useHerdCluster("insert-select", { workers: 2, env: { HERD_REPAIR_INTERVAL_MS: "1000" } });
let twin: PlainTwin;
let herd: pg.Client;
let plain: pg.Client;

const SCHEMA = [
  `CREATE TABLE http_request (site_id int, ingest_time timestamptz DEFAULT now(), url text, request_country text,
     ip_address text, status_code int, response_time_msec int)`,
  `CREATE TABLE http_request_1min (site_id int, ingest_time timestamptz, error_count int, success_count int,
     request_count int, average_response_time_msec int,
     CHECK (request_count = error_count + success_count),
     CHECK (ingest_time = date_trunc('minute', ingest_time)))`,
  "CREATE UNIQUE INDEX http_request_1min_idx ON http_request_1min (site_id, ingest_time)",
  "CREATE TABLE countries (code text PRIMARY KEY, requests int)",
  "CREATE TABLE events (id bigserial, site_id int, note text, PRIMARY KEY (site_id, id))",
  "CREATE TABLE report (site_id int, requests bigint)",
  `INSERT INTO http_request (site_id, ingest_time, url, request_country, ip_address, status_code, response_time_msec)
     SELECT 1 + i % 12, timestamptz '2026-12-01 10:00:00+00' + (i % 300) * interval '1 second' * 7,
            'http://example.com/' || (i % 13), (ARRAY['NZ','US','DE','JP'])[1 + i % 4], '10.0.' || (i % 250) || '.1',
            (ARRAY[200, 200, 201, 404, 500])[1 + i % 5], 10 + i % 90
       FROM generate_series(1, 4000) i`,
];

const ROLLUP = `INSERT INTO http_request_1min (site_id, ingest_time, request_count, success_count, error_count, average_response_time_msec)
  SELECT site_id, date_trunc('minute', ingest_time) AS minute, COUNT(1) AS request_count,
         SUM(CASE WHEN (status_code BETWEEN 200 AND 299) THEN 1 ELSE 0 END) AS success_count,
         SUM(CASE WHEN (status_code BETWEEN 200 AND 299) THEN 0 ELSE 1 END) AS error_count,
         SUM(response_time_msec) / COUNT(1) AS average_response_time_msec
    FROM http_request
   WHERE ingest_time >= $1 AND ingest_time < $2
   GROUP BY site_id, minute
  ON CONFLICT (site_id, ingest_time) DO UPDATE SET request_count = excluded.request_count,
     success_count = excluded.success_count, error_count = excluded.error_count,
     average_response_time_msec = excluded.average_response_time_msec`;

beforeAll(async () => {
  herd = await herdClient(herdUp.cluster);
  twin = await startPlainTwin("insert-select-plain", herd, SCHEMA);
  plain = twin.client;
  for (const sql of [
    "SELECT create_distributed_table('http_request', 'site_id')",
    "SELECT create_distributed_table('http_request_1min', 'site_id')",
    "SELECT create_distributed_table('events', 'site_id')",
    "SELECT create_reference_table('countries')",
  ])
    await herd.query(sql);
}, 120_000);

afterAll(async () => {
  await herd?.end();
  await twin?.stop();
});

/** The same statement on both; the tables it names compared afterwards. */
async function same(sql: string, params: unknown[] | undefined, ...tables: string[]) {
  await expectSameAnswer(herd, plain, sql, params);
  for (const table of tables) await expectSameAnswer(herd, plain, `SELECT * FROM ${table}`);
}

describe("INSERT … SELECT", () => {
  it("rolls up requests per minute as the Citus tutorial does, and again with ON CONFLICT DO UPDATE", async () => {
    const window = ["2026-12-01 10:00:00+00", "2026-12-01 10:20:00+00"];
    await same(ROLLUP, window, "http_request_1min");
    // new requests in the window: the same rollup updates the rows it made
    const more = `INSERT INTO http_request (site_id, ingest_time, url, status_code, response_time_msec)
                  SELECT 1 + i % 12, timestamptz '2026-12-01 10:05:00+00' + i * interval '1 second', '/x', 500, 5
                    FROM generate_series(1, 300) i`;
    await same(more, undefined, "http_request");
    await same(ROLLUP, window, "http_request_1min");
    expect(Number((await herd.query("SELECT count(*) FROM http_request_1min")).rows[0].count)).toBeGreaterThan(100);
  });

  it("fills defaults and sequences once per row, in the SELECT's order, and RETURNING gives them", async () => {
    await same(
      "INSERT INTO events (site_id, note) SELECT site_id, url FROM http_request WHERE status_code = 404 ORDER BY site_id, ingest_time, url LIMIT 50 RETURNING site_id, note",
      undefined,
      "events",
    );
    await same(
      "INSERT INTO events (site_id, id, note) SELECT 99, g, 'x' || g FROM generate_series(1, 20) g",
      undefined,
      "events",
    );
  });

  it("into a reference table, an ordinary table, and from a table into itself", async () => {
    await same(
      "INSERT INTO countries SELECT request_country, count(*) FROM http_request WHERE request_country IS NOT NULL GROUP BY 1",
      undefined,
      "countries",
    );
    await same("INSERT INTO report SELECT site_id, count(*) FROM http_request GROUP BY site_id", undefined, "report");
    await same(
      "INSERT INTO events (site_id, note) SELECT site_id, note || ' again' FROM events WHERE site_id = 99",
      undefined,
      "events",
    );
  });

  it("is all or nothing: a conflict in the middle inserts no row", async () => {
    await same(
      "INSERT INTO countries SELECT code || '', 1 FROM countries UNION ALL SELECT 'ZZ', 2",
      undefined,
      "countries",
    );
    await same(
      "INSERT INTO events (site_id, id, note) SELECT 99, g, 'dup' FROM generate_series(15, 30) g",
      undefined,
      "events",
    );
  });

  it("answers INSERT 0 0 when the SELECT finds nothing, and refuses a NULL distribution value", async () => {
    await same("INSERT INTO http_request_1min SELECT * FROM http_request_1min WHERE site_id < 0", undefined);
    const before = (await herd.query("SELECT count(*)::int AS n FROM events")).rows;
    expect(
      await answer(herd, "INSERT INTO events (site_id, note) SELECT NULL, 'x' FROM generate_series(1, 3)"),
    ).toMatchObject({
      error: { code: "22004" },
    });
    expect((await herd.query("SELECT count(*)::int AS n FROM events")).rows).toEqual(before);
  });

  it("fails whole when its SELECT fails on the coordinator part-way, and takes subscripted ARRAY, CASE and COALESCE", async () => {
    // the error of a SELECT the coordinator's PostgreSQL answered went unseen: the rows before it
    // were inserted and the client told INSERT 0 4
    await same(
      "INSERT INTO events (site_id, id, note) SELECT 77, g, (1 / (g - 5))::text FROM generate_series(1, 9) g",
      undefined,
      "events",
    );
    await same(
      "INSERT INTO events (site_id, id, note) SELECT 77, g, (ARRAY['a', 'b'])[1 + g % 2] FROM generate_series(101, 103) g RETURNING id, note",
      undefined,
      "events",
    );
    // and pgsql-deparser wrote these subscripts bare (a syntax error): the SELECT failed, unseen
    await same(
      `INSERT INTO events (site_id, id, note)
         SELECT 78, g, (CASE WHEN g > 2 THEN ARRAY['x', 'y'] END)[1] || (COALESCE(NULL, ARRAY['z']))[1]
                       || (GREATEST(ARRAY['p'], ARRAY['q']))[1]
           FROM generate_series(1, 4) g`,
      undefined,
      "events",
    );
  });

  it("takes Knex's merge(): an upsert that sets the key to excluded.key (it keeps the key); any other key change is refused", async () => {
    await same(
      `INSERT INTO events (site_id, id, note) VALUES (99, 1, 'merged'), (99, 500, 'new')
       ON CONFLICT (site_id, id) DO UPDATE SET site_id = excluded.site_id, id = excluded.id, note = excluded.note`,
      undefined,
      "events",
    );
    expect(
      await answer(
        herd,
        "INSERT INTO events (site_id, id, note) VALUES (99, 1, 'x') ON CONFLICT (site_id, id) DO UPDATE SET site_id = excluded.site_id + 1",
      ),
    ).toMatchObject({ error: { code: "0A000", message: "modifying the partition value of rows is not allowed" } });
  });

  it("runs on the workers, shard by shard, when the SELECT reads tables colocated with the target by their keys", async () => {
    const pushed = (sql: string) =>
      herd.query(`EXPLAIN ${sql}`).then((r) => r.rows.map((row) => row["QUERY PLAN"]).join("\n"));
    const rollup = ROLLUP.replace("$1", "'2026-12-01 10:00:00+00'").replace("$2", "'2026-12-01 10:30:00+00'");
    // one statement per shard group, the rows staying on the workers: no subplan, no merge
    const plan = await pushed(rollup);
    expect(plan).toMatch(
      /^Route write shards=\[[0-9,]+\] sql=INSERT INTO http_request_1min_[0-9]+ .*FROM http_request_[0-9]+ /,
    );
    expect(plan).not.toMatch(/SubPlan|Merge/);
    await same(rollup, undefined, "http_request_1min");
    // pinned to one site: one shard group
    const one = `INSERT INTO http_request_1min (site_id, ingest_time, request_count, success_count, error_count)
      SELECT site_id, date_trunc('minute', ingest_time), count(*), count(*), 0 FROM http_request
       WHERE site_id = 5 AND ingest_time < '2026-12-01 10:01:00+00' GROUP BY 1, 2
      ON CONFLICT (site_id, ingest_time) DO NOTHING RETURNING site_id, request_count`;
    expect(await pushed(one)).toMatch(/^Route write shards=\[[0-9]+\] /);
    await same(one, undefined, "http_request_1min");
    // joined with a colocated table on the key, and upserting into a third one, RETURNING its rows
    for (const sql of [
      "CREATE TABLE site_totals (site_id int PRIMARY KEY, requests bigint, slow bigint)",
      "CREATE TABLE site_limits (site_id int PRIMARY KEY, slow_msec int)",
      "INSERT INTO site_limits SELECT i, 40 + i FROM generate_series(1, 12) i",
    ])
      await same(sql, undefined);
    await herd.query("SELECT create_distributed_table('site_totals', 'site_id', colocate_with => 'http_request')");
    await herd.query("SELECT create_distributed_table('site_limits', 'site_id', colocate_with => 'http_request')");
    const totals = `INSERT INTO site_totals
      SELECT r.site_id, count(*), count(*) FILTER (WHERE r.response_time_msec > l.slow_msec)
        FROM http_request r JOIN site_limits l ON l.site_id = r.site_id GROUP BY r.site_id
      ON CONFLICT (site_id) DO UPDATE SET requests = site_totals.requests + excluded.requests RETURNING *`;
    expect(await pushed(totals)).toMatch(/^Route write /);
    await same(totals, undefined, "site_totals");
    await same(totals, undefined, "site_totals");
    // shapes that need the coordinator still take its path: another key, a LIMIT, now() on copies
    for (const sql of [
      "INSERT INTO site_totals SELECT status_code, count(*), 0 FROM http_request GROUP BY status_code ON CONFLICT DO NOTHING",
      "INSERT INTO site_totals SELECT site_id, count(*), 0 FROM http_request GROUP BY site_id ORDER BY 2 LIMIT 3 ON CONFLICT DO NOTHING",
      "INSERT INTO http_request (site_id, ingest_time, url) SELECT site_id, now(), url FROM http_request WHERE site_id = 3",
    ])
      expect(await pushed(sql)).not.toMatch(/^Route write/);
  });

  it("streams a large one in batches between tables that are not colocated: RETURNING gives every row, a failure in a late batch leaves none", async () => {
    await same("CREATE TABLE wide (id int PRIMARY KEY, site_id int, note text)", undefined);
    // distributed by id: not colocated with http_request (site_id), so the rows pass the coordinator
    await herd.query("SELECT create_distributed_table('wide', 'id', shard_count => 3)");
    // 30 000 rows are three batches and more (RowSpool: 10 000 rows a batch)
    await same(
      "INSERT INTO wide SELECT g, 1 + g % 12, md5(g::text) FROM generate_series(1, 30000) g RETURNING id, note",
      undefined,
      "wide",
    );
    // (the window's ORDER BY numbers the rows alike on both; RETURNING's order is the shards')
    await expectSameAnswer(
      herd,
      plain,
      `INSERT INTO wide (id, site_id, note)
         SELECT 40000 + row_number() OVER (ORDER BY site_id, ingest_time, url, ip_address), site_id, url FROM http_request
       RETURNING id % 7 AS bucket`,
      undefined,
      { ordered: false },
    );
    // the duplicate comes after 25 000 new rows (third batch): nothing of the statement stays
    await same(
      "INSERT INTO wide SELECT 100000 + g, 1, 'late' FROM generate_series(1, 25000) g UNION ALL SELECT 7, 1, 'dup'",
      undefined,
      "wide",
    );
    await same("INSERT INTO wide SELECT * FROM wide WHERE false RETURNING *", undefined, "wide");
    // parameters in the SELECT only (the batches bind none), and in RETURNING and ON CONFLICT … SET
    // too (the batches keep them: each is evaluated on the coordinator, then routed)
    await same(
      "INSERT INTO wide SELECT 200000 + g, $1::int, $2::text FROM generate_series(1, 12000) g",
      [5, "bound"],
      "wide",
    );
    await same(
      `INSERT INTO wide SELECT 200000 + g, 6, 'again' FROM generate_series(11990, 22000) g
         ON CONFLICT (id) DO UPDATE SET note = $1::text || excluded.note RETURNING id, note || $2::text`,
      ["set ", "!"],
      "wide",
    );
    // into an ordinary table from a distributed one, in batches, in the client's block
    await same("CREATE TABLE wide_copy (id int, note text)", undefined);
    await same("BEGIN", undefined);
    await same("INSERT INTO wide_copy SELECT id, note FROM wide WHERE id % 2 = 0", undefined);
    await same("INSERT INTO wide SELECT id + 200000, 3, note FROM wide_copy RETURNING id", undefined);
    await same("ROLLBACK", undefined, "wide", "wide_copy");
  });

  it("a worker's PostgreSQL killed in the middle of a streamed one: all of it or none, the copies alike once repaired", async () => {
    await herd.query("CREATE TABLE streamed (id int PRIMARY KEY, note text)");
    await herd.query("SELECT create_distributed_table('streamed', 'id', shard_count => 4)");
    const client = await herdClient(herdUp.cluster);
    client.on("error", () => {});
    try {
      const sent = client
        .query("INSERT INTO streamed SELECT g, repeat('y', 100) FROM generate_series(1, 60000) g")
        .then(
          () => "committed",
          (error: { code?: string }) => `failed ${error.code}`,
        );
      // some batches are in by now (any moment is a fair one: the answer must be whole either way)
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      await killPostgres(herdUp.cluster, 2);
      const outcome = await sent;
      await untilServerAnswers(herdUp.cluster, 2);
      // the killed worker's part of a decided commit is finished by recovery once it is back
      // (until then, its copies do not show the rows to other sessions): then count
      await within(60_000, "every placement active", async () =>
        (await placements(herd, "streamed")).every((p) => p.shardstate === 1),
      );
      for (const ordinal of [1, 2])
        await within(30_000, `nothing left prepared on herd-${ordinal}`, async () => {
          return (await preparedTransactions(herdUp.cluster, ordinal)).length === 0;
        });
      const count = Number((await herd.query("SELECT count(*) FROM streamed")).rows[0].count);
      expect([0, 60_000]).toContain(count);
      if (outcome === "committed") expect(count).toBe(60_000);
      expect(await divergentShards(herdUp.cluster, herd, "streamed")).toEqual([]);
    } finally {
      await client.end().catch(() => {});
    }
  });

  it("several clients rolling up the same rows at once end where one after the other would", async () => {
    const window = ["2026-12-01 10:00:00+00", "2026-12-01 10:40:00+00"];
    const clients = await Promise.all([1, 2, 3, 4].map(() => herdClient(herdUp.cluster)));
    try {
      await Promise.all(
        clients.map(async (client) => {
          for (let i = 0; i < 3; i += 1) await client.query(ROLLUP, window);
        }),
      );
    } finally {
      await Promise.all(clients.map((client) => client.end()));
    }
    await plain.query(ROLLUP, window);
    await expectSameAnswer(herd, plain, "SELECT * FROM http_request_1min");
  });

  it("a client gone in the middle of a large one leaves all of it or none", async () => {
    const client = await herdClient(herdUp.cluster);
    client.on("error", () => {});
    const before = Number((await herd.query("SELECT count(*) FROM events")).rows[0].count);
    const sent = client
      .query("INSERT INTO events (site_id, note) SELECT 1 + i % 12, repeat('x', 200) FROM generate_series(1, 30000) i")
      .catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 150));
    (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    await sent;
    let settled = -1;
    await within(30_000, "the INSERT is all there or not at all", async () => {
      const now = Number((await herd.query("SELECT count(*) FROM events")).rows[0].count);
      const moving = now !== settled;
      settled = now;
      return !moving && (now === before || now === before + 30_000);
    });
    expect([before, before + 30_000]).toContain(settled);
  });
});

describe("bulk writes into a table with two copies", () => {
  /** Advisory locks held on one server's PostgreSQL (herd's write locks, on the coordinator and on the copies). */
  const advisoryLocks = async (ordinal: number) =>
    Number(
      (
        await onServer(
          herdUp.cluster,
          ordinal,
          // a value: two int keys (objsubid 2); a group: one bigint key whose high half is "herd" (1751478884)
          "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND (objsubid = 2 OR classid = 1751478884)",
        )
      )[0]?.n,
    );

  it("inserts 200,000 rows with one INSERT … SELECT (it ran PostgreSQL out of lock space: 53200), copies identical", async () => {
    await herd.query("CREATE TABLE bulk (id bigint PRIMARY KEY, v int)");
    await herd.query("SELECT create_distributed_table('bulk', 'id')");
    const inserted = await herd.query("INSERT INTO bulk SELECT g, g % 7 FROM generate_series(1, 200000) g");
    expect(inserted.rowCount).toBe(200_000);
    const { rows } = await herd.query("SELECT count(*)::int AS n, sum(v)::bigint AS total FROM bulk");
    // sum of g % 7 over 1..200000: 28571 whole cycles of 0..6 (21 each) and 1..3 left over
    expect(rows[0]).toEqual({ n: 200_000, total: String(28_571 * 21 + 1 + 2 + 3) });
    expect(await divergentShards(herdUp.cluster, herd, "bulk")).toEqual([]);
  }, 240_000);

  it("holds at most 1024 value locks, not one per row, through a block of 3,000 single-row INSERTs", async () => {
    await herd.query("CREATE TABLE bulk_rows (id bigint PRIMARY KEY, v int)");
    await herd.query("SELECT create_distributed_table('bulk_rows', 'id', shard_count => 4)");
    await herd.query("BEGIN");
    for (let id = 1; id <= 3000; id += 1) await herd.query("INSERT INTO bulk_rows VALUES ($1, 1)", [id]);
    // past 1024 values the groups of the next ones are locked whole: 1024 values and each group
    // shared and whole, on the coordinator and on each copy's worker (3,000 values took 3,004 locks before)
    const bound = MAX_VALUE_LOCKS_PER_TRANSACTION + 4 * 2;
    for (const ordinal of [0, 1, 2]) expect(await advisoryLocks(ordinal)).toBeLessThanOrEqual(bound);
    await herd.query("COMMIT");
    expect((await herd.query("SELECT count(*)::int AS n FROM bulk_rows")).rows[0].n).toBe(3000);
    expect(await divergentShards(herdUp.cluster, herd, "bulk_rows")).toEqual([]);
  }, 120_000);
  it("lets four blocks of 200 single-row INSERTs each into the same two shard groups all commit (no lock escalation among them)", async () => {
    await herd.query("CREATE TABLE bulk_clients (id bigint PRIMARY KEY, loader int)");
    await herd.query("SELECT create_distributed_table('bulk_clients', 'id', shard_count => 2)");
    const loaders = await Promise.all([0, 1, 2, 3].map(() => herdClient(herdUp.cluster)));
    try {
      const outcomes = await Promise.allSettled(
        loaders.map(async (client, loader) => {
          await client.query("BEGIN");
          for (let i = 0; i < 200; i += 1)
            await client.query("INSERT INTO bulk_clients VALUES ($1, $2)", [i * 4 + loader, loader]);
          await client.query("COMMIT");
        }),
      );
      // (locking the groups whole after the block's first values made them wait for each other: 40P01)
      expect(outcomes.map((outcome) => (outcome.status === "fulfilled" ? "ok" : String(outcome.reason)))).toEqual([
        "ok",
        "ok",
        "ok",
        "ok",
      ]);
    } finally {
      await Promise.all(loaders.map((client) => client.end()));
    }
    expect((await herd.query("SELECT count(*)::int AS n FROM bulk_clients")).rows[0].n).toBe(800);
    expect(await divergentShards(herdUp.cluster, herd, "bulk_clients")).toEqual([]);
  }, 120_000);
  it("runs two bulk INSERT … SELECTs of the same groups one after the other, and frees the groups of one whose client vanishes", async () => {
    await herd.query("CREATE TABLE bulk_shared (id bigint PRIMARY KEY, loader int)");
    await herd.query("SELECT create_distributed_table('bulk_shared', 'id', shard_count => 4)");
    const loaders = await Promise.all([0, 1, 2].map(() => herdClient(herdUp.cluster)));
    try {
      // each locks every group whole (thousands of values in each): both finish, one after the other
      const bulk = (client: pg.Client, from: number) =>
        client.query(`INSERT INTO bulk_shared SELECT g, ${from} FROM generate_series(${from}, ${from + 29_999}) g`);
      const [first, second] = await Promise.all([
        bulk(loaders[0] as pg.Client, 1),
        bulk(loaders[1] as pg.Client, 100_001),
      ]);
      expect([first.rowCount, second.rowCount]).toEqual([30_000, 30_000]);
      // a third one's client drops its socket mid-way: nothing of it stays, its group locks go
      const vanishing = loaders[2] as pg.Client;
      vanishing.on("error", () => {});
      const abandoned = bulk(vanishing, 200_001).catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 300));
      (vanishing as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
      await abandoned;
      await within(30_000, "a single-row write of the groups goes through", async () => {
        await herd.query("INSERT INTO bulk_shared VALUES (999999, 9)");
        return true;
      });
      await within(30_000, "nothing of the abandoned INSERT stays", async () => {
        const { rows } = await herd.query("SELECT count(*)::int AS n FROM bulk_shared WHERE loader = 200001");
        return rows[0].n === 0;
      });
      expect((await herd.query("SELECT count(*)::int AS n FROM bulk_shared")).rows[0].n).toBe(60_001);
      expect(await divergentShards(herdUp.cluster, herd, "bulk_shared")).toEqual([]);
    } finally {
      await Promise.all(loaders.slice(0, 2).map((client) => client.end()));
    }
  }, 180_000);
});
