import { HerdError, SqlState } from "@herd/shared";
import type { Exchange } from "../connection/pg-connection.js";
import { ServerError } from "../connection/server-error.js";
import type { AnyNode } from "../parser/ast.js";
import { decodeNotice, decodeRowDescription, type FieldDescription } from "../protocol/backend-messages.js";
import { BufferWriter } from "../protocol/buffer-writer.js";
import {
  type BindMessage,
  encodeBind,
  encodeCopyData,
  encodeCopyDone,
  encodeCopyFail,
  encodeExecute,
  encodeParse,
  encodeSync,
  encodeTarget,
} from "../protocol/frontend-messages.js";
import { BackendMessage, FrontendMessage } from "../protocol/message-codes.js";
import type { Frame } from "../protocol/message-framer.js";
import type { ExecutionPort } from "./execution-port.js";
import type { ResultSink, RowSink } from "./result-sink.js";

/** Binary COPY's signature, flags and header extension length. */
const COPY_HEADER = Buffer.from([...Buffer.from("PGCOPY\n\xff\r\n\0", "latin1"), ...[0, 0, 0, 0], ...[0, 0, 0, 0]]);
const COPY_TRAILER = Buffer.from([0xff, 0xff]);
const FLUSH_BYTES = 256 * 1024;

/** The temporary table of the session's PostgreSQL that shard rows are merged in. */
export const MERGE_TABLE = "herd_merge";

/** The queries of a merge (merge-planner.ts builds them). */
export interface MergeQueries {
  /** The worker query (names the distributed tables; renamed per shard). */
  readonly worker: AnyNode;
  /** Names of the merge table's columns, in worker-query order. */
  readonly columns: readonly string[];
  /** The combine query over `pg_temp.herd_merge`. */
  readonly combine: string;
  /** How it was split, for EXPLAIN. */
  readonly strategy: string;
}

export interface MergeInput {
  readonly queries: MergeQueries;
  /** The worker query on the shell tables (for the merge table's definition). */
  readonly workerSql: string;
  /** Parameter types as PostgreSQL resolved them. */
  readonly parameterTypes: readonly number[];
  readonly bind: BindMessage | undefined;
  /** The statement's own result columns (names, types, source tables), as PostgreSQL describes it. */
  readonly fields: readonly FieldDescription[];
  /** Send the RowDescription first. */
  readonly describe: boolean;
  /** COPY … TO STDOUT: the client's COPY around the combine query; its CopyData is relayed. */
  readonly copyOf?: (query: string) => string;
}

/**
 * Merges shard rows on the session's own PostgreSQL, in one request that streams:
 *
 *   CREATE TEMP TABLE pg_temp.herd_merge (c1, c2, …) ON COMMIT DROP AS <worker query> WITH NO DATA
 *   COPY pg_temp.herd_merge FROM STDIN (FORMAT binary)   ← the workers' rows, as they arrive
 *   <combine query>                                       → relayed to the client
 *   DROP TABLE pg_temp.herd_merge
 *   Sync
 *
 * Workers answer in binary, and a binary DataRow's body is exactly a binary COPY tuple, so a
 * row becomes CopyData by changing its message type byte, nothing else. Outside a transaction
 * block the whole request is one implicit transaction; inside one, the table is dropped at the
 * end (and an error aborts the block, as the statement's error would anyway).
 */
export class BackendMerge implements RowSink {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private readonly answer: MergeAnswer;
  private readonly done: Promise<unknown>;
  private paused = false;
  rows = 0;

  constructor(
    private readonly port: ExecutionPort,
    sink: ResultSink,
    private readonly input: MergeInput,
  ) {
    const backend = port.backend;
    this.answer = new MergeAnswer(port, sink, input);
    const w = new BufferWriter(1024);
    const { queries, bind } = input;
    const columns = queries.columns.map((c) => `"${c}"`).join(", ");
    encodeParse(
      w,
      "",
      `CREATE TEMP TABLE pg_temp.${MERGE_TABLE} (${columns}) ON COMMIT DROP AS ${input.workerSql} WITH NO DATA`,
      input.parameterTypes,
    );
    encodeBind(w, {
      portal: "",
      statement: "",
      parameterFormats: bind?.parameterFormats ?? [],
      parameters: bind?.parameters ?? [],
      resultFormats: [],
    });
    encodeExecute(w);
    encodeParse(w, "", `COPY pg_temp.${MERGE_TABLE} FROM STDIN (FORMAT binary)`);
    encodeBind(w, { portal: "", statement: "", parameterFormats: [], parameters: [], resultFormats: [] });
    encodeExecute(w);
    encodeCopyData(w, COPY_HEADER);
    this.done = backend.exchange(w.flush(), this.answer);
    // awaited in end(); the connection may fail before (the client left while the shards ran)
    this.done.catch(() => {});
    backend.onDrain(this.resumeSources);
  }

  /** A worker's DataRow (binary): becomes a CopyData message in place. */
  raw(message: Buffer): boolean {
    message[0] = FrontendMessage.copyData;
    this.pending.push(message);
    this.pendingBytes += message.length;
    this.rows += 1;
    if (this.pendingBytes >= FLUSH_BYTES) this.flush();
    return true;
  }

