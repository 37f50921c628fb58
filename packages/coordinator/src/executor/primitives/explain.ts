import type { AnyNode } from "../../parser/ast.js";
import { BackendMessage } from "../../protocol/message-codes.js";
import type { ExecutionPort } from "../execution-port.js";
import { ExecutionStats } from "../execution-stats.js";
import type { ResultSink } from "../result-sink.js";
import type { StatementRun } from "../statement-run.js";
import { describeTree, type Primitive, type PrimitiveKind, prepareTree } from "./primitive.js";

/** The steps EXPLAIN ANALYZE runs (they read or write rows); of others it shows the plan only. */
const RUNS_UNDER_ANALYZE = new Set<PrimitiveKind>(["route", "merge", "insert", "subplans", "insert-select"]);

/**
 * EXPLAIN of a statement on distributed tables: the distributed plan, each step's describe()
 * with its inputs indented under it. EXPLAIN ANALYZE runs the statement (its rows are counted,
 * not sent) and shows the figures each step recorded, the rows and the total time.
 */
export class Explain implements Primitive {
  readonly kind = "explain";

  constructor(
    readonly inner: Primitive,
    /** The explained statement: its tree and its text (what a merge asks PostgreSQL to describe). */
    readonly statement: AnyNode,
    readonly sql: string,
    readonly analyze: boolean,
  ) {}

  async execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void> {
    const inner: StatementRun = { ...run, statement: this.statement, sql: this.sql };
    let lines: string[];
    if (this.analyze && RUNS_UNDER_ANALYZE.has(this.inner.kind)) {
      const counter = new RowCounter();
      const stats = new ExecutionStats();
      const started = performance.now();
      await this.inner.execute(port, { ...inner, describe: false, stats }, counter);
      const total = performance.now() - started;
      lines = [
        ...describeTree(this.inner, { bind: run.bind, parameterTypes: run.parameterTypes, stats }),
        `Rows: ${counter.rows}`,
        `Execution Time: ${total.toFixed(3)} ms`,
      ];
    } else {
      await prepareTree(this.inner, port, inner);
      lines = describeTree(this.inner, { bind: run.bind, parameterTypes: run.parameterTypes });
    }
    if (run.describe) {
      sink.fields([
        { name: "QUERY PLAN", tableOid: 0, columnNumber: 0, typeOid: 25, typeSize: -1, typeModifier: -1, format: 0 },
      ]);
    }
    for (const line of lines) sink.row([line]);
    sink.complete("EXPLAIN");
  }

  describe(): string {
    return `Explain${this.analyze ? " Analyze" : ""}`;
  }

  inputs(): readonly Primitive[] {
    return [this.inner];
  }
}

/** Stands in for the client while EXPLAIN ANALYZE runs a statement: counts its rows, sends nothing. */
class RowCounter implements ResultSink {
  rows = 0;

  raw(message: Buffer): boolean {
    // a run of whole messages: count the DataRows
    for (let at = 0; at + 5 <= message.length; at += 1 + message.readUInt32BE(at + 1)) {
      if (message[at] === BackendMessage.dataRow) this.rows += 1;
    }
    return true;
  }

  row(): void {
    this.rows += 1;
  }

  fields(): void {}
  noData(): void {}
  notice(): void {}
  complete(): void {}
  copyIn(): void {}
  flush(): void {}
}
