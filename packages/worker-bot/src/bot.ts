import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Coordinator } from "@herd/coordinator";
import { CATALOG_EXTENSION_DIR } from "@herd/coordinator/server-setup";
import { Defaults, type Logger, sleep } from "@herd/shared";
import type { BotConfig } from "./bot-config.js";
import type { KubeApi } from "./kubernetes/kube-api.js";
import { findPgBinaries, PostgresServer, resolveRunAs, shellGuardLibrary, withShellGuard } from "./postgres/index.js";
import { claimVolume } from "./volume-identity.js";
import { ProbeServer } from "./worker/probe-server.js";
import { Registrar } from "./worker/registrar.js";

export interface RunningBot {
  readonly postgres: PostgresServer;
  /** Settles with the exit code the process should end with. */
  readonly done: Promise<number>;
  stop(reason: string): Promise<void>;
}

/**
 * The bot, PID 1 of every pod: starts this pod's PostgreSQL on its volume, then plays the pod's
 * role. Ordinal 0 runs the coordinator on top of it; every other ordinal registers as a worker
 * and keeps a heartbeat. Stopping undoes it all in reverse, PostgreSQL last.
 *
 * In Kubernetes the bot also labels its own Pod (`herd.dev/state`: starting → ready → draining on
 * stop), and the coordinator watches the worker Pods.
 */
export async function runBot(config: BotConfig, logger: Logger): Promise<RunningBot> {
  const k8s = config.kubernetes && (await loadKubernetes());
  const kube = config.kubernetes && k8s?.inClusterKubeApi(config.kubernetes.namespace);
  const labeler =
    kube &&
    k8s &&
    new k8s.PodLabeler({ api: kube, podName: config.pod.podName, role: config.role, logger: logger.child("labels") });
  void labeler?.set("starting");
  await mkdir(config.volumeDir, { recursive: true });
  await claimVolume(config.volumeDir, config.clusterId, config.pod.podName);
  const postgres = new PostgresServer({
    binaries: await findPgBinaries(),
    dataDir: join(config.volumeDir, "pgdata"),
    logFile: join(config.volumeDir, "postgres.log"),
    port: config.pgPort,
    listenAddresses: config.pgListen,
    superuserPassword: config.internalPassword,
    // a volume made before the internal password existed: its superuser had the SQL password
    formerSuperuserPasswords: [config.password],
    runAs: resolveRunAs(),
    // only the coordinator holds shells; its PostgreSQL refuses statements that reach one
    settings: config.role === "coordinator" ? coordinatorSettings(config.pgSettings, logger) : config.pgSettings,
    logger: logger.child("postgres"),
  });
  let resolveDone: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => {
    resolveDone = resolve;
  });
  const teardown: (() => Promise<void>)[] = [() => postgres.stop()];
  let stopping: Promise<void> | undefined;
  const stop = (reason: string, code = 0) => {
    stopping ??= (async () => {
      logger.info("stopping", { reason });
      if (labeler) {
        // tell the cluster first, while PostgreSQL still serves; never let the API server hold up a stop
        await Promise.race([labeler.set("draining"), sleep(DRAINING_LABEL_WAIT_MS)]);
        labeler.stop();
      }
      for (const step of teardown.reverse()) await step().catch((error) => logger.warn(String(error)));
      logger.info("stopped");
      resolveDone(code);
    })();
    return stopping;
  };
  postgres.on("failed", () => void stop("PostgreSQL keeps crashing", 1));

  try {
    await postgres.start();
    if (config.role === "coordinator") {
      const coordinator = await startCoordinatorRole(config, postgres, logger);
      teardown.push(() => coordinator.stop());
      if (kube && k8s) {
        const discovery = watchWorkerPods(k8s, config, kube, coordinator, logger);
        await discovery.start();
        teardown.push(() => discovery.stop());
      }
    } else {
      const worker = await startWorkerRole(config, postgres, logger);
      teardown.push(...worker);
    }
  } catch (error) {
    await stop("start failed", 1);
    throw error;
  }
  void labeler?.set("ready");
  return { postgres, done, stop: (reason) => stop(reason) };
}

/** How long a stopping bot waits for its Pod's `draining` label before going on. */
const DRAINING_LABEL_WAIT_MS = 5_000;

