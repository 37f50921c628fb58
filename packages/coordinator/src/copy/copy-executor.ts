import { HerdError, SqlState, shardIndexForHash } from "@herd/shared";
import { isConnectionLoss, ServerError } from "../connection/server-error.js";
import { hashOfText } from "../executor/distribution-value.js";
import { ExecutionErrors } from "../executor/execution-errors.js";
import type { ExecutionPort } from "../executor/execution-port.js";
import type { ResultSink } from "../executor/result-sink.js";
import { withTableNames } from "../executor/shard-request.js";
import { activeNodes } from "../executor/shard-selection.js";
import type { DistributedTable, WorkerNode } from "../metadata/catalog-types.js";
import type { NoticeFields } from "../protocol/backend-messages.js";
import { decodeCopyFail } from "../protocol/frontend-messages.js";
import { FrontendMessage } from "../protocol/message-codes.js";
import { DistributedTransaction } from "../transaction/distributed-transaction.js";
import { openingWithWorkerLocks, shardLock } from "../transaction/shard-lock.js";
import { copyRowsInto } from "./copy-in.js";
import { CopyKeyReader } from "./copy-key.js";
import { type CopyFormat, CopyRowSplitter, copyField } from "./copy-rows.js";

/** A COPY … FROM STDIN into a distributed or reference table, as the planner prepared it. */
export interface CopyInto {
  readonly table: DistributedTable;
  /** The columns the client's rows hold, in order. */
  readonly columns: readonly string[];
  readonly format: CopyFormat;
  /** The COPY each shard runs, by shard index (header option removed: herd skips it). */
  readonly shardStatements: readonly string[];
  /** The workers of the catalog snapshot it was planned against. */
  readonly workers: ReadonlyMap<number, WorkerNode>;
}

const BATCH_BYTES = 1024 * 1024;
/** Bytes of batches on their way to the workers at most before the client's rows wait. */
const IN_FLIGHT_BYTES = 8 * 1024 * 1024;

/**
 * COPY … FROM STDIN into a distributed or reference table. Rows are cut out of the client's
 * stream, routed by the hash of their distribution column, and sent in batches to every active
 * placement of their shard, in one distributed transaction that locks every shard of the table
 * first and commits in two phases: bad data anywhere fails the whole COPY, with the line number
 * of the client's input, and leaves nothing loaded; so does a worker that cannot be reached.
 */
