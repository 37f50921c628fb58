import { HerdError, SqlState } from "@herd/shared";
import { type BackendConnection, type BackendTarget, connectBackend } from "./backend-connection.js";
import { BufferWriter } from "./buffer-writer.js";
import { encodeTerminate } from "./frontend-messages.js";

/** What sessions lend and take back: one role's connections to one database, with the same startup parameters. */
export interface BackendLender {
  /** A connection for the session: an idle one, or a new one once there is room. */
  acquire(): Promise<BackendConnection>;
  /** Takes back a connection that is idle ('I') and holds nothing of the session's. */
  release(connection: BackendConnection): void;
  /** Forgets a connection that is closing or closed (its room goes to the next in line). */
  discard(connection: BackendConnection): void;
  /**
   * The session keeps its connection but holds nothing on it: the pool may take it back whenever
   * another session needs one (or it stays unused for the idle time). Cheaper than giving it
   * back after every statement: a busy session keeps its connection as long as nobody waits.
   */
  offer(holder: BackendHolder): void;
  /** The session is using its connection again. */
  withdraw(holder: BackendHolder): void;
}

/** A session that offered its connection (BackendLender.offer). */
export interface BackendHolder {
  /** Gives the connection up, detached from the session; undefined when it can no longer. */
  surrender(): BackendConnection | undefined;
}

interface Offer {
  readonly key: string;
  readonly since: number;
}

export interface BackendPoolOptions {
  /** Connections this process may hold open at once (leased and idle together). */
  readonly max: number;
  /** A session waits this long for a connection before it is told no (ms). */
  readonly waitMs?: number;
  /** An idle connection unused this long is closed (ms). */
  readonly idleMs?: number;
}

interface Idle {
  readonly connection: BackendConnection;
  readonly key: string;
  since: number;
}

interface Waiter {
  readonly key: string;
  readonly open: () => Promise<BackendConnection>;
  readonly resolve: (connection: BackendConnection) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

const DEFAULT_WAIT_MS = 120_000;
const DEFAULT_IDLE_MS = 30_000;

/**
 * The connections of one coordinator process to its own PostgreSQL, shared by the client
 * sessions between transactions (as a transaction-mode pooler shares them): a session holds one
 * while a statement, a transaction block or a session-level object (SET, a prepared statement,
 * a temporary table, LISTEN, …) needs it, and gives it back otherwise. Connections are shared
 * only between sessions of the same role, database and startup parameters (`key`), so what
 * PostgreSQL set up at login is the same for each.
 *
 * At most `max` are open. A session that needs one when none is idle and there is no room waits
 * in line (FIFO); a connection given back goes to the first in line, or is closed to make room
 * for one of another key. A session never waits while holding one (it needs only one), so the
 * line cannot close into a cycle.
 */
export class BackendPool {
  private open = 0;
  private readonly idle: Idle[] = [];
  /** Sessions' connections that may be taken back, oldest offer first. */
  private readonly offered = new Map<BackendHolder, Offer>();
  private readonly waiters: Waiter[] = [];
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly options: BackendPoolOptions) {
    this.sweeper = setInterval(() => this.closeIdle(this.idleMs), Math.min(this.idleMs, 5_000));
    this.sweeper.unref();
  }

  private get idleMs(): number {
    return this.options.idleMs ?? DEFAULT_IDLE_MS;
  }

  /** Connections open now (leased and idle), and how many of them are idle. */
  get size(): { readonly open: number; readonly idle: number; readonly waiting: number } {
    return { open: this.open, idle: this.idle.length, waiting: this.waiters.length };
  }

  /**
   * A new connection, PostgreSQL checking the login as it does for every connection (LOGIN,
   * VALID UNTIL, CONNECTION LIMIT, CONNECT on the database): a session's first, whose
   * ParameterStatus values the client is told. It waits for room as `acquire` does.
   */
  connect(target: BackendTarget, parameters: ReadonlyMap<string, string>): Promise<BackendConnection> {
    return this.take(undefined, () => connectBackend(target, parameters));
  }

