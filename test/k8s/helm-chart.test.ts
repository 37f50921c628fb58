import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AppsV1Api,
  loadAllYaml,
  PolicyV1Api,
  RbacAuthorizationV1Api,
  type V1StatefulSet,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ControlPlane, startControlPlane } from "./control-plane.js";
import { controlPlaneBinaries } from "./control-plane-binaries.js";
import { eventually } from "./eventually.js";
import { CHART, helm, helmOk } from "./helm.js";

// The chart against the real helm and a real kube-apiserver + kube-controller-manager (one
// control plane for this file). No kubelet runs: bots.test.ts plays it.

const VALUE_SETS = ["default-values.yaml", "large-values.yaml", "existing-secret-values.yaml"];
const valuesFile = (name: string) => join(CHART, "ci", name);

describe("the chart, offline", () => {
  let place: { binaries: { helm: string }; dir: string };
  beforeAll(async () => {
    place = { binaries: controlPlaneBinaries(), dir: await mkdtemp(join(tmpdir(), "herd-helm-")) };
  });
  afterAll(async () => {
    if (place) await rm(place.dir, { recursive: true, force: true });
  });

  it("lints strictly with each value set", async () => {
    for (const values of VALUE_SETS) {
      const out = await helmOk(place, "lint", "--strict", CHART, "--values", valuesFile(values));
      expect(out).toContain("1 chart(s) linted, 0 chart(s) failed");
    }
  });

  it("renders each value set into the objects a cluster needs", async () => {
    for (const values of VALUE_SETS) {
      const objects = loadAllYaml(
        await helmOk(place, "template", "mydb", CHART, "--namespace", "db", "--values", valuesFile(values)),
      ).filter(Boolean);
      const kinds = objects.map((o) => o.kind).sort();
      expect(kinds).toEqual(
        expect.arrayContaining(["Role", "RoleBinding", "Service", "Service", "ServiceAccount", "StatefulSet"]),
      );
      const sts = objects.find((o) => o.kind === "StatefulSet") as V1StatefulSet;
      expect(sts.spec?.podManagementPolicy).toBe("Parallel");
      expect(sts.spec?.volumeClaimTemplates?.[0]?.spec?.accessModes).toEqual(["ReadWriteOnce"]);
      expect(kinds.includes("Secret")).toBe(values !== "existing-secret-values.yaml");
      expect(kinds.includes("PodDisruptionBudget")).toBe(values !== "existing-secret-values.yaml");
      expect(kinds.includes("NetworkPolicy")).toBe(values !== "existing-secret-values.yaml");
      // as the client's types read it (a rule's `from` is `_from` there), in plain JSON
      const policy = objects.find((o) => o.kind === "NetworkPolicy") as
        | { spec: { podSelector: { matchLabels: Record<string, string> }; ingress: unknown[] } }
        | undefined;
      if (policy) {
        // workers' PostgreSQL from the coordinator and the other workers (moves) only; the probe port from anywhere
        expect(policy.spec.podSelector.matchLabels["herd.dev/role"]).toBe("worker");
        expect(JSON.parse(JSON.stringify(policy.spec.ingress))).toEqual([
          {
            _from: [
              { podSelector: { matchLabels: expect.objectContaining({ "herd.dev/role": "coordinator" }) } },
              { podSelector: { matchLabels: expect.objectContaining({ "herd.dev/role": "worker" }) } },
            ],
            ports: [{ port: 5432, protocol: "TCP" }],
          },
          { ports: [{ port: 6480, protocol: "TCP" }] },
        ]);
      }
      expect(kinds.includes("ServiceMonitor")).toBe(values === "large-values.yaml");
      // the server connections client sessions share: set in the large set, defaults otherwise
      const env = Object.fromEntries(
        (sts.spec?.template.spec?.containers[0]?.env ?? []).map((variable) => [variable.name, variable.value]),
      );
      const large = values === "large-values.yaml";
      expect(env.HERD_WORKER_CONNECTIONS).toBe(large ? "32" : "16");
      expect(env.HERD_COORDINATOR_BACKENDS).toBe(large ? "120" : undefined);
    }
  });

  it("renders the README's command: 5 pods with 20Gi claims", async () => {
    const objects = loadAllYaml(
      await helmOk(
        place,
        "template",
        "mydb",
        CHART,
        "--set",
        "size=5",
        "--set",
        "storage.size=20Gi",
        "--set",
        "auth.password=s3cret",
      ),
    );
    const sts = objects.find((o) => o?.kind === "StatefulSet") as V1StatefulSet;
    expect(sts.spec?.replicas).toBe(5);
    expect(sts.spec?.volumeClaimTemplates?.[0]?.spec?.resources?.requests?.storage).toBe("20Gi");
    const secret = objects.find((o) => o?.kind === "Secret");
    expect(Buffer.from(secret.data.password, "base64").toString()).toBe("s3cret");
  });

  it("refuses values the schema forbids, saying which", async () => {
    const cases: [string[], RegExp][] = [
      [["--set", "size=2"], /size/],
      [["--set", "podAntiAffinityPreset=sometimes"], /podAntiAffinityPreset/],
      [["--set", "storage.size=lots"], /storage/],
      [["--set", "shardCount=0"], /shardCount/],
      [["--set", "replicasOfEverything=3"], /replicasOfEverything/],
    ];
    for (const [args, complaint] of cases) {
      const result = await helm(place, "template", "mydb", CHART, ...args);
      expect(result.ok, args.join(" ")).toBe(false);
      expect(result.stderr).toMatch(complaint);
    }
  });
});

