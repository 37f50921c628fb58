/**
 * The contracts of DESIGN.md that more than one package relies on. Change them only on purpose:
 * the chart, the CLI, the acceptance checks and the docs all repeat these values.
 */
export const Defaults = {
  /** SQL port of the coordinator in Kubernetes. */
  kubernetesSqlPort: 5432,
  /** SQL port of `herd up`. */
  localSqlPort: 6432,
  /** Admin HTTP port, everywhere (the bot's probes answer on it too). */
  adminPort: 6480,
  /** Port of each worker's PostgreSQL in Kubernetes. */
  workerPostgresPort: 5432,
  /** Port of the coordinator's own (metadata) PostgreSQL in Kubernetes, loopback only. */
  coordinatorPostgresPort: 5433,
  localWorkers: 3,
  localDataDir: ".herd",
  localClusterName: "herd",
  localPassword: "postgres",
  superuser: "postgres",
  database: "postgres",
  shardCount: 32,
  replicationFactor: 2,
  /** Citus starts shard ids here; so do we, so that shard table names look familiar. */
  firstShardId: 102008,
  heartbeatIntervalMs: 5_000,
  /** A worker not heard from for this long is reported `unreachable`. */
  heartbeatTimeoutMs: 15_000,
} as const;

export const PodLabels = {
  role: "herd.dev/role",
  state: "herd.dev/state",
} as const;

export const Roles = ["coordinator", "worker"] as const;
export type Role = (typeof Roles)[number];

export const PodStates = ["starting", "ready", "draining"] as const;
export type PodState = (typeof PodStates)[number];
