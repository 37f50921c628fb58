import { Defaults, errorMessage, HerdError, type Logger, SqlState } from "@herd/shared";
import { ResultCollector } from "../connection/pg-connection.js";
import { isConnectionLoss } from "../connection/server-error.js";
import { applySettings, type SessionSettings } from "../connection/session-settings.js";
import type { WorkerConnection } from "../connection/worker-connection.js";
import { RoomRefused } from "../connection/worker-pool.js";
import type { WorkerNode } from "../metadata/catalog-types.js";
import { BufferWriter } from "../protocol/buffer-writer.js";
import { encodeQuery } from "../protocol/frontend-messages.js";
import type { DistributedTransaction } from "../transaction/distributed-transaction.js";
import { openingWithWorkerLocks, type ShardLock } from "../transaction/shard-lock.js";
import type { ExecutionPort } from "./execution-port.js";
import type { ResultSink, RowSink } from "./result-sink.js";
import { encodeShardStatement, forgetFailedParse, ShardResult, tagCount } from "./shard-request.js";
import type { StatementRun } from "./statement-run.js";

/** One statement for one shard, and the workers (placements) it must run on. */
export interface ShardTask {
  readonly sql: string;
  /** The shard it reads or writes (of the table a write changes). */
  readonly shardId: number;
  /** What a write locks on the coordinator: its distribution values in the shard's group, or all of it. */
  readonly lock?: ShardLock;
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
  /** Borrowed from the pool for this statement (a read outside a block): given back at the end. */
  borrowed?: boolean;
  /** BEGIN (and the block's savepoints) to send first: the worker joins the transaction now. */
  opening?: string;
  /** A write's locks to take on this worker's copies first (transaction/shard-lock.ts). */
  copyLocks?: readonly ShardLock[];
}

