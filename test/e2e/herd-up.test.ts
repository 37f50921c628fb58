import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import type { NodeListJson } from "@herd/shared";
import { livePostmasterPid } from "@herd/worker-bot";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, HERD_CLI, type HerdUp, startHerdUp } from "../helpers/herd-up.js";
import { botPid, processesMentioning } from "../helpers/processes.js";
import { scratchDir } from "../helpers/scratch-dir.js";

const run = promisify(execFile);
// short heartbeats so re-registration is seen in seconds, not the default 5 s
const BOT_ENV = { HERD_HEARTBEAT_INTERVAL_MS: "300", HERD_HEARTBEAT_TIMEOUT_MS: "5000" };

let scratch: { path: string; remove(): Promise<void> };
let cluster: HerdUp | undefined;
let idsAtStop: (string | number)[][] = [];

beforeAll(async () => {
  scratch = await scratchDir("herd-up");
  cluster = await startHerdUp({ dataDir: scratch.path, env: BOT_ENV });
});

afterAll(async () => {
  await cluster?.stop();
  await scratch?.remove();
});

const up = () => cluster as HerdUp;

async function nodes(): Promise<NodeListJson["nodes"]> {
  const response = await up().admin("/v1/nodes");
  expect(response.status).toBe(200);
  return ((await response.json()) as NodeListJson).nodes;
}

/** SQL through the coordinator's SQL port, as a client would send it. */
async function sql<R extends pg.QueryResultRow>(text: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({
    host: "127.0.0.1",
    port: up().sqlPort,
    user: "postgres",
    password: "postgres",
    database: "postgres",
  });
  await client.connect();
  try {
    return (await client.query<R>(text, params)).rows;
  } finally {
    await client.end();
  }
}

