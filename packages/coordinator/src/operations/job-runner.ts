import { errorMessage, HerdError, type Logger, SqlState } from "@herd/shared";
import type pg from "pg";
import { PeriodicPass } from "../connection/periodic-pass.js";
import type { Catalog } from "../metadata/catalog.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import { planLostCopies, silentWorkers } from "./lost-workers.js";
import type { PlacementService } from "./placement-service.js";
import { type PlannedMove, planDrain, planRebalance, type RebalanceStrategy, shardGroups } from "./rebalance-plan.js";
import { runningMoves } from "./shard-move.js";

export interface JobJson {
  readonly id: number;
  readonly kind: "rebalance" | "drain";
  readonly nodeId: number | null;
  readonly strategy: string;
  readonly maxParallelMoves: number;
  readonly state: "running" | "cancelling" | "done" | "cancelled" | "failed";
  readonly movesTotal: number;
  readonly movesDone: number;
  readonly bytesCopied: number;
  readonly error: string | null;
  readonly startedAt: string;
  readonly finishedAt: string | null;
}

export interface JobRunnerOptions {
  readonly metadata: pg.Pool;
  readonly catalog: Catalog;
  readonly placements: PlacementService;
  readonly logger: Logger;
  /** A worker that joins gets every reference table and a rebalance starts (HERD_AUTO_REBALANCE, default on). */
  readonly autoRebalance: boolean;
  /** A worker not heard from for this long is left out of plans (the registry's heartbeat timeout). */
  readonly heartbeatTimeoutMs: number;
  /**
   * A worker not heard from for this long has its copies made again on other workers
   * (HERD_REPLACE_LOST_AFTER_S; 0: never).
   */
  readonly replaceLostAfterMs: number;
  /** Copies each shard should have (HERD_REPLICATION_FACTOR). */
  readonly replicationFactor: number;
  readonly intervalMs?: number;
}

export interface RebalanceRequest {
  readonly strategy?: RebalanceStrategy;
  readonly maxParallelMoves?: number;
}

/**
 * Rebalances and drains as jobs kept in the metadata (herd.jobs). A job plans its moves anew
 * before each batch (so a restart, a move that failed, or a worker that came or went changes the
 * rest of it, not its correctness), runs up to `maxParallelMoves` moves at once on disjoint
 * workers, counts moves and bytes, and stops after the batch under way when cancelled. One job at
 * a time. A coordinator that starts finds its running jobs and goes on with them.
 *
 * In the background (every few seconds) it also keeps the cluster whole by itself: a worker that
 * holds no copy of a reference table gets one, and — with autoRebalance — a cluster whose shard
 * groups are uneven (a worker joined) gets a rebalance job.
 */
export class JobRunner {
  private readonly passes: PeriodicPass;
  /** When this coordinator started: no worker counts as lost for longer than it has run. */
  private readonly startedAt = new Date();
  /** Jobs this process runs now. */
  private readonly running = new Map<number, Promise<void>>();

  constructor(private readonly options: JobRunnerOptions) {
    this.passes = new PeriodicPass(() => this.pass(), options.intervalMs ?? 5_000);
  }

  start(): void {
    this.passes.start();
  }

  async stop(): Promise<void> {
    await this.passes.stop();
    await Promise.allSettled(this.running.values());
  }

  /** What a rebalance would do now (dry run). */
  async plan(strategy: RebalanceStrategy = "by_shard_count"): Promise<PlannedMove[]> {
    const catalog = await this.fresh();
    const weights = strategy === "by_disk_size" ? await this.weights() : undefined;
    return planRebalance(catalog, strategy, weights, await this.unavailable());
  }

  async startRebalance(request: RebalanceRequest = {}): Promise<JobJson> {
    return this.startJob("rebalance", null, request.strategy ?? "by_shard_count", request.maxParallelMoves ?? 1);
  }

