import { sleep } from "@herd/shared";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useHerdCluster } from "../helpers/herd-up.js";
import {
  herdBackends,
  herdClient,
  keyOf,
  killPostgres,
  onServer,
  sendCancel,
  serverClient,
  untilServerAnswers,
  within,
} from "./fault-kit.js";

// No leaked work: whatever ends a client's statement (its disconnect, a CancelRequest, its
// statement_timeout or lock_timeout, a worker's crash) ends what the statement runs on the
// workers too, within about a second, and leaves no transaction open there.
// twenty sessions scan every worker at the same moment: room for all of them on each worker
const herdUp = useHerdCluster("leaks", { workers: 2, env: { HERD_WORKER_CONNECTIONS: "64" } });
let herd: pg.Client;

const ROWS = 2_000;
/** Runs about 20 s on the workers (10 ms a row): long enough to be seen, and to be ended. */
const SLOW_SCAN = "SELECT count(*) FROM big WHERE pg_sleep(0.01) IS NOT NULL";

beforeAll(async () => {
  herd = await herdClient(herdUp.cluster);
  await herd.query("CREATE TABLE big (id int PRIMARY KEY, v int NOT NULL DEFAULT 0)");
  // filled while local: distributing copies the rows to the shards
  await herd.query(`INSERT INTO big SELECT g, 0 FROM generate_series(1, ${ROWS}) g`);
  await herd.query("SELECT create_distributed_table('big', 'id')");
});

afterAll(async () => {
  await herd?.end();
});

/** herd's statements running (or transactions open) on all workers. */
async function busyOnWorkers(): Promise<number> {
  const [one, two] = await Promise.all([herdBackends(herdUp.cluster, 1), herdBackends(herdUp.cluster, 2)]);
  return one.length + two.length;
}

