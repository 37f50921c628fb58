import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { useHerdCluster } from "../helpers/herd-up.js";

const herd = useHerdCluster("pgbench", { workers: 1 });

const run = promisify(execFile);

async function pgbench(...args: string[]): Promise<string> {
  const { stdout, stderr } = await run(
    "pgbench",
    ["-h", "127.0.0.1", "-p", String(herd.cluster.sqlPort), "-U", "postgres", ...args, "postgres"],
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
