import { peers } from "../processes/peers.js";

/** A statement herd is running for a session, as citus_stat_activity shows it. */
export interface RunningStatement {
  readonly query: string;
  /** When it began (ms since the epoch: no Date is made per statement). */
  readonly since: number;
}

/**
 * The statements herd runs itself (routed, merged, herd's functions), by the session's
 * coordinator-side backend pid. While one runs on the workers, that backend sits idle, so
 * pg_stat_activity would show the session's last local statement instead: citus_stat_activity
 * shows this one (executor/primitives/cluster-activity.ts). One map per coordinator process;
 * `everywhere` asks the others too.
 */
const running = new Map<number, RunningStatement>();

export const statementActivity = {
  started(processId: number, query: string): void {
    running.set(processId, { query, since: Date.now() });
  },
  ended(processId: number): void {
    running.delete(processId);
  },
  of(processId: number): RunningStatement | undefined {
    return running.get(processId);
  },
  /** This process's, for another process that shows them (processes/peers.ts). */
  here(): Map<number, RunningStatement> {
    return new Map(running);
  },
  /** Those of every coordinator process: a lookup by backend pid. */
  async everywhere(): Promise<(processId: number) => RunningStatement | undefined> {
    const elsewhere = await peers().runningStatements();
    return (processId) => running.get(processId) ?? elsewhere.get(processId);
  },
};