export async function runCopy(plan: CopyInto, port: ExecutionPort, sink: ResultSink): Promise<string> {
  if (port.inTransactionBlock()) {
    throw ExecutionErrors.notSupported("COPY into distributed tables inside a transaction block");
  }
  const { table, columns, format } = plan;
  const missingDefaults = table.columns.filter(
    (c) => !c.generated && c.defaultExpr !== undefined && !columns.includes(c.name),
  );
  if (missingDefaults.length > 0) {
    throw ExecutionErrors.notSupported(
      "COPY into distributed tables that leaves out columns with defaults",
      `List every column, including ${missingDefaults.map((c) => c.name).join(", ")}.`,
    );
  }
  const distributionIndex = table.kind === "hash" ? columns.indexOf(table.distributionColumn as string) : -1;
  if (table.kind === "hash" && distributionIndex < 0) {
    throw new HerdError(`the partition column of table ${table.name} should have a value`, {
      sqlState: SqlState.nullValueNotAllowed,
    });
  }
  const statements = plan.shardStatements;
  const transaction = new DistributedTransaction(
    { backend: port.backend, pool: port.workers, logger: port.logger, catalog: port.catalog },
    "statement",
  );
  try {
    await transaction.lockShards(new Map(table.shards.map((shard) => [shard.id, shardLock(table, shard)])));
  } catch (error) {
    await transaction.rollback();
    throw error;
  }
  sink.copyIn(columns.length);

  const splitter = new CopyRowSplitter(format);
  const batches = table.shards.map(() => new ShardBatch());
  const settings = port.settings();
  let line = 0;
  let count = 0;
  let failure: Error | undefined;

  /** Per worker, the sends to it so far, one after another (its connection runs one COPY at a time). */
  const queues = new Map<number, Promise<unknown>>();
  /** Batches on their way (each settles once every placement of its shard took it or failed). */
  const inFlight = new Set<Promise<void>>();
  let inFlightBytes = 0;

  /** Placements (`node:shard index`) whose worker lock this COPY holds. */
  const lockedOn = new Set<string>();

  /** Sends a shard's rows to one placement: true when it took them. */
  const sendTo = async (node: WorkerNode, index: number, rows: Buffer, lines: readonly number[]) => {
    const shard = table.shards[index] as (typeof table.shards)[number];
    // after a failure nothing more is sent: the COPY fails with the first error
    if (failure) return true;
    // a worker lost earlier in this COPY misses these rows too: its placement goes stale
    if (transaction.isLost(node.id)) {
      transaction.missed(node.id, shard.id);
      return false;
    }
    try {
      const { connection, opening } = await transaction.join(node, settings);
      // the first rows of a shard with copies wait on its worker for the previous writers' COMMIT
      // PREPAREDs there (transaction/shard-lock.ts, workerLockSql), with the BEGIN when it is sent
      const key = `${node.id}:${index}`;
      const locks = !lockedOn.has(key) && activeNodes(shard, plan.workers).length > 1 ? [shardLock(table, shard)] : [];
      lockedOn.add(key);
      const first = openingWithWorkerLocks(opening, locks);
      if (first) await connection.query(first);
      transaction.wrote(node.id, shard.id);
      await copyRowsInto(connection, statements[index] as string, rows);
      return true;
    } catch (error) {
      if (error instanceof ServerError)
        throw new ServerError(withTableNames(atClientLine(error.fields, lines, table.name), port.catalog.current));
      if (!isConnectionLoss(error)) throw error;
      // the worker went away: the rows go to the shard's other placements, this one goes stale
      transaction.lose(node, error, [shard.id]);
      return false;
    }
  };
  /**
   * Sends a shard's batch to each of its placements, without waiting: the client's next rows are
   * read and routed while the workers load these, and each placement's copy goes out at the same
   * time (the batches' bytes on their way are bounded, see `inFlightAtMost`).
   */
  const flush = (index: number): void => {
    const batch = batches[index] as ShardBatch;
    if (batch.lines.length === 0) return;
    const { lines } = batch;
    const rows = batch.take();
    const shard = table.shards[index] as (typeof table.shards)[number];
    const sends = activeNodes(shard, plan.workers).map((node) => {
      const sent = (queues.get(node.id) ?? Promise.resolve()).then(() => sendTo(node, index, rows, lines));
      queues.set(
        node.id,
        sent.catch(() => {}),
      );
      return sent;
    });
    const settled = Promise.all(sends)
      .then((taken) => {
        if (taken.some(Boolean)) return;
        throw new HerdError(`no placement of shard ${shard.id} could take the rows`, {
          sqlState: SqlState.connectionFailure,
          detail: "Every worker holding an active placement of the shard failed during the COPY.",
        });
      })
      .catch((error: unknown) => {
        failure ??= error as Error;
      })
      .finally(() => {
        inFlight.delete(settled);
        inFlightBytes -= rows.length;
      });
    inFlight.add(settled);
    inFlightBytes += rows.length;
  };
  /**
   * Waits until at most `bytes` of batches are on their way to the workers (0: every batch has
   * settled, as a rollback needs: it must not cut into a COPY a worker runs).
   */
  const inFlightAtMost = async (bytes: number) => {
    while (inFlightBytes > bytes && inFlight.size > 0) await Promise.race(inFlight);
  };
  const keys =
    distributionIndex >= 0 ? new CopyKeyReader(format, distributionIndex, table.distributionType as number) : undefined;
  /** Batches full enough to send (after the client's message at hand). */
  const full = new Set<number>();
  /** Copies the row at `start`…`end` of `bytes` into its shard's batch. */
  const route = (bytes: Buffer, start: number, end: number): void => {
    line += 1;
    if (format.header && line === 1) return;
    let index = 0;
    const fast = keys?.hash(bytes, start, end);
    if (fast !== undefined) index = shardIndexForHash(fast, table.shards.length);
    else if (distributionIndex >= 0) {
      const value = copyField(bytes.subarray(start, end), distributionIndex, format);
      if (value === null || value === undefined) {
        throw lineError(
          `the partition column of table ${table.name} cannot be NULL`,
          SqlState.nullValueNotAllowed,
          table.name,
          line,
        );
      }
      let hash: number;
      try {
        hash = hashOfText(table.distributionType as number, value);
      } catch (error) {
        throw lineError((error as Error).message, SqlState.invalidTextRepresentation, table.name, line);
      }
      index = shardIndexForHash(hash, table.shards.length);
    }
    const batch = batches[index] as ShardBatch;
    batch.add(bytes, start, end, line);
    count += 1;
    if (batch.length >= BATCH_BYTES) full.add(index);
  };
  const flushFull = async () => {
    for (const index of full) flush(index);
    full.clear();
    await inFlightAtMost(IN_FLIGHT_BYTES);
  };

  try {
    for (;;) {
      const next = port.nextClientMessage();
      const frame = next instanceof Promise ? await next : next;
      if (frame.type === FrontendMessage.copyData) {
        if (failure || splitter.ended) continue;
        try {
          // rows are copied into their batches as they are found (no object per row, no await
          // per row: either cost more than the routing), the full batches sent after the message
          splitter.each(frame.body, route);
          if (full.size > 0) await flushFull();
        } catch (error) {
          failure ??= error as Error;
        }
      } else if (frame.type === FrontendMessage.copyDone) {
        break;
      } else if (frame.type === FrontendMessage.copyFail) {
        failure ??= new HerdError(`COPY from stdin failed: ${decodeCopyFail(frame.body)}`, {
          sqlState: SqlState.queryCanceled,
        });
        break;
      }
      // Flush and Sync may come during COPY; they mean nothing here
    }
    if (failure) throw failure;
    for (const row of splitter.end()) route(row, 0, row.length);
    for (let index = 0; index < batches.length; index += 1) flush(index);
    await inFlightAtMost(0);
    if (failure) throw failure;
    await transaction.commit();
  } catch (error) {
    failure ??= error as Error;
    await inFlightAtMost(0);
    await transaction.rollback();
    throw error;
  }
  return `COPY ${count}`;
}

