import { HerdError } from "@herd/shared";
import { describe, expect, it } from "vitest";
import {
  AuthCode,
  decodeNotice,
  encodeAuthentication,
  encodeBackendKeyData,
  encodeHerdError,
  encodeNegotiateProtocolVersion,
  encodeNotice,
  encodeParameterStatus,
  encodeReadyForQuery,
} from "./backend-messages.js";
import { BufferWriter } from "./buffer-writer.js";
import { BackendMessage } from "./message-codes.js";

const bytes = (build: (w: BufferWriter) => void) => {
  const w = new BufferWriter(8); // small on purpose: exercises growth
  build(w);
  return [...w.flush()];
};
const ascii = (text: string) => [...Buffer.from(text)];

describe("backend message encoders (exact bytes)", () => {
  it("ReadyForQuery", () => {
    expect(bytes((w) => encodeReadyForQuery(w, "I"))).toEqual([0x5a, 0, 0, 0, 5, 0x49]);
    expect(bytes((w) => encodeReadyForQuery(w, "E"))).toEqual([0x5a, 0, 0, 0, 5, 0x45]);
  });

  it("AuthenticationOk and AuthenticationSASL with its mechanism list", () => {
    expect(bytes((w) => encodeAuthentication(w, AuthCode.ok))).toEqual([0x52, 0, 0, 0, 8, 0, 0, 0, 0]);
    expect(bytes((w) => encodeAuthentication(w, AuthCode.sasl, ["SCRAM-SHA-256"]))).toEqual([
      0x52,
      0,
      0,
      0,
      23,
      0,
      0,
      0,
      10,
      ...ascii("SCRAM-SHA-256"),
      0,
      0,
    ]);
    expect(bytes((w) => encodeAuthentication(w, AuthCode.saslContinue, Buffer.from("r=x")))).toEqual([
      0x52,
      0,
      0,
      0,
      11,
      0,
      0,
      0,
      11,
      ...ascii("r=x"),
    ]);
  });

  it("ParameterStatus, BackendKeyData and NegotiateProtocolVersion", () => {
    expect(bytes((w) => encodeParameterStatus(w, "TimeZone", "UTC"))).toEqual([
      0x53,
      0,
      0,
      0,
      17,
      ...ascii("TimeZone"),
      0,
      ...ascii("UTC"),
      0,
    ]);
    expect(bytes((w) => encodeBackendKeyData(w, 258, -1))).toEqual([0x4b, 0, 0, 0, 12, 0, 0, 1, 2, 255, 255, 255, 255]);
    expect(bytes((w) => encodeNegotiateProtocolVersion(w, 0, ["_pq_.x"]))).toEqual([
      0x76,
      0,
      0,
      0,
      19,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      1,
      ...ascii("_pq_.x"),
      0,
    ]);
  });

  it("ErrorResponse: fields by code, non-localized severity added, terminated by a zero byte", () => {
    const encoded = bytes((w) =>
      encodeNotice(w, BackendMessage.errorResponse, { severity: "ERROR", code: "42P01", message: "no t" }),
    );
    const body = [...ascii("SERROR"), 0, ...ascii("C42P01"), 0, ...ascii("Mno t"), 0, ...ascii("VERROR"), 0, 0];
    expect(encoded).toEqual([0x45, 0, 0, 0, 4 + body.length, ...body]);
  });

  it("a HerdError becomes an ErrorResponse with its SQLSTATE, detail and hint, and decodes back", () => {
    const w = new BufferWriter();
    encodeHerdError(w, new HerdError("boom", { sqlState: "0A000", severity: "FATAL", detail: "d", hint: "h" }));
    const message = w.flush();
    expect(String.fromCharCode(message[0] as number)).toBe("E");
    expect(decodeNotice(message.subarray(5))).toEqual({
      severity: "FATAL",
      severityNonLocalized: "FATAL",
      code: "0A000",
      message: "boom",
      detail: "d",
      hint: "h",
    });
  });

  it("sends several messages in one flush, and starts empty again", () => {
    const w = new BufferWriter();
    encodeReadyForQuery(w, "I");
    encodeReadyForQuery(w, "T");
    expect(w.flush().length).toBe(12);
    expect(w.length).toBe(0);
  });
});
