import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectTo } from "../helpers/differential.js";
import { useHerdCluster } from "../helpers/herd-up.js";
import { DISTRIBUTE, runAll, SCHEMA } from "./schema.js";

// Golden planner cases (after Vitess's testdata/*_cases.json): which shards each statement
// reaches and the SQL they run, as EXPLAIN shows the distributed plan. A fresh cluster makes
// the same shard ids every time. HERD_UPDATE_GOLDEN=1 rewrites the file from what herd says now;
// review the diff before committing it.
const CASES_FILE = join(import.meta.dirname, "router-cases.json");

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

describe("the planner's golden cases", async () => {
  cases = JSON.parse(await readFile(CASES_FILE, "utf8")) as GoldenCase[];

  if (process.env.HERD_UPDATE_GOLDEN) {
    it("rewrites the golden file", async () => {
      const updated = [];
      for (const golden of cases) updated.push({ ...golden, plan: await explain(golden.sql) });
      await writeFile(CASES_FILE, `${JSON.stringify(updated, null, 2)}\n`);
    });
    return;
  }

  for (const golden of cases) {
    it(golden.comment, async () => {
      expect(await explain(golden.sql)).toBe(golden.plan);
    });
  }
});
