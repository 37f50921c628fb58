import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { herdClient, preparedTransactions } from "../faults/fault-kit.js";
import { useHerdCluster } from "../helpers/herd-up.js";
import { CLIENTS_DIR, cached } from "./client-checks.js";

// Alembic (with SQLAlchemy and psycopg 3) migrates a database on herd, as Python projects do: it
// sends its own catalog queries, creates alembic_version, and runs every migration of a run in one
// transaction block. The migrations (test/clients/alembic/versions) distribute tables, index,
// alter, insert with executemany and add a CHECK constraint; one fails half-way, and everything
// its run did must be gone; downgrade undoes them all.
const herdUp = useHerdCluster("alembic", { workers: 2 });
const PYTHON = cached("venv/bin/python");
let herd: pg.Client;

beforeAll(async () => {
  herd = await herdClient(herdUp.cluster);
}, 60_000);

afterAll(async () => {
  await herd?.end();
});

/** Runs `alembic <action> <revision>` against herd; resolves with its exit code and stderr. */
function alembic(action: "upgrade" | "downgrade", revision: string): Promise<{ code: number | null; stderr: string }> {
  if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: run \`bash test/clients/install-deps.sh\``);
  const url = `postgresql+psycopg://postgres:postgres@127.0.0.1:${herdUp.cluster.sqlPort}/postgres`;
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [join(CLIENTS_DIR, "alembic", "run_alembic.py"), url, action, revision], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    child.stdout.resume();
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stderr }));
  });
}

async function version(): Promise<string[]> {
  return (await herd.query("SELECT version_num FROM alembic_version")).rows.map((row) => row.version_num as string);
}

describe("Alembic migrations on herd", () => {
  it("upgrades in one transaction: tables distributed and colocated, indexed, altered and filled", async () => {
    const run = await alembic("upgrade", "0002");
    expect(run.stderr).not.toMatch(/FAILED/);
    expect(run.code).toBe(0);
    expect(await version()).toEqual(["0002"]);
    expect(
      (await herd.query("SELECT logicalrelid::text AS t, colocationid FROM pg_dist_partition ORDER BY 1")).rows,
    ).toEqual([
      { t: "campaigns", colocationid: expect.any(Number) },
      { t: "companies", colocationid: expect.any(Number) },
    ]);
    const colocation = (await herd.query("SELECT DISTINCT colocationid FROM pg_dist_partition")).rows;
    expect(colocation).toHaveLength(1);
    expect(
      (
        await herd.query(
          `SELECT count(*)::int AS n, sum(budget)::int AS budget FROM campaigns c JOIN companies p ON p.id = c.company_id`,
        )
      ).rows,
    ).toEqual([{ n: 100, budget: 500 }]);
    // the CHECK constraint of 0002 is on every shard
    expect(await herd.query("UPDATE campaigns SET budget = -5 WHERE company_id = 3").catch((e) => e.code)).toBe(
      "23514",
    );
  });

  it("a migration that fails half-way leaves nothing of its run, and the version stays", async () => {
    const run = await alembic("upgrade", "head");
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/FAILED 23514/);
    expect(await version()).toEqual(["0002"]);
    expect((await herd.query("SELECT to_regclass('ads') IS NULL AS gone")).rows).toEqual([{ gone: true }]);
    expect((await herd.query("SELECT count(*)::int AS n FROM pg_dist_partition")).rows).toEqual([{ n: 2 }]);
    const columns = await herd.query(
      "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) AS c FROM information_schema.columns WHERE table_name = 'campaigns'",
    );
    expect(columns.rows).toEqual([{ c: "company_id,id,name,budget" }]);
    expect((await herd.query("SELECT sum(budget)::int AS b FROM campaigns WHERE company_id = 2")).rows).toEqual([
      { b: 0 },
    ]);
    for (const ordinal of [1, 2]) expect(await preparedTransactions(herdUp.cluster, ordinal)).toEqual([]);
  });

  it("downgrades to nothing: the distributed tables and their shards are dropped", async () => {
    const run = await alembic("downgrade", "base");
    expect(run.stderr).not.toMatch(/FAILED/);
    expect(run.code).toBe(0);
    expect(await version()).toEqual([]);
    expect((await herd.query("SELECT count(*)::int AS n FROM pg_dist_partition")).rows).toEqual([{ n: 0 }]);
    expect((await herd.query("SELECT count(*)::int AS n FROM pg_dist_shard")).rows).toEqual([{ n: 0 }]);
  });
});