export interface TaskOptions {
  /** Rows change: every placement runs the task, inside `transaction`. */
  readonly write: boolean;
  /** The transaction the tasks run in: the block's, or a write's own; undefined for a read outside a block. */
  readonly transaction: DistributedTransaction | undefined;
  /** Where the rows go (a merge), when not to the sink. */
  readonly rows?: RowSink;
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
 * client as they come.
 *
 * A read outside a transaction block borrows pooled connections (a few per worker, so a worker
 * scans several shards at once) and reads another placement when a worker cannot be reached.
 * A write runs on every placement of its shards inside `transaction`: a worker that cannot be
 * reached, or whose connection is lost, leaves the transaction (its placements missed the write;
 * the transaction marks them stale when it commits) as long as every shard keeps a placement; an
 * error of the statement fails it. In a write's own transaction reaching several workers, each
 * worker's part is prepared in the same round trip as the statement.
 */
export async function runShardTasks(
  tasks: readonly ShardTask[],
  run: StatementRun,
  port: ExecutionPort,
  sink: ResultSink,
  options: TaskOptions,
): Promise<TasksResult> {
  const { write, transaction } = options;
  const rows = options.rows ?? sink;
  const description = { wanted: run.describe, sent: false, simple: run.bind === undefined };
  const settings = port.settings();
  const spread = !write && !transaction;
  let failedOver: NodeWork[] | undefined;
  if (spread && tasks.length === 1) {
    const quick = quickRead(tasks[0] as ShardTask, run, port, sink, { rows, settings, description });
    if (quick) {
      const outcome = await quick;
      if (!Array.isArray(outcome)) return outcome;
      failedOver = outcome;
    }
  }
  let works =
    failedOver ??
    planWorks(
      tasks.map((task) => (transaction ? withoutLost(task, transaction, write) : task)),
      spread ? port.workers.connectionsPerWorker : 1,
    );
  const done: NodeWork[] = [];
  try {
    if (write) {
      works = await joinWriters(works, tasks, transaction as DistributedTransaction, settings);
      done.push(...works);
      const prepare = transaction?.scope === "statement" && works.length > 1 ? transaction : undefined;
      const outcomes = await Promise.allSettled(
        works.map((work) => runWork(work, run, port, description, rows, prepare)),
      );
      const lost: NodeWork[] = [];
      outcomes.forEach((outcome, i) => {
        const work = works[i] as NodeWork;
        if (outcome.status === "rejected") {
          if (!isConnectionLoss(outcome.reason)) throw outcome.reason;
          // rows of its RETURNING already went to the client: they cannot be taken back
          if (work.items.some((item) => item.primary && (item.result?.rowsRelayed ?? 0) > 0)) throw outcome.reason;
          transaction?.lose(work.node, outcome.reason, shardsOf(work));
          lost.push(work);
        }
      });
      for (const work of lost) promoteReplicas(work, works);
      requirePlacementPerShard(tasks, works);
    } else {
      while (works.length > 0) {
        const unreachable: NodeWork[] = [];
        const outcomes = await Promise.allSettled(
          works.map(async (work) => {
            try {
              await connect(work, transaction, settings, port);
            } catch (error) {
              if (!spread || error instanceof RoomRefused) throw error;
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
            try {
              await runWork(work, run, port, description, rows, undefined);
            } catch (error) {
              // a pooled connection to a worker that crashed since fails on first use: before any
              // row of it reached the client, the read goes to the shards' other placements
              const relayed = work.items.some((item) => (item.result?.rowsRelayed ?? 0) > 0);
              if (!spread || relayed || !isConnectionLoss(error)) throw error;
              readerLost(port, work.node, error);
              done.splice(done.indexOf(work), 1);
              port.busyWorkers.delete(work.connection as WorkerConnection);
              port.workers.release(work.connection as WorkerConnection);
              work.borrowed = false;
              unreachable.push(work);
            }
          }),
        );
        const failure = outcomes.find((outcome) => outcome.status === "rejected");
        if (failure) throw (failure as PromiseRejectedResult).reason;
        works = unreachable.length > 0 ? failover(unreachable, port) : [];
      }
    }
    const results = done.flatMap((work) => work.items);
    // the cause, not the statements refused after it in the same transaction (25P02)
    const errors = results.filter((item) => item.result?.error);
    const cause = errors.filter((item) => item.result?.error?.sqlState !== SqlState.inFailedSqlTransaction);
    const failed = cause.find((item) => item.primary) ?? cause[0] ?? errors.find((item) => item.primary) ?? errors[0];
    if (failed?.result?.error) throw failed.result.error;
    for (const item of results) {
      for (const notice of item.primary ? (item.result?.notices ?? []) : []) sink.notice(notice);
    }
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
 * The router's most common statement without the general path's bookkeeping: a read of one shard
 * outside a transaction block, on a pooled connection that is idle now with the session's settings
 * (no promise, no wait before it is sent). Undefined when that is not the case: nothing was sent,
 * the general path runs it. A connection lost before any row reached the client (a worker that
 * crashed since it was pooled) marks the worker down and resolves with the read's work on the
 * shard's next placement, for the general path to run, as a lost read of its own would.
 */
function quickRead(
  task: ShardTask,
  run: StatementRun,
  port: ExecutionPort,
  sink: ResultSink,
  context: QuickReadContext,
): Promise<TasksResult | NodeWork[]> | undefined {
  const node = task.nodes[0];
  if (task.nodes.length !== 1 || !node || !port.workers.acquireIdle || port.cancelRequested) return undefined;
  const { settings } = context;
  const connection = port.workers.acquireIdle(node, settings.login ?? Defaults.superuser);
  if (!connection) return undefined;
  if (connection.appliedSettings !== settings.key) {
    port.workers.release(connection);
    return undefined;
  }
  return readOn(connection, node, task, run, port, sink, context);
}

/** What runShardTasks made for the statement already: where rows go, the session's settings, the description's state. */
interface QuickReadContext {
  readonly rows: RowSink;
  readonly settings: SessionSettings;
  readonly description: { wanted: boolean; sent: boolean; simple: boolean };
}

/** A read's connection was lost before any row reached the client: reads avoid the worker for a while. */
function readerLost(port: ExecutionPort, node: WorkerNode, error: unknown): void {
  port.workers.markDown(node);
  port.logger.warn("worker connection lost, reading other placements", { node: node.name, error: errorMessage(error) });
}

async function readOn(
  connection: WorkerConnection,
  node: WorkerNode,
  task: ShardTask,
  run: StatementRun,
  port: ExecutionPort,
  sink: ResultSink,
  { rows, description }: QuickReadContext,
): Promise<TasksResult | NodeWork[]> {
  port.busyWorkers.add(connection);
  try {
    const w = new BufferWriter(256);
    const { parsedAs } = encodeShardStatement(w, connection, task.sql, run.parameterTypes, run.bind, run.describe);
    const result = new ShardResult(heldBack(rows, connection), description, port.catalog.current);
    try {
      await connection.exchange(w.flush(), result);
    } catch (error) {
      if (result.rowsRelayed > 0 || !isConnectionLoss(error)) throw error;
      readerLost(port, node, error);
      return failover([{ node, items: [{ task, primary: true }] }], port);
    }
    if (result.error) {
      forgetFailedParse(connection, parsedAs, result);
      throw result.error;
    }
    for (const notice of result.notices) sink.notice(notice);
    return { tag: result.tag, count: tagCount(result.tag) };
  } finally {
    port.busyWorkers.delete(connection);
    port.workers.release(connection);
  }
}

/** A read's connection: the block's (joining it), or one borrowed from the pool. */
async function connect(
  work: NodeWork,
  transaction: DistributedTransaction | undefined,
  settings: SessionSettings,
  port: ExecutionPort,
): Promise<void> {
  if (transaction) {
    const joined = await transaction.join(work.node, settings);
    work.connection = joined.connection;
    work.opening = joined.opening;
    return;
  }
  work.connection = await port.workers.acquire(work.node, settings.login);
  work.borrowed = true;
  try {
    await applySettings(work.connection, settings);
  } catch (error) {
    port.workers.release(work.connection);
    work.connection = undefined;
    work.borrowed = false;
    throw error;
  }
}

/**
 * Joins every writing worker to the transaction at once (all answers awaited, so no connection is
 * left behind when one fails). A worker that cannot be reached leaves the transaction, its
 * placements missing the write; each task's rows then come from its first placement still there.
 */
async function joinWriters(
  works: NodeWork[],
  tasks: readonly ShardTask[],
  transaction: DistributedTransaction,
  settings: SessionSettings,
): Promise<NodeWork[]> {
  const outcomes = await Promise.allSettled(works.map((work) => transaction.join(work.node, settings)));
  const joined: NodeWork[] = [];
  outcomes.forEach((outcome, i) => {
    const work = works[i] as NodeWork;
    if (outcome.status === "fulfilled") {
      work.connection = outcome.value.connection;
      work.opening = outcome.value.opening;
      joined.push(work);
    } else if (isConnectionLoss(outcome.reason)) {
      transaction.lose(work.node, outcome.reason, shardsOf(work));
    } else throw outcome.reason;
  });
  requirePlacementPerShard(tasks, joined);
  // the first placement still in the transaction answers for each task
  const primaryOf = new Map<ShardTask, number>();
  for (const task of tasks) {
    const first = task.nodes.find((node) => joined.some((work) => work.node.id === node.id));
    if (first) primaryOf.set(task, first.id);
  }
  for (const work of joined) {
    for (const item of work.items) {
      item.primary = primaryOf.get(item.task) === work.node.id;
      transaction.wrote(work.node.id, item.task.shardId);
    }
    work.copyLocks = copyLocksOf(work, transaction);
  }
  return joined;
}

/**
 * A lost work's tasks answer from another placement that ran them: its tag counts instead. The
 * lost work's items are dropped (they are not in the transaction any more).
 */
function promoteReplicas(lost: NodeWork, works: NodeWork[]): void {
  for (const item of lost.items) {
    if (!item.primary) continue;
    const replica = works
      .filter((work) => work !== lost && work.items !== lost.items)
      .flatMap((work) => work.items)
      .find((other) => other.task.shardId === item.task.shardId && other.result && !other.primary);
    if (replica) replica.primary = true;
  }
  lost.items.length = 0;
}

/**
 * A task without the workers its transaction has lost. A write's placements on them miss this
 * write too: they go stale with the others when the transaction commits.
 */
function withoutLost(task: ShardTask, transaction: DistributedTransaction, write: boolean): ShardTask {
  const lost = task.nodes.filter((node) => transaction.isLost(node.id));
  if (lost.length === 0) return task;
  if (write) for (const node of lost) transaction.missed(node.id, task.shardId);
  return { ...task, nodes: task.nodes.filter((node) => !transaction.isLost(node.id)) };
}

/** Every task must still have a placement to run on. */
function requirePlacementPerShard(tasks: readonly ShardTask[], works: readonly NodeWork[]): void {
  for (const task of tasks) {
    const kept = works.some((work) => work.items.some((item) => item.task.shardId === task.shardId));
    if (!kept) {
      throw new HerdError(`no placement of shard ${task.shardId} could be reached`, {
        sqlState: SqlState.connectionFailure,
        detail: `every worker holding an active placement of the shard failed: ${task.nodes.map((node) => node.name).join(", ")}`,
      });
    }
  }
}

/**
 * The locks of the work's writes of shards with more than one copy, as the transaction holds them
 * on the coordinator (a group it escalated is locked whole there too).
 */
function copyLocksOf(work: NodeWork, transaction: DistributedTransaction): ShardLock[] {
  const locks: ShardLock[] = [];
  for (const { task } of work.items) if (task.lock && task.nodes.length > 1) locks.push(transaction.heldAs(task.lock));
  return locks;
}

function shardsOf(work: NodeWork): number[] {
  return work.items.map((item) => item.task.shardId);
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
      moved.push({ ...task, nodes: [next], fallbacks: (task.fallbacks ?? []).filter((n) => n !== next) });
    }
  }
  return planWorks(moved, port.workers.connectionsPerWorker);
}

/**
 * Sends a work's statements on its connection, pipelined, and waits for their answers: BEGIN
 * first when the worker joins the transaction now, PREPARE TRANSACTION last when a write's own
 * transaction reaches several workers (`prepare`). Rejects when the connection is lost.
 */
async function runWork(
  work: NodeWork,
  run: StatementRun,
  port: ExecutionPort,
  description: { wanted: boolean; sent: boolean; simple: boolean },
  rows: RowSink,
  prepare: DistributedTransaction | undefined,
): Promise<void> {
  const connection = work.connection as WorkerConnection;
  if (port.cancelRequested) throw cancelledByUser();
  port.busyWorkers.add(connection);
  const w = new BufferWriter(256);
  const answers: Promise<unknown>[] = [];
  const query = (sql: string) => {
    encodeQuery(w, sql);
    const collector = new ResultCollector();
    answers.push(connection.exchange(w.flush(), collector).then(() => collector.result()));
  };
  // a write of copies waits on the worker for the previous writer's COMMIT PREPARED there
  // (transaction/shard-lock.ts): in the same Query as the BEGIN when the worker joins now
  const opening = openingWithWorkerLocks(work.opening, work.copyLocks ?? []);
  if (opening) query(opening);
  // A read's statements pipelined on a borrowed connection run in one transaction: once one fails
  // (a cancel, a statement_timeout), PostgreSQL refuses the rest at once instead of running them.
  const together = work.borrowed === true && work.items.length > 1;
  if (together) query("BEGIN");
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
        if (result.error) forgetFailedParse(connection, parsedAs, result);
      }),
    );
  }
  if (together) query("COMMIT");
  if (prepare) {
    prepare.preparedWithStatement(work.node.id);
    encodeQuery(w, `PREPARE TRANSACTION '${prepare.gid(work.node.id)}'`);
    const prepared = new ResultCollector();
    answers.push(
      connection.exchange(w.flush(), prepared).then(() => {
        // after an error of the statement, PostgreSQL answers PREPARE with ROLLBACK: the error is
        // the statement's. A PREPARE that fails by itself fails the write.
        if (prepared.error) throw prepared.error;
        if (prepared.tag !== "PREPARE TRANSACTION" && !work.items.some((item) => item.result?.error)) {
          throw new HerdError(`${work.node.name} did not prepare its part of the write`, {
            sqlState: SqlState.internalError,
            detail: `PREPARE TRANSACTION answered ${prepared.tag}`,
          });
        }
      }),
    );
  }
  const outcomes = await Promise.allSettled(answers);
  const lost = outcomes.find((outcome) => outcome.status === "rejected");
  if (lost) throw (lost as PromiseRejectedResult).reason;
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

/** PostgreSQL's own words for a statement a CancelRequest ended. */
function cancelledByUser(): HerdError {
  return new HerdError("canceling statement due to user request", { sqlState: SqlState.queryCanceled });
}
