import type { Logger } from "@herd/shared";
import type { PgConnection } from "../connection/pg-connection.js";
import type { SessionSettings } from "../connection/session-settings.js";
import type { ConnectionPool, WorkerConnection } from "../connection/worker-connection.js";
import type { ClusterServices, ExecutionPort } from "../executor/execution-port.js";
import type { SqlPreparedStatement } from "../executor/primitives/sql-prepared.js";
import type { ResultSink } from "../executor/result-sink.js";
import { SessionNames } from "../executor/session-names.js";
import { BlockCatalog } from "../metadata/block-catalog.js";
import type { Catalog, SessionCatalogSource } from "../metadata/catalog.js";
import type { DistributeDefaults } from "../operations/distribute-table.js";
import { peers } from "../processes/peers.js";
import type { Frame } from "../protocol/message-framer.js";
import type { DistributedTransaction } from "../transaction/distributed-transaction.js";
import { finishingCommits } from "../transaction/finishing-commits.js";
import type { BackendRelay } from "./backend-relay.js";

/** What a session lends its port. */
export interface SessionPortParts {
  readonly catalog: Catalog;
  readonly backend: PgConnection;
  readonly relay: BackendRelay;
  readonly workers: ConnectionPool;
  readonly transaction: DistributedTransaction;
  readonly defaults: DistributeDefaults;
  readonly cluster: ClusterServices;
  readonly logger: Logger;
  readonly settings: () => SessionSettings;
  readonly nextClientMessage: () => Frame | Promise<Frame>;
  /** The session's database, when it is not the one holding herd's metadata. */
  readonly foreignDatabase?: string;
}

/** The ExecutionPort of one client session: its PostgreSQL connection, its transaction block, the shared pools. */
export class SessionPort implements ExecutionPort {
  readonly catalog: SessionCatalogSource;
  readonly backend: PgConnection;
  readonly workers: ConnectionPool;
  readonly transaction: DistributedTransaction;
  readonly defaults: DistributeDefaults;
  readonly cluster: ClusterServices;
  readonly logger: Logger;
  readonly busyWorkers = new Set<WorkerConnection>();
  cancelRequested = false;
  readonly sqlPrepared = new Map<string, SqlPreparedStatement>();
  readonly names: SessionNames;
  heldWrite: DistributedTransaction | undefined;
  rolesChanged = false;

  constructor(private readonly parts: SessionPortParts) {
    this.catalog = new BlockCatalog(parts.catalog, parts.backend, parts.foreignDatabase);
    this.backend = parts.backend;
    this.names = new SessionNames(parts.backend, this.catalog);
    this.workers = parts.workers;
    this.transaction = parts.transaction;
    this.defaults = parts.defaults;
    this.cluster = parts.cluster;
    this.logger = parts.logger;
  }

  afterCommit(finishing: Promise<void>, targets: readonly string[]): Promise<void> {
    return finishingCommits.add(finishing, targets, peers().count > 0);
  }

  quiesce(): Promise<void> {
    if (finishingCommits.idle) return Promise.resolve();
    return finishingCommits.settled(this.transaction.targets());
  }

  async relay(request: Buffer, sink: ResultSink, extended: boolean): Promise<boolean> {
    const exchange = this.parts.relay.exchange(true, extended, sink);
    await this.backend.exchange(request, exchange);
    return !exchange.sawError;
  }

  inTransactionBlock(): boolean {
    // a write's own transaction, held open while the write is planned again, is not the client's
    return this.backend.status !== "I" && this.heldWrite === undefined;
  }

  settings(): SessionSettings {
    return this.parts.settings();
  }

  nextClientMessage(): Frame | Promise<Frame> {
    return this.parts.nextClientMessage();
  }
}
