/** What one step of a plan did in one execution, as EXPLAIN ANALYZE shows it. */
export interface StepFigures {
  readonly timeMs: number;
  /** Rows the step produced (a route: rows its shards sent). */
  readonly rows?: number;
  /** Shard statements it ran. */
  readonly shards?: number;
  /** Bytes of rows it kept on the coordinator (subplans' intermediate results). */
  readonly bytes?: number;
}

/**
 * Figures of one execution, per step: kept apart from the plan, which is shared by every
 * execution and never changes. EXPLAIN ANALYZE passes one in (`StatementRun.stats`) and reads it
 * back while describing the plan.
 */
export class ExecutionStats {
  private readonly figures = new Map<object, StepFigures>();

  record(step: object, figures: StepFigures): void {
    this.figures.set(step, figures);
  }

  of(step: object): StepFigures | undefined {
    return this.figures.get(step);
  }
}
