import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { sleep } from "@herd/shared";
import { usableCores } from "@herd/worker-bot";
import type pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { type HerdUp, startHerdUp } from "../helpers/herd-up.js";
import { botPid, processesMentioning } from "../helpers/processes.js";
import { scratchDir } from "../helpers/scratch-dir.js";
import {
  divergentShards,
  freezePostgres,
  herdClient,
  killPostgres,
  onServer,
  placements,
  preparedTransactions,
  serverClient,
  within,
} from "./fault-kit.js";
import { seeded } from "./ledger-model.js";

// Bank transfers between accounts on different workers, each recorded in a transfers table in
// the same transaction, while processes die: a worker's PostgreSQL, the coordinator's bot (with
// its PostgreSQL), the whole `herd up` at once, and the coordinator killed between PREPARE and
// the decision. Afterwards every balance is exactly what the recorded transfers made it, every
// acknowledged transfer is recorded, no refused one is, and no prepared transaction is left.
/** Coordinator processes of the clusters (HERD_SQL_PROCESSES, as herd up reads it). */
/** The coordinator processes the cluster runs: HERD_SQL_PROCESSES as the bot reads it (auto by default). */
const SQL_PROCESSES =
  (process.env.HERD_SQL_PROCESSES ?? "auto") === "auto" ? usableCores() : Number(process.env.HERD_SQL_PROCESSES);
const ACCOUNTS = 60;
const INITIAL = 1_000;
const ROUNDS = Number(process.env.HERD_FAULT_ROUNDS ?? 2);

let scratch: { path: string; remove(): Promise<void> } | undefined;
let cluster: HerdUp | undefined;
let ports: { sqlPort: number; adminPort: number } | undefined;

afterAll(async () => {
  await cluster?.stop();
  await scratch?.remove();
});

/** kill -9 of every process of the cluster (herd up, its bots, their PostgreSQL servers), then `herd up` again. */
async function killEverythingAndRestart(alsoPids: readonly number[] = []): Promise<void> {
  const dir = (scratch as { path: string }).path;
  const kill = (pids: readonly number[]) => {
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone already
      }
    }
  };
  kill([...processesMentioning(dir).map((p) => p.pid), ...alsoPids]);
  // a bot killed after its PostgreSQL may have started that PostgreSQL again in between: kill
  // whatever is still (or newly) there until nothing is
  await within(10_000, "every process of the cluster gone", async () => {
    const left = processesMentioning(dir);
    kill(left.map((p) => p.pid));
    return left.length === 0;
  });
  // a killed postmaster whose bot was killed too is reaped by init, maybe a while later: until then
  // its pid exists (a zombie), and the new PostgreSQL refuses its data directory ("lock file
  // postmaster.pid already exists … Is another postmaster running?")
  await within(10_000, "every killed postmaster reaped", async () => postmasterPids(dir).every((pid) => !exists(pid)));
  cluster = await startHerdUp({ dataDir: dir, workers: 3, ports, env: { HERD_REPAIR_INTERVAL_MS: "1000" } });
}

/** The pids in the cluster's postmaster.pid files (of servers that ran; PostgreSQL removes the file on a clean stop). */
function postmasterPids(dir: string): number[] {
  return readdirSync(dir)
    .filter((entry) => /^herd-\d+$/.test(entry))
    .map((entry) => join(dir, entry, "pgdata", "postmaster.pid"))
    .filter((file) => existsSync(file))
    .map((file) => Number(readFileSync(file, "utf8").split("\n")[0]))
    .filter((pid) => pid > 0);
}

/** Whether a process with this pid exists (a zombie too, as PostgreSQL's own check sees it). */
function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

/**
 * Waits until `count` deciding transactions wait for the commit records' table (their workers'
 * parts prepared); resolves with their backends' pids on the coordinator's PostgreSQL.
 */
