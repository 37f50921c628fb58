import type { Server } from "node:net";
import { errorMessage, type Logger } from "@herd/shared";
import type { FastifyInstance } from "fastify";
import pg from "pg";
import { buildAdminApp } from "./admin/build-admin-app.js";
import { ClusterCredentials } from "./connection/cluster-credentials.js";
import { Catalog } from "./metadata/catalog.js";
import { adoptCatalogExtension } from "./metadata/catalog-extension.js";
import { ClusterSettings } from "./metadata/cluster-settings.js";
import { migrate } from "./metadata/migrate.js";
import { NodeRegistry } from "./metadata/node-registry.js";
import { NodeVerifier } from "./metadata/node-verification.js";
import { prepareShellMarking } from "./metadata/shell-marking.js";
import { JobRunner } from "./operations/job-runner.js";
import { MoveCleanup } from "./operations/move-cleanup.js";
import { type PlacementCopyRequest, PlacementRepair } from "./operations/placement-repair.js";
import { type MoveRequest, PlacementService } from "./operations/placement-service.js";
import { RoleSync } from "./operations/role-propagation.js";
import { loadParser } from "./parser/statement-cache.js";
import { clusterTransactions } from "./processes/cluster-transactions.js";
import { answerHere } from "./processes/peer-operations.js";
import { installPeers, NO_PEERS } from "./processes/peers.js";
import {
  backendsPerProcess,
  type ConnectionLimits,
  DEFAULT_WORKER_CONNECTIONS,
  type MetadataServer,
  workerConnectionsOfFirstProcess,
  workerConnectionsPerProcess,
} from "./processes/sql-process-config.js";
import { SqlProcesses } from "./processes/sql-processes.js";
import { sqlService, sqlWorkerPool } from "./processes/sql-service.js";
import {
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_RESERVED_CONNECTIONS,
  type ProtocolServer,
} from "./protocol/protocol-server.js";
import { SessionSlots } from "./protocol/session-slots.js";
import { DeadlockDetector } from "./transaction/deadlock-detector.js";
import { PreparedTransactionRecovery } from "./transaction/recovery.js";

export interface CoordinatorOptions {
  /** The coordinator's own PostgreSQL, which holds the metadata (password: the internal one). */
  readonly metadata: MetadataServer;
  /** The SQL user `postgres`'s password on the SQL port (HERD_PASSWORD). */
  readonly sqlPassword: string;
  /** The cluster's id (the volume identities of its nodes carry it). */
  readonly clusterId: string;
  readonly sqlHost: string;
  readonly sqlPort: number;
  readonly adminHost: string;
  readonly adminPort: number;
  readonly adminToken: string;
  readonly shardCount: number;
  /** Connections a multi-shard read opens per worker at most (its shards spread over them). */
  readonly shardConnectionsPerWorker?: number;
  /**
   * Processes serving the SQL port (default 1): this one and others it forks (processes/), which
   * share the port, so that statements use every core. The connection limits are split between them.
   */
  readonly sqlProcesses?: number;
  /**
   * Connections to the coordinator's PostgreSQL the sessions of all processes share (split between
   * them; default: its max_connections less what herd itself needs, protocol/backend-pool.ts).
   */
  readonly coordinatorBackends?: number;
  /**
   * Connections each worker gets from the coordinator, all processes together, herd's own work's
   * one included (default 16): sessions holding none wait for room (connection/worker-pool.ts).
   */
  readonly workerConnections?: number;
  /** How often stale placements are looked for and repaired (ms). */
  readonly repairIntervalMs?: number;
  /** The SQL port's limits: authenticated sessions, connections still authenticating, time to authenticate (ms). */
  readonly connectionLimits?: ConnectionLimits;
  readonly replicationFactor: number;
  /** A worker that joins gets reference tables and a rebalance starts (default on). */
  readonly autoRebalance?: boolean;
  /** A worker not heard from for this long has its copies made again elsewhere (0: never; default 15 min). */
  readonly replaceLostAfterMs?: number;
  readonly heartbeatTimeoutMs: number;
  /** PEM certificate and key for TLS on the SQL port; without them SSLRequest is declined. */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  readonly logger: Logger;
}

