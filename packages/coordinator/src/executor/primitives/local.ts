import { backendRequest } from "../backend-request.js";
import type { ExecutionPort } from "../execution-port.js";
import type { ResultSink } from "../result-sink.js";
import type { StatementRun } from "../statement-run.js";
import { NO_INPUTS, type Primitive } from "./primitive.js";

/**
 * A statement that touches no distributed table: the coordinator's own PostgreSQL answers it,
 * exactly as if the client had asked it (its answers are relayed as they come).
 */
export class Local implements Primitive {
  readonly kind = "local";

  async execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void> {
    await port.relay(backendRequest(run), sink, run.bind !== undefined);
  }

  describe(): string {
    return "Local";
  }

  inputs(): readonly Primitive[] {
    return NO_INPUTS;
  }
}
