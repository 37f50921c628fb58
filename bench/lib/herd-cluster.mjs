import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export const REPO = join(import.meta.dirname, "..", "..");
const HERD_CLI = join(REPO, "packages", "worker-bot", "dist", "cli", "main.js");
const READY = "Press Ctrl-C to stop.";

/**
 * Starts `herd up` with `workers` workers in a fresh scratch directory on tmpfs, on free ports, and
 * waits until it is ready. The SQL port is `sqlPort`; the coordinator's own PostgreSQL listens on
 * `sqlPort + 1` (see packages/worker-bot/src/cli/port-layout.ts).
 *
 * `env` adds to the environment the bots get (HERD_* settings, e.g. HERD_SQL_PROCESSES).
 *
 * `stop()` Ctrl-Cs the cluster, waits for it, and removes the scratch directory; it is safe to call
 * more than once. An abort of `signal` while starting stops what has started and rejects.
 */
export async function startHerdCluster({ workers = 1, signal, startTimeoutMs = 90_000, env = {} } = {}) {
  const { sqlPort, adminPort } = await clusterPorts(workers);
  const dataDir = await scratchDir();
  const child = spawn(
    process.execPath,
    [
      HERD_CLI,
      "up",
      "--workers",
      String(workers),
      "--port",
      String(sqlPort),
      "--admin-port",
      String(adminPort),
      "--data-dir",
      dataDir,
    ],
    {
      cwd: REPO,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
      // its own process group: a terminal's Ctrl-C reaches only us, and we stop the cluster in order
      detached: true,
    },
  );
  let output = "";
  const collect = (chunk) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout.on("data", collect);
  child.stderr.on("data", collect);
  child.once("error", (error) => collect(`${error.message}\n`));
  const exited = new Promise((resolve) => child.once("close", (code, signalName) => resolve(code ?? signalName)));
  const running = () => child.pid !== undefined && child.exitCode === null && child.signalCode === null;
  // last resort, should this process end without stop(): Ctrl-C the cluster rather than leave it running
  const onExit = () => running() && process.kill(-child.pid, "SIGINT");
  process.once("exit", onExit);

  let stopping;
  const cluster = {
    dataDir,
    sqlPort,
    adminPort,
    /** The coordinator's own PostgreSQL. */
    postgresPort: sqlPort + 1,
    /** herd's own password, the superuser's on the coordinator's PostgreSQL (read once ready). */
    internalPassword: "",
    /** The admin API's token (cluster.json). */
    adminToken: () => cluster.clusterFile?.adminToken ?? "",
    clusterFile: undefined,
    /** The password for `port`: herd's SQL port takes the SQL one; every PostgreSQL (coordinator's, workers') herd's own. */
    passwordFor(port, sqlPassword) {
      return port === cluster.sqlPort ? sqlPassword : cluster.internalPassword;
    },
    output: () => output,
    stop() {
      stopping ??= (async () => {
        process.off("exit", onExit);
        if (running()) {
          process.kill(-child.pid, "SIGINT");
          if ((await Promise.race([exited, sleep(30_000, "timeout", { ref: false })])) === "timeout") {
            process.kill(-child.pid, "SIGKILL");
            await exited;
            warn(`herd up did not stop within 30 s and was killed:\n${tail(output)}`);
          }
        }
        const status = await exited;
        if (status !== 0) warn(`herd up exited with ${status}:\n${tail(output)}`);
        await rm(dataDir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };

  try {
    const deadline = Date.now() + startTimeoutMs;
    while (!output.includes(READY)) {
      signal?.throwIfAborted();
      if (!running()) throw new Error(`herd up exited while starting:\n${tail(output)}`);
      if (Date.now() > deadline)
        throw new Error(`herd up was not ready in ${startTimeoutMs / 1000} s:\n${tail(output)}`);
      await sleep(50);
    }
    cluster.clusterFile = JSON.parse(await readFile(join(dataDir, "cluster.json"), "utf8"));
    cluster.internalPassword = cluster.clusterFile.internalPassword;
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}

/** A fresh directory on /dev/shm (tmpfs) when there is one. */
async function scratchDir() {
  const root = existsSync("/dev/shm") ? "/dev/shm" : (process.env.TMPDIR ?? "/tmp");
  const path = await mkdtemp(join(root, "herd-bench-"));
  // mkdtemp makes it 0700; PostgreSQL runs as an unprivileged user when we are root
  await chmod(path, 0o755);
  return path;
}

/** Two disjoint free ranges: SQL port + PostgreSQL ports (workers + 2), admin + probe ports (workers + 1). */
async function clusterPorts(workers) {
  for (;;) {
    const sqlPort = await freePortRange(workers + 2);
    const adminPort = await freePortRange(workers + 1);
    if (adminPort > sqlPort + workers + 1 || adminPort + workers < sqlPort) return { sqlPort, adminPort };
  }
}

async function freePortRange(count) {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const base = 20_000 + Math.floor(Math.random() * 40_000);
    let allFree = true;
    for (let port = base; port < base + count && allFree; port += 1) allFree = await isFree(port);
    if (allFree) return base;
  }
  throw new Error(`no ${count} consecutive free ports found`);
}

function isFree(port) {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

function tail(text, lines = 30) {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

function warn(message) {
  process.stderr.write(`warning: ${message}\n`);
}
