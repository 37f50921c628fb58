import { readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import https from "node:https";
import { join } from "node:path";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { freePortRange } from "../helpers/ports.js";
import { scratchDir } from "../helpers/scratch-dir.js";
import { type ControlPlaneBinaries, controlPlaneBinaries } from "./control-plane-binaries.js";
import { ManagedProcess } from "./managed-process.js";
import { createTestPki, type TestPki } from "./test-pki.js";

export interface ControlPlane {
  readonly binaries: ControlPlaneBinaries;
  readonly dir: string;
  readonly apiserverPort: number;
  readonly serverUrl: string;
  readonly pki: TestPki;
  /** A kubeconfig file with the admin token (for helm). */
  readonly kubeconfigPath: string;
  /** A client with the admin token. */
  readonly admin: KubeConfig;
  readonly core: CoreV1Api;
  readonly processes: readonly ManagedProcess[];
  /** Stops kube-apiserver, runs `whileDown`, starts it again (same etcd, port and keys) and waits until it is ready. */
  restartApiserver(whileDown: () => Promise<void>): Promise<void>;
  /**
   * Deletes an object straight from etcd, the way another API server of an HA control plane
   * would while this one is down (its v3 JSON gateway; `key` like `/registry/pods/<ns>/<name>`).
   * Resolves with the number of keys deleted.
   */
  deleteFromEtcd(key: string): Promise<number>;
  stop(): Promise<void>;
}

const ISSUER = "https://kubernetes.default.svc.cluster.local";

/**
 * A real Kubernetes control plane on loopback: etcd, kube-apiserver (TLS, RBAC, ServiceAccount
 * tokens) and kube-controller-manager running the StatefulSet controller, which turns a
 * StatefulSet into Pods and PersistentVolumeClaims, and the ServiceAccount controller. No
 * scheduler and no kubelet: the Pods stay
 * Pending, and the tests play the kubelet (see pod-runner.ts).
 */
export async function startControlPlane(name: string): Promise<ControlPlane> {
  const binaries = controlPlaneBinaries();
  const scratch = await scratchDir(`k8s-${name}`);
  const dir = scratch.path;
  const processes: ManagedProcess[] = [];
  const stop = async () => {
    for (const process of [...processes].reverse()) await process.stop();
    await scratch.remove();
  };
  try {
    const pki = createTestPki(dir);
    const base = await freePortRange(4);
    const [etcdClient, etcdPeer, apiserverPort, controllerManagerPort] = [base, base + 1, base + 2, base + 3];
    const serverUrl = `https://127.0.0.1:${apiserverPort}`;
    const kubeconfigPath = join(dir, "admin.kubeconfig");
    await writeFile(kubeconfigPath, kubeconfig(serverUrl, pki), { mode: 0o600 });

    await mkdir(join(dir, "etcd"), { mode: 0o700 });
    const etcd = ManagedProcess.start(
      "etcd",
      binaries.etcd,
      [
        "--name=herd-test",
        `--data-dir=${join(dir, "etcd")}`,
        `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
        `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
        `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-cluster=herd-test=http://127.0.0.1:${etcdPeer}`,
        "--log-level=warn",
        // tmpfs already; fsync would only slow the tests
        "--unsafe-no-fsync",
      ],
      { logFile: join(dir, "etcd.log") },
    );
    processes.push(etcd);
    await etcd.waitFor("health", async () => (await fetch(`http://127.0.0.1:${etcdClient}/health`)).ok);

    const startApiserver = () => {
      const started = ManagedProcess.start(
        "kube-apiserver",
        binaries.kubeApiserver,
        apiserverArgs(dir, pki, etcdClient, apiserverPort),
        { logFile: join(dir, "kube-apiserver.log") },
      );
      processes.push(started);
      return started;
    };
    const admin = new KubeConfig();
    admin.loadFromFile(kubeconfigPath);
    const core = admin.makeApiClient(CoreV1Api);
    const apiserverReady = async (apiserver: ManagedProcess) => {
      // /readyz covers etcd, the RBAC bootstrap roles and the informers; the default namespace comes last
      await apiserver.waitFor("readiness", async () => (await httpsStatus(serverUrl, "/readyz", pki)) === 200, 120_000);
      await apiserver.waitFor("the default namespace", async () =>
        Boolean(await core.readNamespace({ name: "default" })),
      );
    };
    let apiserver = startApiserver();
    await apiserverReady(apiserver);
    const restartApiserver = async (whileDown: () => Promise<void>) => {
      await apiserver.stop();
      processes.splice(processes.indexOf(apiserver), 1);
      await whileDown();
      apiserver = startApiserver();
      await apiserverReady(apiserver);
    };

    const controllerManager = ManagedProcess.start(
      "kube-controller-manager",
      binaries.kubeControllerManager,
      [
        `--kubeconfig=${kubeconfigPath}`,
        // the StatefulSet's Pods and PVCs; the `default` ServiceAccount every namespace has (helm test's pod uses it)
        "--controllers=statefulset,serviceaccount",
        "--leader-elect=false",
        "--use-service-account-credentials=false",
        "--bind-address=127.0.0.1",
        `--secure-port=${controllerManagerPort}`,
        `--cert-dir=${dir}`,
        "--v=1",
      ],
      { logFile: join(dir, "kube-controller-manager.log") },
    );
    processes.push(controllerManager);
    await controllerManager.waitFor(
      "its secure port",
      async () => {
        await fetch(`https://127.0.0.1:${controllerManagerPort}/healthz`).catch((error: Error) => {
          // a TLS complaint means it is listening (it serves a self-signed certificate)
          if (!String((error.cause as Error | undefined)?.message ?? error).match(/certificate|self.signed/i))
            throw error;
        });
        return true;
      },
      60_000,
    );
    const deleteFromEtcd = async (key: string) => {
      const response = await fetch(`http://127.0.0.1:${etcdClient}/v3/kv/deleterange`, {
        method: "POST",
        body: JSON.stringify({ key: Buffer.from(key).toString("base64") }),
      });
      if (!response.ok) throw new Error(`etcd deleterange ${key}: ${response.status} ${await response.text()}`);
      return Number(((await response.json()) as { deleted?: string }).deleted ?? 0);
    };
    return {
      binaries,
      dir,
      apiserverPort,
      serverUrl,
      pki,
      kubeconfigPath,
      admin,
      core,
      processes,
      restartApiserver,
      deleteFromEtcd,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

function apiserverArgs(dir: string, pki: TestPki, etcdClient: number, apiserverPort: number): string[] {
  return [
    `--etcd-servers=http://127.0.0.1:${etcdClient}`,
    "--bind-address=127.0.0.1",
    "--advertise-address=127.0.0.1",
    `--secure-port=${apiserverPort}`,
    `--cert-dir=${dir}`,
    `--tls-cert-file=${pki.serverCert}`,
    `--tls-private-key-file=${pki.serverKey}`,
    `--token-auth-file=${pki.tokenFile}`,
    "--authorization-mode=RBAC",
    `--service-account-issuer=${ISSUER}`,
    `--api-audiences=${ISSUER}`,
    `--service-account-key-file=${pki.serviceAccountPub}`,
    `--service-account-signing-key-file=${pki.serviceAccountKey}`,
    "--service-cluster-ip-range=10.96.0.0/16",
    // the `kubernetes` Service's endpoints would be 127.0.0.1, which validation refuses
    "--endpoint-reconciler-type=none",
    "--enable-priority-and-fairness=false",
    "--profiling=false",
    "--v=1",
  ];
}

function httpsStatus(serverUrl: string, path: string, pki: TestPki): Promise<number | undefined> {
  return new Promise((resolve) => {
    const request = https.get(
      new URL(path, serverUrl),
      { ca: readFileSync(pki.caCert), headers: { authorization: `Bearer ${pki.adminToken}` }, timeout: 5_000 },
      (response) => {
        response.resume();
        resolve(response.statusCode);
      },
    );
    request.on("error", () => resolve(undefined));
    request.on("timeout", () => request.destroy());
  });
}

function kubeconfig(serverUrl: string, pki: TestPki): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "test", cluster: { server: serverUrl, "certificate-authority": pki.caCert } }],
    users: [{ name: "admin", user: { token: pki.adminToken } }],
    contexts: [{ name: "test", context: { cluster: "test", user: "admin" } }],
    "current-context": "test",
  });
}
