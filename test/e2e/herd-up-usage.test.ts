import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import type { NodeListJson } from "@herd/shared";
import { afterEach, describe, expect, it } from "vitest";
import { clusterPorts, HERD_CLI, type HerdUp, startHerdUp } from "../helpers/herd-up.js";
import { processesMentioning } from "../helpers/processes.js";
import { scratchDir } from "../helpers/scratch-dir.js";

const run = promisify(execFile);
const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function scratch(name: string): Promise<string> {
  const dir = await scratchDir(name);
  cleanups.push(() => dir.remove());
  return dir.path;
}

async function herd(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [HERD_CLI, ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe("the herd CLI", () => {
  it("explains itself with --help", async () => {
    const main = await herd(["--help"]);
    expect(main.code).toBe(0);
    expect(main.stdout).toMatch(/herd up \[options\]/);
    const up = await herd(["up", "--help"]);
    expect(up.stdout).toMatch(/--replication-factor N/);
    expect(up.stdout).toMatch(/default 6432/);
  });

  it("rejects bad flags with exit code 2 and a pointer to --help", async () => {
    const bad = await herd(["up", "--workers", "zero"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--workers must be a whole number from 1 to 64, not "zero"/);
    const unknown = await herd(["up", "--shards", "4"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/Unknown option '--shards'[\s\S]*herd up --help/);
  });

  it("refuses a replication factor larger than the number of workers, creating nothing", async () => {
    const dir = join(await scratch("rf"), "cluster");
    const result = await herd(["up", "--workers", "1", "--replication-factor", "2", "--data-dir", dir]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/replication factor 2 needs at least 2 workers, not 1/);
    expect(existsSync(dir)).toBe(false);
  });

  it("names a port that is taken, and leaves no lock or process behind", async () => {
    const dir = await scratch("port-taken");
    const { sqlPort, adminPort } = await clusterPorts(1);
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(sqlPort + 2, "127.0.0.1", resolve));
    cleanups.push(() => new Promise((resolve) => blocker.close(resolve)));
    const result = await herd([
      "up",
      "--workers",
      "1",
      "--port",
      String(sqlPort),
      "--admin-port",
      String(adminPort),
      "--data-dir",
      dir,
    ]);
    expect(result.stderr).toContain(`port ${sqlPort + 2} is not available on 127.0.0.1`);
    expect(result.code).toBe(1);
    expect(existsSync(join(dir, "herd.lock"))).toBe(false);
    expect(processesMentioning(dir)).toEqual([]);
  });

  it("says when no cluster runs for `herd status`", async () => {
    const result = await herd(["status", "--data-dir", await scratch("no-cluster")]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/no herd up is running in/);
  });
});

describe("pnpm start", () => {
  let cluster: HerdUp | undefined;
  afterEach(async () => {
    await cluster?.stop();
  });

  it("passes its flags through to herd up", async () => {
    const dir = await scratch("pnpm-start");
    const ports = await clusterPorts(2);
    cluster = await startHerdUp({ dataDir: dir, workers: 2, ports, viaPnpmStart: true });
    const { nodes } = (await (await cluster.admin("/v1/nodes")).json()) as NodeListJson;
    expect(nodes.map((n) => [n.name, n.port]).sort()).toEqual([
      ["herd-1", ports.sqlPort + 2],
      ["herd-2", ports.sqlPort + 3],
    ]);
    expect(cluster.output()).toContain(`creating a local cluster in ${dir} (coordinator + 2 workers)`);
    expect(await cluster.stop("SIGINT")).toBe(0);
    cluster = undefined;
    expect(processesMentioning(dir)).toEqual([]);
  });
});
