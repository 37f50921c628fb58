import { errorMessage, type Logger } from "@herd/shared";
import type { FastifyInstance } from "fastify";
import pg from "pg";
import { buildAdminApp } from "./admin/build-admin-app.js";
import { ClusterSettings } from "./metadata/cluster-settings.js";
import { migrate } from "./metadata/migrate.js";
import { NodeRegistry } from "./metadata/node-registry.js";
import { PassthroughProxy } from "./protocol/passthrough-proxy.js";

export interface CoordinatorOptions {
  /** The coordinator's own PostgreSQL, which holds the metadata. */
  readonly metadata: {
    readonly host: string;
    readonly port: number;
    readonly user: string;
    readonly password: string;
    readonly database: string;
  };
  readonly sqlHost: string;
  readonly sqlPort: number;
  readonly adminHost: string;
  readonly adminPort: number;
  readonly adminToken: string;
  readonly shardCount: number;
  readonly replicationFactor: number;
  readonly heartbeatTimeoutMs: number;
  readonly logger: Logger;
}

export interface Coordinator {
  readonly admin: FastifyInstance;
  readonly nodes: NodeRegistry;
  stop(): Promise<void>;
}

/**
 * Starts the coordinator on top of its running PostgreSQL: migrates the metadata schema, then
 * opens the admin API and the SQL port. Stopping closes them in the reverse order.
 */
export async function startCoordinator(options: CoordinatorOptions): Promise<Coordinator> {
  const { logger } = options;
  const pool = new pg.Pool({ ...options.metadata, max: 10, application_name: "herd-coordinator" });
  pool.on("error", (error) => logger.warn("metadata connection lost", { error: error.message }));
  const opened: { close(): Promise<unknown> }[] = [{ close: () => pool.end() }];
  const stop = async () => {
    for (const resource of opened.reverse()) await resource.close().catch(() => {});
  };
  try {
    const version = await migrate(pool, logger);
    await new ClusterSettings(pool).saveDefaults({
      shardCount: options.shardCount,
      replicationFactor: options.replicationFactor,
    });
    const nodes = new NodeRegistry(pool, options.heartbeatTimeoutMs);
    const admin = await buildAdminApp({
      nodes,
      adminToken: options.adminToken,
      logger: logger.child("admin"),
      isReady: async () => {
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
    const proxy = new PassthroughProxy({
      listenHost: options.sqlHost,
      listenPort: options.sqlPort,
      upstreamHost: options.metadata.host,
      upstreamPort: options.metadata.port,
      logger: logger.child("sql"),
    });
    await proxy.listen();
    opened.push(proxy);
    logger.info("coordinator serving", {
      sql: `${options.sqlHost}:${options.sqlPort}`,
      admin: `${options.adminHost}:${options.adminPort}`,
      metadata_version: version,
    });
    return { admin, nodes, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
