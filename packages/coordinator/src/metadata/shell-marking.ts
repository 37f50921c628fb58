import { errorMessage, type Logger } from "@herd/shared";
import type pg from "pg";
import { quoteLiteral } from "../parser/identifiers.js";

/**
 * When the coordinator's PostgreSQL preloads herd's shell guard library, herd.mark_shell(regclass)
 * gives shells their guard trigger as an internal trigger (pg_dump and \\d leave it out); the
 * shells made before, with an ordinary trigger, are converted. herd.guard_shell (migration 13)
 * uses herd.mark_shell when it exists, an ordinary trigger otherwise.
 */
export async function prepareShellMarking(pool: pg.Pool, logger: Logger): Promise<void> {
  const client = await pool.connect();
  try {
    const preload = (
      await client.query<{ value: string }>("SELECT current_setting('shared_preload_libraries') AS value")
    ).rows[0]?.value;
    const library = (preload ?? "")
      .split(",")
      .map((entry) => entry.trim().replace(/^"|"$/g, ""))
      .find((entry) => /herd_shell_guard(\.so)?$/.test(entry));
    if (!library) return;
    await client.query("BEGIN");
    await client.query(
      `CREATE OR REPLACE FUNCTION herd.mark_shell(relation regclass) RETURNS void LANGUAGE c STRICT
         AS ${quoteLiteral(library)}, 'herd_mark_shell'`,
    );
    await client.query(`DO $convert$
      DECLARE shell regclass;
      BEGIN
        FOR shell IN SELECT t.tgrelid::regclass FROM pg_trigger t JOIN herd.distributed_tables d ON d.relation = t.tgrelid
                      WHERE t.tgname = 'herd_shell_guard' AND NOT t.tgisinternal LOOP
          EXECUTE format('DROP TRIGGER herd_shell_guard ON %s', shell);
          PERFORM herd.mark_shell(shell);
        END LOOP;
      END $convert$`);
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    logger.warn("could not prepare internal shell triggers; shells keep ordinary ones", {
      error: errorMessage(error),
    });
  } finally {
    client.release();
  }
}
