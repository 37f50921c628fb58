import { describe, expect, it } from "vitest";
import { INT4_OID, INT8_OID, NUMERIC_OID, normalizeLiterals, UNKNOWN_OID } from "./literal-normalizer.js";
import { NormalizedStatements } from "./normalized-statements.js";
import { loadParser, StatementCache } from "./statement-cache.js";

describe("normalizeLiterals", () => {
  it.each([
    [
      "SELECT abalance FROM pgbench_accounts WHERE aid = 4711;",
      "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
      ["4711"],
      [INT4_OID],
    ],
    ["SELECT * FROM t WHERE id = 3000000000", "SELECT * FROM t WHERE id = $1", ["3000000000"], [INT8_OID]],
    [
      "SELECT * FROM t WHERE id = 99999999999999999999",
      "SELECT * FROM t WHERE id = $1",
      ["99999999999999999999"],
      [NUMERIC_OID],
    ],
    [
      "SELECT * FROM t WHERE x > 1.5e3 AND y < .5",
      "SELECT * FROM t WHERE x > $1 AND y < $2",
      ["1.5e3", ".5"],
      [NUMERIC_OID, NUMERIC_OID],
    ],
    [
      "SELECT * FROM t WHERE name = 'it''s' OR name LIKE 'a%'",
      "SELECT * FROM t WHERE name = $1 OR name LIKE $2",
      ["it's", "a%"],
      [UNKNOWN_OID, UNKNOWN_OID],
    ],
    [
      "SELECT * FROM t WHERE id IN (1, 2, 3) LIMIT 10 OFFSET 5",
      "SELECT * FROM t WHERE id IN ($1, $2, $3) LIMIT $4 OFFSET $5",
      ["1", "2", "3", "10", "5"],
      [INT4_OID, INT4_OID, INT4_OID, INT4_OID, INT4_OID],
    ],
    [
      "UPDATE t SET v = v + 1, note = 'x' WHERE id = -7",
      "UPDATE t SET v = v + $1, note = $2 WHERE id = -$3",
      ["1", "x", "7"],
      [INT4_OID, UNKNOWN_OID, INT4_OID],
    ],
    [
      "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y')",
      "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)",
      ["1", "x", "2", "y"],
      [INT4_OID, UNKNOWN_OID, INT4_OID, UNKNOWN_OID],
    ],
    ["SELECT * FROM t WHERE x=-5", "SELECT * FROM t WHERE x=-$1", ["5"], [INT4_OID]],
    // a subquery in the select list is a query of its own: its WHERE takes parameters
    [
      "SELECT (SELECT max(v) FROM u WHERE u.k = 2) FROM t",
      "SELECT (SELECT max(v) FROM u WHERE u.k = $1) FROM t",
      ["2"],
      [INT4_OID],
    ],
  ])("%s", (sql, text, values, types) => {
    expect(normalizeLiterals(sql)).toEqual({ text, values, types });
  });

  it.each([
    // the select list, RETURNING, ORDER BY / GROUP BY / DISTINCT ON lists stay as written
    ["SELECT 1, 'a', to_char(x, 'FM9') FROM t ORDER BY 1, 2", undefined],
    ["SELECT x % 5 AS b, count(*) FROM t GROUP BY x % 5 ORDER BY x % 5", undefined],
    ["SELECT DISTINCT ON (x % 3) x FROM t ORDER BY x % 3", undefined],
    ["INSERT INTO t SELECT 1, 'a' RETURNING id + 1", undefined],
    // typed literals, escape strings, bit strings, dollar quotes, parameters, several statements
    ["SELECT * FROM t WHERE d = date '2026-01-01' + interval '1 day'", undefined],
    ["SELECT * FROM t WHERE s = E'a\\nb'", undefined],
    ["SELECT * FROM t WHERE b = B'101' AND x = X'1F'", undefined],
    ["SELECT * FROM t WHERE s = $$x$$", undefined],
    ["SELECT * FROM t WHERE id = $1", undefined],
    ["SELECT * FROM t WHERE id = 1; SELECT 2", undefined],
    ["SELECT * FROM t WHERE s = 'a\\b'", undefined],
    ["SELECT * FROM t WHERE id = 0x1F OR id = 1_000", undefined],
    ["SELECT * FROM t WHERE j->>'k' = 'v' /* 'c' */ -- 'd'", "SELECT * FROM t WHERE j->>'k' = $1 /* 'c' */ -- 'd'"],
  ])("%s", (sql, text) => {
    expect(normalizeLiterals(sql)?.text).toEqual(text);
  });
  it("leaves a long statement as written (a bulk INSERT: seldom repeated, and PostgreSQL takes at most 65 535 parameters)", () => {
    const values = Array.from({ length: 3000 }, (_, i) => `(${i}, 'v')`).join(", ");
    expect(normalizeLiterals(`INSERT INTO t VALUES ${values}`)).toBeUndefined();
    expect(normalizeLiterals("INSERT INTO t VALUES (1, 'v')")?.values).toEqual(["1", "v"]);
  });
});

describe("NormalizedStatements", () => {
  it("shares one parse between statements that differ only in their literals, and refuses what PostgreSQL would read otherwise", async () => {
    await loadParser();
    const statements = new StatementCache();
    const normalized = new NormalizedStatements(statements);
    const first = normalized.of("SELECT abalance FROM accounts WHERE aid = 1");
    const second = normalized.of("SELECT abalance FROM accounts WHERE aid = 2");
    expect(first?.statement).toBe(second?.statement);
    expect(second?.parameters.map(String)).toEqual(["2"]);
    expect(normalized.hits).toBe(1);
    // a type modifier must be a constant: the statement runs as written
    expect(normalized.of("SELECT * FROM t WHERE x::numeric(10, 2) = 5")).toBeUndefined();
    // not a query
    expect(normalized.of("CREATE TABLE t (a int DEFAULT 5)")).toBeUndefined();
    expect(normalized.of("SELECT * FROM t WHERE (")).toBeUndefined();
  });
});
