import type { ExecutionPort } from "../execution-port.js";
import type { ResultSink } from "../result-sink.js";
import type { StatementRun } from "../statement-run.js";
import { Local } from "./local.js";
import { NO_INPUTS, type Primitive } from "./primitive.js";

/** The Citus settings herd acts on; any other `citus.*` is accepted and has no effect. */
export const HONORED_CITUS_SETTINGS = new Set([
  "citus.max_intermediate_result_size",
  "citus.shard_count",
  "citus.shard_replication_factor",
]);

/**
 * `SET citus.<setting>` that herd does not act on (citus.enable_schema_based_sharding,
 * citus.multi_shard_modify_mode, …): PostgreSQL keeps the value as any custom setting, and a
 * NOTICE says that it changes nothing here, instead of pretending.
 */
export class IgnoredSetting implements Primitive {
  // not "local": herd must run it to add its NOTICE (a local statement goes to PostgreSQL as is)
  readonly kind = "ignored-setting";
  private readonly local = new Local();

  constructor(readonly name: string) {}

  async execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void> {
    sink.notice({
      severity: "NOTICE",
      code: "00000",
      message: `herd does not act on ${this.name}; the setting is kept but changes nothing`,
      hint: `herd acts on ${[...HONORED_CITUS_SETTINGS].join(", ")}.`,
    });
    await this.local.execute(port, run, sink);
  }

  describe(): string {
    return `Local (${this.name} ignored)`;
  }

  inputs(): readonly Primitive[] {
    return NO_INPUTS;
  }
}
