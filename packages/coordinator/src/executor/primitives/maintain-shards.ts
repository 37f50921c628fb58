import { HerdError, SqlState } from "@herd/shared";
import type { WorkerNode } from "../../metadata/catalog-types.js";
import type { ExecutionPort } from "../execution-port.js";
import { runShardTasks, type ShardTask } from "../fan-out.js";
import type { ResultSink } from "../result-sink.js";
import type { StatementRun } from "../statement-run.js";
import { Local } from "./local.js";
import { NO_INPUTS, type Primitive } from "./primitive.js";

/** One shard placement's VACUUM or ANALYZE. */
export interface PlacementMaintenance {
  readonly sql: string;
  readonly shardId: number;
  readonly node: WorkerNode;
}

/**
 * VACUUM and ANALYZE of distributed and reference tables: the statement runs on every active
 * placement of every shard of the tables named (outside any transaction on the workers, as
 * VACUUM must), then on the coordinator's PostgreSQL as written (its shells and any ordinary
 * table named with them), whose answer the client gets. VACUUM in a transaction block is refused
 * before anything runs, with PostgreSQL's words.
 */
export class MaintainShards implements Primitive {
  readonly kind = "maintain";
  private readonly local = new Local();

  constructor(
    readonly vacuum: boolean,
    readonly placements: readonly PlacementMaintenance[],
  ) {}

  async execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void> {
    if (this.vacuum && port.inTransactionBlock()) {
      throw new HerdError("VACUUM cannot run inside a transaction block", { sqlState: SqlState.activeSqlTransaction });
    }
    // one statement per worker at a time: several on one connection would run in one transaction
    // (fan-out.ts pipelines a read's statements so), where VACUUM cannot run
    const byNode = new Map<number, ShardTask[]>();
    for (const p of this.placements) {
      const tasks = byNode.get(p.node.id) ?? [];
      tasks.push({ sql: p.sql, shardId: p.shardId, nodes: [p.node] });
      byNode.set(p.node.id, tasks);
    }
    const rounds = Math.max(0, ...[...byNode.values()].map((tasks) => tasks.length));
    const shardRun = { ...run, bind: undefined, parameterTypes: [], describe: false };
    for (let round = 0; round < rounds; round += 1) {
      const tasks = [...byNode.values()].flatMap((list) => (list[round] ? [list[round] as ShardTask] : []));
      await runShardTasks(tasks, shardRun, port, sink, { write: false, transaction: undefined });
    }
    await this.local.execute(port, run, sink);
  }

  describe(): string {
    return `${this.vacuum ? "Vacuum" : "Analyze"} placements=${this.placements.length}`;
  }

  inputs(): readonly Primitive[] {
    return NO_INPUTS;
  }
}
