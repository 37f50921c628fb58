import { createLogger, type Logger } from "@herd/shared";
import { ClusterCredentials } from "../connection/cluster-credentials.js";
import type { PgConnection } from "../connection/pg-connection.js";
import type { SessionSettings } from "../connection/session-settings.js";
import type { WorkerConnection } from "../connection/worker-connection.js";
import type { ExecutionPort } from "../executor/execution-port.js";
import type { SqlPreparedStatement } from "../executor/primitives/sql-prepared.js";
import type { ResultSink } from "../executor/result-sink.js";
import type { SessionNames } from "../executor/session-names.js";
import type { SessionCatalogSource, StalePlacement } from "../metadata/catalog.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import type { Frame } from "../protocol/message-framer.js";
import { DistributedTransaction } from "../transaction/distributed-transaction.js";
import { FinishingCommits } from "../transaction/finishing-commits.js";
import { FakeCoordinator } from "./fake-coordinator.js";
import type { FakeWorkers } from "./fake-workers.js";

/**
 * A port that fails the test when a plan step reaches for anything: planning and describing a
 * plan must need no server at all.
 */
export function untouchablePort(): ExecutionPort {
  return describingPort(undefined);
}

/**
 * A port that only lends the coordinator's PostgreSQL (`backend`, for a merge's describe of types
 * on the shell tables); anything else a plan reaches for fails the test.
 */
export function describingPort(backend: PgConnection | undefined): ExecutionPort {
  return new Proxy({} as ExecutionPort, {
    get(_target, member) {
      if (member === "backend" && backend) return backend;
      throw new Error(`the plan reached the port's ${String(member)}`);
    },
  });
}

export interface FakePortOptions {
  readonly catalog: CatalogSnapshot;
  readonly workers: FakeWorkers;
  /** In a transaction block on the coordinator. */
  readonly inBlock?: boolean;
}

/**
 * A port over fake workers; its coordinator PostgreSQL answers only what a distributed
 * transaction asks of it (FakeCoordinator): a step that needs more fails.
 */
export class FakePort implements ExecutionPort {
  readonly catalog: SessionCatalogSource;
  readonly workers: FakeWorkers;
  readonly transaction: DistributedTransaction;
  readonly busyWorkers = new Set<WorkerConnection>();
  cancelRequested = false;
  readonly sqlPrepared = new Map<string, SqlPreparedStatement>();
  heldWrite: DistributedTransaction | undefined;
  rolesChanged = false;
  readonly defaults = { shardCount: 32, replicationFactor: 2 };
  readonly cluster = {
    recoverPreparedTransactions: async () => 0,
    copyShardPlacement: async () => {},
    replicateReferenceTables: async () => 0,
    moveShardPlacement: async () => {},
    jobs: () => undefined,
    credentials: new ClusterCredentials("internal-password", "sql-password"),
    syncRoles: async () => 0,
  };
  readonly lines: string[] = [];
  /** How many times a statement loaded the catalog again (after changing the metadata). */
  catalogReloads = 0;
  /** Placements a commit marked stale because its COMMIT PREPARED did not reach them. */
  readonly staleMarks: StalePlacement[] = [];
  readonly logger: Logger;
  readonly coordinator: FakeCoordinator;
  private readonly inBlock: boolean;

  constructor(options: FakePortOptions) {
    this.catalog = {
      current: options.catalog,
      relationsEpoch: 0,
      reload: async () => {
        this.catalogReloads += 1;
      },
      blockSnapshot: () => undefined,
      markStale: async (placements) => {
        this.staleMarks.push(...placements);
        return [];
      },
      changedInBlock: async () => {},
      blockEnded: async () => {},
    };
    this.workers = options.workers;
    this.logger = createLogger("test", { write: (line) => this.lines.push(line) });
    this.coordinator = new FakeCoordinator(options.catalog);
    this.inBlock = options.inBlock ?? false;
    if (this.inBlock) this.coordinator.status = "T";
    this.transaction = new DistributedTransaction(
      {
        backend: this.backend,
        pool: options.workers,
        logger: this.logger,
        catalog: this.catalog,
        defer: (finishing, targets) => this.afterCommit(finishing, targets),
      },
      "block",
    );
  }

  /** Plans run here are planned by the test itself, names resolved by the fixture catalog. */
  get names(): SessionNames {
    throw new Error("the fake port resolves no names through a search_path");
  }

  /** The fake coordinator, standing in where a distributed transaction uses the session's connection. */
  get backend(): PgConnection {
    return this.coordinator as unknown as PgConnection;
  }

  relay(_request: Buffer, _sink: ResultSink): Promise<boolean> {
    throw new Error("the fake port has no coordinator PostgreSQL");
  }

  inTransactionBlock(): boolean {
    return this.inBlock;
  }

  private readonly finishing = new FinishingCommits();

  afterCommit(finishing: Promise<void>, targets: readonly string[]): Promise<void> {
    return this.finishing.add(finishing, targets);
  }

  /** (every commit: tests look at what the workers were sent once it is all done) */
  quiesce(): Promise<void> {
    return this.finishing.settled();
  }

  settings(): SessionSettings {
    return { values: new Map(), key: "[]" };
  }

  nextClientMessage(): Promise<Frame> {
    throw new Error("the fake port has no client");
  }
}
