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
 * are left out on purpose: the coordinator evaluates them (see DistributedInsert). Then who may
 * do what with it: its owner, its privileges and its columns', row-level security and policies
 * (SECURITY_DEFINITION): statements on a shard run as the session's role, and the worker checks.
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
  const security = await backend.query(SECURITY_DEFINITION, [String(oid)]);
  const texts = [...table.rows, ...constraints.rows, ...indexes.rows, ...security.rows].map((row) =>
    (row[0] as Buffer).toString("utf8"),
  );
  return texts.flatMap(parseStatements);
}

/**
 * The columns a COPY of the table carries (not generated, not dropped), quoted, in order, as a
 * column list: what moves rows between a shell and its shards in either direction.
 */
export async function copyColumns(backend: Pick<WorkerConnection, "query">, oid: number): Promise<string> {
  const result = await backend.query(
    `SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
      WHERE attrelid = $1::oid AND attnum > 0 AND NOT attisdropped AND attgenerated = ''`,
    [String(oid)],
  );
  return result.rows[0]?.[0]?.toString("utf8") ?? "";
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

/**
 * A table's owner, privileges (table and column; when the ACL was ever changed the owner's own
 * are written out too, after revoking the default), row-level security and policies, as
 * statements. A grant made by a grantee WITH GRANT OPTION is recorded on the shard as the owner's.
 */
const SECURITY_DEFINITION = `
  WITH t AS (SELECT c.oid, c.relacl, c.relowner, c.relrowsecurity, c.relforcerowsecurity,
                    format('%I.%I', n.nspname, c.relname) AS name
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1::oid)
  SELECT sql FROM (
    SELECT 1 AS step, format('ALTER TABLE %s OWNER TO %I', t.name, pg_get_userbyid(t.relowner)) AS sql FROM t
    UNION ALL
    SELECT 2, format('REVOKE ALL ON TABLE %s FROM %I', t.name, pg_get_userbyid(t.relowner)) FROM t WHERE t.relacl IS NOT NULL
    UNION ALL
    SELECT 3, format('GRANT %s ON TABLE %s TO %s%s', a.privilege_type, t.name,
                     CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
                     CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
      FROM t, aclexplode(t.relacl) a
    UNION ALL
    SELECT 4, format('GRANT %s (%I) ON TABLE %s TO %s%s', a.privilege_type, att.attname, t.name,
                     CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
                     CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
      FROM t JOIN pg_attribute att ON att.attrelid = t.oid AND att.attnum > 0 AND NOT att.attisdropped,
           aclexplode(att.attacl) a
    UNION ALL
    SELECT 5, format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', t.name) FROM t WHERE t.relrowsecurity
    UNION ALL
    SELECT 6, format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', t.name) FROM t WHERE t.relforcerowsecurity
    UNION ALL
    SELECT 7, format('CREATE POLICY %I ON %s AS %s FOR %s TO %s%s%s', p.polname, t.name,
                     CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
                     CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                                   WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                     (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r)) END, ', ')
                        FROM unnest(p.polroles) r),
                     CASE WHEN p.polqual IS NULL THEN '' ELSE format(' USING (%s)', pg_get_expr(p.polqual, p.polrelid)) END,
                     CASE WHEN p.polwithcheck IS NULL THEN ''
                          ELSE format(' WITH CHECK (%s)', pg_get_expr(p.polwithcheck, p.polrelid)) END)
      FROM t JOIN pg_policy p ON p.polrelid = t.oid
  ) s ORDER BY step, sql`;