  /** Moves every placement off `nodeId` (its state: draining); the node can be removed when it is done. */
  async startDrain(nodeId: number, maxParallelMoves = 1): Promise<JobJson> {
    const catalog = await this.fresh();
    if (!catalog.nodes.has(nodeId))
      throw new HerdError(`node ${nodeId} does not exist`, { sqlState: SqlState.undefinedObject });
    await this.options.metadata.query("UPDATE herd.nodes SET state = 'draining' WHERE id = $1", [nodeId]);
    await this.options.catalog.reload();
    return this.startJob("drain", nodeId, "by_shard_count", maxParallelMoves);
  }

  async get(id: number): Promise<JobJson> {
    const { rows } = await this.options.metadata.query(`${SELECT_JOB} WHERE id = $1`, [id]);
    if (!rows[0]) throw new HerdError(`job ${id} does not exist`, { sqlState: SqlState.undefinedObject });
    return jobJson(rows[0]);
  }

  async list(): Promise<JobJson[]> {
    const { rows } = await this.options.metadata.query(`${SELECT_JOB} ORDER BY id DESC LIMIT 100`);
    return rows.map(jobJson);
  }

  /** Stops a running job after the moves under way. */
  async cancel(id: number): Promise<JobJson> {
    const job = await this.get(id);
    if (job.state !== "running") {
      throw new HerdError(`job ${id} is ${job.state}`, { sqlState: SqlState.objectNotInPrerequisiteState });
    }
    await this.options.metadata.query("UPDATE herd.jobs SET state = 'cancelling' WHERE id = $1 AND state = 'running'", [
      id,
    ]);
    return this.get(id);
  }

  /** Resolves when the job has ended (citus_rebalance_wait). */
  async wait(id: number): Promise<JobJson> {
    for (;;) {
      const job = await this.get(id);
      if (job.state !== "running" && job.state !== "cancelling") return job;
      await (this.running.get(id) ?? new Promise((resolve) => setTimeout(resolve, 500)));
    }
  }

  private async startJob(kind: "rebalance" | "drain", nodeId: number | null, strategy: string, parallel: number) {
    const busy = await this.options.metadata.query("SELECT id FROM herd.jobs WHERE state IN ('running', 'cancelling')");
    if (busy.rows[0]) {
      throw new HerdError(`job ${busy.rows[0].id} is running; one rebalance or drain at a time`, {
        sqlState: SqlState.objectInUse,
      });
    }
    const { rows } = await this.options.metadata.query<{ id: string }>(
      "INSERT INTO herd.jobs (kind, node_id, strategy, max_parallel_moves, state) VALUES ($1, $2, $3, $4, 'running') RETURNING id",
      [kind, nodeId, strategy, parallel],
    );
    const id = Number(rows[0]?.id);
    this.launch(id);
    return this.get(id);
  }

  private launch(id: number): void {
    if (this.running.has(id)) return;
    const run = this.run(id).finally(() => this.running.delete(id));
    this.running.set(id, run);
  }

