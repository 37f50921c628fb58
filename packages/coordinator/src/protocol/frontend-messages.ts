import { BufferReader } from "./buffer-reader.js";
import type { BufferWriter } from "./buffer-writer.js";
import { FrontendMessage } from "./message-codes.js";
import { ProtocolError } from "./protocol-error.js";

/**
 * Messages clients send, decoded from frame bodies, and encoders for the ones the coordinator
 * itself sends as a client of PostgreSQL. Formats:
 * https://www.postgresql.org/docs/18/protocol-message-formats.html
 */

/** Request codes of the untyped packets that may open a connection. */
export const StartupCode = {
  protocol3: 196608, // 3.0
  cancel: 80877102,
  ssl: 80877103,
  gssenc: 80877104,
} as const;

export type StartupPacket =
  | {
      readonly kind: "startup";
      readonly major: number;
      readonly minor: number;
      readonly parameters: ReadonlyMap<string, string>;
    }
  | { readonly kind: "ssl" }
  | { readonly kind: "gssenc" }
  | { readonly kind: "cancel"; readonly processId: number; readonly secretKey: number };

/** The first packet of a connection: StartupMessage, SSLRequest, GSSENCRequest or CancelRequest. */
export function decodeStartupPacket(body: Buffer): StartupPacket {
  const reader = new BufferReader(body);
  const code = reader.int32();
  switch (code) {
    case StartupCode.ssl:
      return { kind: "ssl" };
    case StartupCode.gssenc:
      return { kind: "gssenc" };
    case StartupCode.cancel:
      return { kind: "cancel", processId: reader.int32(), secretKey: reader.int32() };
  }
  const major = code >> 16;
  const minor = code & 0xffff;
  if (major !== 3)
    throw new ProtocolError(`unsupported frontend protocol ${major}.${minor}: server supports 3.0 to 3.0`);
  const parameters = new Map<string, string>();
  for (;;) {
    const name = reader.cstring();
    if (name === "") break;
    parameters.set(name, reader.cstring());
  }
  return { kind: "startup", major, minor, parameters };
}

/** SASLInitialResponse ('p' during SASL): the mechanism and the client-first-message. */
export function decodeSaslInitialResponse(body: Buffer): { mechanism: string; data: Buffer } {
  const reader = new BufferReader(body);
  const mechanism = reader.cstring();
  const length = reader.int32();
  return { mechanism, data: length < 0 ? Buffer.alloc(0) : reader.bytes(length) };
}

/** Query ('Q'): the SQL text. */
export function decodeQuery(body: Buffer): string {
  return new BufferReader(body).cstring();
}

/** Parse ('P'): statement name, SQL text, parameter type OIDs. */
export function decodeParse(body: Buffer): { name: string; sql: string; parameterTypes: number[] } {
  const reader = new BufferReader(body);
  const name = reader.cstring();
  const sql = reader.cstring();
  const count = reader.int16();
  const parameterTypes: number[] = [];
  for (let i = 0; i < count; i += 1) parameterTypes.push(reader.int32());
  return { name, sql, parameterTypes };
}

/** StartupMessage for protocol 3.0. */
export function encodeStartupMessage(w: BufferWriter, parameters: ReadonlyMap<string, string>): void {
  w.begin().int32(StartupCode.protocol3);
  for (const [name, value] of parameters) w.cstring(name).cstring(value);
  w.byte(0).end();
}

/** CancelRequest: sent on a new connection, nothing comes back. */
export function encodeCancelRequest(w: BufferWriter, processId: number, secretKey: number): void {
  w.begin().int32(StartupCode.cancel).int32(processId).int32(secretKey).end();
}

/** SASLInitialResponse. */
export function encodeSaslInitialResponse(w: BufferWriter, mechanism: string, data: Buffer): void {
  w.begin(FrontendMessage.password).cstring(mechanism).int32(data.length).bytes(data).end();
}

/** SASLResponse. */
export function encodeSaslResponse(w: BufferWriter, data: Buffer): void {
  w.begin(FrontendMessage.password).bytes(data).end();
}

/** Terminate ('X'). */
export function encodeTerminate(w: BufferWriter): void {
  w.begin(FrontendMessage.terminate).end();
}

/** Bind ('B'): portal, statement, parameter formats and values, result formats. */
export interface BindMessage {
  readonly portal: string;
  readonly statement: string;
  readonly parameterFormats: readonly number[];
  /** Values as sent (text or binary per format); null for SQL NULL. */
  readonly parameters: readonly (Buffer | null)[];
  readonly resultFormats: readonly number[];
}

