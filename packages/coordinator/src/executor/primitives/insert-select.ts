import { type AnyNode, deparse, hasParameterOutsideSelect } from "../../parser/ast.js";
import type { FieldDescription, NoticeFields } from "../../protocol/backend-messages.js";
import { BackendMessage } from "../../protocol/message-codes.js";
import { MessageFramer } from "../../protocol/message-framer.js";
import type { ExecutionPort } from "../execution-port.js";
import { valuesListOf } from "../intermediate-result.js";
import type { ResultSink } from "../result-sink.js";
import { RowSpool } from "../row-spool.js";
import { describeStatement } from "../statement-description.js";
import type { StatementRun } from "../statement-run.js";
import type { DescribeContext, Primitive } from "./primitive.js";
import { columnTypeNames, statementParameterTypes } from "./subplans.js";

/** The SELECT of an INSERT … SELECT as a statement of its own, its text and its plan. */
export interface InsertSource {
  readonly statement: AnyNode;
  readonly sql: string;
  readonly plan: Primitive;
}

/**
 * INSERT … SELECT that cannot run on the workers whole (source and target not colocated, a
 * target on the coordinator, a SELECT herd merges): the SELECT runs first, to the end (so the
 * INSERT never reads its own rows), its rows spooled in batches of bounded size (RowSpool: on the
 * coordinator's disk past the first); then each batch is inserted as INSERT … VALUES, planned like
 * one (routed by shard, defaults evaluated once, ON CONFLICT and RETURNING as written). All
 * batches are one transaction: the client's block, or one of the statement's own that commits
 * (in two phases when it reached several workers) after the last batch and rolls back when any
 * fails, so the rows go in exactly once or not at all.
 */
export class InsertSelect implements Primitive {
  readonly kind = "insert-select";

  constructor(
    readonly statement: AnyNode,
    readonly source: InsertSource,
    private readonly plan: (statement: AnyNode) => Primitive,
  ) {}

  async execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void> {
    const parameterTypes = await statementParameterTypes(port.backend, run);
    const spool = new RowSpool();
    try {
      const started = performance.now();
      const { source } = this;
      const textRows = run.bind && { ...run.bind, resultFormats: [] };
      await source.plan.execute(
        port,
        { ...run, sql: source.sql, statement: source.statement, parameterTypes, bind: textRows, describe: true },
        spool,
      );
      spool.throwIfFailed();
      for (const notice of spool.notices) sink.notice(notice);
      run.stats?.record(this, { timeMs: performance.now() - started, rows: spool.count, bytes: spool.bytes });
      if (spool.count === 0) {
        await answerNothingWritten(port, run, parameterTypes, sink, "INSERT 0 0");
        return;
      }
      const typeNames = await columnTypeNames(port.backend, spool.columns);
      const answers = new BatchAnswers(sink);
      // the rows are literals now: the client's parameters count only where the INSERT itself
      // uses them (ON CONFLICT … SET, RETURNING); without such a use a batch binds none, so it is
      // routed as the literals it holds (with them, a batch over several shards is evaluated on
      // the coordinator first, row by row, as a multi-row INSERT with parameters must be)
      const keepsParameters = hasParameterOutsideSelect(this.statement.InsertStmt as AnyNode);
      const batchBind = keepsParameters ? run.bind : run.bind && { ...run.bind, parameterFormats: [], parameters: [] };
      const batchTypes = keepsParameters ? parameterTypes : [];
      await inOneTransaction(port, async () => {
        for await (const batch of spool.batches()) {
          const tree = structuredClone(this.statement);
          (tree.InsertStmt as AnyNode).selectStmt = valuesListOf(batch, typeNames);
          const describe = run.describe && !answers.described;
          await this.plan(tree).execute(
            port,
            { ...run, sql: deparse(tree), statement: tree, parameterTypes: batchTypes, bind: batchBind, describe },
            answers,
          );
          answers.described ||= run.describe;
        }
      });
      sink.complete(`INSERT 0 ${answers.count}`);
    } finally {
      await spool.dispose();
    }
  }

