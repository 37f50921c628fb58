import { SqlState, type SqlStateCode } from "./sql-state.js";

export type Severity = "ERROR" | "FATAL" | "PANIC" | "WARNING" | "NOTICE";

export interface HerdErrorFields {
  readonly sqlState?: SqlStateCode;
  readonly severity?: Severity;
  readonly detail?: string;
  readonly hint?: string;
  readonly cause?: unknown;
}

/**
 * The one error type herd raises on purpose. It carries what a PostgreSQL ErrorResponse carries,
 * so the protocol layer can send it to the client as is; any other error reaching a boundary is
 * reported as XX000 without its internal text, and logged.
 */
export class HerdError extends Error {
  readonly sqlState: SqlStateCode;
  readonly severity: Severity;
  readonly detail: string | undefined;
  readonly hint: string | undefined;

  constructor(message: string, fields: HerdErrorFields = {}) {
    super(message, fields.cause === undefined ? undefined : { cause: fields.cause });
    this.name = "HerdError";
    this.sqlState = fields.sqlState ?? SqlState.internalError;
    this.severity = fields.severity ?? "ERROR";
    this.detail = fields.detail;
    this.hint = fields.hint;
  }

  /** The message, detail and hint as one human-readable text (for CLIs and logs). */
  describe(): string {
    const parts = [this.message];
    if (this.detail) parts.push(`DETAIL: ${this.detail}`);
    if (this.hint) parts.push(`HINT: ${this.hint}`);
    return parts.join("\n");
  }
}

export function isHerdError(error: unknown): error is HerdError {
  return error instanceof HerdError;
}
