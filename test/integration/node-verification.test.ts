import { createServer } from "node:net";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectTo } from "../helpers/differential.js";
import { eventually, useHerdCluster } from "../helpers/herd-up.js";

// A registration proves itself: the coordinator connects to the PostgreSQL at the address a node
// gives and reads the identity its bot stamped on the volume. Before, POST /v1/nodes for a host
// that does not exist made an `active` node at once (create_distributed_table then placed shards
// on it), and posting an existing node's name with another address redirected that worker.
const herdUp = useHerdCluster("node-verification", { workers: 2 });
let herd: pg.Client;

/** `herd-<ordinal>`'s PostgreSQL port (worker i at sqlPort + 1 + i). */
const workerPort = (ordinal: number) => herdUp.cluster.sqlPort + 1 + ordinal;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const post = (body: object) =>
  herdUp.cluster.admin("/v1/nodes", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
const nodes = async () =>
  ((await (await herdUp.cluster.admin("/v1/nodes")).json()) as { nodes: Record<string, unknown>[] }).nodes;

beforeAll(async () => {
  herd = await connectTo({ host: "127.0.0.1", port: herdUp.cluster.sqlPort, user: "postgres", password: "postgres" });
});

afterAll(async () => {
  await herd?.end();
});

describe("registrations", () => {
  it("of the cluster's own workers are verified and active", async () => {
    await eventually(async () => {
      const listed = await nodes();
      return listed.length === 2 && listed.every((node) => node.state === "active") ? true : undefined;
    });
  });

  it("of an address where no PostgreSQL answers stay pending, with the reason", async () => {
    const port = await freePort();
    const response = await post({ name: "herd-7", host: "127.0.0.1", port });
    expect(response.status).toBe(201);
    expect(await response.json()).toMatchObject({
      name: "herd-7",
      state: "pending",
      reason: expect.stringMatching(new RegExp(`could not read the volume identity at 127\\.0\\.0\\.1:${port}`)),
    });
  });

  it("of another node's server stay pending: its volume names the other node", async () => {
    const response = await post({ name: "herd-8", host: "127.0.0.1", port: workerPort(1) });
    expect(await response.json()).toMatchObject({
      state: "pending",
      reason: expect.stringMatching(/holds the volume of herd-1 of cluster/),
    });
  });

  it("cannot redirect a known node to another node's server (409): it keeps its address", async () => {
    const before = (await nodes()).find((node) => node.name === "herd-1");
    const response = await post({ name: "herd-1", host: "127.0.0.1", port: workerPort(2) });
    expect(response.status).toBe(409);
    expect(((await response.json()) as { message: string }).message).toMatch(/node herd-1 stays at/);
    const after = (await nodes()).find((node) => node.name === "herd-1");
    expect(after).toMatchObject({ host: before?.host, port: before?.port, state: "active" });
  });

  it("that are pending get no shards", async () => {
    await herd.query("CREATE TABLE placed (id int PRIMARY KEY)");
    await herd.query("SELECT create_distributed_table('placed', 'id')");
    const { rows } = await herd.query<{ nodename: string; nodeport: number }>(
      "SELECT DISTINCT nodename, nodeport FROM citus_shards WHERE table_name = 'placed'::regclass ORDER BY nodeport",
    );
    expect(rows.map((row) => row.nodeport)).toEqual([workerPort(1), workerPort(2)]);
    // the forged nodes can be removed, as they hold nothing
    for (const node of await nodes()) {
      if (node.state === "pending")
        expect((await herdUp.cluster.admin(`/v1/nodes/${node.id}`, { method: "DELETE" })).status).toBe(200);
    }
    expect((await nodes()).map((node) => node.name).sort()).toEqual(["herd-1", "herd-2"]);
  });
});
