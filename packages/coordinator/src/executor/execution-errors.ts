import { HerdError, SqlState } from "@herd/shared";

/**
 * Errors that only execution can find (they depend on parameter values or on the session's
 * state), in Citus's words where Citus has them. The planner's own (planner-errors.ts) reuse
 * these for the same conditions found at plan time.
 */
export const ExecutionErrors = {
  notSupported: (what: string, hint?: string) =>
    new HerdError(`herd does not support ${what} yet`, { sqlState: SqlState.featureNotSupported, hint }),
  complexJoin: () =>
    new HerdError(
      "complex joins are only supported when all distributed tables are co-located and joined on their distribution columns",
      { sqlState: SqlState.featureNotSupported },
    ),
  insertWithoutPartitionValue: () =>
    new HerdError("cannot perform an INSERT without a partition column value", {
      sqlState: SqlState.nullValueNotAllowed,
    }),
  insertNullPartitionValue: () =>
    new HerdError("cannot perform an INSERT with NULL in the partition column", {
      sqlState: SqlState.nullValueNotAllowed,
    }),
  constraintWithoutPartitionColumn: (tableName: string) =>
    new HerdError(`cannot create constraint on "${tableName}"`, {
      sqlState: SqlState.featureNotSupported,
      detail:
        "Distributed relations cannot have UNIQUE, EXCLUDE, or PRIMARY KEY constraints that do not include the partition column (with an equality operator if EXCLUDE).",
    }),
  /** A read that joins reference tables, on a shard no worker holds together with an active copy of each. */
  noPlacementWithReferences: (shardId: number, references: readonly string[]) =>
    new HerdError(`no worker holds shard ${shardId} together with an active copy of ${references.join(", ")}`, {
      sqlState: SqlState.objectNotInPrerequisiteState,
      hint: "A worker gets every reference table before a shard is moved or copied there; wait for the background copy, or run citus_copy_shard_placement for the reference table.",
    }),
} as const;
