import type { ExecutionPort } from "../executor/execution-port.js";
import { DistributedTransaction } from "../transaction/distributed-transaction.js";

/**
 * Runs an operation that changes distributed tables and their metadata (DDL, distributing,
 * undistributing) in the transaction it belongs to. In the session's transaction block, it is
 * part of the block's distributed transaction: nothing commits until the block does, and the
 * block's statements after it plan with the block's own metadata. Outside a block, in a
 * transaction of its own that commits in two phases when `work` returns and rolls back when it
 * throws; the shared catalog is loaded again either way.
 */
export async function inOperationTransaction<T>(
  port: ExecutionPort,
  work: (transaction: DistributedTransaction, inBlock: boolean) => Promise<T>,
): Promise<T> {
  const inBlock = port.inTransactionBlock();
  const transaction = inBlock
    ? port.transaction
    : new DistributedTransaction(
        { backend: port.backend, pool: port.workers, logger: port.logger, catalog: port.catalog },
        "statement",
      );
  try {
    const result = await work(transaction, inBlock);
    if (inBlock) await port.catalog.changedInBlock();
    else await transaction.commit();
    return result;
  } catch (error) {
    // a block's part is rolled back with the block (the failed statement fails the block)
    if (!inBlock) await transaction.rollback();
    throw error;
  } finally {
    if (!inBlock) await port.catalog.reload();
  }
}

/**
 * Runs `work` in the coordinator's transaction it belongs to: the session's block, or one of its
 * own that commits when `work` returns and rolls back when it throws. For operations whose
 * worker reads need no transaction of their own (a refresh, emptying a shell).
 */
export async function inCoordinatorTransaction<T>(port: ExecutionPort, work: () => Promise<T>): Promise<T> {
  const backend = port.backend;
  const own = !port.inTransactionBlock();
  if (own) await backend.query("BEGIN");
  try {
    const result = await work();
    if (own) await backend.query("COMMIT");
    return result;
  } catch (error) {
    if (own && backend.status !== "I") await backend.query("ROLLBACK").catch(() => {});
    throw error;
  }
}
