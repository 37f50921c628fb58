import { describe, expect, it } from "vitest";
import { BufferWriter } from "./buffer-writer.js";
import {
  decodeParse,
  decodeQuery,
  decodeSaslInitialResponse,
  decodeStartupPacket,
  encodeCancelRequest,
  encodeStartupMessage,
  StartupCode,
} from "./frontend-messages.js";
import { ProtocolError } from "./protocol-error.js";

const ascii = (text: string) => [...Buffer.from(text)];
const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return [...b];
};

describe("frontend messages", () => {
  it("encodes a StartupMessage exactly and decodes it back", () => {
    const w = new BufferWriter();
    encodeStartupMessage(
      w,
      new Map([
        ["user", "postgres"],
        ["database", "db"],
      ]),
    );
    const packet = w.flush();
    const body = [
      ...int32(196608),
      ...ascii("user"),
      0,
      ...ascii("postgres"),
      0,
      ...ascii("database"),
      0,
      ...ascii("db"),
      0,
      0,
    ];
    expect([...packet]).toEqual([...int32(4 + body.length), ...body]);
    expect(decodeStartupPacket(packet.subarray(4))).toEqual({
      kind: "startup",
      major: 3,
      minor: 0,
      parameters: new Map([
        ["user", "postgres"],
        ["database", "db"],
      ]),
    });
  });

  it("recognizes SSLRequest, GSSENCRequest and CancelRequest", () => {
    expect(decodeStartupPacket(Buffer.from(int32(StartupCode.ssl)))).toEqual({ kind: "ssl" });
    expect(decodeStartupPacket(Buffer.from(int32(StartupCode.gssenc)))).toEqual({ kind: "gssenc" });
    const w = new BufferWriter();
    encodeCancelRequest(w, 1234, -99);
    const cancel = w.flush();
    expect([...cancel]).toEqual([...int32(16), ...int32(80877102), ...int32(1234), ...int32(-99)]);
    expect(decodeStartupPacket(cancel.subarray(4))).toEqual({ kind: "cancel", processId: 1234, secretKey: -99 });
  });

  it("reads protocol 3.2 requests (negotiated down later) and refuses protocol 2", () => {
    expect(decodeStartupPacket(Buffer.from([...int32(196610), 0]))).toMatchObject({ major: 3, minor: 2 });
    expect(() => decodeStartupPacket(Buffer.from([...int32(131072), 0]))).toThrow(ProtocolError);
  });

  it("refuses a startup packet whose strings are not terminated", () => {
    expect(() => decodeStartupPacket(Buffer.from([...int32(196608), ...ascii("user")]))).toThrow(/invalid string/);
  });

  it("decodes Query, Parse and SASLInitialResponse bodies", () => {
    expect(decodeQuery(Buffer.from([...ascii("select 1"), 0]))).toBe("select 1");
    expect(decodeParse(Buffer.from([...ascii("s1"), 0, ...ascii("select $1"), 0, 0, 1, ...int32(23)]))).toEqual({
      name: "s1",
      sql: "select $1",
      parameterTypes: [23],
    });
    expect(
      decodeSaslInitialResponse(Buffer.from([...ascii("SCRAM-SHA-256"), 0, ...int32(3), ...ascii("abc")])),
    ).toEqual({
      mechanism: "SCRAM-SHA-256",
      data: Buffer.from("abc"),
    });
    expect(() => decodeParse(Buffer.from([...ascii("s1"), 0, ...ascii("x"), 0, 0, 2, ...int32(23)]))).toThrow(
      ProtocolError,
    );
  });
});
