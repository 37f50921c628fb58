import { errorMessage, type Logger } from "@herd/shared";
import type pg from "pg";
import { PeriodicPass } from "../connection/periodic-pass.js";
import { isConnectionLoss } from "../connection/server-error.js";
import type { ConnectionPool } from "../connection/worker-connection.js";
import type { CatalogSource } from "../metadata/catalog.js";
import { shardName } from "../metadata/catalog-types.js";
import { qualifiedName } from "../parser/identifiers.js";
import { finishMove, runningMoves, type UnfinishedMove, undoMove } from "./shard-move.js";

export interface MoveCleanupOptions {
  readonly metadata: pg.Pool;
  readonly catalog: CatalogSource;
  readonly pool: ConnectionPool;
  readonly logger: Logger;
  readonly intervalMs?: number;
  /**
   * How long the source's tables of a switched move are kept: a statement planned before the
   * switch may still be on its way to them (default 10 s).
   */
  readonly keepMovedAwayMs?: number;
}

/**
 * What moves leave behind, in the background (and at the coordinator's start): a move that was
 * copying when its process died is undone (shard-move.ts undoMove); the source's tables of a move
 * that switched are dropped once nothing can read them any more, with their to_delete placements.
 */
export class MoveCleanup {
  private readonly passes: PeriodicPass;

  constructor(private readonly options: MoveCleanupOptions) {
    this.passes = new PeriodicPass(() => this.pass(), options.intervalMs ?? 5_000);
  }

  start(): void {
    this.passes.start();
  }

  stop(): Promise<void> {
    return this.passes.stop();
  }

  now(): Promise<number> {
    return this.passes.now();
  }

  private async pass(): Promise<number> {
    const { metadata, logger } = this.options;
    const { rows } = await metadata
      .query<{
        id: string;
        shard_ids: string[];
        source_node: number;
        target_node: number;
        state: string;
        ripe: boolean;
      }>(
        `SELECT id, shard_ids::text[] AS shard_ids, source_node, target_node, state,
                coalesce(switched_at < now() - make_interval(secs => $1), false) AS ripe
           FROM herd.shard_moves ORDER BY id`,
        [(this.options.keepMovedAwayMs ?? 10_000) / 1000],
      )
      .catch(() => ({ rows: [] }));
    let done = 0;
    for (const row of rows) {
      const id = Number(row.id);
      if (row.state === "copying" && runningMoves.has(id)) continue;
      if (row.state === "switched" && !row.ripe) continue;
      const move = this.describe(id, row.shard_ids.map(Number), row.source_node, row.target_node);
      if (!move) continue;
      try {
        if (row.state === "copying") {
          logger.warn("undoing a shard move whose process is gone", { move: id });
          await undoMove(this.options, move);
        } else {
          await finishMove(this.options, move);
          logger.info("moved-away shard tables dropped", { move: id, node: move.source.name });
        }
        done += 1;
      } catch (error) {
        // a worker that is away (or lost, its copies retired) is the usual reason: quietly
        logger[isConnectionLoss(error) ? "debug" : "warn"](
          "cannot clean up after a shard move now; trying again later",
          {
            move: id,
            error: errorMessage(error),
          },
        );
      }
    }
    return done;
  }

  private describe(id: number, shardIds: number[], sourceId: number, targetId: number): UnfinishedMove | undefined {
    const catalog = this.options.catalog.current;
    const source = catalog.nodes.get(sourceId);
    const target = catalog.nodes.get(targetId);
    if (!source || !target) return undefined;
    const names = shardIds.flatMap((shardId) => {
      const table = catalog.shardTable(shardId);
      return table ? [qualifiedName(table.schema, shardName(table, shardId))] : [];
    });
    return { id, shardIds, names, source, target };
  }
}
