import type { AnyNode } from "../../parser/ast.js";
import { backendRequest } from "../backend-request.js";
import { ExecutionErrors } from "../execution-errors.js";
import type { ExecutionPort } from "../execution-port.js";
import type { ResultSink } from "../result-sink.js";
import type { StatementRun } from "../statement-run.js";
import { NO_INPUTS, type Primitive } from "./primitive.js";

/**
 * BEGIN, COMMIT, ROLLBACK and savepoints when a transaction block has reached workers: the
 * workers' transactions end first (commit or roll back, see WorkerTransaction.finish), then the
 * coordinator's, whose answer the client gets. Savepoints run on the coordinator and on every
 * worker of the block. With no worker in the block, the coordinator's PostgreSQL answers alone.
 */
export class TransactionControl implements Primitive {
  readonly kind = "transaction";

  /** `statement` is the TransactionStmt's fields. */
  constructor(readonly statement: AnyNode) {}

  async execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void> {
    const kind = this.statement.kind as string;
    const workers = port.transaction;
    const relay = () => port.relay(backendRequest(run), sink, run.bind !== undefined);
    switch (kind) {
      case "TRANS_STMT_COMMIT":
      case "TRANS_STMT_ROLLBACK": {
        if (workers.active) {
          const commit = kind === "TRANS_STMT_COMMIT" && port.backend.status !== "E";
          try {
            await workers.finish(commit);
          } catch (error) {
            // no worker committed: the whole block is rolled back
            await port.backend.query("ROLLBACK").catch(() => {});
            throw error;
          }
        }
        await relay();
        return;
      }
      case "TRANS_STMT_PREPARE":
        if (workers.active)
          throw ExecutionErrors.notSupported("PREPARE TRANSACTION in a transaction block that reached workers");
        await relay();
        return;
      case "TRANS_STMT_SAVEPOINT":
      case "TRANS_STMT_RELEASE":
      case "TRANS_STMT_ROLLBACK_TO": {
        const name = this.statement.savepoint_name as string;
        const ok = await relay();
        if (!ok) return;
        if (workers.active) await workers.everywhere(run.sql);
        workers.noteSavepoint(kind, name, run.sql);
        return;
      }
      default:
        await relay();
    }
  }

  describe(): string {
    return "Transaction TransactionStmt";
  }

  inputs(): readonly Primitive[] {
    return NO_INPUTS;
  }
}