  /**
   * What a session of `parameters` (user, database, …) logging in with `target` borrows from;
   * it takes the backend of pid `home` (its first) whenever that one is idle.
   */
  lender(target: BackendTarget, parameters: ReadonlyMap<string, string>, home: number): BackendLender {
    const key = JSON.stringify([...parameters].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    return {
      acquire: () => this.take(key, () => connectBackend(target, parameters), home),
      release: (connection) => this.giveBack(key, connection),
      discard: (connection) => this.forget(connection),
      offer: (holder) => {
        this.offered.set(holder, { key, since: Date.now() });
        if (this.waiters.length > 0) this.reclaim(holder);
      },
      withdraw: (holder) => {
        this.offered.delete(holder);
      },
    };
  }

  /** Takes an offered connection back from its session: to the first in line, or idle. */
  private reclaim(holder: BackendHolder): void {
    const offer = this.offered.get(holder);
    this.offered.delete(holder);
    const connection = offer && holder.surrender();
    if (offer && connection) this.giveBack(offer.key, connection);
  }

  /** An offered connection of `key` (any key when undefined), taken from its session. */
  private takeOffered(key: string | undefined): { connection: BackendConnection; key: string } | undefined {
    for (const [holder, offer] of this.offered) {
      if (key !== undefined && offer.key !== key) continue;
      this.offered.delete(holder);
      const connection = holder.surrender();
      if (connection) return { connection, key: offer.key };
    }
    return undefined;
  }

  /** Closes the idle connections unused for `olderThanMs` (all of them with 0: DROP DATABASE needs none left). */
  closeIdle(olderThanMs = 0): void {
    const now = Date.now();
    for (const [holder, offer] of this.offered) {
      if (now - offer.since < olderThanMs) continue;
      this.offered.delete(holder);
      const connection = holder.surrender();
      if (connection) this.terminate(connection);
    }
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const entry = this.idle[i] as Idle;
      if (now - entry.since < olderThanMs) continue;
      this.idle.splice(i, 1);
      this.terminate(entry.connection);
    }
  }

  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    this.closeIdle();
    this.offered.clear();
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(
        new HerdError("the server is shutting down", { sqlState: SqlState.adminShutdown, severity: "FATAL" }),
      );
    }
  }

  private take(
    key: string | undefined,
    open: () => Promise<BackendConnection>,
    home?: number,
  ): Promise<BackendConnection> {
    if (key !== undefined) {
      // the session's own first, else the most recently used: its server process is warm, the
      // others may age out
      let found = -1;
      for (let i = this.idle.length - 1; i >= 0; i--) {
        const entry = this.idle[i] as Idle;
        if (entry.key !== key) continue;
        if (found < 0) found = i;
        if (entry.connection.processId !== home) continue;
        found = i;
        break;
      }
      if (found >= 0) {
        const [entry] = this.idle.splice(found, 1) as [Idle];
        this.watchIdle(entry.connection, false);
        return Promise.resolve(entry.connection);
      }
      if (this.open >= this.options.max) {
        const offered = this.takeOffered(key);
        if (offered) return Promise.resolve(offered.connection);
      }
    }
    if (this.open >= this.options.max) {
      // room for a connection of another key (or a session's first): an idle one of another
      // key, else one a session offered, is closed for it
      if (this.idle.length > 0) this.terminate((this.idle.shift() as Idle).connection);
      else {
        const offered = this.takeOffered(undefined);
        if (offered) this.terminate(offered.connection);
      }
    }
    if (this.open < this.options.max && this.waiters.length === 0) return this.opening(open);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const at = this.waiters.indexOf(waiter);
        if (at >= 0) this.waiters.splice(at, 1);
        reject(
          new HerdError("no connection to the coordinator's PostgreSQL became free in time", {
            sqlState: SqlState.tooManyConnections,
            severity: "FATAL",
            detail: `all ${this.options.max} of this coordinator process's connections are held by sessions in a transaction or with session state`,
            hint: "end idle transactions, or raise the coordinator's max_connections",
          }),
        );
      }, this.options.waitMs ?? DEFAULT_WAIT_MS);
      timer.unref();
      const waiter: Waiter = { key: key ?? "", open, resolve, reject, timer };
      this.waiters.push(waiter);
    });
  }

  private opening(open: () => Promise<BackendConnection>): Promise<BackendConnection> {
    this.open += 1;
    return open().catch((error: unknown) => {
      this.open -= 1;
      this.serveNext();
      throw error;
    });
  }

  private giveBack(key: string, connection: BackendConnection): void {
    if (connection.socket.destroyed || this.closed) {
      this.forget(connection);
      if (!connection.socket.destroyed) this.terminate(connection, false);
      return;
    }
    const at = this.waiters.findIndex((waiter) => waiter.key === key);
    if (at >= 0) {
      const [waiter] = this.waiters.splice(at, 1) as [Waiter];
      clearTimeout(waiter.timer);
      waiter.resolve(connection);
      return;
    }
    this.idle.push({ connection, key, since: Date.now() });
    this.watchIdle(connection, true);
    // one of another key waits: this connection makes room for it
    if (this.waiters.length > 0) this.terminate((this.idle.pop() as Idle).connection);
  }

  /** A connection closed: its room goes to the first in line. */
  private forget(connection: BackendConnection): void {
    const at = this.idle.findIndex((entry) => entry.connection === connection);
    if (at >= 0) this.idle.splice(at, 1);
    this.open -= 1;
    this.serveNext();
  }

  private serveNext(): void {
    while (this.waiters.length > 0 && this.open < this.options.max) {
      const waiter = this.waiters.shift() as Waiter;
      clearTimeout(waiter.timer);
      this.opening(waiter.open).then(waiter.resolve, waiter.reject);
    }
  }

  /** Ends a connection politely; its room is counted free when its socket has closed. */
  private terminate(connection: BackendConnection, counted = true): void {
    const socket = connection.socket;
    if (counted) {
      this.watchIdle(connection, false);
      socket.once("close", () => this.forget(connection));
    }
    socket.on("error", () => {});
    if (socket.destroyed) return;
    const w = new BufferWriter(8);
    encodeTerminate(w);
    socket.end(w.flush());
    setTimeout(() => socket.destroy(), 5_000).unref();
  }

  /** While idle, a connection the server closes (a restart, pg_terminate_backend) leaves the pool. */
  private watchIdle(connection: BackendConnection, on: boolean): void {
    const socket = connection.socket;
    if (!on) {
      socket.removeListener("close", this.idleClosed);
      socket.removeListener("error", ignore);
      return;
    }
    socket.resume();
    socket.on("error", ignore);
    socket.on("close", this.idleClosed);
  }

  private readonly idleClosed = (): void => {
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const entry = this.idle[i] as Idle;
      if (!entry.connection.socket.destroyed) continue;
      this.idle.splice(i, 1);
      this.forget(entry.connection);
    }
  };
}

function ignore(): void {}
