export interface BackoffOptions {
  /** Delay ceiling before jitter, in ms, for the first retry. */
  readonly initialMs: number;
  /** Delay ceiling never exceeds this. */
  readonly maxMs: number;
  /** Growth factor of the ceiling per attempt. */
  readonly factor?: number;
  /** Source of randomness in [0, 1); injectable for tests. */
  readonly random?: () => number;
}

/**
 * Capped exponential backoff with jitter: attempt n waits a uniformly random time in
 * [c/10, c] where c = min(max, initial * factor^n). Jitter over (nearly) the whole range spreads
 * out many clients retrying against the same server (e.g. every worker re-registering after a
 * coordinator restart) better than a fixed schedule; the 10% floor keeps retries from spinning.
 */
export class Backoff {
  private attempt = 0;
  private readonly factor: number;
  private readonly random: () => number;

  constructor(private readonly options: BackoffOptions) {
    if (options.initialMs <= 0 || options.maxMs < options.initialMs) {
      throw new RangeError("backoff needs 0 < initialMs <= maxMs");
    }
    this.factor = options.factor ?? 2;
    this.random = options.random ?? Math.random;
  }

  /** The ceiling for the current attempt (without jitter). */
  ceiling(): number {
    const grown = this.options.initialMs * this.factor ** this.attempt;
    return Math.min(this.options.maxMs, grown);
  }

  /** The delay before the next retry; each call counts as one more attempt. */
  next(): number {
    const ceiling = this.ceiling();
    this.attempt += 1;
    const floor = ceiling * 0.1;
    return Math.round(floor + this.random() * (ceiling - floor));
  }

  get attempts(): number {
    return this.attempt;
  }

  reset(): void {
    this.attempt = 0;
  }
}

/** Resolves after `ms`, or early (without rejecting) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
