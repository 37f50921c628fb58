import { type ChildProcess, spawn } from "node:child_process";
import { cp, readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { sleep } from "@herd/shared";
import { afterAll, afterEach, beforeAll } from "vitest";
import { freePortRange } from "./ports.js";
import { processesMentioning } from "./processes.js";
import { scratchDir } from "./scratch-dir.js";
import { serverStates } from "./server-states.js";

export const REPO = join(import.meta.dirname, "..", "..");
export const HERD_CLI = join(REPO, "packages", "worker-bot", "dist", "cli", "main.js");

export interface HerdUp {
  readonly child: ChildProcess;
  readonly dataDir: string;
  readonly sqlPort: number;
  readonly adminPort: number;
  readonly token: string;
  /**
   * herd's own password (cluster.json): the superuser `postgres`'s on every PostgreSQL of the
   * cluster, for tests that look at a server directly. The SQL port's `postgres` password is not it.
   */
  readonly internalPassword: string;
  output(): string;
  /** GET/POST/DELETE on the admin API with the cluster's token. */
  admin(path: string, init?: RequestInit): Promise<Response>;
  /** Sends `signal` (Ctrl-C by default) and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface HerdUpOptions {
  readonly dataDir: string;
  readonly workers?: number;
  readonly env?: Record<string, string>;
  /** Run through `pnpm start` (the README's command) instead of the CLI itself. */
  readonly viaPnpmStart?: boolean;
  readonly ports?: { readonly sqlPort: number; readonly adminPort: number };
}

/** Ports for a local cluster of `workers` workers: two disjoint free ranges. */
export async function clusterPorts(workers: number): Promise<{ sqlPort: number; adminPort: number }> {
  for (;;) {
    const sqlPort = await freePortRange(workers + 2);
    const adminPort = await freePortRange(workers + 1);
    if (adminPort > sqlPort + workers + 1 || adminPort + workers < sqlPort) return { sqlPort, adminPort };
  }
}

/**
 * Starts `herd up` as a separate process and waits until it says the cluster is up. Free ports
 * are picked at random while other test files start servers too; when one is taken between the
 * pick and herd's start (or PostgreSQL's), the start is retried on other ports, in an emptied
 * data directory.
 */
export async function startHerdUp(options: HerdUpOptions): Promise<HerdUp> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await startHerdUpOnce(options);
    } catch (error) {
      // herd's own check, or a PostgreSQL that found its port taken after the check
      const portTaken = /port \d+ is not available|EADDRINUSE|Address already in use/.test((error as Error).message);
      if (!portTaken || options.ports || attempt >= 3) throw error;
      // what the failed start made (the cluster file, initdb's data directories) names its ports
      await emptyDirectory(options.dataDir);
    }
  }
}

async function startHerdUpOnce(options: HerdUpOptions): Promise<HerdUp> {
  const workers = options.workers ?? 3;
  const { sqlPort, adminPort } = options.ports ?? (await clusterPorts(workers));
  const flags = [
    "--workers",
    String(workers),
    "--port",
    String(sqlPort),
    "--admin-port",
    String(adminPort),
    "--data-dir",
    options.dataDir,
  ];
  const [command, args] = options.viaPnpmStart
    ? ["pnpm", ["--silent", "start", ...flags]]
    : [process.execPath, [HERD_CLI, "up", ...flags]];
  const child = spawn(command, args, {
    cwd: REPO,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
    // its own process group, so stop() can Ctrl-C it (and pnpm's children) as a terminal would
    detached: true,
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const deadline = Date.now() + 90_000;
  while (!output.includes("Press Ctrl-C to stop.")) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`herd up did not come up:\n${output}`);
    }
    await sleep(50);
  }
  const cluster = JSON.parse(await readFile(join(options.dataDir, "cluster.json"), "utf8")) as {
    adminToken: string;
    internalPassword: string;
  };
  const token = options.env?.HERD_ADMIN_TOKEN ?? cluster.adminToken;
  return {
    child,
    dataDir: options.dataDir,
    sqlPort,
    adminPort,
    token,
    internalPassword: cluster.internalPassword,
    output: () => output,
    admin: (path, init = {}) =>
      fetch(`http://127.0.0.1:${adminPort}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${token}`, ...(init.headers as Record<string, string>) },
      }),
    async stop(signal = "SIGINT") {
      try {
        if (child.exitCode === null && child.pid) process.kill(-child.pid, signal);
      } catch (error) {
        // its process group is gone already (a test killed every process of the cluster)
        if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
      }
      return exited;
    },
  };
}

