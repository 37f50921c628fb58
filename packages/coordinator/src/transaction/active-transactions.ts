/** The backends of one distributed transaction on each server, as a deadlock search needs them. */
export interface TransactionBackends {
  /** When it registered (µs since the epoch): a higher number is a younger transaction. */
  readonly id: number;
  /** The coordinator's PostgreSQL backend that decides it (the session's). */
  readonly coordinatorPid: number;
  /** Its connections on the workers. */
  readonly workerPids: readonly { readonly nodeId: number; readonly pid: number }[];
}

/**
 * The distributed transactions under way in this coordinator process, for the deadlock detector
 * (deadlock-detector.ts): which backend on which server works for which transaction, and which
 * sessions it chose as victims (their next cancelled statement is reported as 40P01).
 */
export class ActiveTransactions {
  private readonly active = new Map<number, () => Omit<TransactionBackends, "id">>();
  private readonly victims = new Set<number>();
  private lastId = 0;

  /**
   * A transaction began to take locks or workers; returns its id, for `unregister`. Ids are
   * microseconds since the epoch (made unique here), so that transactions of different
   * coordinator processes compare by age too.
   */
  register(backends: () => Omit<TransactionBackends, "id">): number {
    const id = Math.max(this.lastId + 1, Math.floor((performance.timeOrigin + performance.now()) * 1000));
    this.lastId = id;
    this.active.set(id, backends);
    return id;
  }

  unregister(id: number): void {
    this.active.delete(id);
  }

  snapshot(): TransactionBackends[] {
    return [...this.active].map(([id, backends]) => ({ id, ...backends() }));
  }

  /**
   * Remembers the session of the transaction whose coordinator backend is `pid` as a deadlock
   * victim, before the detector cancels its waiting statement.
   */
  markVictim(coordinatorPid: number): void {
    this.victims.add(coordinatorPid);
  }

  /** Whether the session of coordinator backend `pid` was chosen as a victim (asked once). */
  takeVictim(pid: number): boolean {
    return this.victims.delete(pid);
  }
}

/** The one registry of this process (one coordinator per process). */
export const activeTransactions = new ActiveTransactions();
