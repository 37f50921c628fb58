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
import { shardLock } from "../transaction/shard-lock.js";
import { copyRowsInto } from "./copy-in.js";
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
  const batches = table.shards.map(() => ({ rows: [] as Buffer[], lines: [] as number[], bytes: 0 }));
  const settings = port.settings();
  let line = 0;
  let count = 0;
  let failure: Error | undefined;

  const flush = async (index: number) => {
    const batch = batches[index] as (typeof batches)[number];
    if (batch.rows.length === 0) return;
    const { rows, lines } = batch;
    batches[index] = { rows: [], lines: [], bytes: 0 };
    const shard = table.shards[index] as (typeof table.shards)[number];
    let taken = 0;
    for (const node of activeNodes(shard, plan.workers)) {
      // a worker lost earlier in this COPY misses these rows too: its placement goes stale
      if (transaction.isLost(node.id)) {
        transaction.missed(node.id, shard.id);
        continue;
      }
      try {
        const { connection, opening } = await transaction.join(node, settings);
        if (opening) await connection.query(opening);
        transaction.wrote(node.id, shard.id);
        await copyRowsInto(connection, statements[index] as string, rows);
        taken += 1;
      } catch (error) {
        if (error instanceof ServerError)
          throw new ServerError(withTableNames(atClientLine(error.fields, lines, table.name), port.catalog.current));
        if (!isConnectionLoss(error)) throw error;
        // the worker went away: the rows go to the shard's other placements, this one goes stale
        transaction.lose(node, error, [shard.id]);
      }
    }
    if (taken === 0) {
      throw new HerdError(`no placement of shard ${shard.id} could take the rows`, {
        sqlState: SqlState.connectionFailure,
        detail: "Every worker holding an active placement of the shard failed during the COPY.",
      });
    }
  };
  const route = async (row: Buffer) => {
    line += 1;
    if (format.header && line === 1) return;
    let index = 0;
    if (distributionIndex >= 0) {
      const value = copyField(row, distributionIndex, format);
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
    const batch = batches[index] as (typeof batches)[number];
    batch.rows.push(row);
    batch.lines.push(line);
    batch.bytes += row.length;
    count += 1;
    if (batch.bytes >= BATCH_BYTES) await flush(index);
  };

  for (;;) {
    const frame = await port.nextClientMessage();
    if (frame.type === FrontendMessage.copyData) {
      if (failure || splitter.ended) continue;
      try {
        for (const row of splitter.push(frame.body)) await route(row);
      } catch (error) {
        failure = error as Error;
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
  try {
    if (failure) throw failure;
    for (const row of splitter.end()) await route(row);
    for (let index = 0; index < batches.length; index += 1) await flush(index);
    await transaction.commit();
  } catch (error) {
    await transaction.rollback();
    throw error;
  }
  return `COPY ${count}`;
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