/** One shard's rows waiting to be sent: their bytes one after another, and each one's line in the client's input. */
class ShardBatch {
  private bytes: Buffer | undefined;
  length = 0;
  lines: number[] = [];

  add(row: Buffer, start: number, end: number, line: number): void {
    const size = end - start;
    if (!this.bytes || this.length + size > this.bytes.length) {
      // (small to start: most COPYs are a few rows; doubling copies each byte about once more)
      const grown = Buffer.allocUnsafe(Math.max(64 * 1024, 2 * (this.length + size)));
      this.bytes?.copy(grown, 0, 0, this.length);
      this.bytes = grown;
    }
    // (a short row is copied byte by byte: cheaper than a native call for a few dozen bytes)
    if (size <= 64) for (let i = 0; i < size; i += 1) this.bytes[this.length + i] = row[start + i] as number;
    else row.copy(this.bytes, this.length, start, end);
    this.length += size;
    this.lines.push(line);
  }

  /** The rows gathered (the batch starts empty again, with a new buffer: the old one may still be on its way). */
  take(): Buffer {
    const rows = (this.bytes as Buffer).subarray(0, this.length);
    this.bytes = undefined;
    this.length = 0;
    this.lines = [];
    return rows;
  }
}

function lineError(message: string, sqlState: HerdError["sqlState"], table: string, line: number): ServerError {
  return new ServerError({ severity: "ERROR", code: sqlState, message, where: `COPY ${table}, line ${line}` });
}

/** A worker's `COPY events_102008, line 3, column x: …` as the client's `COPY events, line 1207, …`. */
function atClientLine(fields: NoticeFields, lines: readonly number[], table: string): NoticeFields {
  const where = fields.where?.replace(/^COPY [^,]+, line (\d+)/, (_, shardLine: string) => {
    const clientLine = lines[Number(shardLine) - 1];
    return `COPY ${table}, line ${clientLine ?? shardLine}`;
  });
  return { ...fields, where };
}
