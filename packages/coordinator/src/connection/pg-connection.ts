import type { Socket } from "node:net";
import { HerdError, isHerdError, SqlState } from "@herd/shared";
import {
  type BackendConnection,
  type BackendTarget,
  connectBackend,
  sendCancelRequest,
} from "../protocol/backend-connection.js";
import {
  decodeCommandComplete,
  decodeDataRow,
  decodeNotice,
  decodeRowDescription,
  type FieldDescription,
  type TransactionStatus,
} from "../protocol/backend-messages.js";
import type { BackendHolder, BackendLender } from "../protocol/backend-pool.js";
import { BufferWriter } from "../protocol/buffer-writer.js";
import {
  encodeBind,
  encodeExecute,
  encodeParse,
  encodeQuery,
  encodeSync,
  encodeTarget,
  encodeTerminate,
} from "../protocol/frontend-messages.js";
import { BackendMessage, FrontendMessage } from "../protocol/message-codes.js";
import { type Frame, MessageFramer } from "../protocol/message-framer.js";
import { ServerError } from "./server-error.js";
import type { WorkerConnection } from "./worker-connection.js";

/** What one request's answers go to: every server message up to and including its ReadyForQuery. */
export interface Exchange {
  message(frame: Frame): void;
  /** The end of a received chunk: a relay writes what it gathered in one go. */
  chunkEnd?(): void;
}

export interface QueryResult {
  readonly fields: readonly FieldDescription[];
  readonly rows: readonly (Buffer | null)[][];
  readonly tag: string;
}

interface Pending {
  readonly exchange: Exchange;
  readonly resolve: (status: TransactionStatus) => void;
  readonly reject: (error: Error) => void;
}

/**
 * A client connection to one PostgreSQL server (a worker, or the coordinator's own), used by
 * herd's executor. Requests are pipelined: each ends in a Sync or a simple Query, so each gets
 * exactly one ReadyForQuery, and answers are handed, message by message, to the exchange that
 * asked, in order. Messages nobody asked for (notifications, parameter changes) go to
 * `unsolicited`.
 */
export class PgConnection implements WorkerConnection {
  status: TransactionStatus;
  /** Why the connection is unusable, once it is. */
  broken: Error | undefined;
  unsolicited: ((frame: Frame) => void) | undefined;
  /** Called once when the socket closes. */
  onClose: ((error: Error) => void) | undefined;
  /**
   * A leased connection has answered everything sent to it and is idle ('I'): its holder may
   * give the server connection back (`release`).
   */
  onIdle: (() => void) | undefined;
  /** Worker-side prepared statements: parameter types and SQL text → statement name. */
  readonly prepared = new Map<string, string>();
  /** The session settings last applied to this connection (see applySettings). */
  appliedSettings = "";
  /** The role it logged in as. */
  login = "";
  /**
   * Server connections taken so far (leased: one more each time one is attached). Bytes sent now
   * go to lease `nextLease`: what the session left on an earlier one (the unnamed statement) is
   * not there.
   */
  private leases = 0;
  private connection: BackendConnection | undefined;
  /** The last server connection attached (processId, secretKey: a cancel goes there). */
  private last: BackendConnection;
  /** Bytes sent while a leased connection has no server connection, written once one is attached. */
  private readonly outbox: Buffer[] = [];
  private acquiring = false;
  /** The server connection is offered to the lender (see release). */
  private offered = false;
  private readonly drainListeners = new Set<() => void>();
  private readonly framer = new MessageFramer(1024 * 1024 * 1024);
  private readonly pending: Pending[] = [];
  private readonly writer = new BufferWriter(256);
  private corked = false;

  /**
   * `lender`: the connection is leased (the coordinator's own, shared between client sessions,
   * protocol/backend-pool.ts): its server connection may be given back when idle and another
   * taken when something is sent again.
   */
  constructor(
    connection: BackendConnection,
    readonly target: string,
    private readonly address?: { readonly host: string; readonly port: number },
    private readonly lender?: BackendLender,
  ) {
    this.status = connection.status;
    this.last = connection;
    this.attach(connection);
  }

  static async open(target: BackendTarget, parameters: ReadonlyMap<string, string>): Promise<PgConnection> {
    const connection = new PgConnection(
      await connectBackend(target, parameters),
      `${target.host}:${target.port}`,
      target,
    );
    connection.login = parameters.get("user") ?? "";
    return connection;
  }

  /** The server process this connection talks to (or last talked to, while it holds none). */
  get processId(): number {
    return this.last.processId;
  }

  get secretKey(): number {
    return this.last.secretKey;
  }

  /** The lease bytes sent now reach (see `leases`). */
  get nextLease(): number {
    return this.connection ? this.leases : this.leases + 1;
  }

  /** It holds a server connection (always, unless leased). */
  get attached(): boolean {
    return this.connection !== undefined;
  }

  /** Asks the server to cancel what this connection is running. */
  cancel(): Promise<void> {
    if (!this.address || (this.lender && !this.connection)) return Promise.resolve();
    return sendCancelRequest(this.address.host, this.address.port, this.processId, this.secretKey);
  }

