import { HerdError, SqlState } from "@herd/shared";

/**
 * A write found, under its shard locks, that the shard's active placements are not the ones its
 * plan knows (one went stale, or was repaired, since the plan's catalog snapshot). Nothing was
 * written yet: the engine loads the catalog again and runs the statement once more; a client sees
 * this only if it happens twice in a row (40001, safe to retry).
 */
export class PlacementsChanged extends HerdError {
  constructor(readonly shardId: number) {
    super(`the placements of shard ${shardId} changed while the statement was planned`, {
      sqlState: SqlState.serializationFailure,
      hint: "Retry the transaction.",
    });
  }
}
