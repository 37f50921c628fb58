import { HerdError, SqlState } from "@herd/shared";
import { replaceRangeVar } from "../executor/sql-nodes.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import type { DistributedView } from "../metadata/catalog-types.js";
import { type AnyNode, isRangeVar, nodeAtPath, parseStatements, walk, walkWithPath } from "../parser/ast.js";
import { PlannerErrors } from "./planner-errors.js";

/** Views inside views inside views…: past this, a definition is taken to loop. */
const MAX_DEPTH = 32;

/**
 * Views that read distributed tables (the catalog's `views`) are planned as what they are: the
 * view's name in FROM becomes its definition as a subquery under the view's name and column
 * names, as PostgreSQL's rewriter does, so that herd plans the tables it reads. Left as a view,
 * the coordinator's PostgreSQL would read the empty shells under it.
 *
 * Worked example (`recent` is `SELECT id, total FROM public.orders WHERE total > 10`):
 *   SELECT count(*) FROM recent r WHERE r.id < 5
 *   → SELECT count(*) FROM (SELECT id, total FROM public.orders WHERE total > 10) r (id, total) WHERE r.id < 5
 *
 * Returns the statement itself when it reads no such view, a new tree when it does, or the
 * error when a view is what the statement writes (INSERT/UPDATE/DELETE through a view).
 */
export function inlineViews(statement: AnyNode, catalog: CatalogSnapshot): AnyNode | HerdError {
  let tree = statement;
  for (let depth = 0; depth < MAX_DEPTH; depth += 1) {
    const found = findViews(tree, catalog);
    if (found.length === 0) return tree;
    if (tree === statement) tree = structuredClone(statement);
    for (const { path, view, key } of found.reverse()) {
      if (key !== "RangeVar")
        return PlannerErrors.notSupported(`writing through the view ${view.name}, which reads distributed tables`);
      replaceRangeVar(nodeAtPath(tree, path.slice(0, -1)), definitionOf(view), view.name, view.columns);
    }
  }
  return new HerdError("views over distributed tables nest too deeply", {
    sqlState: SqlState.featureNotSupported,
    detail: `more than ${MAX_DEPTH} levels of views`,
  });
}

/** The views a tree names (not CTEs of the same name), with where: inner ones after outer ones. */
function findViews(
  tree: AnyNode,
  catalog: CatalogSnapshot,
): { path: (string | number)[]; view: DistributedView; key: string }[] {
  const cteNames = new Set<string>();
  walk(tree, (node, key) => {
    if (key === "CommonTableExpr") cteNames.add(node.ctename as string);
    return undefined;
  });
  const found: { path: (string | number)[]; view: DistributedView; key: string }[] = [];
  walkWithPath(tree, (node, key, path) => {
    if (!isRangeVar(node, key)) return undefined;
    const schema = node.schemaname as string | undefined;
    if (schema === undefined && cteNames.has(node.relname as string)) return false;
    const view = catalog.resolveView(schema, node.relname as string);
    if (view) found.push({ path: [...path], view, key });
    return false;
  });
  return found;
}

function definitionOf(view: DistributedView): AnyNode {
  const [statement] = parseStatements(view.definition);
  return statement as AnyNode;
}
