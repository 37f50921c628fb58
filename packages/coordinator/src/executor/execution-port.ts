import type { Logger } from "@herd/shared";
import type { ClusterCredentials } from "../connection/cluster-credentials.js";
import type { PgConnection } from "../connection/pg-connection.js";
import type { SessionSettings } from "../connection/session-settings.js";
import type { ConnectionPool, WorkerConnection } from "../connection/worker-connection.js";
import type { SessionCatalogSource } from "../metadata/catalog.js";
import type { DistributeDefaults } from "../operations/distribute-table.js";
import type { JobRunner } from "../operations/job-runner.js";
import type { PlacementCopyRequest } from "../operations/placement-repair.js";
import type { MoveRequest } from "../operations/placement-service.js";
import type { Frame } from "../protocol/message-framer.js";
import type { DistributedTransaction } from "../transaction/distributed-transaction.js";
import type { SqlPreparedStatement } from "./primitives/sql-prepared.js";
import type { ResultSink } from "./result-sink.js";
import type { SessionNames } from "./session-names.js";

/** What herd's SQL functions use of the job runner (which runs in the first coordinator process). */
export type ClusterJobs = Pick<JobRunner, "plan" | "startRebalance" | "startDrain" | "list" | "wait">;

/** Cluster-wide services a statement may call on (herd's SQL functions). */
export interface ClusterServices {
  /** One pass of prepared-transaction recovery now; resolves with how many it finished. */
  recoverPreparedTransactions(): Promise<number>;
  /** citus_copy_shard_placement: copies (or repairs) a shard and those colocated with it onto another worker. */
  copyShardPlacement(request: PlacementCopyRequest): Promise<void>;
  /** citus_move_shard_placement: moves a shard and those colocated with it to another worker, online. */
  moveShardPlacement(request: MoveRequest): Promise<unknown>;
  /** replicate_reference_tables: every active worker gets the reference tables it lacks now; how many copies. */
  replicateReferenceTables(): Promise<number>;
  /** Rebalances and drains (citus_rebalance_start, citus_rebalance_wait, citus_drain_node). */
  jobs(): ClusterJobs | undefined;
  /** The passwords herd's own logins use (role sync gives each role's to the workers). */
  readonly credentials: ClusterCredentials;
  /** Makes every active worker's roles the coordinator's now; resolves with how many statements it took. */
  syncRoles(): Promise<number>;
}

/**
 * Everything a running plan may reach, and nothing else (after Vitess's VCursor): the shards'
 * connections, the session's own PostgreSQL, the transaction block, the client's next message.
 * The session implements it (session/session-port.ts); tests implement it to record calls.
 * Answers go to the ResultSink given with each execution, never through the port.
 */
export interface ExecutionPort {
  /** The metadata, live: operations that change it load it again. */
  readonly catalog: SessionCatalogSource;
  /** The session's own connection to the coordinator's PostgreSQL. */
  readonly backend: PgConnection;
  /** What unqualified relation names mean in the session (its search_path). */
  readonly names: SessionNames;
  /**
   * Runs a request on the coordinator's PostgreSQL and passes its answers (all but the
   * ReadyForQuery) to `sink`; resolves false when PostgreSQL answered with an error.
   * `extended`: the request is Parse/Bind/… of a statement whose ParseComplete and BindComplete
   * herd answered already, so PostgreSQL's are dropped.
   */
  relay(request: Buffer, sink: ResultSink, extended: boolean): Promise<boolean>;
  /** Pooled connections to the workers. */
  readonly workers: ConnectionPool;
  /** The client's transaction block as a distributed transaction (its workers, its commit). */
  readonly transaction: DistributedTransaction;
  /**
   * A write's own transaction whose locks are held while the write is planned again (its shards'
   * placements changed since its plan): the next attempt goes on in it (write-transaction.ts).
   */
  heldWrite: DistributedTransaction | undefined;
  /** Worker connections running one of this session's statements now (what a cancel reaches). */
  readonly busyWorkers: Set<WorkerConnection>;
  /**
   * A CancelRequest came for the statement under way: nothing more of it starts on a worker (a
   * part not sent yet when the cancel came would otherwise run to its end).
   */
  cancelRequested: boolean;
  /**
   * A role statement ran inside the transaction block: once the block has ended, the workers'
   * roles are synced before the session's next statement reaches them.
   */
  rolesChanged: boolean;
  /** Statements the session prepared with SQL PREPARE that read distributed tables, by name. */
  readonly sqlPrepared: Map<string, SqlPreparedStatement>;
  /** In a transaction block (BEGIN … COMMIT) on the coordinator. */
  inTransactionBlock(): boolean;
  /** Settings worker connections must share with the session (TimeZone, DateStyle, …). */
  settings(): SessionSettings;
  /**
   * The client's next message (COPY data): the message itself when it has come already (COPY
   * reads one per row from psql, which would cost a promise and an await each), else a promise.
   */
  nextClientMessage(): Frame | Promise<Frame>;
  /**
   * Takes the workers' end of a committed transaction (COMMIT PREPARED), to finish while the
   * client is answered (transaction/finishing-commits.ts); `targets` are the workers it commits on.
   * Resolves when the client may be answered.
   */
  afterCommit(finishing: Promise<void>, targets: readonly string[]): Promise<void>;
  /**
   * Resolves once the commits acknowledged before, on the workers this session's transaction block
   * already holds connections to, have finished there (the pool waits for the others' when it lends
   * a connection).
   */
  quiesce(): Promise<void>;
  /** Shard count and replication factor of new distributed tables. */
  readonly defaults: DistributeDefaults;
  readonly cluster: ClusterServices;
  readonly logger: Logger;
}
