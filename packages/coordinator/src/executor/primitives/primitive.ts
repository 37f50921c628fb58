import type { SessionContext, StatementRun } from "../execution-port.js";
import type { ShardTaskDeps } from "../fan-out.js";

/**
 * A step of a distributed plan (after Vitess's engine primitives): it runs with the client's
 * statement and session, writes its part of the answer, and can say what it does, for EXPLAIN
 * and for the planner's golden tests.
 */
export interface Primitive {
  execute(run: StatementRun, session: SessionContext, deps: ShardTaskDeps): Promise<void>;
  /** One line per step, with its inputs indented under it. */
  describe(run?: Pick<StatementRun, "bind">): string;
  inputs(): readonly Primitive[];
  /** Work before describe() can tell everything (a merge asks PostgreSQL for types first). */
  prepare?(run: StatementRun, session: SessionContext): Promise<unknown>;
}
