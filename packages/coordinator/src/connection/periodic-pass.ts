/**
 * A background pass over the cluster (recovery, repair, deadlock detection): run every
 * `intervalMs`, the next one timed from the end of the last, never two at once; `now()` runs one
 * on demand, or joins the one under way. Resolves with what the pass counted.
 */
export class PeriodicPass {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  private stopped = false;

  constructor(
    private readonly pass: () => Promise<number>,
    private readonly intervalMs: number,
  ) {}

  /** Starts the passes: the first at once, or after one interval (`delayFirst`). */
  start(delayFirst = false): void {
    const tick = () => {
      void this.now().finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, this.intervalMs);
      });
    };
    if (delayFirst) this.timer = setTimeout(tick, this.intervalMs);
    else tick();
  }

  /** Stops the timer and waits for a pass under way. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running?.catch(() => {});
  }

  now(): Promise<number> {
    this.running ??= this.pass().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }
}
