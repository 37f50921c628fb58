/** What the first coordinator process tells another when it starts it (JSON over the IPC channel). */
export interface SqlProcessConfig {
  /** 1, 2, …: the first process is 0. */
  readonly index: number;
  /** Processes serving the SQL port in all. */
  readonly processes: number;
  readonly metadata: {
    readonly host: string;
    readonly port: number;
    readonly user: string;
    readonly password: string;
    readonly database: string;
  };
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
  readonly connectionLimits?: {
    readonly maxConnections: number;
    readonly reservedForSuperusers?: number;
    readonly maxUnauthenticated: number;
    readonly authTimeoutMs: number;
  };
  readonly tls?: { readonly cert: string; readonly key: string };
}
