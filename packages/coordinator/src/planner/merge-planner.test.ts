import { beforeAll, describe, expect, it } from "vitest";
import { type AnyNode, deparse, parseStatements } from "../parser/ast.js";
import { loadParser } from "../parser/statement-cache.js";
import { fixtureCatalog } from "../testing/catalog-fixture.js";
import { mergeSplit } from "./merge-planner.js";
import { analyzeStatement } from "./semantics/analyze.js";
import type { QueryLevel } from "./semantics/query-level.js";

// orders (tenant_id int, id bigint, customer_id int, amount numeric(12,2), status text, placed_at
// timestamp), distributed by tenant_id. Types are given as PostgreSQL would report them. The
// worker query's columns are named by the merge table (c1, c2, … in worker-query order).
const catalog = fixtureCatalog();
const INT4 = 23;
const NUMERIC = 1700;

function split(sql: string, kind: "rows" | "aggregate", outputNames: string[], argumentTypes: number[] = []) {
  const statement = parseStatements(sql)[0] as AnyNode;
  const semantics = analyzeStatement(statement, catalog);
  const plan = mergeSplit(statement.SelectStmt, kind, catalog, semantics.top as QueryLevel);
  const { queries, workerMentions } = plan.build({ outputNames, argumentTypes });
  return { probe: plan.probe, worker: deparse(queries.worker), combine: queries.combine, queries, workerMentions };
}

beforeAll(async () => {
  await loadParser();
});

describe("splitting aggregates into worker and combine queries", () => {
  it("sums an int4 into bigint and counts into bigint, exactly as PostgreSQL types them", () => {
    const { probe, worker, combine } = split(
      "SELECT sum(customer_id), count(*) FROM orders",
      "aggregate",
      ["sum", "count"],
      [INT4],
    );
    expect(probe).toBe("SELECT customer_id FROM orders");
    expect(worker).toBe("SELECT sum(customer_id), count(*) FROM orders");
    expect(combine).toBe(
      "SELECT (sum(c1))::int8 AS sum, CAST(COALESCE(sum(c2), 0) AS int8) AS count FROM pg_temp.herd_merge",
    );
  });

  it("averages from a sum and a count, as numeric for an exact argument", () => {
    const { worker, combine } = split("SELECT avg(amount) FROM orders", "aggregate", ["avg"], [NUMERIC]);
    expect(worker).toBe("SELECT sum(amount), count(amount) FROM orders");
    expect(combine).toBe("SELECT (sum(c1))::numeric / (NULLIF (sum(c2), 0)) AS avg FROM pg_temp.herd_merge");
  });

  it("groups the workers by the GROUP BY expressions, a result alias read as its expression", () => {
    const { worker, combine } = split(
      "SELECT status AS s, max(amount) FROM orders GROUP BY s HAVING count(*) > 2 ORDER BY 2 DESC",
      "aggregate",
      ["s", "max"],
    );
    expect(worker).toBe("SELECT status, max(amount), count(*) FROM orders GROUP BY status");
    expect(combine).toBe(
      "SELECT c1 AS s, max(c2) AS max FROM pg_temp.herd_merge GROUP BY c1 HAVING CAST(COALESCE(sum(c3), 0) AS int8) > 2 ORDER BY 2 DESC",
    );
  });

  it("pulls the rows to the coordinator for an aggregate it cannot split (ORDER BY inside)", () => {
    const { worker, queries } = split("SELECT string_agg(status, ',' ORDER BY id) FROM orders", "aggregate", [
      "string_agg",
    ]);
    expect(queries.strategy).toBe("rows pulled for aggregation");
    expect(worker).toBe("SELECT status, id FROM orders");
  });

  it("renames the worker query's tables to shards", () => {
    const { workerMentions } = split("SELECT count(*) FROM orders o JOIN customers c USING (tenant_id)", "aggregate", [
      "count",
    ]);
    expect(workerMentions.map((mention) => [mention.table.name, mention.keepAlias])).toEqual([
      ["orders", true],
      ["customers", true],
    ]);
  });
});

describe("merging final rows", () => {
  it("pushes LIMIT + OFFSET down and sorts again on the coordinator, by a column it adds", () => {
    const { worker, combine, queries } = split(
      "SELECT id FROM orders ORDER BY amount DESC, id LIMIT 3 OFFSET 4",
      "rows",
      ["id"],
    );
    expect(queries.strategy).toBe("rows (limit pushed down)");
    expect(worker).toBe("SELECT id, amount FROM orders ORDER BY amount DESC, id LIMIT 3 + 4");
    expect(queries.columns).toEqual(["c1", "c2"]);
    expect(combine).toBe("SELECT c1 AS id FROM pg_temp.herd_merge ORDER BY c2 DESC, c1 LIMIT 3 OFFSET 4");
  });

  it("de-duplicates on the coordinator, leaving the workers' order alone", () => {
    const { worker, combine } = split("SELECT DISTINCT status FROM orders ORDER BY status", "rows", ["status"]);
    expect(worker).toBe("SELECT DISTINCT status FROM orders");
    expect(combine).toBe("SELECT DISTINCT c1 AS status FROM pg_temp.herd_merge ORDER BY c1");
  });
});
