import { Defaults, errorMessage, HerdError, isHerdError, type Logger, SqlState, type SqlStateCode } from "@herd/shared";
import { BackendStartupError } from "../protocol/backend-connection.js";
import type { ClusterCredentials } from "./cluster-credentials.js";
import { PgConnection } from "./pg-connection.js";
import type { ConnectionPool, ServerAddress, WorkerConnection } from "./worker-connection.js";

export interface WorkerPoolOptions {
  /** Passwords for each role's worker connections (cluster-credentials.ts). */
  readonly credentials: ClusterCredentials;
  readonly database: string;
  /** Idle connections kept per server. */
  readonly maxIdlePerServer?: number;
  /** Connections a multi-shard read uses per worker at most (its shards are spread over them). */
  readonly connectionsPerWorker?: number;
  /**
   * What to wait for before a connection to `target` is lent (undefined: nothing): the commits
   * acknowledged on it that are still finishing (transaction/finishing-commits.ts).
   */
  readonly beforeUse?: (target: string) => Promise<void> | undefined;
  readonly logger: Logger;
}

const DEFAULT_CONNECTIONS_PER_WORKER = 2;
const DOWN_FOR_MS = 5000;

/**
 * Connections to the workers' PostgreSQL servers, kept open between statements. A statement
 * outside a transaction block borrows one per placement it reaches and gives it back at once;
 * a transaction block keeps what it borrowed until COMMIT or ROLLBACK.
 *
 * Each connection is logged in as one role (a client session's: the worker checks its privileges
 * and row-level security; or `postgres`, herd's own work) and is only ever lent for that role:
 * a connection logged in as a superuser and switched with SET ROLE could be switched back by the
 * client's own SQL (`set_config('role', 'none', false)`), one logged in as the role cannot.
 */
export class WorkerPool implements ConnectionPool {
  private readonly idle = new Map<string, WorkerConnection[]>();
  /** Servers that could not be reached, and until when reads avoid them. */
  private readonly down = new Map<string, number>();
  private closed = false;

  constructor(private readonly options: WorkerPoolOptions) {}

  get connectionsPerWorker(): number {
    return this.options.connectionsPerWorker ?? DEFAULT_CONNECTIONS_PER_WORKER;
  }

  /** A read could not reach this server: reads prefer other placements for a while. */
  markDown(server: ServerAddress): void {
    this.down.set(`${server.host}:${server.port}`, Date.now() + DOWN_FOR_MS);
  }

  isDown(server: ServerAddress): boolean {
    const until = this.down.get(`${server.host}:${server.port}`);
    return until !== undefined && until > Date.now();
  }

  async acquire(server: ServerAddress, login: string = Defaults.superuser): Promise<WorkerConnection> {
    const key = `${server.host}:${server.port}`;
    const finishing = this.options.beforeUse?.(key);
    if (finishing) await finishing;
    const list = this.idle.get(`${login}@${key}`);
    while (list && list.length > 0) {
      const connection = list.pop() as WorkerConnection;
      if (!connection.broken) return connection;
    }
    let connection: PgConnection;
    try {
      connection = await PgConnection.open(
        { host: server.host, port: server.port, password: this.options.credentials.workerPassword(login) },
        new Map([
          ["user", login],
          ["database", this.options.database],
          ["application_name", "herd"],
          ["client_encoding", "UTF8"],
          ["DateStyle", "ISO, MDY"],
        ]),
      );
    } catch (error) {
      if (isHerdError(error)) throw error;
      if (
        error instanceof BackendStartupError &&
        !error.fields.code.startsWith("08") &&
        !error.fields.code.startsWith("57")
      ) {
        // the worker answered and refused this role (28P01: no such role there yet, 53300: full):
        // its own error, not a worker that cannot be reached
        throw new HerdError(`worker ${key} refused a connection as "${login}": ${error.message}`, {
          sqlState: error.fields.code as SqlStateCode,
          detail: error.fields.detail,
          hint: "Roles reach the workers within seconds of their creation; try again.",
        });
      }
      throw new HerdError(`could not connect to the worker at ${key}`, {
        sqlState: SqlState.connectionFailure,
        detail: errorMessage(error),
      });
    }
    this.down.delete(key);
    connection.onClose = (error) =>
      this.options.logger.debug("worker connection closed", { server: key, error: error.message });
    return connection;
  }

  /** Gives a connection back: kept when it is healthy, idle and outside a transaction. */
  release(connection: WorkerConnection): void {
    if (this.closed || connection.broken || !connection.idle || connection.status !== "I") {
      connection.close();
      return;
    }
    const key = `${connection.login}@${connection.target}`;
    const list = this.idle.get(key) ?? [];
    if (list.length >= (this.options.maxIdlePerServer ?? 32)) {
      connection.close();
      return;
    }
    list.push(connection);
    this.idle.set(key, list);
  }

  close(): void {
    this.closed = true;
    for (const list of this.idle.values()) for (const connection of list) connection.close();
    this.idle.clear();
  }
}
