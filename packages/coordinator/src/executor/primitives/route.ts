import { type HerdError, shardIndexForHash } from "@herd/shared";
import { type DistributedTable, shardOf, type WorkerNode } from "../../metadata/catalog-types.js";
import type { BindMessage } from "../../protocol/frontend-messages.js";
import { shardLock } from "../../transaction/shard-lock.js";
import { ExecutionErrors } from "../execution-errors.js";
import type { ExecutionPort } from "../execution-port.js";
import { runShardTasks, type ShardTask } from "../fan-out.js";
import type { ResultSink } from "../result-sink.js";
import { tagWithCount } from "../shard-request.js";
import { type Anchor, activeNodes, pinnedHashes, shardIndexesOf } from "../shard-selection.js";
import type { ShardStatements } from "../shard-statements.js";
import type { StatementRun } from "../statement-run.js";
import { inWriteTransaction } from "../write-transaction.js";
import { type DescribeContext, NO_INPUTS, type Primitive } from "./primitive.js";

/** What a Route runs where, decided by the planner. */
export interface RouteSpec {
  /** The statement each shard group runs. */
  readonly statements: ShardStatements;
  /** The distributed tables it reads or writes, with what pins their distribution columns. */
  readonly anchors: readonly Anchor[];
  /** The reference tables it reads (or writes). */
  readonly references: readonly DistributedTable[];
  /** The table an UPDATE or DELETE changes; undefined for a read. */
  readonly target: DistributedTable | undefined;
  /** The workers of the catalog snapshot it was planned against. */
  readonly workers: ReadonlyMap<number, WorkerNode>;
  /** A SELECT … FOR UPDATE/SHARE: in a block, it takes the write locks of the rows it locks. */
  readonly locksRows: boolean;
  /**
   * Why it cannot run when its pins lead to several shard groups (a reason found at plan time,
   * given when the parameters lead there); undefined: the groups' rows are simply appended.
   */
  readonly severalShards: HerdError | undefined;
  /**
   * Every distributed table is tied to the others by equal distribution columns (colocation.ts):
   * each row the statement makes is made in one shard group, so when the anchors' pins lead to
   * different groups, the groups the bounding anchors lead to hold every answer row.
   */
  readonly tied?: boolean;
}

/**
 * Runs a SELECT, UPDATE or DELETE on the shard groups its pins lead to: a read on one placement
 * of each (preferring workers the transaction block already uses, falling back to the other
 * placement when a worker cannot be reached), a write on every active placement. Several
 * shards' rows are appended, which the planner allowed only where that is the exact answer
 * (MergeRoute takes the statements whose rows must be merged).
 */
export class Route implements Primitive {
  readonly kind = "route";

  constructor(readonly spec: RouteSpec) {}

  async execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void> {
    const indexes = this.shardIndexes(run.bind);
    const write = this.spec.target !== undefined;
    const hashes = write ? this.writtenHashes(run.bind) : undefined;
    const tasks = indexes.map((index) => this.task(index, write, port, hashes));
    if (!write && this.spec.locksRows && port.inTransactionBlock()) await this.lockRows(indexes, run, port);
    const result = write
      ? await inWriteTransaction(port, tasks, (transaction) =>
          runShardTasks(tasks, run, port, sink, { write, transaction }),
        )
      : await runShardTasks(tasks, run, port, sink, {
          write,
          transaction: port.inTransactionBlock() ? port.transaction : undefined,
        });
    sink.complete(tasks.length === 1 ? result.tag : tagWithCount(result.tag, result.count));
  }

  /**
   * The hashes of the distribution values an UPDATE or DELETE is pinned to in the table it
   * changes; undefined (whole shards) when it is not pinned, or the table is a reference table.
   */
  private writtenHashes(bind: BindMessage | undefined): number[] | undefined {
    const target = this.spec.anchors.find((anchor) => anchor.table === this.spec.target);
    return target && pinnedHashes(target, bind);
  }

  /**
   * Rows locked by a read (FOR UPDATE, FOR SHARE) are locked for writers on the coordinator too,
   * as a write of them would be, for the rest of the block: transactions that lock rows on two
   * workers in opposite orders then wait for each other on the coordinator, where PostgreSQL
   * finds the deadlock (40P01) instead of both waiting forever on different workers.
   */
  private async lockRows(indexes: readonly number[], run: StatementRun, port: ExecutionPort): Promise<void> {
    const table = this.mainTable;
    const anchor = this.spec.anchors.find((a) => a.table === table);
    const hashes = anchor && pinnedHashes(anchor, run.bind);
    const count = table.shards.length;
    const locks = new Map(
      indexes.map((index) => {
        const shard = shardOf(table, index);
        const mine = hashes?.filter((hash) => shardIndexForHash(hash, count) === index);
        return [shard.id, shardLock(table, shard, mine)];
      }),
    );
    await port.transaction.lockShards(locks);
  }

