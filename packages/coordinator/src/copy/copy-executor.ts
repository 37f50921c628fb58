import { HerdError, SqlState, shardIndexForHash } from "@herd/shared";
import { ServerError } from "../connection/server-error.js";
import type { SessionContext } from "../executor/execution-port.js";
import type { ShardTaskDeps } from "../executor/fan-out.js";
import { withTableNames } from "../executor/shard-request.js";
import { activeNodes } from "../executor/shard-selection.js";
import { shardName } from "../metadata/catalog-types.js";
import { type AnyNode, as, deparse } from "../parser/ast.js";
import { hashOfText } from "../planner/distribution-value.js";
import type { CopyPlan } from "../planner/plan.js";
import { PlannerErrors } from "../planner/planner-errors.js";
import { encodeCommandComplete, encodeCopyResponse, type NoticeFields } from "../protocol/backend-messages.js";
import { decodeCopyFail } from "../protocol/frontend-messages.js";
import { BackendMessage, FrontendMessage } from "../protocol/message-codes.js";
import { TwoPhaseChange } from "../transaction/two-phase.js";
import { copyRowsInto } from "./copy-in.js";
import { type CopyFormat, CopyRowSplitter, copyField, TEXT_FORMAT } from "./copy-rows.js";

const BATCH_BYTES = 1024 * 1024;

/**
 * COPY … FROM STDIN into a distributed or reference table. Rows are cut out of the client's
 * stream, routed by the hash of their distribution column, and sent in batches to every active
 * placement of their shard, each worker inside one prepared transaction (TwoPhaseChange): bad
 * data anywhere fails the whole COPY, with the line number of the client's input, and leaves
 * nothing loaded.
 */
export async function runCopy(plan: CopyPlan, session: SessionContext, deps: ShardTaskDeps): Promise<void> {
  if (session.inTransactionBlock()) {
    throw PlannerErrors.notSupported("COPY into distributed tables inside a transaction block");
  }
  const { table, columns } = plan;
  const format = copyFormat(plan.tree.CopyStmt.options ?? []);
  const missingDefaults = table.columns.filter(
    (c) => !c.generated && c.defaultExpr !== undefined && !columns.includes(c.name),
  );
  if (missingDefaults.length > 0) {
    throw PlannerErrors.notSupported(
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
  const statements = table.shards.map((shard) =>
    workerCopy(plan.tree, columns, table.schema, shardName(table, shard.id)),
  );
  encodeCopyResponse(session.output.writer, BackendMessage.copyInResponse, 0, columns.length);
  session.output.flush();

  const splitter = new CopyRowSplitter(format);
  const batches = table.shards.map(() => ({ rows: [] as Buffer[], lines: [] as number[], bytes: 0 }));
  const change = new TwoPhaseChange(deps.pool, deps.logger);
  let line = 0;
  let count = 0;
  let failure: Error | undefined;

  const flush = async (index: number) => {
    const batch = batches[index] as (typeof batches)[number];
    if (batch.rows.length === 0) return;
    const { rows, lines } = batch;
    batches[index] = { rows: [], lines: [], bytes: 0 };
    const shard = table.shards[index] as (typeof table.shards)[number];
    for (const node of activeNodes(shard, deps.catalog)) {
      const connection = await change.on(node);
      try {
        await copyRowsInto(connection, statements[index] as string, rows);
      } catch (error) {
        throw error instanceof ServerError
          ? new ServerError(withTableNames(atClientLine(error.fields, lines, table.name), deps.catalog))
          : error;
      }
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
    const frame = await session.nextClientMessage();
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
    await change.prepare();
    await change.commit();
  } catch (error) {
    await change.rollback();
    throw error;
  }
  encodeCommandComplete(session.output.writer, `COPY ${count}`);
}

function workerCopy(tree: AnyNode, columns: readonly string[], schema: string, shard: string): string {
  const copy = structuredClone(tree);
  const statement = copy.CopyStmt as AnyNode;
  statement.relation = { schemaname: schema, relname: shard, inh: true, relpersistence: "p" };
  statement.attlist = columns.map((name) => ({ String: { sval: name } }));
  statement.options = ((statement.options ?? []) as unknown[]).filter(
    (option) => as(option, "DefElem")?.defname !== "header",
  );
  if (statement.options.length === 0) delete statement.options;
  return deparse(copy);
}

function copyFormat(options: unknown[]): CopyFormat {
  const values = new Map<string, AnyNode | undefined>();
  for (const option of options) {
    const element = as(option, "DefElem");
    if (element) values.set(element.defname as string, element.arg as AnyNode | undefined);
  }
  const text = (name: string) => {
    const arg = values.get(name);
    return (as(arg, "String")?.sval as string | undefined) ?? undefined;
  };
  const format = text("format")?.toLowerCase();
  if (format === "binary") throw PlannerErrors.notSupported("COPY in binary format into distributed tables");
  const csv = format === "csv";
  const header = values.has("header") && !["false", "off", "0"].includes((text("header") ?? "true").toLowerCase());
  const quote = (text("quote") ?? '"').charCodeAt(0);
  return {
    csv,
    delimiter: (text("delimiter") ?? (csv ? "," : "\t")).charCodeAt(0),
    quote,
    escape: text("escape")?.charCodeAt(0) ?? quote,
    nullText: text("null") ?? (csv ? "" : TEXT_FORMAT.nullText),
    header,
  };
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
