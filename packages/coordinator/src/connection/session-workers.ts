import type { ConnectionPool, ServerAddress, WorkerConnection } from "./worker-connection.js";
import type { RoomRefused, RoomWaiter, WorkerHolder, WorkerPool } from "./worker-pool.js";

/**
 * One client session's view of the worker pool: what it borrows is counted as its own, so that
 * the pool makes it wait for room only while it holds nothing another session could wait for
 * (worker-pool.ts): no worker connection, no transaction block, no distributed transaction with
 * locks. Its statements and its transactions (DistributedTransaction) borrow through it.
 */
export class SessionWorkers implements ConnectionPool, WorkerHolder {
  held = 0;
  readonly reserved = new Map<string, number>();
  readonly waiting = new Set<RoomWaiter>();
  /** When its statement's statement_timeout ends a wait for room (ms since the epoch; undefined: none). */
  waitDeadline: number | undefined;
  /** Its distributed transactions that hold locks or workers now. */
  private transactions = 0;

  constructor(
    private readonly pool: WorkerPool,
    /** The session is in a transaction block (its coordinator transaction may hold row locks). */
    private readonly inTransactionBlock: () => boolean,
  ) {}

  get connectionsPerWorker(): number {
    return this.pool.connectionsPerWorker;
  }

  mayWait(): boolean {
    return this.transactions === 0 && !this.inTransactionBlock();
  }

  acquire(server: ServerAddress, login?: string): Promise<WorkerConnection> {
    return this.pool.acquire(server, login, this);
  }

  acquireIdle(server: ServerAddress, login: string): WorkerConnection | undefined {
    return this.pool.acquireIdle(server, login, this);
  }

  release(connection: WorkerConnection): void {
    this.pool.release(connection);
  }

  reserve(servers: readonly ServerAddress[]): Promise<void> {
    return this.pool.reserveFor(servers, this);
  }

  /** A statement begins, with this statement_timeout (ms, 0: none): a wait for room ends with it. */
  statementBegins(timeoutMs: number): void {
    this.waitDeadline = timeoutMs > 0 ? Date.now() + timeoutMs : undefined;
  }

  transactionBegun(): void {
    this.transactions += 1;
  }

  transactionEnded(): void {
    this.transactions -= 1;
    this.unreserve();
  }

  /** Room reserved for a write that ended before it took it (an error, a worker it did not reach). */
  unreserve(): void {
    if (this.transactions === 0 && this.reserved.size > 0) this.pool.unreserveAll(this);
  }

  markDown(server: ServerAddress): void {
    this.pool.markDown(server);
  }

  isDown(server: ServerAddress): boolean {
    return this.pool.isDown(server);
  }

  /** The session's statement was cancelled: it waits for no connection any more. */
  stopWaiting(error: RoomRefused): void {
    this.pool.refuse(this, error);
  }

  /** The session ended: it waits for nothing, and room it reserved goes back at once. */
  end(error: RoomRefused): void {
    this.pool.refuse(this, error);
    this.pool.unreserveAll(this);
  }
}
