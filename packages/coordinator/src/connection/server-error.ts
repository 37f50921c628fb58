import { HerdError, isHerdError, SqlState, type SqlStateCode } from "@herd/shared";
import type { NoticeFields } from "../protocol/backend-messages.js";

/**
 * An ErrorResponse from one of herd's PostgreSQL servers (a worker or the coordinator's own),
 * kept whole so that it reaches the client with every field PostgreSQL set.
 */
export class ServerError extends HerdError {
  constructor(readonly fields: NoticeFields) {
    super(fields.message, {
      sqlState: fields.code as SqlStateCode,
      detail: fields.detail,
      hint: fields.hint,
    });
    this.name = "ServerError";
  }
}

/** An error that means the connection to a server is gone (not an error of a statement). */
export function isConnectionLoss(error: unknown): boolean {
  return (
    isHerdError(error) &&
    !(error instanceof ServerError) &&
    (error.sqlState === SqlState.connectionFailure || error.sqlState === SqlState.connectionException)
  );
}
