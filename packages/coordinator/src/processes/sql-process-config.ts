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
  /** This process's share of the SQL port's limits. */
  readonly connectionLimits?: {
    readonly maxConnections: number;
    readonly reservedForSuperusers?: number;
    readonly maxUnauthenticated: number;
    readonly authTimeoutMs: number;
  };
  readonly tls?: { readonly cert: string; readonly key: string };
}

/** One process's share of the SQL port's limits, when `processes` share the port. */
export function shareOfLimits<
  T extends { maxConnections: number; reservedForSuperusers?: number; maxUnauthenticated: number },
>(limits: T, processes: number): T {
  if (processes <= 1) return limits;
  return {
    ...limits,
    maxConnections: Math.max(1, Math.ceil(limits.maxConnections / processes)),
    // (ProtocolServer's default: 3, as PostgreSQL's superuser_reserved_connections)
    reservedForSuperusers: Math.ceil((limits.reservedForSuperusers ?? 3) / processes),
    maxUnauthenticated: Math.max(1, Math.ceil(limits.maxUnauthenticated / processes)),
  };
}
