import { HerdError, SqlState } from "@herd/shared";
import { type AnyNode, deparse } from "../../parser/ast.js";
import { backendRequest } from "../backend-request.js";
import type { ExecutionPort } from "../execution-port.js";
import type { ResultSink } from "../result-sink.js";
import { castNode } from "../sql-nodes.js";
import type { StatementRun } from "../statement-run.js";
import { Local } from "./local.js";
import { NO_INPUTS, type Primitive } from "./primitive.js";

/**
 * A statement prepared with SQL `PREPARE` that reads distributed tables, as the session keeps it:
 * the statement, and its parameters' types as PostgreSQL resolved them.
 */
export interface SqlPreparedStatement {
  readonly statement: AnyNode;
  readonly parameterTypes: readonly string[];
}

/**
 * SQL `PREPARE name [(types)] AS statement`. The coordinator's PostgreSQL prepares it as well
 * (on the shell tables: it checks the statement and resolves the parameters' types, and
 * pg_prepared_statements lists it, as in PostgreSQL); a statement that reads distributed tables
 * is also kept by the session, for EXECUTE to plan. `statement` undefined: an ordinary one,
 * PostgreSQL's alone (an earlier distributed one of that name is forgotten).
 */
export class SqlPrepare implements Primitive {
  readonly kind = "sql-prepare";

  constructor(
    readonly name: string,
    readonly statement: AnyNode | undefined,
  ) {}

  async execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void> {
    port.sqlPrepared.delete(this.name);
    const prepared = await port.relay(backendRequest(run), sink, run.bind !== undefined);
    if (!prepared || !this.statement) return;
    const { rows } = await port.backend.query(
      "SELECT t::regtype::text FROM pg_catalog.pg_prepared_statements p, unnest(p.parameter_types) WITH ORDINALITY AS u (t, n) WHERE p.name = $1 ORDER BY n",
      [this.name],
    );
    port.sqlPrepared.set(this.name, {
      statement: this.statement,
      parameterTypes: rows.map((row) => row[0]?.toString() ?? "text"),
    });
  }

  describe(): string {
    return `Prepare ${this.name}${this.statement ? " (reads distributed tables)" : ""}`;
  }

  inputs(): readonly Primitive[] {
    return NO_INPUTS;
  }
}

/**
 * SQL `EXECUTE name (arguments)`. A statement the session prepared over distributed tables is
 * planned with each parameter replaced by its argument cast to the parameter's type, and run as
 * if written out; any other goes to the coordinator's PostgreSQL (which also says when there is
 * no such statement, or after DISCARD ALL).
 */
export class SqlExecute implements Primitive {
  readonly kind = "sql-execute";
  private readonly local = new Local();

  constructor(
    readonly name: string,
    readonly args: readonly AnyNode[],
    private readonly plan: (statement: AnyNode) => Primitive,
  ) {}

  async execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void> {
    const prepared = port.sqlPrepared.get(this.name);
    // DISCARD ALL (or DEALLOCATE inside a function) drops it from PostgreSQL: so from here too
    const exists =
      prepared &&
      (await port.backend.query("SELECT 1 FROM pg_catalog.pg_prepared_statements WHERE name = $1", [this.name])).rows
        .length > 0;
    if (!prepared || !exists) {
      port.sqlPrepared.delete(this.name);
      return this.local.execute(port, run, sink);
    }
    const { parameterTypes } = prepared;
    if (this.args.length !== parameterTypes.length) {
      throw new HerdError(`wrong number of parameters for prepared statement "${this.name}"`, {
        sqlState: SqlState.syntaxError,
        detail: `Expected ${parameterTypes.length} parameters but got ${this.args.length}.`,
      });
    }
    const args = this.args.map((arg, i) => castNode(arg, parameterTypes[i] as string));
    const tree = bindParameters(structuredClone(prepared.statement), args) as AnyNode;
    const sql = deparse(tree);
    // parameters left are the EXECUTE's own (`EXECUTE q($1)` over the extended protocol): its bind fills them
    await this.plan(tree).execute(port, { ...run, sql, statement: tree }, sink);
  }

  describe(): string {
    return `Execute ${this.name} (planned as the prepared statement with its arguments)`;
  }

  inputs(): readonly Primitive[] {
    return NO_INPUTS;
  }
}

/** SQL `DEALLOCATE [PREPARE] name | ALL`: PostgreSQL's, and the session's copy with it. */
export class SqlDeallocate implements Primitive {
  readonly kind = "sql-deallocate";
  private readonly local = new Local();

  constructor(readonly name: string | undefined) {}

  async execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void> {
    await this.local.execute(port, run, sink);
    if (this.name === undefined) port.sqlPrepared.clear();
    else port.sqlPrepared.delete(this.name);
  }

  describe(): string {
    return `Deallocate ${this.name ?? "all"}`;
  }

  inputs(): readonly Primitive[] {
    return NO_INPUTS;
  }
}

/** `$n` → the n-th argument, everywhere in the tree. */
function bindParameters(node: unknown, args: readonly AnyNode[]): unknown {
  if (Array.isArray(node)) return node.map((item) => bindParameters(item, args));
  if (node === null || typeof node !== "object") return node;
  const param = (node as AnyNode).ParamRef as { number?: number } | undefined;
  if (param && Object.keys(node).length === 1) return structuredClone(args[(param.number ?? 1) - 1]);
  return Object.fromEntries(Object.entries(node).map(([key, value]) => [key, bindParameters(value, args)]));
}
