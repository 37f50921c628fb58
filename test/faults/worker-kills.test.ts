import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { sleep } from "@herd/shared";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useHerdCluster } from "../helpers/herd-up.js";
import {
  divergentShards,
  freezePostgres,
  herdBackends,
  herdClient,
  killPostgres,
  onServer,
  placements,
  preparedTransactions,
  serverClient,
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
    let lastKill: number;
    try {
      await sleep(1_000);
      for (let kill = 0; kill < KILLS; kill += 1) {
        await killPostgres(herdUp.cluster, 1 + (kill % 3));
        await sleep(KILL_EVERY_MS);
      }
      lastKill = Date.now();
      for (const ordinal of [1, 2, 3]) await untilServerAnswers(herdUp.cluster, ordinal);
    } finally {
      // the writers stop even when a kill fails, so the cluster can be stopped
      stop = true;
      await Promise.all([...loops, staleWatch]);
    }
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
    const log = await readFile(join(herdUp.cluster.dataDir, "logs", "herd-0.log"), "utf8");
    const occurrences = (text: string) => log.split(text).length - 1;
    console.log(
      [
        `worker kills: ${KILLS} kill -9 of a worker's PostgreSQL, ${KILL_EVERY_MS} ms apart, 8 writers`,
        `COMMIT PREPARED lost with its worker ${occurrences("did not finish its prepared transaction")} times, placements marked stale for it ${occurrences("a committed write is not finished on them yet")} times`,
        `statements ${tally.statements}, acknowledged ${tally.acknowledged}, refused ${tally.refused}, outcome unknown ${tally.uncertain}`,
        ...[...tally.codes].map(([error, n]) => `  ${n} × ${error}`),
        `lost ${lost.length}, visible though refused ${unacknowledged.length}, divergent shards ${divergent.length}`,
        `stale placements at most ${maxStale}, all repaired ${Date.now() - lastKill} ms after the last kill (${repairMs} ms after the writers stopped)`,
      ].join("\n"),
    );
    // which shard a wrong row lives in: the coordinator's log (kept with HERD_TEST_KEEP_LOGS) names it
    for (const wrong of [...lost, ...unacknowledged]) {
      const id = wrong.split(" ")[0];
      const shard = await herd.query("SELECT get_shard_id_for_distribution_column('ledger', $1) AS shard", [id]);
      console.log(`${wrong}: shard ${shard.rows[0]?.shard}`);
    }
    expect({ lost, unacknowledged, divergent }).toEqual({ lost: [], unacknowledged: [], divergent: [] });
    expect(tally.acknowledged).toBeGreaterThan(100);
    for (const ordinal of [1, 2, 3]) expect(await herdBackends(herdUp.cluster, ordinal)).toEqual([]);
  });

  it("a worker that dies before its COMMIT PREPARED takes no write until its copy is repaired", async () => {
    const c = herdUp.cluster;
    await herd.query("CREATE TABLE in_doubt (id bigint PRIMARY KEY, n int NOT NULL)");
    await herd.query("SELECT create_distributed_table('in_doubt', 'id')");
    const shard = String(
      (await herd.query("SELECT get_shard_id_for_distribution_column('in_doubt', 7) AS s")).rows[0]?.s,
    );
    const ordinals = (await placements(herd, "in_doubt"))
      .filter((p) => p.shardid === shard)
      .map((p) => p.nodeport - c.sqlPort - 1);
    const victim = ordinals[0] as number;
    // the decision waits for the commit records' table, the INSERT's parts prepared on both copies
    const holder = await serverClient(c, 0);
    await holder.query("BEGIN");
    await holder.query("LOCK TABLE herd.transactions IN EXCLUSIVE MODE");
    const writer = await herdClient(c);
    writer.on("error", () => {});
    const inserted = writer.query("INSERT INTO in_doubt VALUES (7, 0)");
    await within(10_000, "the INSERT prepared, its decision waiting", async () => {
      const waiting = await onServer(
        c,
        0,
        "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%record_commit%'",
      );
      return waiting.length === 1;
    });
    // one copy's worker freezes and dies between the decision and its COMMIT PREPARED
    const frozen = await freezePostgres(c, victim);
    await holder.query("ROLLBACK");
    await holder.end();
    await within(10_000, "the other copy committed", async () => {
      const others = ordinals.filter((o) => o !== victim);
      return (await Promise.all(others.map((o) => preparedTransactions(c, o)))).every((gids) => gids.length === 0);
    });
    for (const pid of frozen) process.kill(pid, "SIGKILL");
    await inserted;
    // its copy lacks the row until recovery commits it there: no write may reach that copy now
    // (an UPDATE there would find no row, and the copies would differ for good)
    await within(15_000, "the dead worker's placement stale", async () =>
      (await placements(herd, "in_doubt")).some(
        (p) => p.shardid === shard && p.nodeport - c.sqlPort - 1 === victim && p.shardstate === 3,
      ),
    );
    await untilServerAnswers(c, victim);
    expect((await writer.query("UPDATE in_doubt SET n = n + 1 WHERE id = 7")).rowCount).toBe(1);
    expect((await writer.query("DELETE FROM in_doubt WHERE id = 7 RETURNING n")).rows).toEqual([{ n: 1 }]);
    await writer.query("INSERT INTO in_doubt VALUES (7, 5)");
    await writer.end();
    await within(60_000, "every placement active, nothing prepared", async () => {
      const prepared = await preparedTransactions(c, victim);
      return prepared.length === 0 && (await placements(herd)).every((p) => p.shardstate === 1);
    });
    expect(await divergentShards(c, herd, "in_doubt")).toEqual([]);
    expect((await herd.query("SELECT id, n FROM in_doubt")).rows).toEqual([{ id: "7", n: 5 }]);
  });
});
