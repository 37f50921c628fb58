import { backendRequest } from "../backend-request.js";
import { ExecutionErrors } from "../execution-errors.js";
import type { ExecutionPort } from "../execution-port.js";
import type { ResultSink } from "../result-sink.js";
import type { StatementRun } from "../statement-run.js";
import { NO_INPUTS, type Primitive } from "./primitive.js";

/**
 * DDL that only the coordinator's PostgreSQL runs but that herd must know of before the session's
 * next statement: a view or function that reads distributed tables (herd plans statements that
 * read the view with its definition, and refuses calls of the function). The catalog is loaded
 * again once it has committed, so the next statement sees it. Inside a transaction block the new
 * definition would be invisible to herd until COMMIT, and a statement using it in the block
 * would read the empty shells: refused there.
 */
export class CatalogDdl implements Primitive {
  readonly kind = "catalog-ddl";

  /** `what`: the statement, as the refusal names it ("CREATE VIEW over distributed tables"). */
  constructor(readonly what: string) {}

  async execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void> {
    if (port.inTransactionBlock())
      throw ExecutionErrors.notSupported(
        `${this.what} inside a transaction block`,
        "Run it on its own, outside BEGIN … COMMIT.",
      );
    if (await port.relay(backendRequest(run), sink, run.bind !== undefined)) await port.catalog.reload();
  }

  describe(): string {
    return `Local DDL (${this.what}), then the catalog is read again`;
  }

  inputs(): readonly Primitive[] {
    return NO_INPUTS;
  }
}
