import type { QueryResult } from "../connection/pg-connection.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import type { TransactionStatus } from "../protocol/backend-messages.js";
import { lockGroup } from "../transaction/shard-lock.js";

/**
 * The coordinator's PostgreSQL as a distributed transaction uses it (BEGIN, the write locks, the
 * placement versions, herd.record_commit, herd.mark_stale, COMMIT), answered from a catalog instead of
 * a server; every statement is logged. (A mock, for the fan-out's unit tests: the real functions run in every cluster test.)
 */
export class FakeCoordinator {
  status: TransactionStatus = "I";
  readonly log: string[] = [];
  /** Commit records written: gid → node id. */
  readonly records = new Map<string, number>();
  /** Placements marked stale: `shard:node`. */
  readonly stale: string[] = [];
  /** The parameters of every lock request. */
  readonly locks: string[] = [];
  private xid = 1000;

  constructor(private readonly catalog: CatalogSnapshot) {}

  async query(sql: string, parameters: readonly (string | null)[] = []): Promise<QueryResult> {
    this.log.push(sql);
    const result = (rows: (Buffer | null)[][] = [], tag = "SELECT 1"): QueryResult => ({ fields: [], rows, tag });
    if (sql === "BEGIN") {
      this.status = "T";
      this.xid += 1;
      return result([], "BEGIN");
    }
    if (sql === "COMMIT" || sql === "ROLLBACK") {
      this.status = "I";
      return result([], sql);
    }
    if (sql.includes("txid_current")) return result([[Buffer.from(String(this.xid))]]);
    if (sql.includes("herd.lock_shards") || sql.includes("herd.lock_value")) {
      this.locks.push(parameters.join(" "));
      return result([[Buffer.from(`${this.xid}/${this.groupVersions(sql, parameters)}`)]]);
    }
    if (sql.includes("herd.record_commit")) {
      const [gids, nodes] = parameters.map(array);
      for (const [i, gid] of (gids ?? []).entries()) this.records.set(gid, Number(nodes?.[i]));
      return result([[null]]);
    }
    if (sql.includes("herd.mark_stale")) {
      const [shards, nodes] = parameters.map(array);
      for (const [i, shard] of (shards ?? []).entries()) this.stale.push(`${shard}:${nodes?.[i]}`);
      return result([[null]]);
    }
    throw new Error(`the fake coordinator does not answer: ${sql}`);
  }

  /** What the lock functions answer: "shard:version,…" for the shards of the locked groups. */
  private groupVersions(sql: string, parameters: readonly (string | null)[]): string {
    const groups = sql.includes("herd.lock_value")
      ? [Number(parameters[0])]
      : [...array(parameters[0]), ...array(parameters[1])].map(Number);
    const versions: string[] = [];
    for (const table of this.catalog.tables) {
      for (const shard of table.shards) {
        if (groups.includes(lockGroup(table.colocationId, shard.index)))
          versions.push(`${shard.id}:${shard.placementVersion ?? 0}`);
      }
    }
    return versions.join(",");
  }
}

function array(text: string | null | undefined): string[] {
  return (text ?? "")
    .replace(/^\{|\}$/g, "")
    .split(",")
    .filter(Boolean);
}
