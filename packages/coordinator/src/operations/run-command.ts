import { errorMessage } from "@herd/shared";
import { applySettings } from "../connection/session-settings.js";
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
 * run_command_on_workers(command): the command on every active worker at once, each in its own
 * connection logged in as the session's role with the session's settings (so the worker checks
 * the same privileges), outside any transaction block of the session's. The connections are
 * closed afterwards rather than pooled: the command may change their settings.
 */
export async function runCommandOnWorkers(command: string, port: ExecutionPort): Promise<WorkerCommandResult[]> {
  const settings = port.settings();
  const workers = [...port.catalog.current.nodes.values()]
    .filter((node) => node.state === "active")
    .sort((a, b) => a.id - b.id);
  return Promise.all(
    workers.map(async (node): Promise<WorkerCommandResult> => {
      const answer = { host: node.host, port: node.port };
      let connection: Awaited<ReturnType<typeof port.workers.acquire>> | undefined;
      try {
        connection = await port.workers.acquire(node, settings.login);
        await applySettings(connection, settings);
        const result = await connection.query(command);
        const first = result.rows[0]?.[0];
        const text = first === undefined ? result.tag : first === null ? "" : first.toString("utf8");
        return { ...answer, success: true, result: text };
      } catch (error) {
        return { ...answer, success: false, result: errorMessage(error) };
      } finally {
        if (connection) {
          connection.destroy();
          port.workers.release(connection);
        }
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
  const settings = port.settings();
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
      let connection: Awaited<ReturnType<typeof port.workers.acquire>> | undefined;
      try {
        connection = await port.workers.acquire(node, settings.login);
        await applySettings(connection, settings);
      } catch (error) {
        for (const item of items) answers[item.shard]?.push({ node, success: false, result: errorMessage(error) });
        return;
      }
      try {
        for (const item of items) {
          try {
            const result = await connection.query(item.command);
            const first = result.rows[0]?.[0];
            const text = first === undefined ? result.tag : first === null ? "" : first.toString("utf8");
            answers[item.shard]?.push({ node, success: true, result: text });
          } catch (error) {
            answers[item.shard]?.push({ node, success: false, result: errorMessage(error) });
          }
        }
      } finally {
        connection.destroy();
        port.workers.release(connection);
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
