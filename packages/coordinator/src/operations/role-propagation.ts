import { errorMessage, type Logger } from "@herd/shared";
import type pg from "pg";
import type { ClusterCredentials } from "../connection/cluster-credentials.js";
import { PeriodicPass } from "../connection/periodic-pass.js";
import { ResultCollector } from "../connection/pg-connection.js";
import { applySettings, asHerd, INTERNAL_SETTINGS } from "../connection/session-settings.js";
import type { ConnectionPool, WorkerConnection } from "../connection/worker-connection.js";
import { backendRequest } from "../executor/backend-request.js";
import type { ExecutionPort } from "../executor/execution-port.js";
import type { StatementRun } from "../executor/statement-run.js";
import type { CatalogSource } from "../metadata/catalog.js";
import type { WorkerNode } from "../metadata/catalog-types.js";
import { DistributedTransaction } from "../transaction/distributed-transaction.js";
import { type RoleState, readRoles, syncRoles } from "./role-sync.js";
import { readSchemaSecurities, type SchemaSecurity, schemaSyncStatements } from "./schema-sync.js";

/** What every worker must share with the coordinator: its roles, and its distributed tables' schemas' privileges. */
export interface ServerSecurity {
  readonly roles: RoleState;
  readonly schemas: ReadonlyMap<string, SchemaSecurity>;
}

type Queryable = Pick<WorkerConnection, "query">;

/** The schemas (other than public, which every server has alike) that hold distributed tables. */
export function distributedSchemas(catalog: CatalogSource): string[] {
  return [...new Set([...catalog.current.tables].map((table) => table.schema))].filter((schema) => schema !== "public");
}

export async function readServerSecurity(server: Queryable, schemas: readonly string[]): Promise<ServerSecurity> {
  return { roles: await readRoles(server, "pg_roles"), schemas: await readSchemaSecurities(server, schemas) };
}

/** Makes one worker's roles and schema privileges the coordinator's; resolves with the statements it took. */
export async function syncServer(
  wanted: ServerSecurity,
  worker: WorkerConnection,
  credentials: ClusterCredentials,
): Promise<number> {
  const roles = await syncRoles(wanted.roles, worker, credentials);
  const theirs = await readSchemaSecurities(worker, [...wanted.schemas.keys()]);
  const statements = schemaSyncStatements(wanted.schemas, theirs);
  for (const sql of statements) await worker.query(sql);
  return roles + statements.length;
}

/**
 * A role statement (CREATE/ALTER/DROP ROLE, GRANT/REVOKE role, ALTER ROLE … RENAME; DROP OWNED
 * and REASSIGN OWNED, which also run as they are on each worker) outside a transaction block, all or nothing: it runs in a transaction on the coordinator's PostgreSQL,
 * which checks the session's right to it; every active worker's roles are then made what that
 * transaction sees (role-sync.ts), each in a transaction of its own, and all of it commits in two
 * phases. A worker that cannot be reached fails the statement. Resolves with the command tag.
 */
export async function runRoleStatement(
  run: StatementRun,
  port: ExecutionPort,
  workers: readonly WorkerNode[],
  serverStatement: string | undefined,
): Promise<string> {
  const transaction = new DistributedTransaction(
    { backend: port.backend, pool: port.workers, logger: port.logger, catalog: port.catalog },
    "statement",
  );
  try {
    await transaction.lockShards(new Map());
    transaction.writesOnCoordinator();
    const collector = new ResultCollector();
    await port.backend.exchange(backendRequest({ ...run, describe: false }), collector);
    const { tag } = collector.result();
    const wanted = await readServerSecurity(port.backend, distributedSchemas(port.catalog));
    const settings = asHerd(port.settings());
    const outcomes = await Promise.allSettled(
      workers.map(async (node) => {
        const { connection, opening } = await transaction.join(node, settings);
        if (opening) await connection.query(opening);
        transaction.changedServer(node.id);
        // a rename first (the role keeps what it holds), then the attributes and memberships
        if (serverStatement) await connection.query(serverStatement);
        await syncServer(wanted, connection, port.cluster.credentials);
      }),
    );
    const failed = outcomes.find((outcome) => outcome.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    await transaction.commit();
    return tag;
  } catch (error) {
    await transaction.rollback();
    throw error;
  }
}

export interface RoleSyncOptions {
  readonly metadata: pg.Pool;
  readonly catalog: CatalogSource;
  readonly pool: ConnectionPool;
  readonly credentials: ClusterCredentials;
  readonly logger: Logger;
  readonly intervalMs?: number;
}

/**
 * Keeps every active worker's roles the coordinator's, in the background: a worker that was
 * added (or was away) since the last role statement, and role changes committed inside a
 * transaction block or made where herd did not see them (a DO block). `now()` runs a pass at
 * once, e.g. after a block with a role statement commits.
 */
export class RoleSync {
  private readonly passes: PeriodicPass;

  constructor(private readonly options: RoleSyncOptions) {
    this.passes = new PeriodicPass(() => this.pass(), options.intervalMs ?? 10_000);
  }

  start(): void {
    this.passes.start();
  }

  stop(): Promise<void> {
    return this.passes.stop();
  }

  /** One pass now (or the one under way); resolves with how many statements the workers needed. */
  now(): Promise<number> {
    return this.passes.now();
  }

  /** Makes one worker's roles the coordinator's (before shards are placed on it). */
  async syncNode(node: WorkerNode, wanted?: ServerSecurity): Promise<number> {
    const security = wanted ?? (await this.coordinatorSecurity());
    const connection = await this.options.pool.acquire(node);
    try {
      await applySettings(connection, INTERNAL_SETTINGS);
      await connection.query("BEGIN");
      const changed = await syncServer(security, connection, this.options.credentials);
      await connection.query("COMMIT");
      return changed;
    } catch (error) {
      connection.destroy();
      throw error;
    } finally {
      this.options.pool.release(connection);
    }
  }

  private async coordinatorSecurity(): Promise<ServerSecurity> {
    const client = await this.options.metadata.connect();
    try {
      const server = {
        query: async (sql: string, parameters?: readonly (string | null)[]) => {
          const result = await client.query({
            text: sql,
            values: parameters as unknown[],
            rowMode: "array",
            types: RAW_TEXT,
          });
          return { fields: [], rows: result.rows as (Buffer | null)[][], tag: result.command };
        },
      };
      return await readServerSecurity(server, distributedSchemas(this.options.catalog));
    } finally {
      client.release();
    }
  }

  private async pass(): Promise<number> {
    let changed = 0;
    let wanted: ServerSecurity;
    try {
      wanted = await this.coordinatorSecurity();
    } catch (error) {
      this.options.logger.warn("role sync: cannot read the coordinator's roles", { error: errorMessage(error) });
      return 0;
    }
    for (const node of this.options.catalog.current.nodes.values()) {
      if (node.state !== "active") continue;
      try {
        const statements = await this.syncNode(node, wanted);
        if (statements > 0) this.options.logger.info("roles synced to a worker", { node: node.name, statements });
        changed += statements;
      } catch (error) {
        this.options.logger.warn("role sync failed on a worker", { node: node.name, error: errorMessage(error) });
      }
    }
    return changed;
  }
}

/** node-postgres type parsers that hand every value over as the raw text bytes, as PgConnection does. */
const RAW_TEXT = { getTypeParser: () => (value: string) => Buffer.from(value, "utf8") };