describe("the chart in a real API server", () => {
  let plane: ControlPlane;
  beforeAll(async () => {
    plane = await startControlPlane("chart");
  }, 240_000);
  afterAll(async () => {
    await plane?.stop();
  });

  const claims = async (namespace: string) =>
    (await plane.core.listNamespacedPersistentVolumeClaim({ namespace })).items.sort((a, b) =>
      (a.metadata?.name ?? "").localeCompare(b.metadata?.name ?? ""),
    );
  const podNames = async (namespace: string) =>
    (await plane.core.listNamespacedPod({ namespace })).items.map((p) => p.metadata?.name).sort();

  it("installs; the controller-manager makes one pod and one claim of the asked size per ordinal", async () => {
    const installed = await helmOk(
      plane,
      "install",
      "mydb",
      CHART,
      "--namespace",
      "db",
      "--create-namespace",
      "--set",
      "size=5",
      "--set",
      "storage.size=20Gi",
      "--set",
      "storage.className=fast-ssd",
      "--set",
      "auth.password=s3cret",
    );
    // NOTES.txt: how to connect
    expect(installed).toContain("mydb-0 is the coordinator, mydb-1 … mydb-4 the 4 workers");
    expect(installed).toContain("kubectl -n db port-forward svc/mydb 5432:5432 6480:6480");
    expect(installed).toContain("kubectl -n db get secret mydb-auth");
    const apps = plane.admin.makeApiClient(AppsV1Api);
    const sts = await apps.readNamespacedStatefulSet({ name: "mydb", namespace: "db" });
    expect(sts.spec?.serviceName).toBe("mydb-hl");
    const headless = await plane.core.readNamespacedService({ name: "mydb-hl", namespace: "db" });
    expect(headless.spec?.clusterIP).toBe("None");
    expect(headless.spec?.publishNotReadyAddresses).toBe(true);
    const client = await plane.core.readNamespacedService({ name: "mydb", namespace: "db" });
    expect(client.spec?.selector).toMatchObject({ "herd.dev/role": "coordinator" });
    expect(client.spec?.ports?.map((p) => p.port)).toEqual([5432, 6480]);
    const rbac = plane.admin.makeApiClient(RbacAuthorizationV1Api);
    const role = await rbac.readNamespacedRole({ name: "mydb-bot", namespace: "db" });
    expect(role.rules).toEqual([{ apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch", "patch"] }]);
    const pdb = await plane.admin
      .makeApiClient(PolicyV1Api)
      .readNamespacedPodDisruptionBudget({ name: "mydb", namespace: "db" });
    expect(pdb.spec?.maxUnavailable).toBe(1);

    await eventually(async () =>
      expect(await podNames("db")).toEqual(["mydb-0", "mydb-1", "mydb-2", "mydb-3", "mydb-4"]),
    );
    const made = await eventually(async () => {
      const found = await claims("db");
      expect(found.map((c) => c.metadata?.name)).toEqual([0, 1, 2, 3, 4].map((i) => `data-mydb-${i}`));
      return found;
    });
    for (const claim of made) {
      expect(claim.spec?.resources?.requests?.storage).toBe("20Gi");
      expect(claim.spec?.storageClassName).toBe("fast-ssd");
    }
  });

  it("is accepted by the server's validation with every value set", async () => {
    await plane.core.createNamespace({ body: { metadata: { name: "dry" } } });
    for (const values of VALUE_SETS.filter((v) => v !== "large-values.yaml")) {
      // dry-run=server: the API server validates and admits every object but stores none
      await helmOk(
        plane,
        "install",
        "dry",
        CHART,
        "--namespace",
        "dry",
        "--dry-run=server",
        "--values",
        valuesFile(values),
      );
    }
    // large-values enables a ServiceMonitor, whose CRD this API server does not have: refused, by name
    const result = await helm(
      plane,
      "install",
      "dry",
      CHART,
      "--namespace",
      "dry",
      "--dry-run=server",
      "--values",
      valuesFile("large-values.yaml"),
    );
    expect(result.ok).toBe(false);
    expect(result.stderr).toMatch(/ServiceMonitor/);
    expect(await podNames("dry")).toEqual([]);
  });

  it("generates credentials once and keeps them across upgrades", async () => {
    await helmOk(plane, "install", "gen", CHART, "--namespace", "gen", "--create-namespace");
    const read = async () => (await plane.core.readNamespacedSecret({ name: "gen-auth", namespace: "gen" })).data ?? {};
    const first = await read();
    expect(Buffer.from(first.password ?? "", "base64").toString()).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(Buffer.from(first["admin-token"] ?? "", "base64").toString()).toMatch(/^[A-Za-z0-9]{40}$/);
    await helmOk(plane, "upgrade", "gen", CHART, "--namespace", "gen", "--set", "shardCount=16");
    expect(await read()).toEqual(first);
  });

  it("upgrades to a larger size: the existing claims stay, new workers get new ones", async () => {
    const before = await claims("db");
    await helmOk(plane, "upgrade", "mydb", CHART, "--namespace", "db", "--reuse-values", "--set", "size=7");
    await eventually(async () => expect(await podNames("db")).toHaveLength(7));
    const after = await eventually(async () => {
      const found = await claims("db");
      expect(found).toHaveLength(7);
      return found;
    });
    const uid = (name: string, list: typeof before) => list.find((c) => c.metadata?.name === name)?.metadata?.uid;
    for (const claim of before) expect(uid(claim.metadata?.name as string, after)).toBe(claim.metadata?.uid);
    for (const added of ["data-mydb-5", "data-mydb-6"]) {
      const claim = after.find((c) => c.metadata?.name === added);
      expect(claim?.spec?.resources?.requests?.storage).toBe("20Gi");
    }
    const secret = await plane.core.readNamespacedSecret({ name: "mydb-auth", namespace: "db" });
    expect(Buffer.from(secret.data?.password ?? "", "base64").toString()).toBe("s3cret");
  });
});
