import type { HerdError } from "@herd/shared";
import type { DistributedTable } from "../metadata/catalog-types.js";
import type { AnyNode } from "../parser/ast.js";
import type { ValueSource } from "./distribution-value.js";
import type { BuiltMerge, MergeTemplate } from "./merge-planner.js";
import type { Pin } from "./shard-pruning.js";

/**
 * What the planner decided for one statement. Plans depend on the statement and the catalog
 * only (not on parameter values), so they are cached per statement text and catalog version;
 * parameters pick the shards at execution.
 */
export type Plan =
  | { readonly kind: "local" }
  | { readonly kind: "transaction"; readonly statement: AnyNode }
  | { readonly kind: "function"; readonly call: FunctionCall }
  | { readonly kind: "route"; readonly route: RoutePlan }
  | { readonly kind: "insert"; readonly insert: InsertPlan }
  | { readonly kind: "ddl"; readonly ddl: DdlPlan }
  | { readonly kind: "copy"; readonly copy: CopyPlan }
  /** EXPLAIN of a statement on distributed tables: the distributed plan, described. */
  | { readonly kind: "explain"; readonly inner: Plan; readonly statement: AnyNode; readonly analyze: boolean }
  | { readonly kind: "error"; readonly error: HerdError };

/** A call of one of herd's SQL functions (`SELECT create_distributed_table('events', 'id')`). */
export interface FunctionCall {
  readonly name: "create_distributed_table" | "create_reference_table" | "get_shard_id_for_distribution_column";
  /** The column name the result goes under (the function's name or the alias). */
  readonly column: string;
  readonly positional: readonly ValueSource[];
  readonly named: ReadonlyMap<string, ValueSource>;
}

/** A distributed table the statement reads or writes, and what pins its distribution column. */
export interface Anchor {
  readonly table: DistributedTable;
  readonly pin: Pin | undefined;
}

/** SELECT, UPDATE or DELETE that runs whole on shards: one shard group, or several concatenated. */
export interface RoutePlan {
  readonly tree: AnyNode;
  readonly anchors: readonly Anchor[];
  /** The reference tables it reads (or writes). */
  readonly references: readonly DistributedTable[];
  /** The table an UPDATE or DELETE changes. */
  readonly target: DistributedTable | undefined;
  /** How it runs when it reaches several shard groups. */
  readonly multiShard: MultiShardPlan;
  /** The statement for shard group `index` (reference tables: their one shard). */
  sqlFor(index: number): string;
}

/**
 * A statement reaching several shard groups: run whole on each with the rows appended (writes,
 * and reads whose rows are final and unordered), split and merged on the coordinator, or refused.
 */
export type MultiShardPlan =
  | { readonly kind: "append" }
  | {
      readonly kind: "merge";
      readonly template: MergeTemplate;
      /** The built queries per parameter types (they depend on the types PostgreSQL resolves). */
      readonly built: Map<string, BuiltMerge>;
    }
  | { readonly kind: "error"; readonly error: HerdError };

export interface InsertPlan {
  readonly tree: AnyNode;
  readonly table: DistributedTable;
  /** Target columns in VALUES order. */
  readonly columns: readonly string[];
  /** Each VALUES row. */
  readonly rows: readonly (readonly AnyNode[])[];
  /** Index of the distribution column in `columns` (undefined for reference tables). */
  readonly distributionIndex: number | undefined;
  /** The rows must be evaluated on the coordinator first (defaults, sequences, functions). */
  readonly needsEvaluation: boolean;
  readonly returning: boolean;
}

export interface DdlPlan {
  readonly tree: AnyNode;
  /** The distributed and reference tables the command changes. */
  readonly tables: readonly DistributedTable[];
  readonly action: "alter" | "drop-tables" | "drop-indexes" | "truncate";
}

export interface CopyPlan {
  readonly tree: AnyNode;
  readonly table: DistributedTable;
  readonly columns: readonly string[];
}