  get socket(): Socket {
    return (this.connection ?? this.last).socket;
  }

  get idle(): boolean {
    return this.pending.length === 0;
  }

  /**
   * A leased connection holds nothing now (nothing under way, no transaction open): its server
   * connection is offered to the lender, which takes it back when another session needs one
   * (BackendLender.offer); it stays attached until then. False when it cannot be.
   */
  release(): boolean {
    if (!this.releasable()) return false;
    if (!this.offered) {
      this.offered = true;
      (this.lender as BackendLender).offer(this.holder);
    }
    return true;
  }

  /** Gives a leased connection's server connection back now (the session ends); false when it cannot. */
  giveBack(): boolean {
    const connection = this.connection;
    if (!connection) return this.lender !== undefined && this.pending.length === 0 && !this.acquiring;
    if (!this.releasable()) return false;
    this.withdraw();
    this.detach();
    (this.lender as BackendLender).release(connection);
    return true;
  }

  private releasable(): boolean {
    return (
      this.lender !== undefined &&
      this.connection !== undefined &&
      this.pending.length === 0 &&
      this.status === "I" &&
      !this.acquiring &&
      this.framer.buffered === 0 &&
      this.broken === undefined
    );
  }

  private withdraw(): void {
    if (!this.offered) return;
    this.offered = false;
    this.lender?.withdraw(this.holder);
  }

  /** What the lender takes an offered server connection back through. */
  private readonly holder: BackendHolder = {
    surrender: () => {
      const connection = this.connection;
      if (!this.offered || !connection || !this.releasable()) return undefined;
      this.offered = false;
      this.detach();
      return connection;
    },
  };