  private async run(id: number): Promise<void> {
    const { metadata, logger } = this.options;
    let waited = 0;
    let waitedForCleanup = 0;
    try {
      for (;;) {
        const job = await this.get(id);
        if (job.state === "cancelling") {
          await this.finish(id, "cancelled", null);
          logger.info("job cancelled", { job: id, moves_done: job.movesDone });
          return;
        }
        // a move of a process that died (this job's, before a restart) is undone first by
        // move-cleanup.ts: planned again now, its shards would read as "being moved already"
        const orphaned = await metadata.query(
          "SELECT 1 FROM herd.shard_moves WHERE state = 'copying' AND NOT (id = ANY ($1::bigint[]))",
          [[...runningMoves]],
        );
        if (orphaned.rows.length > 0 && waitedForCleanup < CLEANUP_WAITS) {
          waitedForCleanup += 1;
          await new Promise((resolve) => setTimeout(resolve, 1_000));
          continue;
        }
        const catalog = await this.fresh();
        const moves = await this.movesFor(job, catalog);
        if (job.movesTotal === 0 || job.movesDone + moves.length !== job.movesTotal) {
          await metadata.query("UPDATE herd.jobs SET moves_total = moves_done + $2 WHERE id = $1", [id, moves.length]);
        }
        if (moves.length === 0 && job.kind === "drain" && holdsShardGroups(catalog, job.nodeId)) {
          // every other worker still holds some copy (one moved away is dropped a few seconds after)
          waited += 1;
          if (waited > DRAIN_WAITS) {
            throw new HerdError("no other worker can take the node's remaining shards", {
              sqlState: SqlState.objectNotInPrerequisiteState,
              hint: "Add a worker, or lower the replication factor of those tables.",
            });
          }
          await new Promise((resolve) => setTimeout(resolve, 1_000));
          continue;
        }
        if (moves.length === 0) {
          if (job.kind === "drain" && job.nodeId !== null) await this.dropReferencePlacements(job.nodeId, catalog);
          await this.finish(id, "done", null);
          logger.info(`${job.kind} done`, { job: id, moves: job.movesDone });
          return;
        }
        // a batch: moves on workers no other move of it touches
        const batch: PlannedMove[] = [];
        const busy = new Set<number>();
        for (const move of moves) {
          if (batch.length >= job.maxParallelMoves) break;
          if (busy.has(move.from) || busy.has(move.to)) continue;
          batch.push(move);
          busy.add(move.from).add(move.to);
        }
        const outcomes = await Promise.allSettled(
          batch.map((move) =>
            this.options.placements.move({ shardId: move.shardId, source: { id: move.from }, target: { id: move.to } }),
          ),
        );
        for (const outcome of outcomes) {
          if (outcome.status === "fulfilled") {
            await metadata.query(
              "UPDATE herd.jobs SET moves_done = moves_done + 1, bytes_copied = bytes_copied + $2 WHERE id = $1",
              [id, outcome.value.bytes],
            );
          } else {
            throw outcome.reason;
          }
        }
      }
    } catch (error) {
      logger.warn("job failed", { job: id, error: errorMessage(error) });
      await this.finish(id, "failed", errorMessage(error)).catch(() => {});
    }
  }

  private async movesFor(job: JobJson, catalog: CatalogSnapshot): Promise<PlannedMove[]> {
    if (job.kind === "drain") {
      const node = job.nodeId === null ? undefined : catalog.nodes.get(job.nodeId);
      return node ? planDrain(catalog, node, await this.unavailable()) : [];
    }
    const strategy = job.strategy as RebalanceStrategy;
    const weights = strategy === "by_disk_size" ? await this.weights() : undefined;
    return planRebalance(catalog, strategy, weights, await this.unavailable());
  }

  /** Workers not heard from within the heartbeat timeout: no move goes to or comes from them. */
  private unavailable(): Promise<Set<number>> {
    return silentWorkers(this.options.metadata, this.options.heartbeatTimeoutMs);
  }

  /** A drained node's copies of reference tables: every other worker has one; the node's go. */
  private async dropReferencePlacements(nodeId: number, catalog: CatalogSnapshot): Promise<void> {
    const ids = [...catalog.tables]
      .filter((table) => table.kind === "reference")
      .flatMap((table) => table.shards.map((shard) => shard.id));
    if (ids.length > 0) await this.retire(nodeId, ids, "reference placements of a drained worker retired");
  }

  private async finish(id: number, state: JobJson["state"], error: string | null): Promise<void> {
    await this.options.metadata.query(
      "UPDATE herd.jobs SET state = $2, error = $3, finished_at = now() WHERE id = $1",
      [id, state, error],
    );
  }

  private async fresh(): Promise<CatalogSnapshot> {
    await this.options.catalog.reload();
    return this.options.catalog.current;
  }

  /** A shard group's bytes (by its first shard), for by_disk_size. */
  private async weights(): Promise<Map<number, number>> {
    const weights = new Map<number, number>();
    const shards = await this.options.placements.shards(undefined);
    for (const shard of shards) {
      const bytes = Math.max(0, ...shard.placements.map((p) => p.bytes ?? 0));
      weights.set(shard.id, bytes);
    }
    return weights;
  }