describe("herd up: a local cluster with real processes", () => {
  it("brings up a coordinator and three registered, active workers", async () => {
    const list = await nodes();
    expect(list.map((n) => [n.name, n.host, n.state]).sort()).toEqual([
      ["herd-1", "127.0.0.1", "active"],
      ["herd-2", "127.0.0.1", "active"],
      ["herd-3", "127.0.0.1", "active"],
    ]);
    // worker i's PostgreSQL is on SQL port + 1 + i
    for (const node of list) expect(node.port).toBe(up().sqlPort + 1 + Number(node.name.split("-")[1]));
    expect(up().output()).toContain(`SQL      postgresql://postgres@127.0.0.1:${up().sqlPort}/postgres`);
  });

  it("answers psql on the SQL port, with the password required", async () => {
    const psql = ["-h", "127.0.0.1", "-p", String(up().sqlPort), "-U", "postgres", "-tA", "-c", "select 1"];
    const ok = await run("psql", psql, { env: { ...process.env, PGPASSWORD: "postgres" } });
    expect(ok.stdout.trim()).toBe("1");
    const denied = await run("psql", psql, { env: { ...process.env, PGPASSWORD: "wrong" } }).catch((e) => e);
    expect(denied.stderr).toMatch(/password authentication failed/);
  });

  it("shows the nodes with `herd status`", async () => {
    const { stdout } = await run(process.execPath, [HERD_CLI, "status", "--data-dir", up().dataDir]);
    expect(stdout).toMatch(/ready/);
    expect(stdout).toMatch(/herd-1\s+127\.0\.0\.1\s+\d+\s+active/);
    // every worker active, with its placements (none yet: no table is distributed)
    expect(stdout).toMatch(/STATE\s+PLACEMENTS/);
    expect(stdout.split("\n").filter((line) => / active\s+0$/.test(line))).toHaveLength(3);
  });

  it("refuses a second herd up on the same data directory", async () => {
    const second = await run(process.execPath, [
      HERD_CLI,
      "up",
      "--data-dir",
      up().dataDir,
      "--port",
      "1",
      "--admin-port",
      "2",
    ]).catch((e) => e);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/is in use by another herd up \(pid \d+\)/);
    expect((await nodes()).every((n) => n.state === "active")).toBe(true);
  });

  it("restarts a worker's PostgreSQL after it is killed", async () => {
    const pgdata = join(up().dataDir, "herd-2", "pgdata");
    const before = await livePostmasterPid(pgdata);
    expect(before).toBeGreaterThan(0);
    process.kill(before as number, "SIGKILL");
    const after = await eventually(
      async () => {
        const pid = await livePostmasterPid(pgdata);
        return pid !== undefined && pid !== before ? pid : undefined;
      },
      30_000,
      "a new postmaster",
    );
    expect(after).not.toBe(before);
    const worker = (await nodes()).find((n) => n.name === "herd-2");
    const rows = await eventually(
      async () => {
        // a fresh client per attempt: the first ones may meet a server still starting
        const client = new pg.Client({
          host: "127.0.0.1",
          port: worker?.port,
          user: "postgres",
          password: up().internalPassword,
        });
        await client.connect();
        try {
          return (await client.query("SELECT 1 AS ok")).rows;
        } finally {
          await client.end();
        }
      },
      30_000,
      "worker PostgreSQL answering again",
    );
    expect(rows).toEqual([{ ok: 1 }]);
  });

  it("restarts a killed coordinator, which keeps its metadata and hears from every worker again", async () => {
    await sql("CREATE TABLE survivors (x int)");
    await sql("INSERT INTO survivors VALUES (7)");
    const idsBefore = (await nodes()).map((n) => [n.name, n.id]);
    const coordinator = botPid(up().dataDir, "herd-0");
    expect(coordinator).toBeGreaterThan(0);
    const killedAt = new Date();
    process.kill(coordinator as number, "SIGKILL");
    await eventually(
      async () => {
        const pid = botPid(up().dataDir, "herd-0");
        const ready = await fetch(`http://127.0.0.1:${up().adminPort}/readyz`)
          .then((r) => r.ok)
          .catch(() => false);
        return pid && pid !== coordinator && ready ? true : undefined;
      },
      60_000,
      "a restarted coordinator",
    );
    expect(up().output()).toMatch(/herd-0 exited \(SIGKILL\); restarting/);
    expect((await nodes()).map((n) => [n.name, n.id])).toEqual(idsBefore);
    const heard = await eventually(
      async () => {
        const rows = await sql<{ name: string }>("SELECT name FROM herd.nodes WHERE last_seen_at > $1 ORDER BY name", [
          killedAt,
        ]);
        return rows.length === 3 ? rows.map((r) => r.name) : undefined;
      },
      30_000,
      "heartbeats from all workers after the restart",
    );
    expect(heard).toEqual(["herd-1", "herd-2", "herd-3"]);
  });

  it("relearns workers whose registration the coordinator lost", async () => {
    await sql("DELETE FROM herd.nodes");
    const names = await eventually(
      async () => {
        const list = await nodes();
        return list.length === 3 ? list.map((n) => n.name).sort() : undefined;
      },
      30_000,
      "workers registered again",
    );
    expect(names).toEqual(["herd-1", "herd-2", "herd-3"]);
  });

  it("stops everything on Ctrl-C, leaving no process and no lock", async () => {
    idsAtStop = (await nodes()).map((n) => [n.name, n.id]);
    const code = await up().stop("SIGINT");
    expect(code).toBe(0);
    expect(up().output()).toContain("herd: stopped; no process left running.");
    expect(processesMentioning(up().dataDir)).toEqual([]);
    expect(existsSync(join(up().dataDir, "herd.lock"))).toBe(false);
  });

  it("brings back the same cluster on the same data directory", async () => {
    cluster = await startHerdUp({ dataDir: scratch.path, env: BOT_ENV });
    expect(up().output()).toContain("starting a local cluster");
    const list = await nodes();
    expect(list.map((n) => [n.name, n.id])).toEqual(idsAtStop);
    expect(list.every((n) => n.state === "active")).toBe(true);
    expect(await sql("SELECT x FROM survivors")).toEqual([{ x: 7 }]);
  });
});
