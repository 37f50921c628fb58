import { buildAdminApp, MIGRATIONS, migrate, NodeRegistry } from "@herd/coordinator";
import { createLogger } from "@herd/shared";
import type { FastifyInstance } from "fastify";
import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startTestPostgres, type TestPostgres } from "../helpers/postgres.js";

const TOKEN = "s3cret-admin-token";
const auth = { authorization: `Bearer ${TOKEN}` };
const logger = createLogger("test", { level: "error" });

let postgres: TestPostgres;
let pool: pg.Pool;
let app: FastifyInstance;
let ready = true;
/** Hosts whose registrations do not prove themselves. */
const forged = new Set<string>();

beforeAll(async () => {
  postgres = await startTestPostgres("admin-api");
  pool = new pg.Pool(postgres.connection);
  await migrate(pool, logger);
  app = await buildAdminApp({
    nodes: new NodeRegistry(pool, 15_000),
    // These tests drive the HTTP surface without workers to connect to; what verifying a node's
    // volume identity finds is decided here (a host in `forged` fails), and the real verification
    // runs against real servers in test/integration/node-verification.test.ts.
    verify: async (node) =>
      forged.has(node.host) ? { ok: false, reason: `no herd volume at ${node.host}:${node.port}` } : { ok: true },
    adminToken: TOKEN,
    logger,
    isReady: async () => ready,
  });
});

afterAll(async () => {
  await app?.close();
  await pool?.end();
  await postgres?.stop();
});

beforeEach(async () => {
  ready = true;
  forged.clear();
  await pool.query(
    "TRUNCATE herd.placements, herd.shards, herd.distributed_tables, herd.colocation_groups, herd.nodes RESTART IDENTITY CASCADE",
  );
});

const register = (body: unknown, headers: Record<string, string> = auth) =>
  app.inject({ method: "POST", url: "/v1/nodes", headers, payload: body as object });

describe("registrations that do not prove themselves", () => {
  it("leave a new node pending, with the reason, until one does", async () => {
    forged.add("10.9.9.9");
    const first = await register({ name: "herd-5", host: "10.9.9.9", port: 5432 });
    expect(first.statusCode).toBe(201);
    expect(first.json()).toMatchObject({ name: "herd-5", state: "pending", reason: "no herd volume at 10.9.9.9:5432" });
    const listed = await app.inject({ method: "GET", url: "/v1/nodes", headers: auth });
    expect(listed.json().nodes[0]).toMatchObject({ state: "pending", reason: expect.stringMatching(/no herd volume/) });
    forged.clear();
    const again = await register({ name: "herd-5", host: "10.9.9.9", port: 5432 });
    expect(again.json()).toMatchObject({ id: first.json().id, state: "active" });
    expect(again.json().reason).toBeUndefined();
  });

  it("cannot move a known node to another address (409), which keeps its own", async () => {
    const first = await register({ name: "herd-6", host: "10.0.0.6", port: 5432 });
    expect(first.json().state).toBe("active");
    forged.add("10.6.6.6");
    const moved = await register({ name: "herd-6", host: "10.6.6.6", port: 5432 });
    expect(moved.statusCode).toBe(409);
    expect(moved.json().message).toMatch(/node herd-6 stays at 10\.0\.0\.6:5432/);
    const listed = await app.inject({ method: "GET", url: "/v1/nodes", headers: auth });
    expect(listed.json().nodes[0]).toMatchObject({ name: "herd-6", host: "10.0.0.6", state: "active" });
  });
});

describe("metadata migrations", () => {
  it("are recorded once and are idempotent", async () => {
    expect(await migrate(pool, logger)).toBe(MIGRATIONS.at(-1)?.version);
    const { rows } = await pool.query("SELECT version FROM herd.schema_migrations ORDER BY version");
    expect(rows.map((row) => row.version)).toEqual(MIGRATIONS.map((m) => m.version));
  });

  it("refuse a schema newer than this coordinator", async () => {
    await expect(migrate(pool, logger, MIGRATIONS.slice(0, 0))).rejects.toThrow(/newer than this coordinator/);
  });

  it("start shard ids at 102008, like Citus", async () => {
    const { rows } = await pool.query(
      "SELECT start_value FROM pg_sequences WHERE schemaname = 'herd' AND sequencename = 'shard_id_seq'",
    );
    expect(rows[0]?.start_value).toBe("102008");
  });
});

