import { firstValue } from "../../connection/pg-connection.js";
import { distributedTablesRead, refreshWithShards } from "../../operations/materialized-views.js";
import { inCoordinatorTransaction } from "../../operations/operation-transaction.js";
import { tableOid } from "../../operations/table-lookup.js";
import { type AnyNode, deparse } from "../../parser/ast.js";
import { qualifiedName, quoteIdent } from "../../parser/identifiers.js";
import { backendRequest } from "../backend-request.js";
import type { ExecutionPort } from "../execution-port.js";
import type { ResultSink } from "../result-sink.js";
import type { StatementRun } from "../statement-run.js";
import { NO_INPUTS, type Primitive } from "./primitive.js";

/** The OID of the relation a RangeVar names, as the session resolves it. */
function oidOf(port: ExecutionPort, relation: AnyNode): Promise<number> {
  const name = relation.schemaname
    ? qualifiedName(relation.schemaname as string, relation.relname as string)
    : quoteIdent(relation.relname as string);
  return tableOid(name, port);
}

/**
 * CREATE MATERIALIZED VIEW over distributed tables: made empty on the coordinator (WITH NO DATA:
 * PostgreSQL plans the query against the shells, runs nothing), then filled as REFRESH fills it
 * (operations/materialized-views.ts), in one transaction. Answers as PostgreSQL: `SELECT n`.
 */
export class CreateMaterializedView implements Primitive {
  readonly kind = "create-matview";

  /** `statement`: the CreateTableAsStmt tree (OBJECT_MATVIEW). */
  constructor(readonly statement: AnyNode) {}

  async execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void> {
    const ctas = this.statement.CreateTableAsStmt as AnyNode;
    const into = ctas.into as AnyNode;
    const empty = structuredClone(this.statement);
    empty.CreateTableAsStmt.into.skipData = true;
    const backend = port.backend;
    const tag = await inCoordinatorTransaction(port, async () => {
      await backend.query(deparse(empty));
      if (into.skipData) return "CREATE MATERIALIZED VIEW";
      const oid = await oidOf(port, into.rel as AnyNode);
      // regclass's text: the name, quoted and qualified as the session needs it
      const name = firstValue(await backend.query("SELECT $1::oid::regclass::text", [String(oid)])) as string;
      await refreshWithShards(oid, `REFRESH MATERIALIZED VIEW ${name}`, port);
      return `SELECT ${firstValue(await backend.query(`SELECT count(*) FROM ${name}`))}`;
    });
    if (run.describe && run.bind) sink.noData();
    sink.complete(tag);
  }

  describe(): string {
    return "Materialized view: made empty, then filled with the distributed tables' rows on the coordinator";
  }

  inputs(): readonly Primitive[] {
    return NO_INPUTS;
  }
}

/**
 * REFRESH MATERIALIZED VIEW: when the view reads distributed tables, their rows are brought into
 * their shells for the refresh (and taken out again in the same transaction); otherwise the
 * coordinator's PostgreSQL refreshes it as usual.
 */
export class RefreshMaterializedView implements Primitive {
  readonly kind = "refresh-matview";

  /** `relation`: the RefreshMatViewStmt's RangeVar. */
  constructor(readonly relation: AnyNode) {}

  async execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void> {
    const oid = await oidOf(port, this.relation);
    if ((await distributedTablesRead(oid, port)).length === 0) {
      await port.relay(backendRequest(run), sink, run.bind !== undefined);
      return;
    }
    const tag = await refreshWithShards(oid, run.sql, port);
    if (run.describe && run.bind) sink.noData();
    sink.complete(tag);
  }

  describe(): string {
    return "Refresh a materialized view: the distributed tables it reads brought to the coordinator for it";
  }

  inputs(): readonly Primitive[] {
    return NO_INPUTS;
  }
}
