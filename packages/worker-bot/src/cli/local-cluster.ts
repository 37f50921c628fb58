import { type ChildProcess, fork } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Backoff, HerdError, type NodeListJson, SqlState, sleep } from "@herd/shared";
import { livePostmasterPid, waitForExit } from "../postgres/postmaster-pid.js";
import type { PortLayout } from "./port-layout.js";

export interface LocalClusterOptions {
  readonly name: string;
  readonly dataDir: string;
  readonly workers: number;
  readonly ports: PortLayout;
  readonly clusterId: string;
  readonly adminToken: string;
  readonly password: string;
  /** herd's own password (cluster.json). */
  readonly internalPassword: string;
  readonly shardCount: number;
  readonly replicationFactor: number;
  /** HERD_AUTO_REBALANCE for the coordinator (default on). */
  readonly autoRebalance?: boolean;
  /** HERD_REPLACE_LOST_AFTER_S for the coordinator; undefined: the environment's or the default. */
  readonly replaceLostAfterS?: number;
  /** Progress lines for the person at the terminal. */
  readonly say: (line: string) => void;
  readonly startTimeoutMs?: number;
  /** Extra environment for every bot (tests shorten heartbeats with it). */
  readonly botEnv?: Readonly<Record<string, string>>;
}

interface Member {
  readonly ordinal: number;
  readonly podName: string;
  child: ChildProcess | undefined;
  exited: Promise<void>;
  readonly restarts: Backoff;
}

const BOT_ENTRY = fileURLToPath(new URL("./main.js", import.meta.url));

/**
 * `herd up` playing a StatefulSet on this machine: one bot process per ordinal, each with the
 * environment a Pod would give it, its own volume under the data directory and its own log file.
 * Like the kubelet, it restarts a bot that dies; unlike it, it also stops them all on Ctrl-C.
 */
export class LocalCluster {
  private readonly members: Member[] = [];
  private stopping = false;

  constructor(private readonly options: LocalClusterOptions) {
    for (let ordinal = 0; ordinal <= options.workers; ordinal += 1) {
      this.members.push({
        ordinal,
        podName: `${options.name}-${ordinal}`,
        child: undefined,
        exited: Promise.resolve(),
        restarts: new Backoff({ initialMs: 1_000, maxMs: 30_000 }),
      });
    }
  }

  get adminUrl(): string {
    return `http://127.0.0.1:${this.options.ports.adminPort}`;
  }

  logFile(ordinal: number): string {
    return join(this.options.dataDir, "logs", `${this.options.name}-${ordinal}.log`);
  }

  /** Starts every bot and waits until the coordinator is ready and every worker registered. */
  async start(): Promise<void> {
    await mkdir(join(this.options.dataDir, "logs"), { recursive: true });
    for (const member of this.members) this.spawn(member);
    await this.waitUntilUp();
  }

  /**
   * SIGTERM to the coordinator's bot first (it finishes the commits under way, which need the
   * workers), then to the workers'; SIGKILL to any that outstays `graceMs`; then no PostgreSQL
   * may be left.
   */
  async stop(graceMs = 60_000): Promise<void> {
    this.stopping = true;
    const running = this.members.filter(
      (member) => member.child && member.child.exitCode === null && member.child.signalCode === null,
    );
    const coordinator = running.filter((member) => member.ordinal === 0);
    const workers = running.filter((member) => member.ordinal !== 0);
    await this.stopMembers(coordinator, graceMs);
    await this.stopMembers(workers, graceMs);
    // A bot killed above leaves its PostgreSQL behind: stop those too.
    for (const member of this.members) {
      const pid = await livePostmasterPid(join(this.volumeDir(member.ordinal), "pgdata"));
      if (pid === undefined) continue;
      process.kill(pid, "SIGINT");
      if (!(await waitForExit(pid, 30_000))) process.kill(pid, "SIGKILL");
    }
  }

  private async stopMembers(running: readonly Member[], graceMs: number): Promise<void> {
    for (const member of running) member.child?.kill("SIGTERM");
    await Promise.all(
      running.map(async (member) => {
        const done = await Promise.race([member.exited.then(() => true), sleep(graceMs).then(() => false)]);
        if (!done) {
          this.options.say(`  ! ${member.podName} did not stop in ${graceMs / 1000}s; killing it`);
          member.child?.kill("SIGKILL");
          await member.exited;
        }
        // what the bot started in its own process group (the coordinator's other processes) goes
        // with it, as everything in a pod goes when its PID 1 exits
        const pid = member.child?.pid;
        if (pid !== undefined) {
          try {
            process.kill(-pid, "SIGKILL");
          } catch {
            // nothing left in the group
          }
        }
      }),
    );
  }

  private volumeDir(ordinal: number): string {
    return join(this.options.dataDir, `${this.options.name}-${ordinal}`);
  }

