import type { PgConnection } from "../connection/pg-connection.js";
import { ServerError } from "../connection/server-error.js";
import { decodeNotice, decodeRowDescription, type FieldDescription } from "../protocol/backend-messages.js";
import { BufferWriter } from "../protocol/buffer-writer.js";
import { encodeParse, encodeSync, encodeTarget } from "../protocol/frontend-messages.js";
import { BackendMessage, FrontendMessage } from "../protocol/message-codes.js";

/** What PostgreSQL says a statement takes and returns (ParameterDescription, RowDescription). */
export interface StatementDescription {
  readonly parameterTypes: readonly number[];
  /** Result columns; empty when the statement returns none. */
  readonly fields: readonly FieldDescription[];
}

/**
 * Asks the coordinator's PostgreSQL to describe `sql` against the shell tables (which have the
 * distributed tables' columns): the parameter types it resolves and the result columns' names
 * and types. Its own error (an unknown column, a type mismatch) is the statement's error, worded
 * exactly as one PostgreSQL would word it.
 */
export async function describeStatement(
  backend: PgConnection,
  sql: string,
  parameterTypes: readonly number[],
): Promise<StatementDescription> {
  const w = new BufferWriter(256);
  encodeParse(w, "", sql, parameterTypes);
  encodeTarget(w, FrontendMessage.describe, "S", "");
  encodeSync(w);
  let types: number[] = [...parameterTypes];
  let fields: FieldDescription[] = [];
  let error: ServerError | undefined;
  await backend.exchange(w.flush(), {
    message(frame) {
      if (frame.type === BackendMessage.parameterDescription) {
        const count = frame.body.readInt16BE(0);
        types = Array.from({ length: count }, (_, i) => frame.body.readUInt32BE(2 + 4 * i));
      } else if (frame.type === BackendMessage.rowDescription) fields = decodeRowDescription(frame.body);
      else if (frame.type === BackendMessage.errorResponse) error ??= new ServerError(decodeNotice(frame.body));
    },
  });
  if (error) throw error;
  return { parameterTypes: types, fields };
}
