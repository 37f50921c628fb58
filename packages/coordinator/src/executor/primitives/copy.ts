import { type CopyInto, runCopy } from "../../copy/copy-executor.js";
import type { ExecutionPort } from "../execution-port.js";
import type { ResultSink } from "../result-sink.js";
import type { StatementRun } from "../statement-run.js";
import { NO_INPUTS, type Primitive } from "./primitive.js";

/** COPY … FROM STDIN into a distributed or reference table, rows routed by hash. */
export class Copy implements Primitive {
  readonly kind = "copy";

  constructor(readonly into: CopyInto) {}

  async execute(port: ExecutionPort, _run: StatementRun, sink: ResultSink): Promise<void> {
    sink.complete(await runCopy(this.into, port, sink));
  }

  describe(): string {
    return "Copy CopyStmt";
  }

  inputs(): readonly Primitive[] {
    return NO_INPUTS;
  }
}
