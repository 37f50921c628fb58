import type { Primitive } from "../executor/primitives/primitive.js";
import type { SubPlan } from "../executor/primitives/subplans.js";
import { type AnyNode, parseStatements, walkWithPath } from "../parser/ast.js";

/**
 * A subplan for each table name in `tree` that `matches` (a view herd answers itself, or a name
 * a rewrite put there): `plan`'s rows stand in for it in FROM under the name the statement used
 * (SubPlans, field "RangeVar"); `sql` is what EXPLAIN and the parameter types read.
 */
export function standInSubPlans(
  tree: AnyNode,
  matches: (rangeVar: AnyNode) => boolean,
  table: string,
  sql: string,
  plan: () => Primitive,
): SubPlan[] {
  const subPlans: SubPlan[] = [];
  walkWithPath(tree, (node, key, path) => {
    if (key !== "RangeVar" || !matches(node)) return undefined;
    subPlans.push({
      path: path.slice(0, -1),
      field: "RangeVar",
      table,
      statement: parseStatements(sql)[0] as AnyNode,
      sql,
      plan: plan(),
    });
    return false;
  });
  return subPlans;
}
