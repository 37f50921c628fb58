import type { ResultSink } from "../executor/result-sink.js";
import {
  decodeCommandComplete,
  decodeDataRow,
  decodeNotice,
  decodeRowDescription,
  type FieldDescription,
  type NoticeFields,
} from "../protocol/backend-messages.js";
import { BackendMessage } from "../protocol/message-codes.js";
import { MessageFramer } from "../protocol/message-framer.js";

/**
 * A ResultSink that keeps what a plan answered, decoded (rows as text), whether the plan said it
 * itself (fields, row, complete) or passed a server's messages on raw.
 */
export class CollectingSink implements ResultSink {
  /** The row description, whoever sent it. */
  description: FieldDescription[] | undefined;
  readonly rows: (string | null)[][] = [];
  readonly notices: NoticeFields[] = [];
  readonly tags: string[] = [];
  noDataSent = false;
  copyInColumns: number | undefined;

  raw(message: Buffer): boolean {
    for (const frame of new MessageFramer(1 << 30).push(message)) {
      if (frame.type === BackendMessage.dataRow)
        this.rows.push(decodeDataRow(frame.body).map((value) => (value === null ? null : value.toString("utf8"))));
      else if (frame.type === BackendMessage.rowDescription) this.description = decodeRowDescription(frame.body);
      else if (frame.type === BackendMessage.noData) this.noDataSent = true;
      else if (frame.type === BackendMessage.noticeResponse) this.notices.push(decodeNotice(frame.body));
      else if (frame.type === BackendMessage.commandComplete) this.tags.push(decodeCommandComplete(frame.body));
    }
    return true;
  }

  onceDrained(resume: () => void): void {
    resume();
  }

  fields(fields: readonly FieldDescription[]): void {
    this.description = [...fields];
  }

  row(values: readonly (Buffer | string | null)[]): void {
    this.rows.push(values.map((value) => (value === null ? null : value.toString())));
  }

  noData(): void {
    this.noDataSent = true;
  }

  notice(fields: NoticeFields): void {
    this.notices.push(fields);
  }

  complete(tag: string): void {
    this.tags.push(tag);
  }

  copyIn(columns: number): void {
    this.copyInColumns = columns;
  }

  flush(): void {}
}