export function decodeBind(body: Buffer): BindMessage {
  const reader = new BufferReader(body);
  const portal = reader.cstring();
  const statement = reader.cstring();
  const parameterFormats: number[] = [];
  for (let n = reader.int16(), i = 0; i < n; i += 1) parameterFormats.push(reader.int16());
  const parameters: (Buffer | null)[] = [];
  for (let n = reader.int16(), i = 0; i < n; i += 1) {
    const length = reader.int32();
    parameters.push(length < 0 ? null : reader.bytes(length));
  }
  const resultFormats: number[] = [];
  for (let n = reader.int16(), i = 0; i < n; i += 1) resultFormats.push(reader.int16());
  return { portal, statement, parameterFormats, parameters, resultFormats };
}

/** The format (0 text, 1 binary) of parameter `index` under Bind's format-code rules. */
export function parameterFormat(bind: BindMessage, index: number): number {
  const formats = bind.parameterFormats;
  return formats.length === 0 ? 0 : formats.length === 1 ? (formats[0] as number) : (formats[index] ?? 0);
}

/** Describe ('D') and Close ('C'): 'S' statement or 'P' portal, and its name. */
export function decodeTarget(body: Buffer): { kind: "S" | "P"; name: string } {
  const reader = new BufferReader(body);
  const kind = String.fromCharCode(reader.byte());
  if (kind !== "S" && kind !== "P") throw new ProtocolError(`invalid DESCRIBE/CLOSE message subtype ${kind}`);
  return { kind, name: reader.cstring() };
}

/** Execute ('E'): portal and row limit (0 = all). */
export function decodeExecute(body: Buffer): { portal: string; maxRows: number } {
  const reader = new BufferReader(body);
  return { portal: reader.cstring(), maxRows: reader.int32() };
}

/** Query ('Q'), as herd sends it to its servers. */
export function encodeQuery(w: BufferWriter, sql: string): void {
  w.begin(FrontendMessage.query).cstring(sql).end();
}

/** Parse ('P'). */
export function encodeParse(w: BufferWriter, name: string, sql: string, parameterTypes: readonly number[] = []): void {
  w.begin(FrontendMessage.parse).cstring(name).cstring(sql).int16(parameterTypes.length);
  for (const oid of parameterTypes) w.int32(oid);
  w.end();
}

/** Bind ('B'). */
export function encodeBind(w: BufferWriter, bind: BindMessage): void {
  w.begin(FrontendMessage.bind).cstring(bind.portal).cstring(bind.statement).int16(bind.parameterFormats.length);
  for (const format of bind.parameterFormats) w.int16(format);
  w.int16(bind.parameters.length);
  for (const value of bind.parameters) {
    if (value === null) w.int32(-1);
    else w.int32(value.length).bytes(value);
  }
  w.int16(bind.resultFormats.length);
  for (const format of bind.resultFormats) w.int16(format);
  w.end();
}

/** Describe ('D') or Close ('C') of a statement ('S') or portal ('P'). */
export function encodeTarget(
  w: BufferWriter,
  type: typeof FrontendMessage.describe | typeof FrontendMessage.close,
  kind: "S" | "P",
  name: string,
): void {
  w.begin(type).byte(kind.charCodeAt(0)).cstring(name).end();
}

/** Execute ('E'). */
export function encodeExecute(w: BufferWriter, portal = "", maxRows = 0): void {
  w.begin(FrontendMessage.execute).cstring(portal).int32(maxRows).end();
}

/** Sync ('S'). */
export function encodeSync(w: BufferWriter): void {
  w.begin(FrontendMessage.sync).end();
}

/** CopyData ('d'), either direction. */
export function encodeCopyData(w: BufferWriter, data: Uint8Array): void {
  w.begin(FrontendMessage.copyData).bytes(data).end();
}

/** CopyDone ('c'). */
export function encodeCopyDone(w: BufferWriter): void {
  w.begin(FrontendMessage.copyDone).end();
}

/** CopyFail ('f'): the client's reason. */
export function decodeCopyFail(body: Buffer): string {
  return new BufferReader(body).cstring();
}

/** CopyFail ('f'), with the reason the server reports. */
export function encodeCopyFail(w: BufferWriter, reason: string): void {
  w.begin(FrontendMessage.copyFail).cstring(reason).end();
}
