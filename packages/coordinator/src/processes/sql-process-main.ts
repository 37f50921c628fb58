import type { Server } from "node:net";
import { createLogger, errorMessage } from "@herd/shared";
import pg from "pg";
import { ClusterCredentials } from "../connection/cluster-credentials.js";
import type { WorkerPool } from "../connection/worker-pool.js";
import type { ClusterJobs, ClusterServices } from "../executor/execution-port.js";
import { Catalog } from "../metadata/catalog.js";
import { loadParser } from "../parser/statement-cache.js";
import type { BackendPool } from "../protocol/backend-pool.js";
import type { CancelRegistry } from "../protocol/cancel-registry.js";
import type { ProtocolServer } from "../protocol/protocol-server.js";
import { answerHere, type PeerCall, peersThrough } from "./peer-operations.js";
import { installPeers } from "./peers.js";
import { type IpcChannel, ProcessLink } from "./process-link.js";
import type { SqlProcessConfig } from "./sql-process-config.js";
import type { ClusterMethod, JobMethod } from "./sql-processes.js";
import { sqlService, sqlWorkerPool } from "./sql-service.js";

// A coordinator process other than the first (sql-processes.ts forks it): it serves the SQL port
// it is handed, and nothing else; cluster services and peer operations go through the first.

const link = new ProcessLink(process as IpcChannel, "first");
let running: { sql: ProtocolServer; catalog: Catalog; workers: WorkerPool; pool: pg.Pool } | undefined;
/** What this process answers for itself, from the moment it starts (the others' broadcasts reach it then). */
const here: { catalog?: Catalog; cancels?: CancelRegistry; backends?: BackendPool } = {};
link.handle("local", (call) => answerHere(call as PeerCall, here));

// the first process is gone (stopped or crashed): so is this one
process.on("disconnect", () => process.exit(0));
// a Ctrl-C or SIGTERM sent to the whole process group is the first process's to act on: it stops
// this one when its sessions are done (exiting here would only have it started again meanwhile)
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => {});

let prepared: ((listening: Server) => ProtocolServer) | undefined;

// Everything that takes time first: a process accepts connections as soon as it holds the
// listening socket, so it is handed over ("serve") only once this process can take them.
link.handle("start", async (payload) => {
  const config = payload as SqlProcessConfig;
  const logger = createLogger(`coordinator sql-${config.index}`);
  const pool = new pg.Pool({ ...config.metadata, max: 4, application_name: "herd-coordinator" });
  pool.on("error", (error) => logger.warn("metadata connection lost", { error: error.message }));
  const credentials = new ClusterCredentials(config.metadata.password, config.sqlPassword);
  await loadParser();
  const catalog = new Catalog(pool, logger.child("catalog"));
  here.catalog = catalog;
  await catalog.start();
  const workers = sqlWorkerPool(
    credentials,
    config.metadata.database,
    config.shardConnectionsPerWorker,
    config.workerConnections,
    logger,
  );
  installPeers(
    peersThrough(
      () => config.processes - 1,
      (call) => link.request("peers", call),
    ),
  );
  prepared = (listening) => {
    const sql = sqlService({
      metadata: config.metadata,
      metadataPool: pool,
      credentials,
      catalog,
      workers,
      cluster: remoteCluster(credentials),
      sqlHost: config.sqlHost,
      sqlPort: config.sqlPort,
      shardCount: config.shardCount,
      replicationFactor: config.replicationFactor,
      connectionLimits: config.connectionLimits,
      maxBackends: config.maxBackends,
      tls: config.tls,
      shared: listening,
      admission: {
        take: async (superuser) => {
          await link.request("admit", { superuser });
        },
        release: () => {
          link.request("release").catch(() => {});
        },
      },
      logger,
    });
    sql.cancels.elsewhere = (processId, secretKey) =>
      link.request<boolean>("peers", { kind: "cancel", args: [processId, secretKey] });
    here.cancels = sql.cancels;
    here.backends = sql.backends;
    running = { sql, catalog, workers, pool };
    return sql;
  };
  return null;
});

// (synchronous up to the connection listener: no connection accepted meanwhile goes unserved)
link.handle("serve", (_payload, handle) => {
  if (!prepared) throw new Error("serve before start");
  return prepared(handle as Server).listen();
});

link.handle("stop", async () => {
  const stopping = running;
  running = undefined;
  if (stopping) {
    await stopping.sql.close().catch(() => {});
    stopping.catalog.stop();
    stopping.workers.close();
    await stopping.pool.end().catch(() => {});
  }
  // exit once the answer is on its way
  setImmediate(() => process.exit(0));
  return null;
});

process.on("uncaughtException", (error) => {
  createLogger("coordinator").error("a coordinator process failed", { error: errorMessage(error) });
  process.exit(1);
});

/** The first process's cluster services, called through the link (a move takes as long as it takes). */
function remoteCluster(credentials: ClusterCredentials): ClusterServices {
  const call =
    (service: "cluster" | "jobs", method: ClusterMethod | JobMethod) =>
    (...args: unknown[]) =>
      link.request<never>("cluster", { service, method, args }, undefined, Number.POSITIVE_INFINITY);
  const jobs: ClusterJobs = {
    plan: call("jobs", "plan"),
    startRebalance: call("jobs", "startRebalance"),
    startDrain: call("jobs", "startDrain"),
    list: call("jobs", "list"),
    wait: call("jobs", "wait"),
  };
  return {
    credentials,
    recoverPreparedTransactions: call("cluster", "recoverPreparedTransactions"),
    copyShardPlacement: call("cluster", "copyShardPlacement"),
    moveShardPlacement: call("cluster", "moveShardPlacement"),
    replicateReferenceTables: call("cluster", "replicateReferenceTables"),
    syncRoles: call("cluster", "syncRoles"),
    jobs: () => jobs,
  };
}