async function untilDecisionsWait(c: HerdUp, count: number): Promise<number[]> {
  let pids: number[] = [];
  await within(10_000, "transfers prepared, their decisions waiting", async () => {
    const waiting = await onServer<{ pid: number }>(
      c,
      0,
      "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%record_commit%'",
    );
    pids = waiting.map((row) => row.pid);
    return waiting.length === count;
  });
  return pids;
}

/** What the coordinator's bot logged, all runs. */
async function coordinatorLog(): Promise<string> {
  const { readFile } = await import("node:fs/promises");
  return readFile(`${(scratch as { path: string }).path}/logs/herd-0.log`, "utf8");
}

interface Ledger {
  acknowledged: Set<number>;
  refused: Set<number>;
  unknown: Set<number>;
}

/** One transfer, in a block or as one multi-shard statement, recorded in `transfers` with it. */
async function transfer(client: pg.Client, id: number, random: () => number): Promise<void> {
  const from = 1 + Math.floor(random() * ACCOUNTS);
  const to = 1 + ((from + Math.floor(random() * (ACCOUNTS - 1))) % ACCOUNTS);
  const amount = 1 + Math.floor(random() * 50);
  await client.query("BEGIN");
  await client.query("UPDATE accounts SET balance = balance - $2 WHERE id = $1", [from, amount]);
  await client.query("UPDATE accounts SET balance = balance + $2 WHERE id = $1", [to, amount]);
  await client.query("INSERT INTO transfers VALUES ($1, $2, $3, $4)", [id, from, to, amount]);
  await client.query("COMMIT");
}

/** A writer that reconnects whenever its connection dies, and logs every outcome. */
async function writer(index: number, until: () => boolean, ledger: Ledger): Promise<void> {
  const random = seeded(7_000 + index);
  let client: pg.Client | undefined;
  for (let n = 0; !until(); n += 1) {
    if (!client) {
      try {
        client = await herdClient(cluster as HerdUp);
        client.on("error", () => {});
      } catch {
        await sleep(200);
        continue;
      }
    }
    const id = index * 1_000_000 + n;
    try {
      await transfer(client, id, random);
      ledger.acknowledged.add(id);
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code && !code.startsWith("08") && code !== "57P01" && code !== "57P03") {
        ledger.refused.add(id);
        await client.query("ROLLBACK").catch(() => {});
      } else {
        // the connection died with the coordinator, or herd could not tell (08007): either way
        ledger.unknown.add(id);
        await client.end().catch(() => {});
        client = undefined;
      }
    }
  }
  await client?.end().catch(() => {});
}

async function checkBank(herd: pg.Client, ledger: Ledger): Promise<void> {
  const recorded = new Map(
    (
      await herd.query<{ id: string; from_id: number; to_id: number; amount: number }>("SELECT * FROM transfers")
    ).rows.map((row) => [Number(row.id), row]),
  );
  const expected = new Map<number, number>();
  for (let id = 1; id <= ACCOUNTS; id += 1) expected.set(id, INITIAL);
  for (const row of recorded.values()) {
    expected.set(row.from_id, (expected.get(row.from_id) ?? 0) - row.amount);
    expected.set(row.to_id, (expected.get(row.to_id) ?? 0) + row.amount);
  }
  const balances = new Map(
    (await herd.query<{ id: number; balance: number }>("SELECT id, balance FROM accounts")).rows.map((row) => [
      row.id,
      row.balance,
    ]),
  );
  const lost = [...ledger.acknowledged].filter((id) => !recorded.has(id));
  const refusedButThere = [...ledger.refused].filter((id) => recorded.has(id));
  expect({ lost, refusedButThere }).toEqual({ lost: [], refusedButThere: [] });
  expect(balances).toEqual(expected);
}

