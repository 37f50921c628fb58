import type { Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { errorMessage, HerdError, isHerdError, type Logger, SqlState } from "@herd/shared";
import type { PgConnection } from "../connection/pg-connection.js";
import { ServerError } from "../connection/server-error.js";
import type { SessionSettings } from "../connection/session-settings.js";
import { SessionWorkers } from "../connection/session-workers.js";
import { RoomRefused, type WorkerPool } from "../connection/worker-pool.js";
import type { ClusterServices } from "../executor/execution-port.js";
import type { QueryEngine } from "../executor/query-engine.js";
import { changesNames } from "../executor/session-names.js";
import type { StatementRun } from "../executor/statement-run.js";
import type { Catalog } from "../metadata/catalog.js";
import type { DistributeDefaults } from "../operations/distribute-table.js";
import type { AnyNode } from "../parser/ast.js";
import type { NormalizedStatement, NormalizedStatements } from "../parser/normalized-statements.js";
import type { StatementCache } from "../parser/statement-cache.js";
import {
  decodeRowDescription,
  encodeEmpty,
  encodeHerdError,
  encodeNotice,
  encodeReadyForQuery,
  encodeRowDescription,
} from "../protocol/backend-messages.js";
import { BufferWriter } from "../protocol/buffer-writer.js";
import { ClientOutput } from "../protocol/client-output.js";
import {
  decodeBind,
  decodeExecute,
  decodeParse,
  decodeQuery,
  decodeTarget,
  encodeParse,
  encodeQuery,
  encodeSync,
  encodeTarget,
} from "../protocol/frontend-messages.js";
import { BackendMessage, FrontendMessage } from "../protocol/message-codes.js";
import { type Frame, joinFrames } from "../protocol/message-framer.js";
import { ProtocolError } from "../protocol/protocol-error.js";
import { DistributedTransaction } from "../transaction/distributed-transaction.js";
import { finishingCommits } from "../transaction/finishing-commits.js";
import { BackendRelay } from "./backend-relay.js";
import { ClientSink, SimpleQuerySink } from "./client-sink.js";
import { FrameQueue } from "./frame-queue.js";
import { type HerdPortal, type PreparedStatement, PreparedStatements } from "./prepared-statements.js";
import { SessionPort } from "./session-port.js";
import { keepsSessionState } from "./session-state.js";

/**
 * Settings of the session's that herd reads back before its next statement (see readTimeouts):
 * how long its statements may run or wait, and who they run as, on the workers too.
 */
const TIMEOUT_SETTINGS = new Set(["statement_timeout", "lock_timeout", "role", "session_authorization"]);

/** A statement that may change settings through a function call rather than SET. */
const SETS_THROUGH_FUNCTION = /set_config/i;

/** Messages of an extended-protocol batch, which a Sync ends. */
const BATCH_TYPES = new Set<number>([
  FrontendMessage.parse,
  FrontendMessage.bind,
  FrontendMessage.describe,
  FrontendMessage.execute,
  FrontendMessage.close,
  FrontendMessage.flush,
]);

/** A cancel is sent again this often while the statement still runs on a worker, this many times at most. */
const CANCEL_RETRY_MS = 200;
const CANCEL_ATTEMPTS = 10;

const FRONTEND_TYPES = new Set<number>(
  Object.values(FrontendMessage).filter((code) => code !== FrontendMessage.password),
);

/** Settings reported by PostgreSQL (ParameterStatus) that change how workers must answer. */
const SHARED_SETTINGS = [
  "statement_timeout",
  "lock_timeout",
  "TimeZone",
  "DateStyle",
  "IntervalStyle",
  "client_encoding",
  "standard_conforming_strings",
  "extra_float_digits",
  // who statements run as: session_authorization before role (setting it resets the role)
  "session_authorization",
  "role",
];

export interface ConversationOptions {
  readonly engine: QueryEngine;
  readonly statements: StatementCache;
  /** Simple-protocol statements with their literals as parameters (undefined: run them as written). */
  readonly literals?: NormalizedStatements;
  readonly catalog: Catalog;
  readonly pool: WorkerPool;
  readonly defaults: DistributeDefaults;
  readonly cluster: ClusterServices;
  readonly logger: Logger;
  /** The log of the statements herd runs on the workers. */
  readonly executorLogger: Logger;
  /** Startup parameters of the client (for settings PostgreSQL does not report, e.g. extra_float_digits). */
  readonly startupParameters: ReadonlyMap<string, string>;
  /** ParameterStatus values the session's PostgreSQL reported at startup. */
  readonly reported: readonly (readonly [string, string])[];
  /** The database holding herd's metadata (sessions in other databases have no distributed tables). */
  readonly metadataDatabase: string;
  /**
   * Ends the idle shared connections to the coordinator's PostgreSQL, in every coordinator
   * process: a DROP DATABASE (or RENAME, or CREATE DATABASE … TEMPLATE) needs nobody connected.
   */
  readonly closeIdleBackends?: () => Promise<void>;
}

/** Statements PostgreSQL refuses while another session is connected to the database they name. */
const NEEDS_DATABASE_ALONE = (statement: AnyNode): boolean =>
  statement.DropdbStmt !== undefined ||
  statement.CreatedbStmt !== undefined ||
  (statement.RenameStmt as { renameType?: string } | undefined)?.renameType === "OBJECT_DATABASE";

/**
 * One authenticated client's statements, in order. Each message is either forwarded to the
 * session's own PostgreSQL (statements that touch no distributed table: the fast path, in one
 * write per batch, answers relayed as they come) or run by herd's engine (statements it claims),
 * which writes the answers itself.
 *
 * Order is kept by waiting: before herd answers a message, everything forwarded before it has
 * been answered (a Sync of herd's own ends what was forwarded of an unfinished extended-protocol
 * batch; its ReadyForQuery is not relayed). Errors follow PostgreSQL's rules: after an error in
 * an extended-protocol batch everything up to Sync is skipped; an error of a herd statement in a
 * transaction block also fails the coordinator's transaction, so what follows is refused (25P02)
 * until ROLLBACK, exactly as PostgreSQL would.
 */
export class Conversation {
  private readonly output: ClientOutput;
  /** Where herd's statements run (the ExecutionPort) and where their answers go. */
  private readonly port: SessionPort;
  /** What the session borrows of the worker pool (it waits for room only while it holds none). */
  private readonly workers: SessionWorkers;
  private readonly sink: ClientSink;
  private readonly simpleSink: SimpleQuerySink;
  private readonly queue = new FrameQueue();
  private waiting: ((frame: Frame) => void) | undefined;
  private running = false;
  private closed = false;
  /** The server shuts down: no new batch of messages is started. */
  private stopping = false;
  /** Messages of an extended-protocol batch were handled, its Sync not yet. */
  private midBatch = false;
  /** The workers' statement_timeout and lock_timeout are the session's (see readTimeouts). */
  private timeoutsKnown = false;
  /** A SET LOCAL changed them: read them again when the transaction has ended. */
  private timeoutsLocal = false;
  /** The session's statement_timeout in ms (0: none). */
  private statementTimeoutMs = 0;
  /** Counts the statements herd ran, so a repeated cancel never reaches the next one. */
  private statements = 0;
  private readonly pendingForward: Frame[] = [];
  /** Messages were forwarded since the last Sync (the client's or herd's). */
  private forwardedSinceSync = false;
  /** An error in this extended-protocol batch: skip until Sync. */
  private skipping = false;
  private readonly prepared = new PreparedStatements();
  private readonly settingValues = new Map<string, string>();
  private sharedSettings: SessionSettings;
  /** The role this client logged in as: its worker connections log in as it too. */
  private readonly login: string;
  private readonly relay: BackendRelay;
  /**
   * The session left something in its coordinator PostgreSQL session (session-state.ts, a named
   * prepared statement, a reported setting changed): it keeps that connection to the end.
   * Otherwise the connection goes back to the shared pool whenever the session is idle between
   * transactions (protocol/backend-pool.ts).
   */
  private pinned = false;
  /** The lease of the coordinator connection the client's unnamed statement was parsed on (-1: none). */
  private unnamedLease = -1;

  constructor(
    private readonly socket: Socket,
    private readonly backend: PgConnection,
    private readonly options: ConversationOptions,
    private readonly onFatal: (error: unknown) => void,
  ) {
    this.output = new ClientOutput(socket);
    this.sink = new ClientSink(this.output);
    this.simpleSink = new SimpleQuerySink(this.output);
    this.login = options.startupParameters.get("user") ?? "postgres";
    this.sharedSettings = { values: this.settingValues, key: "[]", login: this.login };
    const extraFloatDigits = options.startupParameters.get("extra_float_digits");
    if (extraFloatDigits !== undefined) this.noteSetting("extra_float_digits", extraFloatDigits);
    for (const [name, value] of options.reported) this.noteSetting(name, value);
    this.relay = new BackendRelay(this.output, backend, (name, value) => {
      // a setting PostgreSQL reports changed (by SET, a function's set_config, …): this
      // connection's settings are the session's own now
      this.pin("a reported setting changed");
      this.noteSetting(name, value);
    });
    backend.onIdle = () => this.releaseBackend();
    // the client has not said anything yet: its first connection is shared until it does
    queueMicrotask(() => this.releaseBackend());
    const database = options.startupParameters.get("database") ?? this.login;
    const workers = new SessionWorkers(options.pool, () => this.port.inTransactionBlock());
    this.workers = workers;
    this.port = new SessionPort({
      foreignDatabase: database === options.metadataDatabase ? undefined : database,
      catalog: options.catalog,
      backend,
      relay: this.relay,
      workers,
      transaction: new DistributedTransaction(
        {
          backend,
          pool: workers,
          logger: options.executorLogger,
          catalog: options.catalog,
          defer: (finishing, targets) => this.port.afterCommit(finishing, targets),
        },
        "block",
      ),
      defaults: options.defaults,
      cluster: options.cluster,
      logger: options.executorLogger,
      settings: () => this.sharedSettings,
      nextClientMessage: () => this.nextClientMessage(),
    });
    socket.on("drain", () => backend.resume());
  }

  /** The client's next message (COPY data for a statement herd runs). */
  private nextClientMessage(): Frame | Promise<Frame> {
    const next = this.queue.shift();
    if (next) return next;
    return new Promise((resolve) => {
      this.waiting = resolve;
    });
  }

  // ---- messages from the client ----

  receive(frames: Frame[]): void {
    for (const frame of frames) {
      if (!FRONTEND_TYPES.has(frame.type)) throw new ProtocolError(`invalid frontend message type ${frame.type}`);
      const waiting = this.waiting;
      if (waiting) {
        this.waiting = undefined;
        waiting(frame);
      } else this.queue.push(frame);
    }
    if (!this.running) void this.drain();
  }

  /** A statement of the client's is being handled (herd's or the coordinator PostgreSQL's). */
  private get busy(): boolean {
    return this.running || !this.backend.idle;
  }

  /** A CancelRequest: the statement under way stops, on the coordinator's PostgreSQL and on the workers. */
  async cancel(): Promise<void> {
    await Promise.all([this.backend.cancel(), this.cancelWorkers()]);
  }

  /** The session holds nothing on its coordinator connection now: it goes back to the pool. */
  private releaseBackend(): void {
    if (
      this.pinned ||
      this.running ||
      this.closed ||
      this.midBatch ||
      this.forwardedSinceSync ||
      this.pendingForward.length > 0 ||
      this.queue.length > 0
    )
      return;
    this.backend.release();
  }

  /** This session keeps its coordinator connection to the end (see `pinned`). */
  private pin(reason: string): void {
    if (this.pinned) return;
    this.pinned = true;
    this.options.logger.debug("session keeps its coordinator connection", { reason });
  }

  /**
   * A CancelRequest (or the client's disconnect) for this session: what its statement runs on the
   * workers is cancelled too. A cancel that reaches a worker before the statement it follows does
   * is lost (PostgreSQL cancels only what runs), so it is sent again while the same statement
   * keeps a worker busy, for up to two seconds.
   */
  async cancelWorkers(): Promise<void> {
    const statement = this.statements;
    if (this.running) {
      this.port.cancelRequested = true;
      this.workers.stopWaiting(
        new RoomRefused("canceling statement due to user request", { sqlState: SqlState.queryCanceled }),
      );
    }
    for (let attempt = 0; attempt < CANCEL_ATTEMPTS; attempt++) {
      const busy = [...this.port.busyWorkers];
      if (busy.length === 0 || this.statements !== statement) return;
      await Promise.all(busy.map((connection) => connection.cancel()));
      await sleep(CANCEL_RETRY_MS);
    }
  }

  /** A new statement begins: what was cancelled before it does not touch it. */
  private nextStatement(): void {
    this.statements += 1;
    this.port.cancelRequested = false;
  }

  close(): void {
    const busy = this.busy;
    this.closed = true;
    // the client is gone: nothing it started may keep running (or holding locks) on a worker,
    // nor on the coordinator's PostgreSQL (a lock wait, a merge)
    if (this.running) void this.cancelWorkers();
    if (busy) void this.backend.cancel();
    this.workers.end(new RoomRefused("the session ended", { sqlState: SqlState.adminShutdown }));
    this.port.transaction.abandon();
    // a connection holding nothing of the session's is shared again; any other is ended
    // (Terminate: PostgreSQL rolls back what is open)
    if (busy || this.pinned || !this.backend.giveBack()) this.backend.close();
  }

  /**
   * The server shuts down: runs nothing more of what the client sent, and resolves once the
   * statement under way has finished and the workers completed what it committed.
   */
  async finish(): Promise<void> {
    this.stopping = true;
    // an extended-protocol batch under way is finished up to its Sync (PostgreSQL's ReadyForQuery
    // is what tells the client its statement is done)
    if (!this.running && this.midBatch && this.queue.length > 0) void this.drain();
    while ((this.running || this.midBatch) && !this.closed) await sleep(10);
    await finishingCommits.settled();
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0 && !this.closed && !(this.stopping && !this.midBatch)) {
        const frame = this.queue.shift() as Frame;
        const work = this.handle(frame);
        if (work) {
          this.flushForward();
          await work;
        }
      }
      this.flushForward();
      this.output.flush();
    } catch (error) {
      this.onFatal(error);
    } finally {
      this.running = false;
    }
    if (this.backend.idle && this.backend.status === "I") this.releaseBackend();
  }

  /** One message; returns a promise when handling it needs to wait. */
  private handle(frame: Frame): Promise<void> | undefined {
    if (frame.type === FrontendMessage.sync || frame.type === FrontendMessage.query) this.midBatch = false;
    else if (BATCH_TYPES.has(frame.type)) this.midBatch = true;
    switch (frame.type) {
      case FrontendMessage.query:
        return this.handleQuery(frame);
      case FrontendMessage.parse:
        return this.handleParse(frame);
      case FrontendMessage.bind:
        return this.handleBind(frame);
      case FrontendMessage.describe:
        return this.handleDescribe(frame);
      case FrontendMessage.execute:
        return this.handleExecute(frame);
      case FrontendMessage.close:
        return this.handleClose(frame);
      case FrontendMessage.sync:
        return this.handleSync(frame);
      case FrontendMessage.flush:
        if (this.forwardedSinceSync) this.forward(frame);
        return undefined;
      case FrontendMessage.terminate:
        this.flushForward();
        this.closed = true;
        this.onFatal(undefined);
        return undefined;
      default:
        // CopyData/CopyDone/CopyFail of a COPY the coordinator's PostgreSQL runs, FunctionCall
        if (!this.skipping) this.forward(frame);
        return undefined;
    }
  }

  private handleQuery(frame: Frame): Promise<void> | undefined {
    const sql = decodeQuery(frame.body);
    // statements that differ only in their literals share one parse and one plan
    const normalized = this.options.literals?.of(sql);
    if (normalized) {
      this.noteChanges(normalized.statement, sql);
      if (this.claims(normalized.text, normalized.statement, false)) return this.normalizedQuery(sql, normalized);
      // literals do not change which tables a statement reads: PostgreSQL answers it as written
      this.forward(frame, true);
      return undefined;
    }
    const parsed = this.options.statements.parse(sql);
    const statements = parsed.ok ? ((parsed.tree.stmts ?? []) as AnyNode[]) : [];
    for (const raw of statements) this.noteChanges(raw.stmt as AnyNode, sql);
    const claimed = statements.some((raw) =>
      this.claims(textOf(sql, raw, statements.length), raw.stmt as AnyNode, false),
    );
    if (!claimed) {
      const closeIdle = this.options.closeIdleBackends;
      if (closeIdle && statements.some((raw) => NEEDS_DATABASE_ALONE(raw.stmt as AnyNode)))
        return closeIdle().then(() => this.forward(frame, true));
      this.forward(frame, true);
      return undefined;
    }
    return this.simpleQuery(sql, statements);
  }

  private async simpleQuery(sql: string, statements: AnyNode[]): Promise<void> {
    await this.backendIdle();
    for (const raw of statements) {
      const text = textOf(sql, raw, statements.length);
      const statement = raw.stmt as AnyNode;
      try {
        if (this.claims(text, statement, false)) {
          this.refuseInFailedTransaction(statement);
          this.nextStatement();
          await this.readTimeouts();
          try {
            await this.options.engine.run(
              { sql: text, statement, parameterTypes: [], bind: undefined, describe: true },
              this.port,
              this.sink,
            );
          } finally {
            if (changesNames(statement)) this.port.names.changed();
          }
        } else {
          const w = new BufferWriter(64);
          encodeQuery(w, text);
          const ok = await this.port.relay(w.flush(), this.sink, false);
          // the statements after it in this Query see what it changed
          if (changesNames(statement)) this.port.names.changed();
          if (!ok) break;
        }
      } catch (error) {
        await this.reportError(error);
        break;
      }
    }
    encodeReadyForQuery(this.output.writer, this.backend.status);
  }

  /** A simple Query herd runs with its literals as parameters (NormalizedStatements): answered as a simple Query. */
  private async normalizedQuery(sql: string, normalized: NormalizedStatement): Promise<void> {
    await this.backendIdle();
    try {
      this.refuseInFailedTransaction(normalized.statement);
      this.nextStatement();
      await this.readTimeouts();
      await this.options.engine.run(
        {
          sql: normalized.text,
          statement: normalized.statement,
          parameterTypes: normalized.parameterTypes,
          bind: {
            portal: "",
            statement: "",
            parameterFormats: [],
            parameters: normalized.parameters,
            resultFormats: [],
          },
          describe: true,
          clientSql: sql,
        },
        this.port,
        this.simpleSink,
      );
    } catch (error) {
      await this.reportError(error);
    }
    encodeReadyForQuery(this.output.writer, this.backend.status);
  }

  private handleParse(frame: Frame): Promise<void> | undefined {
    if (this.skipping) return undefined;
    const { name, sql, parameterTypes } = decodeParse(frame.body);
    const parsed = this.options.statements.parse(sql);
    const raws = parsed.ok ? ((parsed.tree.stmts ?? []) as AnyNode[]) : [];
    const single = raws.length === 1 ? ((raws[0] as AnyNode).stmt as AnyNode) : undefined;
    if (single) this.noteChanges(single, sql);
    const herd = single !== undefined && this.claims(sql, single, true);
    const existing = this.prepared.statement(name);
    if (!herd || (name !== "" && existing)) {
      // PostgreSQL answers, including "prepared statement already exists"
      if (!(name !== "" && existing))
        this.prepared.prepare(name, {
          sql,
          statement: single,
          parameterTypes,
          herd: false,
          version: this.options.engine.catalogVersion,
        });
      if (name !== "") this.pin("a named prepared statement");
      else this.unnamedLease = this.backend.nextLease;
      this.forward(frame);
      return undefined;
    }
    this.prepared.prepare(name, {
      sql,
      statement: single,
      parameterTypes,
      herd: true,
      version: this.options.engine.catalogVersion,
    });
    return this.answer((w) => encodeEmpty(w, BackendMessage.parseComplete));
  }

  private handleBind(frame: Frame): Promise<void> | undefined {
    if (this.skipping) return undefined;
    const bind = decodeBind(frame.body);
    const statement = this.prepared.statement(bind.statement);
    if (
      statement &&
      !statement.herd &&
      statement.statement &&
      statement.version !== this.options.engine.catalogVersion
    ) {
      // a table it names may have been distributed since it was prepared
      statement.herd = this.claims(statement.sql, statement.statement, true);
      statement.version = this.options.engine.catalogVersion;
    }
    if (!statement?.herd) {
      if (statement?.statement) this.noteChanges(statement.statement, statement.sql);
      this.prepared.closePortal(bind.portal);
      if (bind.statement === "" && statement) return this.forwardOnUnnamed(statement, frame);
      this.forward(frame);
      return undefined;
    }
    this.prepared.bind(bind.portal, { statement, bind, describe: false });
    return this.answer((w) => encodeEmpty(w, BackendMessage.bindComplete));
  }

  private handleDescribe(frame: Frame): Promise<void> | undefined {
    if (this.skipping) return undefined;
    const target = decodeTarget(frame.body);
    if (target.kind === "P") {
      const portal = this.prepared.portal(target.name);
      if (!portal) {
        this.forward(frame);
        return undefined;
      }
      portal.describe = true;
      // answered with the rows at Execute; a Describe without Execute is answered here
      const next = this.queue.peek();
      if (
        next !== undefined &&
        next.type === FrontendMessage.execute &&
        decodeExecute(next.body).portal === target.name
      )
        return undefined;
      return this.describeOnBackend(portal.statement, portal.bind.resultFormats, false).then(() => {
        portal.describe = false;
      });
    }
    const statement = this.prepared.statement(target.name);
    if (!statement?.herd) {
      if (target.name === "" && statement) return this.forwardOnUnnamed(statement, frame);
      this.forward(frame);
      return undefined;
    }
    return this.describeOnBackend(statement, undefined, true);
  }

  private handleExecute(frame: Frame): Promise<void> | undefined {
    if (this.skipping) return undefined;
    const { portal: name } = decodeExecute(frame.body);
    const portal = this.prepared.portal(name);
    if (!portal) {
      this.forward(frame);
      return undefined;
    }
    return this.executePortal(portal);
  }

  private async executePortal(portal: HerdPortal): Promise<void> {
    await this.backendIdle();
    if (this.skipping) return;
    const { statement } = portal;
    try {
      this.refuseInFailedTransaction(statement.statement as AnyNode);
      const run: StatementRun = {
        sql: statement.sql,
        statement: statement.statement as AnyNode,
        parameterTypes: statement.parameterTypes,
        bind: portal.bind,
        describe: portal.describe,
      };
      portal.describe = false;
      this.nextStatement();
      await this.readTimeouts();
      try {
        await this.options.engine.run(run, this.port, this.sink);
      } finally {
        if (changesNames(run.statement)) this.port.names.changed();
      }
    } catch (error) {
      await this.reportError(error);
      this.skipping = true;
    }
  }

  private handleClose(frame: Frame): Promise<void> | undefined {
    if (this.skipping) return undefined;
    const target = decodeTarget(frame.body);
    if (target.kind === "P" && this.prepared.closePortal(target.name))
      return this.answer((w) => encodeEmpty(w, BackendMessage.closeComplete));
    if (target.kind === "S") this.prepared.closeStatement(target.name);
    // the coordinator's PostgreSQL answers CloseComplete even for a name it does not know
    this.forward(frame);
    return undefined;
  }

  private handleSync(frame: Frame): Promise<void> | undefined {
    this.skipping = false;
    if (this.forwardedSinceSync) {
      this.forward(frame, true);
      if (this.backend.status === "I") this.prepared.endTransaction();
      return undefined;
    }
    return this.answer((w) => {
      encodeReadyForQuery(w, this.backend.status);
      if (this.backend.status === "I") this.prepared.endTransaction();
    });
  }

  // ---- helpers ----

  /**
   * Forwards a Bind or Describe of the client's unnamed statement. When it was parsed on another
   * coordinator connection than the one this goes to (the session gave that one back between
   * two batches, or herd described a statement of its own since), it is parsed again first.
   */
  private forwardOnUnnamed(statement: PreparedStatement, frame: Frame): Promise<void> | undefined {
    if (this.unnamedLease === this.backend.nextLease) {
      this.forward(frame);
      return undefined;
    }
    return this.backendIdle().then(async () => {
      if (this.skipping) return;
      const w = new BufferWriter(256);
      encodeParse(w, "", statement.sql, statement.parameterTypes);
      encodeSync(w);
      // (its answer is the client's ParseComplete already given: nothing of it is relayed)
      await this.backend.exchange(w.flush(), { message: () => {} });
      this.unnamedLease = this.backend.nextLease;
      this.forward(frame);
    });
  }

  private claims(sql: string, statement: AnyNode, forPrepare: boolean): boolean {
    return this.options.engine.claims(sql, statement, this.port, forPrepare);
  }

  /** Writes herd's answer once everything before it has been answered. */
  private answer(write: (w: BufferWriter) => void): Promise<void> | undefined {
    if (!this.forwardedSinceSync && this.backend.idle && this.pendingForward.length === 0) {
      write(this.output.writer);
      return undefined;
    }
    return this.backendIdle().then(() => {
      if (!this.skipping) write(this.output.writer);
    });
  }

  /** Queues a message for the coordinator's PostgreSQL; a Sync or Query also expects its ReadyForQuery. */
  private forward(frame: Frame, endsRequest = false): void {
    this.pendingForward.push(frame);
    if (endsRequest) {
      this.forwardedSinceSync = false;
      this.flushForward(true);
    } else this.forwardedSinceSync = true;
  }

  private flushForward(expectReady = false): void {
    if (this.pendingForward.length === 0) return;
    const bytes = joinFrames(this.pendingForward.splice(0));
    if (expectReady) {
      this.output.flush();
      void this.backend.exchange(bytes, this.relay.exchange(false)).catch(() => {});
    } else if (!this.backend.write(bytes)) {
      this.socket.pause();
      this.backend.onceDrained(() => this.socket.resume());
    }
  }

  /**
   * Waits until the coordinator's PostgreSQL has answered everything forwarded. What was forwarded
   * of an unfinished batch is ended with a Sync of herd's own; an error in it means the rest of
   * the client's batch is skipped, as PostgreSQL would have skipped it.
   */
  private async backendIdle(): Promise<void> {
    this.flushForward();
    // (herd's answers gathered so far stay in the output buffer: a relay writes them first)
    if (this.forwardedSinceSync) {
      this.forwardedSinceSync = false;
      const w = new BufferWriter(8);
      encodeSync(w);
      const exchange = this.relay.exchange(true);
      await this.backend.exchange(w.flush(), exchange);
      if (exchange.sawError) this.skipping = true;
    }
    await this.backend.settled();
  }

  /** ParameterDescription and RowDescription of a herd statement, as PostgreSQL describes it on the shell tables. */
  private async describeOnBackend(
    statement: PreparedStatement,
    resultFormats: readonly number[] | undefined,
    parameters: boolean,
  ): Promise<void> {
    await this.backendIdle();
    if (this.skipping) return;
    const w = new BufferWriter(256);
    encodeParse(w, "", statement.sql, statement.parameterTypes);
    encodeTarget(w, FrontendMessage.describe, "S", "");
    encodeSync(w);
    // (the client's unnamed statement, if PostgreSQL had it, is replaced)
    this.unnamedLease = -1;
    const out = this.output.writer;
    let failed = false;
    await this.backend.exchange(w.flush(), {
      message: (frame) => {
        if (frame.type === BackendMessage.parameterDescription && parameters) out.bytes(frame.raw);
        else if (frame.type === BackendMessage.noData) out.bytes(frame.raw);
        else if (frame.type === BackendMessage.rowDescription) {
          if (!resultFormats) out.bytes(frame.raw);
          else {
            const fields = decodeRowDescription(frame.body).map((field, i) => ({
              ...field,
              format: resultFormats.length === 1 ? (resultFormats[0] as number) : (resultFormats[i] ?? 0),
            }));
            encodeRowDescription(out, fields);
          }
        } else if (frame.type === BackendMessage.errorResponse) {
          failed = true;
          out.bytes(frame.raw);
        }
      },
    });
    if (failed) this.skipping = true;
  }

  private refuseInFailedTransaction(statement: AnyNode): void {
    if (this.backend.status !== "E" || statement.TransactionStmt) return;
    throw new HerdError("current transaction is aborted, commands ignored until end of transaction block", {
      sqlState: SqlState.inFailedSqlTransaction,
    });
  }

  /**
   * Sends a statement's error to the client. In a transaction block, the coordinator's own
   * transaction is failed too, so that PostgreSQL refuses what follows until ROLLBACK.
   */
  private async reportError(error: unknown): Promise<void> {
    if (!isHerdError(error)) {
      this.options.logger.error("statement failed", { error: errorMessage(error), stack: (error as Error)?.stack });
    }
    if (error instanceof ServerError) encodeNotice(this.output.writer, BackendMessage.errorResponse, error.fields);
    else
      encodeHerdError(
        this.output.writer,
        isHerdError(error) ? error : new HerdError("internal error", { sqlState: SqlState.internalError }),
      );
    if (this.backend.status === "T") {
      await this.backend
        .query("DO $$ BEGIN RAISE EXCEPTION 'herd: a distributed statement failed'; END $$")
        .catch(() => {});
    }
  }

  /**
   * What a statement passing through may change that herd keeps: timeouts, what names mean,
   * whether the session's coordinator connection holds state of its own.
   */
  private noteChanges(statement: AnyNode, sql: string): void {
    this.noteTimeoutChange(statement, sql);
    if (changesNames(statement)) this.port.names.changed();
    if (!this.pinned && keepsSessionState(statement, sql)) this.pin(Object.keys(statement)[0] ?? "statement");
  }

  /**
   * A SET or RESET of statement_timeout or lock_timeout (or all settings) passes: the values the
   * workers get are read again before herd's next statement. After SET LOCAL they are read again
   * once the transaction has ended too.
   */
  private noteTimeoutChange(statement: AnyNode, sql: string): void {
    const set = statement.VariableSetStmt as { kind?: string; name?: string; is_local?: boolean } | undefined;
    const changes = set
      ? set.kind === "VAR_RESET_ALL" || TIMEOUT_SETTINGS.has(set.name ?? "")
      : statement.DiscardStmt !== undefined || SETS_THROUGH_FUNCTION.test(sql);
    if (!changes) return;
    this.timeoutsKnown = false;
    // SET LOCAL ends with the transaction, and a SET inside one ends with its ROLLBACK
    if (set?.is_local || this.backend.status !== "I") this.timeoutsLocal = true;
  }

  /**
   * The session's statement_timeout and lock_timeout, as the coordinator's PostgreSQL has them
   * (set by SET, the startup packet, ALTER ROLE … SET, or the server's configuration), for the
   * workers: a client's timeouts apply to its statements there too.
   */
  private async readTimeouts(): Promise<void> {
    await this.readTimeoutSettings();
    // a wait for room on a worker is part of the statement: its statement_timeout ends it too
    this.workers.statementBegins(this.statementTimeoutMs);
  }

  private async readTimeoutSettings(): Promise<void> {
    if (this.timeoutsLocal && this.backend.status === "I") {
      this.timeoutsLocal = false;
      this.timeoutsKnown = false;
    }
    if (this.port.rolesChanged && this.backend.status === "I") {
      // a block with a role statement has ended: the workers get its roles before this statement
      this.port.rolesChanged = false;
      await this.options.cluster.syncRoles();
    }
    if (this.timeoutsKnown || this.backend.status === "E") return;
    const result = await this.backend.query(
      `SELECT current_setting('statement_timeout'), current_setting('lock_timeout'), session_user, current_setting('role'),
              (SELECT setting FROM pg_settings WHERE name = 'statement_timeout')`,
    );
    const [statementTimeout, lockTimeout, sessionUser, role, statementTimeoutMs] = result.rows[0] ?? [];
    this.statementTimeoutMs = Number(statementTimeoutMs?.toString() ?? "0");
    this.noteSetting("statement_timeout", statementTimeout?.toString() ?? "0");
    this.noteSetting("lock_timeout", lockTimeout?.toString() ?? "0");
    this.noteSetting("session_authorization", sessionUser?.toString() ?? this.login);
    this.noteSetting("role", role?.toString() ?? "none");
    this.timeoutsKnown = true;
  }

  private noteSetting(name: string, value: string): void {
    if (!SHARED_SETTINGS.includes(name) || this.settingValues.get(name) === value) return;
    this.settingValues.set(name, value);
    this.sharedSettings = {
      values: this.settingValues,
      key: JSON.stringify([...this.settingValues]),
      login: this.login,
    };
  }
}

/** One statement's text out of a multi-statement Query. */
function textOf(sql: string, raw: AnyNode, count: number): string {
  if (count === 1) return sql;
  const start = (raw.stmt_location as number | undefined) ?? 0;
  const length = raw.stmt_len as number | undefined;
  const bytes = Buffer.from(sql, "utf8");
  return bytes.toString("utf8", start, length === undefined || length === 0 ? bytes.length : start + length).trim();
}
