import { mkdir } from "node:fs/promises";
import { resolve } from "node:path";
import { Defaults, HerdError, SqlState } from "@herd/shared";
import { loadOrCreateClusterFile } from "./cluster-file.js";
import { acquireLock } from "./data-dir-lock.js";
import { LocalCluster } from "./local-cluster.js";
import { assertPortsFree, portLayout } from "./port-layout.js";

export interface UpOptions {
  readonly workers: number;
  readonly port: number;
  readonly adminPort: number;
  readonly dataDir: string;
  readonly shardCount: number;
  /** Undefined when not given: the default, capped at the number of workers. */
  readonly replicationFactor: number | undefined;
  /** false: only a rebalance asked for moves shards (`--no-auto-rebalance`). */
  readonly autoRebalance: boolean;
  /** Seconds after which a lost worker's copies are made again elsewhere (0: never); undefined: the default. */
  readonly replaceLostAfterS: number | undefined;
}

/**
 * `herd up`: runs a whole cluster on this machine until Ctrl-C or SIGTERM. Resolves with the
 * process exit code once everything it started has stopped.
 */
export async function upCommand(options: UpOptions, say: (line: string) => void): Promise<number> {
  const replicationFactor = options.replicationFactor ?? Math.min(Defaults.replicationFactor, options.workers);
  if (replicationFactor > options.workers) {
    throw new HerdError(
      `replication factor ${replicationFactor} needs at least ${replicationFactor} workers, not ${options.workers}`,
      { sqlState: SqlState.invalidParameterValue, hint: "Raise --workers or lower --replication-factor." },
    );
  }
  const dataDir = resolve(options.dataDir);
  await mkdir(dataDir, { recursive: true, mode: 0o755 });
  const ports = portLayout(options.port, options.adminPort);
  const lock = await acquireLock(dataDir, {
    pid: process.pid,
    sqlPort: options.port,
    adminPort: options.adminPort,
    workers: options.workers,
    startedAt: new Date().toISOString(),
  });
  let cluster: LocalCluster | undefined;
  try {
    await assertPortsFree(ports, options.workers);
    const { file, created } = await loadOrCreateClusterFile(dataDir);
    const adminToken = process.env.HERD_ADMIN_TOKEN || file.adminToken;
    const password = process.env.HERD_PASSWORD || Defaults.localPassword;
    say(
      `herd: ${created ? "creating" : "starting"} a local cluster in ${dataDir} ` +
        `(coordinator + ${options.workers} worker${options.workers === 1 ? "" : "s"})`,
    );
    if (replicationFactor < Defaults.replicationFactor) {
      say(
        `  note: with ${options.workers} worker${options.workers === 1 ? "" : "s"}, each shard is stored ${replicationFactor === 1 ? "once (no replica)" : `${replicationFactor} times`}`,
      );
    }
    cluster = new LocalCluster({
      name: Defaults.localClusterName,
      dataDir,
      workers: options.workers,
      ports,
      clusterId: file.clusterId,
      adminToken,
      password,
      internalPassword: file.internalPassword,
      shardCount: options.shardCount,
      replicationFactor,
      autoRebalance: options.autoRebalance,
      replaceLostAfterS: options.replaceLostAfterS,
      say,
    });
    const stopRequested = waitForStopSignal();
    const starting = cluster.start();
    const first = await Promise.race([starting.then(() => "up"), stopRequested]);
    if (first !== "up") {
      starting.catch(() => {}); // abandoned: we are stopping anyway
      say(`\nherd: ${first} while starting; stopping the cluster…`);
    } else {
      say("");
      say(`herd is up: coordinator + ${options.workers} workers`);
      say(`  SQL      postgresql://postgres@127.0.0.1:${options.port}/postgres`);
      say(
        `  psql     psql -h 127.0.0.1 -p ${options.port} -U postgres   (password: ${process.env.HERD_PASSWORD ? "$HERD_PASSWORD" : Defaults.localPassword})`,
      );
      say(
        `  admin    ${cluster.adminUrl}   (token: ${process.env.HERD_ADMIN_TOKEN ? "$HERD_ADMIN_TOKEN" : adminToken})`,
      );
      say(`  docs     ${cluster.adminUrl}/docs`);
      say(`  logs     ${resolve(dataDir, "logs")}`);
      say("Press Ctrl-C to stop.");
      const signal = await stopRequested;
      say(`\nherd: ${signal}; stopping the cluster…`);
    }
    await cluster.stop();
    say("herd: stopped; no process left running.");
    return 0;
  } catch (error) {
    if (cluster) await cluster.stop();
    throw error;
  } finally {
    await lock.release();
  }
}

function waitForStopSignal(): Promise<string> {
  return new Promise<string>((resolve) => {
    const handler = (signal: NodeJS.Signals) => {
      process.off("SIGINT", handler);
      process.off("SIGTERM", handler);
      // a second Ctrl-C while stopping is left to the default handler: exit at once
      resolve(signal === "SIGINT" ? "interrupted" : `received ${signal}`);
    };
    process.on("SIGINT", handler);
    process.on("SIGTERM", handler);
  });
}
