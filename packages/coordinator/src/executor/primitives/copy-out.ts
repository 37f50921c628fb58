import { BackendMessage } from "../../protocol/message-codes.js";
import type { ExecutionPort } from "../execution-port.js";
import { runShardTasks } from "../fan-out.js";
import type { ResultSink, RowSink } from "../result-sink.js";
import type { ShardStatements } from "../shard-statements.js";
import type { StatementRun } from "../statement-run.js";
import type { MergeRoute } from "./merge-route.js";
import { type DescribeContext, NO_INPUTS, type Primitive } from "./primitive.js";
import type { Route } from "./route.js";

/** What a COPY … TO STDOUT over distributed tables runs (copy-planner.ts builds it). */
export interface CopyOutSpec {
  /** The query's route: which shard groups it reaches, on which placements. */
  readonly route: Route;
  /** The query's merge, when several shard groups' rows must be merged (ORDER BY, aggregates…). */
  readonly merge: MergeRoute | undefined;
  /** `COPY (<the query on a shard>) TO STDOUT (<the client's options>)`, HEADER left out. */
  readonly copy: ShardStatements;
  /** The same with the client's HEADER, for the first shard group; undefined without HEADER. */
  readonly header: ShardStatements | undefined;
  /** The client's COPY around another query (the merge's combine query). */
  readonly copyOf: (query: string) => string;
  readonly binary: boolean;
}

/**
 * COPY … TO STDOUT of a distributed table or of a query over distributed tables. PostgreSQL
 * formats every byte: each shard group runs the COPY of its part of the query, one after the
 * other, and its CopyData messages reach the client unchanged (a slow client holds the worker
 * back), under the first CopyOutResponse, with one CopyDone and `COPY n` (n summed) at the end.
 * HEADER is written by the first shard group only; in binary format every stream but the first
 * loses its header and every one but the last its trailer, so the client reads one stream. Rows
 * that must be merged (ORDER BY, aggregates, DISTINCT, LIMIT over shards) are merged on the
 * session's PostgreSQL, whose COPY of the combine query answers.
 */
export class CopyOut implements Primitive {
  readonly kind = "copy-out";

  constructor(readonly spec: CopyOutSpec) {}

  async execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void> {
    const { route, merge, copy, header, binary } = this.spec;
    const indexes = route.shardIndexes(run.bind);
    if (merge && indexes.length > 1) {
      // the merge describes and splits the query, not the COPY around it
      const statements = merge.route.spec.statements;
      const query = { ...run, sql: statements.sqlOnShells, statement: statements.tree, copyOf: this.spec.copyOf };
      return merge.execute(port, query, sink);
    }
    const shared = { responded: false };
    let rows = 0;
    for (const [i, index] of indexes.entries()) {
      const task = route.task(index, false, port);
      const statements = i === 0 && header ? header : copy;
      const output = new ShardCopyStream(sink, shared, {
        binary,
        first: i === 0,
        last: i === indexes.length - 1,
      });
      const result = await runShardTasks(
        [{ ...task, sql: statements.sqlFor(index) }],
        { ...run, describe: false },
        port,
        sink,
        {
          write: false,
          transaction: port.inTransactionBlock() ? port.transaction : undefined,
          rows: output,
        },
      );
      output.end();
      rows += result.count;
    }
    sink.raw(COPY_DONE);
    sink.complete(`COPY ${rows}`);
  }

  describe(context: DescribeContext): string {
    const indexes = this.spec.route.shardIndexes(context.bind);
    const shards = indexes.map((index) => this.spec.route.spec.anchors[0]?.table.shards[index]?.id ?? index);
    return this.spec.merge && indexes.length > 1
      ? "Copy out (merged on coordinator)"
      : `Copy out shards=[${shards.join(",")}] sql=${this.spec.copy.sqlFor(indexes[0] ?? 0)}`;
  }

  inputs(context: DescribeContext): readonly Primitive[] {
    const merged = this.spec.merge && this.spec.route.shardIndexes(context.bind).length > 1;
    return merged && this.spec.merge ? [this.spec.merge] : NO_INPUTS;
  }
}

const COPY_DONE = Buffer.from([BackendMessage.copyDone, 0, 0, 0, 4]);
/** Binary COPY's signature (11 bytes), flags and header extension length: what PostgreSQL writes. */
const BINARY_HEADER_BYTES = 19;
const BINARY_TRAILER_BYTES = 2;

/** One shard group's COPY answer on its way to the client. */
class ShardCopyStream implements RowSink {
  /** Binary: the latest CopyData's body, held until the next (the last one carries the trailer). */
  private held: Buffer | undefined;
  private headerSeen = false;
  readonly onceDrained?: (resume: () => void) => void;

  constructor(
    private readonly sink: ResultSink,
    private readonly shared: { responded: boolean },
    private readonly position: { readonly binary: boolean; readonly first: boolean; readonly last: boolean },
  ) {
    if (sink.onceDrained) this.onceDrained = (resume) => sink.onceDrained?.(resume);
  }

  raw(message: Buffer): boolean | undefined {
    switch (message[0]) {
      case BackendMessage.copyOutResponse:
        if (this.shared.responded) return true;
        this.shared.responded = true;
        return this.sink.raw(message);
      case BackendMessage.copyDone: // one for the whole COPY, at the end
        return true;
      case BackendMessage.copyData: {
        if (!this.position.binary) return this.sink.raw(message);
        let body = message.subarray(5);
        if (!this.headerSeen) {
          this.headerSeen = true;
          if (!this.position.first) body = body.subarray(BINARY_HEADER_BYTES);
        }
        const previous = this.held;
        this.held = body;
        return previous === undefined ? true : this.send(previous);
      }
      default:
        return this.sink.raw(message);
    }
  }

  /** The shard's COPY is done: what was held goes, without the trailer unless this is the last stream. */
  end(): void {
    const held = this.held;
    this.held = undefined;
    if (held === undefined) return;
    const body = this.position.last ? held : held.subarray(0, held.length - BINARY_TRAILER_BYTES);
    if (body.length > 0) this.send(body);
  }

  private send(body: Buffer): boolean | undefined {
    const message = Buffer.allocUnsafe(5 + body.length);
    message[0] = BackendMessage.copyData;
    message.writeInt32BE(4 + body.length, 1);
    body.copy(message, 5);
    return this.sink.raw(message);
  }
}
