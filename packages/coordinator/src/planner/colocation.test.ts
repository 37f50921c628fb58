import { beforeAll, describe, expect, it } from "vitest";
import { type AnyNode, parseStatements } from "../parser/ast.js";
import { loadParser } from "../parser/statement-cache.js";
import { fixtureCatalog } from "../testing/catalog-fixture.js";
import { analyzeColocation } from "./colocation.js";
import { analyzeStatement } from "./semantics/analyze.js";

// customers and orders: distributed by tenant_id, colocated; countries: a reference table.
const catalog = fixtureCatalog();
const colocation = (sql: string) => {
  const statement = parseStatements(sql)[0] as AnyNode;
  return { statement, colocation: analyzeColocation(analyzeStatement(statement, catalog), catalog) };
};
const problem = (sql: string) => colocation(sql).colocation.problem?.message;

beforeAll(async () => {
  await loadParser();
});

describe("whether a statement can run shard group by shard group", () => {
  it("accepts tables tied by their distribution columns, at any level", () => {
    expect(problem("SELECT * FROM customers c JOIN orders o ON o.tenant_id = c.tenant_id")).toBeUndefined();
    expect(problem("SELECT * FROM customers c, orders o WHERE o.tenant_id = c.tenant_id")).toBeUndefined();
    expect(problem("SELECT * FROM customers c JOIN orders o USING (tenant_id)")).toBeUndefined();
    expect(problem("SELECT * FROM customers c WHERE c.tenant_id IN (SELECT tenant_id FROM orders)")).toBeUndefined();
    expect(
      problem("SELECT * FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.tenant_id = c.tenant_id)"),
    ).toBeUndefined();
    expect(problem("SELECT * FROM customers c JOIN countries k ON k.code = c.country")).toBeUndefined();
  });

  it("refuses tables not tied together (Citus's complex join)", () => {
    expect(problem("SELECT * FROM customers c JOIN orders o ON o.customer_id = c.id")).toMatch(/^complex joins/);
    expect(problem("SELECT * FROM orders WHERE amount > (SELECT avg(amount) FROM orders)")).toMatch(/^complex joins/);
    // a sublink anywhere, here in LIMIT, would be evaluated once per shard group
    expect(problem("SELECT * FROM orders LIMIT (SELECT count(*) FROM customers)")).toMatch(/^complex joins/);
  });

  it("refuses what a subquery would compute per shard group", () => {
    expect(problem("SELECT * FROM (SELECT * FROM orders LIMIT 5) s")).toBe("cannot push down this subquery");
    expect(
      colocation("SELECT * FROM (SELECT status, count(*) FROM orders GROUP BY status) s").colocation.problem?.detail,
    ).toBe("aggregates in a subquery must be grouped by the distribution column");
    expect(problem("SELECT * FROM (SELECT tenant_id, count(*) FROM orders GROUP BY tenant_id) s")).toBeUndefined();
    expect(colocation("SELECT * FROM (SELECT DISTINCT status FROM orders) s").colocation.problem?.detail).toBe(
      "DISTINCT in a subquery must include the distribution column",
    );
  });

  it("refuses a reference table on the preserved side of an outer join with a distributed table", () => {
    expect(problem("SELECT * FROM countries k LEFT JOIN customers c ON c.country = k.code")).toBe(
      "cannot pushdown the subquery",
    );
    expect(problem("SELECT * FROM customers c LEFT JOIN countries k ON c.country = k.code")).toBeUndefined();
  });

  it("refuses data-modifying CTEs", () => {
    expect(
      colocation("WITH d AS (DELETE FROM audit RETURNING *) SELECT * FROM customers").colocation.problem?.detail,
    ).toBe("data-modifying CTEs are not supported in multi-shard queries yet");
    // on a distributed table, its rows are not tied to the query's: the more basic problem wins
    expect(problem("WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM customers")).toMatch(/^complex joins/);
  });
});

describe("grouping keys", () => {
  it("knows the distribution column of a table whose rows the top level keeps", () => {
    const { statement, colocation: result } = colocation(
      "SELECT c.tenant_id, o.tenant_id FROM customers c LEFT JOIN orders o ON o.tenant_id = c.tenant_id",
    );
    const [kept, nullable] = (statement.SelectStmt.targetList as AnyNode[]).map((target) => target.ResTarget.val);
    expect(result.isKeyColumn(kept)).toBe(true);
    // orders' rows may be missing (NULL): its column does not keep groups within a shard group
    expect(result.isKeyColumn(nullable)).toBe(false);
  });
});
