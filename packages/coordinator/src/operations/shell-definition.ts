import type { WorkerConnection } from "../connection/worker-connection.js";
import type { CatalogSnapshot } from "../metadata/catalog-snapshot.js";
import type { DistributedTable } from "../metadata/catalog-types.js";
import { isSuffixedConstraintKind, shardName, shardOf, shardSuffixed } from "../metadata/catalog-types.js";
import { type AnyNode, deparse, isRangeVar, parseStatements, walk } from "../parser/ast.js";

/**
 * The definition of a shell table as statements (CREATE TABLE with columns, types, collations,
 * NOT NULL and generated columns; its constraints; its other indexes), written by the
 * coordinator's PostgreSQL itself (format with %I, pg_get_constraintdef, pg_get_indexdef) and
 * parsed here, so shard tables are created from trees, never from pasted names. Column defaults
 * are left out on purpose: the coordinator evaluates them (see DistributedInsert).
 */
export async function readShellDefinition(backend: Pick<WorkerConnection, "query">, oid: number): Promise<AnyNode[]> {
  const table = await backend.query(
    `SELECT format('CREATE TABLE %I.%I (%s)', n.nspname, c.relname,
              string_agg(format('%I %s%s%s%s', a.attname, format_type(a.atttypid, a.atttypmod),
                CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                     THEN ' COLLATE ' || quote_ident(co.collname) ELSE '' END,
                CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,
                CASE WHEN a.attgenerated = 's'
                     THEN format(' GENERATED ALWAYS AS (%s) STORED', pg_get_expr(d.adbin, d.adrelid)) ELSE '' END),
                ', ' ORDER BY a.attnum))
       FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
       JOIN pg_type t ON t.oid = a.atttypid
       LEFT JOIN pg_collation co ON co.oid = a.attcollation
       LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE c.oid = $1::oid
      GROUP BY n.nspname, c.relname`,
    [String(oid)],
  );
  const constraints = await backend.query(
    `SELECT format('ALTER TABLE %I.%I ADD CONSTRAINT %I %s', n.nspname, c.relname, k.conname, pg_get_constraintdef(k.oid))
       FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE k.conrelid = $1::oid AND k.contype <> 'n'
      ORDER BY k.contype = 'f', k.conname`,
    [String(oid)],
  );
  const indexes = await backend.query(
    `SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
      WHERE i.indrelid = $1::oid
        AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid)
      ORDER BY i.indexrelid`,
    [String(oid)],
  );
  const texts = [...table.rows, ...constraints.rows, ...indexes.rows].map((row) => (row[0] as Buffer).toString("utf8"));
  return texts.flatMap(parseStatements);
}

/**
 * The shell's definition for shard `index` of `table` (which need not be in the catalog yet):
 * the table renamed to its shard, indexes and index-owning constraints suffixed with the shard
 * id, foreign keys pointed at the colocated shard or a reference table's shard.
 */
export function shardDefinition(
  statements: readonly AnyNode[],
  table: Pick<DistributedTable, "schema" | "name">,
  shardId: number,
  index: number,
  catalog: CatalogSnapshot,
): string[] {
  return statements.map((statement) => {
    const copy = structuredClone(statement);
    walk(copy, (node, key) => {
      if (isRangeVar(node, key)) {
        if (node.relname === table.name && (node.schemaname ?? table.schema) === table.schema) {
          node.relname = shardName(table, shardId);
        } else {
          const referenced = catalog.resolve(node.schemaname, node.relname);
          if (referenced) node.relname = shardName(referenced, shardOf(referenced, index).id);
        }
        return false;
      }
      if (key === "IndexStmt" && node.idxname) node.idxname = shardSuffixed(node.idxname, shardId);
      if (key === "Constraint" && node.conname && isSuffixedConstraintKind(node.contype)) {
        node.conname = shardSuffixed(node.conname, shardId);
      }
      return undefined;
    });
    return deparse(copy);
  });
}
