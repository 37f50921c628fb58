import { applySettings, type SessionSettings } from "../connection/session-settings.js";
import type { ConnectionPool, WorkerConnection } from "../connection/worker-connection.js";
import type { WorkerNode } from "../metadata/catalog-types.js";

/**
 * The worker connections a transaction block has used, one per worker, each in its own
 * transaction (BEGIN sent when the block first reaches that worker, with the block's open
 * savepoints replayed). COMMIT and ROLLBACK on the coordinator end them all.
 */
export class WorkerTransaction {
  private readonly connections = new Map<number, WorkerConnection>();
  /** SAVEPOINT statements still open in the block, to replay on workers joining later. */
  readonly savepoints: { name: string; sql: string }[] = [];

  constructor(private readonly pool: ConnectionPool) {}

  get active(): boolean {
    return this.connections.size > 0;
  }

  has(nodeId: number): boolean {
    return this.connections.has(nodeId);
  }

  async connection(node: WorkerNode, settings: SessionSettings): Promise<WorkerConnection> {
    const held = this.connections.get(node.id);
    if (held) return held;
    const connection = await this.pool.acquire(node);
    try {
      await applySettings(connection, settings);
      await connection.query(["BEGIN", ...this.savepoints.map((savepoint) => savepoint.sql)].join("; "));
    } catch (error) {
      this.pool.release(connection);
      throw error;
    }
    this.connections.set(node.id, connection);
    return connection;
  }

  /** Runs `sql` (SAVEPOINT, RELEASE, ROLLBACK TO) on every worker of the block. */
  async everywhere(sql: string): Promise<void> {
    await Promise.all([...this.connections.values()].map((connection) => connection.query(sql)));
  }

  /**
   * Commits (or rolls back) every worker's transaction, one after the other. When a commit fails
   * before any succeeded, the others are rolled back and the error is thrown; a failure after
   * one succeeded is returned, for the caller to report.
   */
  async finish(commit: boolean): Promise<Error | undefined> {
    const connections = [...this.connections.values()];
    this.connections.clear();
    this.savepoints.length = 0;
    let committed = 0;
    let failure: Error | undefined;
    for (const connection of connections) {
      try {
        if (failure && committed === 0) await connection.query("ROLLBACK");
        else await connection.query(commit ? "COMMIT" : "ROLLBACK");
        committed += commit && !failure ? 1 : 0;
      } catch (error) {
        failure ??= error as Error;
        connection.destroy();
      } finally {
        this.pool.release(connection);
      }
    }
    if (failure && committed === 0) throw failure;
    return failure;
  }

  /**
   * Keeps the list of open savepoints (as the statements that made them) in step with the block,
   * after SAVEPOINT, RELEASE or ROLLBACK TO succeeded.
   */
  noteSavepoint(
    kind: "TRANS_STMT_SAVEPOINT" | "TRANS_STMT_RELEASE" | "TRANS_STMT_ROLLBACK_TO",
    name: string,
    sql: string,
  ): void {
    const index = this.savepoints.findLastIndex((savepoint) => savepoint.name === name);
    if (kind === "TRANS_STMT_SAVEPOINT") this.savepoints.push({ name, sql });
    else if (index >= 0) this.savepoints.length = kind === "TRANS_STMT_RELEASE" ? index : index + 1;
  }

  /** The session ended: let go of everything (PostgreSQL rolls back what a closed connection had open). */
  abandon(): void {
    for (const connection of this.connections.values()) connection.destroy();
    this.connections.clear();
  }
}
