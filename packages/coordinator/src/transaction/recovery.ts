import { errorMessage, type Logger } from "@herd/shared";
import type pg from "pg";
import { PeriodicPass } from "../connection/periodic-pass.js";
import { applySettings, INTERNAL_SETTINGS } from "../connection/session-settings.js";
import type { ConnectionPool } from "../connection/worker-connection.js";
import type { CatalogSource } from "../metadata/catalog.js";
import type { WorkerNode } from "../metadata/catalog-types.js";

/** A gid herd gives a prepared part: `herd_<the deciding transaction's xid>_<node id>`. */
const GID = /^herd_(\d+)_(\d+)$/;
/** Gids of herd's from before commit records (`herd_<uuid>`): nothing says how they ended. */
const LEGACY_GID = /^herd_[0-9a-f-]+$/;

export interface RecoveryOptions {
  /** The coordinator's metadata database (herd.transactions, txid_status). */
  readonly metadata: pg.Pool;
  readonly catalog: CatalogSource;
  readonly pool: ConnectionPool;
  readonly logger: Logger;
  /** How often to look, in ms. */
  readonly intervalMs?: number;
}

/**
 * Finishes what a crash left between PREPARE and COMMIT PREPARED (after Citus's transaction
 * recovery). A prepared transaction of herd's on a worker is committed exactly when its commit
 * record exists in herd.transactions (the deciding coordinator transaction wrote it):
 *
 *   for each worker, every few seconds, at start, and on demand (recover_prepared_transactions()):
 *     R := records of the worker                         (read first: a record always follows its PREPARE)
 *     P := the worker's pg_prepared_xacts named herd_*
 *     for each gid in P:  in R → COMMIT PREPARED
 *                         else, its deciding transaction (the xid in the gid) still in progress → leave it
 *                         else, its record exists now (it committed meanwhile) → COMMIT PREPARED
 *                         else → ROLLBACK PREPARED       (the decision was never recorded: it did not commit)
 *     delete the records of R whose gid is not in P      (their transactions are finished)
 *
 * So no prepared transaction of herd's outlives its coordinator's decision by more than one pass,
 * and the locks it held go with it.
 */
export class PreparedTransactionRecovery {
  private readonly passes: PeriodicPass;

  constructor(private readonly options: RecoveryOptions) {
    this.passes = new PeriodicPass(() => this.pass(), options.intervalMs ?? 5_000);
  }

  start(): void {
    this.passes.start();
  }

  stop(): Promise<void> {
    return this.passes.stop();
  }

  /** One pass over every worker; resolves with the number of prepared transactions it finished. */
  recoverNow(): Promise<number> {
    return this.passes.now();
  }

  private async pass(): Promise<number> {
    let finished = 0;
    for (const node of this.options.catalog.current.nodes.values()) {
      try {
        finished += await this.recoverNode(node);
      } catch (error) {
        this.options.logger.debug("cannot recover prepared transactions on a worker now", {
          node: node.name,
          error: errorMessage(error),
        });
      }
    }
    return finished;
  }

  private async recoverNode(node: WorkerNode): Promise<number> {
    const { metadata, pool, logger } = this.options;
    const recorded = new Set(
      (
        await metadata.query<{ gid: string }>("SELECT gid FROM herd.transactions WHERE node_id = $1", [node.id])
      ).rows.map((row) => row.gid),
    );
    const connection = await pool.acquire(node);
    let finished = 0;
    try {
      await applySettings(connection, INTERNAL_SETTINGS);
      const prepared = (
        await connection.query(
          "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'herd\\_%' AND database = current_database()",
        )
      ).rows.map((row) => (row[0] as Buffer).toString());
      for (const gid of prepared) {
        const parsed = GID.exec(gid);
        let commit: boolean;
        if (recorded.has(gid)) commit = true;
        else if (parsed) {
          const status = (
            await metadata.query<{ status: string | null }>("SELECT txid_status($1::bigint) AS status", [parsed[1]])
          ).rows[0]?.status;
          if (status === "in progress") continue;
          // it may have committed since the records were read: its record says
          const record = await metadata.query("SELECT 1 FROM herd.transactions WHERE gid = $1", [gid]);
          commit = (record.rowCount ?? 0) > 0;
        } else if (LEGACY_GID.test(gid)) commit = false;
        else continue;
        // gid is one of herd's own shapes (checked above): safe in the statement's text
        await connection.query(`${commit ? "COMMIT" : "ROLLBACK"} PREPARED '${gid}'`);
        finished += 1;
        logger.info(
          commit ? "recovery committed a prepared transaction" : "recovery rolled back a prepared transaction",
          {
            node: node.name,
            gid,
          },
        );
      }
      const done = [...recorded].filter((gid) => !prepared.includes(gid));
      if (done.length > 0) await metadata.query("DELETE FROM herd.transactions WHERE gid = ANY ($1::text[])", [done]);
    } finally {
      pool.release(connection);
    }
    return finished;
  }
}
