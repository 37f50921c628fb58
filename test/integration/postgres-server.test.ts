import { spawn } from "node:child_process";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createLogger, isHerdError } from "@herd/shared";
import { findPgBinaries, livePostmasterPid, PostgresServer, resolveRunAs } from "@herd/worker-bot";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { freePortRange } from "../helpers/ports.js";
import { processesMentioning } from "../helpers/processes.js";
import { scratchDir } from "../helpers/scratch-dir.js";

const PASSWORD = "pw-for-supervision";
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function newServer(
  dataDir: string,
  port: number,
  overrides: Partial<ConstructorParameters<typeof PostgresServer>[0]> = {},
) {
  const server = new PostgresServer({
    binaries: await findPgBinaries(),
    dataDir,
    logFile: `${dataDir}.log`,
    port,
    listenAddresses: "127.0.0.1",
    superuserPassword: PASSWORD,
    runAs: resolveRunAs(),
    logger: createLogger("test", { level: "error" }),
    restartBackoff: { initialMs: 100, maxMs: 500 },
    ...overrides,
  });
  cleanups.push(() => server.stop());
  return server;
}

async function scratch(name: string) {
  const dir = await scratchDir(name);
  cleanups.push(() => dir.remove());
  return dir.path;
}

async function query(port: number, sql: string, password = PASSWORD) {
  const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", password, database: "postgres" });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

describe("PostgresServer (real PostgreSQL 18)", () => {
  it("initializes an empty directory, starts, and applies herd's settings", async () => {
    const dir = await scratch("pg-init");
    const port = await freePortRange(1);
    const server = await newServer(join(dir, "pgdata"), port);
    await server.start();
    const [row] = await query(
      port,
      "SELECT current_setting('server_version_num')::int / 10000 AS major, current_setting('max_prepared_transactions') AS mpt, current_setting('wal_level') AS wal",
    );
    expect(row).toEqual({ major: 18, mpt: "300", wal: "logical" });
    // initdb staged elsewhere and renamed: no leftovers beside the data directory
    expect((await readdir(dir)).sort()).toEqual(["pgdata", "pgdata.log"]);
  });

  it("requires the password (SCRAM) and rejects a wrong one with 28P01", async () => {
    const dir = await scratch("pg-auth");
    const port = await freePortRange(1);
    await (await newServer(join(dir, "pgdata"), port)).start();
    const error = await query(port, "SELECT 1", "wrong").catch((e: { code?: string }) => e);
    expect(error).toMatchObject({ code: "28P01" });
    const hba = await readFile(join(dir, "pgdata", "pg_hba.conf"), "utf8");
    expect(hba).not.toMatch(/\btrust\b/);
  });

  it("restarts PostgreSQL after it is killed, keeping committed data", async () => {
    const dir = await scratch("pg-crash");
    const port = await freePortRange(1);
    const server = await newServer(join(dir, "pgdata"), port);
    await server.start();
    await query(port, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)");
    const firstPid = server.pid as number;
    const restarted = new Promise<{ pid: number }>((resolve) => server.once("restarted", resolve));
    process.kill(firstPid, "SIGKILL");
    const { pid } = await restarted;
    expect(pid).not.toBe(firstPid);
    expect(server.restarts).toBe(1);
    expect(await query(port, "SELECT v FROM kept")).toEqual([{ v: 42 }]);
  });

  it("stops cleanly and starts again on the same data", async () => {
    const dir = await scratch("pg-restart");
    const port = await freePortRange(1);
    const server = await newServer(join(dir, "pgdata"), port);
    await server.start();
    await query(port, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')");
    await server.stop();
    expect(processesMentioning(join(dir, "pgdata"))).toEqual([]);
    expect(await server.isReady()).toBe(false);
    await server.start();
    expect(await query(port, "SELECT v FROM kept")).toEqual([{ v: "still here" }]);
  });

  it("refuses a non-empty directory that is not a cluster, and leaves it untouched", async () => {
    const dir = await scratch("pg-foreign");
    const dataDir = join(dir, "pgdata");
    await mkdir(dataDir);
    await writeFile(join(dataDir, "precious.txt"), "do not overwrite");
    const server = await newServer(dataDir, await freePortRange(1));
    const error = await server.start().catch((e: unknown) => e);
    expect(isHerdError(error) && error.message).toMatch(/not empty and is not a PostgreSQL data directory/);
    expect(await readdir(dataDir)).toEqual(["precious.txt"]);
  });

  it("refuses a damaged cluster (no pg_control) instead of running initdb over it", async () => {
    const dir = await scratch("pg-damaged");
    const port = await freePortRange(1);
    const dataDir = join(dir, "pgdata");
    const server = await newServer(dataDir, port);
    await server.start();
    await server.stop();
    await rm(join(dataDir, "global", "pg_control"));
    const error = await (await newServer(dataDir, port)).start().catch((e: unknown) => e);
    expect(isHerdError(error) && error.message).toMatch(/is damaged: global\/pg_control is missing/);
    expect(await readFile(join(dataDir, "PG_VERSION"), "utf8")).toBe("18\n");
  });

  it("stops a PostgreSQL left running by a supervisor that was killed, then takes over", async () => {
    const dir = await scratch("pg-orphan");
    const port = await freePortRange(1);
    const dataDir = join(dir, "pgdata");
    // A separate supervisor process (like a bot) that we SIGKILL, orphaning its PostgreSQL.
    const script = `
      import { createLogger } from "@herd/shared";
      import { PostgresServer, findPgBinaries, resolveRunAs } from "@herd/worker-bot";
      const server = new PostgresServer({ binaries: await findPgBinaries(), dataDir: ${JSON.stringify(dataDir)},
        logFile: ${JSON.stringify(`${dataDir}.log`)}, port: ${port}, listenAddresses: "127.0.0.1",
        superuserPassword: ${JSON.stringify(PASSWORD)}, runAs: resolveRunAs(), logger: createLogger("orphan") });
      await server.start();
      console.log("started");
      setInterval(() => {}, 1000);`;
    const supervisor = spawn(process.execPath, ["--input-type=module", "-e", script], {
      cwd: join(import.meta.dirname, "..", "..", "packages", "worker-bot"),
      stdio: ["ignore", "pipe", "inherit"],
    });
    await new Promise<void>((resolve, reject) => {
      supervisor.stdout.on("data", (chunk: Buffer) => chunk.toString().includes("started") && resolve());
      supervisor.once("exit", (code) => reject(new Error(`supervisor exited ${code}`)));
    });
    const orphan = await livePostmasterPid(dataDir);
    expect(orphan).toBeGreaterThan(0);
    supervisor.kill("SIGKILL");
    await new Promise((resolve) => supervisor.once("exit", resolve));
    expect(await livePostmasterPid(dataDir)).toBe(orphan); // still running, unsupervised

    const server = await newServer(dataDir, port);
    await server.start();
    expect(server.pid).not.toBe(orphan);
    expect(await livePostmasterPid(dataDir)).toBe(server.pid);
    expect(await query(port, "SELECT 1 AS ok")).toEqual([{ ok: 1 }]);
  });
});
