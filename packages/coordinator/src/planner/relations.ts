import type { Catalog } from "../metadata/catalog.js";
import type { DistributedTable } from "../metadata/catalog-types.js";
import { type AnyNode, walk } from "../parser/ast.js";

/** One place a statement names a relation: the RangeVar's fields, and the table it means. */
export interface RelationRef {
  readonly rangeVar: AnyNode;
  /** Where the RangeVar hangs: "RangeVar" in FROM lists, "relation"/"pktable" bare in statements. */
  readonly key: string;
  /** The distributed or reference table it names; undefined for an ordinary table. */
  readonly table: DistributedTable | undefined;
}

/** Keys under which libpg-query puts a bare (unwrapped) RangeVar. */
const BARE_RANGE_VAR_KEYS = new Set(["relation", "pktable"]);

/**
 * Every relation a statement names, in tree order, resolved against the catalog. Names that
 * refer to a CTE of the statement are left out (a CTE hides a table of the same name).
 */
export function findRelations(tree: unknown, catalog: Catalog): RelationRef[] {
  const cteNames = new Set<string>();
  walk(tree, (node, key) => {
    if (key === "CommonTableExpr" && typeof node.ctename === "string") cteNames.add(node.ctename);
    return undefined;
  });
  const refs: RelationRef[] = [];
  walk(tree, (node, key) => {
    const rangeVar =
      key === "RangeVar" || (BARE_RANGE_VAR_KEYS.has(key) && typeof node.relname === "string") ? node : undefined;
    if (!rangeVar) return undefined;
    const schema = rangeVar.schemaname as string | undefined;
    const name = rangeVar.relname as string;
    if (schema === undefined && cteNames.has(name)) return false;
    refs.push({ rangeVar, key, table: catalog.resolve(schema, name) });
    return false;
  });
  return refs;
}

/**
 * Renames the distributed and reference tables of a (copied) tree to their shard tables, as
 * `nameFor` says. A table renamed in a query keeps its old name as alias (`events_102008 events`)
 * so that qualified column references (`events.id`) still resolve; DDL and COPY take no alias.
 */
export function renameRelations(
  tree: unknown,
  catalog: Catalog,
  nameFor: (table: DistributedTable) => string,
  keepAlias: boolean,
): void {
  for (const ref of findRelations(tree, catalog)) {
    if (!ref.table) continue;
    if (keepAlias && ref.key !== "pktable" && ref.rangeVar.alias === undefined) {
      ref.rangeVar.alias = { aliasname: ref.rangeVar.relname };
    }
    ref.rangeVar.relname = nameFor(ref.table);
  }
}
