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
  readonly tls?: { readonly cert: string; readonly key: string };
}
