import { type CatalogSnapshot, catalogSnapshot } from "./catalog-snapshot.js";
import type { Column, Constraint, DistributedTable, Placement, Shard, WorkerNode } from "./catalog-types.js";

/**
 * Runs one catalog query. The caller holds a consistent view (a REPEATABLE READ transaction, or
 * the session's own block) and undoes the reader's `SET LOCAL search_path` after it.
 */
export type CatalogQuery = <T>(sql: string) => Promise<{ rows: T[] }>;

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
/** Reads the whole metadata (nodes, tables, shards, placements, views, functions) as a snapshot. */
export async function readCatalog(query: CatalogQuery, version: number): Promise<CatalogSnapshot> {
  const nodes = await query<{ id: number; name: string; host: string; port: number; state: string }>(
    "SELECT id, name, host, port, state FROM herd.nodes ORDER BY id",
  );
  const tables = await query<{
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
  const columns = await query<{
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
  const shards = await query<{
    id: string;
    relation: number;
    shard_index: number;
    min_value: number | null;
    max_value: number | null;
    placement_version: string;
  }>(
    "SELECT id, relation::oid AS relation, shard_index, min_value, max_value, placement_version FROM herd.shards ORDER BY relation, shard_index",
  );
  const placements = await query<{ id: string; shard_id: string; node_id: number; state: string }>(
    "SELECT id, shard_id, node_id, state FROM herd.placements ORDER BY shard_id, node_id",
  );
  const constraints = await query<{ relation: number; name: string; type: string }>(
    `SELECT k.conrelid::int AS relation, k.conname AS name, k.contype::text AS type
         FROM pg_constraint k JOIN herd.distributed_tables t ON t.relation = k.conrelid`,
  );
  const indexes = await query<{ relation: number; schema: string; name: string }>(
    `SELECT i.indrelid::int AS relation, n.nspname AS schema, c.relname AS name
         FROM pg_index i JOIN herd.distributed_tables t ON t.relation = i.indrelid
         JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace`,
  );
  const functions = await query<{ name: string; kind: string }>(
    `SELECT DISTINCT proname AS name, CASE WHEN prokind = 'a' THEN 'a' ELSE provolatile::text END AS kind
         FROM pg_proc WHERE prokind = 'a' OR provolatile <> 'i'`,
  );
  // view definitions as a session with any search_path reads them: every name qualified
  await query("SET LOCAL search_path = ''");
  const views = await query<{
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
  const shellReaders = await query<{ name: string; reads: string }>(
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
  return catalogSnapshot(
    {
      nodes: nodes.rows.map((row) => ({ ...row, state: row.state as WorkerNode["state"] })),
      tables: tableList,
      indexes: indexes.rows.map((row) => ({ schema: row.schema, name: row.name, table: row.relation })),
      functions: kinds,
      views: views.rows.map((row) => ({ ...row, oid: Number(row.oid) })),
    },
    version,
  );
}
