import { HerdError, SqlState } from "@herd/shared";
import { ExecutionErrors } from "../executor/execution-errors.js";

/** Errors the planner gives, with Citus's wording where Citus has one (some shared with execution). */
export const PlannerErrors = {
  complexJoin: ExecutionErrors.complexJoin,
  mixedLocal: (local: string, distributed: string) =>
    new HerdError(`cannot plan queries that include both regular and distributed relations`, {
      sqlState: SqlState.featureNotSupported,
      detail: `"${local}" is an ordinary table and "${distributed}" is distributed.`,
      hint: `Distribute "${local}" too (create_distributed_table or create_reference_table).`,
    }),
  multiShard: (reason: string) =>
    new HerdError(`could not run distributed query with ${reason} across several shards`, {
      sqlState: SqlState.featureNotSupported,
      hint: "Add an equality filter on the distribution column, so the query reaches one shard.",
    }),
  partitionValueChange: () =>
    new HerdError("modifying the partition value of rows is not allowed", { sqlState: SqlState.featureNotSupported }),
  volatileFunction: () =>
    new HerdError("functions used in UPDATE queries on distributed tables must not be VOLATILE", {
      sqlState: SqlState.featureNotSupported,
    }),
  stableFunction: (name: string) =>
    new HerdError(`STABLE functions such as ${name}() are not supported in modifications of replicated tables yet`, {
      sqlState: SqlState.featureNotSupported,
      detail: "Each placement would evaluate it on its own, and the replicas could differ.",
      hint: "Compute the value in the client, or in a SELECT first, and pass it as a constant.",
    }),
  cannotPushDown: (detail: string) =>
    new HerdError("cannot push down this subquery", { sqlState: SqlState.featureNotSupported, detail }),
  referenceOuterJoin: () =>
    new HerdError("cannot pushdown the subquery", {
      sqlState: SqlState.featureNotSupported,
      detail: "There exist a reference table in the outer part of the outer join",
    }),
  windowFunction: () =>
    new HerdError("could not run distributed query because the window function that is used cannot be pushed down", {
      sqlState: SqlState.featureNotSupported,
      hint: "Window functions are supported in two ways. Either add an equality filter on the distributed tables' partition column or use the window functions with a PARTITION BY clause containing the distribution column",
    }),
  notSupported: ExecutionErrors.notSupported,
  insertWithoutPartitionValue: ExecutionErrors.insertWithoutPartitionValue,
  insertNullPartitionValue: ExecutionErrors.insertNullPartitionValue,
} as const;