export interface Coordinator {
  readonly admin: FastifyInstance;
  readonly nodes: NodeRegistry;
  readonly sql: ProtocolServer;
  stop(): Promise<void>;
}

/**
 * Starts the coordinator on top of its running PostgreSQL: migrates the metadata schema, then
 * opens the admin API and the SQL port. Stopping closes them in the reverse order.
 */
export async function startCoordinator(options: CoordinatorOptions): Promise<Coordinator> {
  const { logger } = options;
  /** The SQL port is served (readiness waits for it: herd up and the kubelet send clients only then). */
  let serving = false;
  const pool = new pg.Pool({ ...options.metadata, max: 10, application_name: "herd-coordinator" });
  pool.on("error", (error) => logger.warn("metadata connection lost", { error: error.message }));
  const opened: { close(): Promise<unknown> }[] = [{ close: () => pool.end() }];
  const stop = async () => {
    for (const resource of opened.reverse()) await resource.close().catch(() => {});
  };
  try {
    const version = await migrate(pool, logger);
    await prepareShellMarking(pool, logger);
    await adoptCatalogExtension(pool, logger);
    await new ClusterSettings(pool).saveDefaults({
      shardCount: options.shardCount,
      replicationFactor: options.replicationFactor,
    });
    const credentials = new ClusterCredentials(options.metadata.password, options.sqlPassword);
    const nodes = new NodeRegistry(pool, options.heartbeatTimeoutMs);
    const verifier = new NodeVerifier({
      clusterId: options.clusterId,
      user: options.metadata.user,
      password: options.metadata.password,
      database: options.metadata.database,
    });
    let placements: PlacementService | undefined;
    let jobRunner: JobRunner | undefined;
    const admin = await buildAdminApp({
      nodes,
      placements: () => placements,
      jobs: () => jobRunner,
      verify: (node) => verifier.verify(node),
      adminToken: options.adminToken,
      logger: logger.child("admin"),
      isReady: async () => {
        // ready once clients can connect: the SQL port is served (the admin API comes up first)
        if (!serving) return false;
        try {
          await pool.query("SELECT 1");
          return true;
        } catch (error) {
          logger.warn("metadata PostgreSQL does not answer", { error: errorMessage(error) });
          return false;
        }
      },
    });
    await admin.listen({ host: options.adminHost, port: options.adminPort });
    opened.push(admin);
    await loadParser();
    const catalog = new Catalog(pool, logger.child("catalog"));
    await catalog.start();
    opened.push({ close: async () => catalog.stop() });
    const processes = Math.max(1, options.sqlProcesses ?? 1);
    const workerConnectionsTotal = options.workerConnections ?? DEFAULT_WORKER_CONNECTIONS;
    const workers = sqlWorkerPool(
      credentials,
      options.metadata.database,
      options.shardConnectionsPerWorker,
      workerConnectionsOfFirstProcess(workerConnectionsTotal, processes),
      logger,
    );
    opened.push({ close: async () => workers.close() });
    const recovery = new PreparedTransactionRecovery({
      metadata: pool,
      catalog,
      pool: workers,
      logger: logger.child("recovery"),
    });
    recovery.start();
    opened.push({ close: () => recovery.stop() });
    const deadlocks = new DeadlockDetector({
      metadata: pool,
      catalog,
      pool: workers,
      transactions: clusterTransactions,
      logger: logger.child("deadlocks"),
    });
    deadlocks.start();
    opened.push({ close: () => deadlocks.stop() });
    const repair = new PlacementRepair({
      metadata: pool,
      catalog,
      pool: workers,
      logger: logger.child("repair"),
      intervalMs: options.repairIntervalMs,
    });
    repair.start();
    opened.push({ close: () => repair.stop() });
    const roles = new RoleSync({ metadata: pool, catalog, pool: workers, credentials, logger: logger.child("roles") });
    roles.start();
    opened.push({ close: () => roles.stop() });
    const moves = new MoveCleanup({ metadata: pool, catalog, pool: workers, logger: logger.child("moves") });
    moves.start();
    opened.push({ close: () => moves.stop() });
    placements = new PlacementService({
      metadata: pool,
      catalog,
      pool: workers,
      credentials,
      logger: logger.child("moves"),
      prepareNode: (node) => roles.syncNode(node),
      copy: (request) => repair.copyPlacement(request),
    });
    const jobs = new JobRunner({
      metadata: pool,
      catalog,
      placements,
      logger: logger.child("jobs"),
      autoRebalance: options.autoRebalance ?? true,
      heartbeatTimeoutMs: options.heartbeatTimeoutMs,
      replaceLostAfterMs: options.replaceLostAfterMs ?? 900_000,
      replicationFactor: options.replicationFactor,
    });
    jobs.start();
    opened.push({ close: () => jobs.stop() });
    jobRunner = jobs;
    const placementService = placements;
    const cluster = {
      credentials,
      moveShardPlacement: (request: MoveRequest) => placementService.move(request),
      replicateReferenceTables: () => placementService.replicateReferenceTables(),
      jobs: () => jobRunner,
      syncRoles: () => roles.now(),
      recoverPreparedTransactions: () => recovery.recoverNow(),
      copyShardPlacement: async (request: PlacementCopyRequest) => {
        await repair.copyPlacement(request);
      },
    };
    const limits = options.connectionLimits;
    // session slots, counted here for every process (protocol/session-slots.ts)
    const slots = new SessionSlots(
      options.connectionLimits?.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
      options.connectionLimits?.reservedForSuperusers ?? DEFAULT_RESERVED_CONNECTIONS,
    );
    const metadata = { host: options.metadata.host, port: options.metadata.port, database: options.metadata.database };
    const { rows: maxRows } = await pool.query<{ n: number }>("SELECT current_setting('max_connections')::int AS n");
    const maxBackends = options.coordinatorBackends
      ? Math.max(1, Math.ceil(options.coordinatorBackends / processes))
      : backendsPerProcess(maxRows[0]?.n ?? 100, processes);
    const sql = sqlService({
      maxBackends,
      metadata,
      metadataPool: pool,
      credentials,
      catalog,
      workers,
      cluster,
      sqlHost: options.sqlHost,
      sqlPort: options.sqlPort,
      shardCount: options.shardCount,
      replicationFactor: options.replicationFactor,
      connectionLimits: limits,
      tls: options.tls,
      admission: slots.admission(0),
      logger,
    });
    await sql.listen();
    opened.push(sql);
    if (processes > 1) {
      const others = new SqlProcesses({
        count: processes,
        config: {
          metadata: options.metadata,
          sqlPassword: options.sqlPassword,
          sqlHost: options.sqlHost,
          sqlPort: options.sqlPort,
          shardCount: options.shardCount,
          replicationFactor: options.replicationFactor,
          shardConnectionsPerWorker: options.shardConnectionsPerWorker,
          connectionLimits: limits,
          maxBackends,
          workerConnections: workerConnectionsPerProcess(workerConnectionsTotal, processes),
          tls: options.tls && { cert: options.tls.cert.toString(), key: options.tls.key.toString() },
        },
        listening: sql.listening as Server,
        cluster,
        slots,
        here: (call) => answerHere(call, { catalog, cancels: sql.cancels, backends: sql.backends }),
        logger,
      });
      // before the SQL port closes (pushed after it: closed first)
      opened.push({ close: () => others.stop() });
      installPeers(others.peers);
      opened.push({ close: async () => installPeers(NO_PEERS) });
      sql.cancels.elsewhere = (processId, secretKey) => others.peers.cancel(processId, secretKey);
      await others.start();
    }
    serving = true;
    logger.info("coordinator serving", {
      sql: `${options.sqlHost}:${options.sqlPort}`,
      admin: `${options.adminHost}:${options.adminPort}`,
      metadata_version: version,
    });
    return { admin, nodes, sql, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
