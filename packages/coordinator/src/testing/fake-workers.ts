import { HerdError, SqlState } from "@herd/shared";
import type { Exchange, QueryResult } from "../connection/pg-connection.js";
import { ResultCollector } from "../connection/pg-connection.js";
import type { ConnectionPool, ServerAddress, WorkerConnection } from "../connection/worker-connection.js";
import {
  encodeCommandComplete,
  encodeDataRow,
  encodeEmpty,
  encodeNotice,
  encodeReadyForQuery,
  encodeRowDescription,
  type NoticeFields,
  type TransactionStatus,
} from "../protocol/backend-messages.js";
import { BufferWriter } from "../protocol/buffer-writer.js";
import { decodeBind, decodeParse, decodeQuery, encodeQuery } from "../protocol/frontend-messages.js";
import { BackendMessage, FrontendMessage } from "../protocol/message-codes.js";
import { MessageFramer } from "../protocol/message-framer.js";

/** How a fake worker answers one statement. */
export interface FakeAnswer {
  readonly columns?: readonly string[];
  readonly rows?: readonly (readonly (string | null)[])[];
  /** The command tag; "SELECT <rows>" when left out. */
  readonly tag?: string;
  readonly error?: NoticeFields;
  readonly notice?: NoticeFields;
}

/** Answers statements by their SQL (and the worker they reach); BEGIN/COMMIT/ROLLBACK are answered by the fake itself. */
export type Script = (sql: string, worker: string) => FakeAnswer;

/**
 * A worker connection that speaks the protocol from a script instead of a PostgreSQL server: it
 * reads the requests the executor writes (Parse/Bind/Execute/Sync or Query) and answers with the
 * messages a server would send, a tick later, as a socket would. Every statement is logged.
 * (A mock: used to cause and observe what real servers make hard — a chosen worker failing one
 * statement or one COMMIT — while the same paths are tested on real servers under test/.)
 */
let nextProcessId = 1;

export class FakeWorkerConnection implements WorkerConnection {
  status: TransactionStatus = "I";
  readonly processId = nextProcessId++;
  broken: Error | undefined;
  readonly prepared = new Map<string, string>();
  appliedSettings = "";
  login = "postgres";
  paused = false;
  private pending = 0;

  constructor(
    readonly target: string,
    private readonly workers: FakeWorkers,
  ) {}

  get idle(): boolean {
    return this.pending === 0;
  }

  async exchange(request: Buffer | undefined, exchange: Exchange): Promise<TransactionStatus> {
    if (this.broken) throw this.broken;
    this.pending += 1;
    const answer = this.answer(request ?? Buffer.alloc(0));
    await new Promise((resolve) => setImmediate(resolve));
    if (this.broken) {
      this.pending -= 1;
      throw new HerdError(`connection to the server at ${this.target} was lost`, {
        sqlState: SqlState.connectionFailure,
      });
    }
    for (const frame of new MessageFramer(1 << 30).push(answer)) exchange.message(frame);
    exchange.chunkEnd?.();
    this.pending -= 1;
    return this.status;
  }

  write(): boolean {
    return true;
  }

  onceDrained(resume: () => void): void {
    resume();
  }

  async query(sql: string): Promise<QueryResult> {
    const w = new BufferWriter(64);
    encodeQuery(w, sql);
    const collector = new ResultCollector();
    await this.exchange(w.flush(), collector);
    return collector.result();
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
  }

  async cancel(): Promise<void> {}

  close(): void {
    this.broken ??= new Error("closed");
  }

  destroy(): void {
    this.broken ??= new Error("closed");
  }

  /** The server's answer to one request (one Sync or one Query). */
  private answer(request: Buffer): Buffer {
    const w = new BufferWriter(256);
    let sql = "";
    let describe = false;
    for (const frame of new MessageFramer(1 << 30).push(request)) {
      if (frame.type === FrontendMessage.query) sql = decodeQuery(frame.body);
      else if (frame.type === FrontendMessage.parse) {
        sql = decodeParse(frame.body).sql;
        encodeEmpty(w, BackendMessage.parseComplete);
      } else if (frame.type === FrontendMessage.bind) {
        // a Bind of a statement this connection prepared earlier (no Parse in this request)
        const name = decodeBind(frame.body).statement;
        if (sql === "" && name !== "") sql = [...this.prepared].find(([, prepared]) => prepared === name)?.[0] ?? "";
        encodeEmpty(w, BackendMessage.bindComplete);
      } else if (frame.type === FrontendMessage.describe) describe = true;
    }
    for (const statement of sql.split(/;\s*/).filter(Boolean)) this.run(statement.trim(), describe, w);
    encodeReadyForQuery(w, this.status);
    return w.flush();
  }

