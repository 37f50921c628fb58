import type { PgConnection } from "../connection/pg-connection.js";
import type { AnyNode } from "../parser/ast.js";
import type { ClientOutput } from "../protocol/client-output.js";
import type { BindMessage } from "../protocol/frontend-messages.js";
import type { Frame } from "../protocol/message-framer.js";
import type { SessionSettings, WorkerTransaction } from "../transaction/worker-transaction.js";

/** One statement to run, as the client sent it. */
export interface StatementRun {
  /** This statement's text (one statement of a multi-statement Query). */
  readonly sql: string;
  /** Its parse tree (the RawStmt's `stmt`). */
  readonly statement: AnyNode;
  /** Parameter types from Parse (0 = unspecified). */
  readonly parameterTypes: readonly number[];
  /** The Bind of the extended protocol; undefined for a simple Query. */
  readonly bind: BindMessage | undefined;
  /** Send a RowDescription first (always for a simple Query; after Describe for a portal). */
  readonly describe: boolean;
}

/** What the executor may use of the client's session. */
export interface SessionContext {
  readonly output: ClientOutput;
  /** The session's own connection to the coordinator's PostgreSQL. */
  readonly backend: PgConnection;
  /** Worker connections running one of this session's statements now (what a cancel reaches). */
  readonly busyWorkers: Set<PgConnection>;
  /** Worker connections held by the open transaction block. */
  readonly transaction: WorkerTransaction;
  /** Settings worker connections must share with the session (TimeZone, DateStyle, …). */
  settings(): SessionSettings;
  /** In a transaction block (BEGIN … COMMIT) on the coordinator. */
  inTransactionBlock(): boolean;
  /**
   * Runs a request on the coordinator's PostgreSQL and relays its answers (without the
   * ReadyForQuery) to the client; resolves false when PostgreSQL answered with an error.
   * `extended`: the request is Parse/Bind/… of a statement whose ParseComplete and BindComplete
   * herd already sent, so PostgreSQL's are not relayed.
   */
  relayFromBackend(request: Buffer, extended?: boolean): Promise<boolean>;
  /** The client's next message (COPY data). */
  nextClientMessage(): Promise<Frame>;
}
