import type { PgConnection } from "../../connection/pg-connection.js";
import { type AnyNode, deparse, nodeAtPath } from "../../parser/ast.js";
import type { FieldDescription } from "../../protocol/backend-messages.js";
import type { ExecutionPort } from "../execution-port.js";
import { IntermediateResult, intermediateResultLimit, MAX_INTERMEDIATE_RESULT_SIZE } from "../intermediate-result.js";
import type { ResultSink } from "../result-sink.js";
import { replaceRangeVar } from "../sql-nodes.js";
import { describeStatement } from "../statement-description.js";
import type { StatementRun } from "../statement-run.js";
import type { DescribeContext, Primitive } from "./primitive.js";

/** A subquery run before the statement that holds it (planner/recursive-planning.ts). */
export interface SubPlan {
  /** Where the node that holds it (SubLink, RangeSubselect, CommonTableExpr) sits in the statement's tree. */
  readonly path: readonly (string | number)[];
  /**
   * The holder's field that is the subquery (`subselect`, `subquery`, `ctequery`), or `RangeVar`
   * for a table read whole: its rows then stand in FROM under the name the statement used, else
   * `table`, the table's name.
   */
  readonly field: string;
  readonly table?: string;
  /** The subquery as a statement of its own, its text, and its plan. */
  readonly statement: AnyNode;
  readonly sql: string;
  readonly plan: Primitive;
}

/**
 * Runs each subplan, keeps its rows on the coordinator (IntermediateResult), puts them in place
 * of its subquery as a VALUES list of typed literals, then plans the statement so rewritten and
 * runs it. The subplans' plans are made once with the statement's; the outer statement's plan
 * depends on the rows, so it is made at each execution (`plan`, on the catalog the statement was
 * planned with). Parameters reach the subplans and the outer statement with the types PostgreSQL
 * gives the whole statement, so that a parameter only one of them uses still has its type.
 */
export class SubPlans implements Primitive {
  readonly kind = "subplans";

  constructor(
    readonly statement: AnyNode,
    readonly subPlans: readonly SubPlan[],
    private readonly plan: (statement: AnyNode) => Primitive,
  ) {}

  async execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void> {
    const backend = port.backend;
    const [setting, parameterTypes] = await Promise.all([
      backend.query(`SELECT pg_catalog.current_setting($1, true)`, [MAX_INTERMEDIATE_RESULT_SIZE]),
      statementParameterTypes(backend, run),
    ]);
    const limit = intermediateResultLimit(setting.rows[0]?.[0]?.toString());
    const tree = structuredClone(this.statement);
    const started = performance.now();
    let rows = 0;
    let bytes = 0;
    for (const subPlan of this.subPlans) {
      const result = await runSubPlan(port, run, subPlan, parameterTypes, limit, sink);
      const typeNames = await columnTypeNames(backend, result.columns);
      rows += result.rows.length;
      bytes += result.bytes;
      const holder = nodeAtPath(tree, subPlan.path);
      const values = result.valuesSelect(typeNames);
      if (subPlan.table !== undefined) replaceRangeVar(holder, values, subPlan.table);
      else holder[subPlan.field] = values;
    }
    // EXPLAIN ANALYZE: the subplans' rows (kept on the coordinator) and the time they took
    run.stats?.record(this, { timeMs: performance.now() - started, rows, bytes });
    const sql = deparse(tree);
    await this.plan(tree).execute(port, { ...run, sql, statement: tree, parameterTypes }, sink);
  }

  describe(context: DescribeContext): string {
    const line = `Subplans ${this.subPlans.length} (run first; their rows replace the subqueries, then the statement is planned and run)`;
    const figures = context.stats?.of(this);
    if (!figures) return line;
    return `${line} (actual time=${figures.timeMs.toFixed(3)} ms rows=${figures.rows ?? 0} bytes=${figures.bytes ?? 0})`;
  }

  runOf(input: Primitive, run: StatementRun): StatementRun {
    const subPlan = this.subPlans.find((candidate) => candidate.plan === input);
    return subPlan ? { ...run, sql: subPlan.sql, statement: subPlan.statement } : run;
  }

  inputs(): readonly Primitive[] {
    return this.subPlans.map((subPlan) => subPlan.plan);
  }
}

/**
 * The types of the statement's parameters as PostgreSQL gives them for the whole statement (the
 * client may have left some unspecified), so that a subplan given only some of them still knows
 * each one's type.
 */
export async function statementParameterTypes(backend: PgConnection, run: StatementRun): Promise<readonly number[]> {
  if (!run.bind || (run.parameterTypes.length >= run.bind.parameters.length && !run.parameterTypes.includes(0)))
    return run.parameterTypes;
  return (await describeStatement(backend, run.sql, run.parameterTypes)).parameterTypes;
}

/** The SQL names of result columns' types (with their modifiers), to cast literals of their values to. */
export async function columnTypeNames(backend: PgConnection, columns: readonly FieldDescription[]): Promise<string[]> {
  const types = await backend.query(
    "SELECT pg_catalog.format_type(t, m) FROM unnest($1::oid[], $2::int[]) WITH ORDINALITY AS c (t, m, n) ORDER BY n",
    [
      `{${columns.map((column) => column.typeOid).join(",")}}`,
      `{${columns.map((column) => column.typeModifier).join(",")}}`,
    ],
  );
  return types.rows.map((row) => row[0]?.toString() ?? "text");
}

/**
 * Runs a subquery planned on its own (`subPlan`: its statement, text and plan) with the
 * statement's parameters, its rows kept as text on the coordinator up to `limit` bytes (else
 * 54000, naming citus.max_intermediate_result_size); its notices go to `sink`.
 */
export async function runSubPlan(
  port: ExecutionPort,
  run: StatementRun,
  subPlan: { readonly statement: AnyNode; readonly sql: string; readonly plan: Primitive },
  parameterTypes: readonly number[],
  limit: number,
  sink: ResultSink,
): Promise<IntermediateResult> {
  const result = new IntermediateResult(limit);
  const textRows = run.bind && { ...run.bind, resultFormats: [] };
  await subPlan.plan.execute(
    port,
    { ...run, sql: subPlan.sql, statement: subPlan.statement, parameterTypes, bind: textRows, describe: true },
    result,
  );
  result.check();
  for (const notice of result.notices) sink.notice(notice);
  return result;
}
