import { type DistributedTable, shardName, shardOf } from "../metadata/catalog-types.js";
import { type AnyNode, deparse } from "../parser/ast.js";

/** A place where a statement names a distributed or reference table: the path to its RangeVar. */
export interface TableMention {
  /** Keys and indexes from the statement's root to the RangeVar's fields. */
  readonly path: readonly (string | number)[];
  readonly table: DistributedTable;
  /** A query keeps the old name as alias (`events_102008 events`); DDL, COPY and foreign keys take none. */
  readonly keepAlias: boolean;
}

/**
 * Renames the tables of a (copied) tree to their shards in shard group `index`. A query keeps the
 * table's name as alias, so that qualified column references (`events.id`) still resolve.
 */
export function renameToShards(copy: AnyNode, mentions: readonly TableMention[], index: number): void {
  for (const mention of mentions) {
    let rangeVar: AnyNode = copy;
    for (const step of mention.path) rangeVar = rangeVar[step];
    if (mention.keepAlias && rangeVar.alias === undefined) rangeVar.alias = { aliasname: rangeVar.relname };
    rangeVar.relname = shardName(mention.table, shardOf(mention.table, index).id);
    // shards live in their table's schema; a name the session's search_path found elsewhere than
    // public must say where on the workers, whose search_path is the default one
    if (rangeVar.schemaname === undefined && mention.table.schema !== "public")
      rangeVar.schemaname = mention.table.schema;
  }
}

/**
 * A statement as each shard group runs it: its tree with the distributed and reference tables
 * renamed to their shards, deparsed the first time a shard group needs it and kept, so a plan
 * used again pays nothing. The plan it belongs to is immutable; this is its cache.
 */
export class ShardStatements {
  private readonly texts: (string | undefined)[] = [];

  constructor(
    readonly tree: AnyNode,
    readonly mentions: readonly TableMention[],
  ) {}

  /** The statement as written, on the coordinator's shell tables. */
  get sqlOnShells(): string {
    return deparse(this.tree);
  }

  sqlFor(index: number): string {
    const cached = this.texts[index];
    if (cached !== undefined) return cached;
    const copy = structuredClone(this.tree);
    renameToShards(copy, this.mentions, index);
    const sql = deparse(copy);
    this.texts[index] = sql;
    return sql;
  }
}
