import { randomInt, timingSafeEqual } from "node:crypto";

export interface Cancellable {
  /** Cancels the statement the session is running, wherever it runs. */
  cancel(): Promise<void>;
}

/**
 * BackendKeyData handed to clients, and what each key cancels. The process id is the pid of the
 * session's first coordinator-side PostgreSQL backend (what pg_backend_pid() and notifications
 * show while the session uses that backend, protocol/backend-pool.ts), or one of herd's when
 * another session still holds that pid; the secret is herd's own, so the client never learns a
 * PostgreSQL secret. A CancelRequest names a session, and the session forwards the cancel to
 * the servers running its statement.
 */
export class CancelRegistry {
  private readonly sessions = new Map<number, { readonly secretKey: number; readonly target: Cancellable }>();
  register(wanted: number, target: Cancellable): { processId: number; secretKey: number } {
    // (a backend that outlived its first session in the pool may have closed, and PostgreSQL
    // given its pid to a new one)
    let processId = wanted;
    while (this.sessions.has(processId)) processId = randomInt(0x10000000, 0x7fffffff);
    const secretKey = randomInt(-0x80000000, 0x7fffffff);
    this.sessions.set(processId, { secretKey, target });
    return { processId, secretKey };
  }

  unregister(processId: number): void {
    this.sessions.delete(processId);
  }

  /**
   * Where a key this process does not hold is tried next (the other coordinator processes: a
   * CancelRequest comes on a new connection, which any of them may have accepted).
   */
  elsewhere: ((processId: number, secretKey: number) => Promise<boolean>) | undefined;

  /** Cancels when the key matches; a wrong key is ignored silently, as PostgreSQL does. */
  async cancel(processId: number, secretKey: number): Promise<boolean> {
    if (this.sessions.has(processId)) return this.cancelHere(processId, secretKey);
    return (await this.elsewhere?.(processId, secretKey)) ?? false;
  }

  /** Cancels when this process holds the session and the key matches. */
  async cancelHere(processId: number, secretKey: number): Promise<boolean> {
    const entry = this.sessions.get(processId);
    if (!entry) return false;
    const expected = Buffer.alloc(4);
    const given = Buffer.alloc(4);
    expected.writeInt32BE(entry.secretKey);
    given.writeInt32BE(secretKey);
    if (!timingSafeEqual(expected, given)) return false;
    await entry.target.cancel();
    return true;
  }
}
