import { HerdError, SqlState } from "@herd/shared";
import { ServerError } from "../connection/server-error.js";
import type { Catalog } from "../metadata/catalog.js";
import type { AnyNode } from "../parser/ast.js";
import { PlanCache } from "../planner/plan-cache.js";
import { activeTransactions } from "../transaction/active-transactions.js";
import { PlacementsChanged } from "../transaction/placements-changed.js";
import type { ExecutionPort } from "./execution-port.js";
import { TransactionControl } from "./primitives/transaction-control.js";
import type { ResultSink } from "./result-sink.js";
import { statementActivity } from "./statement-activity.js";
import type { StatementRun } from "./statement-run.js";

/** How many times a write is planned again when placements changed under it before it gives up. */
const PLACEMENT_ATTEMPTS = 10;

/**
 * Where the session hands over statements: it asks whether herd must run a statement itself
 * (`claims`), and runs the ones it claimed (`run`): the plan (a tree of primitives, from the plan
 * cache) executes against the session's port, answering into its sink.
 */
export class QueryEngine {
  private readonly plans: PlanCache;

  constructor(private readonly catalog: Catalog) {
    this.plans = new PlanCache(catalog);
  }

  get catalogVersion(): number {
    return this.catalog.version;
  }

  /**
   * Whether herd runs the statement rather than the coordinator's PostgreSQL. Transaction
   * control is claimed when workers take part in the block, and always for prepared statements
   * (`forPrepare`), which may run later in a block that has reached workers.
   */
  claims(
    sql: string,
    statement: AnyNode,
    port: Pick<ExecutionPort, "transaction" | "catalog">,
    forPrepare: boolean,
  ): boolean {
    const plan = this.plans.plan(sql, statement, undefined, port.catalog.blockSnapshot());
    if (plan.kind === "transaction")
      return forPrepare || port.transaction.active || (plan instanceof TransactionControl && plan.isSavepoint);
    return plan.kind !== "local";
  }

  /**
   * Runs a statement, once the workers finished what the session committed before. A write that
   * finds, under its shard locks, that a shard's placements changed since its plan
   * (PlacementsChanged: nothing written yet) runs again on the catalog as it is now.
   */
  async run(run: StatementRun, port: ExecutionPort, sink: ResultSink): Promise<void> {
    // the workers have finished what this session committed before (read-your-writes)
    await port.quiesce();
    // a victim mark left from a statement the cancel came too late for is not this one's
    activeTransactions.takeVictim(port.backend.processId);
    // shown on the session's coordinator backend; a session that holds none now (they are shared
    // between transactions, protocol/backend-pool.ts) has no row there to show it on
    const shownOn = port.backend.attached ? port.backend.processId : undefined;
    if (shownOn !== undefined) statementActivity.started(shownOn, run.clientSql ?? run.sql);
    try {
      for (let attempt = 1; ; attempt += 1) {
        try {
          // unqualified table names mean what the session's search_path makes them mean
          // a transaction block that changed the metadata plans with its own snapshot
          const own = port.catalog.blockSnapshot();
          const names = this.plans.namesOf(run.sql, run.statement, own);
          const resolved =
            names.length === 0 ? undefined : (port.names.known(names) ?? (await port.names.resolve(names)));
          await this.plans.plan(run.sql, run.statement, resolved, own).execute(port, run, sink);
          return;
        } catch (error) {
          // planned again on a catalog loaded after the change; the write's locks are still held
          // (port.heldWrite), so its shards' placements stay as they are now
          if (!(error instanceof PlacementsChanged) || attempt === PLACEMENT_ATTEMPTS)
            throw deadlockVictim(error, port) ?? error;
          await this.catalog.reload();
        }
      }
    } finally {
      if (shownOn !== undefined) statementActivity.ended(shownOn);
      const held = port.heldWrite;
      port.heldWrite = undefined;
      await held?.rollback();
    }
  }
}

/**
 * The statement was cancelled because the deadlock detector chose its transaction as the victim
 * of a deadlock across servers (transaction/deadlock-detector.ts): PostgreSQL's code for it.
 */
function deadlockVictim(error: unknown, port: ExecutionPort): HerdError | undefined {
  if (!(error instanceof ServerError) || error.sqlState !== SqlState.queryCanceled) return undefined;
  if (!activeTransactions.takeVictim(port.backend.processId)) return undefined;
  return new HerdError("deadlock detected", {
    sqlState: SqlState.deadlockDetected,
    detail:
      "This transaction and others waited for each other on different servers (a distributed deadlock); it was cancelled so the others can go on.",
    hint: "The transaction was rolled back; run it again.",
  });
}
