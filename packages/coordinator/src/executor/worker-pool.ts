import type { Logger } from "@herd/shared";
import { PgConnection } from "./pg-connection.js";

export interface ServerAddress {
  readonly host: string;
  readonly port: number;
}

export interface WorkerPoolOptions {
  readonly user: string;
  readonly password: string;
  readonly database: string;
  /** Idle connections kept per server. */
  readonly maxIdlePerServer?: number;
  readonly logger: Logger;
}

/**
 * Connections to the workers' PostgreSQL servers, kept open between statements. A statement
 * outside a transaction block borrows one per placement it reaches and gives it back at once;
 * a transaction block keeps what it borrowed until COMMIT or ROLLBACK.
 */
export class WorkerPool {
  private readonly idle = new Map<string, PgConnection[]>();
  private closed = false;

  constructor(private readonly options: WorkerPoolOptions) {}

  async acquire(server: ServerAddress): Promise<PgConnection> {
    const key = `${server.host}:${server.port}`;
    const list = this.idle.get(key);
    while (list && list.length > 0) {
      const connection = list.pop() as PgConnection;
      if (!connection.broken) return connection;
    }
    const connection = await PgConnection.open(
      { host: server.host, port: server.port, password: this.options.password },
      new Map([
        ["user", this.options.user],
        ["database", this.options.database],
        ["application_name", "herd"],
        ["client_encoding", "UTF8"],
        ["DateStyle", "ISO, MDY"],
      ]),
    );
    connection.onClose = (error) =>
      this.options.logger.debug("worker connection closed", { server: key, error: error.message });
    return connection;
  }

  /** Gives a connection back: kept when it is healthy, idle and outside a transaction. */
  release(connection: PgConnection): void {
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
