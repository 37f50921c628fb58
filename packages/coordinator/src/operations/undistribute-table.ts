import { HerdError, SqlState } from "@herd/shared";
import { asHerd } from "../connection/session-settings.js";
import type { ExecutionPort } from "../executor/execution-port.js";
import { activeNodes } from "../executor/shard-selection.js";
import { shardName } from "../metadata/catalog-types.js";
import { qualifiedName } from "../parser/identifiers.js";
import { shardLock } from "../transaction/shard-lock.js";
import { inOperationTransaction } from "./operation-transaction.js";
import { CLOSE_SHELLS, copyShardsIntoShell, OPEN_SHELLS } from "./shell-access.js";
import { distributedTable, ensureOwner } from "./table-lookup.js";

/**
 * undistribute_table: a distributed or reference table becomes an ordinary table on the
 * coordinator again. In one distributed transaction (the session's block, if it is in one): the
 * table's shard groups are locked for writers, each shard's rows are copied from one active
 * placement into the shell (streamed, binary), the shell loses its guard trigger and its
 * metadata, and every placement's table is dropped; all of it commits in two phases, or none.
 * A table with foreign keys (either way) is refused, as Citus refuses it without cascading.
 */
export async function undistributeTable(relation: string, port: ExecutionPort): Promise<void> {
  const table = await distributedTable(
    relation,
    port,
    (name) =>
      new HerdError(`cannot undistribute table because relation "${name}" is not distributed`, {
        sqlState: SqlState.invalidTableDefinition,
      }),
  );
  const backend = port.backend;
  const oid = String(table.oid);
  await ensureOwner(backend, table.oid, table.name);
  const keys = await backend.query(
    `SELECT conname FROM pg_constraint
      WHERE contype = 'f' AND conrelid <> confrelid AND (conrelid = $1::oid OR confrelid = $1::oid) LIMIT 1`,
    [oid],
  );
  if (keys.rows.length > 0) {
    throw new HerdError(`cannot undistribute table "${table.name}" because it has a foreign key`, {
      sqlState: SqlState.featureNotSupported,
      hint: "Drop the foreign keys that involve it, undistribute it, then add them again.",
    });
  }
  const catalog = port.catalog.current;
  const shell = qualifiedName(table.schema, table.name);
  await inOperationTransaction(port, async (transaction) => {
    await transaction.lockShards(new Map(table.shards.map((shard) => [shard.id, shardLock(table, shard)])));
    transaction.writesOnCoordinator();
    await backend.query(OPEN_SHELLS);
    const settings = asHerd(port.settings());
    // read through the transaction: its locks hold the shards still while they are copied
    await copyShardsIntoShell(table, port, async (node) => {
      const { connection, opening } = await transaction.join(node, settings);
      if (opening) await connection.query(opening);
      return { connection, done: () => {} };
    });
    const trigger = await backend.query(
      "SELECT quote_ident(tgname) FROM pg_trigger WHERE tgrelid = $1::oid AND tgname LIKE 'herd\\_shell\\_guard%'",
      [oid],
    );
    for (const row of trigger.rows) await backend.query(`DROP TRIGGER ${(row[0] as Buffer).toString()} ON ${shell}`);
    await backend.query("SELECT herd.forget_undistributed($1::oid::regclass)", [oid]);
    await backend.query(CLOSE_SHELLS);
    for (const shard of table.shards) {
      for (const node of activeNodes(shard, catalog.nodes)) {
        const { connection, opening } = await transaction.join(node, settings);
        if (opening) await connection.query(opening);
        transaction.wrote(node.id, shard.id);
        await connection.query(`DROP TABLE IF EXISTS ${qualifiedName(table.schema, shardName(table, shard.id))}`);
      }
    }
  });
}
