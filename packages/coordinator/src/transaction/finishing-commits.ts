/**
 * The workers' COMMIT PREPAREDs of transactions whose clients were already answered (the decision
 * is durable on the coordinator; the workers' parts finish after the answer, off the client's path).
 *
 * Until they finish, a worker still shows the rows as they were before the transaction. So a
 * statement that reaches a worker after a commit was acknowledged, in any session of this
 * process, first waits for the commits on that worker acknowledged before: the worker pool waits
 * before it lends a connection to it (`on`), and a statement of a transaction block that already
 * holds connections waits for those workers when it begins. A client told "COMMIT" (or
 * "COPY 20000") whose other connection reads next sees what it wrote, as with one PostgreSQL; a
 * worker whose COMMIT PREPARED hangs holds up only the statements that reach it.
 *
 * With several coordinator processes, a reader may be in another: commits are answered once their
 * COMMIT PREPAREDs are done (`waitForIt`).
 */
export class FinishingCommits {
  /** Pending commits by worker (`host:port`). */
  private readonly pending = new Map<string, Set<Promise<void>>>();

  /**
   * @param targets the workers whose parts it commits
   * @param waitForIt the statements that must see the commit may run where they cannot wait for
   *   it (another coordinator process): the client is answered after the COMMIT PREPAREDs then
   * @returns what the committer awaits before answering its client
   */
  add(finishing: Promise<void>, targets: readonly string[], waitForIt = false): Promise<void> {
    for (const target of targets) {
      const set = this.pending.get(target) ?? new Set();
      set.add(finishing);
      this.pending.set(target, set);
    }
    void finishing.finally(() => {
      for (const target of targets) {
        const set = this.pending.get(target);
        set?.delete(finishing);
        if (set?.size === 0) this.pending.delete(target);
      }
    });
    return waitForIt ? finishing : Promise.resolve();
  }

  /** No commit is finishing (what nearly every statement finds: it need not look further). */
  get idle(): boolean {
    return this.pending.size === 0;
  }

  /** Resolves once the commits on `target` acknowledged so far have finished; undefined when there are none. */
  on(target: string): Promise<void> | undefined {
    const set = this.pending.get(target);
    if (set === undefined || set.size === 0) return undefined;
    return Promise.allSettled([...set]).then(() => {});
  }

  /** Resolves once the commits on these workers (every worker when not given) have finished. */
  async settled(targets?: Iterable<string>): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const target of targets ?? [...this.pending.keys()]) {
      const wait = this.on(target);
      if (wait) waits.push(wait);
    }
    if (waits.length > 0) await Promise.all(waits);
  }
}

/** Those of this coordinator process: every session's statements wait for them. */
export const finishingCommits = new FinishingCommits();