/** Polls `probe` until it returns something other than undefined. */
export async function eventually<T>(
  probe: () => Promise<T | undefined>,
  timeoutMs = 30_000,
  what = "condition",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await sleep(100);
  }
  throw new Error(`${what} not reached in ${timeoutMs} ms${lastError ? `: ${String(lastError)}` : ""}`);
}

/** A `herd up` cluster shared by one test file's tests. */
export interface HerdFixture {
  readonly cluster: HerdUp;
  /** The scratch directory holding the cluster's data (and anything else the file puts there). */
  readonly dir: string;
}

/**
 * Registers hooks that start one `herd up` cluster in a scratch directory before the file's tests
 * and stop it and remove the directory after them; read `cluster` inside tests and hooks.
 */
export function useHerdCluster(name: string, options: Omit<HerdUpOptions, "dataDir"> = {}): HerdFixture {
  let scratch: { path: string; remove(): Promise<void> } | undefined;
  let cluster: HerdUp | undefined;
  beforeAll(async () => {
    scratch = await scratchDir(name);
    cluster = await startHerdUp({ ...options, dataDir: scratch.path });
  });
  afterEach(async ({ task }) => {
    // what herd logged while a test failed (or timed out) is the only trace of why: show its tails
    if (task.result?.state !== "fail" || !cluster) return;
    console.error(`--- herd up while "${task.name}" failed ---\n${await logTails(cluster)}`);
    const ordinals = (await readdir(join(cluster.dataDir, "logs")).catch(() => []))
      .map((file) => /^herd-(\d+)\.log$/.exec(file)?.[1])
      .filter((ordinal) => ordinal !== undefined)
      .map(Number);
    console.error(
      `--- its servers then ---\n${await serverStates(cluster.sqlPort, cluster.internalPassword, ordinals)}`,
    );
    // HERD_TEST_KEEP_LOGS=<dir>: the whole logs, kept past the scratch directory's removal
    const keep = process.env.HERD_TEST_KEEP_LOGS;
    if (keep) {
      const kept = join(keep, `${name}-${Date.now()}`);
      await cp(join(cluster.dataDir, "logs"), kept, { recursive: true }).catch(() => {});
      console.error(`herd up's logs kept in ${kept}`);
    }
  });
  afterAll(async () => {
    await cluster?.stop();
    await scratch?.remove();
  });
  return {
    get cluster() {
      if (!cluster) throw new Error("the cluster is not started yet (use it inside tests or hooks)");
      return cluster;
    },
    get dir() {
      if (!scratch) throw new Error("the scratch directory is not made yet");
      return scratch.path;
    },
  };
}

/**
 * Empties a failed start's data directory once its processes are gone (the bots stop their
 * PostgreSQL when `herd up` dies; whatever is left after 15 s is killed).
 */
async function emptyDirectory(dir: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (processesMentioning(dir).length > 0 && Date.now() < deadline) await sleep(100);
  for (const { pid } of processesMentioning(dir)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
  for (const entry of await readdir(dir)) await rm(join(dir, entry), { recursive: true, force: true });
}

/** The last lines of `herd up`'s output and of each pod's log (the coordinator's longest), token hidden. */
async function logTails(cluster: HerdUp): Promise<string> {
  const logs = join(cluster.dataDir, "logs");
  const parts = [`herd up: ${cluster.output().slice(-2_000)}`];
  for (const file of (await readdir(logs).catch(() => [])).sort()) {
    const text = await readFile(join(logs, file), "utf8").catch((error: Error) => error.message);
    parts.push(`${file}: …${text.slice(file.endsWith("-0.log") ? -12_000 : -4_000)}`);
  }
  return parts.join("\n").replaceAll(cluster.token, "<admin token>");
}
