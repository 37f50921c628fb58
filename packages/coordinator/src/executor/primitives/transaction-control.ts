import type { AnyNode } from "../../parser/ast.js";
import { backendRequest } from "../backend-request.js";
import { ExecutionErrors } from "../execution-errors.js";
import type { ExecutionPort } from "../execution-port.js";
import type { ResultSink } from "../result-sink.js";
import type { StatementRun } from "../statement-run.js";
import { NO_INPUTS, type Primitive } from "./primitive.js";

/**
 * BEGIN, COMMIT, ROLLBACK and savepoints when a transaction block has reached workers. COMMIT:
 * the block's writers prepare and the decision is recorded in the block's own transaction on the
 * coordinator, whose COMMIT (the client's answer) makes it durable; then the workers commit
 * (transaction/distributed-transaction.ts). ROLLBACK rolls every worker back, then the
 * coordinator. Savepoints run on the coordinator and on every worker of the block. With no worker
 * in the block, the coordinator's PostgreSQL answers alone.
 */
export class TransactionControl implements Primitive {
  readonly kind = "transaction";

  /** `statement` is the TransactionStmt's fields. */
  constructor(readonly statement: AnyNode) {}

  /**
   * SAVEPOINT, RELEASE, ROLLBACK TO: herd keeps the block's list even before workers take part, so
   * that a worker joining later opens with the savepoints a later ROLLBACK TO names.
   */
  get isSavepoint(): boolean {
    const kind = this.statement.kind as string;
    return kind === "TRANS_STMT_SAVEPOINT" || kind === "TRANS_STMT_RELEASE" || kind === "TRANS_STMT_ROLLBACK_TO";
  }

  async execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void> {
    const kind = this.statement.kind as string;
    const workers = port.transaction;
    const relay = () => port.relay(backendRequest(run), sink, run.bind !== undefined);
    switch (kind) {
      case "TRANS_STMT_COMMIT":
      case "TRANS_STMT_ROLLBACK":
        try {
          await this.endBlock(kind, port, run, sink, relay);
        } finally {
          // metadata the block changed is everyone's now, or gone: the shared catalog again
          await port.catalog.blockEnded();
        }
        return;
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
        // metadata changed since the savepoint is undone: read the block's own again
        if (kind === "TRANS_STMT_ROLLBACK_TO" && port.catalog.blockSnapshot()) await port.catalog.changedInBlock();
        return;
      }
      default:
        await relay();
    }
  }

  private async endBlock(
    kind: string,
    port: ExecutionPort,
    run: StatementRun,
    sink: ResultSink,
    relay: () => Promise<boolean>,
  ): Promise<void> {
    const workers = port.transaction;
    if (!workers.active) {
      await relay();
      return;
    }
    if (kind === "TRANS_STMT_ROLLBACK" || port.backend.status === "E") {
      await workers.rollback();
      await relay();
      return;
    }
    try {
      // the decision and the coordinator's COMMIT go together; herd answers the client's COMMIT
      await workers.commit({ chain: this.statement.chain === true });
    } catch (error) {
      // the block did not commit anywhere: end the coordinator's part of it too
      if (port.backend.status !== "I") await port.backend.query("ROLLBACK").catch(() => {});
      throw error;
    }
    if (run.describe && run.bind) sink.noData();
    sink.complete("COMMIT");
  }

  describe(): string {
    return "Transaction TransactionStmt";
  }

  inputs(): readonly Primitive[] {
    return NO_INPUTS;
  }
}
