import { BufferReader } from "./buffer-reader.js";
import type { BufferWriter } from "./buffer-writer.js";
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
  w.begin("p").cstring(mechanism).int32(data.length).bytes(data).end();
}

/** SASLResponse. */
export function encodeSaslResponse(w: BufferWriter, data: Buffer): void {
  w.begin("p").bytes(data).end();
}

/** Terminate ('X'). */
export function encodeTerminate(w: BufferWriter): void {
  w.begin("X").end();
}
