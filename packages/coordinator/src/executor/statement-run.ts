import type { AnyNode } from "../parser/ast.js";
import type { BindMessage } from "../protocol/frontend-messages.js";
import type { ExecutionStats } from "./execution-stats.js";

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
  /**
   * COPY … TO STDOUT of a merged query (primitives/copy-out.ts): the client's COPY around the
   * combine query, which the session's PostgreSQL then answers in the client's format.
   */
  readonly copyOf?: (query: string) => string;
  /**
   * The statement as the client wrote it, when herd runs it with its literals as parameters
   * (parser/normalized-statements.ts): what citus_stat_activity shows.
   */
  readonly clientSql?: string;
  /** Where steps record what they did (EXPLAIN ANALYZE); undefined: nobody asks. */
  readonly stats?: ExecutionStats;
}
