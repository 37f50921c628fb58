import { beforeAll, describe, expect, it } from "vitest";
import type { AnyNode } from "../parser/ast.js";
import { loadParser, StatementCache } from "../parser/statement-cache.js";
import { keepsSessionState } from "./session-state.js";

beforeAll(async () => {
  await loadParser();
});

const cache = new StatementCache();

function keeps(sql: string): boolean {
  const parsed = cache.parse(sql);
  if (!parsed.ok) throw new Error(parsed.message);
  const [first] = (parsed.tree.stmts ?? []) as AnyNode[];
  return keepsSessionState(first?.stmt as AnyNode, sql);
}

describe("keepsSessionState", () => {
  it("sees what outlives the transaction in the coordinator's PostgreSQL session", () => {
    for (const sql of [
      "SET search_path = app, public",
      "SET SESSION work_mem = '64MB'",
      "RESET ALL",
      "SET ROLE reporting",
      "SET SESSION AUTHORIZATION alice",
      "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
      "SELECT set_config('search_path', 'app', false)",
      "PREPARE q (int) AS SELECT $1",
      "LISTEN jobs",
      "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
      "LOAD 'auto_explain'",
      "CREATE TEMP TABLE scratch (v int)",
      "CREATE TEMPORARY VIEW v AS SELECT 1",
      "CREATE TEMP SEQUENCE s",
      "CREATE TEMP TABLE t2 AS SELECT 1 AS v",
      "SELECT 1 AS v INTO TEMP t3",
      "INSERT INTO pg_temp.scratch VALUES (1)",
      "SELECT pg_advisory_lock(42)",
      "SELECT pg_try_advisory_lock_shared(1, 2)",
      "DO $$ BEGIN PERFORM 1; END $$",
    ])
      expect(keeps(sql), sql).toBe(true);
  });

  it("leaves alone what ends with its transaction, and ordinary statements", () => {
    for (const sql of [
      "SELECT 1",
      "SET LOCAL work_mem = '64MB'",
      "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
      "BEGIN",
      "COMMIT",
      "DECLARE c CURSOR FOR SELECT 1",
      "SELECT pg_advisory_xact_lock(42)",
      "CREATE TABLE t (temp int)",
      "SELECT temp FROM readings",
      "UPDATE accounts SET balance = balance + 1 WHERE id = 1",
      "CREATE UNLOGGED TABLE u (v int)",
      "DEALLOCATE q",
      "SHOW work_mem",
    ])
      expect(keeps(sql), sql).toBe(false);
  });
});