describe("a client that goes away", () => {
  it("ends a multi-shard statement on every worker within a second of the disconnect", async () => {
    const client = await herdClient(herdUp.cluster);
    client.on("error", () => {});
    void client.query(SLOW_SCAN).catch(() => {});
    await within(5_000, "the scan reaches the workers", async () => (await busyOnWorkers()) > 0);
    (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    const ms = await within(2_000, "worker statements ended", async () => (await busyOnWorkers()) === 0);
    expect(ms).toBeLessThan(1_500);
  });

  it("ends a block's worker transactions, so the rows it locked are free again", async () => {
    const client = await herdClient(herdUp.cluster);
    client.on("error", () => {});
    await client.query("BEGIN");
    await client.query("UPDATE big SET v = v + 1 WHERE id = 7");
    void client.query(SLOW_SCAN).catch(() => {});
    await within(5_000, "the scan reaches the workers", async () => (await busyOnWorkers()) > 0);
    (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    await within(2_000, "worker transactions ended", async () => (await busyOnWorkers()) === 0);
    // the row lock went with them: another client updates the row at once (and the first's update is gone)
    await herd.query("SET lock_timeout = '2s'");
    const updated = await herd.query("UPDATE big SET v = v + 10 WHERE id = 7 RETURNING v");
    await herd.query("RESET lock_timeout");
    expect(updated.rows).toEqual([{ v: 10 }]);
    await herd.query("UPDATE big SET v = 0 WHERE id = 7");
  });

  it("ends a write waiting for another's lock on the coordinator", async () => {
    const holder = await herdClient(herdUp.cluster);
    await holder.query("BEGIN");
    await holder.query("UPDATE big SET v = v + 1 WHERE id = 9");
    const waiter = await herdClient(herdUp.cluster);
    waiter.on("error", () => {});
    void waiter.query("UPDATE big SET v = v + 100 WHERE id = 9").catch(() => {});
    await sleep(300);
    const waiting = async () =>
      (await onServer(herdUp.cluster, 0, "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'")).length;
    expect(await waiting()).toBe(1);
    (waiter as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    // its wait on the coordinator ends while the lock is still held
    await within(1_000, "the waiter's lock wait ended", async () => (await waiting()) === 0);
    await holder.query("ROLLBACK");
    await holder.end();
    // the waiter's update never ran, although the lock it waited for is free now
    await sleep(300);
    expect((await herd.query("SELECT v FROM big WHERE id = 9")).rows).toEqual([{ v: 0 }]);
  });
});

describe("CancelRequest", () => {
  it("ends 20 sessions' multi-shard statements on every worker within a second", async () => {
    const clients = await Promise.all(Array.from({ length: 20 }, () => herdClient(herdUp.cluster)));
    const running = clients.map((client) => client.query(SLOW_SCAN).catch((error: { code?: string }) => error));
    await within(10_000, "every scan reaches the workers", async () => (await busyOnWorkers()) >= 20);
    const cancelled = Date.now();
    await Promise.all(
      clients.map((client) => sendCancel(herdUp.cluster.sqlPort, keyOf(client).processId, keyOf(client).secretKey)),
    );
    const outcomes = await Promise.all(running);
    const answered = Date.now() - cancelled;
    expect(outcomes.map((outcome) => (outcome as { code?: string }).code)).toEqual(clients.map(() => "57014"));
    const ms = await within(3_000, "worker statements ended", async () => (await busyOnWorkers()) === 0);
    expect(answered + ms).toBeLessThan(2_000);
    // every session goes on working
    for (const client of clients)
      expect((await client.query("SELECT v FROM big WHERE id = 1")).rows).toEqual([{ v: 0 }]);
    await Promise.all(clients.map((client) => client.end()));
  });
});

describe("the client's timeouts", () => {
  it("applies statement_timeout (SET, SET LOCAL, startup options) to the statement's work on the workers", async () => {
    await herd.query("SET statement_timeout = '300ms'");
    const started = Date.now();
    await expect(herd.query(SLOW_SCAN)).rejects.toMatchObject({ code: "57014" });
    expect(Date.now() - started).toBeLessThan(3_000);
    await herd.query("RESET statement_timeout");
    await within(2_000, "worker statements ended", async () => (await busyOnWorkers()) === 0);
    // after RESET the workers have no timeout again
    expect(
      (await herd.query("SELECT count(*)::int AS n FROM big WHERE id <= 60 AND pg_sleep(0.01) IS NOT NULL")).rows,
    ).toEqual([{ n: 60 }]);

    await herd.query("BEGIN");
    await herd.query("SET LOCAL statement_timeout = '300ms'");
    await expect(herd.query(SLOW_SCAN)).rejects.toMatchObject({ code: "57014" });
    await herd.query("ROLLBACK");
    expect(
      (await herd.query("SELECT count(*)::int AS n FROM big WHERE id <= 60 AND pg_sleep(0.01) IS NOT NULL")).rows,
    ).toEqual([{ n: 60 }]);

    const configured = await herdClient(herdUp.cluster, { options: "-c statement_timeout=300" });
    await expect(configured.query(SLOW_SCAN)).rejects.toMatchObject({ code: "57014" });
    await configured.end();
  });

  it("applies lock_timeout to a worker's lock wait", async () => {
    // another session (not herd's) locks the shard tables of id 5 on both workers
    const shard = await herd.query<{ id: string }>("SELECT get_shard_id_for_distribution_column('big', 5) AS id");
    const shards = await herd.query<{ shard_name: string; nodeport: number }>(
      "SELECT shard_name, nodeport FROM citus_shards WHERE shardid = $1",
      [shard.rows[0]?.id],
    );
    expect(shards.rows).toHaveLength(2);
    const lockers = await Promise.all([serverClient(herdUp.cluster, 1), serverClient(herdUp.cluster, 2)]);
    for (const locker of lockers) {
      await locker.query("BEGIN");
      const here = shards.rows.filter((row) => row.nodeport === (locker as unknown as { port: number }).port);
      for (const shard of here) await locker.query(`LOCK TABLE ${shard.shard_name} IN ACCESS EXCLUSIVE MODE`);
    }
    await herd.query("SET lock_timeout = '200ms'");
    const started = Date.now();
    await expect(herd.query("SELECT v FROM big WHERE id = 5")).rejects.toMatchObject({ code: "55P03" });
    await expect(herd.query("UPDATE big SET v = 1 WHERE id = 5")).rejects.toMatchObject({ code: "55P03" });
    expect(Date.now() - started).toBeLessThan(3_000);
    await herd.query("RESET lock_timeout");
    for (const locker of lockers) {
      await locker.query("ROLLBACK");
      await locker.end();
    }
    expect((await herd.query("SELECT v FROM big WHERE id = 5")).rows).toEqual([{ v: 0 }]);
  });
});

describe("a worker's crash", () => {
  it("leaves no transaction of herd's open on the surviving worker", async () => {
    const writers = await Promise.all(Array.from({ length: 8 }, () => herdClient(herdUp.cluster)));
    let stop = false;
    const failures: string[] = [];
    const loops = writers.map(async (client, i) => {
      client.on("error", () => {});
      while (!stop) {
        const id = 1 + ((i * 97 + Math.floor(Math.random() * ROWS)) % ROWS);
        try {
          if (i % 2 === 0) {
            await client.query("BEGIN");
            await client.query("UPDATE big SET v = v + 1 WHERE id = $1", [id]);
            await client.query("UPDATE big SET v = v - 1 WHERE id = $1", [1 + (id % ROWS)]);
            await client.query("COMMIT");
          } else await client.query("UPDATE big SET v = v + 0 WHERE id = $1", [id]);
        } catch (error) {
          failures.push((error as { code?: string }).code ?? String(error));
          await client.query("ROLLBACK").catch(() => {});
        }
      }
    });
    await sleep(1_000);
    await killPostgres(herdUp.cluster, 2);
    await sleep(2_000);
    stop = true;
    await Promise.all(loops);
    await Promise.all(writers.map((client) => client.end().catch(() => {})));
    // on the surviving worker, nothing of herd's stays open
    await within(
      3_000,
      "no transaction of herd's open on herd-1",
      async () => (await herdBackends(herdUp.cluster, 1)).length === 0,
    );
    await untilServerAnswers(herdUp.cluster, 2);
    await within(
      10_000,
      "no transaction of herd's open on herd-2",
      async () => (await herdBackends(herdUp.cluster, 2)).length === 0,
    );
    // and every row can be written, as soon as the repair of herd-2's stale copies lets it: each
    // repair copy holds its shard group's write lock while it copies (operations/shard-copy.ts),
    // and it starts as herd-2 answers again, i.e. now. With 2 s this failed three times in a dozen
    // loaded full runs; a lock held for good still fails with 12 s.
    await herd.query("SET lock_timeout = '12s'");
    const all = await herd.query("UPDATE big SET v = v");
    await herd.query("RESET lock_timeout");
    expect(all.rowCount).toBe(ROWS);
    // a transfer whose decision was taken as herd-2 died finishes on herd-1 after its client was
    // answered (COMMIT PREPARED runs on; if it failed, recovery finishes it): nothing stays
    await within(30_000, "no prepared transaction left on herd-1", async () => {
      await herd.query("SELECT recover_prepared_transactions()");
      return (await onServer(herdUp.cluster, 1, "SELECT gid FROM pg_prepared_xacts")).length === 0;
    });
  });
});
