import { ClusterActivity } from "../executor/primitives/cluster-activity.js";
import type { Primitive } from "../executor/primitives/primitive.js";
import { SubPlans } from "../executor/primitives/subplans.js";
import type { AnyNode } from "../parser/ast.js";
import { standInSubPlans } from "./stand-in-subplans.js";

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
  const subPlans = standInSubPlans(
    statement,
    (rangeVar) =>
      rangeVar.relname === VIEW && (rangeVar.schemaname === undefined || rangeVar.schemaname === "pg_catalog"),
    VIEW,
    VIEW_SQL,
    () => new ClusterActivity(),
  );
  return subPlans.length === 0 ? undefined : new SubPlans(statement, subPlans, plan);
}
