import type { Primitive } from "../executor/primitives/primitive.js";
import { type SubPlan, SubPlans } from "../executor/primitives/subplans.js";
import { type AnyNode, deparse, nodeAtPath, walkWithPath } from "../parser/ast.js";
import { catalogFunctionName, constantArguments, planFunctionCall, rangeFunctionCall } from "./function-call.js";

/**
 * herd's functions that only read, and so may be used inside a larger query: their answer does
 * not change with the row they are evaluated for (their arguments are constants or parameters).
 */
const READING_FUNCTIONS = new Set([
  "citus_relation_size",
  "citus_table_size",
  "citus_total_relation_size",
  "get_shard_id_for_distribution_column",
  "get_rebalance_table_shards_plan",
  "run_command_on_workers",
  "run_command_on_shards",
]);

/**
 * A query that uses herd's reading functions as parts of itself, as Citus's users write them:
 * `SELECT pg_size_pretty(citus_total_relation_size('events'))`, `SELECT * FROM
 * run_command_on_shards('events', …) WHERE NOT success ORDER BY shardid LIMIT 3`. Each call
 * (constant or parameter arguments) runs first as the statement herd answers on its own
 * (`SELECT f(…)`, `SELECT * FROM f(…)`), and its rows replace it — a call in an expression as a
 * scalar subquery of its value, a call in FROM as a subquery under the function's name or the
 * alias given — so the rest of the query runs on the coordinator's PostgreSQL over exact rows.
 * Undefined when the statement calls none (or calls one with arguments taken from the rows, which
 * the function's stand-in on the coordinator refuses with its own words).
 */
export function planHerdFunctionSubplans(
  statement: AnyNode,
  plan: (statement: AnyNode) => Primitive,
): Primitive | undefined {
  const calls: { path: (string | number)[]; inFrom: boolean }[] = [];
  walkWithPath(statement, (node, key, path) => {
    if (key === "RangeFunction") {
      const call = rangeFunctionCall(node);
      if (!node.ordinality && !node.lateral && call && reading(call)) {
        calls.push({ path: path.slice(0, -1), inFrom: true });
        return false;
      }
    }
    if (key === "FuncCall" && reading(node)) {
      calls.push({ path: path.slice(0, -1), inFrom: false });
      return false;
    }
    return undefined;
  });
  if (calls.length === 0) return undefined;
  const tree = structuredClone(statement);
  const subPlans: SubPlan[] = [];
  for (const { path, inFrom } of calls) {
    const holder = nodeAtPath(tree, path);
    const range = holder.RangeFunction as AnyNode | undefined;
    const call = (range ? rangeFunctionCall(range) : holder.FuncCall) as AnyNode;
    const name = catalogFunctionName(call) as string;
    const select = inFrom
      ? {
          targetList: [{ ResTarget: { val: { ColumnRef: { fields: [{ A_Star: {} }] } } } }],
          fromClause: [{ RangeFunction: { functions: range?.functions } }],
        }
      : { targetList: [{ ResTarget: { val: { FuncCall: call } } }] };
    const subStatement = { SelectStmt: { ...select, limitOption: "LIMIT_OPTION_DEFAULT", op: "SETOP_NONE" } };
    const callPlan = planFunctionCall(subStatement.SelectStmt);
    // a set function called for a value, and the like: the call's own refusal
    if (!callPlan || callPlan.kind === "refuse") return callPlan;
    if (inFrom) {
      delete holder.RangeFunction;
      holder.RangeSubselect = { subquery: {}, alias: range?.alias ?? { aliasname: name } };
    } else {
      delete holder.FuncCall;
      holder.SubLink = { subLinkType: "EXPR_SUBLINK", subselect: {} };
    }
    subPlans.push({
      path: [...path, inFrom ? "RangeSubselect" : "SubLink"],
      field: inFrom ? "subquery" : "subselect",
      statement: subStatement,
      sql: deparse(subStatement),
      plan: callPlan,
    });
  }
  return new SubPlans(tree, subPlans, plan);
}

/** A call of one of herd's reading functions whose arguments are constants or parameters. */
function reading(call: AnyNode): boolean {
  return READING_FUNCTIONS.has(catalogFunctionName(call) as string) && constantArguments(call);
}
