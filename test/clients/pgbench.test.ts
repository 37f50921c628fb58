import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { divergentShards, herdClient } from "../faults/fault-kit.js";
import { useHerdCluster } from "../helpers/herd-up.js";

const herd = useHerdCluster("pgbench", { workers: 2 });

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

  it("runs the built-in TPC-B with all four tables distributed: every balance adds up and the copies stay alike", async () => {
    await pgbench("-i", "-s", "1", "-q");
    const client = await herdClient(herd.cluster);
    try {
      for (const [table, column] of [
        ["pgbench_accounts", "aid"],
        ["pgbench_branches", "bid"],
        ["pgbench_tellers", "tid"],
        ["pgbench_history", "aid"],
      ])
        await client.query("SELECT create_distributed_table($1, $2, colocate_with => 'none')", [table, column]);
      // each transaction writes four tables, each in its own colocation group: a two-phase commit
      const out = await pgbench("-M", "prepared", "-c", "4", "-j", "2", "-t", "150");
      expect(out).toMatch(/number of transactions actually processed: 600\/600/);
      expect(out).toMatch(/number of failed transactions: 0 /);
      const sums = await client.query(
        `SELECT (SELECT sum(abalance) FROM pgbench_accounts)::bigint AS accounts,
                (SELECT sum(tbalance) FROM pgbench_tellers)::bigint AS tellers,
                (SELECT sum(bbalance) FROM pgbench_branches)::bigint AS branches,
                (SELECT sum(delta) FROM pgbench_history)::bigint AS history,
                (SELECT count(*) FROM pgbench_history)::int AS transactions`,
      );
      const row = sums.rows[0];
      expect(row.transactions).toBe(600);
      expect([row.tellers, row.branches, row.history]).toEqual([row.accounts, row.accounts, row.accounts]);
      expect(await divergentShards(herd.cluster, client)).toEqual([]);
    } finally {
      await client.end();
    }
  });

  it("runs the select-only workload", async () => {
    const out = await pgbench("-S", "-M", "prepared", "-c", "8", "-j", "2", "-t", "500");
    expect(out).toMatch(/number of transactions actually processed: 4000\/4000/);
    expect(out).toMatch(/number of failed transactions: 0 /);
  });
});
