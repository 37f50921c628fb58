import { fileURLToPath } from "node:url";
import { errorMessage, type Logger } from "@herd/shared";
import type pg from "pg";

/**
 * The directory whose `extension/` holds herd_catalog.control (PostgreSQL 18 looks in the
 * `extension` subdirectory of each `extension_control_path` entry, as in its own share
 * directory): the coordinator's PostgreSQL is started with it there, so no file goes into
 * PostgreSQL's own directories.
 */
export const CATALOG_EXTENSION_DIR = fileURLToPath(new URL("../..", import.meta.url));

/**
 * Every object herd's migrations made (the herd schema with its tables, sequences, views,
 * functions and aggregates; the Citus-named views and functions in pg_catalog, which are those
 * with OIDs past initdb's, 16384 on; and herd's event triggers), added to the extension herd_catalog
 * where they are not members yet. pg_dump leaves extension members out, and the rows of their
 * tables: a dump of a herd database is the user's schema and rows, which a plain PostgreSQL can
 * restore. Names come from pg_identify_object, which quotes them.
 */
const ADOPT = `DO $adopt$
DECLARE object record;
BEGIN
  FOR object IN
    SELECT o.type, o.identity
      FROM (SELECT 'pg_catalog.pg_namespace'::pg_catalog.regclass, n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = 'herd'
            UNION ALL
            SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, c.oid FROM pg_catalog.pg_class c
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S')
               AND (c.relnamespace = 'herd'::pg_catalog.regnamespace
                    OR (c.relnamespace = 'pg_catalog'::pg_catalog.regnamespace AND c.oid >= 16384))
            UNION ALL
            SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass, p.oid FROM pg_catalog.pg_proc p
             WHERE p.pronamespace = 'herd'::pg_catalog.regnamespace
                OR (p.pronamespace = 'pg_catalog'::pg_catalog.regnamespace AND p.oid >= 16384)
            UNION ALL
            SELECT 'pg_catalog.pg_type'::pg_catalog.regclass, t.oid FROM pg_catalog.pg_type t
             WHERE t.typnamespace = 'herd'::pg_catalog.regnamespace AND t.typrelid = 0 AND t.typelem = 0
            UNION ALL
            SELECT 'pg_catalog.pg_event_trigger'::pg_catalog.regclass, e.oid FROM pg_catalog.pg_event_trigger e
             WHERE e.evtname LIKE 'herd\\_%') AS made (classid, objid)
      CROSS JOIN LATERAL pg_catalog.pg_identify_object(made.classid, made.objid, 0) AS o
     WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
                        WHERE d.classid = made.classid AND d.objid = made.objid AND d.deptype = 'e')
  LOOP
    EXECUTE pg_catalog.format('ALTER EXTENSION herd_catalog ADD %s %s', object.type, object.identity);
  END LOOP;
END $adopt$`;

/**
 * Makes herd's metadata the extension herd_catalog (see ADOPT). Resolves false, with a warning,
 * where the extension cannot be created (a PostgreSQL started without herd's
 * extension_control_path): herd works the same, but pg_dump then dumps the herd schema too.
 */
export async function adoptCatalogExtension(pool: pg.Pool, logger: Logger): Promise<boolean> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await client.query("CREATE EXTENSION IF NOT EXISTS herd_catalog");
    await client.query(ADOPT);
    await client.query("COMMIT");
    return true;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    logger.warn("herd's metadata could not be made the extension herd_catalog: pg_dump will include the herd schema", {
      error: errorMessage(error),
    });
    return false;
  } finally {
    client.release();
  }
}
