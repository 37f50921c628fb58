import type { Logger } from "@herd/shared";
import type pg from "pg";
import { type CatalogSnapshot, catalogSnapshot } from "./catalog-snapshot.js";
import type { Column, Constraint, DistributedTable, Placement, Shard, WorkerNode } from "./catalog-types.js";

const NOTIFY_CHANNEL = "herd_metadata";
const RELATIONS_CHANNEL = "herd_relations";
/**
 * `reading (relid)`: the distributed and reference tables, and every view that reads one of them
 * (through other views too), for a WITH RECURSIVE.
 */
const READING_DISTRIBUTED = `reading (relid) AS (
    SELECT relation::oid FROM herd.distributed_tables
  UNION
    SELECT r.ev_class FROM reading
      JOIN pg_catalog.pg_depend d ON d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.refobjid = reading.relid AND d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
      JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
     WHERE r.ev_class <> reading.relid
  )`;
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

export class Catalog implements CatalogSource {
  current: CatalogSnapshot = catalogSnapshot({ nodes: [], tables: [], indexes: [], functions: EMPTY_FUNCTIONS }, 0);
  relationsEpoch = 0;
  private listener: pg.PoolClient | undefined;
  private reloading: Promise<void> | undefined;
  private reloadAgain = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly logger: Logger,
  ) {}

  get version(): number {
    return this.current.version;
  }

  async start(): Promise<void> {
    await this.load();
    const client = await this.pool.connect();
    this.listener = client;
    client.on("notification", (message) => {
      // DDL somewhere: names may mean other relations now, and views or functions may read
      // distributed tables now
      if (message.channel === RELATIONS_CHANNEL) this.relationsEpoch += 1;
      void this.reload();
    });
    client.on("error", (error) => this.logger.warn("metadata listener failed", { error: error.message }));
    await client.query(`LISTEN ${NOTIFY_CHANNEL}; LISTEN ${RELATIONS_CHANNEL}`);
  }

  stop(): void {
    this.listener?.release(true);
    this.listener = undefined;
  }

  /** Loads again (coalescing concurrent requests); resolves once a load that began after the call ends. */
  reload(): Promise<void> {
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
      const nodes = await client.query<{ id: number; name: string; host: string; port: number; state: string }>(
        "SELECT id, name, host, port, state FROM herd.nodes ORDER BY id",
      );
      const tables = await client.query<{
        oid: number;
        schema: string;
        name: string;
        kind: "hash" | "reference";
        distribution_column: string | null;
        distribution_type: number | null;
        colocation_id: number;
      }>(`SELECT t.relation::oid AS oid, n.nspname AS schema, c.relname AS name, t.kind, t.distribution_column,
                 a.atttypid::int AS distribution_type, t.colocation_id
            FROM herd.distributed_tables t
            JOIN pg_class c ON c.oid = t.relation
            JOIN pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN pg_attribute a ON a.attrelid = t.relation AND a.attname = t.distribution_column`);
      const columns = await client.query<{
        relation: number;
        name: string;
        type_oid: number;
        type_name: string;
        default_expr: string | null;
        generated: boolean;
      }>(`SELECT a.attrelid::int AS relation, a.attname AS name, a.atttypid::int AS type_oid,
                 format_type(a.atttypid, a.atttypmod) AS type_name,
                 CASE WHEN a.attidentity <> ''
                      THEN format('nextval(%L::regclass)', pg_get_serial_sequence(a.attrelid::regclass::text, a.attname))
                      WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END AS default_expr,
                 a.attgenerated <> '' AS generated
            FROM herd.distributed_tables t
            JOIN pg_attribute a ON a.attrelid = t.relation AND a.attnum > 0 AND NOT a.attisdropped
            LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
           ORDER BY a.attrelid, a.attnum`);
      const shards = await client.query<{
        id: string;
        relation: number;
        shard_index: number;
        min_value: number | null;
        max_value: number | null;
        placement_version: string;
      }>(
        "SELECT id, relation::oid AS relation, shard_index, min_value, max_value, placement_version FROM herd.shards ORDER BY relation, shard_index",
      );
      const placements = await client.query<{ id: string; shard_id: string; node_id: number; state: string }>(
        "SELECT id, shard_id, node_id, state FROM herd.placements ORDER BY shard_id, node_id",
      );
      const constraints = await client.query<{ relation: number; name: string; type: string }>(
        `SELECT k.conrelid::int AS relation, k.conname AS name, k.contype::text AS type
           FROM pg_constraint k JOIN herd.distributed_tables t ON t.relation = k.conrelid`,
      );
      const indexes = await client.query<{ relation: number; schema: string; name: string }>(
        `SELECT i.indrelid::int AS relation, n.nspname AS schema, c.relname AS name
           FROM pg_index i JOIN herd.distributed_tables t ON t.relation = i.indrelid
           JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace`,
      );
      const functions = await client.query<{ name: string; kind: string }>(
        `SELECT DISTINCT proname AS name, CASE WHEN prokind = 'a' THEN 'a' ELSE provolatile::text END AS kind
           FROM pg_proc WHERE prokind = 'a' OR provolatile <> 'i'`,
      );
      // view definitions as a session with any search_path reads them: every name qualified
      await client.query("SET LOCAL search_path = ''");
      const views = await client.query<{
        oid: number;
        schema: string;
        name: string;
        definition: string;
        columns: string[];
      }>(`WITH RECURSIVE ${READING_DISTRIBUTED}
          SELECT c.oid::int AS oid, n.nspname AS schema, c.relname AS name,
                 pg_catalog.pg_get_viewdef(c.oid) AS definition,
                 ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
                        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) AS columns
            FROM reading JOIN pg_catalog.pg_class c ON c.oid = reading.relid AND c.relkind = 'v'
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace`);
      const shellReaders = await client.query<{ name: string; reads: string }>(
        `WITH RECURSIVE ${READING_DISTRIBUTED}
         SELECT p.proname AS name, min(c.relname) AS reads
           FROM pg_catalog.pg_proc p
           JOIN pg_catalog.pg_language l ON l.oid = p.prolang AND l.lanname IN ('sql', 'plpgsql')
           JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'herd')
           JOIN reading ON true
           JOIN pg_catalog.pg_class c ON c.oid = reading.relid
          WHERE p.prosrc ~* ('\\m' || pg_catalog.regexp_replace(c.relname, '([^[:alnum:]_])', '\\\\\\1', 'g') || '\\M')
             OR EXISTS (SELECT FROM pg_catalog.pg_depend d
                         WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid
                           AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = c.oid)
          GROUP BY p.proname`,
      );
      await client.query("COMMIT");

      const kinds = {
        volatile: [] as string[],
        stable: [] as string[],
        aggregates: [] as string[],
        shellReaders: shellReaders.rows.map((row) => [row.name, row.reads] as const),
      };
      for (const row of functions.rows) {
        (row.kind === "a" ? kinds.aggregates : row.kind === "v" ? kinds.volatile : kinds.stable).push(row.name);
      }
      const constraintsByTable = new Map<number, Constraint[]>();
      for (const row of constraints.rows) {
        const list = constraintsByTable.get(row.relation) ?? [];
        list.push({ name: row.name, type: row.type });
        constraintsByTable.set(row.relation, list);
      }

      const placementsByShard = new Map<number, Placement[]>();
      for (const row of placements.rows) {
        const placement: Placement = {
          id: Number(row.id),
          shardId: Number(row.shard_id),
          nodeId: row.node_id,
          state: row.state as Placement["state"],
        };
        const list = placementsByShard.get(placement.shardId) ?? [];
        list.push(placement);
        placementsByShard.set(placement.shardId, list);
      }
      const shardsByTable = new Map<number, Shard[]>();
      for (const row of shards.rows) {
        const id = Number(row.id);
        const list = shardsByTable.get(Number(row.relation)) ?? [];
        list.push({
          id,
          index: row.shard_index,
          min: row.min_value ?? undefined,
          max: row.max_value ?? undefined,
          placements: placementsByShard.get(id) ?? [],
          placementVersion: Number(row.placement_version),
        });
        shardsByTable.set(Number(row.relation), list);
      }
      const columnsByTable = new Map<number, Column[]>();
      for (const row of columns.rows) {
        const list = columnsByTable.get(row.relation) ?? [];
        list.push({
          name: row.name,
          typeOid: row.type_oid,
          typeName: row.type_name,
          defaultExpr: row.default_expr ?? undefined,
          generated: row.generated,
        });
        columnsByTable.set(row.relation, list);
      }
      const tableList: DistributedTable[] = tables.rows.map((row) => {
        const oid = Number(row.oid);
        return {
          oid,
          schema: row.schema,
          name: row.name,
          kind: row.kind,
          distributionColumn: row.distribution_column ?? undefined,
          distributionType: row.distribution_type ?? undefined,
          colocationId: row.colocation_id,
          columns: columnsByTable.get(oid) ?? [],
          constraints: constraintsByTable.get(oid) ?? [],
          shards: shardsByTable.get(oid) ?? [],
        };
      });
      this.current = catalogSnapshot(
        {
          nodes: nodes.rows.map((row) => ({ ...row, state: row.state as WorkerNode["state"] })),
          tables: tableList,
          indexes: indexes.rows.map((row) => ({ schema: row.schema, name: row.name, table: row.relation })),
          functions: kinds,
          views: views.rows.map((row) => ({ ...row, oid: Number(row.oid) })),
        },
        this.current.version + 1,
      );
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }
}
