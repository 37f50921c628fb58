import { sleep } from "@herd/shared";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useHerdCluster } from "../helpers/herd-up.js";
import { msg, RawClient } from "../helpers/raw-client.js";
import { botOf, divergentShards, herdBackends, herdClient, preparedTransactions, within } from "./fault-kit.js";

// No client can take the coordinator down: a client that vanishes at any point of any kind of
// statement (router, appended and merged reads, INSERT, multi-shard UPDATE, COPY, DDL, a block's
// COMMIT) ends only its own work. After each disconnect the coordinator is the same process, other
// sessions answer, nothing of the vanished client's is left running or prepared on the workers,
// and every shard's copies are identical. (Before, closing the socket during a merged query made
// herd-0 exit with an unhandled "connection … was lost".)
const herdUp = useHerdCluster("disconnects", { workers: 2 });
let herd: pg.Client;
let coordinatorPid: number;

const ROWS = 4_000;

beforeAll(async () => {
  herd = await herdClient(herdUp.cluster);
  await herd.query("CREATE TABLE big (id int PRIMARY KEY, v int NOT NULL DEFAULT 0, note text)");
  await herd.query(`INSERT INTO big SELECT g, 0, repeat('x', 50) FROM generate_series(1, ${ROWS}) g`);
  await herd.query("SELECT create_distributed_table('big', 'id')");
  coordinatorPid = await botOf(herdUp.cluster, 0);
});

afterAll(async () => {
  await herd?.end();
});

type Start = (client: pg.Client) => void;

/** Runs without waiting for it; its failure (the socket goes) is expected. */
const fire =
  (sql: string): Start =>
  (client) => {
    void client.query(sql).catch(() => {});
  };

const STATEMENTS: Record<string, Start> = {
  "router read": fire("SELECT pg_sleep(2), v FROM big WHERE id = 5"),
  "appended read (many rows)": fire("SELECT id, note FROM big, generate_series(1, 20)"),
  "merged read": fire("SELECT count(*) FROM big WHERE pg_sleep(0.002) IS NOT NULL"),
  "multi-row INSERT across shards": fire(
    "INSERT INTO big (id, v) VALUES (100001, 1), (100002, 2), (100003, 3) ON CONFLICT DO NOTHING",
  ),
  "multi-shard UPDATE (two-phase)": fire("UPDATE big SET v = v + 1"),
  "DDL on every shard": fire("CREATE INDEX IF NOT EXISTS big_v ON big (v)"),
  "a block's COMMIT": (client) => {
    void (async () => {
      await client.query("BEGIN");
      await client.query("UPDATE big SET v = v + 1 WHERE id < 200");
      await client.query("COMMIT");
    })().catch(() => {});
  },
};

/** Drops a client's socket, as a crashed client or a cut network does. */
function vanish(client: pg.Client): void {
  (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
}

/** A COPY FROM STDIN that sends some rows and then vanishes, at the message level. */
async function copyThenVanish(rows: number): Promise<void> {
  const client = await RawClient.ready(herdUp.cluster.sqlPort);
  client.send(msg.query("COPY big (id, v) FROM STDIN"));
  const response = await client.next();
  expect(String.fromCharCode(response.type)).toBe("G");
  for (let i = 0; i < rows; i += 1) client.send(msg.raw("d", Buffer.from(`${200_000 + i}\t1\n`)));
  await sleep(20);
  client.socket.destroy();
}

describe("a client that vanishes at any point of any statement", () => {
  it("COPY FROM STDIN, mid-stream: the coordinator lives on, no row of it is anywhere", async () => {
    for (const rows of [0, 1, 500]) await copyThenVanish(rows);
    expect(await botOf(herdUp.cluster, 0)).toBe(coordinatorPid);
    expect((await herd.query("SELECT count(*)::int AS n FROM big WHERE id >= 200000")).rows).toEqual([{ n: 0 }]);
    await within(10_000, "the COPYs' work ended on the workers", async () => {
      const [one, two] = await Promise.all([herdBackends(herdUp.cluster, 1), herdBackends(herdUp.cluster, 2)]);
      return one.length + two.length === 0;
    });
  });

  for (const [name, start] of Object.entries(STATEMENTS)) {
    it(`${name}: the coordinator lives on, nothing of the client's is left`, async () => {
      for (const delayMs of [0, 5, 50, 400]) {
        const client = await herdClient(herdUp.cluster);
        client.on("error", () => {});
        start(client);
        await sleep(delayMs);
        vanish(client);
        // another session is answered meanwhile
        expect((await herd.query("SELECT count(*)::int AS n FROM big WHERE id <= 10")).rows).toEqual([{ n: 10 }]);
      }
      expect(await botOf(herdUp.cluster, 0)).toBe(coordinatorPid);
      await within(10_000, "the vanished clients' work ended on the workers", async () => {
        const [one, two] = await Promise.all([herdBackends(herdUp.cluster, 1), herdBackends(herdUp.cluster, 2)]);
        return one.length + two.length === 0;
      });
      await within(15_000, "no prepared transaction left (recovery finished them)", async () => {
        const [one, two] = await Promise.all([
          preparedTransactions(herdUp.cluster, 1),
          preparedTransactions(herdUp.cluster, 2),
        ]);
        return one.length + two.length === 0;
      });
      expect(await divergentShards(herdUp.cluster, herd, "big")).toEqual([]);
    });
  }
});
