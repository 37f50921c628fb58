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
  "citus_rebalance_start",
  "citus_rebalance_wait",
  "citus_drain_node",
]);

/**
 * `SELECT create_distributed_table('events', 'tenant_id')` and the like: a SELECT of exactly
 * one call of one of herd's functions, with constants or parameters as arguments, and nothing
 * else (no FROM). Returns undefined for any other statement.
 */
export function planFunctionCall(select: AnyNode): HerdFunction | Refuse | undefined {
  const targets = (select.targetList ?? []) as unknown[];
  if (targets.length !== 1 || select.fromClause || select.whereClause) return undefined;
  const target = as(targets[0], "ResTarget") as AnyNode;
  const call = as(target.val, "FuncCall");
  if (!call) return undefined;
  const qualified = names(call.funcname);
  const name = qualified.at(-1) as FunctionCall["name"];
  if (!HERD_FUNCTIONS.has(name) || (qualified.length > 1 && qualified[0] !== "pg_catalog")) return undefined;
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
  return new HerdFunction({ name, column: (target.name as string | undefined) ?? name, positional, named });
}
