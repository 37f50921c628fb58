import { execFileSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { createConnection } from "node:net";
import { join } from "node:path";
import { sleep } from "@herd/shared";
import type pg from "pg";
import { connectTo } from "../helpers/differential.js";
import type { HerdUp } from "../helpers/herd-up.js";

/**
 * What the fault tests share: clients of the cluster and of its servers directly, real kills of
 * real processes, and the checks that placements agree.
 */

/** The SQL port's password of `postgres` (herd up's default); a server's own is `cluster.internalPassword`. */
export const PASSWORD = "postgres";

/** A client of herd's SQL port. */
export function herdClient(cluster: HerdUp, options: Partial<pg.ClientConfig> = {}): Promise<pg.Client> {
  return connectTo({ host: "127.0.0.1", port: cluster.sqlPort, user: "postgres", password: PASSWORD, ...options });
}

/** `herd-<ordinal>`'s PostgreSQL port: the coordinator's at sqlPort + 1, worker i's at sqlPort + 1 + i. */
export function serverPort(cluster: HerdUp, ordinal: number): number {
  return cluster.sqlPort + 1 + ordinal;
}

/** A client of one server's PostgreSQL directly (not through herd). */
export function serverClient(cluster: HerdUp, ordinal: number): Promise<pg.Client> {
  return connectTo({
    host: "127.0.0.1",
    port: serverPort(cluster, ordinal),
    user: "postgres",
    password: cluster.internalPassword,
    database: "postgres",
    application_name: "herd-test",
  });
}

/** Runs `sql` on one server's PostgreSQL in a short-lived connection. */
export async function onServer<T extends pg.QueryResultRow = pg.QueryResultRow>(
  cluster: HerdUp,
  ordinal: number,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const client = await serverClient(cluster, ordinal);
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

/** The postmaster pid of `herd-<ordinal>`'s PostgreSQL. */
export async function postmasterPid(cluster: HerdUp, ordinal: number): Promise<number> {
  const pidFile = join(cluster.dataDir, `herd-${ordinal}`, "pgdata", "postmaster.pid");
  return Number((await readFile(pidFile, "utf8")).split("\n")[0]);
}

/**
 * kill -9 of a server's PostgreSQL (its bot restarts it, as it would in a Pod). One still
 * starting again after an earlier kill (no pid file yet) is waited for, up to 30 s.
 */
export async function killPostgres(cluster: HerdUp, ordinal: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      process.kill(await postmasterPid(cluster, ordinal), "SIGKILL");
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(100);
    }
  }
}

/** Waits until a server's PostgreSQL answers again. */
export async function untilServerAnswers(cluster: HerdUp, ordinal: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await onServer(cluster, ordinal, "SELECT 1");
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(100);
    }
  }
}

/** The bot process that supervises `herd-<ordinal>`'s PostgreSQL (its parent). */
export async function botOf(cluster: HerdUp, ordinal: number): Promise<number> {
  const postmaster = await postmasterPid(cluster, ordinal);
  return Number(execFileSync("ps", ["-o", "ppid=", "-p", String(postmaster)], { encoding: "utf8" }).trim());
}

/** A legacy CancelRequest for the session (processId, secretKey) on herd's SQL port. */
export function sendCancel(port: number, processId: number, secretKey: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const packet = Buffer.alloc(16);
    packet.writeInt32BE(16, 0);
    packet.writeInt32BE(80877102, 4);
    packet.writeInt32BE(processId, 8);
    packet.writeInt32BE(secretKey, 12);
    const socket = createConnection({ host: "127.0.0.1", port }, () => socket.end(packet));
    socket.on("close", () => resolve());
    socket.on("error", reject);
  });
}

/** The key a pg client was given (BackendKeyData). */
export function keyOf(client: pg.Client): { processId: number; secretKey: number } {
  const { processID, secretKey } = client as unknown as { processID: number; secretKey: number };
  return { processId: processID, secretKey };
}

/** The connections herd holds on a worker, by state (active, idle in transaction, …). */
export async function herdBackends(
  cluster: HerdUp,
  ordinal: number,
): Promise<{ state: string; query: string; seconds: number }[]> {
  return onServer(
    cluster,
    ordinal,
    `SELECT state, query, extract(epoch FROM now() - state_change)::float8 AS seconds
       FROM pg_stat_activity
      WHERE application_name = 'herd' AND backend_type = 'client backend' AND state <> 'idle'`,
  );
}

/**
 * Polls until `probe` is true (a probe that throws, say while a server restarts, counts as
 * false); resolves with the milliseconds it took, rejects after `timeoutMs`.
 */
export async function within(timeoutMs: number, what: string, probe: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  let last: unknown;
  for (;;) {
    try {
      if (await probe()) return Date.now() - started;
    } catch (error) {
      last = error;
    }
    if (Date.now() - started > timeoutMs)
      throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last: ${String(last)})` : ""}`);
    await sleep(50);
  }
}

