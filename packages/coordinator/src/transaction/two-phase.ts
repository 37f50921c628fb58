import { randomUUID } from "node:crypto";
import { errorMessage, type Logger } from "@herd/shared";
import type { ConnectionPool, WorkerConnection } from "../connection/worker-connection.js";
import type { WorkerNode } from "../metadata/catalog-types.js";

/**
 * One change made on several workers and on the coordinator together (DDL, distributing a
 * table): each worker's part runs in a transaction that is PREPAREd; only when every worker
 * prepared does the coordinator commit, and then the workers COMMIT PREPARED. Any failure before
 * that rolls everything back, so no worker keeps a half-applied change.
 * (What a crash between the two commits leaves prepared is resolved by hand for now:
 * `SELECT gid FROM pg_prepared_xacts` on the workers; the recovery loop comes with 2PC.)
 */
export class TwoPhaseChange {
  private readonly connections = new Map<number, WorkerConnection>();
  private readonly gid = `herd_${randomUUID()}`;
  private prepared: WorkerConnection[] = [];

  constructor(
    private readonly pool: ConnectionPool,
    private readonly logger: Logger,
  ) {}

  /**
   * Runs `work` for every node, in parallel, and waits for all of them to finish even when one
   * fails (so no statement is still on its way when the change is rolled back); throws the first
   * failure.
   */
  async forEach<T>(nodes: readonly T[], work: (node: T) => Promise<void>): Promise<void> {
    const results = await Promise.allSettled(nodes.map(work));
    const failed = results.find((result) => result.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }

  /** This worker's connection, inside the change's transaction. */
  async on(node: WorkerNode): Promise<WorkerConnection> {
    let connection = this.connections.get(node.id);
    if (!connection) {
      connection = await this.pool.acquire(node);
      this.connections.set(node.id, connection);
      await connection.query("BEGIN");
    }
    return connection;
  }

  async prepare(): Promise<void> {
    for (const connection of this.connections.values()) {
      await connection.query(`PREPARE TRANSACTION '${this.gid}'`);
      this.prepared.push(connection);
    }
  }

  /** After the coordinator committed. */
  async commit(): Promise<void> {
    for (const connection of this.prepared) {
      await connection
        .query(`COMMIT PREPARED '${this.gid}'`)
        .catch((error) => this.logger.error("COMMIT PREPARED failed", { gid: this.gid, error: errorMessage(error) }));
    }
    this.release();
  }

  async rollback(): Promise<void> {
    for (const connection of this.connections.values()) {
      const sql = this.prepared.includes(connection) ? `ROLLBACK PREPARED '${this.gid}'` : "ROLLBACK";
      await connection.query(sql).catch(() => connection.destroy());
    }
    this.release();
  }

  private release(): void {
    for (const connection of this.connections.values()) this.pool.release(connection);
    this.connections.clear();
  }
}
