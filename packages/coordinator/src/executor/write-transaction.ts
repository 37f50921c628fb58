import { DistributedTransaction } from "../transaction/distributed-transaction.js";
import { PlacementsChanged } from "../transaction/placements-changed.js";
import type { ShardLock } from "../transaction/shard-lock.js";
import type { ExecutionPort } from "./execution-port.js";
import type { ShardTask } from "./fan-out.js";

/**
 * Runs a write in the transaction it belongs to: the client's block, or one of its own, which
 * commits when `write` returns and rolls back when it throws. What the tasks write is locked on
 * the coordinator first, where their shards' placement versions are checked: when they changed
 * since the plan, the write's own transaction is kept with its locks (`port.heldWrite`) while the
 * engine plans again, so the next attempt holds the shards still (no copy is repaired meanwhile)
 * and goes through at once.
 */
export async function inWriteTransaction<T>(
  port: ExecutionPort,
  tasks: readonly ShardTask[],
  write: (transaction: DistributedTransaction) => Promise<T>,
): Promise<T> {
  const block = port.inTransactionBlock();
  // outside a block, the write waits for room on its workers now, before it locks anything
  if (!block && !port.heldWrite) await port.workers.reserve?.(tasks.flatMap((task) => task.nodes));
  const transaction = block ? port.transaction : (port.heldWrite ?? ownTransaction(port));
  port.heldWrite = undefined;
  try {
    try {
      await transaction.lockShards(locksOf(tasks));
    } catch (error) {
      if (block) throw error;
      if (error instanceof PlacementsChanged) port.heldWrite = transaction;
      else await transaction.rollback();
      throw error;
    }
    try {
      const result = await write(transaction);
      if (!block) await transaction.commit();
      return result;
    } catch (error) {
      if (!block) await transaction.rollback();
      throw error;
    }
  } finally {
    // room reserved for workers the write did not reach (kept while a held write plans again)
    if (!block) port.workers.unreserve?.();
  }
}

function ownTransaction(port: ExecutionPort): DistributedTransaction {
  return new DistributedTransaction(
    {
      backend: port.backend,
      pool: port.workers,
      logger: port.logger,
      catalog: port.catalog,
      defer: (finishing, targets) => port.afterCommit(finishing, targets),
    },
    "statement",
  );
}

/** What the tasks write of each shard: the hashes of their distribution values, or the whole shard. */
export function locksOf(tasks: readonly ShardTask[]): Map<number, ShardLock> {
  const locks = new Map<number, ShardLock>();
  for (const task of tasks) if (task.lock) locks.set(task.shardId, task.lock);
  return locks;
}
