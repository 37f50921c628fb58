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

/**
 * A wait for room that ended without it (the statement was cancelled, the session ended, it waited
 * too long): the worker itself may be fine, so a read does not go to another placement for it.
 */
export class RoomRefused extends HerdError {}

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
  /**
   * It holds nothing another session could be waiting for (no transaction block, no lock on the
   * coordinator): only then may it wait for room without risking a deadlock nobody would see.
   */
  mayWait(): boolean;
}

/** A request waiting for room on one server. */
export interface RoomWaiter {
  readonly server: ServerState;
  readonly holder: WorkerHolder;
  readonly granted: () => void;
  readonly refused: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** One server's connections: how many are lent, the idle ones by role, who waits for room. */
interface ServerState {
  readonly key: string;
  lent: number;
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
  private closed = false;

  constructor(private readonly options: WorkerPoolOptions) {}

  get connectionsPerWorker(): number {
    return this.options.connectionsPerWorker ?? DEFAULT_CONNECTIONS_PER_WORKER;
  }

  private get maxPerServer(): number {
    return this.options.maxPerServer ?? DEFAULT_MAX_PER_SERVER;
  }

  /** A read could not reach this server: reads prefer other placements for a while. */
  markDown(server: ServerAddress): void {
    this.down.set(`${server.host}:${server.port}`, Date.now() + DOWN_FOR_MS);
  }

  isDown(server: ServerAddress): boolean {
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
    const key = `${server.host}:${server.port}`;
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

  /** Gives a connection back: kept when it is healthy, idle, outside a transaction and there is room. */
  release(connection: WorkerConnection): void {
    const lent = this.lent.get(connection);
    const state = lent?.server ?? this.stateOf(connection.target);
    if (lent) this.lent.delete(connection);
    if (
      this.closed ||
      connection.broken ||
      !connection.idle ||
      connection.status !== "I" ||
      (lent ? state.lent - 1 : state.lent) + state.idleCount >= this.maxPerServer
    ) {
      connection.close();
    } else {
      const list = state.idle.get(connection.login) ?? [];
      list.push(connection);
      state.idle.set(connection.login, list);
      state.idleCount += 1;
    }
    if (lent) this.vacate(state, lent.holder);
  }

  /**
   * Room on each of `servers` for `holder`, before it takes any lock: a write outside a transaction
   * block waits here, holding nothing, rather than for its connections once its locks are held
   * (where sessions waiting for those locks could hold the room it waits for). The connections it
   * then acquires take the room reserved; what it does not take goes back with `unreserveAll`.
   */
  async reserveFor(servers: readonly ServerAddress[], holder: WorkerHolder): Promise<void> {
    const keys = [...new Set(servers.map((server) => `${server.host}:${server.port}`))];
    const outcomes = await Promise.allSettled(
      keys.map(async (key) => {
        await this.room(this.stateOf(key), holder);
        holder.reserved.set(key, (holder.reserved.get(key) ?? 0) + 1);
      }),
    );
    const refused = outcomes.find((outcome) => outcome.status === "rejected");
    if (refused) {
      this.unreserveAll(holder);
      throw (refused as PromiseRejectedResult).reason;
    }
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
      this.forget(waiter);
      waiter.refused(error);
    }
  }

  close(): void {
    this.closed = true;
    for (const state of this.servers.values()) {
      for (const list of state.idle.values()) for (const connection of list) connection.close();
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
      state = { key, lent: 0, idle: new Map(), idleCount: 0, waiters: [] };
      this.servers.set(key, state);
    }
    return state;
  }

  /**
   * Counts a connection to the server as lent to `holder`, at once or, when the server is full and
   * the holder holds nothing and may wait, once its turn comes.
   */
  private room(state: ServerState, holder: WorkerHolder | undefined): Promise<void> | undefined {
    const full = state.lent >= this.maxPerServer || state.waiters.length > 0;
    if (holder && full && holder.held === 0 && holder.mayWait()) return this.waitForRoom(state, holder);
    this.occupy(state, holder);
    return undefined;
  }

  /** Counts a connection as lent to `holder`; a holder's first one lets its other requests in at once. */
  private occupy(state: ServerState, holder: WorkerHolder | undefined): void {
    state.lent += 1;
    if (!holder) return;
    holder.held += 1;
    if (holder.held === 1) {
      for (const waiter of [...holder.waiting]) {
        this.forget(waiter);
        this.occupy(waiter.server, holder);
        waiter.granted();
      }
    }
  }

  /** A lent connection came back (or never came): its room goes to the next in line. */
  private vacate(state: ServerState, holder: WorkerHolder | undefined): void {
    state.lent -= 1;
    if (holder) holder.held -= 1;
    // idle connections keep nobody out: a waiter of another role closes one to make room (take)
    while (state.waiters.length > 0 && state.lent < this.maxPerServer) {
      const waiter = state.waiters[0] as RoomWaiter;
      this.forget(waiter);
      this.occupy(state, waiter.holder);
      waiter.granted();
    }
  }

  private waitForRoom(state: ServerState, holder: WorkerHolder): Promise<void> {
    return new Promise((resolve, reject) => {
      const waitMs = this.options.waitMs ?? DEFAULT_WAIT_MS;
      const waiter: RoomWaiter = {
        server: state,
        holder,
        granted: () => resolve(),
        refused: reject,
        timer: setTimeout(() => {
          this.forget(waiter);
          reject(
            new RoomRefused(`no connection to the worker at ${state.key} became free within ${waitMs / 1000} s`, {
              sqlState: SqlState.tooManyConnections,
              detail: `${state.lent} connections to it are in use by this coordinator process`,
              hint: "Raise HERD_WORKER_CONNECTIONS, or end idle transactions that hold connections to the workers.",
            }),
          );
        }, waitMs),
      };
      waiter.timer.unref();
      state.waiters.push(waiter);
      holder.waiting.add(waiter);
    });
  }

  private forget(waiter: RoomWaiter): void {
    clearTimeout(waiter.timer);
    waiter.holder.waiting.delete(waiter);
    const index = waiter.server.waiters.indexOf(waiter);
    if (index >= 0) waiter.server.waiters.splice(index, 1);
  }

  /** An idle connection of `login` to the server, or a new one (an idle one of another role closed when full). */
  private async take(server: ServerAddress, state: ServerState, login: string): Promise<WorkerConnection> {
    const list = state.idle.get(login);
    while (list && list.length > 0) {
      const connection = list.pop() as WorkerConnection;
      state.idleCount -= 1;
      if (!connection.broken) return connection;
      connection.close();
    }
    if (state.lent + state.idleCount > this.maxPerServer) this.closeOneIdle(state);
    return this.open(server, state.key, login);
  }

  /** Makes room for a connection of another role: the oldest idle connection to the server is closed. */
  private closeOneIdle(state: ServerState): void {
    for (const list of state.idle.values()) {
      const connection = list.shift();
      if (connection) {
        state.idleCount -= 1;
        connection.close();
        return;
      }
    }
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
