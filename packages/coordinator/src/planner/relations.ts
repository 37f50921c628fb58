import type { TableMention } from "../executor/shard-statements.js";
import type { DistributedTable } from "../metadata/catalog-types.js";
import type { AnyNode } from "../parser/ast.js";

/** One place a statement names a relation (semantics/analyze.ts finds them): the RangeVar's fields, and the table it means. */
export interface RelationRef {
  readonly rangeVar: AnyNode;
  /** Where the RangeVar hangs: "RangeVar" in FROM lists, "relation"/"pktable" bare in statements. */
  readonly key: string;
  /** The path from the statement's root to the RangeVar's fields. */
  readonly path: readonly (string | number)[];
  /** The distributed or reference table it names; undefined for an ordinary table. */
  readonly table: DistributedTable | undefined;
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
