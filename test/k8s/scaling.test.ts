import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ControlPlane, startControlPlane } from "./control-plane.js";
import { eventually } from "./eventually.js";
import { CHART, helmOk } from "./helm.js";
import { ReleaseBots } from "./release-bots.js";

// `helm upgrade --set size=…` both ways, with data: the workers of a bigger StatefulSet register,
// receive every reference table and an even share of the shards by themselves; a worker drained
// through the admin API, removed, then scaled away leaves every shard at its replication factor.
// Real bots and PostgreSQL in the Pods a real kube-apiserver's StatefulSet controller made
// (pod-runner.ts plays the kubelet).

const NAMESPACE = "grow";
const PASSWORD = "scaling-test-password";
const ADMIN_TOKEN = "scaling-test-admin-token";
const QUERIES = [
  "SELECT count(*), sum(total) FROM orders",
  "SELECT r.name, count(*) FROM orders o JOIN regions r ON r.code = o.region GROUP BY 1 ORDER BY 1",
];

interface ShardRow {
  id: number;
  placements: { nodeId: number; node: string; state: string }[];
}

describe("a release scaled with helm upgrade --set size", () => {
  let plane: ControlPlane;
  let release: ReleaseBots;
  let client: pg.Client;
  let before: string[];

  const json = async <T>(path: string, init?: RequestInit): Promise<{ status: number; body: T }> => {
    const response = await release.admin(path, init);
    return { status: response.status, body: (await response.json()) as T };
  };
  const answers = () => Promise.all(QUERIES.map(async (sql) => JSON.stringify((await client.query(sql)).rows)));
  const shards = async (table: string) => (await json<{ shards: ShardRow[] }>(`/v1/shards?table=${table}`)).body.shards;
  const upgrade = (size: number) =>
    helmOk(plane, "upgrade", "herd", CHART, "--namespace", NAMESPACE, "--reuse-values", "--set", `size=${size}`);
  const podNames = async () =>
    (await plane.core.listNamespacedPod({ namespace: NAMESPACE })).items.map((pod) => pod.metadata?.name).sort();

  beforeAll(async () => {
    plane = await startControlPlane("scaling");
    release = await ReleaseBots.install(plane, {
      namespace: NAMESPACE,
      password: PASSWORD,
      adminToken: ADMIN_TOKEN,
      sets: ["size=3"],
      workers: ["herd-1", "herd-2"],
    });
    await eventually(async () => {
      const nodes = await release.nodes();
      expect(nodes.filter((node) => node.state === "active")).toHaveLength(2);
    }, 60_000);
    client = new pg.Client({
      host: "127.0.0.1",
      port: release.ports.get("herd-0")?.sql,
      user: "postgres",
      password: PASSWORD,
    });
    await client.connect();
    for (const sql of [
      "CREATE TABLE regions (code text PRIMARY KEY, name text)",
      "CREATE TABLE orders (id int PRIMARY KEY, region text, total numeric)",
      "INSERT INTO regions VALUES ('eu', 'Europe'), ('us', 'Americas')",
      "INSERT INTO orders SELECT i, (ARRAY['eu','us'])[1 + i % 2], i FROM generate_series(1, 500) i",
      "SELECT create_reference_table('regions')",
      "SELECT create_distributed_table('orders', 'id', shard_count => 8)",
    ])
      await client.query(sql);
    before = await answers();
  }, 300_000);

  afterAll(async () => {
    await client?.end().catch(() => {});
    await release?.stopAll();
    await plane?.stop();
  }, 120_000);

  it("up to 5: the new workers register, get the reference table and an even share of the shards", async () => {
    await upgrade(5);
    await eventually(async () => expect(await podNames()).toEqual(["herd-0", "herd-1", "herd-2", "herd-3", "herd-4"]));
    await Promise.all([release.startBot("herd-3"), release.startBot("herd-4")]);
    await eventually(async () => {
      const nodes = await release.nodes();
      expect(nodes.map((node) => [node.name, node.state]).sort()).toEqual([
        ["herd-1", "active"],
        ["herd-2", "active"],
        ["herd-3", "active"],
        ["herd-4", "active"],
      ]);
      // the reference table on every worker
      const regions = await shards("regions");
      expect(regions[0]?.placements.filter((p) => p.state === "active")).toHaveLength(4);
      // the shards even (max/min per worker at most 1 apart), two active copies each
      const perNode = new Map(nodes.map((node) => [node.name, 0]));
      for (const shard of await shards("orders")) {
        expect(shard.placements.filter((p) => p.state === "active")).toHaveLength(2);
        for (const p of shard.placements) perNode.set(p.node, (perNode.get(p.node) ?? 0) + 1);
      }
      const counts = [...perNode.values()];
      expect(Math.max(...counts) - Math.min(...counts), JSON.stringify([...perNode])).toBeLessThanOrEqual(1);
      expect(counts.every((count) => count > 0)).toBe(true);
    }, 180_000);
    expect(await answers()).toEqual(before);
  });

  it("down to 4 after a drain: herd-4's shards move first, then its Pod goes and the node is removed", async () => {
    const herd4 = (await release.nodes()).find((node) => node.name === "herd-4");
    expect(herd4).toBeDefined();
    const drain = await json<{ id: number }>(`/v1/nodes/${herd4?.id}/drain`, { method: "POST", body: "{}" });
    expect(drain.status).toBe(202);
    await eventually(async () => {
      const job = (await json<{ state: string }>(`/v1/jobs/${drain.body.id}`)).body;
      expect(job.state).toBe("done");
      // its moved-away tables are dropped a few seconds after the switch
      const detail = (await json<{ placements: unknown[] }>(`/v1/nodes/${herd4?.id}`)).body;
      expect(detail.placements).toEqual([]);
    }, 180_000);
    // it stays draining (no shard comes back to it) until its Pod is gone; only then is it removed:
    // removed while its bot still runs, its next heartbeat would register it again
    await upgrade(4);
    await eventually(async () => expect(await podNames()).not.toContain("herd-4"), 60_000);
    // the kubelet stops the container of a Pod that is gone
    expect(await release.bots.get("herd-4")?.stop("SIGTERM", 20_000)).toBe(0);
    expect((await release.nodes()).find((node) => node.name === "herd-4")?.state).toBe("draining");
    expect((await json(`/v1/nodes/${herd4?.id}`, { method: "DELETE" })).status).toBe(200);
    const names = (await release.nodes()).map((node) => node.name).sort();
    expect(names).toEqual(["herd-1", "herd-2", "herd-3"]);
    for (const shard of await shards("orders")) {
      const active = shard.placements.filter((p) => p.state === "active");
      expect(active).toHaveLength(2);
      expect(active.map((p) => p.node)).not.toContain("herd-4");
    }
    expect(await answers()).toEqual(before);
  });
});
