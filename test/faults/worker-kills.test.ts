import { sleep } from "@herd/shared";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useHerdCluster } from "../helpers/herd-up.js";
import {
  divergentShards,
  herdBackends,
  herdClient,
  killPostgres,
  placements,
  preparedTransactions,
  untilServerAnswers,
  within,
} from "./fault-kit.js";
import { LedgerWriter, readLedger, seeded, type Tally } from "./ledger-model.js";

// kill -9 of the workers' PostgreSQL, again and again, under 8 writers (INSERT, UPDATE, DELETE,
// single-shard and multi-shard, in and out of blocks), each PostgreSQL restarted by its bot:
// no acknowledged write lost, no refused write visible, the copies of every shard identical
// once the stale ones are repaired, no prepared transaction and no open transaction left.
const KILLS = Number(process.env.HERD_FAULT_KILLS ?? 9);
const KILL_EVERY_MS = 2_000;
const herdUp = useHerdCluster("worker-kills", { workers: 3, env: { HERD_REPAIR_INTERVAL_MS: "1000" } });
let herd: pg.Client;

beforeAll(async () => {
  herd = await herdClient(herdUp.cluster);
  await herd.query(
    "CREATE TABLE ledger (id bigint PRIMARY KEY, writer int NOT NULL, n int NOT NULL, note text NOT NULL)",
  );
  await herd.query("SELECT create_distributed_table('ledger', 'id')");
});

afterAll(async () => {
  await herd?.end();
});

describe("workers' PostgreSQL killed under 8 writers", () => {
  it("loses no acknowledged write and leaves identical copies", async () => {
    const tally: Tally = { statements: 0, acknowledged: 0, refused: 0, uncertain: 0, codes: new Map() };
    const clients = await Promise.all(Array.from({ length: 8 }, () => herdClient(herdUp.cluster)));
    const writers = clients.map((client, i) => {
      client.on("error", () => {});
      return new LedgerWriter(i + 1, client, tally, seeded(1_000 + i));
    });
    let stop = false;
    const loops = writers.map(async (writer) => {
      while (!stop) await writer.step();
    });
    let maxStale = 0;
    const staleWatch = (async () => {
      while (!stop) {
        maxStale = Math.max(maxStale, (await placements(herd)).filter((p) => p.shardstate === 3).length);
        await sleep(200);
      }
    })();
    await sleep(1_000);
    for (let kill = 0; kill < KILLS; kill += 1) {
      await killPostgres(herdUp.cluster, 1 + (kill % 3));
      await sleep(KILL_EVERY_MS);
    }
    const lastKill = Date.now();
    for (const ordinal of [1, 2, 3]) await untilServerAnswers(herdUp.cluster, ordinal);
    stop = true;
    await Promise.all([...loops, staleWatch]);
    await Promise.all(clients.map((client) => client.end().catch(() => {})));

    const repairMs = await within(60_000, "every placement active", async () =>
      (await placements(herd)).every((p) => p.shardstate === 1),
    );
    // a commit is finished on the workers (COMMIT PREPARED) after the client's answer, and one
    // whose worker was killed by recovery: the copies are compared once nothing is left prepared
    for (const ordinal of [1, 2, 3]) {
      await within(
        30_000,
        `no prepared transaction left on herd-${ordinal}`,
        async () => (await preparedTransactions(herdUp.cluster, ordinal)).length === 0,
      );
    }
    const actual = await readLedger(herd);
    const lost = writers.flatMap((writer) => writer.check(actual).lost);
    const unacknowledged = writers.flatMap((writer) => writer.check(actual).unacknowledged);
    const divergent = await divergentShards(herdUp.cluster, herd);
    console.log(
      [
        `worker kills: ${KILLS} kill -9 of a worker's PostgreSQL, ${KILL_EVERY_MS} ms apart, 8 writers`,
        `statements ${tally.statements}, acknowledged ${tally.acknowledged}, refused ${tally.refused}, outcome unknown ${tally.uncertain}`,
        ...[...tally.codes].map(([error, n]) => `  ${n} × ${error}`),
        `lost ${lost.length}, visible though refused ${unacknowledged.length}, divergent shards ${divergent.length}`,
        `stale placements at most ${maxStale}, all repaired ${Date.now() - lastKill} ms after the last kill (${repairMs} ms after the writers stopped)`,
      ].join("\n"),
    );
    expect({ lost, unacknowledged, divergent }).toEqual({ lost: [], unacknowledged: [], divergent: [] });
    expect(tally.acknowledged).toBeGreaterThan(100);
    for (const ordinal of [1, 2, 3]) expect(await herdBackends(herdUp.cluster, ordinal)).toEqual([]);
  });
});
