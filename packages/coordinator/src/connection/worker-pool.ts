import { errorMessage, HerdError, isHerdError, type Logger, SqlState } from "@herd/shared";
import { PgConnection } from "./pg-connection.js";
import type { ConnectionPool, ServerAddress, WorkerConnection } from "./worker-connection.js";

export interface WorkerPoolOptions {
  readonly user: string;
  readonly password: string;
  readonly database: string;
  /** Idle connections kept per server. */
  readonly maxIdlePerServer?: number;
  /** Connections a multi-shard read uses per worker at most (its shards are spread over them). */
  readonly connectionsPerWorker?: number;
  readonly logger: Logger;
}

const DEFAULT_CONNECTIONS_PER_WORKER = 2;
const DOWN_FOR_MS = 5000;

/**
 * Connections to the workers' PostgreSQL servers, kept open between statements. A statement
 * outside a transaction block borrows one per placement it reaches and gives it back at once;
 * a transaction block keeps what it borrowed until COMMIT or ROLLBACK.
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

  async acquire(server: ServerAddress): Promise<WorkerConnection> {
    const key = `${server.host}:${server.port}`;
    const list = this.idle.get(key);
    while (list && list.length > 0) {
      const connection = list.pop() as WorkerConnection;
      if (!connection.broken) return connection;
    }
    let connection: PgConnection;
    try {
      connection = await PgConnection.open(
        { host: server.host, port: server.port, password: this.options.password },
        new Map([
          ["user", this.options.user],
          ["database", this.options.database],
          ["application_name", "herd"],
          ["client_encoding", "UTF8"],
          ["DateStyle", "ISO, MDY"],
        ]),
      );
    } catch (error) {
      if (isHerdError(error)) throw error;
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
    const list = this.idle.get(connection.target) ?? [];
    if (list.length >= (this.options.maxIdlePerServer ?? 32)) {
      connection.close();
      return;
    }
    list.push(connection);
    this.idle.set(connection.target, list);
  }

  close(): void {
    this.closed = true;
    for (const list of this.idle.values()) for (const connection of list) connection.close();
    this.idle.clear();
  }
}
