import { Defaults, errorMessage, HerdError, isHerdError, type Logger, SqlState, type SqlStateCode } from "@herd/shared";
import { BackendStartupError } from "../protocol/backend-connection.js";
import type { ClusterCredentials } from "./cluster-credentials.js";
import { PgConnection } from "./pg-connection.js";
import type { ConnectionPool, ServerAddress, WorkerConnection } from "./worker-connection.js";

export interface WorkerPoolOptions {
  /** Passwords for each role's worker connections (cluster-credentials.ts). */
  readonly credentials: ClusterCredentials;
  readonly database: string;
  /**
   * Connections to one server this pool keeps open (lent and idle, every role together). Sessions
   * that hold no connection wait for room; one that holds one already never waits (see acquire).
   */
  readonly maxPerServer?: number;
  /** A session waits this long for room before it is told no (ms). */
  readonly waitMs?: number;
  /** An idle connection unused this long is closed (ms). */
  readonly idleMs?: number;
  /** Connections a multi-shard read uses per worker at most (its shards are spread over them). */
  readonly connectionsPerWorker?: number;
  /**
   * What to wait for before a connection to `target` is lent (undefined: nothing): the commits
   * acknowledged on it that are still finishing (transaction/finishing-commits.ts).
   */
  readonly beforeUse?: (target: string) => Promise<void> | undefined;
  readonly logger: Logger;
}

const DEFAULT_CONNECTIONS_PER_WORKER = 2;
const DEFAULT_MAX_PER_SERVER = 32;
const DEFAULT_WAIT_MS = 120_000;
const DOWN_FOR_MS = 5000;
/** As PgBouncer's server_idle_timeout: a burst's connections do not stay on the workers for good. */
const DEFAULT_IDLE_MS = 60_000;

/**
 * A wait for room that ended without it (the statement was cancelled, the session ended, it waited
 * too long): the worker itself may be fine, so a read does not go to another placement for it.
 */
export class RoomRefused extends HerdError {}

/** Servers' `host:port`, made once per server object (a catalog's nodes live as long as it does). */
const serverKeys = new WeakMap<ServerAddress, string>();

function serverKey(server: ServerAddress): string {
  let key = serverKeys.get(server);
  if (key === undefined) {
    key = `${server.host}:${server.port}`;
    serverKeys.set(server, key);
  }
  return key;
}

/** The statement's statement_timeout ended its wait for room, as PostgreSQL words it. */
function statementTimedOut(): RoomRefused {
  return new RoomRefused("canceling statement due to statement timeout", {
    sqlState: SqlState.queryCanceled,
    detail: "It was waiting for a connection to a worker (HERD_WORKER_CONNECTIONS are all in use).",
  });
}

/**
 * Who a connection is lent to (a client session: connection/session-workers.ts). The pool counts
 * what each holds: only a holder that holds nothing waits for room.
 */
export interface WorkerHolder {
  /** Connections lent to it now, on their way or reserved (see WorkerPool.reserveFor). */
  held: number;
  /** Room it reserved and has not taken a connection for yet, by server. */
  readonly reserved: Map<string, number>;
  /** Its requests waiting for room, on any server. */
  readonly waiting: Set<RoomWaiter>;
  /** When its statement's statement_timeout ends a wait (ms since the epoch; undefined: none). */
  readonly waitDeadline?: number;
  /**
   * It holds nothing another session could be waiting for (no transaction block, no lock on the
   * coordinator): only then may it wait for room without risking a deadlock nobody would see.
   */
  mayWait(): boolean;
}

/**
 * A request waiting for room: on one server (a connection), or on each of several at once (a
 * write's reservation, reserveFor). It is in the line of every one of them.
 */
