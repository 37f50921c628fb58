import type { TransactionStatus } from "../protocol/backend-messages.js";
import type { Exchange, QueryResult } from "./pg-connection.js";

/**
 * What the executor and the transaction code use of a connection to a worker (PgConnection is
 * the real one): requests are pipelined, each answered through its Exchange. Tests implement it to
 * record what a plan sends where and to answer as a worker would.
 */
export interface WorkerConnection {
  /** `host:port` of the server. */
  readonly target: string;
  /** The role it logged in as (a pool lends it only for that role). */
  readonly login: string;
  /** The server's backend process (BackendKeyData): what pg_locks and pg_blocking_pids call it. */
  readonly processId: number;
  /** The transaction status after the last answered request. */
  readonly status: TransactionStatus;
  /** Every request sent has been answered. */
  readonly idle: boolean;
  /** Why the connection is unusable, once it is. */
  readonly broken: Error | undefined;
  /** Worker-side prepared statements: SQL text → statement name. */
  readonly prepared: Map<string, string>;
  /** The session settings last applied to this connection (see applySettings). */
  appliedSettings: string;
  /** Sends `request` (which must end with Sync or be a Query) and resolves at its ReadyForQuery. */
  exchange(request: Buffer | undefined, exchange: Exchange): Promise<TransactionStatus>;
  /** Writes bytes that are part of a request already under way (CopyData, CopyDone); false: wait for `onceDrained`. */
  write(bytes: Buffer): boolean;
  /** Calls `resume` once what was written has gone out (after write said false). */
  onceDrained(resume: () => void): void;
  /** Runs SQL (with text parameters when given) and gathers its rows; a server error is thrown. */
  query(sql: string, parameters?: readonly (string | null)[]): Promise<QueryResult>;
  /** Stops reading answers (the receiver is full) until `resume`. */
  pause(): void;
  resume(): void;
  /** Asks the server to cancel what this connection is running. */
  cancel(): Promise<void>;
  /** Ends the session politely (PostgreSQL rolls back what is open). */
  close(): void;
  destroy(): void;
}

/** A server a pool connects to. */
export interface ServerAddress {
  readonly host: string;
  readonly port: number;
}

/** The pooled connections to the workers (WorkerPool is the real one). */
export interface ConnectionPool {
  /** Connections a multi-shard read uses per worker at most (its shards are spread over them). */
  readonly connectionsPerWorker: number;
  /** A connection logged in as `login` (default: herd's own, the superuser). */
  acquire(server: ServerAddress, login?: string): Promise<WorkerConnection>;
  /**
   * An idle connection logged in as `login` that may be had right now without waiting; undefined:
   * use `acquire`. Optional: a pool without it always goes through `acquire`.
   */
  acquireIdle?(server: ServerAddress, login: string): WorkerConnection | undefined;
  /** Gives a connection back: kept when it is healthy, idle and outside a transaction. */
  release(connection: WorkerConnection): void;
  /** A read could not reach this server: reads prefer other placements for a while. */
  markDown(server: ServerAddress): void;
  isDown(server: ServerAddress): boolean;
  /**
   * Room for one connection to each of `servers`, taken before a write locks anything: a capped
   * pool makes the session wait here, holding nothing (connection/worker-pool.ts). Optional: an
   * uncapped pool has nothing to wait for.
   */
  reserve?(servers: readonly ServerAddress[]): Promise<void>;
  /** A distributed transaction of the session took its first lock or worker (it must not wait for room now). */
  transactionBegun?(): void;
  /** That transaction ended: room it reserved and did not take goes back. */
  transactionEnded?(): void;
  /** Gives back room reserved and not taken, unless a transaction of the session still runs. */
  unreserve?(): void;
}