  /** Jobs of a process that is gone go on here; a worker without reference tables gets them; uneven groups a rebalance. */
  private async pass(): Promise<number> {
    const { metadata, logger } = this.options;
    const { rows } = await metadata
      .query<{ id: string; state: string }>("SELECT id, state FROM herd.jobs WHERE state IN ('running', 'cancelling')")
      .catch(() => ({ rows: [] as { id: string; state: string }[] }));
    for (const row of rows) {
      const id = Number(row.id);
      if (this.running.has(id)) continue;
      logger.info("resuming a job of an earlier coordinator", { job: id });
      this.launch(id);
    }
    if (rows.length > 0 || this.running.size > 0) return 0;
    const unavailable = await this.unavailable();
    await this.replaceLostCopies(unavailable);
    // the catalog as the metadata's notifications keep it: no reload every few seconds for nothing
    const catalog = this.options.catalog.current;
    let started = 0;
    for (const copy of missingReferenceCopies(catalog, unavailable)) {
      try {
        await this.options.placements.copyOnto(copy.shardId, copy.source, copy.target);
        started += 1;
      } catch (error) {
        logger.warn("cannot copy a reference table to a worker now", {
          shard: copy.shardId,
          error: errorMessage(error),
        });
      }
    }
    // not while copies are stale: their worker is away or being repaired, which a rebalance would only race
    const settled = this.options.catalog.current;
    const stale = [...settled.tables].some((t) => t.shards.some((s) => s.placements.some((p) => p.state === "stale")));
    // and not again right after one failed (a worker that cannot be reached yet): a minute later
    const latest = (await this.list())[0];
    const backingOff =
      latest?.state === "failed" && Date.now() - Date.parse(latest.finishedAt ?? latest.startedAt) < AUTO_RETRY_MS;
    const uneven = planRebalance(settled, "by_shard_count", undefined, unavailable).length > 0;
    if (this.options.autoRebalance && !stale && !backingOff && uneven) {
      const job = await this.startRebalance().catch(() => undefined);
      if (job) logger.info("shard groups are uneven (a worker joined?): rebalancing", { job: job.id });
    }
    return started;
  }

  /**
   * A worker lost for longer than replaceLostAfterMs: each shard group it held gets a new copy on
   * another worker (from an active copy, as citus_copy_shard_placement makes one), then the lost
   * worker's placements are retired (to_delete: dropped by move-cleanup.ts if it ever answers
   * again, gone with it if it is removed). A crash between the two steps leaves one copy too
   * many, which the next pass retires without copying again.
   */
  private async replaceLostCopies(unavailable: ReadonlySet<number>): Promise<void> {
    const { metadata, logger, replaceLostAfterMs, heartbeatTimeoutMs } = this.options;
    if (replaceLostAfterMs <= 0 || unavailable.size === 0) return;
    // silence is counted from this coordinator's start at the earliest: a whole cluster that was
    // down (herd up stopped, every pod rescheduled) has lost nobody when it starts again
    const lost = await silentWorkers(metadata, Math.max(replaceLostAfterMs, heartbeatTimeoutMs), this.startedAt);
    if (lost.size === 0) return;
    const catalog = await this.fresh();
    const name = (id: number) => catalog.nodes.get(id)?.name ?? String(id);
    for (const plan of planLostCopies(catalog, lost, unavailable, this.options.replicationFactor)) {
      try {
        if (plan.copy) {
          logger.warn("re-creating the copies of a lost worker", {
            lost: name(plan.lost),
            shards: plan.shardIds.join(" "),
            from: name(plan.copy.source),
            to: name(plan.copy.target),
          });
          await this.options.placements.copyOnto(plan.shardId, plan.copy.source, plan.copy.target);
        }
        if (plan.retire) await this.retire(plan.lost, plan.shardIds, LOST_RETIRED);
      } catch (error) {
        logger.warn("cannot re-create the copies of a lost worker now; trying again later", {
          lost: name(plan.lost),
          shards: plan.shardIds.join(" "),
          error: errorMessage(error),
        });
      }
    }
    // its reference-table copies: every worker that answers has one
    for (const nodeId of lost) {
      const ids = [...catalog.tables]
        .filter((table) => table.kind === "reference")
        .flatMap((table) => table.shards)
        .filter(
          (shard) =>
            shard.placements.some((p) => p.nodeId === nodeId && p.state !== "to_delete") &&
            shard.placements.some((p) => p.state === "active" && !unavailable.has(p.nodeId)),
        )
        .map((shard) => shard.id);
      if (ids.length > 0) await this.retire(nodeId, ids, LOST_RETIRED);
    }
  }

