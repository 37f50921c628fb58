import type { Server } from "node:net";
import { isHerdError, type Logger } from "@herd/shared";
import type pg from "pg";
import type { ClusterCredentials } from "../connection/cluster-credentials.js";
import { PgConnection } from "../connection/pg-connection.js";
import { WorkerPool } from "../connection/worker-pool.js";
import type { ClusterServices } from "../executor/execution-port.js";
import { QueryEngine } from "../executor/query-engine.js";
import type { Catalog } from "../metadata/catalog.js";
import { NormalizedStatements } from "../parser/normalized-statements.js";
import { StatementCache } from "../parser/statement-cache.js";
import { ProtocolServer } from "../protocol/protocol-server.js";
import type { SessionAdmission } from "../protocol/session-slots.js";
import { Conversation } from "../session/conversation.js";
import { finishingCommits } from "../transaction/finishing-commits.js";
import { collectWhenIdle } from "./idle-collection.js";
import { peers } from "./peers.js";
import type { ConnectionLimits } from "./sql-process-config.js";

/** What one coordinator process needs to serve the SQL port. */
export interface SqlServiceOptions {
  /** The coordinator's own PostgreSQL (sessions' own connections, logins, the metadata). */
  readonly metadata: { readonly host: string; readonly port: number; readonly database: string };
  readonly metadataPool: pg.Pool;
  readonly credentials: ClusterCredentials;
  readonly catalog: Catalog;
  readonly workers: WorkerPool;
  readonly cluster: ClusterServices;
  readonly sqlHost: string;
  readonly sqlPort: number;
  readonly shardCount: number;
  readonly replicationFactor: number;
  /** The SQL port's limits (sessions are counted through `admission`). */
  readonly connectionLimits?: ConnectionLimits;
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  /** The listening socket of the first process, for the others (protocol-server.ts). */
  readonly shared?: Server;
  /** Where sessions take their slots (the coordinator's SessionSlots). */
  readonly admission: SessionAdmission;
  /** Connections to the coordinator's PostgreSQL this process's sessions share (protocol/backend-pool.ts). */
  readonly maxBackends?: number;
  readonly logger: Logger;
}

/**
 * The worker pool of one coordinator process: it lends a connection to a worker once the commits
 * acknowledged there have finished (transaction/finishing-commits.ts).
 */
export function sqlWorkerPool(
  credentials: ClusterCredentials,
  database: string,
  connectionsPerWorker: number | undefined,
  maxPerServer: number,
  logger: Logger,
): WorkerPool {
  return new WorkerPool({
    credentials,
    database,
    connectionsPerWorker,
    // this process's share of the connections each worker gets from the coordinator
    // (workerConnectionsPerProcess), however many clients are connected
    maxPerServer,
    beforeUse: (target) => finishingCommits.on(target),
    logger: logger.child("workers"),
  });
}

/**
 * The SQL port of one coordinator process: its statement caches, its engine, and a Conversation
 * with the coordinator's PostgreSQL for every client it accepts. Every process (the first, and
 * the others of processes/sql-processes.ts) builds its own; not yet listening.
 */
export function sqlService(options: SqlServiceOptions): ProtocolServer {
  const { metadata, logger } = options;
  collectWhenIdle(logger);
  const statements = new StatementCache();
  const literals = new NormalizedStatements(statements);
  const engine = new QueryEngine(options.catalog);
  const executorLogger = logger.child("executor");
  const defaults = { shardCount: options.shardCount, replicationFactor: options.replicationFactor };
  const limits = options.connectionLimits;
  const server: ProtocolServer = new ProtocolServer({
    host: options.sqlHost,
    port: options.sqlPort,
    credentials: (user) => options.credentials.login(options.metadataPool, user),
    backend: { host: metadata.host, port: metadata.port },
    maxConnections: limits?.maxConnections,
    reservedForSuperusers: limits?.reservedForSuperusers,
    maxUnauthenticated: limits?.maxUnauthenticated,
    limits: limits && { authTimeoutMs: limits.authTimeoutMs },
    maxBackends: options.maxBackends,
    openSession: ({ socket, backend, lender, startupParameters, fail }) => {
      const connection = new PgConnection(backend, `${metadata.host}:${metadata.port}`, metadata, lender);
      connection.onClose = (error) => {
        // told to the client when herd could not get it a connection (53300 after the wait);
        // a connection PostgreSQL closed ends the session as PostgreSQL would have
        if (isHerdError(error)) fail(error);
        else {
          logger.warn("PostgreSQL connection of a session lost", { error: error.message });
          fail(undefined);
        }
      };
      return new Conversation(
        socket,
        connection,
        {
          engine,
          statements,
          literals,
          catalog: options.catalog,
          pool: options.workers,
          defaults,
          cluster: options.cluster,
          logger: logger.child("sql"),
          executorLogger,
          startupParameters,
          reported: backend.parameters,
          metadataDatabase: metadata.database,
          closeIdleBackends: async () => {
            server.backends.closeIdle();
            await peers().closeIdleBackends();
          },
        },
        fail,
      );
    },
    tls: options.tls,
    shared: options.shared,
    admission: options.admission,
    logger: logger.child("sql"),
  });
  return server;
}
