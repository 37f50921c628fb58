import { HerdError, SqlState } from "@herd/shared";
import type { ExecutionPort } from "../executor/execution-port.js";
import { distributeTable } from "./distribute-table.js";
import { distributedTable } from "./table-lookup.js";
import { undistributeTable } from "./undistribute-table.js";

export interface AlterDistribution {
  readonly table: string;
  readonly distributionColumn?: string;
  readonly shardCount?: number;
  readonly colocateWith?: string;
}

/**
 * alter_distributed_table(table, distribution_column, shard_count, colocate_with): the table is
 * made ordinary and distributed again with what changed, in one transaction (the session's block,
 * or one of its own here): its rows pass through the coordinator twice (undistribute_table, then
 * create_distributed_table), so it suits tables the coordinator can hold. Without a colocate_with,
 * a new shard count or column leaves the table's colocation group (`none`); keeping both keeps the
 * table colocated as before.
 */
export async function alterDistributedTable(change: AlterDistribution, port: ExecutionPort): Promise<void> {
  const table = await distributedTable(
    change.table,
    port,
    (name) =>
      new HerdError(`cannot alter table because relation "${name}" is not distributed`, {
        sqlState: SqlState.invalidTableDefinition,
      }),
  );
  if (table.kind !== "hash")
    throw new HerdError("alter_distributed_table changes hash-distributed tables only", {
      sqlState: SqlState.featureNotSupported,
    });
  const column = change.distributionColumn ?? (table.distributionColumn as string);
  const shardCount = change.shardCount ?? table.shards.length;
  if (column === table.distributionColumn && shardCount === table.shards.length && change.colocateWith === undefined) {
    throw new HerdError("alter_distributed_table: nothing to change", {
      sqlState: SqlState.invalidParameterValue,
      hint: "Give a new distribution_column, shard_count or colocate_with.",
    });
  }
  const colocateWith =
    change.colocateWith ??
    (column === table.distributionColumn && shardCount === table.shards.length ? "default" : "none");
  const backend = port.backend;
  const own = !port.inTransactionBlock();
  if (own) await backend.query("BEGIN");
  try {
    await undistributeTable(change.table, port);
    await distributeTable(
      {
        table: change.table,
        kind: "hash",
        column,
        colocateWith,
        shardCount: colocateWith === "none" || colocateWith === "default" ? shardCount : undefined,
      },
      port,
    );
    if (own) await port.transaction.commit();
  } catch (error) {
    if (own) {
      await port.transaction.rollback().catch(() => {});
      if (backend.status !== "I") await backend.query("ROLLBACK").catch(() => {});
    }
    throw error;
  } finally {
    if (own) await port.catalog.blockEnded();
  }
}
