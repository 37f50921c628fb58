import { describe, expect, it } from "vitest";
import { ReadyForQueryTracker } from "./ready-for-query-tracker.js";

// CommandComplete "SELECT 1", ReadyForQuery T, DataRow with a 'Z' inside, ReadyForQuery E
const stream = Buffer.concat([
  Buffer.from([0x43, 0, 0, 0, 13, ...Buffer.from("SELECT 1"), 0]),
  Buffer.from([0x5a, 0, 0, 0, 5, 0x54]),
  Buffer.from([0x44, 0, 0, 0, 11, 0, 1, 0, 0, 0, 1, 0x5a]),
  Buffer.from([0x5a, 0, 0, 0, 5, 0x45]),
]);

describe("ReadyForQueryTracker", () => {
  it("follows the transaction status across any split, ignoring 'Z' bytes inside other messages", () => {
    for (let cut = 0; cut <= stream.length; cut += 1) {
      const tracker = new ReadyForQueryTracker();
      tracker.scan(stream.subarray(0, cut));
      tracker.scan(stream.subarray(cut));
      expect(tracker.status).toBe("E");
      expect(tracker.readyCount).toBe(2);
    }
  });

  it("sees the status of the first ReadyForQuery when the stream stops there", () => {
    const tracker = new ReadyForQueryTracker();
    for (const byte of stream.subarray(0, 20)) tracker.scan(Buffer.from([byte]));
    expect(tracker.status).toBe("T");
  });
});
