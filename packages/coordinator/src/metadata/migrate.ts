import { HerdError, type Logger, SqlState } from "@herd/shared";
import type pg from "pg";
import { MIGRATIONS, type Migration } from "./migrations.js";

/**
 * Brings the metadata schema to the newest version, one transaction per migration. An advisory
 * lock makes concurrent coordinators (a future multi-process coordinator) wait for each other.
 * Returns the version the schema is at afterwards.
 */
export async function migrate(
  pool: pg.Pool,
  logger: Logger,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<number> {
  const client = await pool.connect();
  try {
    await client.query("SELECT pg_advisory_lock(hashtext('herd.migrate'))");
    await client.query("CREATE SCHEMA IF NOT EXISTS herd");
    await client.query(`CREATE TABLE IF NOT EXISTS herd.schema_migrations (
      version      integer PRIMARY KEY,
      description  text NOT NULL,
      applied_at   timestamptz NOT NULL DEFAULT now()
    )`);
    const { rows } = await client.query<{ version: number | null }>(
      "SELECT max(version) AS version FROM herd.schema_migrations",
    );
    let current = rows[0]?.version ?? 0;
    const newest = migrations.at(-1)?.version ?? 0;
    if (current > newest) {
      throw new HerdError(`metadata schema version ${current} is newer than this coordinator knows (${newest})`, {
        sqlState: SqlState.objectNotInPrerequisiteState,
        hint: "Run a herd release at least as new as the one that last ran this cluster.",
      });
    }
    for (const migration of migrations) {
      if (migration.version <= current) continue;
      await client.query("BEGIN");
      try {
        await client.query(migration.sql);
        await client.query("INSERT INTO herd.schema_migrations (version, description) VALUES ($1, $2)", [
          migration.version,
          migration.description,
        ]);
        await client.query("COMMIT");
      } catch (error) {
        await client.query("ROLLBACK");
        throw error;
      }
      current = migration.version;
      logger.info("metadata schema migrated", { version: current, description: migration.description });
    }
    return current;
  } finally {
    await client.query("SELECT pg_advisory_unlock(hashtext('herd.migrate'))").catch(() => {});
    client.release();
  }
}
