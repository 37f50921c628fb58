import { describe, expect, it } from "vitest";
import { MessageFramer } from "./message-framer.js";
import { ProtocolError } from "./protocol-error.js";

// Q "select 1", then S (Sync)
const query = Buffer.from([0x51, 0, 0, 0, 13, ...Buffer.from("select 1"), 0]);
const sync = Buffer.from([0x53, 0, 0, 0, 4]);
const stream = Buffer.concat([query, sync]);

describe("MessageFramer", () => {
  it("frames messages however the stream is split", () => {
    for (let cut = 0; cut <= stream.length; cut += 1) {
      const framer = new MessageFramer(1024);
      const frames = [...framer.push(stream.subarray(0, cut)), ...framer.push(stream.subarray(cut))];
      expect(frames.map((f) => String.fromCharCode(f.type))).toEqual(["Q", "S"]);
      expect(Buffer.compare(frames[0]?.body as Buffer, query.subarray(5))).toBe(0);
      expect(Buffer.concat(frames.map((f) => f.raw)).equals(stream)).toBe(true);
      expect(framer.buffered).toBe(0);
    }
  });

  it("frames byte by byte", () => {
    const framer = new MessageFramer(1024);
    const types: string[] = [];
    for (const byte of stream)
      for (const f of framer.push(Buffer.from([byte]))) types.push(String.fromCharCode(f.type));
    expect(types).toEqual(["Q", "S"]);
  });

  it("assembles a large message arriving in many small chunks", () => {
    const body = Buffer.alloc(1_000_000, 7);
    const message = Buffer.concat([Buffer.from([0x64, 0, 0x0f, 0x42, 0x44]), body]); // CopyData, length 1_000_004
    const framer = new MessageFramer(2_000_000);
    const frames = [];
    for (let at = 0; at < message.length; at += 997) frames.push(...framer.push(message.subarray(at, at + 997)));
    expect(frames).toHaveLength(1);
    expect(frames[0]?.body.equals(body)).toBe(true);
    expect(framer.buffered).toBe(0);
  });

  it("rejects a length below 4 and one above the limit, before buffering the body", () => {
    expect(() => new MessageFramer(1024).push(Buffer.from([0x51, 0, 0, 0, 3]))).toThrow(ProtocolError);
    expect(() => new MessageFramer(1024).push(Buffer.from([0x51, 0, 0, 4, 1]))).toThrow(/exceeds the limit of 1024/);
    expect(() => new MessageFramer(1024).push(Buffer.from([0x51, 0xff, 0xff, 0xff, 0xff]))).toThrow(
      /invalid message length -1/,
    );
  });

  it("returns only the untyped startup packet, keeping what follows for typed framing", () => {
    const startup = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]); // SSLRequest
    const framer = new MessageFramer(10_000, false);
    const first = framer.push(Buffer.concat([startup, sync]));
    expect(first).toHaveLength(1);
    expect(first[0]?.type).toBe(0);
    expect(framer.buffered).toBe(sync.length);
    framer.startTyped(1024);
    expect(framer.push(Buffer.alloc(0)).map((f) => String.fromCharCode(f.type))).toEqual(["S"]);
  });
});