  /**
   * The node's placements of these shards become to_delete, with a `switched` move record so that
   * move-cleanup.ts drops their tables when it can (as after a move); `said` is the log line.
   */
  private async retire(nodeId: number, shardIds: readonly number[], said: string): Promise<void> {
    const client = await this.options.metadata.connect();
    try {
      await client.query("BEGIN");
      const { rowCount } = await client.query(
        `UPDATE herd.placements SET state = 'to_delete'
          WHERE node_id = $1 AND shard_id = ANY ($2::bigint[]) AND state <> 'to_delete'`,
        [nodeId, shardIds],
      );
      if (rowCount) {
        await client.query(
          `INSERT INTO herd.shard_moves (shard_ids, source_node, target_node, state, switched_at)
           VALUES ($1, $2, $2, 'switched', now())`,
          [shardIds, nodeId],
        );
      }
      await client.query("COMMIT");
      if (rowCount) this.options.logger.info(said, { node: nodeId, shards: rowCount });
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {});
      throw error;
    } finally {
      client.release();
    }
    await this.options.catalog.reload();
  }
}

const LOST_RETIRED = "placements of a lost worker retired";

/** How long after a failed job an automatic rebalance is tried again. */
const AUTO_RETRY_MS = 60_000;

/** How many seconds a job waits for the moves of a process that died to be undone. */
const CLEANUP_WAITS = 120;

/** How many seconds a drain waits for a worker to take its last shard groups. */
const DRAIN_WAITS = 60;

function holdsShardGroups(catalog: CatalogSnapshot, nodeId: number | null): boolean {
  return nodeId !== null && shardGroups(catalog).some((group) => group.nodes.includes(nodeId));
}

/** Reference shards missing on an active worker that answers, each with an active copy to take it from. */
function missingReferenceCopies(
  catalog: CatalogSnapshot,
  unavailable: ReadonlySet<number>,
): { shardId: number; source: number; target: number }[] {
  const copies: { shardId: number; source: number; target: number }[] = [];
  const active = [...catalog.nodes.values()].filter((node) => node.state === "active" && !unavailable.has(node.id));
  for (const table of catalog.tables) {
    if (table.kind !== "reference") continue;
    for (const shard of table.shards) {
      const source = shard.placements.find((p) => p.state === "active" && !unavailable.has(p.nodeId))?.nodeId;
      if (source === undefined) continue;
      for (const node of active) {
        if (!shard.placements.some((p) => p.nodeId === node.id))
          copies.push({ shardId: shard.id, source, target: node.id });
      }
    }
  }
  return copies;
}

const SELECT_JOB = `SELECT id, kind, node_id, strategy, max_parallel_moves, state, moves_total, moves_done, bytes_copied,
                           error, started_at, finished_at FROM herd.jobs`;

function jobJson(row: Record<string, unknown>): JobJson {
  return {
    id: Number(row.id),
    kind: row.kind as JobJson["kind"],
    nodeId: row.node_id === null ? null : Number(row.node_id),
    strategy: String(row.strategy),
    maxParallelMoves: Number(row.max_parallel_moves),
    state: row.state as JobJson["state"],
    movesTotal: Number(row.moves_total),
    movesDone: Number(row.moves_done),
    bytesCopied: Number(row.bytes_copied),
    error: (row.error as string | null) ?? null,
    startedAt: new Date(row.started_at as string).toISOString(),
    finishedAt: row.finished_at ? new Date(row.finished_at as string).toISOString() : null,
  };
}
