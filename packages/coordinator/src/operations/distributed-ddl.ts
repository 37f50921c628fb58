import { HerdError, SqlState } from "@herd/shared";
import { ResultCollector } from "../connection/pg-connection.js";
import { asHerd } from "../connection/session-settings.js";
import { backendRequest } from "../executor/backend-request.js";
import type { ExecutionPort } from "../executor/execution-port.js";
import { activeNodes } from "../executor/shard-selection.js";
import type { StatementRun } from "../executor/statement-run.js";
import { type DistributedTable, shardOf, type WorkerNode } from "../metadata/catalog-types.js";
import { type ShardLock, shardLock } from "../transaction/shard-lock.js";
import { inOperationTransaction } from "./operation-transaction.js";
import { CLOSE_SHELLS, OPEN_SHELLS } from "./shell-access.js";

/** A DDL command on distributed and reference tables, as the planner prepared it. */
export interface DdlChange {
  /** The distributed and reference tables the command changes. */
  readonly tables: readonly DistributedTable[];
  readonly action: "alter" | "drop-tables" | "drop-indexes" | "truncate";
  /** The command for the shell tables (CREATE INDEX CONCURRENTLY without CONCURRENTLY). */
  readonly shellSql: string;
  /** The command said CONCURRENTLY (which PostgreSQL refuses inside a transaction block): which one. */
  readonly concurrently?: "CREATE INDEX CONCURRENTLY" | "DROP INDEX CONCURRENTLY";
  /** The command each shard runs: one per table and shard index. */
  readonly shardCommands: readonly { readonly table: DistributedTable; readonly index: number; readonly sql: string }[];
  /** The workers of the catalog snapshot it was planned against. */
  readonly workers: ReadonlyMap<number, WorkerNode>;
}

/**
 * DDL on distributed and reference tables, all or nothing: every shard's write lock is taken on
 * the coordinator (writers of the table wait, and a writer already holding one makes this wait,
 * on the coordinator, where PostgreSQL sees any deadlock), the shell table changes in that
 * coordinator transaction, every placement in a transaction on its worker, and all of it commits
 * in two phases (transaction/distributed-transaction.ts). A worker that cannot be reached fails
 * the command. Dropping a table also drops its metadata, in the coordinator's same transaction.
 * Resolves with the command tag.
 *
 * Inside a transaction block (migration tools wrap their DDL in one), the command is part of the
 * block's distributed transaction instead: its locks are held and its placements' transactions
 * stay open until the block commits them all, in two phases, with the block's other statements,
 * or rolls them back; the block's statements after it plan with the block's own metadata.
 */
export async function runDistributedDdl(change: DdlChange, run: StatementRun, port: ExecutionPort): Promise<string> {
  const inBlock = port.inTransactionBlock();
  if (inBlock && change.concurrently) {
    throw new HerdError(`${change.concurrently} cannot run inside a transaction block`, {
      sqlState: SqlState.activeSqlTransaction,
    });
  }
  const perNode = new Map<number, { node: WorkerNode; statements: { shardId: number; sql: string }[] }>();
  const placements = new Map<number, ShardLock>();
  for (const { table, index, sql } of change.shardCommands) {
    const shard = shardOf(table, index);
    const nodes = activeNodes(shard, change.workers);
    placements.set(shard.id, shardLock(table, shard));
    for (const node of nodes) {
      const entry = perNode.get(node.id) ?? { node, statements: [] };
      entry.statements.push({ shardId: shard.id, sql });
      perNode.set(node.id, entry);
    }
  }
  const backend = port.backend;
  return inOperationTransaction(port, async (transaction) => {
    await transaction.lockShards(placements);
    transaction.writesOnCoordinator();
    // the shell's guard trigger lets this transaction's own TRUNCATE through, and the shell guard
    // library the checks PostgreSQL makes of the change (a new foreign key's validation queries both
    // shells: empty, they pass; the placements validate the rows)
    await backend.query(OPEN_SHELLS);
    const collector = new ResultCollector();
    await backend.exchange(backendRequest({ ...run, sql: change.shellSql, describe: false }), collector);
    const shell = collector.result();
    // in a block, the settings would outlast the command (SET LOCAL lasts until the block ends)
    if (inBlock) await backend.query(CLOSE_SHELLS);
    if (change.action === "drop-tables") {
      // the shell is gone (the session's role was allowed to drop it): so is its metadata
      await backend.query("SELECT herd.forget_dropped_tables($1::oid[])", [
        `{${change.tables.map((table) => table.oid).join(",")}}`,
      ]);
    }
    // the coordinator's PostgreSQL checked the session's privileges on the shell: herd does the rest
    const settings = asHerd(port.settings());
    const outcomes = await Promise.allSettled(
      [...perNode.values()].map(async ({ node, statements }) => {
        const { connection, opening } = await transaction.join(node, settings);
        if (opening) await connection.query(opening);
        for (const { shardId, sql } of statements) {
          transaction.wrote(node.id, shardId);
          await connection.query(sql);
        }
      }),
    );
    const failed = outcomes.find((outcome) => outcome.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    return shell.tag;
  });
}
