import { errorMessage, HerdError, type Logger, SqlState } from "@herd/shared";
import { ResultCollector } from "../connection/pg-connection.js";
import { applySettings } from "../connection/session-settings.js";
import type { WorkerConnection } from "../connection/worker-connection.js";
import type { WorkerNode } from "../metadata/catalog-types.js";
import { BufferWriter } from "../protocol/buffer-writer.js";
import { encodeQuery } from "../protocol/frontend-messages.js";
import { commitEach, endEach } from "../transaction/statement-transaction.js";
import type { ExecutionPort } from "./execution-port.js";
import type { ResultSink, RowSink } from "./result-sink.js";
import { encodeShardStatement, forgetFailedParse, ShardResult, tagCount } from "./shard-request.js";
import type { StatementRun } from "./statement-run.js";

/** One statement for one shard, and the workers (placements) it must run on. */
export interface ShardTask {
  readonly sql: string;
  /** The first is the one whose rows reach the client; a write lists every active placement. */
  readonly nodes: readonly WorkerNode[];
  /** A read's other placements, tried in order when a worker cannot be reached. */
  readonly fallbacks?: readonly WorkerNode[];
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
  connection?: WorkerConnection;
  borrowed?: boolean;
}

/** A slow client holds the worker back (its socket is paused) instead of filling herd's memory. */
function heldBack(sink: RowSink, connection: WorkerConnection): RowSink {
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
  port: ExecutionPort,
  sink: ResultSink,
  write: boolean,
  rows: RowSink = sink,
): Promise<TasksResult> {
  const inBlock = port.inTransactionBlock();
  const description = { wanted: run.describe, sent: false, simple: run.bind === undefined };
  const settings = port.settings();
  const spread = !write && !inBlock;
  let works = planWorks(tasks, spread ? port.workers.connectionsPerWorker : 1);
  const wrap = write && !inBlock && (works.length > 1 || tasks.length > 1);
  const done: NodeWork[] = [];
  try {
    while (works.length > 0) {
      const unreachable: NodeWork[] = [];
      await Promise.all(
        works.map(async (work) => {
          try {
            if (inBlock) work.connection = await port.transaction.connection(work.node, settings);
            else {
              work.connection = await port.workers.acquire(work.node);
              work.borrowed = true;
              await applySettings(work.connection, settings);
            }
          } catch (error) {
            if (!spread) throw error;
            // a read goes to the shard's other placement when this worker cannot be reached
            port.workers.markDown(work.node);
            port.logger.warn("worker unreachable, reading other placements", {
              node: work.node.name,
              error: errorMessage(error),
            });
            unreachable.push(work);
            return;
          }
          done.push(work);
          await runWork(work, run, port, description, wrap, rows);
        }),
      );
      works = unreachable.length > 0 ? failover(unreachable, port) : [];
    }
    const results = done.flatMap((work) => work.items);
    const failed =
      results.find((item) => item.result?.error && item.primary) ?? results.find((item) => item.result?.error);
    if (failed?.result?.error) {
      if (wrap) await endEach(done, "ROLLBACK");
      throw failed.result.error;
    }
    for (const item of results) {
      for (const notice of item.primary ? (item.result?.notices ?? []) : []) sink.notice(notice);
    }
    if (wrap)
      await commitEach(done, port.logger, (node) =>
        sink.notice({
          severity: "WARNING",
          code: "01000",
          message: `worker ${node.name} failed to commit; its placements missed this write`,
        }),
      );
    checkReplicas(tasks, results, port.logger);
    const primaries = results.filter((item) => item.primary);
    return {
      tag: primaries[0]?.result?.tag ?? "",
      count: primaries.reduce((sum, item) => sum + tagCount(item.result?.tag ?? ""), 0),
    };
  } finally {
    for (const work of done) {
      if (work.connection) port.busyWorkers.delete(work.connection);
      if (work.borrowed && work.connection) port.workers.release(work.connection);
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
function failover(unreachable: readonly NodeWork[], port: ExecutionPort): NodeWork[] {
  const down = new Set(unreachable.map((work) => work.node.id));
  const moved: ShardTask[] = [];
  for (const work of unreachable) {
    for (const { task } of work.items) {
      const remaining = (task.fallbacks ?? []).filter((node) => !down.has(node.id) && !port.workers.isDown(node));
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
  return planWorks(moved, port.workers.connectionsPerWorker);
}

/** Sends a work's statements on its connection, pipelined, and waits for their answers. */
async function runWork(
  work: NodeWork,
  run: StatementRun,
  port: ExecutionPort,
  description: { wanted: boolean; sent: boolean; simple: boolean },
  wrap: boolean,
  rows: RowSink,
): Promise<void> {
  const connection = work.connection as WorkerConnection;
  port.busyWorkers.add(connection);
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
    item.result = new ShardResult(
      item.primary ? heldBack(rows, connection) : undefined,
      description,
      port.catalog.current,
    );
    const result = item.result;
    answers.push(
      connection.exchange(w.flush(), result).then(() => {
        if (result.error) forgetFailedParse(connection, parsedAs);
      }),
    );
  }
  await Promise.all(answers);
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