  private botEnv(member: Member): NodeJS.ProcessEnv {
    const { ports } = this.options;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...this.options.botEnv,
      POD_NAME: member.podName,
      HERD_CLUSTER_ID: this.options.clusterId,
      HERD_DATA_DIR: this.volumeDir(member.ordinal),
      HERD_PG_PORT: String(ports.pgPort(member.ordinal)),
      HERD_PG_LISTEN: "127.0.0.1",
      HERD_ADVERTISE_HOST: "127.0.0.1",
      HERD_SQL_HOST: "127.0.0.1",
      HERD_SQL_PORT: String(ports.sqlPort),
      HERD_ADMIN_HOST: "127.0.0.1",
      HERD_ADMIN_PORT: String(ports.probePort(member.ordinal)),
      HERD_COORDINATOR_URL: this.adminUrl,
      HERD_ADMIN_TOKEN: this.options.adminToken,
      HERD_PASSWORD: this.options.password,
      HERD_INTERNAL_PASSWORD: this.options.internalPassword,
      HERD_SHARD_COUNT: String(this.options.shardCount),
      HERD_REPLICATION_FACTOR: String(this.options.replicationFactor),
      ...(this.options.autoRebalance === false ? { HERD_AUTO_REBALANCE: "off" } : {}),
      ...(this.options.replaceLostAfterS === undefined
        ? {}
        : { HERD_REPLACE_LOST_AFTER_S: String(this.options.replaceLostAfterS) }),
    };
    delete env.HERD_HEADLESS_SERVICE;
    delete env.KUBERNETES_SERVICE_HOST;
    return env;
  }

  private spawn(member: Member): void {
    const log = openSync(this.logFile(member.ordinal), "a");
    // fork: an IPC channel lets the bot notice when herd up itself dies, and stop.
    const child = fork(BOT_ENTRY, ["bot"], {
      env: this.botEnv(member),
      stdio: ["ignore", log, log, "ipc"],
      detached: true,
    });
    closeSync(log);
    member.child = child;
    const startedAt = Date.now();
    member.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        resolve();
        if (!this.stopping) void this.onUnexpectedExit(member, startedAt, code ?? signal);
      });
    });
  }

  private async onUnexpectedExit(member: Member, startedAt: number, how: number | string | null): Promise<void> {
    if (Date.now() - startedAt > 60_000) member.restarts.reset();
    const delay = member.restarts.next();
    this.options.say(
      `  ! ${member.podName} exited (${how}); restarting in ${(delay / 1000).toFixed(1)}s — see ${this.logFile(member.ordinal)}`,
    );
    await sleep(delay);
    if (!this.stopping) this.spawn(member);
  }

  private async waitUntilUp(): Promise<void> {
    const started = Date.now();
    const deadline = started + (this.options.startTimeoutMs ?? 120_000);
    const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
    const announced = new Set<string>();
    const workerNames = this.members.slice(1).map((member) => member.podName);
    while (Date.now() < deadline) {
      if (this.stopping) throw new HerdError("stopped while starting", { sqlState: SqlState.adminShutdown });
      const early = this.members.find(
        (member) => member.child?.exitCode !== null && member.child?.exitCode !== undefined,
      );
      if (early) {
        throw new HerdError(`${early.podName} exited while starting`, {
          sqlState: SqlState.cannotConnectNow,
          detail: await this.logTail(early.ordinal),
        });
      }
      if (!announced.has("coordinator") && (await this.get("/readyz")).ok) {
        announced.add("coordinator");
        this.options.say(`  ✓ ${this.members[0]?.podName} coordinator ready (${elapsed()})`);
      }
      if (announced.has("coordinator")) {
        const response = await this.get("/v1/nodes");
        if (response.ok) {
          const { nodes } = (await response.json()) as NodeListJson;
          for (const node of nodes) {
            // at this run's address: a record left by an earlier run on other ports reads active
            // until it goes silent, though its bot has not registered (and been verified) yet
            const member = this.members.find((m) => m.podName === node.name);
            const here = member !== undefined && node.port === this.options.ports.pgPort(member.ordinal);
            if (workerNames.includes(node.name) && node.state === "active" && here && !announced.has(node.name)) {
              announced.add(node.name);
              this.options.say(`  ✓ ${node.name} worker registered as node ${node.id} (${elapsed()})`);
            }
          }
        }
        if (workerNames.every((name) => announced.has(name))) return;
      }
      await sleep(200);
    }
    const missing = this.members.filter((m) => !announced.has(m.ordinal === 0 ? "coordinator" : m.podName));
    throw new HerdError(`the cluster did not come up in time: ${missing.map((m) => m.podName).join(", ")} not ready`, {
      sqlState: SqlState.cannotConnectNow,
      detail: (await Promise.all(missing.map((m) => this.logTail(m.ordinal)))).join("\n"),
    });
  }

  private async get(path: string): Promise<Response> {
    try {
      return await fetch(new URL(path, this.adminUrl), {
        headers: { authorization: `Bearer ${this.options.adminToken}` },
        signal: AbortSignal.timeout(2_000),
      });
    } catch {
      return new Response(null, { status: 599 });
    }
  }

  private async logTail(ordinal: number, lines = 12): Promise<string> {
    try {
      const text = await readFile(this.logFile(ordinal), "utf8");
      const tail = text.trimEnd().split("\n").slice(-lines);
      return [`--- last lines of ${this.logFile(ordinal)}`, ...tail].join("\n");
    } catch {
      return "";
    }
  }
}
