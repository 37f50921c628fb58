import { DistributedTransaction, type ShardLock } from "../transaction/distributed-transaction.js";
import type { ExecutionPort } from "./execution-port.js";
import type { ShardTask } from "./fan-out.js";

/**
 * Runs a write in the transaction it belongs to: the client's block, or one of its own, which
 * commits when `write` returns and rolls back when it throws. What the tasks write is locked on
 * the coordinator first; `placementEpoch` is the one of the catalog the write was planned with.
 */
export async function inWriteTransaction<T>(
  port: ExecutionPort,
  placementEpoch: number,
  tasks: readonly ShardTask[],
  write: (transaction: DistributedTransaction) => Promise<T>,
): Promise<T> {
  const block = port.inTransactionBlock();
  const transaction = block
    ? port.transaction
    : new DistributedTransaction(
        {
          backend: port.backend,
          pool: port.workers,
          logger: port.logger,
          defer: (finishing) => port.afterCommit(finishing),
        },
        "statement",
      );
  try {
    await transaction.lockShards(locksOf(tasks), placementEpoch);
    const result = await write(transaction);
    if (!block) await transaction.commit();
    return result;
  } catch (error) {
    if (!block) await transaction.rollback();
    throw error;
  }
}

/** What the tasks write of each shard: the hashes of their distribution values, or the whole shard. */
export function locksOf(tasks: readonly ShardTask[]): Map<number, ShardLock> {
  return new Map(tasks.map((task) => [task.shardId, { hashes: task.hashes }]));
}
