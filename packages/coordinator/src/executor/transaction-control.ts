import type { AnyNode } from "../parser/ast.js";
import { PlannerErrors } from "../planner/planner-errors.js";
import { backendRequest } from "./backend-request.js";
import type { SessionContext, StatementRun } from "./execution-port.js";

/**
 * BEGIN, COMMIT, ROLLBACK and savepoints when a transaction block has reached workers: the
 * workers' transactions end first (commit or roll back), then the coordinator's, whose answer
 * the client gets. Savepoints run on the coordinator and on every worker of the block.
 */
export async function transactionControl(
  statement: AnyNode,
  run: StatementRun,
  session: SessionContext,
): Promise<void> {
  const kind = statement.TransactionStmt.kind as string;
  const workers = session.transaction;
  switch (kind) {
    case "TRANS_STMT_COMMIT":
    case "TRANS_STMT_ROLLBACK": {
      if (workers.active) {
        const commit = kind === "TRANS_STMT_COMMIT" && session.backend.status !== "E";
        try {
          await workers.finish(commit);
        } catch (error) {
          // no worker committed: the whole block is rolled back
          await session.backend.query("ROLLBACK").catch(() => {});
          throw error;
        }
      }
      await session.relayFromBackend(backendRequest(run), run.bind !== undefined);
      return;
    }
    case "TRANS_STMT_PREPARE":
      if (workers.active)
        throw PlannerErrors.notSupported("PREPARE TRANSACTION in a transaction block that reached workers");
      await session.relayFromBackend(backendRequest(run), run.bind !== undefined);
      return;
    case "TRANS_STMT_SAVEPOINT":
    case "TRANS_STMT_RELEASE":
    case "TRANS_STMT_ROLLBACK_TO": {
      const ok = await session.relayFromBackend(backendRequest(run), run.bind !== undefined);
      if (!ok || !workers.active) {
        if (ok) trackSavepoint(kind, statement.TransactionStmt.savepoint_name as string, run.sql, workers.savepoints);
        return;
      }
      await workers.everywhere(run.sql);
      trackSavepoint(kind, statement.TransactionStmt.savepoint_name as string, run.sql, workers.savepoints);
      return;
    }
    default:
      await session.relayFromBackend(backendRequest(run), run.bind !== undefined);
  }
}

/** Keeps the list of open savepoints (as the statements that made them) in step with the block. */
function trackSavepoint(kind: string, name: string, sql: string, savepoints: { name: string; sql: string }[]): void {
  const index = savepoints.findLastIndex((savepoint) => savepoint.name === name);
  if (kind === "TRANS_STMT_SAVEPOINT") savepoints.push({ name, sql });
  else if (index >= 0) savepoints.length = kind === "TRANS_STMT_RELEASE" ? index : index + 1;
}
