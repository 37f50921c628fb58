import { HerdError, SqlState } from "@herd/shared";
import { ResultCollector } from "../connection/pg-connection.js";
import { backendRequest } from "../executor/backend-request.js";
import type { SessionContext, StatementRun } from "../executor/execution-port.js";
import type { ShardTaskDeps } from "../executor/fan-out.js";
import { activeNodes } from "../executor/shard-selection.js";
import type { Catalog } from "../metadata/catalog.js";
import { type DistributedTable, shardName } from "../metadata/catalog-types.js";
import { type AnyNode, deparse, unwrap } from "../parser/ast.js";
import { shardDdl } from "../planner/ddl-planner.js";
import type { DdlPlan } from "../planner/plan.js";
import { PlannerErrors } from "../planner/planner-errors.js";
import { encodeCommandComplete, encodeEmpty } from "../protocol/backend-messages.js";
import { BackendMessage } from "../protocol/message-codes.js";
import { TwoPhaseChange } from "../transaction/two-phase.js";

/**
 * DDL on distributed and reference tables, all or nothing: the shell table changes inside a
 * transaction on the coordinator, every placement inside a prepared transaction on its worker;
 * the coordinator commits only when every worker prepared (see TwoPhaseChange). Dropping a
 * table also drops its metadata, in the coordinator's same transaction.
 */
export async function runDistributedDdl(
  plan: DdlPlan,
  run: StatementRun,
  session: SessionContext,
  deps: ShardTaskDeps,
): Promise<void> {
  if (session.inTransactionBlock()) {
    throw PlannerErrors.notSupported(
      "DDL on distributed tables inside a transaction block",
      "Run the command on its own, outside BEGIN … COMMIT.",
    );
  }
  const statement = withoutConcurrently(plan.tree);
  const perNode = new Map<number, { node: ReturnType<typeof activeNodes>[number]; statements: string[] }>();
  for (const table of plan.tables) {
    for (const shard of table.shards) {
      const sql = shardStatement(plan, statement, table, shard.index, deps.catalog);
      for (const node of activeNodes(shard, deps.catalog)) {
        const entry = perNode.get(node.id) ?? { node, statements: [] };
        entry.statements.push(sql);
        perNode.set(node.id, entry);
      }
    }
  }
  const change = new TwoPhaseChange(deps.pool, deps.logger);
  const backend = session.backend;
  // the shell's guard trigger lets this transaction's own TRUNCATE through
  await backend.query("BEGIN; SET LOCAL herd.shell_writes = on");
  try {
    if (plan.action === "drop-tables") {
      for (const table of plan.tables) {
        await backend.query("DELETE FROM herd.distributed_tables WHERE relation = $1::oid", [String(table.oid)]);
      }
    }
    const collector = new ResultCollector();
    await backend.exchange(backendRequest({ ...run, sql: deparse(statement), describe: false }), collector);
    const shell = collector.result();
    await change.forEach([...perNode.values()], async ({ node, statements }) => {
      const connection = await change.on(node);
      for (const sql of statements) await connection.query(sql);
    });
    await change.prepare();
    await backend.query("COMMIT");
    await change.commit();
    if (run.describe && run.bind) encodeEmpty(session.output.writer, BackendMessage.noData);
    encodeCommandComplete(session.output.writer, shell.tag);
  } catch (error) {
    await change.rollback();
    await backend.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    await deps.catalog.reload();
  }
}

/** CREATE INDEX CONCURRENTLY cannot run inside the transactions that make DDL atomic. */
function withoutConcurrently(tree: AnyNode): AnyNode {
  const [type, node] = unwrap(tree) as [string, AnyNode];
  if (type !== "IndexStmt" || !node.concurrent) return tree;
  const copy = structuredClone(tree);
  copy.IndexStmt.concurrent = false;
  return copy;
}

function shardStatement(
  plan: DdlPlan,
  tree: AnyNode,
  table: DistributedTable,
  index: number,
  catalog: Catalog,
): string {
  const shard = table.shards[index];
  if (!shard) throw new HerdError(`table ${table.name} has no shard ${index}`, { sqlState: SqlState.internalError });
  const behavior = (unwrap(tree)?.[1].behavior as string | undefined) ?? "DROP_RESTRICT";
  if (plan.action === "drop-tables") {
    return deparse({
      DropStmt: {
        objects: [
          { List: { items: [{ String: { sval: table.schema } }, { String: { sval: shardName(table, shard.id) } }] } },
        ],
        removeType: "OBJECT_TABLE",
        behavior,
        missing_ok: true,
      },
    });
  }
  if (plan.action === "truncate") {
    return deparse({
      TruncateStmt: {
        relations: [
          {
            RangeVar: { schemaname: table.schema, relname: shardName(table, shard.id), inh: true, relpersistence: "p" },
          },
        ],
        restart_seqs: tree.TruncateStmt.restart_seqs ?? false,
        behavior,
      },
    });
  }
  return shardDdl(tree, catalog, table, index);
}
