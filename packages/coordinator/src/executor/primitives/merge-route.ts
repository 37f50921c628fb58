import type { Catalog } from "../../metadata/catalog.js";
import { deparse } from "../../parser/ast.js";
import { argumentProbe, type BuiltMerge, buildMerge, type MergeTemplate } from "../../planner/merge-planner.js";
import type { RoutePlan } from "../../planner/plan.js";
import { shardSql } from "../../planner/route-planner.js";
import type { SessionContext, StatementRun } from "../execution-port.js";
import { runShardTasks, type ShardTaskDeps } from "../fan-out.js";
import { BackendMerge } from "../merge-on-backend.js";
import { describeStatement } from "../statement-description.js";
import type { Primitive } from "./primitive.js";
import { Route } from "./route.js";

/** Timings of the last execution, for EXPLAIN ANALYZE. */
export interface MergeTimings {
  readonly describeMs: number;
  readonly shardsMs: number;
  readonly mergeMs: number;
  readonly shardRows: number;
  readonly shards: number;
}

/**
 * A SELECT whose rows from several shard groups must be merged: the worker query runs on one
 * placement of each shard group (in parallel, a few connections per worker) and its rows stream
 * into the session's own PostgreSQL, where the combine query answers (merge-planner.ts,
 * merge-on-backend.ts). Reaching one shard group only, the statement runs whole there (Route).
 *
 * The split depends on types (sum of int4 is bigint, of int8 numeric), which PostgreSQL tells
 * by describing the statement on the shell tables; the built queries are kept with the plan,
 * per parameter types.
 */
export class MergeRoute implements Primitive {
  private readonly route: Route;
  lastTimings: MergeTimings | undefined;

  constructor(
    private readonly plan: RoutePlan,
    private readonly template: MergeTemplate,
    private readonly built: Map<string, BuiltMerge>,
    private readonly catalog: Catalog,
  ) {
    this.route = new Route(plan, catalog);
  }

  async execute(run: StatementRun, session: SessionContext, deps: ShardTaskDeps): Promise<void> {
    const indexes = this.route.shardIndexes(run.bind);
    if (indexes.length === 1) return this.route.execute(run, session, deps);
    const started = performance.now();
    const built = await this.prepare(run, session);
    const described = performance.now();
    const workerRun: StatementRun = {
      ...run,
      parameterTypes: built.description.parameterTypes,
      describe: false,
      bind: {
        portal: "",
        statement: "",
        parameterFormats: run.bind?.parameterFormats ?? [],
        parameters: run.bind?.parameters ?? [],
        resultFormats: [1],
      },
    };
    const tasks = indexes.map((index) => {
      built.sqlFor[index] ??= shardSql(built.queries.worker, this.catalog, index);
      return this.route.task(index, false, session, deps, built.sqlFor[index]);
    });
    const merge = new BackendMerge(session, {
      queries: built.queries,
      workerSql: built.workerSql,
      parameterTypes: built.description.parameterTypes,
      bind: run.bind,
      fields: built.description.fields,
      describe: run.describe,
    });
    try {
      await runShardTasks(tasks, workerRun, session, deps, false, merge);
    } catch (error) {
      await merge.abandon("a shard failed");
      throw error;
    }
    const merged = performance.now();
    await merge.finish();
    this.lastTimings = {
      describeMs: described - started,
      shardsMs: merged - described,
      mergeMs: performance.now() - merged,
      shardRows: merge.rows,
      shards: tasks.length,
    };
  }

  /** The queries for this execution's parameter types (described and built on first use). */
  async prepare(run: Pick<StatementRun, "sql" | "parameterTypes">, session: SessionContext): Promise<BuiltMerge> {
    const key = run.parameterTypes.join(",");
    const cached = this.built.get(key);
    if (cached) return cached;
    const description = await describeStatement(session.backend, run.sql, run.parameterTypes);
    const probe = argumentProbe(this.template);
    const argumentTypes = probe
      ? (await describeStatement(session.backend, deparse(probe), description.parameterTypes)).fields.map(
          (field) => field.typeOid,
        )
      : [];
    const queries = buildMerge(
      this.template,
      { outputNames: description.fields.map((field) => field.name), argumentTypes },
      this.catalog,
    );
    const built: BuiltMerge = { queries, description, workerSql: deparse(queries.worker), sqlFor: [] };
    this.built.set(key, built);
    return built;
  }

  describe(run?: Pick<StatementRun, "bind">): string {
    const indexes = this.route.shardIndexes(run?.bind);
    if (indexes.length === 1) return this.route.describe(run);
    const built = [...this.built.values()].at(-1);
    const main = this.plan.anchors[0]?.table;
    const shards = indexes.map((index) => (main ? main.shards[index]?.id : index));
    if (!built) return `Merge (${this.template.kind}) shards=[${shards.join(",")}]`;
    const { queries } = built;
    const first = built.sqlFor[indexes[0] as number] ?? shardSql(queries.worker, this.catalog, indexes[0] as number);
    const timings = this.lastTimings;
    const lines = [
      `Merge on coordinator (${queries.strategy}) sql=${queries.combine}`,
      `  Route read shards=[${shards.join(",")}] sql=${first}`,
    ];
    if (timings) {
      lines[0] += ` (actual time=${timings.mergeMs.toFixed(3)} ms)`;
      lines[1] += ` (actual time=${timings.shardsMs.toFixed(3)} ms rows=${timings.shardRows} shards=${timings.shards})`;
    }
    return lines.join("\n");
  }

  inputs(): readonly Primitive[] {
    return [this.route];
  }
}
