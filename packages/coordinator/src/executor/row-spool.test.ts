import { readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { describe, expect, it } from "vitest";
import { BufferWriter } from "../protocol/buffer-writer.js";
import { BackendMessage } from "../protocol/message-codes.js";
import { RowSpool } from "./row-spool.js";

/** A DataRow message of text values, as a worker sends it. */
function dataRow(values: readonly (string | null)[]): Buffer {
  const w = new BufferWriter(64);
  w.begin(BackendMessage.dataRow).int16(values.length);
  for (const value of values) {
    if (value === null) w.int32(-1);
    else {
      const bytes = Buffer.from(value, "utf8");
      w.int32(bytes.length);
      w.bytes(bytes);
    }
  }
  return w.end().flush();
}

async function spoolFiles(): Promise<string[]> {
  return (await readdir(tmpdir())).filter((name) => name.startsWith("herd-spool-"));
}

describe("RowSpool", () => {
  it("gives back every row in order, in batches of bounded size, from disk past the first, and leaves no file", async () => {
    const before = await spoolFiles();
    const spool = new RowSpool(1024, 100);
    const sent: (string | null)[][] = [];
    let paused = 0;
    for (let i = 0; i < 1050; i += 1) {
      const row = [String(i), i % 7 === 0 ? null : `value ${i} é`];
      sent.push(row);
      if (!spool.raw(dataRow(row))) {
        // the sender waits, as a worker connection does, until the batch is on disk
        paused += 1;
        await new Promise<void>((resume) => spool.onceDrained(resume));
      }
    }
    expect(paused).toBeGreaterThan(10);
    expect((await spoolFiles()).length).toBe(before.length + 1);
    const batches: (readonly (string | null)[])[][] = [];
    for await (const batch of spool.batches()) batches.push([...batch]);
    expect(batches.flat()).toEqual(sent);
    expect(spool.count).toBe(1050);
    // 1 kB a batch: no batch holds many more rows than fit in it
    for (const batch of batches) expect(batch.length).toBeLessThanOrEqual(100);
    expect(batches.length).toBeGreaterThan(10);
    await spool.dispose();
    await spool.dispose();
    expect(await spoolFiles()).toEqual(before);
  });

  it("keeps a result of one batch in memory", async () => {
    const before = await spoolFiles();
    const spool = new RowSpool();
    for (let i = 0; i < 50; i += 1) expect(spool.raw(dataRow([String(i)]))).toBe(true);
    const batches = [];
    for await (const batch of spool.batches()) batches.push(batch);
    expect(batches).toHaveLength(1);
    expect(batches[0]).toHaveLength(50);
    expect(await spoolFiles()).toEqual(before);
    await spool.dispose();
  });
});
