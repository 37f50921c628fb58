import { copyFile, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { V1Pod } from "@kubernetes/client-node";
import { HERD_CLI } from "../helpers/herd-up.js";
import type { ControlPlane } from "./control-plane.js";
import { ManagedProcess } from "./managed-process.js";

/** Ports of one pod's bot on this machine's loopback, which all the "pods" share. */
export interface PodPorts {
  readonly pg: number;
  readonly admin: number;
  readonly sql: number;
}

export interface PodRunOptions {
  readonly plane: ControlPlane;
  readonly pod: V1Pod;
  /** The pod's PersistentVolumeClaim: a directory that outlives the bot. */
  readonly volumeDir: string;
  readonly ports: PodPorts;
  /** A hosts file giving the pods' `*.svc.cluster.local` names the address 127.0.0.1. */
  readonly hostsFile: string;
  /** Overrides after the Pod's own environment. */
  readonly env?: Record<string, string>;
  /** Where the bot's log goes. */
  readonly logFile: string;
}

/**
 * Plays the kubelet for one Pod: mounts a ServiceAccount token issued for the Pod (TokenRequest,
 * bound to the Pod, as the kubelet's projected volume does) at /var/run/secrets/kubernetes.io/
 * serviceaccount, resolves the container's environment from the Pod spec (values, downward API,
 * Secret references), adds KUBERNETES_SERVICE_HOST/PORT, and starts the real bot.
 *
 * The bot runs in its own mount namespace (`unshare -m`, as root) where /etc/hosts is the test's
 * hosts file and /run a private tmpfs holding the token: the bot code is the one that runs in a
 * pod, unchanged, and this machine's own files are untouched. All pods share loopback, so each
 * gets its own ports (`HERD_PG_PORT`, `HERD_ADMIN_PORT`, `HERD_SQL_PORT`) instead of 5432/6480.
 *
 * What needs the API server (the token, the Secret's values) happens here; the returned function
 * starts the bot, so a test can start it while the API server is down.
 */
export async function preparePodBot(options: PodRunOptions): Promise<() => ManagedProcess> {
  const { plane, pod, ports } = options;
  const name = pod.metadata?.name as string;
  const namespace = pod.metadata?.namespace as string;
  const serviceAccount = pod.spec?.serviceAccountName as string;
  const accountDir = join(plane.dir, "pods", name, `serviceaccount-${pod.metadata?.uid}`);
  await mkdir(accountDir, { recursive: true });
  const token = await plane.core.createNamespacedServiceAccountToken({
    name: serviceAccount,
    namespace,
    body: {
      spec: {
        audiences: [],
        expirationSeconds: 3600,
        boundObjectRef: { apiVersion: "v1", kind: "Pod", name, uid: pod.metadata?.uid },
      },
    },
  });
  await writeFile(join(accountDir, "token"), token.status?.token ?? "", { mode: 0o600 });
  await copyFile(plane.pki.caCert, join(accountDir, "ca.crt"));
  await writeFile(join(accountDir, "namespace"), namespace);

  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    ...(process.env.HERD_PG_BIN ? { HERD_PG_BIN: process.env.HERD_PG_BIN } : {}),
    ...(await containerEnv(plane, pod)),
    KUBERNETES_SERVICE_HOST: "127.0.0.1",
    KUBERNETES_SERVICE_PORT: String(plane.apiserverPort),
    HERD_DATA_DIR: options.volumeDir,
    HERD_PG_PORT: String(ports.pg),
    HERD_PG_LISTEN: "127.0.0.1",
    HERD_ADMIN_HOST: "127.0.0.1",
    HERD_ADMIN_PORT: String(ports.admin),
    HERD_SQL_HOST: "127.0.0.1",
    HERD_SQL_PORT: String(ports.sql),
    ...options.env,
  };
  const script = [
    "set -e",
    'mount --bind "$1" /etc/hosts',
    "mount -t tmpfs -o mode=0755,size=1m herd-test-run /run",
    "mkdir -p /run/secrets/kubernetes.io",
    'ln -s "$2" /run/secrets/kubernetes.io/serviceaccount',
    "shift 2",
    'exec "$@"',
  ].join("\n");
  return () =>
    ManagedProcess.start(
      `bot ${name}`,
      "unshare",
      ["--mount", "sh", "-c", script, "sh", options.hostsFile, accountDir, process.execPath, HERD_CLI, "bot"],
      { env, logFile: options.logFile },
    );
}

/** The container's environment as the kubelet resolves it. */
export async function containerEnv(plane: ControlPlane, pod: V1Pod): Promise<Record<string, string>> {
  const env: Record<string, string> = {};
  const namespace = pod.metadata?.namespace as string;
  for (const variable of pod.spec?.containers[0]?.env ?? []) {
    const from = variable.valueFrom;
    if (variable.value !== undefined) {
      env[variable.name] = variable.value;
    } else if (from?.fieldRef) {
      const field = from.fieldRef.fieldPath;
      if (field === "metadata.name") env[variable.name] = pod.metadata?.name as string;
      else if (field === "metadata.namespace") env[variable.name] = namespace;
      else throw new Error(`the test kubelet does not know the field ${field}`);
    } else if (from?.secretKeyRef) {
      const secret = await plane.core.readNamespacedSecret({ name: from.secretKeyRef.name ?? "", namespace });
      const value = secret.data?.[from.secretKeyRef.key];
      if (value === undefined) throw new Error(`secret ${from.secretKeyRef.name} has no key ${from.secretKeyRef.key}`);
      env[variable.name] = Buffer.from(value, "base64").toString("utf8");
    } else {
      throw new Error(`the test kubelet cannot resolve ${variable.name}`);
    }
  }
  return env;
}

/**
 * A hosts file naming ordinals 0..count-1 of `statefulSet` through `headless` in `namespace`, and
 * the client Service (named like the set) as a pod in the namespace would resolve it.
 */
export async function writeHostsFile(
  path: string,
  statefulSet: string,
  headless: string,
  namespace: string,
  count: number,
): Promise<void> {
  const lines = ["127.0.0.1 localhost", `127.0.0.1 ${statefulSet} ${statefulSet}.${namespace}.svc.cluster.local`];
  for (let ordinal = 0; ordinal < count; ordinal += 1) {
    lines.push(`127.0.0.1 ${statefulSet}-${ordinal}.${headless}.${namespace}.svc.cluster.local`);
  }
  await writeFile(path, `${lines.join("\n")}\n`);
}