export interface RoomWaiter {
  readonly servers: readonly ServerState[];
  readonly holder: WorkerHolder;
  readonly granted: () => void;
  readonly refused: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/**
 * One server's connections: the room lent, the connections open, the idle ones by role, who waits
 * for room. Room and connections are counted apart: room is taken before a connection is (a
 * waiter granted room, a write's reservation), so while room is full some of it has no connection
 * yet, and an idle connection is kept for it as long as the connections open fit under the cap.
 */
interface ServerState {
  readonly key: string;
  /** Room lent: connections lent, and room granted or reserved that has not taken its connection yet. */
  lent: number;
  /** Connections open to the server, lent or idle. */
  open: number;
  readonly idle: Map<string, WorkerConnection[]>;
  idleCount: number;
  readonly waiters: RoomWaiter[];
}

/**
 * Connections to the workers' PostgreSQL servers, kept open between statements. A statement
 * outside a transaction block borrows one per placement it reaches and gives it back at once;
 * a transaction block keeps what it borrowed until COMMIT or ROLLBACK.
 *
 * Each connection is logged in as one role (a client session's: the worker checks its privileges
 * and row-level security; or `postgres`, herd's own work) and is only ever lent for that role:
 * a connection logged in as a superuser and switched with SET ROLE could be switched back by the
 * client's own SQL (`set_config('role', 'none', false)`), one logged in as the role cannot.
 */
export class WorkerPool implements ConnectionPool {
  private readonly servers = new Map<string, ServerState>();
  /** Connections lent now, and to whom (undefined: herd's own work, which never waits). */
  private readonly lent = new Map<WorkerConnection, { server: ServerState; holder: WorkerHolder | undefined }>();
  /** Servers that could not be reached, and until when reads avoid them. */
  private readonly down = new Map<string, number>();
  /** When each idle connection was given back. */
  private readonly idleSince = new WeakMap<WorkerConnection, number>();
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly options: WorkerPoolOptions) {
    const idleMs = options.idleMs ?? DEFAULT_IDLE_MS;
    this.sweeper = setInterval(() => this.closeIdle(idleMs), Math.min(idleMs, 5_000));
    this.sweeper.unref();
  }

  get connectionsPerWorker(): number {
    return this.options.connectionsPerWorker ?? DEFAULT_CONNECTIONS_PER_WORKER;
  }

  private get maxPerServer(): number {
    return this.options.maxPerServer ?? DEFAULT_MAX_PER_SERVER;
  }

  /** Room lent on `server` now (connections lent, and room granted or reserved not taken yet). */
  roomLent(server: ServerAddress): number {
    return this.servers.get(`${server.host}:${server.port}`)?.lent ?? 0;
  }

  /** A read could not reach this server: reads prefer other placements for a while. */
  markDown(server: ServerAddress): void {
    this.down.set(`${server.host}:${server.port}`, Date.now() + DOWN_FOR_MS);
  }

  isDown(server: ServerAddress): boolean {
    if (this.down.size === 0) return false;
    const until = this.down.get(`${server.host}:${server.port}`);
    return until !== undefined && until > Date.now();
  }

  /**
   * A connection to `server` logged in as `login`. With `holder` (a client session), the server's
   * connections are capped at `maxPerServer`: a holder that holds nothing (no connection, no
   * transaction block, no lock: `mayWait`) waits in line for room; any other (a block, the rest of
   * a multi-shard read, a write that reserved its room with `reserveFor`) gets it at once, over the
   * cap if need be. Only requests holding nothing wait, so no cycle of waits forms through the cap,
   * across workers or with the coordinator's locks; the cap is soft by what blocks and statements
   * already holding a connection reach beyond it.
   */
  async acquire(
    server: ServerAddress,
    login: string = Defaults.superuser,
    holder?: WorkerHolder,
  ): Promise<WorkerConnection> {
    const key = serverKey(server);
    const finishing = this.options.beforeUse?.(key);
    if (finishing) await finishing;
    const state = this.stateOf(key);
    const reserved = holder?.reserved.get(key) ?? 0;
    if (holder && reserved > 0) holder.reserved.set(key, reserved - 1);
    else {
      // (awaited only when it must wait: the common case costs no extra promise)
      const wait = this.room(state, holder);
      if (wait) await wait;
    }
    let connection: WorkerConnection;
    try {
      connection = await this.take(server, state, login);
    } catch (error) {
      this.vacate(state, holder);
      throw error;
    }
    this.lent.set(connection, { server: state, holder });
    return connection;
  }