/**
 * The Kubernetes side of the bot, loaded only in Kubernetes: the client library alone takes some
 * 40 MB of heap (and 60 MB of RSS) in every process that loads it, for nothing under `herd up`.
 */
async function loadKubernetes() {
  const [api, labels, discovery] = await Promise.all([
    import("./kubernetes/kube-api.js"),
    import("./kubernetes/pod-labeler.js"),
    import("./kubernetes/worker-pod-discovery.js"),
  ]);
  return {
    inClusterKubeApi: api.inClusterKubeApi,
    PodLabeler: labels.PodLabeler,
    WorkerPodDiscovery: discovery.WorkerPodDiscovery,
  };
}

function watchWorkerPods(
  k8s: Awaited<ReturnType<typeof loadKubernetes>>,
  config: BotConfig,
  kube: KubeApi,
  coordinator: Coordinator,
  logger: Logger,
) {
  const { kubernetes } = config;
  if (!kubernetes) throw new Error("watchWorkerPods outside Kubernetes");
  return new k8s.WorkerPodDiscovery({
    api: kube,
    statefulSet: config.pod.statefulSet,
    podSelector: kubernetes.podSelector,
    dnsName: kubernetes.dnsName,
    nodes: coordinator.nodes,
    logger: logger.child("discovery"),
  });
}

async function startCoordinatorRole(config: BotConfig, postgres: PostgresServer, logger: Logger): Promise<Coordinator> {
  const connection = postgres.connectionConfig();
  // (loaded here: a worker's bot never needs the coordinator's parser, planner and admin API)
  const { startCoordinator } = await import("@herd/coordinator");
  return startCoordinator({
    metadata: {
      host: connection.host ?? "127.0.0.1",
      port: config.pgPort,
      user: Defaults.superuser,
      password: config.internalPassword,
      database: Defaults.database,
    },
    sqlPassword: config.password,
    clusterId: config.clusterId,
    sqlHost: config.sqlHost,
    sqlPort: config.sqlPort,
    adminHost: config.adminHost,
    adminPort: config.adminPort,
    adminToken: config.adminToken,
    shardCount: config.shardCount,
    shardConnectionsPerWorker: config.shardConnectionsPerWorker,
    sqlProcesses: config.sqlProcesses,
    coordinatorBackends: config.coordinatorBackends,
    workerConnections: config.workerConnections,
    repairIntervalMs: config.repairIntervalMs,
    connectionLimits: config.connectionLimits,
    replicationFactor: config.replicationFactor,
    autoRebalance: config.autoRebalance,
    replaceLostAfterMs: config.replaceLostAfterMs,
    heartbeatTimeoutMs: config.heartbeatTimeoutMs,
    tls: config.tlsFiles && {
      cert: await readFile(config.tlsFiles.certFile),
      key: await readFile(config.tlsFiles.keyFile),
    },
    logger: logger.child("coordinator"),
  });
}

async function startWorkerRole(
  config: BotConfig,
  postgres: PostgresServer,
  logger: Logger,
): Promise<(() => Promise<void>)[]> {
  let failed = false;
  postgres.on("failed", () => {
    failed = true;
  });
  const registrar = new Registrar({
    coordinatorUrl: config.coordinatorUrl,
    adminToken: config.adminToken,
    node: { name: config.pod.podName, host: config.advertiseHost, port: config.pgPort },
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    logger: logger.child("registrar"),
  });
  const probes = new ProbeServer({
    live: () => !failed,
    ready: async () => registrar.node !== undefined && (await postgres.isReady(1_000)),
  });
  await probes.listen(config.adminHost, config.adminPort);
  registrar.start();
  return [() => probes.close(), () => registrar.stop()];
}

function coordinatorSettings(settings: Readonly<Record<string, string>>, logger: Logger) {
  const guard = shellGuardLibrary();
  if (!guard) {
    logger.warn(
      "the shell guard is not built (packages/worker-bot/shell-guard/build.sh): a trigger, default or dynamic SQL that reaches a distributed table's empty shell on the coordinator reads no rows instead of failing",
    );
  }
  // herd_catalog.control (the metadata as an extension, which pg_dump leaves out)
  const controlPath = settings.extension_control_path?.trim() || "$system";
  return withShellGuard({ ...settings, extension_control_path: `${controlPath}:${CATALOG_EXTENSION_DIR}` }, guard);
}
