import { errorMessage } from "@herd/shared";
import type { QueryResult } from "../connection/pg-connection.js";
import { applySettings } from "../connection/session-settings.js";
import type { WorkerConnection } from "../connection/worker-connection.js";
import type { ExecutionPort } from "../executor/execution-port.js";
import { activeNodes } from "../executor/shard-selection.js";
import { type DistributedTable, shardName, type WorkerNode } from "../metadata/catalog-types.js";

/** One worker's answer to run_command_on_workers, as Citus gives it. */
export interface WorkerCommandResult {
  readonly host: string;
  readonly port: number;
  readonly success: boolean;
  /** The first column of the first row, else the command tag; the error's message when it failed. */
  readonly result: string;
}

/**
 * run_command_on_workers(command): the command on every active worker at once, each as the
 * session's role (onWorkerAsSession).
 */
export async function runCommandOnWorkers(command: string, port: ExecutionPort): Promise<WorkerCommandResult[]> {
  return Promise.all(
    activeWorkers(port).map(async (node): Promise<WorkerCommandResult> => {
      const answer = { host: node.host, port: node.port };
      try {
        const result = await onWorkerAsSession(port, node, (connection) => connection.query(command));
        return { ...answer, success: true, result: firstText(result) };
      } catch (error) {
        return { ...answer, success: false, result: errorMessage(error) };
      }
    }),
  );
}

/** One shard's answer to run_command_on_shards, as Citus gives it. */
export interface ShardCommandResult {
  readonly shardId: number;
  readonly success: boolean;
  readonly result: string;
}

/**
 * run_command_on_shards(table, command): the command once per shard, its `%s` (PostgreSQL's
 * format(): also %I, %L, %%) filled with the shard's name (schema-qualified outside public, as
 * Citus's shard_name gives it). Citus runs it on one placement of each shard; herd runs it on
 * every active placement, so that a command that changes a shard (VACUUM, ANALYZE, a DELETE)
 * leaves its copies alike: a shard succeeds when all of its copies did, and answers its first
 * copy's result (or the first failure's message, naming the worker). Each worker's commands run
 * one after another on one connection logged in as the session's role, in parallel across
 * workers, outside any transaction block (not atomic, as in Citus).
 */
export async function runCommandOnShards(
  table: DistributedTable,
  command: string,
  port: ExecutionPort,
): Promise<ShardCommandResult[]> {
  const catalog = port.catalog.current;
  const shards = [...table.shards].sort((a, b) => a.id - b.id);
  // the commands as PostgreSQL's format() writes them, the names quoted only where they need it,
  // as Citus's shard_name does (a bad format string fails the call, 22023)
  const formatted = await port.backend.query(
    `SELECT pg_catalog.format($1, CASE WHEN $2 = 'public' THEN pg_catalog.quote_ident(s)
                                       ELSE pg_catalog.quote_ident($2) || '.' || pg_catalog.quote_ident(s) END)
       FROM pg_catalog.json_array_elements_text($3::json) WITH ORDINALITY AS n (s, i) ORDER BY i`,
    [command, table.schema, JSON.stringify(shards.map((shard) => shardName(table, shard.id)))],
  );
  const commands = formatted.rows.map((row) => row[0]?.toString() ?? "");
  const byNode = new Map<number, { node: WorkerNode; items: { shard: number; command: string }[] }>();
  shards.forEach((shard, i) => {
    for (const node of activeNodes(shard, catalog.nodes)) {
      const entry = byNode.get(node.id) ?? { node, items: [] };
      entry.items.push({ shard: i, command: commands[i] as string });
      byNode.set(node.id, entry);
    }
  });
  // per shard, each copy's answer in node id order
  const answers = shards.map(() => [] as { node: WorkerNode; success: boolean; result: string }[]);
  await Promise.all(
    [...byNode.values()].map(async ({ node, items }) => {
      const answer = (shard: number, success: boolean, result: string) =>
        answers[shard]?.push({ node, success, result });
      try {
        await onWorkerAsSession(port, node, async (connection) => {
          for (const item of items) {
            try {
              answer(item.shard, true, firstText(await connection.query(item.command)));
            } catch (error) {
              answer(item.shard, false, errorMessage(error));
            }
          }
        });
      } catch (error) {
        // the login failed (each command's own failure is answered above): so did its shards
        for (const item of items) answer(item.shard, false, errorMessage(error));
      }
    }),
  );
  return shards.map((shard, i) => {
    const copies = (answers[i] ?? []).sort((a, b) => a.node.id - b.node.id);
    const failed = copies.find((copy) => !copy.success);
    if (failed) return { shardId: shard.id, success: false, result: `${failed.node.name}: ${failed.result}` };
    return { shardId: shard.id, success: true, result: copies[0]?.result ?? "" };
  });
}

/** The active workers, in node id order. */
export function activeWorkers(port: ExecutionPort): WorkerNode[] {
  return [...port.catalog.current.nodes.values()].filter((node) => node.state === "active").sort((a, b) => a.id - b.id);
}

/**
 * Runs `work` on a connection to `node` logged in as the session's role with the session's
 * settings (so the worker checks the same privileges), outside any transaction block of the
 * session's. The connection is closed afterwards rather than pooled (what ran may have changed its
 * settings), also when `work` or the login fails.
 */
export async function onWorkerAsSession<T>(
  port: ExecutionPort,
  node: WorkerNode,
  work: (connection: WorkerConnection) => Promise<T>,
): Promise<T> {
  const settings = port.settings();
  const connection = await port.workers.acquire(node, settings.login);
  try {
    await applySettings(connection, settings);
    return await work(connection);
  } finally {
    connection.destroy();
    port.workers.release(connection);
  }
}

/** What a command answered, as Citus's run_command functions show it: its first value, else its tag. */
function firstText(result: QueryResult): string {
  const first = result.rows[0]?.[0];
  return first === undefined ? result.tag : first === null ? "" : first.toString("utf8");
}
