import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SCHEMA } from "../../../../test/distributed/schema.js";
import { startTestPostgres, TEST_PASSWORD, type TestPostgres } from "../../../../test/helpers/postgres.js";
import { PgConnection } from "../connection/pg-connection.js";
import { loadParser } from "../parser/statement-cache.js";
import { fixtureCatalog } from "../testing/catalog-fixture.js";
import { explainInProcess } from "../testing/explain.js";

// The golden cases (after Vitess's testdata/*_cases.json), planned in-process against the catalog
// of the cluster they were recorded on (testing/testdata/catalog.json): which shards each
// statement reaches and the SQL they run. Routes need no server at all; a merge asks PostgreSQL
// for the statement's types, so one plain PostgreSQL with the tables' definitions stands in for
// the coordinator's. test/distributed/planner-golden.test.ts checks the same file through a real
// cluster, and that the fixture is that cluster's catalog.
interface GoldenCase {
  readonly comment: string;
  readonly sql: string;
  readonly plan: string;
}

const cases = JSON.parse(
  readFileSync(join(import.meta.dirname, "testdata", "router-cases.json"), "utf8"),
) as GoldenCase[];
let postgres: TestPostgres;
let backend: PgConnection;

beforeAll(async () => {
  await loadParser();
  postgres = await startTestPostgres("planner-golden");
  for (const sql of SCHEMA) await postgres.query(sql);
  backend = await PgConnection.open(
    { host: "127.0.0.1", port: postgres.port, password: TEST_PASSWORD },
    new Map([
      ["user", "postgres"],
      ["database", "postgres"],
    ]),
  );
}, 60_000);

afterAll(async () => {
  backend?.close();
  await postgres?.stop();
});

describe("the planner's golden cases, in-process", () => {
  const catalog = fixtureCatalog();
  for (const golden of cases) {
    it(golden.comment, async () => {
      expect(await explainInProcess(golden.sql, catalog, backend)).toBe(golden.plan);
    });
  }
});
