import { ClusterActivity } from "../executor/primitives/cluster-activity.js";
import type { Primitive } from "../executor/primitives/primitive.js";
import { type SubPlan, SubPlans } from "../executor/primitives/subplans.js";
import { type AnyNode, parseStatements, walkWithPath } from "../parser/ast.js";

const VIEW = "citus_stat_activity";
const VIEW_SQL = `SELECT * FROM pg_catalog.${VIEW}`;

/**
 * A query that reads citus_stat_activity (pg_catalog's, named with or without the schema): the
 * view's rows from every server are gathered first (ClusterActivity) and stand in for it under
 * the name the query used, so filters, joins and ORDER BY run on the coordinator's PostgreSQL
 * over the whole cluster's activity. Undefined when the statement does not read it.
 */
export function planClusterActivity(
  statement: AnyNode,
  plan: (statement: AnyNode) => Primitive,
): Primitive | undefined {
  const subPlans: SubPlan[] = [];
  walkWithPath(statement, (node, key, path) => {
    if (key !== "RangeVar" || node.relname !== VIEW) return undefined;
    if (node.schemaname !== undefined && node.schemaname !== "pg_catalog") return undefined;
    subPlans.push({
      path: path.slice(0, -1),
      field: "RangeVar",
      table: VIEW,
      statement: parseStatements(VIEW_SQL)[0] as AnyNode,
      sql: VIEW_SQL,
      plan: new ClusterActivity(),
    });
    return false;
  });
  return subPlans.length === 0 ? undefined : new SubPlans(statement, subPlans, plan);
}
