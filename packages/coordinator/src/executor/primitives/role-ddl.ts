import type { WorkerNode } from "../../metadata/catalog-types.js";
import { runRoleStatement } from "../../operations/role-propagation.js";
import { backendRequest } from "../backend-request.js";
import { ExecutionErrors } from "../execution-errors.js";
import type { ExecutionPort } from "../execution-port.js";
import type { ResultSink } from "../result-sink.js";
import type { StatementRun } from "../statement-run.js";
import { NO_INPUTS, type Primitive } from "./primitive.js";

/**
 * A statement that changes roles (CREATE/ALTER/DROP ROLE, GRANT/REVOKE role, DROP OWNED and
 * REASSIGN OWNED, which change what roles hold): on the coordinator's PostgreSQL, and the
 * workers' roles made the same in the same distributed transaction (operations/role-propagation.ts).
 * Inside a transaction block it runs on the coordinator only, and the workers' roles follow once
 * the block has ended (before the session's next distributed statement; within seconds for others).
 */
export class RoleDdl implements Primitive {
  readonly kind = "role-ddl";

  /** `serverStatement`: the same statement also runs on each worker (DROP OWNED, REASSIGN OWNED). */
  constructor(
    readonly workers: readonly WorkerNode[],
    readonly serverStatement: string | undefined,
  ) {}

  async execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void> {
    if (port.inTransactionBlock()) {
      if (this.serverStatement) {
        throw ExecutionErrors.notSupported(
          "ALTER ROLE … RENAME, DROP OWNED and REASSIGN OWNED inside a transaction block",
          "Run the command on its own, outside BEGIN … COMMIT.",
        );
      }
      if (await port.relay(backendRequest(run), sink, run.bind !== undefined)) port.rolesChanged = true;
      return;
    }
    const tag = await runRoleStatement(run, port, this.workers, this.serverStatement);
    if (run.describe && run.bind) sink.noData();
    sink.complete(tag);
  }

  describe(): string {
    return "Role change on the coordinator, then on every worker";
  }

  inputs(): readonly Primitive[] {
    return NO_INPUTS;
  }
}