  /** Resolves when every request sent so far has been answered (or the connection failed). */
  settled(): Promise<void> {
    if (this.pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const last = this.pending.at(-1) as Pending;
      const { resolve: done, reject } = last;
      this.pending[this.pending.length - 1] = {
        exchange: last.exchange,
        resolve: (status) => {
          done(status);
          resolve();
        },
        reject: (error) => {
          reject(error);
          resolve();
        },
      };
    });
  }

  /** Sends `request` (which must end with Sync or be a Query) and resolves at its ReadyForQuery. */
  exchange(request: Buffer | undefined, exchange: Exchange): Promise<TransactionStatus> {
    if (this.broken) return Promise.reject(connectionLost(this.target, this.broken));
    const done = new Promise<TransactionStatus>((resolve, reject) => this.pending.push({ exchange, resolve, reject }));
    if (request) this.send(request);
    return done;
  }

  /** Writes bytes that are part of a request already under way (CopyData, CopyDone). */
  write(bytes: Buffer): boolean {
    return this.send(bytes);
  }

  /**
   * Writes bytes; everything written in the same tick leaves in one system call (the socket is
   * corked until the tick ends). Requests are often pipelined (BEGIN, a statement, PREPARE), and on
   * loopback each write is a costly system call that also runs the receiver's side of TCP.
   */
  private send(bytes: Buffer): boolean {
    if (this.offered) this.withdraw();
    const connection = this.connection;
    if (!connection) {
      this.outbox.push(bytes);
      if (!this.acquiring) this.acquire();
      return true;
    }
    const socket = connection.socket;
    if (!this.corked) {
      this.corked = true;
      socket.cork();
      process.nextTick(() => {
        this.corked = false;
        socket.uncork();
      });
    }
    return socket.write(bytes);
  }

  /** Runs SQL (with text parameters when given) and gathers its rows; a server error is thrown. */
  async query(sql: string, parameters?: readonly (string | null)[]): Promise<QueryResult> {
    const w = this.writer;
    if (parameters === undefined) encodeQuery(w, sql);
    else {
      encodeParse(w, "", sql);
      encodeBind(w, {
        portal: "",
        statement: "",
        parameterFormats: [],
        parameters: parameters.map((p) => (p === null ? null : Buffer.from(p))),
        resultFormats: [],
      });
      encodeTarget(w, FrontendMessage.describe, "P", "");
      encodeExecute(w);
      encodeSync(w);
    }
    const collector = new ResultCollector();
    await this.exchange(w.flush(), collector);
    return collector.result();
  }

  onceDrained(resume: () => void): void {
    const socket = this.connection?.socket;
    if (!socket || socket.destroyed || !socket.writableNeedDrain) resume();
    else socket.once("drain", resume);
  }

  /** `listener` runs each time the socket has drained (until `offDrain`). */
  onDrain(listener: () => void): void {
    this.drainListeners.add(listener);
  }

  offDrain(listener: () => void): void {
    this.drainListeners.delete(listener);
  }

  pause(): void {
    this.connection?.socket.pause();
  }

  resume(): void {
    this.connection?.socket.resume();
  }

  /** Ends the session politely (PostgreSQL rolls back what is open). */
  close(): void {
    // ended on purpose: the socket's close that follows is no loss to report
    this.onClose = undefined;
    this.withdraw();
    this.broken ??= new Error("closed");
    const socket = this.connection?.socket;
    if (!socket) {
      // a leased connection holding no server connection: nothing to end, bytes waiting dropped
      this.outbox.length = 0;
      return;
    }
    if (socket.destroyed) return;
    const w = new BufferWriter(8);
    encodeTerminate(w);
    socket.end(w.flush());
  }

  destroy(): void {
    this.onClose = undefined;
    this.broken ??= new Error("closed");
    this.connection?.socket.destroy();
  }

  private attach(connection: BackendConnection): void {
    this.connection = connection;
    this.last = connection;
    this.leases += 1;
    const socket = connection.socket;
    socket.on("data", this.onData);
    socket.on("error", this.onError);
    socket.on("close", this.onSocketClose);
    socket.on("drain", this.onSocketDrain);
    if (connection.leftover && this.leases === 1) this.receive(connection.leftover);
  }

  private detach(): void {
    const socket = (this.connection as BackendConnection).socket;
    socket.off("data", this.onData);
    socket.off("error", this.onError);
    socket.off("close", this.onSocketClose);
    socket.off("drain", this.onSocketDrain);
    socket.resume();
    this.connection = undefined;
  }

  /** Takes a server connection from the lender, then writes what waited for it. */
  private acquire(): void {
    this.acquiring = true;
    (this.lender as BackendLender).acquire().then(
      (connection) => {
        this.acquiring = false;
        if (this.broken) {
          (this.lender as BackendLender).release(connection);
          return;
        }
        this.attach(connection);
        for (const bytes of this.outbox.splice(0)) this.send(bytes);
      },
      (error: Error) => {
        this.acquiring = false;
        this.outbox.length = 0;
        this.fail(error);
      },
    );
  }

  private readonly onData = (chunk: Buffer): void => this.receive(chunk);
  private readonly onError = (error: Error): void => this.fail(error);
  private readonly onSocketClose = (): void => this.fail(new Error(`connection to ${this.target} closed`));
  private readonly onSocketDrain = (): void => {
    for (const listener of this.drainListeners) listener();
  };

  private receive(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.framer.push(chunk);
    } catch (error) {
      this.fail(error as Error);
      this.socket.destroy();
      return;
    }
    for (const frame of frames) {
      const head = this.pending[0];
      if (!head) {
        // an offered connection ended by the server (pg_terminate_backend, a restart): the
        // session held nothing on it and takes another next time; its FATAL is not the client's
        if (this.offered && frame.type === BackendMessage.errorResponse) continue;
        this.unsolicited?.(frame);
        continue;
      }
      head.exchange.message(frame);
      if (frame.type === BackendMessage.readyForQuery) {
        this.status = String.fromCharCode(frame.body[0] as number) as TransactionStatus;
        head.exchange.chunkEnd?.();
        this.pending.shift();
        head.resolve(this.status);
      }
    }
    this.pending[0]?.exchange.chunkEnd?.();
    if (this.lender && this.pending.length === 0 && this.status === "I") this.onIdle?.();
  }

  private fail(error: Error): void {
    const connection = this.connection;
    if (this.offered && connection && this.pending.length === 0) {
      // (see receive: the session goes on, with another connection from its next statement)
      this.withdraw();
      this.detach();
      connection.socket.destroy();
      this.lender?.discard(connection);
      return;
    }
    this.broken ??= error;
    this.withdraw();
    if (this.lender && connection) {
      this.detach();
      connection.socket.destroy();
      this.lender.discard(connection);
    }
    const lost = isHerdError(error) ? error : connectionLost(this.target, error);
    for (const pending of this.pending.splice(0)) pending.reject(lost);
    const onClose = this.onClose;
    this.onClose = undefined;
    onClose?.(error);
  }
}

function connectionLost(target: string, error: Error): HerdError {
  return new HerdError(`connection to the server at ${target} was lost`, {
    sqlState: SqlState.connectionFailure,
    detail: error.message,
  });
}

/** Gathers a request's rows and command tag; remembers its first error. */
export class ResultCollector implements Exchange {
  fields: FieldDescription[] = [];
  readonly rows: (Buffer | null)[][] = [];
  tag = "";
  error: ServerError | undefined;

  message(frame: Frame): void {
    switch (frame.type) {
      case BackendMessage.rowDescription:
        this.fields = decodeRowDescription(frame.body);
        break;
      case BackendMessage.dataRow:
        this.rows.push(decodeDataRow(frame.body).map((v) => (v === null ? null : Buffer.from(v))));
        break;
      case BackendMessage.commandComplete:
        this.tag = decodeCommandComplete(frame.body);
        break;
      case BackendMessage.errorResponse:
        this.error ??= new ServerError(decodeNotice(frame.body));
        break;
    }
  }

  result(): QueryResult {
    if (this.error) throw this.error;
    return { fields: this.fields, rows: this.rows, tag: this.tag };
  }
}

/** The first column of the first row, as text (null for NULL or no row). */
export function firstValue(result: QueryResult): string | null {
  const value = result.rows[0]?.[0];
  return value === undefined || value === null ? null : value.toString("utf8");
}
