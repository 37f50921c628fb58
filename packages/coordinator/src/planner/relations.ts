import type { TableMention } from "../executor/shard-statements.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import type { DistributedTable } from "../metadata/catalog-types.js";
import { type AnyNode, walk, walkWithPath } from "../parser/ast.js";

/** One place a statement names a relation: the RangeVar's fields, and the table it means. */
export interface RelationRef {
  readonly rangeVar: AnyNode;
  /** Where the RangeVar hangs: "RangeVar" in FROM lists, "relation"/"pktable" bare in statements. */
  readonly key: string;
  /** The path from the statement's root to the RangeVar's fields. */
  readonly path: readonly (string | number)[];
  /** The distributed or reference table it names; undefined for an ordinary table. */
  readonly table: DistributedTable | undefined;
}

/** Keys under which libpg-query puts a bare (unwrapped) RangeVar. */
const BARE_RANGE_VAR_KEYS = new Set(["relation", "pktable"]);

/**
 * Every relation a statement names, in tree order, resolved against the catalog. Names that
 * refer to a CTE of the statement are left out (a CTE hides a table of the same name).
 */
export function findRelations(tree: unknown, catalog: CatalogSnapshot): RelationRef[] {
  const cteNames = new Set<string>();
  walk(tree, (node, key) => {
    if (key === "CommonTableExpr" && typeof node.ctename === "string") cteNames.add(node.ctename);
    return undefined;
  });
  const refs: RelationRef[] = [];
  walkWithPath(tree, (node, key, path) => {
    const rangeVar =
      key === "RangeVar" || (BARE_RANGE_VAR_KEYS.has(key) && typeof node.relname === "string") ? node : undefined;
    if (!rangeVar) return undefined;
    const schema = rangeVar.schemaname as string | undefined;
    const name = rangeVar.relname as string;
    if (schema === undefined && cteNames.has(name)) return false;
    refs.push({ rangeVar, key, path: [...path], table: catalog.resolve(schema, name) });
    return false;
  });
  return refs;
}

/**
 * The distributed and reference tables among `refs`, as renaming to shards needs them. In a query
 * each keeps its name as alias (`events_102008 events`) so that qualified column references still
 * resolve; DDL, COPY and a foreign key's referenced table take none.
 */
export function tableMentions(refs: readonly RelationRef[], query: boolean): TableMention[] {
  return refs.flatMap((ref) =>
    ref.table ? [{ path: ref.path, table: ref.table, keepAlias: query && ref.key !== "pktable" }] : [],
  );
}
