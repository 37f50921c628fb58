import type { BindMessage } from "../../protocol/frontend-messages.js";
import type { ExecutionPort } from "../execution-port.js";
import type { ExecutionStats } from "../execution-stats.js";
import type { ResultSink } from "../result-sink.js";
import type { StatementRun } from "../statement-run.js";

export type PrimitiveKind =
  | "local"
  | "refuse"
  | "transaction"
  | "function"
  | "route"
  | "merge"
  | "insert"
  | "ddl"
  | "copy"
  | "copy-out"
  | "lock"
  | "maintain"
  | "ignored-setting"
  | "sql-prepare"
  | "sql-execute"
  | "sql-deallocate"
  | "explain"
  | "subplans"
  | "insert-select"
  | "cluster-activity"
  | "shard-sizes"
  | "key-to-distributed"
  | "merge-via-coordinator"
  | "catalog-ddl"
  | "role-ddl"
  | "create-matview"
  | "refresh-matview";

/** What describing a plan may look at: this execution's parameters and, after EXPLAIN ANALYZE runs it, its figures. */
export interface DescribeContext {
  readonly bind: BindMessage | undefined;
  readonly parameterTypes: readonly number[];
  readonly stats?: ExecutionStats;
}

/**
 * A step of a plan (after Vitess's engine primitives). The planner builds a tree of them once
 * per statement and catalog version; it never changes after that and is shared by every
 * execution. A primitive reaches shards, the session's PostgreSQL and the transaction only through
 * the ExecutionPort, and answers only through the ResultSink.
 */
export interface Primitive {
  readonly kind: PrimitiveKind;
  execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void>;
  /** One line: what this step does (EXPLAIN shows it, its inputs indented under it). */
  describe(context: DescribeContext): string;
  /** The steps that feed this one. */
  inputs(context: DescribeContext): readonly Primitive[];
  /** Work describe() needs first (a merge asks PostgreSQL for types); its results are cached. */
  prepare?(port: ExecutionPort, run: StatementRun): Promise<void>;
  /** The statement an input runs (a subplan runs a subquery of its own); the same run by default. */
  runOf?(input: Primitive, run: StatementRun): StatementRun;
}

/** The plan as EXPLAIN shows it: each step's line, its inputs indented two spaces deeper. */
export function describeTree(root: Primitive, context: DescribeContext): string[] {
  const lines: string[] = [];
  const visit = (step: Primitive, depth: number) => {
    lines.push(`${"  ".repeat(depth)}${step.describe(context)}`);
    for (const input of step.inputs(context)) visit(input, depth + 1);
  };
  visit(root, 0);
  return lines;
}

/** Runs `prepare` of every step of the tree that has one. */
export async function prepareTree(root: Primitive, port: ExecutionPort, run: StatementRun): Promise<void> {
  await root.prepare?.(port, run);
  const context = { bind: run.bind, parameterTypes: run.parameterTypes };
  for (const input of root.inputs(context)) await prepareTree(input, port, root.runOf?.(input, run) ?? run);
}

/** A step with no inputs. */
export const NO_INPUTS: readonly Primitive[] = [];
