import { callHerdFunction, type FunctionCall } from "../../operations/herd-functions.js";
import type { ExecutionPort } from "../execution-port.js";
import type { ResultSink } from "../result-sink.js";
import type { StatementRun } from "../statement-run.js";
import { NO_INPUTS, type Primitive } from "./primitive.js";

/** Sizes of the types herd's functions answer with (bool, int8, int4, void, regclass); text and others vary. */
const TYPE_SIZES = new Map([
  [16, 1],
  [20, 8],
  [23, 4],
  [2278, 4],
  [2205, 4],
]);

/** `SELECT create_distributed_table(…)` and herd's other functions, answered as PostgreSQL would. */
export class HerdFunction implements Primitive {
  readonly kind = "function";

  constructor(readonly call: FunctionCall) {}

  async execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void> {
    const answer = await callHerdFunction(this.call, run, port);
    if (run.describe) {
      sink.fields(
        answer.columns.map((column) => ({
          name: column.name,
          tableOid: 0,
          columnNumber: 0,
          typeOid: column.typeOid,
          typeSize: TYPE_SIZES.get(column.typeOid) ?? -1,
          typeModifier: -1,
          format: 0,
        })),
      );
    }
    for (const row of answer.rows) sink.row(row);
    sink.complete(`SELECT ${answer.rows.length}`);
  }

  describe(): string {
    return "Function SelectStmt";
  }

  inputs(): readonly Primitive[] {
    return NO_INPUTS;
  }
}
