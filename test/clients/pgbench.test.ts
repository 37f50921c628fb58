import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type HerdUp, startHerdUp } from "../helpers/herd-up.js";
import { scratchDir } from "../helpers/scratch-dir.js";

const run = promisify(execFile);
let scratch: { path: string; remove(): Promise<void> };
let cluster: HerdUp;

beforeAll(async () => {
  scratch = await scratchDir("pgbench");
  cluster = await startHerdUp({ dataDir: scratch.path, workers: 1 });
});

afterAll(async () => {
  await cluster?.stop();
  await scratch?.remove();
});

async function pgbench(...args: string[]): Promise<string> {
  const { stdout, stderr } = await run(
    "pgbench",
    ["-h", "127.0.0.1", "-p", String(cluster.sqlPort), "-U", "postgres", ...args, "postgres"],
    {
      env: { ...process.env, PGPASSWORD: "postgres" },
    },
  );
  return stdout + stderr;
}

describe("pgbench through the coordinator", () => {
  it("initializes its tables (-i), with COPY and server-side generation", async () => {
    const out = await pgbench("-i", "-s", "1", "-q");
    expect(out).toMatch(/done in/);
    expect(await pgbench("-i", "-s", "1", "-q", "-I", "dtGvp")).toMatch(/server-side generate/);
  });

  it.each(["simple", "extended", "prepared"])(
    "runs the TPC-B-like workload in -M %s with no failed transaction",
    async (mode) => {
      const out = await pgbench("-M", mode, "-c", "4", "-j", "2", "-t", "200");
      expect(out).toMatch(/number of transactions actually processed: 800\/800/);
      expect(out).toMatch(/number of failed transactions: 0 \(0\.000%\)/);
    },
  );

  it("runs the select-only workload", async () => {
    const out = await pgbench("-S", "-M", "prepared", "-c", "8", "-j", "2", "-t", "500");
    expect(out).toMatch(/number of transactions actually processed: 4000\/4000/);
    expect(out).toMatch(/number of failed transactions: 0 /);
  });
});
