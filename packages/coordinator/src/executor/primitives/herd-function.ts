import { callHerdFunction, type FunctionCall, INT8_OID } from "../../operations/herd-functions.js";
import type { ExecutionPort } from "../execution-port.js";
import type { ResultSink } from "../result-sink.js";
import type { StatementRun } from "../statement-run.js";
import { NO_INPUTS, type Primitive } from "./primitive.js";

/** `SELECT create_distributed_table(…)` and herd's other functions: one row, as PostgreSQL would answer. */
export class HerdFunction implements Primitive {
  readonly kind = "function";

  constructor(readonly call: FunctionCall) {}

  async execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void> {
    const answer = await callHerdFunction(this.call, run, port);
    if (run.describe) {
      sink.fields([
        {
          name: this.call.column,
          tableOid: 0,
          columnNumber: 0,
          typeOid: answer.typeOid,
          typeSize: answer.typeOid === INT8_OID ? 8 : 4,
          typeModifier: -1,
          format: 0,
        },
      ]);
    }
    sink.row([answer.value]);
    sink.complete("SELECT 1");
  }

  describe(): string {
    return "Function SelectStmt";
  }

  inputs(): readonly Primitive[] {
    return NO_INPUTS;
  }
}
