import { replaceRangeVar } from "../executor/sql-nodes.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import type { DistributedTable } from "../metadata/catalog-types.js";
import { type AnyNode, nodeAtPath, parseStatements, walkWithPath } from "../parser/ast.js";
import { qualifiedName } from "../parser/identifiers.js";
import { multiShardProblem } from "./route-planner.js";
import { analyzeStatement, type Semantics } from "./semantics/analyze.js";
import { everyTablePinned } from "./shard-pruning.js";

/** A distributed table in the statement's own FROM that runs first, whole, as a subplan. */
export interface PulledTable {
  /** Where the `{RangeVar: …}` that names it sits. */
  readonly path: readonly (string | number)[];
  readonly table: DistributedTable;
  /** `SELECT * FROM <table>`: the subplan. */
  readonly query: AnyNode;
}

/**
 * When the statement's own level cannot run shard group by shard group — tables of different
 * colocation groups or not joined on their distribution columns, a window not partitioned by the
 * distribution column, UNION/INTERSECT/EXCEPT across shards — the distributed tables of that level
 * (not a written table) are read first, whole, and the level is computed from their rows on the
 * coordinator. (Keeping one side distributed and sending the other's rows to each of its shards
 * would repeat them in every shard's statement: slower than one computation here.) Returns
 * undefined when the statement runs as it is, or pulling cannot help.
 *
 * Worked example (orders and customer in different colocation groups):
 *   SELECT count(*) FROM orders JOIN customer ON c_custkey = o_custkey
 *   pulls both: SELECT * FROM public.orders and SELECT * FROM public.customer run first; then
 *   SELECT count(*) FROM (VALUES …) orders (…) JOIN (VALUES …) customer (…) ON c_custkey = o_custkey
 *   runs on the coordinator's PostgreSQL.
 */
export function tablesToPull(
  statement: AnyNode,
  catalog: CatalogSnapshot,
  semantics: Semantics,
): PulledTable[] | undefined {
  const top = semantics.top;
  if (!top || !multiShardProblem(statement, catalog, semantics)) return undefined;
  if (everyTablePinned(semantics)) return undefined;
  const written = top.kind === "update" || top.kind === "delete" ? (top.node as AnyNode).relation : undefined;
  const ownLevels = semantics.levels.filter((level) => level === top || level.role === "arm");
  const rangeVars = new Set(
    ownLevels.flatMap((level) =>
      level.entries.filter((e) => e.table?.kind === "hash" && e.rangeVar !== written).map((e) => e.rangeVar),
    ),
  );
  const found: PulledTable[] = [];
  walkWithPath(statement, (node, key, path) => {
    if (key !== "RangeVar" || !rangeVars.has(node as never)) return undefined;
    const table = catalog.resolve(node.schemaname as string | undefined, node.relname as string) as DistributedTable;
    const query = parseStatements(`SELECT * FROM ${qualifiedName(table.schema, table.name)}`)[0] as AnyNode;
    found.push({ path: path.slice(0, -1), table, query });
    return false;
  });
  if (found.length === 0) return undefined;
  return runsAsIs(withPlaceholders(statement, found), catalog) ? found : undefined;
}

/** The statement with each pulled table replaced by an empty subquery of its columns (for planning only). */
export function withPlaceholders(statement: AnyNode, pulled: readonly PulledTable[]): AnyNode {
  const tree = structuredClone(statement);
  for (const { path, table } of pulled) {
    const columns = table.columns.map((column) => ({
      ResTarget: { name: column.name, val: { A_Const: { isnull: true } } },
    }));
    replaceRangeVar(nodeAtPath(tree, path), { SelectStmt: { targetList: columns, op: "SETOP_NONE" } }, table.name);
  }
  return tree;
}

function runsAsIs(tree: AnyNode, catalog: CatalogSnapshot): boolean {
  const semantics = analyzeStatement(tree, catalog);
  if (!semantics.relations.some((ref) => ref.table)) return true;
  return !multiShardProblem(tree, catalog, semantics);
}
