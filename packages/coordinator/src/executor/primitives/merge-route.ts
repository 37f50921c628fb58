import type { ExecutionPort } from "../execution-port.js";
import { runShardTasks } from "../fan-out.js";
import { BackendMerge, type MergeQueries } from "../merge-on-backend.js";
import type { ResultSink } from "../result-sink.js";
import type { TableMention } from "../shard-statements.js";
import { ShardStatements } from "../shard-statements.js";
import { describeStatement, type StatementDescription } from "../statement-description.js";
import type { StatementRun } from "../statement-run.js";
import type { DescribeContext, Primitive } from "./primitive.js";
import { Route } from "./route.js";

/** What PostgreSQL says about a statement that the split needs. */
export interface StatementTypes {
  /** The names of the statement's result columns. */
  readonly outputNames: readonly string[];
  /** Type OID of each probed argument, in the probe's column order. */
  readonly argumentTypes: readonly number[];
}

/**
 * How a merge splits its statement (merge-planner.ts makes it): the worker and combine queries
 * depend on types (sum of int4 is bigint, of int8 numeric), which PostgreSQL tells by describing
 * the statement, and `probe` (the aggregates' arguments as columns), on the shell tables.
 */
export interface MergeSplit {
  /** "rows": each shard's rows are final; "aggregate": groups spread over shards. */
  readonly kind: "rows" | "aggregate";
  /** A SELECT whose result types are the aggregate arguments' (undefined: none needed). */
  readonly probe: string | undefined;
  build(types: StatementTypes): { readonly queries: MergeQueries; readonly workerMentions: readonly TableMention[] };
}

/** The merge for one set of parameter types: its queries and the route of its worker query. */
export interface BuiltMerge {
  readonly queries: MergeQueries;
  /** The statement as PostgreSQL describes it: resolved parameter types, result columns. */
  readonly description: StatementDescription;
  /** The worker query on the shell tables (the merge table is created from it). */
  readonly workerSql: string;
  /** The worker query, run on one placement of each shard group. */
  readonly workers: Route;
}

/**
 * A SELECT whose rows from several shard groups must be merged: the worker query runs on one
 * placement of each shard group (in parallel, a few connections per worker) and its rows stream
 * into the session's own PostgreSQL, where the combine query answers (merge-planner.ts,
 * merge-on-backend.ts). Reaching one shard group only, the statement runs whole there (`route`).
 *
 * The split depends on the parameter types, so it is its own step with its own cache (MergeBuilds),
 * built on first use per parameter types.
 */
export class MergeRoute implements Primitive {
  readonly kind = "merge";
  private readonly builds: MergeBuilds;

  constructor(
    readonly route: Route,
    readonly split: MergeSplit,
  ) {
    this.builds = new MergeBuilds(route, split);
  }

  async execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void> {
    const indexes = this.route.shardIndexes(run.bind);
    if (indexes.length === 1) return this.route.execute(port, run, sink);
    const built = await this.builds.get(port, run);
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
    const tasks = indexes.map((index) => built.workers.task(index, false, port));
    const merge = new BackendMerge(port, sink, {
      queries: built.queries,
      workerSql: built.workerSql,
      parameterTypes: built.description.parameterTypes,
      bind: run.bind,
      fields: built.description.fields,
      describe: run.describe,
      copyOf: run.copyOf,
    });
    try {
      await runShardTasks(tasks, workerRun, port, sink, {
        write: false,
        transaction: port.inTransactionBlock() ? port.transaction : undefined,
        rows: merge,
      });
    } catch (error) {
      await merge.abandon("a shard failed");
      throw error;
    }
    const merged = performance.now();
    await merge.finish();
    sink.complete(merge.tag);
    run.stats?.record(built.workers, { timeMs: merged - described, rows: merge.rows, shards: tasks.length });
    run.stats?.record(this, { timeMs: performance.now() - merged });
  }

  async prepare(port: ExecutionPort, run: StatementRun): Promise<void> {
    if (this.route.shardIndexes(run.bind).length > 1) await this.builds.get(port, run);
  }

  describe(context: DescribeContext): string {
    const indexes = this.route.shardIndexes(context.bind);
    if (indexes.length === 1) return this.route.describe(context);
    const built = this.builds.peek(context.parameterTypes);
    if (!built) {
      const main = this.route.spec.anchors[0]?.table;
      const shards = indexes.map((index) => (main ? main.shards[index]?.id : index));
      return `Merge (${this.split.kind}) shards=[${shards.join(",")}]`;
    }
    const line = `Merge on coordinator (${built.queries.strategy}) sql=${built.queries.combine}`;
    const figures = context.stats?.of(this);
    return figures ? `${line} (actual time=${figures.timeMs.toFixed(3)} ms)` : line;
  }

  inputs(context: DescribeContext): readonly Primitive[] {
    if (this.route.shardIndexes(context.bind).length === 1) return [];
    const built = this.builds.peek(context.parameterTypes);
    return built ? [built.workers] : [];
  }
}

/**
 * The merge's split per parameter types, made on first use: PostgreSQL describes the statement
 * (and the probe) on the shell tables, the split builds the queries, and the worker query gets a
 * route of its own (same tables, pins and placements as the statement's).
 */
class MergeBuilds {
  private readonly cache = new Map<string, BuiltMerge>();

  constructor(
    private readonly route: Route,
    private readonly split: MergeSplit,
  ) {}

  peek(parameterTypes: readonly number[]): BuiltMerge | undefined {
    return this.cache.get(parameterTypes.join(","));
  }

  async get(port: ExecutionPort, run: Pick<StatementRun, "sql" | "parameterTypes">): Promise<BuiltMerge> {
    const key = run.parameterTypes.join(",");
    const cached = this.cache.get(key);
    if (cached) return cached;
    const description = await describeStatement(port.backend, run.sql, run.parameterTypes);
    const argumentTypes = this.split.probe
      ? (await describeStatement(port.backend, this.split.probe, description.parameterTypes)).fields.map(
          (field) => field.typeOid,
        )
      : [];
    const { queries, workerMentions } = this.split.build({
      outputNames: description.fields.map((field) => field.name),
      argumentTypes,
    });
    const statements = new ShardStatements(queries.worker, workerMentions);
    const built: BuiltMerge = {
      queries,
      description,
      workerSql: statements.sqlOnShells,
      workers: new Route({ ...this.route.spec, statements, severalShards: undefined }),
    };
    this.cache.set(key, built);
    return built;
  }
}
