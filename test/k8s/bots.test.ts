import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { NodeJson } from "@herd/shared";
import { ApiException, AppsV1Api, CoreV1Api, KubeConfig, type V1Pod } from "@kubernetes/client-node";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ControlPlane, startControlPlane } from "./control-plane.js";
import { eventually } from "./eventually.js";
import { CHART, helm, helmOk } from "./helm.js";
import { runToCompletion } from "./helm-test-pod.js";
import type { ManagedProcess } from "./managed-process.js";
import { ReleaseBots } from "./release-bots.js";

// Real bots (with real PostgreSQL 18) in the Pods that the chart's StatefulSet made in a real
// kube-apiserver, each with the Pod's environment and a token of the chart's ServiceAccount:
// the test plays the kubelet (pod-runner.ts). One control plane and one release for the file.

const NAMESPACE = "shop";
const PASSWORD = "bots-test-password";
const ADMIN_TOKEN = "bots-test-admin-token";

describe("bots in the chart's pods", () => {
  let plane: ControlPlane;
  let hostsFile: string;
  let release: ReleaseBots;

  const readPod = (name: string) => release.readPod(name);
  const labels = async (name: string) => (await readPod(name)).metadata?.labels ?? {};
  const nodes = (): Promise<NodeJson[]> => release.nodes();
  const node = async (name: string) => (await nodes()).find((n) => n.name === name);
  const startBot = (name: string, env: Record<string, string> = {}) => release.startBot(name, env);
  const prepareBot = (name: string, env: Record<string, string> = {}) => release.prepareBot(name, env);

  beforeAll(async () => {
    plane = await startControlPlane("bots");
    release = await ReleaseBots.install(plane, {
      namespace: NAMESPACE,
      password: PASSWORD,
      adminToken: ADMIN_TOKEN,
      workers: ["herd-1", "herd-2"],
    });
    hostsFile = release.hostsFile;
  }, 300_000);

  afterAll(async () => {
    await release?.stopAll();
    await plane?.stop();
  }, 120_000);

  it("label their own Pods with their role and state", async () => {
    await eventually(async () => {
      expect(await labels("herd-0")).toMatchObject({ "herd.dev/role": "coordinator", "herd.dev/state": "ready" });
      for (const worker of ["herd-1", "herd-2"]) {
        expect(await labels(worker)).toMatchObject({ "herd.dev/role": "worker", "herd.dev/state": "ready" });
      }
    }, 60_000);
    // a merge patch: the chart's labels are still there
    expect(await labels("herd-1")).toMatchObject({ "app.kubernetes.io/instance": "herd" });
  });

  it("register the workers with the coordinator by their stable DNS names", async () => {
    await eventually(async () => {
      const found = (await nodes())
        .map(({ name, host, port, state }) => ({ name, host, port, state }))
        .sort((a, b) => a.name.localeCompare(b.name));
      expect(found).toEqual([
        { name: "herd-1", host: release.dnsName("herd-1"), port: release.ports.get("herd-1")?.pg, state: "active" },
        { name: "herd-2", host: release.dnsName("herd-2"), port: release.ports.get("herd-2")?.pg, state: "active" },
      ]);
    }, 60_000);
  });

  it("serve SQL through the coordinator, which reaches the workers by DNS name", async () => {
    const client = new pg.Client({
      host: "127.0.0.1",
      port: release.ports.get("herd-0")?.sql,
      user: "postgres",
      password: PASSWORD,
      database: "postgres",
    });
    await client.connect();
    try {
      await client.query("CREATE TABLE orders (id int PRIMARY KEY, item text)");
      await client.query("SELECT create_distributed_table('orders', 'id', shard_count => 4)");
      const values = Array.from({ length: 20 }, (_, i) => `(${i + 1}, 'item ${i + 1}')`).join(", ");
      await client.query(`INSERT INTO orders VALUES ${values}`);
      const { rows } = await client.query("SELECT item FROM orders WHERE id = 7");
      expect(rows).toEqual([{ item: "item 7" }]);
      const placements = await client.query<{ nodename: string }>(
        "SELECT DISTINCT nodename FROM citus_shards WHERE table_name::text = 'orders' ORDER BY 1",
      );
      expect(placements.rows.map((r) => r.nodename)).toEqual([release.dnsName("herd-1"), release.dnsName("herd-2")]);
    } finally {
      await client.end();
    }
  });

  it("pass `helm test`: the chart's SQL round trip through the client Service", async () => {
    const testing = helm(plane, "test", "herd", "--namespace", NAMESPACE, "--timeout", "90s");
    const pod = await eventually(() => readPod("herd-test-sql"));
    // the Service `herd` resolves to loopback, where the coordinator's SQL port is not 5432
    const env = { PGPORT: String(release.ports.get("herd-0")?.sql) };
    const logFile = join(plane.dir, "helm-test.log");
    expect(await runToCompletion(plane, pod, { hostsFile, env, logFile })).toBe(0);
    const result = await testing;
    expect(result.ok, result.stderr).toBe(true);
    expect(result.stdout).toMatch(/TEST SUITE:\s+herd-test-sql[\s\S]*Phase:\s+Succeeded/);
    expect(await readFile(logFile, "utf8")).toMatch(/^two$/m);
  });

  it("act under the chart's Role: pods in their namespace, nothing else", async () => {
    const pod = await readPod("herd-1");
    const token = await plane.core.createNamespacedServiceAccountToken({
      name: "herd-bot",
      namespace: NAMESPACE,
      body: {
        spec: {
          audiences: [],
          boundObjectRef: { apiVersion: "v1", kind: "Pod", name: "herd-1", uid: pod.metadata?.uid },
        },
      },
    });
    const asBot = new KubeConfig();
    asBot.loadFromClusterAndUser(
      { name: "test", server: plane.serverUrl, caFile: plane.pki.caCert, skipTLSVerify: false },
      { name: "herd-bot", token: token.status?.token },
    );
    const core = asBot.makeApiClient(CoreV1Api);
    const status = (call: Promise<unknown>) =>
      call.then(
        () => 200,
        (error) => (error instanceof ApiException ? error.code : Promise.reject(error)),
      );
    expect(await status(core.listNamespacedPod({ namespace: NAMESPACE }))).toBe(200);
    expect(await status(core.readNamespacedPod({ name: "herd-2", namespace: NAMESPACE }))).toBe(200);
    expect(await status(core.listNamespacedSecret({ namespace: NAMESPACE }))).toBe(403);
    expect(await status(core.readNamespacedSecret({ name: "herd-auth", namespace: NAMESPACE }))).toBe(403);
    expect(await status(core.deleteNamespacedPod({ name: "herd-2", namespace: NAMESPACE }))).toBe(403);
    expect(
      await status(
        core.createNamespacedPod({
          namespace: NAMESPACE,
          body: { metadata: { name: "x" }, spec: { containers: [{ name: "x", image: "x" }] } },
        }),
      ),
    ).toBe(403);
    expect(await status(core.listNamespacedPod({ namespace: "default" }))).toBe(403);
    expect(await status(core.listNode({}))).toBe(403);
    expect(
      await status(asBot.makeApiClient(AppsV1Api).readNamespacedStatefulSet({ name: "herd", namespace: NAMESPACE })),
    ).toBe(403);
  });

  it("let the coordinator learn of a ready worker it never heard from, through its Pod", async () => {
    await helmOk(plane, "upgrade", "herd", CHART, "--namespace", NAMESPACE, "--reuse-values", "--set", "size=4");
    // this worker's registrations go nowhere (a port nothing listens on); only its Pod speaks for it
    await startBot("herd-3", { HERD_COORDINATOR_URL: "http://127.0.0.1:9" });
    await eventually(async () => expect(await labels("herd-3")).toMatchObject({ "herd.dev/state": "ready" }), 60_000);
    const learned = await eventually(async () => {
      const found = await node("herd-3");
      expect(found).toBeDefined();
      return found;
    });
    // the address is the Pod's stable name and the container port the chart declares
    expect(learned).toMatchObject({ host: release.dnsName("herd-3"), port: 5432, state: "active" });
  });

  it("move the label to draining on SIGTERM", async () => {
    const bot = release.bots.get("herd-2") as ManagedProcess;
    expect(await bot.stop("SIGTERM")).toBe(0);
    expect(await labels("herd-2")).toMatchObject({ "herd.dev/role": "worker", "herd.dev/state": "draining" });
    expect(await bot.log()).toMatch(/labelled the pod herd\.dev\/state=draining/);
  });

  it("a deleted Pod reads unreachable at once; its replacement keeps the claim, the node id and the shards", async () => {
    const before = (await node("herd-2")) as NodeJson;
    const oldPod = await readPod("herd-2");
    await plane.core.deleteNamespacedPod({ name: "herd-2", namespace: NAMESPACE, gracePeriodSeconds: 0 });
    await eventually(async () => expect((await node("herd-2"))?.state).toBe("unreachable"), 15_000);
    // the StatefulSet controller makes a new Pod of the same name; the kubelet starts it on the same claim
    const replacement: V1Pod = await eventually(async () => {
      const pod = await readPod("herd-2");
      expect(pod.metadata?.uid).not.toBe(oldPod.metadata?.uid);
      return pod;
    });
    expect(replacement.metadata?.labels?.["herd.dev/state"]).toBeUndefined();
    await startBot("herd-2");
    await eventually(async () => {
      expect(await labels("herd-2")).toMatchObject({ "herd.dev/state": "ready" });
      expect(await node("herd-2")).toEqual({ ...before, state: "active" });
    }, 60_000);
    // the shards came back with the volume: herd-2's own PostgreSQL still holds every row (each of
    // the 4 shards has a placement on both workers)
    // a worker's PostgreSQL takes herd's internal password (the chart's Secret), not the SQL one
    const secret = await plane.core.readNamespacedSecret({ name: "herd-auth", namespace: NAMESPACE });
    const internalPassword = Buffer.from(secret.data?.["internal-password"] ?? "", "base64").toString();
    expect(internalPassword).toMatch(/^[A-Za-z0-9]{40}$/);
    const refused = new pg.Client({
      host: "127.0.0.1",
      port: release.ports.get("herd-2")?.pg,
      user: "postgres",
      password: PASSWORD,
    });
    await expect(refused.connect()).rejects.toThrow(/password authentication failed/);
    const worker = new pg.Client({
      host: "127.0.0.1",
      port: release.ports.get("herd-2")?.pg,
      user: "postgres",
      password: internalPassword,
    });
    await worker.connect();
    try {
      const shards = await worker.query<{ name: string }>(
        "SELECT tablename AS name FROM pg_tables WHERE tablename ~ '^orders_[0-9]+$' ORDER BY 1",
      );
      expect(shards.rows).toHaveLength(4);
      let rows = 0;
      for (const { name } of shards.rows) {
        rows += Number((await worker.query(`SELECT count(*) AS n FROM ${name}`)).rows[0].n);
      }
      expect(rows).toBe(20);
    } finally {
      await worker.end();
    }
    // and the coordinator routes to it again
    const client = new pg.Client({
      host: "127.0.0.1",
      port: release.ports.get("herd-0")?.sql,
      user: "postgres",
      password: PASSWORD,
    });
    await client.connect();
    try {
      await eventually(async () =>
        expect((await client.query("SELECT item FROM orders WHERE id = 3")).rows).toEqual([{ item: "item 3" }]),
      );
    } finally {
      await client.end();
    }
  });

  it("notice a worker scaled away while the coordinator was down, when it starts again", async () => {
    // herd-3 was learned of through its Pod only (its bot registers nowhere)
    expect((await node("herd-3"))?.state).toBe("active");
    expect(await release.bots.get("herd-0")?.stop("SIGTERM", 20_000)).toBe(0);
    const logBefore = ((await release.bots.get("herd-0")?.log()) ?? "").length;
    expect(await release.bots.get("herd-3")?.stop("SIGTERM", 20_000)).toBe(0);
    await helmOk(plane, "upgrade", "herd", CHART, "--namespace", NAMESPACE, "--reuse-values", "--set", "size=3");
    await eventually(async () => {
      const pods = await plane.core.listNamespacedPod({ namespace: NAMESPACE });
      expect(pods.items.map((pod) => pod.metadata?.name)).not.toContain("herd-3");
    }, 60_000);
    // a new coordinator process: its first list never held herd-3, so no informer event can say it left
    await startBot("herd-0");
    await release.waitReady();
    await eventually(async () => expect((await node("herd-3"))?.state).toBe("unreachable"), 30_000);
    const logAfter = ((await release.bots.get("herd-0")?.log()) ?? "").slice(logBefore);
    expect(logAfter).toMatch(/worker reads unreachable name=herd-3 reason="its pod is no longer listed"/);
    // the workers still running read active
    expect((await node("herd-1"))?.state).toBe("active");
    expect((await node("herd-2"))?.state).toBe("active");
  });

  it("ride out an API server restart: a label that could not be written lands later, the watch resumes", async () => {
    await helmOk(plane, "upgrade", "herd", CHART, "--namespace", NAMESPACE, "--reuse-values", "--set", "size=5");
    const launch = await prepareBot("herd-4");
    let bot: ManagedProcess | undefined;
    await plane.restartApiserver(async () => {
      bot = launch();
      // the bot does its work without the API server: it registers with the coordinator…
      await eventually(async () => expect((await node("herd-4"))?.state).toBe("active"), 60_000);
      // …while its label cannot be written
      await eventually(async () => expect(await bot?.log()).toMatch(/cannot label the pod; retrying/));
    });
    await eventually(
      async () =>
        expect(await labels("herd-4")).toMatchObject({ "herd.dev/role": "worker", "herd.dev/state": "ready" }),
      60_000,
    );
    // the coordinator watches again: a Pod deleted now is noticed at once
    expect(await bot?.stop()).toBe(0);
    await plane.core.deleteNamespacedPod({ name: "herd-4", namespace: NAMESPACE, gracePeriodSeconds: 0 });
    await eventually(async () => expect((await node("herd-4"))?.state).toBe("unreachable"), 60_000);
  });

  it("notice a Pod deleted while the API server was down, once it is back (the relist finds it gone)", async () => {
    expect((await node("herd-1"))?.state).toBe("active");
    await plane.restartApiserver(async () => {
      // the kubelet stops the container, and another API server replica deletes the Pod
      await release.bots.get("herd-1")?.stop("SIGTERM", 20_000);
      expect(await plane.deleteFromEtcd("/registry/pods/shop/herd-1")).toBe(1);
    });
    await eventually(async () => expect((await node("herd-1"))?.state).toBe("unreachable"), 30_000);
  });

  it("log no secret", async () => {
    for (const bot of release.bots.values()) {
      const log = await bot.log();
      expect(log).not.toContain(PASSWORD);
      expect(log).not.toContain(ADMIN_TOKEN);
    }
  });
});
