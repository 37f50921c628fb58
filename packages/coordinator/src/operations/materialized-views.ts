import { HerdError, SqlState } from "@herd/shared";
import { streamCopy } from "../copy/copy-stream.js";
import type { ExecutionPort } from "../executor/execution-port.js";
import { activeNodes } from "../executor/shard-selection.js";
import { type DistributedTable, shardName } from "../metadata/catalog-types.js";
import { qualifiedName } from "../parser/identifiers.js";
import { copyColumns } from "./shell-definition.js";

/**
 * The distributed and reference tables a materialized view reads, through views too (its
 * rewrite rule's dependencies, followed down).
 */
const TABLES_READ = `WITH RECURSIVE reads (relid) AS (
    SELECT d.refobjid FROM pg_catalog.pg_rewrite r
      JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid
                                  AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
     WHERE r.ev_class = $1::oid AND d.refobjid <> r.ev_class
  UNION
    SELECT d.refobjid FROM reads
      JOIN pg_catalog.pg_rewrite r ON r.ev_class = reads.relid
      JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid
                                  AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
     WHERE d.refobjid <> r.ev_class
  )
  SELECT DISTINCT reads.relid::int FROM reads JOIN herd.distributed_tables t ON t.relation = reads.relid`;

/**
 * Runs `refresh` (REFRESH MATERIALIZED VIEW, as the client wrote it) on the coordinator's
 * PostgreSQL with the rows of the distributed tables the view reads: each is copied into its
 * shell first (streamed from one copy of each shard), in the same transaction, and deleted from
 * it again before the transaction ends, so no other session ever sees rows in a shell. The view's
 * query is PostgreSQL's own, over all the rows: exact whatever its shape, at the price of
 * bringing those tables to the coordinator. Resolves with the refresh's command tag.
 */
export async function refreshWithShards(matview: number, refresh: string, port: ExecutionPort): Promise<string> {
  const backend = port.backend;
  const own = !port.inTransactionBlock();
  if (own) await backend.query("BEGIN");
  try {
    const tables = await distributedTablesRead(matview, port);
    await backend.query("SET LOCAL herd.shell_writes = on; SET LOCAL herd.shell_guard = off");
    for (const table of tables) await fillShell(table, port);
    const tag = (await backend.query(refresh)).tag;
    for (const table of tables) await backend.query(`DELETE FROM ONLY ${qualifiedName(table.schema, table.name)}`);
    await backend.query("RESET herd.shell_writes; RESET herd.shell_guard");
    if (own) await backend.query("COMMIT");
    return tag;
  } catch (error) {
    if (own && backend.status !== "I") await backend.query("ROLLBACK").catch(() => {});
    throw error;
  }
}

/** The distributed and reference tables the materialized view `matview` reads. */
export async function distributedTablesRead(matview: number, port: ExecutionPort): Promise<DistributedTable[]> {
  const read = await port.backend.query(TABLES_READ, [String(matview)]);
  return read.rows
    .map((row) => port.catalog.current.byOid(Number((row[0] as Buffer).toString())))
    .filter((table): table is DistributedTable => table !== undefined);
}

/** Every row of `table`, from one active copy of each shard, into its (empty) shell. */
async function fillShell(table: DistributedTable, port: ExecutionPort): Promise<void> {
  const shell = qualifiedName(table.schema, table.name);
  const columns = await copyColumns(port.backend, table.oid);
  const shards = table.kind === "reference" ? table.shards.slice(0, 1) : table.shards;
  for (const shard of shards) {
    const node = activeNodes(shard, port.catalog.current.nodes)[0];
    if (!node) {
      throw new HerdError(`shard ${shard.id} of ${table.name} has no active placement to read`, {
        sqlState: SqlState.connectionFailure,
      });
    }
    const sql = `COPY ${qualifiedName(table.schema, shardName(table, shard.id))} (${columns}) TO STDOUT (FORMAT binary)`;
    const into = `COPY ${shell} (${columns}) FROM STDIN (FORMAT binary)`;
    if (port.transaction.active) {
      // a block that reached workers reads through its own transactions: it sees its own writes
      const { connection, opening } = await port.transaction.join(node, port.settings());
      if (opening) await connection.query(opening);
      await streamCopy(connection, sql, port.backend, into);
      continue;
    }
    // herd's own login: the coordinator's PostgreSQL checks the view owner's rights when it refreshes
    const connection = await port.workers.acquire(node);
    try {
      await streamCopy(connection, sql, port.backend, into);
    } finally {
      port.workers.release(connection);
    }
  }
}