  /** Every worker row is in: combine, relay, drop. Throws PostgreSQL's error, if any. */
  async finish(): Promise<void> {
    this.flush();
    const w = new BufferWriter(512);
    const { queries, bind } = this.input;
    encodeCopyData(w, COPY_TRAILER);
    encodeCopyDone(w);
    const copyOf = this.input.copyOf;
    if (copyOf) {
      // a COPY takes no parameters (a COPY statement has none to give)
      encodeParse(w, "", copyOf(queries.combine));
      encodeBind(w, { portal: "", statement: "", parameterFormats: [], parameters: [], resultFormats: [] });
    } else {
      encodeParse(w, "", queries.combine, this.input.parameterTypes);
      encodeBind(w, {
        portal: "",
        statement: "",
        parameterFormats: bind?.parameterFormats ?? [],
        parameters: bind?.parameters ?? [],
        resultFormats: bind?.resultFormats ?? [],
      });
      encodeTarget(w, FrontendMessage.describe, "P", "");
    }
    encodeExecute(w);
    encodeParse(w, "", `DROP TABLE pg_temp.${MERGE_TABLE}`);
    encodeBind(w, { portal: "", statement: "", parameterFormats: [], parameters: [], resultFormats: [] });
    encodeExecute(w);
    encodeSync(w);
    await this.end(w.flush());
    const error = this.answer.error;
    if (error?.sqlState === SqlState.readOnlySqlTransaction) {
      throw new HerdError("herd cannot merge the shards' rows in a read-only transaction", {
        sqlState: SqlState.readOnlySqlTransaction,
        detail: "The merge step needs a temporary table in the session.",
        hint: "Run the query outside the read-only transaction, or filter on the distribution column so it reaches one shard.",
      });
    }
    if (error?.sqlState === SqlState.invalidTableDefinition && /pseudo-type/.test(error.message)) {
      throw new HerdError("herd cannot merge values of an anonymous record type across shards yet", {
        sqlState: SqlState.featureNotSupported,
        detail: error.message,
        hint: "Select the record's fields as separate columns, or filter on the distribution column.",
      });
    }
    if (error) throw error;
    if (this.answer.typeMismatch) throw this.answer.typeMismatch;
  }

  /** The shards failed: the merge is abandoned (the request ends with PostgreSQL's error, ignored). */
  async abandon(reason: string): Promise<void> {
    this.pending = [];
    const w = new BufferWriter(64);
    encodeCopyFail(w, reason);
    encodeSync(w);
    await this.end(w.flush()).catch(() => undefined);
  }

  /** The combine query's tag (`SELECT 3`). */
  get tag(): string {
    return this.answer.tag;
  }

  private async end(request: Buffer): Promise<void> {
    this.port.backend.write(request);
    try {
      await this.done;
    } finally {
      this.port.backend.offDrain(this.resumeSources);
      this.resumeSources();
    }
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    const bytes = this.pending.length === 1 ? (this.pending[0] as Buffer) : Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    // PostgreSQL slower than the shards: hold the workers back rather than buffering their rows
    if (!this.port.backend.write(bytes) && !this.paused) {
      this.paused = true;
      for (const connection of this.port.busyWorkers) connection.pause();
    }
  }

  private readonly resumeSources = (): void => {
    if (!this.paused) return;
    this.paused = false;
    for (const connection of this.port.busyWorkers) connection.resume();
  };
}

/**
 * The answers to the merge request: only the combine query's rows reach the client, under the
 * statement's own RowDescription (the merge table's columns would name a temp table as their
 * source); a combine column of another type than the statement's is herd's bug, reported rather
 * than relayed. The combine query's tag is kept for the caller's CommandComplete.
 */
class MergeAnswer implements Exchange {
  error: ServerError | undefined;
  typeMismatch: HerdError | undefined;
  tag = "";
  private completes = 0;

  constructor(
    private readonly port: ExecutionPort,
    private readonly sink: ResultSink,
    private readonly input: MergeInput,
  ) {}

  message(frame: Frame): void {
    switch (frame.type) {
      case BackendMessage.rowDescription:
        this.checkTypes(decodeRowDescription(frame.body));
        if (this.input.describe && !this.typeMismatch) {
          const formats = this.input.bind?.resultFormats ?? [];
          this.sink.fields(
            this.input.fields.map((field, i) => ({
              ...field,
              format: formats.length === 1 ? (formats[0] as number) : (formats[i] ?? 0),
            })),
          );
        }
        break;
      case BackendMessage.dataRow:
        if (!this.typeMismatch) this.relay(frame);
        break;
      case BackendMessage.copyOutResponse: // the combine query's COPY (copyOf)
      case BackendMessage.copyData:
      case BackendMessage.copyDone:
        if (this.input.copyOf) this.relay(frame);
        break;
      case BackendMessage.commandComplete:
        this.completes += 1;
        if (this.completes === 3) this.tag = frame.body.toString("utf8", 0, frame.body.length - 1);
        break;
      case BackendMessage.errorResponse:
        this.error ??= new ServerError(decodeNotice(frame.body));
        break;
      case BackendMessage.noticeResponse:
        this.relay(frame);
        break;
    }
  }

  /** A slow client holds the coordinator's PostgreSQL back instead of filling memory. */
  private relay(frame: Frame): void {
    if (this.sink.raw(frame.raw) === false && this.sink.onceDrained) {
      const backend = this.port.backend;
      backend.pause();
      this.sink.onceDrained(() => backend.resume());
    }
  }

  private checkTypes(fields: readonly FieldDescription[]): void {
    const expected = this.input.fields;
    const wrong = fields.findIndex((field, i) => field.typeOid !== expected[i]?.typeOid);
    if (wrong < 0 && fields.length === expected.length) return;
    this.typeMismatch = new HerdError("herd merged a result column with a type PostgreSQL would not give it", {
      sqlState: SqlState.internalError,
      detail: `column ${wrong + 1} ("${expected[wrong]?.name}"): merged as type ${fields[wrong]?.typeOid}, expected ${expected[wrong]?.typeOid}`,
    });
  }
}
