import { hostname } from "node:os";
import { Defaults, HerdError, type PodIdentity, parsePodName, type Role, roleForOrdinal, SqlState } from "@herd/shared";
import { usableCores } from "./usable-cores.js";

/** Everything a bot needs to know, read once from its environment (the Pod spec, or `herd up`). */
export interface BotConfig {
  readonly pod: PodIdentity;
  readonly role: Role;
  /** Data written by one cluster is never started by another: see volume-identity.ts. */
  readonly clusterId: string;
  /** The pod's volume: PostgreSQL's data directory and herd's own files live below it. */
  readonly volumeDir: string;
  readonly pgPort: number;
  readonly pgListen: string;
  /** Host name other nodes reach this pod's PostgreSQL at (its stable DNS name in Kubernetes). */
  readonly advertiseHost: string;
  readonly sqlHost: string;
  readonly sqlPort: number;
  /** Coordinator: the admin API. Worker: the bot's probe server. */
  readonly adminHost: string;
  readonly adminPort: number;
  /** Base URL of the coordinator's admin API (workers register there). */
  readonly coordinatorUrl: string;
  readonly adminToken: string;
  /** The SQL user `postgres`'s password on the SQL port (HERD_PASSWORD). */
  readonly password: string;
  /**
   * herd's own password (HERD_INTERNAL_PASSWORD): the superuser's on every PostgreSQL of the
   * cluster, and the key of each role's worker password. A cluster made before it existed runs
   * with the SQL password in its place until the variable is set (the chart always sets it).
   */
  readonly internalPassword: string;
  readonly shardCount: number;
  /** Connections a multi-shard read opens per worker (`HERD_SHARD_CONNECTIONS`, default 2). */
  readonly shardConnectionsPerWorker: number;
  /**
   * Coordinator processes serving the SQL port (`HERD_SQL_PROCESSES`: a number, or `auto`, the
   * default: one per core the process may use, its cgroup's CPU limit counted). They share the port
   * and the connection limits.
   */
  readonly sqlProcesses: number;
  /**
   * Connections to the coordinator's PostgreSQL that client sessions share between transactions
   * (`HERD_COORDINATOR_BACKENDS`, all processes together; default: its max_connections less what
   * herd itself needs). A session holds one only during a statement or transaction, or for good
   * once it made session state (SET, PREPARE, a temporary table, LISTEN, …).
   */
  readonly coordinatorBackends: number | undefined;
  /**
   * Connections each worker's PostgreSQL gets from the coordinator (`HERD_WORKER_CONNECTIONS`, all
   * coordinator processes together, herd's own work's one included, default 16). A session holds
   * one only while a statement or transaction block uses it; sessions holding none wait for room.
   */
  readonly workerConnections: number;
  /** How often the coordinator looks for stale placements to repair (`HERD_REPAIR_INTERVAL_MS`, default 5000). */
  readonly repairIntervalMs: number;
  /**
   * The SQL port's limits: authenticated sessions (`HERD_MAX_CONNECTIONS`, default 250), connections
   * still authenticating, counted apart (`HERD_MAX_UNAUTHENTICATED`, default 32), and the time one
   * has to authenticate (`HERD_AUTH_TIMEOUT_MS`, default 10000).
   */
  readonly connectionLimits: {
    readonly maxConnections: number;
    /** Of those, kept for superusers (`HERD_SUPERUSER_RESERVED_CONNECTIONS`, default 3). */
    readonly reservedForSuperusers: number;
    readonly maxUnauthenticated: number;
    readonly authTimeoutMs: number;
  };
  readonly replicationFactor: number;
  /** A worker that joins gets the reference tables and a rebalance starts (`HERD_AUTO_REBALANCE`, default on). */
  readonly autoRebalance: boolean;
  /** A worker not heard from for this long has its copies made again elsewhere (`HERD_REPLACE_LOST_AFTER_S`, 0: never). */
  readonly replaceLostAfterMs: number;
  readonly heartbeatIntervalMs: number;
  readonly heartbeatTimeoutMs: number;
  /** Extra PostgreSQL settings (`HERD_PG_SETTINGS`, a JSON object). */
  readonly pgSettings: Readonly<Record<string, string>>;
  /** PEM files for TLS on the SQL port (`HERD_TLS_CERT_FILE`, `HERD_TLS_KEY_FILE`); both or neither. */
  readonly tlsFiles: { readonly certFile: string; readonly keyFile: string } | undefined;
  /** Set in a Kubernetes pod (KUBERNETES_SERVICE_HOST): the bot labels its Pod, the coordinator watches workers. */
  readonly kubernetes: KubernetesConfig | undefined;
}

