import { beforeAll, describe, expect, it } from "vitest";
import { type AnyNode, deparse, parseStatements } from "./ast.js";
import { loadParser } from "./statement-cache.js";

beforeAll(async () => {
  await loadParser();
});

/** The tree without source positions (a deparsed text puts every node elsewhere). */
function shape(tree: unknown): unknown {
  return JSON.parse(
    JSON.stringify(tree, (key, value) =>
      key === "location" || key.endsWith("_start") || key.endsWith("_end") ? undefined : value,
    ),
  );
}

describe("deparse", () => {
  // Each text deparsed must parse again to the same tree: herd sends deparsed statements to the
  // workers and to its own PostgreSQL, and pgsql-deparser printed a subscript of these bare
  // (`ARRAY['a','b'][i]`, a syntax error), which lost every row of an INSERT … SELECT.
  it.each([
    "SELECT (ARRAY['eu','us','ap'])[1 + i % 3] FROM generate_series(1, 3) i",
    "SELECT (ARRAY[1, 2])[1:2], (ARRAY[ARRAY[1]])[1][1]",
    "SELECT (CASE WHEN a THEN ARRAY[1] END)[1] FROM t",
    "SELECT (COALESCE(a, b))[1], (GREATEST(a, b))[2], (LEAST(a, b))[1:2] FROM t",
    "SELECT (NULLIF(a, b))[1], (a || b)[1], (x::int[])[1], ($1::text[])[2] FROM t",
    "SELECT (t.arr)[1], t.arr[2], (f(x)).a, (ROW(1, 2)).f1, (x).* FROM t",
    "SELECT (SELECT ARRAY[1])[1], (ARRAY(SELECT 1))[1]",
    "SELECT 'herd_parenthesized__(' AS \"herd_parenthesized__(\", (ARRAY['herd_parenthesized__(x'])[1]",
    "SELECT * FROM t ORDER BY a FETCH FIRST 3 ROWS WITH TIES",
    "INSERT INTO t SELECT i, (ARRAY['a','b'])[1 + i % 2] FROM generate_series(1, 10) i",
    "UPDATE t SET tags[1] = (ARRAY['x'])[1] WHERE (COALESCE(tags, '{}'))[1] IS NULL",
  ])("%s", (sql) => {
    const [tree] = parseStatements(sql) as [AnyNode];
    const text = deparse(tree);
    const [again] = parseStatements(text) as [AnyNode];
    expect(shape(again)).toEqual(shape(tree));
    expect(deparse(again)).toBe(text);
  });
});
