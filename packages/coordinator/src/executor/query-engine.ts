import type { Logger } from "@herd/shared";
import type { WorkerPool } from "../connection/worker-pool.js";
import { runCopy } from "../copy/copy-executor.js";
import type { Catalog } from "../metadata/catalog.js";
import type { DistributeDefaults } from "../operations/distribute-table.js";
import { runDistributedDdl } from "../operations/distributed-ddl.js";
import { runHerdFunction } from "../operations/herd-functions.js";
import { type AnyNode, deparse, unwrap } from "../parser/ast.js";
import type { Plan } from "../planner/plan.js";
import { PlanCache } from "../planner/plan-statement.js";
import { encodeCommandComplete, encodeDataRow, encodeRowDescription } from "../protocol/backend-messages.js";
import { BufferWriter } from "../protocol/buffer-writer.js";
import { backendRequest } from "./backend-request.js";
import type { SessionContext, StatementRun } from "./execution-port.js";
import type { ShardTaskDeps } from "./fan-out.js";
import { DistributedInsert } from "./primitives/distributed-insert.js";
import { MergeRoute } from "./primitives/merge-route.js";
import type { Primitive } from "./primitives/primitive.js";
import { Route } from "./primitives/route.js";
import { transactionControl } from "./transaction-control.js";

/** The statement under EXPLAIN, as a run of its own (same parameters). */
function innerRun(statement: AnyNode, run: StatementRun): StatementRun {
  return { ...run, statement, sql: deparse(statement) };
}

/** Stands in for the client while EXPLAIN ANALYZE runs a statement: counts rows, sends nothing. */
class DiscardingOutput {
  readonly writer = new BufferWriter(256);
  rows = 0;

  raw(message: Buffer): void {
    this.count(message);
  }

  write(bytes: Buffer): boolean {
    this.count(bytes);
    return true;
  }

  flush(): boolean {
    this.writer.flush();
    return true;
  }

  /** DataRows in a run of whole messages. */
  private count(bytes: Buffer): void {
    for (let at = 0; at + 5 <= bytes.length; at += 1 + bytes.readUInt32BE(at + 1)) {
      if (bytes[at] === 0x44) this.rows += 1;
    }
  }
}

export interface QueryEngineOptions {
  readonly catalog: Catalog;
  readonly pool: WorkerPool;
  readonly defaults: DistributeDefaults;
  readonly logger: Logger;
}

/**
 * Where the protocol layer hands over statements: it asks whether herd must run a statement
 * itself (`claims`), and runs the ones it claimed (`run`), planning them through the plan cache
 * and executing the plan's primitives.
 */
export class QueryEngine {
  private readonly plans: PlanCache;
  private readonly deps: ShardTaskDeps;

  constructor(private readonly options: QueryEngineOptions) {
    this.plans = new PlanCache(options.catalog);
    this.deps = { pool: options.pool, catalog: options.catalog, logger: options.logger };
  }

  get catalogVersion(): number {
    return this.options.catalog.version;
  }

  /**
   * Whether herd runs the statement rather than the coordinator's PostgreSQL. Transaction
   * control is claimed when workers take part in the block, and always for prepared statements
   * (`forPrepare`), which may run later in a block that has reached workers.
   */
  claims(sql: string, statement: AnyNode, session: SessionContext, forPrepare: boolean): boolean {
    const plan = this.plans.plan(sql, statement);
    if (plan.kind === "transaction") return forPrepare || session.transaction.active;
    return plan.kind !== "local";
  }

  async run(run: StatementRun, session: SessionContext): Promise<void> {
    const plan = this.plans.plan(run.sql, run.statement);
    switch (plan.kind) {
      case "local":
        await session.relayFromBackend(backendRequest(run), run.bind !== undefined);
        return;
      case "transaction":
        return transactionControl(plan.statement, run, session);
      case "function":
        return runHerdFunction(plan.call, run, session, this.deps, this.options.defaults);
      case "ddl":
        return runDistributedDdl(plan.ddl, run, session, this.deps);
      case "copy":
        return runCopy(plan.copy, session, this.deps);
      case "error":
        throw plan.error;
      case "explain":
        if (plan.analyze) return this.explainAnalyze(plan.inner, plan.statement, run, session);
        if (plan.inner.kind === "route")
          await this.primitive(plan.inner)?.prepare?.(innerRun(plan.statement, run), session);
        return this.writeExplain(this.describePlan(plan.inner, plan.statement, run), run, session);
      default:
        return (this.primitive(plan) as Primitive).execute(run, session, this.deps);
    }
  }

  /** A plan, described as EXPLAIN shows it. */
  private describePlan(plan: Plan, statement: AnyNode, run?: Pick<StatementRun, "bind">): string {
    const primitive = this.primitive(plan);
    if (primitive) return primitive.describe(run);
    if (plan.kind === "error") return `Error ${plan.error.sqlState}: ${plan.error.message}`;
    if (plan.kind === "ddl") return `DDL ${plan.ddl.action} on ${plan.ddl.tables.map((t) => t.name).join(", ")}`;
    return `${plan.kind[0]?.toUpperCase()}${plan.kind.slice(1)} ${unwrap(statement)?.[0] ?? ""}`.trim();
  }

  /**
   * EXPLAIN ANALYZE: runs the statement (its rows are counted, not sent) and shows the
   * distributed plan with the time each step took.
   */
  private async explainAnalyze(plan: Plan, statement: AnyNode, run: StatementRun, session: SessionContext) {
    const primitive = this.primitive(plan);
    if (!primitive) return this.writeExplain(this.describePlan(plan, statement, run), run, session);
    const discard = new DiscardingOutput();
    const quiet = Object.create(session, { output: { value: discard } }) as SessionContext;
    const started = performance.now();
    await primitive.execute({ ...innerRun(statement, run), describe: false }, quiet, this.deps);
    const total = performance.now() - started;
    const lines = [primitive.describe(run), `Rows: ${discard.rows}`, `Execution Time: ${total.toFixed(3)} ms`];
    return this.writeExplain(lines.join("\n"), run, session);
  }

  private writeExplain(text: string, run: StatementRun, session: SessionContext): void {
    const w = session.output.writer;
    if (run.describe) {
      encodeRowDescription(w, [
        { name: "QUERY PLAN", tableOid: 0, columnNumber: 0, typeOid: 25, typeSize: -1, typeModifier: -1, format: 0 },
      ]);
    }
    const lines = text.split("\n");
    for (const line of lines) encodeDataRow(w, [line]);
    encodeCommandComplete(w, "EXPLAIN");
  }

  private primitive(plan: Plan): Primitive | undefined {
    if (plan.kind === "route") {
      const multi = plan.route.multiShard;
      if (multi.kind === "merge") return new MergeRoute(plan.route, multi.template, multi.built, this.options.catalog);
      return new Route(plan.route, this.options.catalog);
    }
    if (plan.kind === "insert") return new DistributedInsert(plan.insert, this.options.catalog);
    return undefined;
  }
}
