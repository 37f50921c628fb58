/**
 * The workers' COMMIT PREPAREDs of transactions whose clients were already answered (the decision
 * is durable on the coordinator; the workers' parts finish after the answer, off the client's path).
 *
 * Until they finish, a worker still shows the rows as they were before the transaction, so a
 * statement that begins after a commit was acknowledged, in any session of this process, first
 * waits for the commits acknowledged before it: a client told "COMMIT" (or "COPY 20000") whose
 * other connection reads next sees what it wrote, as with one PostgreSQL. With several coordinator
 * processes, a reader may be in another: commits are answered once their COMMIT PREPAREDs are done.
 */
export class FinishingCommits {
  private readonly pending = new Set<Promise<void>>();

  /**
   * @param waitForIt the statements that must see the commit may run where they cannot wait for
   *   it (another coordinator process): the client is answered after the COMMIT PREPAREDs then.
   * @returns what the committer awaits before answering its client
   */
  add(finishing: Promise<void>, waitForIt = false): Promise<void> {
    this.pending.add(finishing);
    void finishing.finally(() => this.pending.delete(finishing));
    return waitForIt ? finishing : Promise.resolve();
  }

  /** Resolves once every commit added before this call has finished on its workers. */
  async settled(): Promise<void> {
    if (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }
}

/** Those of this coordinator process: every session's statement waits for them. */
export const finishingCommits = new FinishingCommits();