  private run(sql: string, describe: boolean, w: BufferWriter): void {
    if (this.broken) return;
    this.workers.log.push({ worker: this.target, sql });
    const loss = this.workers.loseConnection.get(this.target);
    if (loss?.test(sql)) {
      // the worker goes away before answering: the connection is lost
      this.broken = new Error("connection lost");
      return;
    }
    const prepared = /^(PREPARE TRANSACTION|COMMIT PREPARED|ROLLBACK PREPARED) '(.*)'$/.exec(sql);
    if (prepared) {
      const [, command, gid] = prepared as unknown as [string, string, string];
      if (command === "PREPARE TRANSACTION") {
        // an aborted transaction is rolled back instead, as PostgreSQL does
        if (this.status === "T") this.workers.prepared.add(gid);
        encodeCommandComplete(w, this.status === "T" ? "PREPARE TRANSACTION" : "ROLLBACK");
        this.status = "I";
      } else if (!this.workers.prepared.delete(gid)) {
        encodeNotice(w, BackendMessage.errorResponse, {
          severity: "ERROR",
          code: "42704",
          message: `prepared transaction with identifier "${gid}" does not exist`,
        });
      } else encodeCommandComplete(w, command);
      return;
    }
    if (/^(BEGIN|COMMIT|ROLLBACK)$/i.test(sql) || /^SELECT set_config/.test(sql)) {
      if (/^BEGIN$/i.test(sql)) this.status = "T";
      else if (!/^SELECT/.test(sql)) this.status = "I";
      encodeCommandComplete(w, sql.startsWith("SELECT") ? "SELECT 1" : sql.toUpperCase());
      return;
    }
    const answer = this.workers.script(sql, this.target);
    if (answer.notice) encodeNotice(w, BackendMessage.noticeResponse, answer.notice);
    if (answer.error) {
      encodeNotice(w, BackendMessage.errorResponse, answer.error);
      if (this.status === "T") this.status = "E";
      return;
    }
    const columns = answer.columns ?? [];
    if (describe) {
      encodeRowDescription(
        w,
        columns.map((name) => ({
          name,
          tableOid: 0,
          columnNumber: 0,
          typeOid: 25,
          typeSize: -1,
          typeModifier: -1,
          format: 0,
        })),
      );
    }
    for (const row of answer.rows ?? []) encodeDataRow(w, row);
    encodeCommandComplete(w, answer.tag ?? `SELECT ${answer.rows?.length ?? 0}`);
  }
}

/** The fake workers of a test, as a ConnectionPool: which are down, what each was sent. */
export class FakeWorkers implements ConnectionPool {
  readonly connectionsPerWorker: number;
  /** Every statement any connection received, in order. */
  readonly log: { worker: string; sql: string }[] = [];
  /** Workers (`host:port`) that refuse connections. */
  readonly unreachable = new Set<string>();
  /** Workers (`host:port`) whose connection is lost at the first statement matching the pattern. */
  readonly loseConnection = new Map<string, RegExp>();
  /** Gids of the parts prepared and not yet committed or rolled back, on any worker. */
  readonly prepared = new Set<string>();
  readonly acquired: FakeWorkerConnection[] = [];
  readonly released: WorkerConnection[] = [];
  /** Connections taken idle from the pool (acquireIdle), with `pooled`. */
  readonly reused: WorkerConnection[] = [];
  private readonly down = new Set<string>();
  /** With `pooled`: connections given back healthy and idle, kept for acquireIdle. */
  private readonly idle: FakeWorkerConnection[] = [];
  private readonly pooled: boolean;

  constructor(
    readonly script: Script,
    options: { connectionsPerWorker?: number; pooled?: boolean } = {},
  ) {
    this.connectionsPerWorker = options.connectionsPerWorker ?? 2;
    this.pooled = options.pooled ?? false;
  }

  /** With `pooled`, an idle connection given back earlier (as WorkerPool keeps them); else none. */
  acquireIdle(server: ServerAddress): WorkerConnection | undefined {
    const target = `${server.host}:${server.port}`;
    const index = this.idle.findIndex((connection) => connection.target === target);
    if (index < 0) return undefined;
    const [connection] = this.idle.splice(index, 1) as [FakeWorkerConnection];
    this.reused.push(connection);
    return connection;
  }

  async acquire(server: ServerAddress): Promise<WorkerConnection> {
    const target = `${server.host}:${server.port}`;
    if (this.unreachable.has(target)) {
      throw new HerdError(`could not connect to the worker at ${target}`, { sqlState: SqlState.connectionFailure });
    }
    const connection = new FakeWorkerConnection(target, this);
    this.acquired.push(connection);
    return connection;
  }

  release(connection: WorkerConnection): void {
    this.released.push(connection);
    if (this.pooled && !connection.broken && connection.idle && connection.status === "I")
      this.idle.push(connection as FakeWorkerConnection);
  }

  markDown(server: ServerAddress): void {
    this.down.add(`${server.host}:${server.port}`);
  }

  isDown(server: ServerAddress): boolean {
    return this.down.has(`${server.host}:${server.port}`);
  }

  /** The statements `worker` received (BEGIN/COMMIT/… included). */
  statementsOn(worker: string): string[] {
    return this.log.filter((entry) => entry.worker === worker).map((entry) => entry.sql);
  }
}