  /** Which shard groups this execution reaches (one when nothing but reference tables). */
  shardIndexes(bind: BindMessage | undefined): number[] {
    const { anchors } = this.spec;
    if (anchors.length === 0) return [0];
    const perAnchor = anchors.map((anchor) => shardIndexesOf(anchor, bind));
    let first = perAnchor[0] as number[];
    const same = perAnchor.every(
      (indexes) => indexes.length === first.length && indexes.every((v, i) => v === first[i]),
    );
    if (!same) {
      if (!this.spec.tied) throw ExecutionErrors.complexJoin();
      first = boundingIndexes(anchors, perAnchor);
    }
    if (first.length === 0) return [0]; // pinned to NULL only: no rows anywhere, any shard answers
    if (first.length > 1 && this.spec.severalShards) throw this.spec.severalShards;
    return first;
  }

  /**
   * The statement for shard group `index` on the placements it must (write) or may (read) run on;
   * a write locks the values it is pinned to in that shard (`hashes`), or the whole shard.
   */
  task(index: number, write: boolean, port: ExecutionPort, hashes?: readonly number[]): ShardTask {
    const { spec } = this;
    const sql = spec.statements.sqlFor(index);
    const table = this.mainTable;
    const shard = shardOf(table, index);
    const nodes = activeNodes(shard, spec.workers);
    if (write) {
      const count = table.shards.length;
      const mine = hashes?.filter((hash) => shardIndexForHash(hash, count) === index);
      return { sql, shardId: shard.id, nodes, lock: shardLock(table, shard, mine) };
    }
    // a read joins reference tables: its worker must hold them too
    const holdsAll = (node: WorkerNode) =>
      spec.references.every((table) => activeNodes(shardOf(table, 0), spec.workers).some((n) => n.id === node.id));
    // in a block, a worker that failed earlier in it is left out: it missed the block's writes
    const candidates = nodes.filter((node) => holdsAll(node) && !port.transaction.isLost(node.id));
    // none: a worker without the reference table would say 42P01, one with a stale copy answer from old rows
    if (spec.references.length > 0 && !nodes.some(holdsAll)) {
      throw ExecutionErrors.noPlacementWithReferences(
        shard.id,
        spec.references.map((t) => `${t.schema}.${t.name}`),
      );
    }
    const reachable = candidates.filter((node) => !port.workers.isDown(node));
    const chosen =
      candidates.find((node) => port.transaction.has(node.id)) ?? reachable[0] ?? candidates[0] ?? nodes[0];
    return {
      sql,
      shardId: shard.id,
      nodes: [chosen as WorkerNode],
      fallbacks: port.inTransactionBlock() ? [] : candidates.filter((node) => node !== chosen),
    };
  }

  describe(context: DescribeContext): string {
    const indexes = this.shardIndexes(context.bind);
    const shards = indexes.map((index) => shardOf(this.mainTable, index).id);
    const line = `Route ${this.spec.target ? "write" : "read"} shards=[${shards.join(",")}] sql=${this.spec.statements.sqlFor(indexes[0] as number)}`;
    const figures = context.stats?.of(this);
    if (!figures) return line;
    return `${line} (actual time=${figures.timeMs.toFixed(3)} ms rows=${figures.rows ?? 0} shards=${figures.shards ?? 0})`;
  }

  inputs(): readonly Primitive[] {
    return NO_INPUTS;
  }

  /** The table whose shard group decides the placements: the written table, else the first read. */
  private get mainTable(): DistributedTable {
    const { target, anchors, references } = this.spec;
    return target ?? anchors[0]?.table ?? (references[0] as DistributedTable);
  }
}

/**
 * The shard groups that can make rows of a statement whose tables are tied by their distribution
 * columns: those every bounding anchor's pins lead to (`WHERE c.k = 5 AND NOT EXISTS (SELECT …
 * FROM p WHERE p.id = c.k)`: c's group of 5 — p's rows that matter are there too); every group
 * when no bounding anchor is pinned.
 */
function boundingIndexes(anchors: readonly Anchor[], perAnchor: readonly number[][]): number[] {
  let indexes: number[] | undefined;
  anchors.forEach((anchor, i) => {
    if (!anchor.bounds) return;
    const mine = new Set(perAnchor[i]);
    indexes = (indexes ?? (perAnchor[i] as number[])).filter((index) => mine.has(index));
  });
  return indexes ?? Array.from({ length: anchors[0]?.table.shards.length ?? 1 }, (_, i) => i);
}
