import { type Logger, SqlState } from "@herd/shared";
import type pg from "pg";
import { peers } from "../processes/peers.js";
import { readCatalog } from "./catalog-reader.js";
import { type CatalogSnapshot, catalogSnapshot } from "./catalog-snapshot.js";

const NOTIFY_CHANNEL = "herd_metadata";
const RELATIONS_CHANNEL = "herd_relations";
const EMPTY_FUNCTIONS = { volatile: [], stable: [], aggregates: [] } as const;

/**
 * The metadata (nodes, distributed tables, shards, placements) as the planner and executor see
 * it: `current`, an immutable snapshot read whole from the coordinator's PostgreSQL, replaced by a
 * new one when the metadata changes: triggers on the metadata tables NOTIFY `herd_metadata`
 * (migration 2), so several coordinator processes can share one metadata database later.
 * Snapshot versions grow with every load; plans made against an older one are planned again.
 */
/** Where the current snapshot is read, and loaded again after a change (what running plans may use). */
export interface CatalogSource {
  readonly current: CatalogSnapshot;
  /**
   * Grows whenever DDL of any session may have changed what an unqualified relation name means
   * (migration 6 NOTIFYs herd_relations): session name caches are emptied when it moves.
   */
  readonly relationsEpoch: number;
  /** Loads again; resolves once a load that began after the call ends. */
  reload(): Promise<void>;
}

/** A session's catalog: the shared one, or its transaction block's own (metadata/block-catalog.ts). */
export interface SessionCatalogSource extends CatalogSource {
  /** The snapshot of the session's block when the block changed the metadata, else undefined. */
  blockSnapshot(): CatalogSnapshot | undefined;
  /** The session's block changed the metadata: its statements must see the change from now on. */
  changedInBlock(): Promise<void>;
  /** Marks placements herd knows are behind stale (Catalog.markStale); resolves with those it could not. */
  markStale(placements: readonly StalePlacement[]): Promise<StalePlacement[]>;
  /** The session's block ended (COMMIT, ROLLBACK): back to the shared catalog, loaded again. */
  blockEnded(): Promise<void>;
  /**
   * The session's database when it is not the one holding herd's metadata: its tables are all
   * ordinary (the catalog is empty for it), and herd's functions are refused there.
   */
  readonly foreignDatabase?: string;
}

/** A shard's placement on a worker. */
export interface StalePlacement {
  readonly shardId: number;
  readonly nodeId: number;
}

export class Catalog implements CatalogSource {
  current: CatalogSnapshot = catalogSnapshot({ nodes: [], tables: [], indexes: [], functions: EMPTY_FUNCTIONS }, 0);
  relationsEpoch = 0;
  private listener: pg.PoolClient | undefined;
  private reloading: Promise<void> | undefined;
  private reloadAgain = false;
  /** Loads begun: each snapshot's version (versions grow with every load). */
  private loads = 0;
  /** The database snapshot `current` was read in. */
  private installed: DatabaseSnapshot = { xmax: 0n, running: 0 };

  constructor(
    private readonly pool: pg.Pool,
    private readonly logger: Logger,
  ) {}

  get version(): number {
    return this.current.version;
  }

  async start(): Promise<void> {
    // LISTEN before the first load: a change committed after the load began is NOTIFYed, one
    // committed before it is in the load (another process may change the metadata meanwhile)
    const client = await this.pool.connect();
    this.listener = client;
    client.on("notification", (message) => {
      // DDL somewhere: names may mean other relations now, and views or functions may read
      // distributed tables now
      if (message.channel === RELATIONS_CHANNEL) this.relationsEpoch += 1;
      void this.reloadHere();
    });
    client.on("error", (error) => this.logger.warn("metadata listener failed", { error: error.message }));
    await client.query(`LISTEN ${NOTIFY_CHANNEL}; LISTEN ${RELATIONS_CHANNEL}`);
    await this.load();
  }

  stop(): void {
    this.listener?.release(true);
    this.listener = undefined;
  }

  /**
   * Loads again here and in every other coordinator process, after a change this process made and
   * is about to answer a client for: no statement after the answer, in any process, plans with
   * the metadata as it was (the NOTIFY reaches them too, but maybe later).
   */
  async reload(): Promise<void> {
    await Promise.all([this.reloadHere(), peers().reloadCatalogs()]);
  }

  /**
   * Marks placements stale that herd itself knows are behind (a decided commit could not be
   * delivered to their worker), then loads again everywhere. A placement that is its shard's last
   * active one stays active (herd.mark_stale refuses it): resolves with those.
   */
  async markStale(placements: readonly StalePlacement[]): Promise<StalePlacement[]> {
    const refused: StalePlacement[] = [];
    const mark = (some: readonly StalePlacement[]) =>
      this.pool.query("SELECT herd.mark_stale($1::bigint[], $2::int[])", [
        some.map((p) => p.shardId),
        some.map((p) => p.nodeId),
      ]);
    try {
      await mark(placements);
    } catch (error) {
      if ((error as { code?: string }).code !== SqlState.serializationFailure) throw error;
      // one of them is the last active copy of its shard: the others one by one
      for (const placement of placements) {
        await mark([placement]).catch((one: { code?: string }) => {
          if (one.code !== SqlState.serializationFailure) throw one;
          refused.push(placement);
        });
      }
    }
    await this.reload();
    return refused;
  }

  /** Loads again in this process (coalescing concurrent requests); resolves once a load that began after the call ends. */
  reloadHere(): Promise<void> {
    if (this.reloading) {
      this.reloadAgain = true;
      return this.reloading;
    }
    this.reloading = (async () => {
      try {
        do {
          this.reloadAgain = false;
          await this.load();
        } while (this.reloadAgain);
      } catch (error) {
        this.logger.warn("could not reload the metadata", { error: (error as Error).message });
      } finally {
        this.reloading = undefined;
      }
    })();
    return this.reloading;
  }

  async load(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      // the transaction's snapshot, taken by this first statement: loads may overlap (the first
      // one and a NOTIFY's), and one that read an older snapshot must not replace a newer one
      const { rows } = await client.query<{ xmax: string; running: number }>(
        "SELECT pg_catalog.pg_snapshot_xmax(s)::text AS xmax, (SELECT count(*) FROM pg_catalog.pg_snapshot_xip(s))::int AS running FROM pg_catalog.pg_current_snapshot() s",
      );
      const taken = { xmax: BigInt(rows[0]?.xmax ?? "0"), running: rows[0]?.running ?? 0 };
      const snapshot = await readCatalog(
        <T>(sql: string) => client.query(sql) as unknown as Promise<{ rows: T[] }>,
        ++this.loads,
      );
      await client.query("COMMIT");
      if (newerOrSame(taken, this.installed)) {
        this.installed = taken;
        this.current = snapshot;
      }
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }
}

/** Where a metadata read's database snapshot stands: its xmax and how many transactions it saw running. */
interface DatabaseSnapshot {
  readonly xmax: bigint;
  readonly running: number;
}

/**
 * Whether snapshot `a` sees at least what `b` saw: a later snapshot has a higher xmax, or the same
 * with no more transactions still running (those that ended between them are visible to it).
 */
function newerOrSame(a: DatabaseSnapshot, b: DatabaseSnapshot): boolean {
  return a.xmax > b.xmax || (a.xmax === b.xmax && a.running <= b.running);
}
