import { errorMessage, HerdError, type Logger, SqlState } from "@herd/shared";
import type { PgConnection } from "../connection/pg-connection.js";
import { ResultCollector } from "../connection/pg-connection.js";
import type { WorkerPool } from "../connection/worker-pool.js";
import type { Catalog } from "../metadata/catalog.js";
import type { WorkerNode } from "../metadata/catalog-types.js";
import { encodeNotice } from "../protocol/backend-messages.js";
import { BufferWriter } from "../protocol/buffer-writer.js";
import { encodeQuery } from "../protocol/frontend-messages.js";
import { BackendMessage } from "../protocol/message-codes.js";
import { applySettings } from "../transaction/worker-transaction.js";
import type { SessionContext, StatementRun } from "./execution-port.js";
import { encodeShardStatement, forgetFailedParse, ShardResult, tagCount } from "./shard-request.js";

/** One statement for one shard, and the workers (placements) it must run on. */
export interface ShardTask {
  readonly sql: string;
  /** The first is the one whose rows reach the client; a write lists every active placement. */
  readonly nodes: readonly WorkerNode[];
  /** A read's other placements, tried in order when a worker cannot be reached. */
  readonly fallbacks?: readonly WorkerNode[];
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

/** Where the rows of a task's first placement go (the client, or a merge on the coordinator). */
export interface RowSink {
  /** false: the receiver is full; the rows' worker connection waits for `onceDrained`. */
  raw(message: Buffer): boolean | undefined;
  onceDrained?(resume: () => void): void;
}

/** A slow client holds the worker back (its socket is paused) instead of filling herd's memory. */
function heldBack(sink: RowSink, connection: PgConnection): RowSink {
  return {
    raw(message) {
      if (sink.raw(message) === false && sink.onceDrained) {
        connection.pause();
        sink.onceDrained(() => connection.resume());
      }
      return true;
    },
  };
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
  sink: RowSink = session.output,
): Promise<TasksResult> {
  const inBlock = session.inTransactionBlock();
  const description = { wanted: run.describe, sent: false, simple: run.bind === undefined };
  const settings = session.settings();
  const spread = !write && !inBlock;
  let works = planWorks(tasks, spread ? deps.pool.connectionsPerWorker : 1);
  const wrap = write && !inBlock && (works.length > 1 || tasks.length > 1);
  const done: NodeWork[] = [];
  try {
    while (works.length > 0) {
      const unreachable: NodeWork[] = [];
      await Promise.all(
        works.map(async (work) => {
          try {
            if (inBlock) work.connection = await session.transaction.connection(work.node, settings);
            else {
              work.connection = await deps.pool.acquire(work.node);
              work.borrowed = true;
              await applySettings(work.connection, settings);
            }
          } catch (error) {
            if (!spread) throw error;
            // a read goes to the shard's other placement when this worker cannot be reached
            deps.pool.markDown(work.node);
            deps.logger.warn("worker unreachable, reading other placements", {
              node: work.node.name,
              error: errorMessage(error),
            });
            unreachable.push(work);
            return;
          }
          done.push(work);
          await runWork(work, run, session, deps, description, wrap, sink);
        }),
      );
      works = unreachable.length > 0 ? failover(unreachable, deps) : [];
    }
    const results = done.flatMap((work) => work.items);
    const failed =
      results.find((item) => item.result?.error && item.primary) ?? results.find((item) => item.result?.error);
    if (failed?.result?.error) {
      if (wrap) await finishAll(done, "ROLLBACK");
      throw failed.result.error;
    }
    for (const item of results) {
      for (const notice of item.primary ? (item.result?.notices ?? []) : [])
        encodeNotice(session.output.writer, BackendMessage.noticeResponse, notice);
    }
    if (wrap) await commitAll(done, session, deps);
    checkReplicas(tasks, results, deps.logger);
    const primaries = results.filter((item) => item.primary);
    return {
      tag: primaries[0]?.result?.tag ?? "",
      count: primaries.reduce((sum, item) => sum + tagCount(item.result?.tag ?? ""), 0),
    };
  } finally {
    for (const work of done) {
      if (work.connection) session.busyWorkers.delete(work.connection);
      if (work.borrowed && work.connection) deps.pool.release(work.connection);
    }
  }
}

/**
 * Groups the tasks by worker; a worker's reads are spread over up to `perWorker` connections
 * (statements pipelined on each), so a worker with several cores scans several shards at once.
 */
function planWorks(tasks: readonly ShardTask[], perWorker: number): NodeWork[] {
  const byNode = new Map<number, NodeWork[]>();
  const seen = new Map<number, number>();
  for (const task of tasks) {
    task.nodes.forEach((node, i) => {
      const works = byNode.get(node.id) ?? [];
      byNode.set(node.id, works);
      const count = seen.get(node.id) ?? 0;
      seen.set(node.id, count + 1);
      const slot = count % perWorker;
      works[slot] ??= { node, items: [] };
      works[slot].items.push({ task, primary: i === 0 });
    });
  }
  return [...byNode.values()].flat();
}

/** The unreachable works' tasks, on their next placement (an error when a shard has none left). */
function failover(unreachable: readonly NodeWork[], deps: ShardTaskDeps): NodeWork[] {
  const down = new Set(unreachable.map((work) => work.node.id));
  const moved: ShardTask[] = [];
  for (const work of unreachable) {
    for (const { task } of work.items) {
      const remaining = (task.fallbacks ?? []).filter((node) => !down.has(node.id) && !deps.pool.isDown(node));
      const next = remaining[0] ?? (task.fallbacks ?? []).find((node) => !down.has(node.id));
      if (!next) {
        throw new HerdError(`no reachable placement of a shard on ${work.node.name}`, {
          sqlState: SqlState.connectionFailure,
          detail: `worker ${work.node.name} (${work.node.host}:${work.node.port}) cannot be reached and the shard has no other active placement`,
        });
      }
      moved.push({ sql: task.sql, nodes: [next], fallbacks: (task.fallbacks ?? []).filter((n) => n !== next) });
    }
  }
  return planWorks(moved, deps.pool.connectionsPerWorker);
}

/** Sends a work's statements on its connection, pipelined, and waits for their answers. */
async function runWork(
  work: NodeWork,
  run: StatementRun,
  session: SessionContext,
  deps: ShardTaskDeps,
  description: { wanted: boolean; sent: boolean; simple: boolean },
  wrap: boolean,
  sink: RowSink,
): Promise<void> {
  const connection = work.connection as PgConnection;
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
    item.result = new ShardResult(item.primary ? heldBack(sink, connection) : undefined, description, deps.catalog);
    const result = item.result;
    answers.push(
      connection.exchange(w.flush(), result).then(() => {
        if (result.error) forgetFailedParse(connection, parsedAs);
      }),
    );
  }
  await Promise.all(answers);
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
      encodeNotice(session.output.writer, BackendMessage.noticeResponse, {
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
