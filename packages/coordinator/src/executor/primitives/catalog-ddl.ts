import { backendRequest } from "../backend-request.js";
import type { ExecutionPort } from "../execution-port.js";
import type { ResultSink } from "../result-sink.js";
import type { StatementRun } from "../statement-run.js";
import { NO_INPUTS, type Primitive } from "./primitive.js";

/**
 * DDL that only the coordinator's PostgreSQL runs but that herd must know of before the session's
 * next statement: a view or function that reads distributed tables (herd plans statements that
 * read the view with its definition, and refuses calls of the function). The catalog is loaded
 * again once it has committed, so the next statement sees it; inside a transaction block, the
 * block's own catalog is read through the session's connection, which sees the new definition.
 */
export class CatalogDdl implements Primitive {
  readonly kind = "catalog-ddl";

  /** `what`: the statement, as EXPLAIN names it ("CREATE VIEW over distributed tables"). */
  constructor(readonly what: string) {}

  async execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void> {
    if (!(await port.relay(backendRequest(run), sink, run.bind !== undefined))) return;
    if (port.inTransactionBlock()) await port.catalog.changedInBlock();
    else await port.catalog.reload();
  }

  describe(): string {
    return `Local DDL (${this.what}), then the catalog is read again`;
  }

  inputs(): readonly Primitive[] {
    return NO_INPUTS;
  }
}
