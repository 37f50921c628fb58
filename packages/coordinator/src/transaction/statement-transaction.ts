import { errorMessage, type Logger } from "@herd/shared";
import type { WorkerConnection } from "../connection/worker-connection.js";
import type { WorkerNode } from "../metadata/catalog-types.js";

/** One worker's connection taking part in a statement's own transaction. */
export interface Participant {
  readonly node: WorkerNode;
  readonly connection?: WorkerConnection | undefined;
}

/**
 * The transaction of one write that reaches several placements outside a transaction block:
 * each worker runs it inside BEGIN … COMMIT (the BEGIN goes out pipelined before the statements,
 * see fan-out.ts), and the workers commit one after the other.
 *
 * Until one worker has committed, a failed commit rolls the rest back and is the statement's
 * error; after that, a worker that fails to commit missed the write: `missed` reports it (to the
 * log and the client), and the placement should be marked stale (not done yet: the "writes
 * that never diverge" issue replaces this with two-phase commit).
 */
export async function commitEach(
  participants: readonly Participant[],
  logger: Logger,
  missed: (node: WorkerNode) => void,
): Promise<void> {
  let committed = 0;
  for (const [position, participant] of participants.entries()) {
    try {
      await participant.connection?.query("COMMIT");
      committed += 1;
    } catch (error) {
      participant.connection?.destroy();
      if (committed === 0) {
        await endEach(participants.slice(position + 1), "ROLLBACK");
        throw error;
      }
      logger.error("a placement missed a committed write", { node: participant.node.name, error: errorMessage(error) });
      missed(participant.node);
    }
  }
}

/** Ends every participant's transaction the same way; a connection that cannot is closed. */
export async function endEach(participants: readonly Participant[], sql: "ROLLBACK" | "COMMIT"): Promise<void> {
  await Promise.all(
    participants.map((participant) =>
      participant.connection?.query(sql).catch(() => participant.connection?.destroy()),
    ),
  );
}
