import type { FieldDescription, NoticeFields } from "../protocol/backend-messages.js";

/** Where rows go: the client, or a merge on the coordinator's PostgreSQL. */
export interface RowSink {
  /**
   * Whole messages as a server sent them (a DataRow, RowDescription, NoData, …, or a run of
   * them), passed on unchanged: the raw-bytes fast path. False: the receiver is full, wait for
   * `onceDrained`.
   */
  raw(message: Buffer): boolean | undefined;
  /** Calls `resume` once the receiver has taken what it was given (after `raw` said false). */
  onceDrained?(resume: () => void): void;
}

/**
 * Where a statement's answer goes (after Vitess's streaming callback): primitives say what they
 * answer; the sink knows how it is written (the session's sink encodes protocol messages for the
 * client, EXPLAIN ANALYZE's only counts rows).
 */
export interface ResultSink extends RowSink {
  /** A row description of herd's own (result columns of a statement herd answers itself). */
  fields(fields: readonly FieldDescription[]): void;
  /** A row of herd's own, values as text (null for NULL). */
  row(values: readonly (Buffer | string | null)[]): void;
  /** The statement returns no rows (NoData, the extended protocol's answer to Describe). */
  noData(): void;
  /** A notice or warning for the client. */
  notice(fields: NoticeFields): void;
  /** The statement is done (CommandComplete). */
  complete(tag: string): void;
  /** COPY FROM STDIN may start: the client is told (and the answer sent at once) to send its rows. */
  copyIn(columns: number): void;
  /** Sends what was gathered now (the answer so far must reach the client before more comes). */
  flush(): void;
}