describe("bank transfers while processes die", () => {
  it("keep every balance exact through kills of a worker, the coordinator and the whole cluster", async () => {
    scratch = await scratchDir("bank-kills");
    cluster = await startHerdUp({ dataDir: scratch.path, workers: 3, env: { HERD_REPAIR_INTERVAL_MS: "1000" } });
    ports = { sqlPort: cluster.sqlPort, adminPort: cluster.adminPort };
    const setup = await herdClient(cluster);
    await setup.query("CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)");
    await setup.query(`INSERT INTO accounts SELECT g, ${INITIAL} FROM generate_series(1, ${ACCOUNTS}) g`);
    await setup.query("SELECT create_distributed_table('accounts', 'id')");
    await setup.query(
      "CREATE TABLE transfers (id bigint PRIMARY KEY, from_id int NOT NULL, to_id int NOT NULL, amount int NOT NULL)",
    );
    await setup.query("SELECT create_distributed_table('transfers', 'id')");
    await setup.end();

    const ledger: Ledger = { acknowledged: new Set(), refused: new Set(), unknown: new Set() };
    let stop = false;
    const writers = Array.from({ length: 8 }, (_, i) => writer(i + 1, () => stop, ledger));
    const faults: string[] = [];
    for (let round = 0; round < ROUNDS; round += 1) {
      await sleep(1_500);
      await killPostgres(cluster, 1 + (round % 3));
      faults.push("worker PostgreSQL");
      await sleep(1_500);
      const coordinatorBot = botPid(scratch.path, "herd-0");
      if (coordinatorBot) process.kill(coordinatorBot, "SIGKILL");
      faults.push("coordinator bot");
      await sleep(2_500);
      await killEverythingAndRestart();
      faults.push("whole herd up");
    }
    await sleep(1_500);
    stop = true;
    await Promise.all(writers);

    const herd = await herdClient(cluster);
    await within(60_000, "every placement active", async () =>
      (await placements(herd)).every((p) => p.shardstate === 1),
    );
    await checkBank(herd, ledger);
    expect(ledger.acknowledged.size).toBeGreaterThan(20);
    expect(await divergentShards(cluster, herd)).toEqual([]);
    for (const ordinal of [1, 2, 3]) {
      await within(15_000, `no prepared transaction on herd-${ordinal}`, async () => {
        return (await preparedTransactions(cluster as HerdUp, ordinal)).length === 0;
      });
    }
    const log = await onServer<{ n: string }>(cluster, 0, "SELECT count(*) AS n FROM herd.transactions");
    console.log(
      [
        `bank: ${faults.length} faults (${faults.join(", ")})`,
        `transfers acknowledged ${ledger.acknowledged.size}, refused ${ledger.refused.size}, outcome unknown ${ledger.unknown.size}`,
        `lost 0, refused but recorded 0, balances exact; commit records left ${log[0]?.n}`,
      ].join("\n"),
    );
    await herd.end();
  });

  it("rolls back what was prepared but never decided when the coordinator dies in between", async () => {
    const c = cluster as HerdUp;
    const herd = await herdClient(c);
    // hold the commit records' table: deciding transactions wait there, their workers' parts prepared
    const holder = await serverClient(c, 0);
    await holder.query("BEGIN");
    await holder.query("LOCK TABLE herd.transactions IN EXCLUSIVE MODE");
    const ledger: Ledger = { acknowledged: new Set(), refused: new Set(), unknown: new Set() };
    const pending = [1, 2, 3, 4].map(async (i) => {
      const client = await herdClient(c);
      client.on("error", () => {});
      const id = 90_000_000 + i;
      try {
        await transfer(client, id, seeded(i));
        ledger.acknowledged.add(id);
      } catch {
        ledger.unknown.add(id);
      }
    });
    const deciding = await untilDecisionsWait(c, 4);
    await herd.end();
    // the coordinator dies with the lock still held: nothing was decided. Its deciding backends
    // die first: a backend outlives its killed postmaster for a moment, and the holder's, gone
    // with it, would let them take the lock and run the COMMIT herd pipelined after the records
    holder.on("error", () => {});
    for (const pid of deciding) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone already: the first one's death makes the postmaster end every other backend
      }
    }
    await killEverythingAndRestart();
    await holder.end().catch(() => {});
    await Promise.all(pending);
    expect(ledger.acknowledged.size).toBe(0);
    const after = await herdClient(cluster as HerdUp);
    for (const ordinal of [1, 2, 3]) {
      await within(15_000, `recovery finished herd-${ordinal}'s prepared parts`, async () => {
        return (await preparedTransactions(cluster as HerdUp, ordinal)).length === 0;
      });
    }
    // never decided: rolled back everywhere
    const there = await after.query("SELECT id FROM transfers WHERE id > 90000000");
    expect(there.rows).toEqual([]);
    await checkBank(after, { acknowledged: new Set(), refused: new Set([...ledger.unknown]), unknown: new Set() });
    await after.end();
  });

  it("commits what was decided but not finished on a worker when the coordinator dies in between", async () => {
    const c = cluster as HerdUp;
    for (const ordinal of [1, 2, 3]) {
      await within(15_000, `nothing prepared on herd-${ordinal} yet`, async () => {
        return (await preparedTransactions(c, ordinal)).length === 0;
      });
    }
    const holder = await serverClient(c, 0);
    holder.on("error", () => {});
    await holder.query("BEGIN");
    await holder.query("LOCK TABLE herd.transactions IN EXCLUSIVE MODE");
    const ledger: Ledger = { acknowledged: new Set(), refused: new Set(), unknown: new Set() };
    const pending = [1, 2, 3, 4].map(async (i) => {
      const client = await herdClient(c);
      client.on("error", () => {});
      const id = 95_000_000 + i;
      try {
        await transfer(client, id, seeded(100 + i));
        ledger.acknowledged.add(id);
      } catch {
        ledger.unknown.add(id);
      }
    });
    await untilDecisionsWait(c, 4);
    // the PostgreSQL of the worker with most parts prepared freezes; then the decisions are
    // recorded, the clients answered, and the other workers finish: its COMMIT PREPAREDs wait
    const counts = await Promise.all([1, 2, 3].map(async (ordinal) => (await preparedTransactions(c, ordinal)).length));
    const victim = 1 + counts.indexOf(Math.max(...counts));
    expect(counts[victim - 1]).toBeGreaterThan(0);
    const frozen = await freezePostgres(c, victim);
    await holder.query("ROLLBACK");
    if (SQL_PROCESSES > 1) {
      // several coordinator processes answer a commit once its COMMIT PREPAREDs are done (a reader
      // in another process could not wait for them): these clients wait for the frozen worker,
      // and the kill below leaves their outcome unknown to them; recovery still commits their parts
      await within(10_000, "the other workers' parts committed", async () => {
        const left = await Promise.all(
          [1, 2, 3].filter((o) => o !== victim).map(async (o) => (await preparedTransactions(c, o)).length),
        );
        return left.every((n) => n === 0);
      });
    } else {
      await Promise.all(pending);
      expect(ledger.acknowledged.size).toBe(4);
    }
    await holder.end().catch(() => {});
    const committedBefore = (await coordinatorLog()).split("recovery committed a prepared transaction").length;
    await killEverythingAndRestart(frozen);
    await Promise.all(pending);
    const after = await herdClient(cluster as HerdUp);
    for (const ordinal of [1, 2, 3]) {
      await within(15_000, `recovery finished herd-${ordinal}'s prepared parts`, async () => {
        return (await preparedTransactions(cluster as HerdUp, ordinal)).length === 0;
      });
    }
    // the frozen worker's parts were committed by recovery, from the commit records
    const committedAfter = (await coordinatorLog()).split("recovery committed a prepared transaction").length;
    expect(committedAfter - committedBefore).toBe(counts[victim - 1]);
    await within(60_000, "every placement active", async () =>
      (await placements(after)).every((p) => p.shardstate === 1),
    );
    await checkBank(after, ledger);
    expect(await divergentShards(cluster as HerdUp, after)).toEqual([]);
    await after.end();
  });
});
