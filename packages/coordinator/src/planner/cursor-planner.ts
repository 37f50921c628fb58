import type { Primitive } from "../executor/primitives/primitive.js";
import { SubPlans } from "../executor/primitives/subplans.js";
import { type AnyNode, deparse } from "../parser/ast.js";

/**
 * `DECLARE c [SCROLL] CURSOR [WITH HOLD] FOR <query over distributed tables>`: the query runs
 * first as a statement of its own (any shape herd answers; its rows kept on the coordinator, up
 * to citus.max_intermediate_result_size, as Citus materialises a cursor's result), and the cursor
 * is declared on the session's PostgreSQL over those rows as a VALUES list. FETCH, MOVE and CLOSE
 * then need nothing from herd: PostgreSQL's own cursor answers them, SCROLL, WITH HOLD and
 * transaction rules included. The rows are the query's at DECLARE time.
 */
export function planDeclareCursor(
  declare: AnyNode,
  statement: AnyNode,
  plan: (query: AnyNode) => Primitive,
): Primitive {
  const query = declare.query as AnyNode;
  return new SubPlans(
    statement,
    [{ path: ["DeclareCursorStmt"], field: "query", statement: query, sql: deparse(query), plan: plan(query) }],
    plan,
  );
}
