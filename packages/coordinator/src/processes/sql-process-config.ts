/** The coordinator's own PostgreSQL, which holds the metadata (password: the internal one). */
export interface MetadataServer {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
}

/** The SQL port's limits: authenticated sessions, connections still authenticating, time to authenticate (ms). */
export interface ConnectionLimits {
  readonly maxConnections: number;
  readonly reservedForSuperusers?: number;
  readonly maxUnauthenticated: number;
  readonly authTimeoutMs: number;
}

/** What the first coordinator process tells another when it starts it (JSON over the IPC channel). */
export interface SqlProcessConfig {
  /** 1, 2, …: the first process is 0. */
  readonly index: number;
  /** Processes serving the SQL port in all. */
  readonly processes: number;
  readonly metadata: MetadataServer;
  readonly sqlPassword: string;
  readonly sqlHost: string;
  readonly sqlPort: number;
  readonly shardCount: number;
  readonly replicationFactor: number;
  readonly shardConnectionsPerWorker?: number;
  /**
   * The SQL port's limits: session slots are counted for all processes by the first (SessionSlots);
   * each process refuses a flood of connections still authenticating on its own.
   */
  readonly connectionLimits?: ConnectionLimits;
  /** Connections to the coordinator's PostgreSQL each process's sessions share (backendsPerProcess). */
  readonly maxBackends: number;
  /** Connections to each worker each process keeps open at most (workerConnectionsPerProcess). */
  readonly workerConnections: number;
  readonly tls?: { readonly cert: string; readonly key: string };
}

/** Connections to the coordinator's PostgreSQL kept for herd itself (metadata pools, the bot, superusers' slack). */
const RESERVED_BACKENDS = 20;

/**
 * How many connections to the coordinator's PostgreSQL each SQL process's sessions may share:
 * its max_connections, less what herd needs itself, split between the processes.
 */
export function backendsPerProcess(maxConnections: number, processes: number): number {
  return Math.max(4, Math.floor((maxConnections - RESERVED_BACKENDS - 4 * processes) / processes));
}

/** Connections each worker gets from the coordinator's processes together, unless told otherwise. */
export const DEFAULT_WORKER_CONNECTIONS = 16;

/**
 * Each SQL process's share of the connections a worker gets from the coordinator (`total`, all
 * processes together): at least 2, so a process can always run a statement and a transaction.
 */
export function workerConnectionsPerProcess(total: number, processes: number): number {
  return Math.max(2, Math.floor(total / processes));
}

/**
 * The first process's share for its sessions: one less, kept for herd's own work on the workers,
 * which runs in that process and never waits for room (2PC recovery every few seconds, repairs,
 * moves, DDL). So `total` bounds the connections a worker sees from the coordinator, herd's own
 * included, while herd's own work needs one at a time.
 */
export function workerConnectionsOfFirstProcess(total: number, processes: number): number {
  return Math.max(2, workerConnectionsPerProcess(total, processes) - 1);
}
