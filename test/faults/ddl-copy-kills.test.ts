import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useHerdCluster } from "../helpers/herd-up.js";
import {
  divergentShards,
  herdClient,
  killPostgres,
  onServer,
  placements,
  preparedTransactions,
  serverClient,
  untilServerAnswers,
  within,
} from "./fault-kit.js";

// DDL and COPY interrupted by a worker's crash: DDL is all or nothing (every placement and the
// shell change together, or none does), COPY goes on with the shards' other copies and marks
// the crashed worker's copies stale; no prepared transaction is left and nothing hangs after.
// Each worker is held up at a known point by a lock its test takes on a shard table directly,
// then killed while the command waits there.
const herdUp = useHerdCluster("ddl-copy-kills", { workers: 3, env: { HERD_REPAIR_INTERVAL_MS: "1000" } });
let herd: pg.Client;
const run = promisify(execFile);

beforeAll(async () => {
  herd = await herdClient(herdUp.cluster);
  await herd.query("CREATE TABLE wide (id int PRIMARY KEY, v int NOT NULL)");
  await herd.query("INSERT INTO wide SELECT g, g FROM generate_series(1, 2000) g");
  await herd.query("SELECT create_distributed_table('wide', 'id')");
  await herd.query("CREATE TABLE copied (id int PRIMARY KEY, body text NOT NULL)");
  await herd.query("SELECT create_distributed_table('copied', 'id')");
});

afterAll(async () => {
  await herd?.end();
});

/** A session on worker `ordinal` holding `mode` on one of `table`'s shard tables there, and the shard. */
async function holdShard(table: string, ordinal: number, mode: string): Promise<{ locker: pg.Client; shard: string }> {
  const port = herdUp.cluster.sqlPort + 1 + ordinal;
  const shard = (await placements(herd, table)).find((p) => p.nodeport === port)?.shard_name as string;
  const locker = await serverClient(herdUp.cluster, ordinal);
  locker.on("error", () => {});
  await locker.query("BEGIN");
  await locker.query(`LOCK TABLE ${shard} IN ${mode} MODE`);
  return { locker, shard };
}

/** herd's backends on a worker waiting for a lock. */
async function waitingOn(ordinal: number): Promise<number> {
  const rows = await onServer(
    herdUp.cluster,
    ordinal,
    "SELECT pid FROM pg_stat_activity WHERE application_name = 'herd' AND wait_event_type = 'Lock'",
  );
  return rows.length;
}

/** The columns of every shard table of `table` on every worker, as `name type` lists, deduplicated. */
async function shardColumns(table: string): Promise<string[]> {
  const shapes = new Set<string>();
  for (const placement of await placements(herd, table)) {
    const columns = await onServer<{ c: string }>(
      herdUp.cluster,
      placement.nodeport - herdUp.cluster.sqlPort - 1,
      `SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) AS c
         FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`,
      [placement.shard_name],
    );
    shapes.add(columns[0]?.c as string);
  }
  return [...shapes];
}

describe("DDL interrupted by a worker's crash", () => {
  it("changes nothing anywhere, leaves nothing prepared, and nothing hangs after", async () => {
    const { locker } = await holdShard("wide", 2, "ACCESS SHARE");
    const ddl = herd.query("ALTER TABLE wide ALTER COLUMN v TYPE bigint, ADD COLUMN note text").catch((e) => e);
    await within(10_000, "the ALTER waits on herd-2", async () => (await waitingOn(2)) > 0);
    await killPostgres(herdUp.cluster, 2);
    const outcome = (await ddl) as { code?: string };
    expect(outcome.code).toMatch(/^08/);
    await locker.end().catch(() => {});
    await untilServerAnswers(herdUp.cluster, 2);
    for (const ordinal of [1, 2, 3]) {
      await within(15_000, `nothing prepared on herd-${ordinal}`, async () => {
        return (await preparedTransactions(herdUp.cluster, ordinal)).length === 0;
      });
    }
    // the shell and every placement as before
    expect(await shardColumns("wide")).toEqual(["id integer, v integer"]);
    await expect(herd.query("SELECT note FROM wide LIMIT 1")).rejects.toMatchObject({ code: "42703" });
    // every row can be written at once: no lock of the interrupted ALTER is left
    await herd.query("SET lock_timeout = '5s'");
    expect((await herd.query("UPDATE wide SET v = v + 1")).rowCount).toBe(2000);
    await herd.query("RESET lock_timeout");
    // and the same ALTER, uninterrupted, goes through everywhere
    await herd.query("ALTER TABLE wide ALTER COLUMN v TYPE bigint, ADD COLUMN note text");
    expect(await shardColumns("wide")).toEqual(["id integer, v bigint, note text"]);
  });
});

describe("COPY interrupted by a worker's crash", () => {
  it("loads every row on the other copies, marks the crashed worker's stale, and repairs them", async () => {
    const rows = 20_000;
    const file = join(herdUp.dir, "rows.csv");
    await writeFile(file, Array.from({ length: rows }, (_, i) => `${i + 1},row ${i + 1}\n`).join(""));
    const { locker } = await holdShard("copied", 1, "SHARE");
    const copy = run(
      "psql",
      [
        "-h",
        "127.0.0.1",
        "-p",
        String(herdUp.cluster.sqlPort),
        "-U",
        "postgres",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        `\\copy copied FROM '${file}' WITH (FORMAT csv)`,
      ],
      { env: { ...process.env, PGPASSWORD: "postgres" } },
    ).then(
      ({ stdout }) => stdout,
      (error: Error) => error,
    );
    await within(15_000, "the COPY waits on herd-1", async () => (await waitingOn(1)) > 0);
    await killPostgres(herdUp.cluster, 1);
    const outcome = await copy;
    expect(outcome).toMatch(new RegExp(`COPY ${rows}`));
    await locker.end().catch(() => {});
    expect((await herd.query("SELECT count(*)::int AS n FROM copied")).rows).toEqual([{ n: rows }]);
    const stale = (await placements(herd, "copied")).filter((p) => p.shardstate === 3);
    expect(stale.length).toBeGreaterThan(0);
    expect(stale.every((p) => p.nodeport === herdUp.cluster.sqlPort + 2)).toBe(true);
    await untilServerAnswers(herdUp.cluster, 1);
    await within(30_000, "herd-1's copies repaired", async () =>
      (await placements(herd)).every((p) => p.shardstate === 1),
    );
    expect(await divergentShards(herdUp.cluster, herd, "copied")).toEqual([]);
    for (const ordinal of [1, 2, 3]) expect(await preparedTransactions(herdUp.cluster, ordinal)).toEqual([]);
  });
});
