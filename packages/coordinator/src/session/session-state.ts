import type { AnyNode } from "../parser/ast.js";

/** DECLARE … WITH HOLD (PostgreSQL's CURSOR_OPT_HOLD): the cursor outlives its transaction. */
const CURSOR_OPT_HOLD = 0x0020;

/**
 * Functions whose effect outlives the transaction: session-level advisory locks, settings changed
 * through set_config (its third argument may be a parameter: any call counts), dblink connections.
 */
const SESSION_FUNCTIONS = /\b(pg_(try_)?advisory_lock(_shared)?|set_config|dblink_connect(_u)?)\s*\(/i;

/** A schema-qualified temporary object (`pg_temp.t`). */
const TEMPORARY_SCHEMA = /\bpg_temp\b/i;

/**
 * Whether a statement leaves something in the session of the coordinator's PostgreSQL that a
 * later statement may rely on, beyond its transaction: a setting (SET, RESET, set_config), a
 * prepared statement, a temporary object, LISTEN, a cursor WITH HOLD, a loaded library, a
 * session-level advisory lock. Such a session keeps its connection for good, not sharing it
 * with other sessions between transactions (protocol/backend-pool.ts). Transaction-scoped
 * things (SET LOCAL, cursors without HOLD, pg_advisory_xact_lock) need nothing: a connection
 * is shared only between transactions.
 */
export function keepsSessionState(statement: AnyNode, sql: string): boolean {
  // (statements come from the statement cache: the same text, the same node, checked once)
  const known = checked.get(statement);
  if (known !== undefined) return known;
  const keeps = check(statement, sql);
  checked.set(statement, keeps);
  return keeps;
}

const checked = new WeakMap<AnyNode, boolean>();

function check(statement: AnyNode, sql: string): boolean {
  const set = statement.VariableSetStmt as { is_local?: boolean; name?: string } | undefined;
  // SET TRANSACTION … is the transaction's own
  if (set) return !set.is_local && set.name !== "TRANSACTION";
  if (
    statement.PrepareStmt ||
    statement.ListenStmt ||
    // (a DO block may do any of these in its body)
    statement.DoStmt ||
    statement.LoadStmt ||
    (statement.DeclareCursorStmt && ((statement.DeclareCursorStmt as AnyNode).options as number) & CURSOR_OPT_HOLD)
  )
    return true;
  if (createsTemporary(statement)) return true;
  return SESSION_FUNCTIONS.test(sql) || TEMPORARY_SCHEMA.test(sql);
}

/** CREATE TEMP TABLE / VIEW / SEQUENCE, CREATE TEMP TABLE … AS, SELECT … INTO TEMP. */
function createsTemporary(statement: AnyNode): boolean {
  const create = statement.CreateStmt as AnyNode | undefined;
  const as = statement.CreateTableAsStmt as AnyNode | undefined;
  const view = statement.ViewStmt as AnyNode | undefined;
  const sequence = statement.CreateSeqStmt as AnyNode | undefined;
  const select = statement.SelectStmt as AnyNode | undefined;
  const relation =
    (create?.relation as AnyNode | undefined) ??
    ((as?.into as AnyNode | undefined)?.rel as AnyNode | undefined) ??
    (view?.view as AnyNode | undefined) ??
    (sequence?.sequence as AnyNode | undefined) ??
    ((select?.intoClause as AnyNode | undefined)?.rel as AnyNode | undefined);
  return relation?.relpersistence === "t";
}
