import { type ChildProcess, spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import { closeSync, openSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { makeVerifier, quoteLiteral, verifierText } from "@herd/coordinator/server-setup";
import { Backoff, Defaults, errorMessage, HerdError, type Logger, SqlState, sleep } from "@herd/shared";
import pg from "pg";
import { inspectDataDirectory } from "./data-directory.js";
import { initdb } from "./initdb.js";
import type { PgBinaries } from "./pg-binaries.js";
import { POSTGRES_MAJOR } from "./pg-binaries.js";
import { livePostmasterPid, waitForExit } from "./postmaster-pid.js";
import { assertTraversable, chownTree, type RunAs } from "./run-as.js";

export interface PostgresServerOptions {
  readonly binaries: PgBinaries;
  /** The cluster's data directory (PGDATA). */
  readonly dataDir: string;
  readonly port: number;
  /** `listen_addresses`: "127.0.0.1" locally and for the coordinator's own server, "*" on workers. */
  readonly listenAddresses: string;
  readonly superuserPassword: string;
  /**
   * Passwords the superuser may still have from before (a volume made when herd logged in with
   * the SQL password): when one works and `superuserPassword` does not, the superuser's password
   * is changed to `superuserPassword` at start.
   */
  readonly formerSuperuserPasswords?: readonly string[];
  /** Where PostgreSQL's own stderr goes. */
  readonly logFile: string;
  readonly runAs: RunAs | undefined;
  readonly logger: Logger;
  /** Extra `-c name=value` settings; they win over herd's. */
  readonly settings?: Readonly<Record<string, string>>;
  readonly startTimeoutMs?: number;
  /** Grace periods of the smart → fast → immediate shutdown ladder. */
  readonly stopTimeoutsMs?: { readonly smart: number; readonly fast: number; readonly immediate: number };
  readonly restartBackoff?: { readonly initialMs: number; readonly maxMs: number };
  /** Give up (emit "failed") after this many restarts that each ran less than `stableAfterMs`. */
  readonly maxQuickRestarts?: number;
  readonly stableAfterMs?: number;
}

/**
 * What every herd PostgreSQL needs: two-phase commit for distributed writes, connections for the
 * coordinator's pools, logical WAL for online shard moves, no work left running for a client that
 * is gone, and TCP only (no Unix socket, whose
 * path length and directory permissions vary by machine).
 */
export function baseSettings(options: Pick<PostgresServerOptions, "port" | "listenAddresses">): Record<string, string> {
  return {
    port: String(options.port),
    listen_addresses: options.listenAddresses,
    unix_socket_directories: "",
    max_connections: "300",
    max_prepared_transactions: "300",
    wal_level: "logical",
    // a backend whose client vanished (a coordinator killed or cut off) stops its query within a second
    client_connection_check_interval: "1000",
    password_encryption: "scram-sha-256",
    logging_collector: "off",
    log_line_prefix: "%m [%p] ",
  };
}

type ServerEvents = {
  /** PostgreSQL died without being asked to; a restart follows unless "failed" is emitted. */
  crashed: [{ code: number | null; signal: NodeJS.Signals | null }];
  restarted: [{ pid: number; restarts: number }];
  /** Restarts kept failing; the server stays down. */
  failed: [Error];
};

/**
 * Supervises one PostgreSQL server: initdb when the data directory is empty, start it as a child,
 * wait until it accepts connections, restart it with a bounded backoff when it dies unexpectedly,
 * and stop it with the smart → fast → immediate ladder.
 */
export class PostgresServer extends EventEmitter<ServerEvents> {
  private child: ChildProcess | undefined;
  /** The child that reached readiness: only its death is a crash worth a restart. */
  private supervised: ChildProcess | undefined;
  private restarting: Promise<void> | undefined;
  private exited: Promise<void> = Promise.resolve();
  private stopping = false;
  private stopRequested = new AbortController();
  private quickRestarts = 0;
  private restartCount = 0;
  private readonly backoff: Backoff;

  constructor(private readonly options: PostgresServerOptions) {
    super();
    const restart = options.restartBackoff ?? { initialMs: 500, maxMs: 15_000 };
    this.backoff = new Backoff(restart);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get restarts(): number {
    return this.restartCount;
  }

  /** Connection settings for a client of this server (as the superuser). */
  connectionConfig(database: string = Defaults.database): pg.ClientConfig {
    const host =
      this.options.listenAddresses === "*" ? "127.0.0.1" : this.options.listenAddresses.split(",")[0]?.trim();
    return {
      host,
      port: this.options.port,
      user: Defaults.superuser,
      password: this.options.superuserPassword,
      database,
    };
  }

  /** Prepares the data directory (initdb when empty) and starts PostgreSQL; resolves when it accepts connections. */
  async start(): Promise<void> {
    const { dataDir, runAs, logger } = this.options;
    this.stopping = false;
    this.stopRequested = new AbortController();
    await mkdir(dirname(dataDir), { recursive: true });
    if (runAs) {
      // both the data and the binaries (inside node_modules, perhaps under /root) must be reachable
      await assertTraversable(dataDir, runAs);
      await assertTraversable(this.options.binaries.postgres, runAs);
    }
    const state = await inspectDataDirectory(dataDir, POSTGRES_MAJOR);
    if (state.kind !== "initialized") {
      logger.info("initializing a new PostgreSQL cluster", { data_dir: dataDir });
      await initdb({
        binaries: this.options.binaries,
        dataDir,
        superuserPassword: this.options.superuserPassword,
        runAs,
      });
    } else if (runAs) {
      await chownTree(dataDir, runAs);
    }
    await this.stopLeftoverPostmaster();
    await this.spawnAndWait();
  }

  /** Stops PostgreSQL: smart, then fast, then immediate shutdown, then SIGKILL. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.stopRequested.abort();
    await this.restarting;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const timeouts = this.options.stopTimeoutsMs ?? { smart: 3_000, fast: 30_000, immediate: 10_000 };
    const ladder: [NodeJS.Signals, number, string][] = [
      ["SIGTERM", timeouts.smart, "smart"],
      ["SIGINT", timeouts.fast, "fast"],
      ["SIGQUIT", timeouts.immediate, "immediate"],
      ["SIGKILL", 10_000, "kill"],
    ];
    for (const [signal, timeoutMs, mode] of ladder) {
      this.options.logger.debug("stopping PostgreSQL", { mode, pid: child.pid });
      child.kill(signal);
      const done = await Promise.race([this.exited.then(() => true), sleep(timeoutMs).then(() => false)]);
      if (done) {
        this.options.logger.info("PostgreSQL stopped", { mode });
        return;
      }
    }
  }

  /** True when PostgreSQL answers `SELECT 1` right now. */
  async isReady(timeoutMs = 2_000): Promise<boolean> {
    return (await this.probe(this.options.superuserPassword, timeoutMs)) === "ready";
  }

  private async probe(password: string, timeoutMs: number, then?: (client: pg.Client) => Promise<void>) {
    const client = new pg.Client({ ...this.connectionConfig(), password, connectionTimeoutMillis: timeoutMs });
    client.on("error", () => {});
    try {
      await client.connect();
      await client.query("SELECT 1");
      await then?.(client);
      return "ready";
    } catch (error) {
      return (error as { code?: string }).code === "28P01" ? "wrong-password" : "down";
    } finally {
      await client.end().catch(() => {});
    }
  }

  /** The superuser still has a former password: give it the current one. */
  private async adoptPassword(): Promise<boolean> {
    const verifier = verifierText(makeVerifier(this.options.superuserPassword));
    for (const former of this.options.formerSuperuserPasswords ?? []) {
      const outcome = await this.probe(former, 1_000, async (client) => {
        await client.query(`ALTER ROLE ${Defaults.superuser} PASSWORD ${quoteLiteral(verifier)}`);
      });
      if (outcome === "ready") {
        this.options.logger.info("the superuser's password was changed to the cluster's internal password");
        return true;
      }
    }
    return false;
  }

  /**
   * A bot that was killed (SIGKILL, OOM) leaves its PostgreSQL running without a supervisor. The
   * new bot stops that server cleanly before starting its own, instead of failing on the lock.
   */
  private async stopLeftoverPostmaster(): Promise<void> {
    const pid = await livePostmasterPid(this.options.dataDir);
    if (pid === undefined) return;
    this.options.logger.warn("stopping a PostgreSQL left running by a previous process", { pid });
    for (const [signal, timeoutMs] of [
      ["SIGINT", 30_000],
      ["SIGQUIT", 10_000],
      ["SIGKILL", 10_000],
    ] as const) {
      process.kill(pid, signal);
      if (await waitForExit(pid, timeoutMs)) return;
    }
    throw new HerdError(`PostgreSQL (pid ${pid}) on ${this.options.dataDir} does not stop`, {
      sqlState: SqlState.objectInUse,
    });
  }

  private async spawnAndWait(): Promise<void> {
    const { binaries, dataDir, runAs } = this.options;
    const settings = { ...baseSettings(this.options), ...this.options.settings };
    const args = ["-D", dataDir];
    for (const [name, value] of Object.entries(settings)) args.push("-c", `${name}=${value}`);
    const log = openSync(this.options.logFile, "a");
    let child: ChildProcess;
    try {
      // detached: its own process group, so a terminal's Ctrl-C reaches only the supervisor,
      // which then stops PostgreSQL in order.
      child = spawn(binaries.postgres, args, {
        stdio: ["ignore", log, log],
        detached: true,
        uid: runAs?.uid,
        gid: runAs?.gid,
      });
    } finally {
      closeSync(log);
    }
    this.child = child;
    const startedAt = Date.now();
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        resolve();
        this.onExit(child, startedAt, code, signal);
      });
    });
    child.once("error", (error) => this.options.logger.error("cannot spawn postgres", { error: error.message }));
    await this.waitUntilReady(child);
    this.supervised = child;
    this.options.logger.info("PostgreSQL accepts connections", { pid: child.pid, port: this.options.port });
  }

  private async waitUntilReady(child: ChildProcess): Promise<void> {
    const deadline = Date.now() + (this.options.startTimeoutMs ?? 120_000);
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new HerdError(`PostgreSQL exited while starting (${child.exitCode ?? child.signalCode})`, {
          sqlState: SqlState.cannotConnectNow,
          detail: await this.logTail(),
        });
      }
      const outcome = await this.probe(this.options.superuserPassword, 1_000);
      if (outcome === "ready") return;
      if (outcome === "wrong-password" && (await this.adoptPassword())) continue;
      await sleep(100);
    }
    throw new HerdError(`PostgreSQL did not accept connections on port ${this.options.port} in time`, {
      sqlState: SqlState.cannotConnectNow,
      detail: await this.logTail(),
    });
  }

  private onExit(child: ChildProcess, startedAt: number, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.stopping || this.supervised !== child) return;
    this.options.logger.error("PostgreSQL exited unexpectedly", { code, signal, pid: child.pid });
    this.emit("crashed", { code, signal });
    if (Date.now() - startedAt >= (this.options.stableAfterMs ?? 60_000)) {
      this.backoff.reset();
      this.quickRestarts = 0;
    }
    this.restarting = this.restart().finally(() => {
      this.restarting = undefined;
    });
  }

  private async restart(): Promise<void> {
    while (!this.stopping) {
      this.quickRestarts += 1;
      if (this.quickRestarts > (this.options.maxQuickRestarts ?? 8)) {
        const error = new HerdError("PostgreSQL keeps crashing; giving up on restarts", {
          sqlState: SqlState.cannotConnectNow,
          detail: await this.logTail(),
        });
        this.options.logger.error(error.message);
        this.emit("failed", error);
        return;
      }
      const delay = this.backoff.next();
      this.options.logger.info("restarting PostgreSQL", { in_ms: delay, attempt: this.quickRestarts });
      await sleep(delay, this.stopRequested.signal);
      if (this.stopping) return;
      try {
        await this.stopLeftoverPostmaster();
        await this.spawnAndWait();
        this.restartCount += 1;
        this.emit("restarted", { pid: this.child?.pid ?? 0, restarts: this.restartCount });
        return;
      } catch (error) {
        this.options.logger.warn("restart attempt failed", { error: errorMessage(error) });
        // a child that started but never became ready must not linger
        this.child?.kill("SIGKILL");
      }
    }
  }

  private async logTail(lines = 15): Promise<string> {
    try {
      const text = await readFile(this.options.logFile, "utf8");
      return text.trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "";
    }
  }
}
