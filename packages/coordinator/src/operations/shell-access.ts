import { HerdError, SqlState } from "@herd/shared";
import type { WorkerConnection } from "../connection/worker-connection.js";
import { streamCopy } from "../copy/copy-stream.js";
import type { ExecutionPort } from "../executor/execution-port.js";
import { activeNodes } from "../executor/shard-selection.js";
import { type DistributedTable, shardName, type WorkerNode } from "../metadata/catalog-types.js";
import { qualifiedName } from "../parser/identifiers.js";
import { copyColumns } from "./shell-definition.js";

/**
 * herd's own work on shells, for the rest of the coordinator's transaction: their guard trigger
 * lets writes through (herd.shell_writes) and the shell guard library lets reads through
 * (herd.shell_guard). SET LOCAL: a transaction that fails undoes them; one that goes on (a block)
 * sends CLOSE_SHELLS when done.
 */
export const OPEN_SHELLS = "SET LOCAL herd.shell_writes = on; SET LOCAL herd.shell_guard = off";
export const CLOSE_SHELLS = "RESET herd.shell_writes; RESET herd.shell_guard";

/**
 * Copies every row of `table` into its shell (open, see OPEN_SHELLS), streamed from one active
 * copy of each shard (a reference table's one shard once), over the connection `source` lends
 * for a worker; `done` gives it back.
 */
export async function copyShardsIntoShell(
  table: DistributedTable,
  port: ExecutionPort,
  source: (node: WorkerNode) => Promise<{ connection: WorkerConnection; done(): void }>,
): Promise<void> {
  const shell = qualifiedName(table.schema, table.name);
  const columns = await copyColumns(port.backend, table.oid);
  const shards = table.kind === "reference" ? table.shards.slice(0, 1) : table.shards;
  for (const shard of shards) {
    const node = activeNodes(shard, port.catalog.current.nodes)[0];
    if (!node) {
      throw new HerdError(`shard ${shard.id} of ${table.name} has no active placement to read`, {
        sqlState: SqlState.objectNotInPrerequisiteState,
      });
    }
    const { connection, done } = await source(node);
    try {
      await streamCopy(
        connection,
        `COPY ${qualifiedName(table.schema, shardName(table, shard.id))} (${columns}) TO STDOUT (FORMAT binary)`,
        port.backend,
        `COPY ${shell} (${columns}) FROM STDIN (FORMAT binary)`,
      );
    } finally {
      done();
    }
  }
}
