import type { Catalog } from "../../metadata/catalog.js";
import type { WorkerNode } from "../../metadata/catalog-types.js";
import type { RoutePlan } from "../../planner/plan.js";
import { PlannerErrors } from "../../planner/planner-errors.js";
import { shardOf } from "../../planner/route-planner.js";
import { encodeCommandComplete } from "../../protocol/backend-messages.js";
import type { BindMessage } from "../../protocol/frontend-messages.js";
import type { SessionContext, StatementRun } from "../execution-port.js";
import { runShardTasks, type ShardTask, type ShardTaskDeps } from "../fan-out.js";
import { tagWithCount } from "../shard-request.js";
import { activeNodes, shardIndexesOf } from "../shard-selection.js";
import type { Primitive } from "./primitive.js";

/**
 * Runs a SELECT, UPDATE or DELETE on the shard groups its pins lead to: a read on one placement
 * of each (preferring workers the transaction block already uses, falling back to the other
 * placement when a worker cannot be reached), a write on every active placement. Several
 * shards' rows are appended, which the planner allowed only where that is the exact answer
 * (MergeRoute takes the statements whose rows must be merged).
 */
export class Route implements Primitive {
  constructor(
    private readonly plan: RoutePlan,
    private readonly catalog: Catalog,
  ) {}

  async execute(run: StatementRun, session: SessionContext, deps: ShardTaskDeps): Promise<void> {
    const indexes = this.shardIndexes(run.bind);
    const write = this.plan.target !== undefined;
    if (indexes.length > 1 && write && session.inTransactionBlock()) {
      throw PlannerErrors.notSupported(
        "UPDATE or DELETE reaching several shards inside a transaction block",
        "Filter on the distribution column, or run it outside BEGIN … COMMIT.",
      );
    }
    const tasks = indexes.map((index) => this.task(index, write, session, deps));
    const result = await runShardTasks(tasks, run, session, deps, write);
    encodeCommandComplete(
      session.output.writer,
      tasks.length === 1 ? result.tag : tagWithCount(result.tag, result.count),
    );
  }

  /** Which shard groups this execution reaches (one when nothing but reference tables). */
  shardIndexes(bind: BindMessage | undefined): number[] {
    const { anchors } = this.plan;
    if (anchors.length === 0) return [0];
    const perAnchor = anchors.map((anchor) => shardIndexesOf(anchor, bind));
    const first = perAnchor[0] as number[];
    const same = perAnchor.every(
      (indexes) => indexes.length === first.length && indexes.every((v, i) => v === first[i]),
    );
    if (!same) throw PlannerErrors.complexJoin();
    if (first.length === 0) return [0]; // pinned to NULL only: no rows anywhere, any shard answers
    if (first.length > 1 && this.plan.multiShard.kind === "error") throw this.plan.multiShard.error;
    return first;
  }

  /** The statement for shard group `index` on the placements it must (write) or may (read) run on. */
  task(
    index: number,
    write: boolean,
    session: SessionContext,
    deps: ShardTaskDeps,
    sql = this.plan.sqlFor(index),
  ): ShardTask {
    const main =
      this.plan.target ?? this.plan.anchors[0]?.table ?? (this.plan.references[0] as NonNullable<RoutePlan["target"]>);
    const nodes = activeNodes(shardOf(main, index), this.catalog);
    if (write) return { sql, nodes };
    // a read joins reference tables: its worker must hold them too
    const holdsAll = (node: WorkerNode) =>
      this.plan.references.every((table) => activeNodes(shardOf(table, 0), this.catalog).some((n) => n.id === node.id));
    const candidates = nodes.filter(holdsAll);
    const reachable = candidates.filter((node) => !deps.pool.isDown(node));
    const chosen =
      candidates.find((node) => session.transaction.has(node.id)) ?? reachable[0] ?? candidates[0] ?? nodes[0];
    return {
      sql,
      nodes: [chosen as WorkerNode],
      fallbacks: session.inTransactionBlock() ? [] : candidates.filter((node) => node !== chosen),
    };
  }

  describe(run?: Pick<StatementRun, "bind">): string {
    const write = this.plan.target !== undefined;
    const indexes = this.shardIndexes(run?.bind);
    const main = this.plan.target ?? this.plan.anchors[0]?.table ?? this.plan.references[0];
    const shards = indexes.map((index) => (main ? shardOf(main, index).id : index));
    return `Route ${write ? "write" : "read"} shards=[${shards.join(",")}] sql=${this.plan.sqlFor(indexes[0] as number)}`;
  }

  inputs(): readonly Primitive[] {
    return [];
  }
}
