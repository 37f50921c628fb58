import { HerdError, SqlState } from "@herd/shared";
import { firstValue } from "../connection/pg-connection.js";
import type { ExecutionPort } from "../executor/execution-port.js";
import { activeNodes } from "../executor/shard-selection.js";
import { shardName, type WorkerNode } from "../metadata/catalog-types.js";
import { qualifiedName } from "../parser/identifiers.js";
import { distributedTable } from "./table-lookup.js";

/** Citus's size functions, and the PostgreSQL function each sums over the shards. */
const SIZE_FUNCTIONS = {
  citus_relation_size: "pg_relation_size",
  citus_table_size: "pg_table_size",
  citus_total_relation_size: "pg_total_relation_size",
} as const;

export type SizeFunction = keyof typeof SIZE_FUNCTIONS;

/**
 * citus_table_size and its siblings: the PostgreSQL size function of each shard, summed, each
 * shard measured once (on its first active placement, as a read would use it): the size of the
 * table's data, not of its replicas.
 */
export async function distributedTableSize(
  which: SizeFunction,
  relation: string,
  port: ExecutionPort,
): Promise<bigint> {
  const table = await distributedTable(
    relation,
    port,
    (name) =>
      new HerdError(`cannot calculate the size because relation '${name}' is not distributed`, {
        sqlState: SqlState.invalidTableDefinition,
      }),
  );
  const catalog = port.catalog.current;
  const byNode = new Map<number, { node: WorkerNode; shards: string[] }>();
  for (const shard of table.shards) {
    const node = activeNodes(shard, catalog.nodes)[0];
    if (!node) {
      throw new HerdError(`shard ${shard.id} of ${table.name} has no active placement to measure`, {
        sqlState: SqlState.objectNotInPrerequisiteState,
      });
    }
    const entry = byNode.get(node.id) ?? { node, shards: [] };
    entry.shards.push(qualifiedName(table.schema, shardName(table, shard.id)));
    byNode.set(node.id, entry);
  }
  const sizes = await Promise.all(
    [...byNode.values()].map(async ({ node, shards }) => {
      const connection = await port.workers.acquire(node);
      try {
        const result = await connection.query(
          `SELECT coalesce(sum(pg_catalog.${SIZE_FUNCTIONS[which]}(shard::regclass)), 0)::text
             FROM pg_catalog.json_array_elements_text($1::json) shard`,
          [JSON.stringify(shards)],
        );
        return BigInt(firstValue(result) ?? "0");
      } finally {
        port.workers.release(connection);
      }
    }),
  );
  return sizes.reduce((total, size) => total + size, 0n);
}
