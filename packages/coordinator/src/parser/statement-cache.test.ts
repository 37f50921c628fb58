import { beforeAll, describe, expect, it } from "vitest";
import { loadParser, StatementCache } from "./statement-cache.js";

beforeAll(async () => {
  await loadParser();
});

describe("StatementCache", () => {
  it("parses once per text and serves repeats from the cache", () => {
    const cache = new StatementCache();
    const first = cache.parse("SELECT abalance FROM pgbench_accounts WHERE aid = $1");
    const again = cache.parse("SELECT abalance FROM pgbench_accounts WHERE aid = $1");
    expect(first.ok && first.tree.stmts?.[0]?.stmt).toHaveProperty("SelectStmt");
    expect(again).toBe(first);
    expect([cache.hits, cache.misses]).toEqual([1, 1]);
  });

  it("keeps a syntax error with PostgreSQL's message and 1-based position", () => {
    const parsed = new StatementCache().parse("SELECT 1 FROMM t");
    expect(parsed).toEqual({ ok: false, message: 'syntax error at or near "t"', position: 16 });
  });

  it("evicts the least recently used text when full, and skips very long texts", () => {
    const cache = new StatementCache(2, 40);
    cache.parse("SELECT 1");
    cache.parse("SELECT 2");
    cache.parse("SELECT 1"); // now the most recent
    cache.parse("SELECT 3"); // evicts SELECT 2
    cache.parse("SELECT 2");
    expect(cache.misses).toBe(4);
    cache.parse(`SELECT ${"1 + ".repeat(20)}1`);
    expect(cache.size).toBe(2);
  });
});