  describe(context: DescribeContext): string {
    const line = "Insert select (the SELECT runs first, its rows are inserted in batches)";
    const figures = context.stats?.of(this);
    if (!figures) return line;
    return `${line} (actual time=${figures.timeMs.toFixed(3)} ms rows=${figures.rows ?? 0} bytes=${figures.bytes ?? 0})`;
  }

  runOf(input: Primitive, run: StatementRun): StatementRun {
    return input === this.source.plan ? { ...run, sql: this.source.sql, statement: this.source.statement } : run;
  }

  inputs(): readonly Primitive[] {
    return [this.source.plan];
  }
}

/**
 * Runs `work` in the client's transaction block, or in a block of the statement's own on the
 * coordinator, whose distributed transaction (port.transaction, as for a client's block) commits
 * when `work` returns: the workers' parts prepared and the decision recorded with the
 * coordinator's COMMIT.
 */
async function inOneTransaction(port: ExecutionPort, work: () => Promise<void>): Promise<void> {
  if (port.inTransactionBlock()) {
    await work();
    return;
  }
  const backend = port.backend;
  await backend.query("BEGIN");
  try {
    await work();
  } catch (error) {
    if (port.transaction.active) await port.transaction.rollback();
    if (backend.status !== "I") await backend.query("ROLLBACK").catch(() => {});
    throw error;
  }
  if (port.transaction.active) await port.transaction.commit();
  else await backend.query("COMMIT");
}

/**
 * A write with no source row runs nowhere: its answer is the statement's description (RETURNING:
 * PostgreSQL describes the columns even when no row comes) and `tag` (`INSERT 0 0`, `MERGE 0`).
 */
export async function answerNothingWritten(
  port: ExecutionPort,
  run: StatementRun,
  parameterTypes: readonly number[],
  sink: ResultSink,
  tag: string,
): Promise<void> {
  if (run.describe) {
    const { fields } = await describeStatement(port.backend, run.sql, parameterTypes);
    if (fields.length > 0) sink.fields(fields);
    else if (run.bind) sink.noData();
  }
  sink.complete(tag);
}

/**
 * The answers of the batches as one statement's: rows (RETURNING) and notices pass on, the
 * description only once, and the batches' command tags add up to the statement's.
 */
class BatchAnswers implements ResultSink {
  count = 0;
  described = false;

  constructor(private readonly sink: ResultSink) {}

  raw(message: Buffer): boolean | undefined {
    const frames = new MessageFramer(1 << 30).push(message);
    const kept = frames.filter((frame) => {
      if (frame.type === BackendMessage.commandComplete) {
        this.complete(frame.body.toString("utf8", 0, frame.body.length - 1));
        return false;
      }
      const description = frame.type === BackendMessage.rowDescription || frame.type === BackendMessage.noData;
      return !(description && this.described);
    });
    if (kept.length === frames.length) return this.sink.raw(message);
    if (kept.length === 0) return true;
    return this.sink.raw(Buffer.concat(kept.map((frame) => frame.raw)));
  }

  onceDrained(resume: () => void): void {
    if (this.sink.onceDrained) this.sink.onceDrained(resume);
    else resume();
  }

  fields(fields: readonly FieldDescription[]): void {
    if (!this.described) this.sink.fields(fields);
  }

  row(values: readonly (Buffer | string | null)[]): void {
    this.sink.row(values);
  }

  noData(): void {
    if (!this.described) this.sink.noData();
  }

  notice(fields: NoticeFields): void {
    this.sink.notice(fields);
  }

  complete(tag: string): void {
    this.count += Number(tag.split(" ").at(-1)) || 0;
  }

  copyIn(columns: number): void {
    this.sink.copyIn(columns);
  }

  flush(): void {
    this.sink.flush();
  }
}