  /**
   * An idle connection of `login` to `server` that `holder` may have right now, without waiting
   * for anything (room, a commit still finishing there, a new connection); undefined when
   * `acquire` must be used. The routed read's path: no promise, no wait.
   */
  acquireIdle(server: ServerAddress, login: string, holder?: WorkerHolder): WorkerConnection | undefined {
    const key = serverKey(server);
    const state = this.servers.get(key);
    const list = state?.idle.get(login);
    const connection = list?.[list.length - 1];
    if (!state || !list || !connection || connection.broken) return undefined;
    if (this.options.beforeUse?.(key) || (holder?.reserved.get(key) ?? 0) > 0) return undefined;
    if (this.mustWait(state, holder)) return undefined;
    list.pop();
    state.idleCount -= 1;
    this.occupy(state, holder);
    this.lent.set(connection, { server: state, holder });
    return connection;
  }

  /** Gives a connection back: kept when it is healthy, idle, outside a transaction and there is room. */
  release(connection: WorkerConnection): void {
    const lent = this.lent.get(connection);
    // given back twice: it is idle already, or closed and no longer counted
    if (!lent) return;
    const state = lent.server;
    this.lent.delete(connection);
    if (
      this.closed ||
      connection.broken ||
      !connection.idle ||
      connection.status !== "I" ||
      // (over the cap only while blocks or herd's own work reach beyond it)
      state.open > this.maxPerServer
    ) {
      this.closeConnection(state, connection);
    } else {
      const list = state.idle.get(connection.login) ?? [];
      list.push(connection);
      state.idle.set(connection.login, list);
      this.idleSince.set(connection, Date.now());
      state.idleCount += 1;
    }
    this.vacate(state, lent.holder);
  }

  /**
   * Room on each of `servers` for `holder`, before it takes any lock: a write outside a transaction
   * block waits here, holding nothing, rather than for its connections once its locks are held
   * (where sessions waiting for those locks could hold the room it waits for). The connections it
   * then acquires take the room reserved; what it does not take goes back with `unreserveAll`.
   */
  async reserveFor(servers: readonly ServerAddress[], holder: WorkerHolder): Promise<void> {
    const states = [...new Set(servers.map((server) => `${server.host}:${server.port}`))].map((key) =>
      this.stateOf(key),
    );
    // (counted as reserved the moment the room is granted: a session that ends in between gives it back)
    const reserve = () => {
      for (const state of states) holder.reserved.set(state.key, (holder.reserved.get(state.key) ?? 0) + 1);
    };
    const full = states.some((state) => state.lent >= this.maxPerServer || state.waiters.length > 0);
    if (full && holder.held === 0 && holder.mayWait()) {
      // room on every server at once, or none: a write granted one server's room and sent over
      // the cap on the other opened (and then closed) a connection there for every statement
      await this.waitForRoom(states, holder, reserve);
      return;
    }
    for (const state of states) this.occupy(state, holder);
    reserve();
  }

  /** Gives back the room `holder` reserved and did not take. */
  unreserveAll(holder: WorkerHolder): void {
    const entries = [...holder.reserved];
    holder.reserved.clear();
    for (const [key, count] of entries) for (let i = 0; i < count; i++) this.vacate(this.stateOf(key), holder);
  }

