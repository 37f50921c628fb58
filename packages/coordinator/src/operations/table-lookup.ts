import { HerdError, SqlState } from "@herd/shared";
import { firstValue, type PgConnection } from "../connection/pg-connection.js";
import type { ExecutionPort } from "../executor/execution-port.js";
import type { DistributedTable } from "../metadata/catalog-types.js";

/** The OID of the relation `name` names, as the session's search_path resolves it (42P01 if none). */
export async function tableOid(name: string, port: ExecutionPort): Promise<number> {
  return Number(firstValue(await port.backend.query("SELECT $1::regclass::oid", [name])));
}

/** The distributed or reference table `relation` names (as the session resolves it), else `notDistributed`. */
export async function distributedTable(
  relation: string,
  port: ExecutionPort,
  notDistributed: (name: string) => HerdError,
): Promise<DistributedTable> {
  const table = port.catalog.current.byOid(await tableOid(relation, port));
  if (!table) throw notDistributed(relation);
  return table;
}

/** As in Citus, only a table's owner (or a member of its role) distributes or undistributes it. */
export async function ensureOwner(backend: PgConnection, oid: number, name: string): Promise<void> {
  if (firstValue(await backend.query("SELECT herd.owns($1::oid::regclass)", [String(oid)])) !== "t") {
    throw new HerdError(`must be owner of table ${name}`, { sqlState: SqlState.insufficientPrivilege });
  }
}
