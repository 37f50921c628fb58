import type { WorkerConnection } from "../connection/worker-connection.js";
import type { ExecutionPort } from "../executor/execution-port.js";
import type { DistributedTable, WorkerNode } from "../metadata/catalog-types.js";
import { qualifiedName } from "../parser/identifiers.js";
import { inCoordinatorTransaction } from "./operation-transaction.js";
import { CLOSE_SHELLS, copyShardsIntoShell, OPEN_SHELLS } from "./shell-access.js";

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
  return inCoordinatorTransaction(port, async () => {
    const tables = await withReferencedTables(await distributedTablesRead(matview, port), port);
    await backend.query(OPEN_SHELLS);
    for (const table of tables) await copyShardsIntoShell(table, port, (node) => shardReader(node, port));
    const tag = (await backend.query(refresh)).tag;
    for (const table of tables.toReversed())
      await backend.query(`DELETE FROM ONLY ${qualifiedName(table.schema, table.name)}`);
    await backend.query(CLOSE_SHELLS);
    return tag;
  });
}

/** The distributed and reference tables the materialized view `matview` reads. */
export async function distributedTablesRead(matview: number, port: ExecutionPort): Promise<DistributedTable[]> {
  const read = await port.backend.query(TABLES_READ, [String(matview)]);
  return read.rows
    .map((row) => port.catalog.current.byOid(Number((row[0] as Buffer).toString())))
    .filter((table): table is DistributedTable => table !== undefined);
}

const FOREIGN_KEYS = `SELECT DISTINCT conrelid::int, confrelid::int FROM pg_catalog.pg_constraint
  WHERE contype = 'f' AND conrelid = ANY($1::oid[]) AND confrelid <> conrelid`;

/**
 * `tables` and the distributed tables their foreign keys reference, through every key, each after
 * the tables it references: a shell's keys are checked when its rows are copied in, so what they
 * reference must be there first (a view over campaigns copies companies before it).
 */
async function withReferencedTables(tables: DistributedTable[], port: ExecutionPort): Promise<DistributedTable[]> {
  const references = new Map<number, number[]>();
  let frontier = tables.map((table) => table.oid);
  while (frontier.length > 0) {
    for (const oid of frontier) references.set(oid, []);
    const keys = await port.backend.query(FOREIGN_KEYS, [`{${frontier.join(",")}}`]);
    const next = new Set<number>();
    for (const [from, to] of keys.rows.map((row) => row.map((cell) => Number((cell as Buffer).toString())))) {
      references.get(from as number)?.push(to as number);
      if (!references.has(to as number) && port.catalog.current.byOid(to as number)) next.add(to as number);
    }
    frontier = [...next];
  }
  const ordered: DistributedTable[] = [];
  const placed = new Set<number>();
  const place = (oid: number) => {
    if (placed.has(oid)) return;
    placed.add(oid);
    for (const referenced of references.get(oid) ?? []) place(referenced);
    const table = port.catalog.current.byOid(oid);
    if (table) ordered.push(table);
  };
  for (const table of tables) place(table.oid);
  return ordered;
}

/**
 * Where a refresh reads a worker's shards: a block that reached workers through its own
 * transactions (it sees its own writes); otherwise a pooled connection with herd's own login
 * (the coordinator's PostgreSQL checks the view owner's rights when it refreshes).
 */
async function shardReader(
  node: WorkerNode,
  port: ExecutionPort,
): Promise<{ connection: WorkerConnection; done(): void }> {
  if (port.transaction.active) {
    const { connection, opening } = await port.transaction.join(node, port.settings());
    if (opening) await connection.query(opening);
    return { connection, done: () => {} };
  }
  const connection = await port.workers.acquire(node);
  return { connection, done: () => port.workers.release(connection) };
}