  /** Ends every request of `holder` still waiting for room (its session was cancelled or ended). */
  refuse(holder: WorkerHolder, error: RoomRefused): void {
    for (const waiter of [...holder.waiting]) {
      this.withdraw(waiter);
      waiter.refused(error);
    }
  }

  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const state of this.servers.values()) {
      for (const list of state.idle.values()) for (const connection of list) this.closeConnection(state, connection);
      state.idle.clear();
      state.idleCount = 0;
      for (const waiter of [...state.waiters]) {
        this.forget(waiter);
        waiter.refused(new RoomRefused("the coordinator is shutting down", { sqlState: SqlState.adminShutdown }));
      }
    }
  }

  private stateOf(key: string): ServerState {
    let state = this.servers.get(key);
    if (!state) {
      state = { key, lent: 0, open: 0, idle: new Map(), idleCount: 0, waiters: [] };
      this.servers.set(key, state);
    }
    return state;
  }

  /**
   * Counts a connection to the server as lent to `holder`, at once or, when the server is full and
   * the holder holds nothing and may wait, once its turn comes.
   */
  private room(state: ServerState, holder: WorkerHolder | undefined): Promise<void> | undefined {
    if (holder && this.mustWait(state, holder)) return this.waitForRoom([state], holder);
    this.occupy(state, holder);
    return undefined;
  }

  /** The server is full (or others wait for it) and `holder` holds nothing, so it waits in line. */
  private mustWait(state: ServerState, holder: WorkerHolder | undefined): holder is WorkerHolder {
    const full = state.lent >= this.maxPerServer || state.waiters.length > 0;
    return holder !== undefined && full && holder.held === 0 && holder.mayWait();
  }

  /** Counts a connection as lent to `holder`; a holder's first one lets its other requests in at once. */
  private occupy(state: ServerState, holder: WorkerHolder | undefined): void {
    state.lent += 1;
    if (!holder) return;
    holder.held += 1;
    if (holder.held === 1) {
      for (const waiter of [...holder.waiting]) {
        this.grant(waiter);
        this.regrant(waiter.servers);
      }
    }
  }

  /** A lent connection came back (or never came): its room goes to the next in line. */
  private vacate(state: ServerState, holder: WorkerHolder | undefined): void {
    state.lent -= 1;
    if (holder) holder.held -= 1;
    this.regrant([state]);
  }

  /**
   * Lets in the waiters first in line on these servers that now have room on each of their
   * servers. Each server's line is in the order the requests came (a reservation joins all its
   * lines at once), so the request that came first is first in all of its lines, and no two
   * requests can each stand first in the other's way. Idle connections keep nobody out: a waiter
   * of another role closes one to make room (take).
   */
  private regrant(servers: Iterable<ServerState>): void {
    const pending = [...servers];
    for (let state = pending.pop(); state; state = pending.pop()) {
      for (let head = state.waiters[0]; head && this.ready(head); head = state.waiters[0]) {
        this.grant(head);
        for (const other of head.servers) if (other !== state) pending.push(other);
      }
    }
  }

  private ready(waiter: RoomWaiter): boolean {
    return waiter.servers.every((server) => server.lent < this.maxPerServer && server.waiters[0] === waiter);
  }

  private grant(waiter: RoomWaiter): void {
    this.forget(waiter);
    for (const server of waiter.servers) this.occupy(server, waiter.holder);
    waiter.granted();
  }

  private waitForRoom(servers: readonly ServerState[], holder: WorkerHolder, onGranted?: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      const waitMs = this.options.waitMs ?? DEFAULT_WAIT_MS;
      const untilDeadline = holder.waitDeadline === undefined ? Infinity : holder.waitDeadline - Date.now();
      const waiter: RoomWaiter = {
        servers,
        holder,
        granted: () => {
          onGranted?.();
          resolve();
        },
        refused: reject,
        timer: setTimeout(
          () => {
            this.withdraw(waiter);
            reject(untilDeadline < waitMs ? statementTimedOut() : this.waitedTooLong(servers, waitMs));
          },
          Math.max(0, Math.min(untilDeadline, waitMs)),
        ),
      };
      waiter.timer.unref();
      for (const server of servers) server.waiters.push(waiter);
      holder.waiting.add(waiter);
    });
  }

  private waitedTooLong(servers: readonly ServerState[], waitMs: number): RoomRefused {
    const where = servers.length === 1 ? "the worker" : "each of the workers";
    const keys = servers.map((server) => server.key).join(", ");
    return new RoomRefused(`no connection to ${where} at ${keys} became free within ${waitMs / 1000} s`, {
      sqlState: SqlState.tooManyConnections,
      detail: `Connections in use by this coordinator process: ${servers.map((server) => `${server.lent} to ${server.key}`).join(", ")}.`,
      hint: "Raise HERD_WORKER_CONNECTIONS, or end idle transactions that hold connections to the workers.",
    });
  }

  /** Takes a waiter out of its lines. */
  private forget(waiter: RoomWaiter): void {
    clearTimeout(waiter.timer);
    waiter.holder.waiting.delete(waiter);
    for (const server of waiter.servers) {
      const index = server.waiters.indexOf(waiter);
      if (index >= 0) server.waiters.splice(index, 1);
    }
  }

  /** A waiter that gives up: those behind it may have room now. */
  private withdraw(waiter: RoomWaiter): void {
    this.forget(waiter);
    this.regrant(waiter.servers);
  }

  /** An idle connection of `login` to the server, or a new one (an idle one of another role closed when full). */
  private async take(server: ServerAddress, state: ServerState, login: string): Promise<WorkerConnection> {
    const list = state.idle.get(login);
    while (list && list.length > 0) {
      const connection = list.pop() as WorkerConnection;
      state.idleCount -= 1;
      if (!connection.broken) return connection;
      this.closeConnection(state, connection);
    }
    if (state.open >= this.maxPerServer) this.closeOneIdle(state);
    const connection = await this.open(server, state.key, login);
    state.open += 1;
    return connection;
  }

  /** Closes the connections idle for `ms` or longer (each role's list is oldest first). */
  private closeIdle(ms: number): void {
    const before = Date.now() - ms;
    for (const state of this.servers.values()) {
      for (const list of state.idle.values()) {
        while (list.length > 0 && (this.idleSince.get(list[0] as WorkerConnection) ?? 0) <= before) {
          state.idleCount -= 1;
          this.closeConnection(state, list.shift() as WorkerConnection);
        }
      }
    }
  }

  /** Makes room for a connection of another role: the oldest idle connection to the server is closed. */
  private closeOneIdle(state: ServerState): void {
    for (const list of state.idle.values()) {
      const connection = list.shift();
      if (connection) {
        state.idleCount -= 1;
        this.closeConnection(state, connection);
        return;
      }
    }
  }

  private closeConnection(state: ServerState, connection: WorkerConnection): void {
    state.open -= 1;
    connection.close();
  }

  private async open(server: ServerAddress, key: string, login: string): Promise<WorkerConnection> {
    let connection: PgConnection;
    try {
      connection = await PgConnection.open(
        { host: server.host, port: server.port, password: this.options.credentials.workerPassword(login) },
        new Map([
          ["user", login],
          ["database", this.options.database],
          ["application_name", "herd"],
          ["client_encoding", "UTF8"],
          ["DateStyle", "ISO, MDY"],
        ]),
      );
    } catch (error) {
      if (isHerdError(error)) throw error;
      if (
        error instanceof BackendStartupError &&
        !error.fields.code.startsWith("08") &&
        !error.fields.code.startsWith("57")
      ) {
        // the worker answered and refused this role (28P01: no such role there yet, 53300: full):
        // its own error, not a worker that cannot be reached
        throw new HerdError(`worker ${key} refused a connection as "${login}": ${error.message}`, {
          sqlState: error.fields.code as SqlStateCode,
          detail: error.fields.detail,
          hint: "Roles reach the workers within seconds of their creation; try again.",
        });
      }
      throw new HerdError(`could not connect to the worker at ${key}`, {
        sqlState: SqlState.connectionFailure,
        detail: errorMessage(error),
      });
    }
    this.down.delete(key);
    connection.onClose = (error) =>
      this.options.logger.debug("worker connection closed", { server: key, error: error.message });
    return connection;
  }
}
