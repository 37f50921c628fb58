import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { IdleCollection } from "./idle-collection.js";

/** Keeps the event loop busy (nothing else runs meanwhile, timers included). */
function spin(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy
  }
}

/** Waits (timers delayed by a loaded machine included) until `done`, failing after 10 s. */
async function until(done: () => boolean): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (!done()) {
    if (performance.now() > deadline) throw new Error("not reached in 10 s");
    await sleep(20);
  }
}

describe("IdleCollection", () => {
  let collection: IdleCollection | undefined;
  afterEach(() => collection?.stop());

  it("collects once when the process goes idle, and again only after it was busy", async () => {
    let collections = 0;
    collection = new IdleCollection(() => (collections += 1), 100);
    await until(() => collections === 1);
    await sleep(350);
    expect(collections).toBe(1); // idle since the start: once, not at every look
    spin(150); // a look after this sees the loop busy most of the time
    await until(() => collections === 2);
    await sleep(350);
    expect(collections).toBe(2);
  });

  it("never collects while the loop stays busy", async () => {
    let collections = 0;
    collection = new IdleCollection(() => (collections += 1), 100);
    for (let i = 0; i < 5; i++) {
      spin(90);
      await sleep(5);
    }
    expect(collections).toBe(0);
  });
});
