import type { HerdError } from "@herd/shared";
import { BufferReader } from "./buffer-reader.js";
import type { BufferWriter } from "./buffer-writer.js";
import { BackendMessage, type EmptyMessage } from "./message-codes.js";

/**
 * Messages the server sends, encoded into a BufferWriter (many per write), and the few the
 * coordinator must read from its own PostgreSQL. Formats:
 * https://www.postgresql.org/docs/18/protocol-message-formats.html
 */

export const AuthCode = { ok: 0, sasl: 10, saslContinue: 11, saslFinal: 12 } as const;

/** AuthenticationOk / AuthenticationSASL* ('R'). */
export function encodeAuthentication(w: BufferWriter, code: number, data?: Buffer | readonly string[]): void {
  w.begin(BackendMessage.authentication).int32(code);
  if (Array.isArray(data)) {
    for (const mechanism of data) w.cstring(mechanism);
    w.byte(0);
  } else if (data) {
    w.bytes(data as Buffer);
  }
  w.end();
}

/** ParameterStatus ('S'). */
export function encodeParameterStatus(w: BufferWriter, name: string, value: string): void {
  w.begin(BackendMessage.parameterStatus).cstring(name).cstring(value).end();
}

/** BackendKeyData ('K'): what a client sends back in a CancelRequest. */
export function encodeBackendKeyData(w: BufferWriter, processId: number, secretKey: number): void {
  w.begin(BackendMessage.backendKeyData).int32(processId).int32(secretKey).end();
}

export type TransactionStatus = "I" | "T" | "E";

/** ReadyForQuery ('Z'): I idle, T in a transaction block, E in a failed one. */
export function encodeReadyForQuery(w: BufferWriter, status: TransactionStatus): void {
  w.begin(BackendMessage.readyForQuery).byte(status.charCodeAt(0)).end();
}

/**
 * NegotiateProtocolVersion ('v'): the newest protocol version we speak and the options we ignore.
 * The version is the whole number (196608 for 3.0), as PostgreSQL sends it and libpq and pgjdbc
 * read it, although the docs call it "the newest minor protocol version".
 */
export function encodeNegotiateProtocolVersion(w: BufferWriter, version: number, unsupported: readonly string[]): void {
  w.begin(BackendMessage.negotiateProtocolVersion).int32(version).int32(unsupported.length);
  for (const option of unsupported) w.cstring(option);
  w.end();
}

/** The fields of ErrorResponse and NoticeResponse, by their one-letter codes. */
export interface NoticeFields {
  readonly severity: string;
  readonly code: string;
  readonly message: string;
  readonly detail?: string;
  readonly hint?: string;
  readonly position?: string;
  readonly [field: string]: string | undefined;
}

const FIELD_CODES: Record<string, string> = {
  severity: "S",
  severityNonLocalized: "V",
  code: "C",
  message: "M",
  detail: "D",
  hint: "H",
  position: "P",
  internalPosition: "p",
  internalQuery: "q",
  where: "W",
  schema: "s",
  table: "t",
  column: "c",
  dataType: "d",
  constraint: "n",
  file: "F",
  line: "L",
  routine: "R",
};

/** ErrorResponse ('E') or NoticeResponse ('N'). */
export function encodeNotice(
  w: BufferWriter,
  type: typeof BackendMessage.errorResponse | typeof BackendMessage.noticeResponse,
  fields: NoticeFields,
): void {
  w.begin(type);
  for (const [name, value] of Object.entries(fields)) {
    const code = FIELD_CODES[name];
    if (code && value !== undefined) w.byte(code.charCodeAt(0)).cstring(value);
  }
  if (fields.severityNonLocalized === undefined) w.byte("V".charCodeAt(0)).cstring(fields.severity);
  w.byte(0).end();
}

