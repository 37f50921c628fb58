import { performance } from "node:perf_hooks";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { Logger } from "@herd/shared";

/** How often the event loop's use is looked at (ms). */
const EVERY_MS = 15_000;
/** A process whose event loop was busy less than this share of the last look is idle. */
const IDLE_UTILIZATION = 0.02;

/**
 * Runs `collect` once each time the process goes idle: after a look (every `everyMs`) at which
 * the event loop was busy at most `idleShare` of the time since the one before, and not again
 * until a look finds it busy.
 */
export class IdleCollection {
  private last = performance.eventLoopUtilization();
  private collected = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly collect: () => void,
    everyMs = EVERY_MS,
    private readonly idleShare = IDLE_UTILIZATION,
  ) {
    this.timer = setInterval(() => this.look(), everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private look(): void {
    const now = performance.eventLoopUtilization();
    const busy = performance.eventLoopUtilization(now, this.last).utilization;
    this.last = now;
    if (busy > this.idleShare) this.collected = false;
    else if (!this.collected) {
      this.collected = true;
      this.collect();
    }
  }
}

let started = false;

/**
 * Gives back to the system, once a coordinator process goes idle, the memory a burst made its heap
 * grow to. V8 shrinks its heap only after a full collection, and runs one only when JavaScript
 * allocates: a process whose 1000 clients sit idle after a burst kept the burst's heap (the
 * clients bench saw 222–350 MB for the same idle state; with this, 244–270). One full collection
 * per busy → idle change, never under load. Process-wide, started once.
 */
export function collectWhenIdle(logger: Logger): void {
  if (started) return;
  started = true;
  // --expose-gc set now shows `gc` to contexts made after it (not to this one's globals)
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as (() => void) | undefined;
  if (typeof gc !== "function") return;
  new IdleCollection(() => {
    const before = process.memoryUsage.rss();
    const began = performance.now();
    gc();
    logger.debug("idle: heap collected", {
      rss_mb_before: Math.round(before / 2 ** 20),
      rss_mb_after: Math.round(process.memoryUsage.rss() / 2 ** 20),
      ms: Math.round(performance.now() - began),
    });
  });
}
