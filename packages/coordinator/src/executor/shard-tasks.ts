import { errorMessage, type Logger } from "@herd/shared";
import type { Catalog } from "../metadata/catalog.js";
import type { WorkerNode } from "../metadata/catalog-types.js";
import { encodeNotice } from "../protocol/backend-messages.js";
import { BufferWriter } from "../protocol/buffer-writer.js";
import { encodeQuery } from "../protocol/frontend-messages.js";
import type { PgConnection } from "./pg-connection.js";
import { ResultCollector } from "./pg-connection.js";
import type { SessionContext, StatementRun } from "./session-context.js";
import { encodeShardStatement, forgetFailedParse, ShardResult, tagCount } from "./shard-request.js";
import type { WorkerPool } from "./worker-pool.js";
import { applySettings } from "./worker-transaction.js";

/** One statement for one shard, and the workers (placements) it must run on. */
export interface ShardTask {
  readonly sql: string;
  /** The first is the one whose rows reach the client; a write lists every active placement. */
  readonly nodes: readonly WorkerNode[];
}

export interface ShardTaskDeps {
  readonly pool: WorkerPool;
  readonly catalog: Catalog;
  readonly logger: Logger;
}

export interface TasksResult {
  /** The command tag of the first task's first placement. */
  readonly tag: string;
  /** Rows affected or returned, summed over the tasks (first placement of each). */
  readonly count: number;
}

interface NodeWork {
  readonly node: WorkerNode;
  readonly items: { task: ShardTask; primary: boolean; result?: ShardResult }[];
  connection?: PgConnection;
  borrowed?: boolean;
}

/**
 * Runs shard statements on their placements: one connection per worker, the statements for that
 * worker pipelined on it, workers in parallel. Rows of each task's first placement stream to the
 * client as they come. A write that reaches more than one placement outside a transaction block
 * runs inside BEGIN … COMMIT on each worker and commits only when every placement succeeded, so
 * an error (a constraint violation on one shard) leaves nothing changed anywhere.
 */
export async function runShardTasks(
  tasks: readonly ShardTask[],
  run: StatementRun,
  session: SessionContext,
  deps: ShardTaskDeps,
  write: boolean,
): Promise<TasksResult> {
  const byNode = new Map<number, NodeWork>();
  for (const task of tasks) {
    task.nodes.forEach((node, i) => {
      const work = byNode.get(node.id) ?? { node, items: [] };
      work.items.push({ task, primary: i === 0 });
      byNode.set(node.id, work);
    });
  }
  const inBlock = session.inTransactionBlock();
  const wrap = write && !inBlock && (byNode.size > 1 || tasks.length > 1);
  const description = { wanted: run.describe, sent: false, simple: run.bind === undefined };
  const works = [...byNode.values()];
  const settings = session.settings();
  try {
    await Promise.all(
      works.map(async (work) => {
        if (inBlock) work.connection = await session.transaction.connection(work.node, settings);
        else {
          work.connection = await deps.pool.acquire(work.node);
          work.borrowed = true;
          await applySettings(work.connection, settings);
        }
        const connection = work.connection;
        session.busyWorkers.add(connection);
        const w = new BufferWriter(256);
        const answers: Promise<unknown>[] = [];
        if (wrap) {
          encodeQuery(w, "BEGIN");
          answers.push(connection.exchange(w.flush(), new ResultCollector()));
        }
        for (const item of work.items) {
          const { parsedAs } = encodeShardStatement(
            w,
            connection,
            item.task.sql,
            run.parameterTypes,
            run.bind,
            description.wanted && item.primary,
          );
          item.result = new ShardResult(item.primary ? session.output : undefined, description, deps.catalog);
          const result = item.result;
          answers.push(
            connection.exchange(w.flush(), result).then(() => {
              if (result.error) forgetFailedParse(connection, parsedAs);
            }),
          );
        }
        await Promise.all(answers);
      }),
    );
    const results = works.flatMap((work) => work.items);
    const failed =
      results.find((item) => item.result?.error && item.primary) ?? results.find((item) => item.result?.error);
    if (failed?.result?.error) {
      if (wrap) await finishAll(works, "ROLLBACK");
      throw failed.result.error;
    }
    for (const item of results) {
      for (const notice of item.primary ? (item.result?.notices ?? []) : [])
        encodeNotice(session.output.writer, "N", notice);
    }
    if (wrap) await commitAll(works, session, deps);
    checkReplicas(tasks, results, deps.logger);
    const primaries = results.filter((item) => item.primary);
    return {
      tag: primaries[0]?.result?.tag ?? "",
      count: primaries.reduce((sum, item) => sum + tagCount(item.result?.tag ?? ""), 0),
    };
  } finally {
    for (const work of works) {
      if (work.connection) session.busyWorkers.delete(work.connection);
      if (work.borrowed && work.connection) deps.pool.release(work.connection);
    }
  }
}

async function finishAll(works: NodeWork[], sql: "ROLLBACK" | "COMMIT"): Promise<void> {
  await Promise.all(works.map((work) => work.connection?.query(sql).catch(() => work.connection?.destroy())));
}

/**
 * Commits worker by worker. Until one has committed, a failed commit rolls the rest back and is
 * the statement's error; after that, a placement that fails to commit missed the write: it is
 * reported (and, when placement repair exists, marked stale).
 */
async function commitAll(works: NodeWork[], session: SessionContext, deps: ShardTaskDeps): Promise<void> {
  let committed = 0;
  for (const work of works) {
    try {
      await work.connection?.query("COMMIT");
      committed += 1;
    } catch (error) {
      work.connection?.destroy();
      if (committed === 0) {
        await finishAll(works.slice(works.indexOf(work) + 1), "ROLLBACK");
        throw error;
      }
      deps.logger.error("a placement missed a committed write", { node: work.node.name, error: errorMessage(error) });
      encodeNotice(session.output.writer, "N", {
        severity: "WARNING",
        code: "01000",
        message: `worker ${work.node.name} failed to commit; its placements missed this write`,
      });
    }
  }
}

/** Replicas of one shard must agree on what a write did; when they do not, say so loudly. */
function checkReplicas(tasks: readonly ShardTask[], results: NodeWork["items"], logger: Logger): void {
  for (const task of tasks) {
    if (task.nodes.length < 2) continue;
    const tags = new Set(results.filter((item) => item.task === task).map((item) => item.result?.tag));
    if (tags.size > 1)
      logger.error("shard replicas disagree on a write", { sql: task.sql, tags: [...tags].join(" / ") });
  }
}
