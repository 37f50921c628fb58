import { ResultCollector } from "../connection/pg-connection.js";
import { backendRequest } from "../executor/backend-request.js";
import { ExecutionErrors } from "../executor/execution-errors.js";
import type { ExecutionPort } from "../executor/execution-port.js";
import { activeNodes } from "../executor/shard-selection.js";
import type { StatementRun } from "../executor/statement-run.js";
import { type DistributedTable, shardOf, type WorkerNode } from "../metadata/catalog-types.js";
import { TwoPhaseChange } from "../transaction/two-phase.js";

/** A DDL command on distributed and reference tables, as the planner prepared it. */
export interface DdlChange {
  /** The distributed and reference tables the command changes. */
  readonly tables: readonly DistributedTable[];
  readonly action: "alter" | "drop-tables" | "drop-indexes" | "truncate";
  /** The command for the shell tables (CREATE INDEX CONCURRENTLY without CONCURRENTLY). */
  readonly shellSql: string;
  /** The command each shard runs: one per table and shard index. */
  readonly shardCommands: readonly { readonly table: DistributedTable; readonly index: number; readonly sql: string }[];
  /** The workers of the catalog snapshot it was planned against. */
  readonly workers: ReadonlyMap<number, WorkerNode>;
}

/**
 * DDL on distributed and reference tables, all or nothing: the shell table changes inside a
 * transaction on the coordinator, every placement inside a prepared transaction on its worker;
 * the coordinator commits only when every worker prepared (see TwoPhaseChange). Dropping a
 * table also drops its metadata, in the coordinator's same transaction. Resolves with the
 * command tag.
 */
export async function runDistributedDdl(change: DdlChange, run: StatementRun, port: ExecutionPort): Promise<string> {
  if (port.inTransactionBlock()) {
    throw ExecutionErrors.notSupported(
      "DDL on distributed tables inside a transaction block",
      "Run the command on its own, outside BEGIN … COMMIT.",
    );
  }
  const perNode = new Map<number, { node: WorkerNode; statements: string[] }>();
  for (const { table, index, sql } of change.shardCommands) {
    for (const node of activeNodes(shardOf(table, index), change.workers)) {
      const entry = perNode.get(node.id) ?? { node, statements: [] };
      entry.statements.push(sql);
      perNode.set(node.id, entry);
    }
  }
  const twoPhase = new TwoPhaseChange(port.workers, port.logger);
  const backend = port.backend;
  // the shell's guard trigger lets this transaction's own TRUNCATE through
  await backend.query("BEGIN; SET LOCAL herd.shell_writes = on");
  try {
    if (change.action === "drop-tables") {
      for (const table of change.tables) {
        await backend.query("DELETE FROM herd.distributed_tables WHERE relation = $1::oid", [String(table.oid)]);
      }
    }
    const collector = new ResultCollector();
    await backend.exchange(backendRequest({ ...run, sql: change.shellSql, describe: false }), collector);
    const shell = collector.result();
    await twoPhase.forEach([...perNode.values()], async ({ node, statements }) => {
      const connection = await twoPhase.on(node);
      for (const sql of statements) await connection.query(sql);
    });
    await twoPhase.prepare();
    await backend.query("COMMIT");
    await twoPhase.commit();
    return shell.tag;
  } catch (error) {
    await twoPhase.rollback();
    await backend.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    await port.catalog.reload();
  }
}
