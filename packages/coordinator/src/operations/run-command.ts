import { errorMessage } from "@herd/shared";
import { applySettings } from "../connection/session-settings.js";
import type { ExecutionPort } from "../executor/execution-port.js";

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
