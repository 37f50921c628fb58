import type { ResultSink } from "../executor/result-sink.js";
import {
  encodeCommandComplete,
  encodeCopyResponse,
  encodeDataRow,
  encodeEmpty,
  encodeNotice,
  encodeRowDescription,
  type FieldDescription,
  type NoticeFields,
} from "../protocol/backend-messages.js";
import type { ClientOutput } from "../protocol/client-output.js";
import { BackendMessage } from "../protocol/message-codes.js";

/** A statement's answer as protocol messages for the client, gathered in the session's output. */
export class ClientSink implements ResultSink {
  constructor(private readonly output: ClientOutput) {}

  raw(message: Buffer): boolean {
    return this.output.raw(message);
  }

  onceDrained(resume: () => void): void {
    this.output.onceDrained(resume);
  }

  fields(fields: readonly FieldDescription[]): void {
    encodeRowDescription(this.output.writer, fields);
  }

  row(values: readonly (Buffer | string | null)[]): void {
    encodeDataRow(this.output.writer, values);
  }

  noData(): void {
    encodeEmpty(this.output.writer, BackendMessage.noData);
  }

  notice(fields: NoticeFields): void {
    encodeNotice(this.output.writer, BackendMessage.noticeResponse, fields);
  }

  complete(tag: string): void {
    encodeCommandComplete(this.output.writer, tag);
  }

  copyIn(columns: number): void {
    encodeCopyResponse(this.output.writer, BackendMessage.copyInResponse, 0, columns);
    this.output.flush();
  }

  flush(): void {
    this.output.flush();
  }
}

/**
 * The answer to a simple Query that herd ran with its literals as parameters (through Bind):
 * the same messages, less NoData, which the extended protocol sends for a statement without
 * rows and a simple Query's answer never holds.
 */
export class SimpleQuerySink extends ClientSink {
  override raw(message: Buffer): boolean {
    return super.raw(withoutNoData(message));
  }

  override noData(): void {}
}

/** `messages` (whole protocol messages) without their NoData messages; the same buffer when there is none. */
function withoutNoData(messages: Buffer): Buffer {
  let kept: Buffer[] | undefined;
  let start = 0;
  for (let offset = 0; offset + 5 <= messages.length; ) {
    const end = offset + 1 + messages.readInt32BE(offset + 1);
    if (messages[offset] === BackendMessage.noData) {
      kept ??= [];
      kept.push(messages.subarray(start, offset));
      start = end;
    }
    offset = end;
  }
  if (!kept) return messages;
  kept.push(messages.subarray(start));
  return Buffer.concat(kept);
}
