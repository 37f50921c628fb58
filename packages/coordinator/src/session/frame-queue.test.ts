import { describe, expect, it } from "vitest";
import type { Frame } from "../protocol/message-framer.js";
import { FrameQueue } from "./frame-queue.js";

const frame = (n: number): Frame => ({ type: 0x64, body: Buffer.from([n % 256]), raw: Buffer.from([n % 256]) });

describe("FrameQueue", () => {
  it("gives frames back in order across compactions", () => {
    const queue = new FrameQueue();
    const seen: number[] = [];
    for (let n = 0; n < 20_000; n += 1) {
      queue.push(frame(n));
      if (n % 3 === 0) seen.push((queue.shift() as Frame).body[0] as number);
    }
    expect(queue.peek()?.body[0]).toBe(seen.length % 256);
    while (queue.length > 0) seen.push((queue.shift() as Frame).body[0] as number);
    expect(seen).toEqual(Array.from({ length: 20_000 }, (_, n) => n % 256));
    expect(queue.shift()).toBeUndefined();
  });
});