export interface KubernetesConfig {
  readonly namespace: string;
  /** The stable DNS name of a pod of this StatefulSet. */
  readonly dnsName: (podName: string) => string;
  /** Extra label selector for the worker pods of this cluster (`HERD_POD_SELECTOR`, set by the chart). */
  readonly podSelector: string | undefined;
}

/**
 * Reads the bot's configuration. In Kubernetes the Pod gives POD_NAME, POD_NAMESPACE and
 * HERD_HEADLESS_SERVICE, from which the stable DNS names follow; `herd up` sets the addresses
 * explicitly instead. Secrets (HERD_PASSWORD, HERD_ADMIN_TOKEN; HERD_INTERNAL_PASSWORD) are required: a bot never
 * invents credentials that the rest of the cluster could not know.
 */
export function loadBotConfig(rawEnv: NodeJS.ProcessEnv = process.env): BotConfig {
  // An empty variable (`FOO=` in a manifest) means "not set", for strings as for numbers.
  const env = Object.fromEntries(Object.entries(rawEnv).filter(([, value]) => value !== ""));
  const pod = parsePodName(env.POD_NAME ?? hostname());
  const role = roleForOrdinal(pod.ordinal);
  const namespace = env.POD_NAMESPACE ?? "default";
  const headless = env.HERD_HEADLESS_SERVICE;
  const dnsName = (name: string) => `${name}.${headless}.${namespace}.svc.cluster.local`;
  const adminPort = port(env, "HERD_ADMIN_PORT", Defaults.adminPort);
  const coordinatorUrl =
    env.HERD_COORDINATOR_URL ?? (headless ? `http://${dnsName(`${pod.statefulSet}-0`)}:${adminPort}` : undefined);
  if (role === "worker" && !coordinatorUrl) {
    throw configError("HERD_COORDINATOR_URL", "a worker must know where the coordinator is", {
      hint: "Set HERD_COORDINATOR_URL, or HERD_HEADLESS_SERVICE in a StatefulSet.",
    });
  }
  return {
    pod,
    role,
    clusterId: env.HERD_CLUSTER_ID ?? `${namespace}/${pod.statefulSet}`,
    volumeDir: env.HERD_DATA_DIR ?? "/var/lib/herd",
    pgPort: port(
      env,
      "HERD_PG_PORT",
      role === "coordinator" ? Defaults.coordinatorPostgresPort : Defaults.workerPostgresPort,
    ),
    // The coordinator's own PostgreSQL is reached only through the coordinator.
    pgListen: env.HERD_PG_LISTEN ?? (role === "coordinator" ? "127.0.0.1" : "*"),
    advertiseHost: env.HERD_ADVERTISE_HOST ?? (headless ? dnsName(pod.podName) : hostname()),
    sqlHost: env.HERD_SQL_HOST ?? "0.0.0.0",
    sqlPort: port(env, "HERD_SQL_PORT", Defaults.kubernetesSqlPort),
    adminHost: env.HERD_ADMIN_HOST ?? "0.0.0.0",
    adminPort,
    coordinatorUrl: coordinatorUrl ?? `http://127.0.0.1:${adminPort}`,
    adminToken: required(env, "HERD_ADMIN_TOKEN"),
    password: required(env, "HERD_PASSWORD"),
    internalPassword: env.HERD_INTERNAL_PASSWORD ?? required(env, "HERD_PASSWORD"),
    shardCount: integer(env, "HERD_SHARD_COUNT", Defaults.shardCount, 1, 10_000),
    shardConnectionsPerWorker: integer(env, "HERD_SHARD_CONNECTIONS", 2, 1, 64),
    sqlProcesses:
      (env.HERD_SQL_PROCESSES ?? "auto") === "auto" ? usableCores() : integer(env, "HERD_SQL_PROCESSES", 1, 1, 256),
    coordinatorBackends:
      env.HERD_COORDINATOR_BACKENDS === undefined
        ? undefined
        : integer(env, "HERD_COORDINATOR_BACKENDS", 0, 1, 100_000),
    workerConnections: integer(env, "HERD_WORKER_CONNECTIONS", 16, 1, 100_000),
    repairIntervalMs: integer(env, "HERD_REPAIR_INTERVAL_MS", 5_000, 100, 86_400_000),
    connectionLimits: {
      maxConnections: integer(env, "HERD_MAX_CONNECTIONS", 250, 1, 100_000),
      reservedForSuperusers: integer(env, "HERD_SUPERUSER_RESERVED_CONNECTIONS", 3, 0, 100_000),
      maxUnauthenticated: integer(env, "HERD_MAX_UNAUTHENTICATED", 32, 1, 100_000),
      authTimeoutMs: integer(env, "HERD_AUTH_TIMEOUT_MS", 10_000, 100, 600_000),
    },
    replicationFactor: integer(env, "HERD_REPLICATION_FACTOR", Defaults.replicationFactor, 1, 16),
    autoRebalance: !["0", "false", "off", "no"].includes((env.HERD_AUTO_REBALANCE ?? "on").toLowerCase()),
    heartbeatIntervalMs: integer(env, "HERD_HEARTBEAT_INTERVAL_MS", Defaults.heartbeatIntervalMs, 100, 600_000),
    replaceLostAfterMs: integer(env, "HERD_REPLACE_LOST_AFTER_S", 900, 0, 30 * 86_400) * 1000,
    heartbeatTimeoutMs: integer(env, "HERD_HEARTBEAT_TIMEOUT_MS", Defaults.heartbeatTimeoutMs, 300, 3_600_000),
    pgSettings: settings(env.HERD_PG_SETTINGS),
    tlsFiles: tlsFiles(env.HERD_TLS_CERT_FILE, env.HERD_TLS_KEY_FILE),
    kubernetes: env.KUBERNETES_SERVICE_HOST ? kubernetes(env, namespace, headless, dnsName) : undefined,
  };
}

