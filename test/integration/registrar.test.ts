import { buildAdminApp, migrate, NodeRegistry } from "@herd/coordinator";
import { createLogger, sleep } from "@herd/shared";
import { Registrar } from "@herd/worker-bot";
import type { FastifyInstance } from "fastify";
import pg from "pg";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { freePortRange } from "../helpers/ports.js";
import { startTestPostgres, type TestPostgres } from "../helpers/postgres.js";

const TOKEN = "registrar-token";
let postgres: TestPostgres;
let pool: pg.Pool;
let port: number;
let app: FastifyInstance | undefined;
const registrars: Registrar[] = [];

beforeAll(async () => {
  postgres = await startTestPostgres("registrar");
  pool = new pg.Pool(postgres.connection);
  await migrate(pool, createLogger("test", { level: "error" }));
});

afterAll(async () => {
  await pool?.end();
  await postgres?.stop();
});

beforeEach(async () => {
  port = await freePortRange(1);
  await pool.query("TRUNCATE herd.nodes RESTART IDENTITY CASCADE");
});

afterEach(async () => {
  for (const registrar of registrars.splice(0)) await registrar.stop();
  await app?.close();
  app = undefined;
});

async function startCoordinatorApi(): Promise<void> {
  app = await buildAdminApp({
    nodes: new NodeRegistry(pool, 15_000),
    // the registrar's protocol (retries, heartbeats), not node verification, is under test here:
    // every registration proves itself (node-verification.test.ts verifies real servers)
    verify: async () => ({ ok: true }),
    adminToken: TOKEN,
    logger: createLogger("test", { level: "error" }),
    isReady: async () => true,
  });
  await app.listen({ host: "127.0.0.1", port });
}

function registrar(token: string, lines: string[] = [], backoff = { initialMs: 20, maxMs: 100 }): Registrar {
  const r = new Registrar({
    coordinatorUrl: `http://127.0.0.1:${port}`,
    adminToken: token,
    node: { name: "herd-1", host: "127.0.0.1", port: 6434 },
    heartbeatIntervalMs: 100,
    backoff,
    logger: createLogger("registrar", { level: "info", write: (line) => lines.push(line) }),
  });
  registrars.push(r);
  r.start();
  return r;
}

async function until<T>(probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(25);
  }
  throw new Error("condition not met in time");
}

const lastSeen = async () =>
  (await pool.query<{ last_seen_at: Date }>("SELECT last_seen_at FROM herd.nodes WHERE name = 'herd-1'")).rows[0]
    ?.last_seen_at;

describe("Registrar", () => {
  it("keeps retrying until the coordinator comes up, then registers", async () => {
    const lines: string[] = [];
    const r = registrar(TOKEN, lines);
    await sleep(300); // several failed attempts against a closed port
    expect(r.node).toBeUndefined();
    expect(lines.some((line) => line.includes("cannot register with the coordinator; retrying"))).toBe(true);
    await startCoordinatorApi();
    const node = await until(() => r.node);
    expect(node).toMatchObject({ id: 1, name: "herd-1", state: "active" });
    expect(lines.at(-1)).toContain("registered with the coordinator node_id=1");
  });

  it("heartbeats with the same registration, so last_seen advances and the id stays", async () => {
    await startCoordinatorApi();
    const r = registrar(TOKEN);
    await until(() => r.node);
    const first = await lastSeen();
    await until(async () => ((await lastSeen())?.getTime() ?? 0) > (first?.getTime() ?? 0) || undefined);
    expect(r.node?.id).toBe(1);
    expect((await pool.query("SELECT count(*)::int AS n FROM herd.nodes")).rows[0].n).toBe(1);
  });

  it("registers again when the coordinator forgot the node (lost metadata)", async () => {
    await startCoordinatorApi();
    const r = registrar(TOKEN);
    await until(() => r.node);
    await pool.query("DELETE FROM herd.nodes");
    const back = await until(async () => (await lastSeen()) ?? undefined);
    expect(back).toBeInstanceOf(Date);
  });

  it("never registers with a wrong token, and says why", async () => {
    await startCoordinatorApi();
    const lines: string[] = [];
    const r = registrar("wrong-token", lines);
    await until(() => lines.find((line) => line.includes("rejected the admin token (401)")));
    expect(r.node).toBeUndefined();
    expect(await lastSeen()).toBeUndefined();
    expect(lines.join("\n")).not.toContain("wrong-token");
  });

  it("stop() interrupts a backoff wait instead of sitting it out", async () => {
    // no coordinator, and a backoff of at least 6 s (10% of 60 s) after the first failure
    const r = registrar(TOKEN, [], { initialMs: 60_000, maxMs: 60_000 });
    await sleep(100);
    const stopped = await Promise.race([r.stop().then(() => "stopped"), sleep(5_000).then(() => "still waiting")]);
    expect(stopped).toBe("stopped");
  });
});
