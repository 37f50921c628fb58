import type { Socket } from "node:net";
import { HerdError, SqlState } from "@herd/shared";
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
  readonly processId: number;
  readonly secretKey: number;
  /** Why the connection is unusable, once it is. */
  broken: Error | undefined;
  unsolicited: ((frame: Frame) => void) | undefined;
  /** Called once when the socket closes. */
  onClose: ((error: Error) => void) | undefined;
  /** Worker-side prepared statements: parameter types and SQL text → statement name. */
  readonly prepared = new Map<string, string>();
  /** The session settings last applied to this connection (see applySettings). */
  appliedSettings = "";
  /** The role it logged in as. */
  login = "";
  private readonly framer = new MessageFramer(1024 * 1024 * 1024);
  private readonly pending: Pending[] = [];
  private readonly writer = new BufferWriter(256);
  private corked = false;

  constructor(
    private readonly connection: BackendConnection,
    readonly target: string,
    private readonly address?: { readonly host: string; readonly port: number },
  ) {
    this.status = connection.status;
    this.processId = connection.processId;
    this.secretKey = connection.secretKey;
    const socket = connection.socket;
    socket.on("data", (chunk: Buffer) => this.receive(chunk));
    socket.on("error", (error) => this.fail(error));
    socket.on("close", () => this.fail(new Error(`connection to ${target} closed`)));
    if (connection.leftover) this.receive(connection.leftover);
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

  /** Asks the server to cancel what this connection is running. */
  cancel(): Promise<void> {
    if (!this.address) return Promise.resolve();
    return sendCancelRequest(this.address.host, this.address.port, this.processId, this.secretKey);
  }

  get socket(): Socket {
    return this.connection.socket;
  }

  get idle(): boolean {
    return this.pending.length === 0;
  }

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
    const socket = this.socket;
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
    if (this.socket.destroyed || !this.socket.writableNeedDrain) resume();
    else this.socket.once("drain", resume);
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  /** Ends the session politely (PostgreSQL rolls back what is open). */
  close(): void {
    if (this.socket.destroyed) return;
    const w = new BufferWriter(8);
    encodeTerminate(w);
    this.socket.end(w.flush());
    this.broken ??= new Error("closed");
  }

  destroy(): void {
    this.broken ??= new Error("closed");
    this.socket.destroy();
  }

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
  }

  private fail(error: Error): void {
    this.broken ??= error;
    for (const pending of this.pending.splice(0)) pending.reject(connectionLost(this.target, error));
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
