import type { Exchange } from "../connection/pg-connection.js";
import { ServerError } from "../connection/server-error.js";
import type { WorkerConnection } from "../connection/worker-connection.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import { decodeCommandComplete, decodeNotice, type NoticeFields } from "../protocol/backend-messages.js";
import type { BufferWriter } from "../protocol/buffer-writer.js";
import {
  type BindMessage,
  encodeBind,
  encodeExecute,
  encodeParse,
  encodeSync,
  encodeTarget,
} from "../protocol/frontend-messages.js";
import { BackendMessage, FrontendMessage } from "../protocol/message-codes.js";
import type { Frame } from "../protocol/message-framer.js";
import type { RowSink } from "./result-sink.js";

const MAX_PREPARED_PER_CONNECTION = 1000;

/** Names of worker-side prepared statements: never reused in this process, so never taken twice on a connection. */
let nextStatementName = 0;

/** Keys of worker-side statements, by the client statement's parameter types (made once per text). */
const keysByTypes = new WeakMap<readonly number[], Map<string, string>>();

/** The same text with other parameter types is another statement on the worker. */
function preparedKey(sql: string, parameterTypes: readonly number[]): string {
  let keys = keysByTypes.get(parameterTypes);
  if (!keys) {
    keys = new Map();
    keysByTypes.set(parameterTypes, keys);
  }
  let key = keys.get(sql);
  if (key === undefined) {
    key = `${parameterTypes.join(",")}:${sql}`;
    keys.set(sql, key);
  }
  return key;
}

/**
 * Encodes one statement for a worker: Parse (skipped when this connection has it prepared
 * already), Bind with the client's parameters and formats, Describe when the client wants the
 * row description, Execute, Sync. Statements with parameters are prepared under a name per
 * connection, so a prepared client statement is parsed and planned once per worker connection.
 */
export function encodeShardStatement(
  w: BufferWriter,
  connection: WorkerConnection,
  sql: string,
  parameterTypes: readonly number[],
  bind: BindMessage | undefined,
  describe: boolean,
): { parsedAs: string | undefined } {
  const key = bind ? preparedKey(sql, parameterTypes) : sql;
  let name = connection.prepared.get(key);
  let parsedAs: string | undefined;
  if (name === undefined) {
    const reusable = (bind?.parameters.length ?? 0) > 0 && connection.prepared.size < MAX_PREPARED_PER_CONNECTION;
    nextStatementName += 1;
    name = reusable ? `herd_${nextStatementName}` : "";
    encodeParse(w, name, sql, bind ? parameterTypes : []);
    if (reusable) {
      connection.prepared.set(key, name);
      parsedAs = key;
    }
  }
  encodeBind(w, {
    portal: "",
    statement: name,
    parameterFormats: bind?.parameterFormats ?? [],
    parameters: bind?.parameters ?? [],
    resultFormats: bind?.resultFormats ?? [],
  });
  if (describe) encodeTarget(w, FrontendMessage.describe, "P", "");
  encodeExecute(w);
  encodeSync(w);
  return { parsedAs };
}

/**
 * Takes a worker's answers to one shard statement: relays the row description (when asked and
 * not relayed yet) and the rows to the client, or only counts them (a replica's copy of a
 * write); keeps the command tag and the first error for the caller.
 */
export class ShardResult implements Exchange {
  tag = "";
  error: ServerError | undefined;
  notices: NoticeFields[] = [];
  /** Rows passed on to the client. */
  rowsRelayed = 0;
  /** The worker answered ParseComplete: a named statement exists there now, even if Bind failed. */
  parsed = false;

  constructor(
    private readonly output: RowSink | undefined,
    private readonly description: { sent: boolean; wanted: boolean; simple: boolean },
    private readonly catalog: CatalogSnapshot,
  ) {}

  message(frame: Frame): void {
    switch (frame.type) {
      case BackendMessage.rowDescription:
        if (this.output && this.description.wanted && !this.description.sent) {
          this.output.raw(frame.raw);
          this.description.sent = true;
        }
        break;
      case BackendMessage.noData: // not part of a simple Query's answer
        if (this.output && this.description.wanted && !this.description.sent && !this.description.simple) {
          this.output.raw(frame.raw);
          this.description.sent = true;
        }
        break;
      case BackendMessage.dataRow:
        if (this.output) {
          this.output.raw(frame.raw);
          this.rowsRelayed += 1;
        }
        break;
      case BackendMessage.copyOutResponse: // COPY … TO STDOUT (primitives/copy-out.ts)
      case BackendMessage.copyData:
      case BackendMessage.copyDone:
        this.output?.raw(frame.raw);
        break;
      case BackendMessage.parseComplete:
        this.parsed = true;
        break;
      case BackendMessage.commandComplete:
        this.tag = decodeCommandComplete(frame.body);
        break;
      case BackendMessage.errorResponse:
        this.error ??= new ServerError(withTableNames(decodeNotice(frame.body), this.catalog));
        break;
      case BackendMessage.noticeResponse:
        this.notices.push(withTableNames(decodeNotice(frame.body), this.catalog));
        break;
    }
  }
}

/** Drops a prepared name that a failed Parse never created on the worker (one whose Bind failed stays). */
export function forgetFailedParse(
  connection: WorkerConnection,
  parsedAs: string | undefined,
  result: ShardResult,
): void {
  if (parsedAs !== undefined && !result.parsed) connection.prepared.delete(parsedAs);
}

/** Shard names in a worker's message read as the tables the client knows (`events_102008` → `events`). */
export function withTableNames(fields: NoticeFields, catalog: CatalogSnapshot): NoticeFields {
  const rename = (text: string | undefined) =>
    text?.replace(/([\p{L}_][\p{L}\p{N}_$]*)_(\d+)/gu, (whole, name: string, id: string) => {
      const table = catalog.shardTable(Number(id));
      // `events_102008` → `events`, `events_pkey_102008` → `events_pkey`
      return table !== undefined && name.startsWith(table.name) ? name : whole;
    });
  return {
    ...fields,
    message: rename(fields.message) as string,
    detail: rename(fields.detail),
    hint: rename(fields.hint),
    where: rename(fields.where),
    table: rename(fields.table),
    constraint: rename(fields.constraint),
  };
}

/** The row count in a command tag (`UPDATE 3` → 3, `INSERT 0 2` → 2). */
export function tagCount(tag: string): number {
  const count = Number(tag.slice(tag.lastIndexOf(" ") + 1));
  return Number.isFinite(count) ? count : 0;
}

/** A command tag with another row count (`SELECT 5` + 7 rows → `SELECT 7`). */
export function tagWithCount(tag: string, count: number): string {
  const parts = tag.split(" ");
  parts[parts.length - 1] = String(count);
  return parts.join(" ");
}
