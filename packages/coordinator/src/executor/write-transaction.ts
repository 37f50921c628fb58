import { DistributedTransaction } from "../transaction/distributed-transaction.js";
import type { ExecutionPort } from "./execution-port.js";
import type { ShardTask } from "./fan-out.js";

/**
 * Runs a write in the transaction it belongs to: the client's block, or one of its own, which
 * commits when `write` returns and rolls back when it throws. The shards the tasks write are
 * locked on the coordinator first, with their placements as the plan knows them.
 */
export async function inWriteTransaction<T>(
  port: ExecutionPort,
  tasks: readonly ShardTask[],
  write: (transaction: DistributedTransaction) => Promise<T>,
): Promise<T> {
  const block = port.inTransactionBlock();
  const transaction = block
    ? port.transaction
    : new DistributedTransaction({ backend: port.backend, pool: port.workers, logger: port.logger }, "statement");
  try {
    await transaction.lockShards(placementsOf(tasks));
    const result = await write(transaction);
    if (!block) await transaction.commit();
    return result;
  } catch (error) {
    if (!block) await transaction.rollback();
    throw error;
  }
}

/** Shard id → the nodes of its active placements, as the tasks (the plan) know them. */
export function placementsOf(tasks: readonly ShardTask[]): Map<number, number[]> {
  const placements = new Map<number, number[]>();
  for (const task of tasks)
    placements.set(
      task.shardId,
      task.nodes.map((node) => node.id),
    );
  return placements;
}
