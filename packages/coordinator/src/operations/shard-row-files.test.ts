import { readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { describe, expect, it } from "vitest";
import { ShardRowFiles } from "./shard-row-files.js";

async function spoolDirectories(): Promise<string[]> {
  return (await readdir(tmpdir())).filter((name) => name.startsWith("herd-distribute-"));
}

describe("ShardRowFiles", () => {
  it("sorts rows into one file per shard, asks the sender to wait while a full buffer is written, and removes its files", async () => {
    const before = await spoolDirectories();
    const files = new ShardRowFiles(4);
    let waits = 0;
    const row = Buffer.from(`${"x".repeat(1000)}\n`);
    // 3 shards of 4 get rows; 1 MB for shard 0 (several buffers), a little for 1 and 3
    for (let i = 0; i < 1000; i += 1) {
      if (!files.add(0, row)) {
        waits += 1;
        await new Promise<void>((resume) => files.onceDrained(resume));
      }
    }
    files.add(1, Buffer.from("one\n"));
    files.add(3, Buffer.from("three\n"));
    await files.finish();
    expect(waits).toBeGreaterThan(0);
    expect(files.rows).toBe(1002);
    expect([0, 1, 2, 3].map((index) => files.has(index))).toEqual([true, true, false, true]);
    expect((await spoolDirectories()).length).toBe(before.length + 1);
    await files.dispose();
    await files.dispose();
    expect(await spoolDirectories()).toEqual(before);
  });
});
