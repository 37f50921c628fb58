import { afterEach, describe, expect, it, vi } from "vitest";
import { Backoff, sleep } from "./backoff.js";

/** A `random` that returns the given values in turn, then repeats the last one. */
function sequence(...values: number[]): () => number {
  let index = 0;
  return () => values[Math.min(index++, values.length - 1)] as number;
}

describe("Backoff", () => {
  it("doubles the ceiling per attempt by default and caps it at maxMs", () => {
    const backoff = new Backoff({ initialMs: 100, maxMs: 1_000, random: () => 0.999999 });
    const ceilings: number[] = [];
    for (let i = 0; i < 6; i += 1) {
      ceilings.push(backoff.ceiling());
      backoff.next();
    }
    expect(ceilings).toEqual([100, 200, 400, 800, 1_000, 1_000]);
  });

  it("grows by the given factor", () => {
    const backoff = new Backoff({ initialMs: 10, maxMs: 10_000, factor: 3, random: () => 0 });
    const ceilings: number[] = [];
    for (let i = 0; i < 4; i += 1) {
      ceilings.push(backoff.ceiling());
      backoff.next();
    }
    expect(ceilings).toEqual([10, 30, 90, 270]);
  });

  it("draws each delay from [10% of the ceiling, the ceiling] using the injected random", () => {
    const backoff = new Backoff({ initialMs: 1_000, maxMs: 8_000, random: sequence(0, 0.5, 0.999999, 0) });
    // ceiling 1000: floor 100 + 0 * 900
    expect(backoff.next()).toBe(100);
    // ceiling 2000: floor 200 + 0.5 * 1800
    expect(backoff.next()).toBe(1_100);
    // ceiling 4000: just under the ceiling, rounded to it
    expect(backoff.next()).toBe(4_000);
    // ceiling 8000: floor 800
    expect(backoff.next()).toBe(800);
  });

  it("never leaves the jitter range, whatever random returns in [0, 1)", () => {
    const backoff = new Backoff({ initialMs: 50, maxMs: 3_000 });
    for (let i = 0; i < 200; i += 1) {
      const ceiling = backoff.ceiling();
      const delay = backoff.next();
      expect(delay).toBeGreaterThanOrEqual(Math.round(ceiling * 0.1));
      expect(delay).toBeLessThanOrEqual(ceiling);
      expect(Number.isInteger(delay)).toBe(true);
    }
  });

  it("stays at maxMs after very many attempts (no Infinity or NaN)", () => {
    const backoff = new Backoff({ initialMs: 100, maxMs: 5_000, random: () => 0.5 });
    for (let i = 0; i < 5_000; i += 1) backoff.next();
    expect(backoff.ceiling()).toBe(5_000);
    expect(backoff.next()).toBe(2_750);
  });

  it("counts attempts and starts over on reset()", () => {
    const backoff = new Backoff({ initialMs: 100, maxMs: 10_000, random: () => 0 });
    expect(backoff.attempts).toBe(0);
    backoff.next();
    backoff.next();
    backoff.next();
    expect(backoff.attempts).toBe(3);
    expect(backoff.ceiling()).toBe(800);
    backoff.reset();
    expect(backoff.attempts).toBe(0);
    expect(backoff.ceiling()).toBe(100);
    expect(backoff.next()).toBe(10);
  });

  it("allows initialMs equal to maxMs", () => {
    const backoff = new Backoff({ initialMs: 250, maxMs: 250, random: () => 0 });
    expect(backoff.next()).toBe(25);
    expect(backoff.ceiling()).toBe(250);
  });

  it.each([
    ["initialMs of zero", { initialMs: 0, maxMs: 100 }],
    ["a negative initialMs", { initialMs: -5, maxMs: 100 }],
    ["maxMs below initialMs", { initialMs: 200, maxMs: 100 }],
  ])("rejects %s with a RangeError", (_, options) => {
    expect(() => new Backoff(options)).toThrow(RangeError);
    expect(() => new Backoff(options)).toThrow("backoff needs 0 < initialMs <= maxMs");
  });
});

describe("sleep", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("resolves after the given time and not before", async () => {
    vi.useFakeTimers();
    let done = false;
    const sleeping = sleep(1_000).then(() => {
      done = true;
    });
    await vi.advanceTimersByTimeAsync(999);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await sleeping;
    expect(done).toBe(true);
  });

  it("resolves early, without rejecting, when the signal aborts", async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    let done = false;
    const sleeping = sleep(60_000, controller.signal).then(() => {
      done = true;
    });
    await vi.advanceTimersByTimeAsync(10);
    expect(done).toBe(false);
    controller.abort();
    await expect(sleeping).resolves.toBeUndefined();
    expect(done).toBe(true);
    // the abort also cleared the timer
    expect(vi.getTimerCount()).toBe(0);
  });

  it("resolves immediately when the signal is already aborted, without starting a timer", async () => {
    vi.useFakeTimers();
    const signal = AbortSignal.abort();
    let done = false;
    const sleeping = sleep(60_000, signal).then(() => {
      done = true;
    });
    expect(vi.getTimerCount()).toBe(0);
    await sleeping;
    expect(done).toBe(true);
  });

  it("stops listening to the signal once the time is up", async () => {
    vi.useFakeTimers();
    const controller = new AbortController();
    const remove = vi.spyOn(controller.signal, "removeEventListener");
    const sleeping = sleep(100, controller.signal);
    await vi.advanceTimersByTimeAsync(100);
    await sleeping;
    expect(remove).toHaveBeenCalledWith("abort", expect.any(Function));
  });
});
