import { type DdlChange, runDistributedDdl } from "../../operations/distributed-ddl.js";
import type { ExecutionPort } from "../execution-port.js";
import type { ResultSink } from "../result-sink.js";
import type { StatementRun } from "../statement-run.js";
import { NO_INPUTS, type Primitive } from "./primitive.js";

/** DDL on distributed and reference tables: the shell and every placement, all or nothing. */
export class Ddl implements Primitive {
  readonly kind = "ddl";

  constructor(readonly change: DdlChange) {}

  async execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void> {
    const tag = await runDistributedDdl(this.change, run, port);
    if (run.describe && run.bind) sink.noData();
    sink.complete(tag);
  }

  describe(): string {
    return `DDL ${this.change.action} on ${this.change.tables.map((table) => table.name).join(", ")}`;
  }

  inputs(): readonly Primitive[] {
    return NO_INPUTS;
  }
}