function kubernetes(
  env: NodeJS.ProcessEnv,
  namespace: string,
  headless: string | undefined,
  dnsName: (name: string) => string,
): KubernetesConfig {
  if (!headless) {
    throw configError("HERD_HEADLESS_SERVICE", "is required in Kubernetes", {
      hint: "The chart sets it to the StatefulSet's headless Service; pods are named through it.",
    });
  }
  return { namespace, dnsName, podSelector: env.HERD_POD_SELECTOR };
}

function required(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  if (!value) throw configError(name, "is required and empty");
  return value;
}

function port(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  return integer(env, name, fallback, 1, 65535);
}

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const text = env[name];
  if (text === undefined || text === "") return fallback;
  // plain digits only: Number() would also take "0x1F90", "1e3" or " 5432 "
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw configError(name, `must be a whole number from ${min} to ${max}, not "${text}"`);
  }
  return value;
}

function settings(text: string | undefined): Record<string, string> {
  if (!text) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw configError("HERD_PG_SETTINGS", "must be a JSON object of PostgreSQL settings");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw configError("HERD_PG_SETTINGS", "must be a JSON object of PostgreSQL settings");
  }
  const result: Record<string, string> = {};
  for (const [name, value] of Object.entries(parsed)) {
    if (!/^[a-z_][a-z0-9_.]*$/.test(name))
      throw configError("HERD_PG_SETTINGS", `has an invalid setting name "${name}"`);
    result[name] = String(value);
  }
  return result;
}

function tlsFiles(certFile: string | undefined, keyFile: string | undefined) {
  if (!certFile && !keyFile) return undefined;
  if (!certFile || !keyFile) {
    throw configError(
      certFile ? "HERD_TLS_KEY_FILE" : "HERD_TLS_CERT_FILE",
      "is required when the other TLS file is set",
    );
  }
  return { certFile, keyFile };
}

function configError(name: string, problem: string, extra: { hint?: string } = {}): HerdError {
  return new HerdError(`${name} ${problem}`, { sqlState: SqlState.configFileError, ...extra });
}
