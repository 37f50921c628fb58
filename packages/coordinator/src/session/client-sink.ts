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