/** One placement of a shard, as citus_shards lists it. */
export interface PlacementRow {
  readonly shardid: string;
  readonly shard_name: string;
  readonly nodeport: number;
  readonly shardstate: number;
  readonly table_name: string;
}

export async function placements(herd: pg.Client, table?: string): Promise<PlacementRow[]> {
  const { rows } = await herd.query<PlacementRow>(
    `SELECT shardid::text, shard_name::text, nodeport, shardstate, table_name::text FROM citus_shards
      WHERE $1::text IS NULL OR table_name::text = $1 ORDER BY shardid, nodeport`,
    [table ?? null],
  );
  return rows;
}

/** md5 of a shard table's rows (in a canonical order) on one worker. */
export async function shardDigest(cluster: HerdUp, placement: PlacementRow): Promise<{ md5: string; rows: number }> {
  const ordinal = placement.nodeport - cluster.sqlPort - 1;
  // the name comes from herd's own catalog (citus_shards), quoted as an identifier
  const name = placement.shard_name.replaceAll('"', '""');
  const [row] = await onServer<{ md5: string | null; rows: string }>(
    cluster,
    ordinal,
    `SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) AS md5, count(*) AS rows FROM "${name}" t`,
  );
  return { md5: row?.md5 ?? "empty", rows: Number(row?.rows ?? 0) };
}

/**
 * The shards whose active placements differ (by the md5 of their rows), with the digests; empty
 * when every pair of active placements is identical.
 */
export async function divergentShards(
  cluster: HerdUp,
  herd: pg.Client,
  table?: string,
): Promise<{ shardid: string; digests: string[] }[]> {
  const byShard = new Map<string, PlacementRow[]>();
  for (const placement of await placements(herd, table)) {
    if (placement.shardstate !== 1) continue;
    byShard.set(placement.shardid, [...(byShard.get(placement.shardid) ?? []), placement]);
  }
  const divergent: { shardid: string; digests: string[] }[] = [];
  for (const [shardid, active] of byShard) {
    const digests = await Promise.all(active.map((placement) => shardDigest(cluster, placement)));
    if (new Set(digests.map((digest) => digest.md5)).size > 1)
      divergent.push({ shardid, digests: digests.map((d, i) => `${active[i]?.nodeport}:${d.rows}:${d.md5}`) });
  }
  return divergent;
}

/** Prepared transactions left on a server. */
export async function preparedTransactions(cluster: HerdUp, ordinal: number): Promise<string[]> {
  return (await onServer<{ gid: string }>(cluster, ordinal, "SELECT gid FROM pg_prepared_xacts")).map((row) => row.gid);
}

/**
 * Takes a worker away as a node drain or a crash does, and keeps it away: its bot is frozen
 * (SIGSTOP, so it cannot restart PostgreSQL) and its PostgreSQL killed. `back()` lets the bot go
 * on, which starts PostgreSQL again.
 */
export async function takeWorkerAway(cluster: HerdUp, ordinal: number): Promise<{ back(): Promise<void> }> {
  const postmaster = await postmasterPid(cluster, ordinal);
  const bot = await botOf(cluster, ordinal);
  process.kill(bot, "SIGSTOP");
  process.kill(postmaster, "SIGKILL");
  // its port closes once the postmaster is gone (a zombie: its frozen parent cannot reap it)
  for (let i = 0; i < 100; i += 1) {
    const state = execFileSync("ps", ["-o", "stat=", "-p", String(postmaster)], { encoding: "utf8" }).trim();
    if (state === "" || state.startsWith("Z")) break;
    await sleep(50);
  }
  let resumed = false;
  return {
    async back() {
      if (resumed) return;
      resumed = true;
      process.kill(bot, "SIGCONT");
      await untilServerAnswers(cluster, ordinal);
    },
  };
}

/**
 * Freezes a server's PostgreSQL (SIGSTOP to the postmaster and every process it started: each
 * runs in a session of its own, so the postmaster's group is not enough). It answers nothing
 * until killed; nothing it was asked to do completes. Resolves with the frozen pids.
 */
export async function freezePostgres(cluster: HerdUp, ordinal: number): Promise<number[]> {
  const postmaster = await postmasterPid(cluster, ordinal);
  process.kill(postmaster, "SIGSTOP");
  const children = execFileSync("ps", ["-o", "pid=", "--ppid", String(postmaster)], { encoding: "utf8" })
    .split("\n")
    .map((line) => Number(line.trim()))
    .filter((pid) => pid > 0);
  for (const pid of children) process.kill(pid, "SIGSTOP");
  // (its backends rewrite their environment for their ps titles: kill them by pid, not by name)
  return [postmaster, ...children];
}
