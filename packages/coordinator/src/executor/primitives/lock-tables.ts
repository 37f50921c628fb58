import { HerdError, SqlState } from "@herd/shared";
import type { DistributedTable } from "../../metadata/catalog-types.js";
import { type ShardLock, shardLock } from "../../transaction/shard-lock.js";
import type { ExecutionPort } from "../execution-port.js";
import type { ResultSink } from "../result-sink.js";
import type { StatementRun } from "../statement-run.js";
import { Local } from "./local.js";
import { NO_INPUTS, type Primitive } from "./primitive.js";

/**
 * LOCK TABLE on distributed and reference tables, inside a transaction block (pg_dump's ACCESS
 * SHARE, a migration's EXCLUSIVE). The shells on the coordinator are locked as written, so DDL
 * through herd (which locks them) waits; modes that conflict with row writes (SHARE and stronger)
 * also take the write locks of every shard group of the tables for the rest of the block, so
 * writes through herd wait too. Reads of the shards take no lock on the coordinator: ACCESS
 * EXCLUSIVE holds back writes and DDL but not reads, and a NOTICE says so.
 */
export class LockTables implements Primitive {
  readonly kind = "lock";
  private readonly local = new Local();

  constructor(
    readonly tables: readonly DistributedTable[],
    /** The mode conflicts with ROW EXCLUSIVE (SHARE and stronger). */
    readonly holdsWrites: boolean,
    /** ACCESS EXCLUSIVE: PostgreSQL would hold reads back too. */
    readonly holdsReads: boolean,
  ) {}

  async execute(port: ExecutionPort, run: StatementRun, sink: ResultSink): Promise<void> {
    if (!port.inTransactionBlock()) {
      throw new HerdError("LOCK TABLE can only be used in transaction blocks", {
        sqlState: SqlState.noActiveSqlTransaction,
      });
    }
    if (this.holdsWrites) {
      const locks = new Map<number, ShardLock>();
      for (const table of this.tables) for (const shard of table.shards) locks.set(shard.id, shardLock(table, shard));
      await port.transaction.lockShards(locks);
    }
    if (this.holdsReads) {
      sink.notice({
        severity: "NOTICE",
        code: "00000",
        message: `herd holds back writes and DDL of ${this.tables.map((t) => t.name).join(", ")}, not reads of their shards`,
        hint: "Reads through herd go on while the lock is held.",
      });
    }
    await this.local.execute(port, run, sink);
  }

  describe(): string {
    return `Lock tables=[${this.tables.map((t) => t.name).join(",")}]${this.holdsWrites ? " (writes held)" : ""}`;
  }

  inputs(): readonly Primitive[] {
    return NO_INPUTS;
  }
}