/** An ErrorResponse for a HerdError (its SQLSTATE, severity, detail and hint). */
export function encodeHerdError(w: BufferWriter, error: HerdError): void {
  encodeNotice(w, BackendMessage.errorResponse, {
    severity: error.severity,
    code: error.sqlState,
    message: error.message,
    detail: error.detail,
    hint: error.hint,
  });
}

/** Reads an ErrorResponse/NoticeResponse body back into named fields. */
export function decodeNotice(body: Buffer): NoticeFields {
  const reader = new BufferReader(body);
  const names = Object.fromEntries(Object.entries(FIELD_CODES).map(([name, code]) => [code, name]));
  const fields: Record<string, string> = {};
  for (let code = reader.byte(); code !== 0; code = reader.byte()) {
    fields[names[String.fromCharCode(code)] ?? String.fromCharCode(code)] = reader.cstring();
  }
  return fields as unknown as NoticeFields;
}

/** A column of RowDescription ('T'). */
export interface FieldDescription {
  readonly name: string;
  readonly tableOid: number;
  readonly columnNumber: number;
  readonly typeOid: number;
  readonly typeSize: number;
  readonly typeModifier: number;
  readonly format: number;
}

export function decodeRowDescription(body: Buffer): FieldDescription[] {
  const reader = new BufferReader(body);
  const fields: FieldDescription[] = [];
  for (let n = reader.int16(), i = 0; i < n; i += 1) {
    fields.push({
      name: reader.cstring(),
      tableOid: reader.int32(),
      columnNumber: reader.int16(),
      typeOid: reader.int32(),
      typeSize: reader.int16(),
      typeModifier: reader.int32(),
      format: reader.int16(),
    });
  }
  return fields;
}

export function encodeRowDescription(w: BufferWriter, fields: readonly FieldDescription[]): void {
  w.begin(BackendMessage.rowDescription).int16(fields.length);
  for (const f of fields) {
    w.cstring(f.name).int32(f.tableOid).int16(f.columnNumber).int32(f.typeOid);
    w.int16(f.typeSize).int32(f.typeModifier).int16(f.format);
  }
  w.end();
}

/** DataRow ('D'): column values, null for SQL NULL. */
export function decodeDataRow(body: Buffer): (Buffer | null)[] {
  const reader = new BufferReader(body);
  const values: (Buffer | null)[] = [];
  for (let n = reader.int16(), i = 0; i < n; i += 1) {
    const length = reader.int32();
    values.push(length < 0 ? null : reader.bytes(length));
  }
  return values;
}

export function encodeDataRow(w: BufferWriter, values: readonly (Buffer | string | null)[]): void {
  w.begin(BackendMessage.dataRow).int16(values.length);
  for (const value of values) {
    if (value === null) w.int32(-1);
    else {
      const bytes = typeof value === "string" ? Buffer.from(value) : value;
      w.int32(bytes.length).bytes(bytes);
    }
  }
  w.end();
}

/** CommandComplete ('C'): the command tag, e.g. "INSERT 0 3". */
export function encodeCommandComplete(w: BufferWriter, tag: string): void {
  w.begin(BackendMessage.commandComplete).cstring(tag).end();
}

export function decodeCommandComplete(body: Buffer): string {
  return new BufferReader(body).cstring();
}

/** Messages with no body: ParseComplete '1', BindComplete '2', CloseComplete '3', NoData 'n',
 * EmptyQueryResponse 'I', PortalSuspended 's', CopyDone 'c'. */
export function encodeEmpty(w: BufferWriter, type: EmptyMessage): void {
  w.begin(type).end();
}

/** CopyInResponse 'G' / CopyOutResponse 'H': overall format and per-column formats. */
export function encodeCopyResponse(
  w: BufferWriter,
  type: typeof BackendMessage.copyInResponse | typeof BackendMessage.copyOutResponse,
  format: number,
  columns: number,
): void {
  w.begin(type).byte(format).int16(columns);
  for (let i = 0; i < columns; i += 1) w.int16(format);
  w.end();
}
