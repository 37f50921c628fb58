import { HerdError, SqlState } from "@herd/shared";
import type { ValueSource } from "../executor/distribution-value.js";
import { HerdFunction } from "../executor/primitives/herd-function.js";
import { Refuse } from "../executor/primitives/refuse.js";
import type { FunctionCall } from "../operations/herd-functions.js";
import { type AnyNode, as, names } from "../parser/ast.js";
import { valueSource } from "./value-source.js";

const HERD_FUNCTIONS = new Set<FunctionCall["name"]>([
  "create_distributed_table",
  "create_reference_table",
  "get_shard_id_for_distribution_column",
  "recover_prepared_transactions",
  "citus_copy_shard_placement",
  "citus_move_shard_placement",
  "replicate_reference_tables",
  "citus_rebalance_start",
  "citus_rebalance_wait",
  "citus_drain_node",
  "get_rebalance_table_shards_plan",
  "citus_relation_size",
  "citus_table_size",
  "citus_total_relation_size",
  "truncate_local_data_after_distributing_table",
  "run_command_on_workers",
  "run_command_on_shards",
  "undistribute_table",
  "alter_distributed_table",
]);

/** herd's functions that return a set of rows, called as `SELECT * FROM f(…)`. */
const SET_FUNCTIONS = new Set<FunctionCall["name"]>([
  "get_rebalance_table_shards_plan",
  "run_command_on_workers",
  "run_command_on_shards",
]);
/** Set-returning functions also answered as `SELECT f(…)`: one record per row, as PostgreSQL shows them. */
const RECORD_FUNCTIONS = new Set<FunctionCall["name"]>(["run_command_on_workers", "run_command_on_shards"]);

/**
 * `SELECT create_distributed_table('events', 'tenant_id')` and the like: a SELECT of exactly
 * one call of one of herd's functions, with constants or parameters as arguments, and nothing
 * else (no FROM); or `SELECT * FROM get_rebalance_table_shards_plan(…)` for those that return
 * rows. Returns undefined for any other statement.
 */
export function planFunctionCall(select: AnyNode): HerdFunction | Refuse | undefined {
  const targets = (select.targetList ?? []) as unknown[];
  const target = as(targets[0], "ResTarget") as AnyNode;
  const from = (select.fromClause ?? []) as unknown[];
  let call: AnyNode | undefined;
  let sets = false;
  if (!bare(select)) return undefined;
  if (from.length === 0) {
    if (targets.length !== 1 || select.whereClause) return undefined;
    call = as(target?.val, "FuncCall");
  } else if (from.length === 1) {
    const range = as(from[0], "RangeFunction");
    if (!range) return undefined;
    call = rangeFunctionCall(range);
    const name = call ? names(call.funcname).at(-1) : undefined;
    if (!SET_FUNCTIONS.has(name as FunctionCall["name"])) return undefined;
    const plain =
      targets.length === 1 && isStar(target?.val) && !select.whereClause && !range.alias && !range.ordinality;
    if (!plain) {
      return new Refuse(
        new HerdError(`herd answers ${name}() as SELECT * FROM ${name}(…), with nothing else`, {
          sqlState: SqlState.featureNotSupported,
          hint:
            name === "get_rebalance_table_shards_plan"
              ? "Filter or pick columns on the client, or read the moves from POST /v1/rebalance with dryRun."
              : "Filter or pick columns on the client.",
        }),
      );
    }
    sets = true;
  }
  if (!call) return undefined;
  const name = catalogFunctionName(call) as FunctionCall["name"];
  if (!HERD_FUNCTIONS.has(name)) return undefined;
  // Citus's habit: SELECT run_command_on_workers(…), one record per worker
  const asRecords = !sets && RECORD_FUNCTIONS.has(name);
  if (SET_FUNCTIONS.has(name) !== sets && !asRecords) {
    // the other form of a call would read the coordinator's stand-in of the function
    return new Refuse(
      new HerdError(sets ? `call ${name}() as SELECT ${name}(…)` : `call ${name}() as SELECT * FROM ${name}(…)`, {
        sqlState: SqlState.featureNotSupported,
      }),
    );
  }
  const positional: ValueSource[] = [];
  const named = new Map<string, ValueSource>();
  for (const arg of (call.args ?? []) as unknown[]) {
    const namedArg = as(arg, "NamedArgExpr");
    const value = valueSource(namedArg ? namedArg.arg : arg);
    if (!value) {
      return new Refuse(
        new HerdError(`the arguments of ${name}() must be constants or parameters`, {
          sqlState: SqlState.featureNotSupported,
        }),
      );
    }
    if (namedArg) named.set(namedArg.name as string, value);
    else positional.push(value);
  }
  return new HerdFunction({
    name,
    column: (target.name as string | undefined) ?? name,
    positional,
    named,
    asRecords,
  });
}

/** The function's name when it is called unqualified or as pg_catalog's (herd's functions live there). */
export function catalogFunctionName(call: AnyNode): string | undefined {
  const qualified = names(call.funcname);
  return qualified.length > 1 && qualified[0] !== "pg_catalog" ? undefined : qualified.at(-1);
}

/** The call of a FROM function (`FROM f(…)`), when it names exactly one. */
export function rangeFunctionCall(range: AnyNode): AnyNode | undefined {
  const functions = (range.functions ?? []) as unknown[];
  if (functions.length !== 1) return undefined;
  return as((as(functions[0], "List")?.items as unknown[] | undefined)?.[0], "FuncCall");
}

/** Every argument of the call is a constant or a parameter (named or not). */
export function constantArguments(call: AnyNode): boolean {
  return ((call.args ?? []) as unknown[]).every(
    (arg) => valueSource(as(arg, "NamedArgExpr")?.arg ?? arg) !== undefined,
  );
}

/**
 * Nothing but a target list and FROM: any ORDER BY, LIMIT, DISTINCT, GROUP BY, WITH, INTO or
 * locking clause makes it a query over the call (herd-function-subplans.ts).
 */
function bare(select: AnyNode): boolean {
  return (
    !select.sortClause &&
    !select.limitCount &&
    !select.limitOffset &&
    !select.distinctClause &&
    !select.groupClause &&
    !select.havingClause &&
    !select.windowClause &&
    !select.withClause &&
    !select.intoClause &&
    !select.lockingClause &&
    (!select.op || select.op === "SETOP_NONE")
  );
}

function isStar(value: unknown): boolean {
  const fields = (as(value, "ColumnRef")?.fields ?? []) as unknown[];
  return fields.length === 1 && as(fields[0], "A_Star") !== undefined;
}
