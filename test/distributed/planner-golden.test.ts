import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Catalog, snapshotData } from "@herd/coordinator";
import { createLogger } from "@herd/shared";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CATALOG_FIXTURE, comparableCatalog } from "../../packages/coordinator/src/testing/catalog-fixture.js";
import { connectTo } from "../helpers/differential.js";
import { useHerdCluster } from "../helpers/herd-up.js";
import { DISTRIBUTE, runAll, SCHEMA } from "./schema.js";

// Golden planner cases (after Vitess's testdata/*_cases.json): which shards each statement
// reaches and the SQL they run, as EXPLAIN shows the distributed plan through a real cluster.
// The planner's unit test (planner/planner-golden.test.ts) plans the same cases in-process
// against the catalog fixture; here the fixture is checked against the cluster it stands for.
// A fresh cluster makes the same shard ids every time. HERD_UPDATE_GOLDEN=1 rewrites both files
// from what herd says now; review the diff before committing it.
const CASES_FILE = join(import.meta.dirname, "../../packages/coordinator/src/planner/testdata/router-cases.json");

interface GoldenCase {
  readonly comment: string;
  readonly sql: string;
  readonly plan: string;
}

const herdUp = useHerdCluster("planner-golden", { workers: 3 });
let herd: pg.Client;
let cases: GoldenCase[];

beforeAll(async () => {
  herd = await connectTo({ host: "127.0.0.1", port: herdUp.cluster.sqlPort, user: "postgres", password: "postgres" });
  await runAll(herd, SCHEMA);
  await runAll(herd, DISTRIBUTE);
});

afterAll(async () => {
  await herd?.end();
});

async function explain(sql: string): Promise<string> {
  try {
    const { rows } = await herd.query(`EXPLAIN ${sql}`);
    return rows.map((row) => row["QUERY PLAN"]).join("\n");
  } catch (error) {
    return `ERROR ${(error as { code: string }).code}: ${(error as Error).message}`;
  }
}

/** The cluster's catalog, read from the coordinator's metadata by the coordinator's own Catalog. */
async function clusterCatalog() {
  const pool = new pg.Pool({
    host: "127.0.0.1",
    port: herdUp.cluster.sqlPort + 1,
    user: "postgres",
    password: herdUp.cluster.internalPassword,
    database: "postgres",
  });
  try {
    const catalog = new Catalog(pool, createLogger("golden", { write: () => {} }));
    await catalog.load();
    return snapshotData(catalog.current);
  } finally {
    await pool.end();
  }
}

describe("the planner's golden cases", async () => {
  cases = JSON.parse(await readFile(CASES_FILE, "utf8")) as GoldenCase[];

  if (process.env.HERD_UPDATE_GOLDEN) {
    it("rewrites the golden files", async () => {
      const updated = [];
      for (const golden of cases) updated.push({ ...golden, plan: await explain(golden.sql) });
      await writeFile(CASES_FILE, `${JSON.stringify(updated, null, 2)}\n`);
      await writeFile(CATALOG_FIXTURE, `${JSON.stringify(await clusterCatalog(), null, 1)}\n`);
    });
    return;
  }

  it("plans against the catalog the in-process tests use", async () => {
    const fixture = JSON.parse(await readFile(CATALOG_FIXTURE, "utf8"));
    expect(comparableCatalog(await clusterCatalog())).toEqual(comparableCatalog(fixture));
  });

  for (const golden of cases) {
    it(golden.comment, async () => {
      expect(await explain(golden.sql)).toBe(golden.plan);
    });
  }
});