describe("authentication", () => {
  it.each([
    ["no header", {}],
    ["a wrong token", { authorization: "Bearer nope" }],
    ["a token of another length", { authorization: `Bearer ${TOKEN}x` }],
    ["basic auth", { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString("base64")}` }],
  ])("answers 401 to a /v1 request with %s", async (_name, headers) => {
    const response = await app.inject({ method: "GET", url: "/v1/nodes", headers });
    expect(response.statusCode).toBe(401);
    expect(response.headers["www-authenticate"]).toBe('Bearer realm="herd"');
    expect(response.json()).toMatchObject({ statusCode: 401, error: "Unauthorized" });
    expect(response.body).not.toContain(TOKEN);
  });

  it("guards writes too: an unauthenticated registration changes nothing", async () => {
    const response = await register({ name: "herd-1", host: "127.0.0.1", port: 5432 }, {});
    expect(response.statusCode).toBe(401);
    expect((await pool.query("SELECT count(*)::int AS n FROM herd.nodes")).rows[0].n).toBe(0);
  });

  it("accepts the scheme in any case", async () => {
    const response = await app.inject({
      method: "GET",
      url: "/v1/nodes",
      headers: { authorization: `bearer ${TOKEN}` },
    });
    expect(response.statusCode).toBe(200);
  });

  it("leaves probes, metrics and docs open", async () => {
    for (const url of ["/healthz", "/readyz", "/metrics", "/docs/json"]) {
      expect((await app.inject({ method: "GET", url })).statusCode, url).toBe(200);
    }
  });
});

describe("POST /v1/nodes", () => {
  it("registers a node (201) and returns the same id for the same name (200)", async () => {
    const first = await register({ name: "herd-1", host: "127.0.0.1", port: 6434 });
    expect(first.statusCode).toBe(201);
    expect(first.json()).toEqual({
      id: 1,
      name: "herd-1",
      host: "127.0.0.1",
      port: 6434,
      role: "worker",
      state: "active",
      placements: { active: 0, stale: 0 },
    });
    const again = await register({ name: "herd-1", host: "herd-1.herd.default.svc.cluster.local", port: 5432 });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ id: 1, host: "herd-1.herd.default.svc.cluster.local", port: 5432 });
    const other = await register({ name: "herd-2", host: "127.0.0.1", port: 6435 });
    expect(other.json().id).toBe(2);
  });

  it.each([
    ["a missing port", { name: "herd-1", host: "h" }, /port/],
    ["a port out of range", { name: "herd-1", host: "h", port: 70000 }, /port/],
    ["a port that is a string", { name: "herd-1", host: "h", port: "x" }, /port/],
    ["an uppercase name", { name: "Herd-1", host: "h", port: 1 }, /name/],
    ["a host with a space", { name: "herd-1", host: "a b", port: 1 }, /host/],
    ["an unknown field", { name: "herd-1", host: "h", port: 1, role: "coordinator" }, /./],
  ])("answers 400 with a message for %s", async (_name, body, message) => {
    const response = await register(body);
    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({ statusCode: 400, error: "Bad Request" });
    expect(response.json().message).toMatch(message);
    expect((await pool.query("SELECT count(*)::int AS n FROM herd.nodes")).rows[0].n).toBe(0);
  });

  it("answers 400 to a body that is not JSON", async () => {
    const response = await app.inject({
      method: "POST",
      url: "/v1/nodes",
      headers: { ...auth, "content-type": "application/json" },
      payload: "{not json",
    });
    expect(response.statusCode).toBe(400);
    expect(response.json().message).toMatch(/JSON/i);
  });
});

describe("GET /v1/nodes", () => {
  it("lists nodes in id order, in the contract's shape", async () => {
    await register({ name: "herd-2", host: "127.0.0.1", port: 6435 });
    await register({ name: "herd-1", host: "127.0.0.1", port: 6434 });
    const response = await app.inject({ method: "GET", url: "/v1/nodes", headers: auth });
    expect(response.json()).toEqual({
      nodes: [
        {
          id: 1,
          name: "herd-2",
          host: "127.0.0.1",
          port: 6435,
          role: "worker",
          state: "active",
          placements: { active: 0, stale: 0 },
        },
        {
          id: 2,
          name: "herd-1",
          host: "127.0.0.1",
          port: 6434,
          role: "worker",
          state: "active",
          placements: { active: 0, stale: 0 },
        },
      ],
    });
  });

  it("reports a node whose heartbeat is older than the timeout as unreachable, until it registers again", async () => {
    await register({ name: "herd-1", host: "127.0.0.1", port: 6434 });
    await pool.query("UPDATE herd.nodes SET last_seen_at = now() - interval '16 seconds'");
    const stale = await app.inject({ method: "GET", url: "/v1/nodes", headers: auth });
    expect(stale.json().nodes[0].state).toBe("unreachable");
    await register({ name: "herd-1", host: "127.0.0.1", port: 6434 });
    const fresh = await app.inject({ method: "GET", url: "/v1/nodes", headers: auth });
    expect(fresh.json().nodes[0].state).toBe("active");
  });
});

describe("nodes learned from Kubernetes (the coordinator's Pod watch)", () => {
  const registry = () => new NodeRegistry(pool, 15_000);

  it("adds a discovered node, but never overwrites the address a node registered itself", async () => {
    expect(
      await registry().discover({ name: "herd-1", host: "herd-1.herd-hl.db.svc.cluster.local", port: 5432 }),
    ).toEqual({
      created: true,
    });
    await register({ name: "herd-2", host: "10.0.0.2", port: 6000 });
    expect(
      await registry().discover({ name: "herd-2", host: "herd-2.herd-hl.db.svc.cluster.local", port: 5432 }),
    ).toEqual({
      created: false,
    });
    const listed = (await registry().list()).map(({ name, host, port, state }) => ({ name, host, port, state }));
    expect(listed).toEqual([
      { name: "herd-1", host: "herd-1.herd-hl.db.svc.cluster.local", port: 5432, state: "active" },
      { name: "herd-2", host: "10.0.0.2", port: 6000, state: "active" },
    ]);
  });

  it("reads a node whose Pod is gone as unreachable at once, until it registers again with the same id", async () => {
    const first = await register({ name: "herd-1", host: "127.0.0.1", port: 6434 });
    expect(await registry().names()).toEqual(["herd-1"]);
    expect(await registry().podGone("herd-1")).toBe(true);
    // told again (a relist after a DELETED event): nothing changes, and it says so
    expect(await registry().podGone("herd-1")).toBe(false);
    expect(await registry().podGone("herd-9")).toBe(false);
    const gone = await app.inject({ method: "GET", url: "/v1/nodes", headers: auth });
    expect(gone.json().nodes[0]).toMatchObject({ id: first.json().id, state: "unreachable" });
    const back = await register({ name: "herd-1", host: "127.0.0.1", port: 6434 });
    expect(back.json()).toMatchObject({ id: first.json().id, state: "active" });
  });
});

describe("DELETE /v1/nodes/:id", () => {
  it("removes a node without placements", async () => {
    await register({ name: "herd-1", host: "127.0.0.1", port: 6434 });
    const response = await app.inject({ method: "DELETE", url: "/v1/nodes/1", headers: auth });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ id: 1, name: "herd-1" });
    expect((await app.inject({ method: "GET", url: "/v1/nodes", headers: auth })).json()).toEqual({ nodes: [] });
  });

  it("answers 404 for an unknown node and 400 for an id that is not a number", async () => {
    const missing = await app.inject({ method: "DELETE", url: "/v1/nodes/99", headers: auth });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().message).toBe("node 99 does not exist");
    const bad = await app.inject({ method: "DELETE", url: "/v1/nodes/abc", headers: auth });
    expect(bad.statusCode).toBe(400);
  });

  it("refuses (409) while the node holds shard placements, and keeps it", async () => {
    await register({ name: "herd-1", host: "127.0.0.1", port: 6434 });
    await pool.query("CREATE TABLE IF NOT EXISTS events (tenant_id int)");
    await pool.query(
      "INSERT INTO herd.colocation_groups (shard_count, replication_factor, distribution_column_type) VALUES (1, 1, 'int4')",
    );
    await pool.query("INSERT INTO herd.distributed_tables VALUES ('events', 'hash', 'tenant_id', 1)");
    await pool.query(
      "INSERT INTO herd.shards (relation, shard_index, min_value, max_value) VALUES ('events', 0, -2147483648, 2147483647)",
    );
    await pool.query("INSERT INTO herd.placements (shard_id, node_id) VALUES (102008, 1)");
    const response = await app.inject({ method: "DELETE", url: "/v1/nodes/1", headers: auth });
    expect(response.statusCode).toBe(409);
    expect(response.json().message).toMatch(/still holds 1 shard placement/);
    expect((await app.inject({ method: "GET", url: "/v1/nodes", headers: auth })).json().nodes).toHaveLength(1);
  });
});

describe("probes, metrics and docs", () => {
  it("answers /readyz 503 when the metadata server is not usable", async () => {
    ready = false;
    const response = await app.inject({ method: "GET", url: "/readyz" });
    expect(response.statusCode).toBe(503);
    expect((await app.inject({ method: "GET", url: "/healthz" })).statusCode).toBe(200);
  });

  it("exports node counts by state and request counts", async () => {
    await register({ name: "herd-1", host: "127.0.0.1", port: 6434 });
    const body = (await app.inject({ method: "GET", url: "/metrics" })).body;
    expect(body).toMatch(/^herd_nodes\{state="active"\} 1$/m);
    expect(body).toMatch(/^herd_nodes\{state="unreachable"\} 0$/m);
    expect(body).toMatch(/herd_admin_requests_total\{method="POST",route="\/v1\/nodes",status="201"\} \d+/);
  });

  it("describes the API in OpenAPI, with the bearer scheme on /v1 routes only", async () => {
    const spec = (await app.inject({ method: "GET", url: "/docs/json" })).json();
    expect(spec.openapi).toMatch(/^3\./);
    expect(spec.paths["/v1/nodes"].post.security).toEqual([{ bearer: [] }]);
    expect(spec.paths["/v1/nodes/{id}"].delete).toBeDefined();
    expect(spec.paths["/healthz"].get.security).toBeUndefined();
    expect((await app.inject({ method: "GET", url: "/docs" })).statusCode).toBeLessThan(400);
  });

  it("answers 404 for unknown routes", async () => {
    expect((await app.inject({ method: "GET", url: "/v1/nope", headers: auth })).statusCode).toBe(404);
  });
});

describe("CPU profile of the coordinator", () => {
  it("samples the process for the time asked and answers a .cpuprofile; one at a time; only with the token", async () => {
    const ask = (seconds: number, headers: Record<string, string> = auth) =>
      app.inject({ method: "POST", url: "/v1/debug/cpu-profile", headers, payload: { seconds } });
    expect((await ask(0.2, {})).statusCode).toBe(401);
    expect((await ask(0)).statusCode).toBe(400);
    // work for the sampler to see while it runs
    const busy = setInterval(() => {
      let x = 0;
      for (let i = 0; i < 200_000; i += 1) x += Math.sqrt(i);
      return x;
    }, 5);
    try {
      const [first, second] = await Promise.all([ask(0.5), new Promise((r) => setTimeout(r, 50)).then(() => ask(0.2))]);
      expect(second.statusCode).toBe(409);
      expect(first.statusCode).toBe(200);
      const profile = first.json();
      expect(profile.nodes.length).toBeGreaterThan(1);
      expect(profile.samples.length).toBeGreaterThan(100);
      expect(profile.endTime - profile.startTime).toBeGreaterThanOrEqual(400_000);
    } finally {
      clearInterval(busy);
    }
    // free again once the first is done
    expect((await ask(0.1)).statusCode).toBe(200);
  });
});
