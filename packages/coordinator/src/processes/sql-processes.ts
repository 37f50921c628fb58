import { type ChildProcess, fork } from "node:child_process";
import type { Server } from "node:net";
import { fileURLToPath } from "node:url";
import { errorMessage, type Logger } from "@herd/shared";
import type { ClusterJobs, ClusterServices } from "../executor/execution-port.js";
import type { SessionSlots } from "../protocol/session-slots.js";
import { mergeAnswers, type PeerCall, peersThrough } from "./peer-operations.js";
import type { Peers } from "./peers.js";
import { ProcessLink } from "./process-link.js";
import type { SqlProcessConfig } from "./sql-process-config.js";

const ENTRY = fileURLToPath(new URL("./sql-process-main.js", import.meta.url));
/** How long a peer operation waits for one process (a stuck process must not hold a client's COMMIT). */
const PEER_TIMEOUT_MS = 10_000;
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 20_000;
const RESTART_DELAY_MS = 1_000;

interface Child {
  readonly index: number;
  readonly process: ChildProcess;
  readonly link: ProcessLink;
}

export interface SqlProcessesOptions {
  /** Processes serving the SQL port in all, this one included. */
  readonly count: number;
  /** What each other process needs to start (everything but its index). */
  readonly config: Omit<SqlProcessConfig, "index" | "processes">;
  /** The SQL port, opened by this process. */
  readonly listening: Server;
  /** This process's cluster services, which the others call on (moves, jobs, recovery, roles). */
  readonly cluster: ClusterServices;
  /** The session slots of every process (the others take theirs through the link). */
  readonly slots: SessionSlots;
  /** This process's own part of a peer operation. */
  readonly here: (call: PeerCall) => Promise<unknown>;
  readonly logger: Logger;
}

/**
 * The other coordinator processes, started and supervised by the first (the bot's): each is a
 * forked Node process (sql-process-main.ts) given the SQL port's listening socket, so that all
 * accept from one port and use every core. They serve SQL only: background work (recovery,
 * repair, deadlock detection, jobs, role sync, the admin API) stays in the first, which they call
 * for cluster services. The first relays peer operations between them (peers.ts). A process that
 * dies is started again (its clients lose their sessions, as with a crashed PostgreSQL backend).
 */
export class SqlProcesses {
  private readonly children = new Map<number, Child>();
  private stopping = false;

  constructor(private readonly options: SqlProcessesOptions) {}

  /** The other processes as this (the first) one reaches them. */
  readonly peers: Peers = peersThrough(
    () => this.options.count - 1,
    (call) => this.ask(call),
  );

  async start(): Promise<void> {
    const starting = [];
    for (let index = 1; index < this.options.count; index += 1) starting.push(this.fork(index));
    await Promise.all(starting);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(
      [...this.children.values()].map(async (child) => {
        const exited = new Promise<void>((resolve) => {
          if (child.process.exitCode !== null || child.process.signalCode !== null) resolve();
          else child.process.once("exit", () => resolve());
        });
        await child.link
          .request("stop", undefined, undefined, STOP_TIMEOUT_MS)
          .catch(() => child.process.kill("SIGKILL"));
        await exited;
      }),
    );
    this.children.clear();
  }

  private async fork(index: number): Promise<void> {
    const { logger } = this.options;
    const forked = fork(ENTRY, [], { stdio: "inherit", serialization: "json" });
    const link = new ProcessLink(forked, `sql-${index}`);
    const child: Child = { index, process: forked, link };
    this.children.set(index, child);
    link.handle("cluster", (payload) => this.callCluster(payload as ClusterCall));
    link.handle("peers", (payload) => this.ask(payload as PeerCall, index));
    link.handle("admit", (payload) => {
      this.options.slots.take(index, (payload as { superuser: boolean }).superuser);
      return null;
    });
    link.handle("release", () => {
      this.options.slots.release(index);
      return null;
    });
    forked.on("exit", (code, signal) => {
      if (this.children.get(index) === child) this.children.delete(index);
      // its sessions are gone with it
      this.options.slots.dropHolder(index);
      if (this.stopping) return;
      logger.error("a coordinator process exited; starting it again", { process: index, code, signal });
      setTimeout(() => {
        if (!this.stopping) void this.fork(index).catch(() => {});
      }, RESTART_DELAY_MS).unref();
    });
    try {
      const config: SqlProcessConfig = { ...this.options.config, index, processes: this.options.count };
      await link.request("start", config, undefined, START_TIMEOUT_MS);
      await link.request("serve", undefined, this.options.listening, START_TIMEOUT_MS);
      logger.info("coordinator process serving", { process: index, pid: forked.pid });
    } catch (error) {
      logger.error("a coordinator process did not start", { process: index, error: errorMessage(error) });
      forked.kill("SIGKILL");
      throw error;
    }
  }

  /**
   * Runs a peer operation on every process but `from` (this one included when the request came
   * from another) and merges the answers; a process that cannot answer is left out.
   */
  private async ask(call: PeerCall, from?: number): Promise<unknown> {
    const answers = await Promise.allSettled([
      ...(from === undefined ? [] : [this.options.here(call)]),
      ...[...this.children.values()]
        // (a process still starting too: a change it missed in its first catalog load must reach it)
        .filter((child) => child.index !== from)
        .map((child) => child.link.request("local", call, undefined, PEER_TIMEOUT_MS)),
    ]);
    for (const answer of answers) {
      if (answer.status === "rejected") {
        this.options.logger.warn("a coordinator process did not answer", {
          operation: call.kind,
          error: errorMessage(answer.reason),
        });
      }
    }
    return mergeAnswers(
      call.kind,
      answers.flatMap((answer) => (answer.status === "fulfilled" ? [answer.value] : [])),
    );
  }

  private async callCluster(call: ClusterCall): Promise<unknown> {
    const { cluster } = this.options;
    if (call.service === "jobs") {
      const jobs = cluster.jobs();
      if (!jobs) throw new Error("the job runner is not started yet");
      if (!JOB_METHODS.includes(call.method as JobMethod)) throw new Error(`no job method ${call.method}`);
      const method = jobs[call.method as JobMethod] as (...args: unknown[]) => Promise<unknown>;
      return method.apply(jobs, [...call.args]);
    }
    if (!CLUSTER_METHODS.includes(call.method as ClusterMethod)) throw new Error(`no cluster method ${call.method}`);
    const method = cluster[call.method as ClusterMethod] as (...args: unknown[]) => Promise<unknown>;
    return method.apply(cluster, [...call.args]);
  }
}

/** The cluster services another process may call on. */
export const CLUSTER_METHODS = [
  "recoverPreparedTransactions",
  "copyShardPlacement",
  "moveShardPlacement",
  "replicateReferenceTables",
  "syncRoles",
] as const satisfies readonly (keyof ClusterServices)[];
export type ClusterMethod = (typeof CLUSTER_METHODS)[number];
export const JOB_METHODS = [
  "plan",
  "startRebalance",
  "startDrain",
  "list",
  "wait",
] as const satisfies readonly (keyof ClusterJobs)[];
export type JobMethod = (typeof JOB_METHODS)[number];

/** A call of another process on this one's cluster services. */
export interface ClusterCall {
  readonly service: "cluster" | "jobs";
  readonly method: string;
  readonly args: readonly unknown[];
}
