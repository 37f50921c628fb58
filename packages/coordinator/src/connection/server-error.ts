import { HerdError, type SqlStateCode } from "@herd/shared";
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
