import { beforeAll, describe, expect, it } from "vitest";
import { type AnyNode, parseStatements } from "../../parser/ast.js";
import { loadParser } from "../../parser/statement-cache.js";
import { fixtureCatalog } from "../../testing/catalog-fixture.js";
import { analyzeStatement } from "./analyze.js";

// customers and orders: distributed by tenant_id, colocated; countries: a reference table.
const catalog = fixtureCatalog();
const analyze = (sql: string) => {
  const statement = parseStatements(sql)[0] as AnyNode;
  return { statement, semantics: analyzeStatement(statement, catalog) };
};
const relationNames = (sql: string) =>
  analyze(sql).semantics.relations.map((ref) => `${ref.rangeVar.relname}${ref.table ? "" : " (not distributed)"}`);
const column = (...fields: string[]) => ({ ColumnRef: { fields: fields.map((sval) => ({ String: { sval } })) } });

beforeAll(async () => {
  await loadParser();
});

describe("the relations a statement names", () => {
  it("leaves out references to CTEs, and resolves the rest against the catalog", () => {
    expect(
      relationNames("WITH recent AS (SELECT * FROM orders) SELECT * FROM recent JOIN customers c USING (tenant_id)"),
    ).toEqual(["customers", "orders"]); // tree order: the WITH clause comes last in libpg-query's JSON
    expect(relationNames("SELECT * FROM pg_class, countries")).toEqual(["pg_class (not distributed)", "countries"]);
  });

  it("lets a CTE hide a table only inside the query that defines it", () => {
    // the inner `customers` is the CTE; the outer one is the distributed table
    expect(
      relationNames(
        "SELECT * FROM (WITH customers AS (SELECT 1 AS tenant_id) SELECT * FROM customers) s, customers c WHERE c.tenant_id = s.tenant_id",
      ),
    ).toEqual(["customers"]);
    // a later CTE sees an earlier one
    expect(relationNames("WITH a AS (SELECT * FROM orders), b AS (SELECT * FROM a) SELECT * FROM b")).toEqual([
      "orders",
    ]);
  });

  it("records where each relation is, so a copy of the tree can be renamed", () => {
    const { semantics } = analyze(
      "UPDATE orders SET status = 'x' FROM customers c WHERE c.tenant_id = orders.tenant_id",
    );
    expect(semantics.relations.map((ref) => ref.path.join("/"))).toEqual([
      "UpdateStmt/relation",
      "UpdateStmt/fromClause/0/RangeVar",
    ]);
  });
});

describe("query levels and what a column reference means", () => {
  it("resolves a correlated reference of a sublink to the outer level's entry", () => {
    const { statement, semantics } = analyze(
      "SELECT * FROM orders o WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = o.customer_id)",
    );
    const top = semantics.top;
    const sublink = statement.SelectStmt.whereClause.SubLink.subselect.SelectStmt;
    const inner = semantics.levelOf(sublink);
    expect(inner?.role).toBe("sublink");
    expect(inner?.parent).toBe(top);
    const outerKey = semantics.resolve(column("o", "customer_id"), inner ?? (top as never), true);
    expect(outerKey).toBe(top?.entries[0]?.columns.get("customer_id"));
    // without looking outward, the inner level does not know `o`
    expect(semantics.resolve(column("o", "customer_id"), inner ?? (top as never), false)).toBeUndefined();
  });

  it("reads a subquery's and a CTE's columns through their outputs", () => {
    const { semantics } = analyze(
      "WITH r AS (SELECT tenant_id AS t FROM orders) SELECT * FROM r, (SELECT tenant_id FROM customers) s",
    );
    const [cte, sub] = semantics.top?.entries ?? [];
    const orders = semantics.levels[0]?.entries[0];
    expect(cte?.kind).toBe("cte");
    expect(cte?.columns.get("t")).toBe(orders?.columns.get("tenant_id"));
    expect(sub?.kind).toBe("subquery");
    expect(sub?.distributed).toBe(true);
  });

  it("makes every sublink a level, wherever it is (here in LIMIT)", () => {
    const { semantics } = analyze("SELECT * FROM orders LIMIT (SELECT count(*) FROM customers)");
    expect(semantics.levels.map((level) => level.role)).toEqual(["sublink", "statement"]);
    expect(semantics.distributionKeys).toHaveLength(2);
  });

  it("marks the nullable side of an outer join, and a table of unknown columns", () => {
    const { semantics } = analyze(
      "SELECT * FROM customers c LEFT JOIN orders o ON o.tenant_id = c.tenant_id, pg_class",
    );
    expect(semantics.top?.entries.map((entry) => [entry.name, entry.nullable, entry.knownColumns])).toEqual([
      ["c", false, true],
      ["o", true, true],
      ["pg_class", false, false],
    ]);
    expect(semantics.top?.conditions.map((condition) => condition.source)).toEqual(["outer-join"]);
  });

  it("gives a statement that is no query its relations and no levels", () => {
    const { semantics } = analyze("TRUNCATE orders, countries");
    expect(semantics.top).toBeUndefined();
    expect(semantics.relations.map((ref) => ref.table?.name)).toEqual(["orders", "countries"]);
  });
});
