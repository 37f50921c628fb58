import pg from "pg";

/**
 * What a failed test leaves behind on each server of a `herd up` cluster, for its failure report:
 * the sessions not idle (what they wait for and who blocks them), prepared transactions and
 * replication slots. A hang shows here as a wait and its blocker; the logs only show what herd
 * did last. Servers that do not answer within 2 s say so.
 */
export async function serverStates(
  sqlPort: number,
  internalPassword: string,
  ordinals: readonly number[],
): Promise<string> {
  const parts = await Promise.all(ordinals.map((ordinal) => stateOf(sqlPort + 1 + ordinal, internalPassword, ordinal)));
  return parts.join("\n");
}

const STATE_SQL = `
SELECT 'session ' || pid || ' ' || coalesce(nullif(application_name, ''), backend_type) || ' ' || coalesce(state, '-') ||
       ' wait=' || coalesce(wait_event_type || ':' || wait_event, '-') ||
       ' blocked_by=' || coalesce(nullif(array_to_string(pg_blocking_pids(pid), ','), ''), '-') ||
       ' xact=' || coalesce(round(extract(epoch FROM now() - xact_start))::text || 's', '-') ||
       ' ' || left(regexp_replace(query, '\\s+', ' ', 'g'), 200)
  FROM pg_stat_activity
 WHERE pid <> pg_backend_pid() AND backend_type IN ('client backend', 'logical replication worker', 'walsender')
   AND (state IS DISTINCT FROM 'idle' OR xact_start IS NOT NULL)
UNION ALL
SELECT 'prepared ' || gid || ' ' || round(extract(epoch FROM now() - prepared)) || 's' FROM pg_prepared_xacts
UNION ALL
SELECT 'slot ' || slot_name || ' ' || slot_type || ' active=' || active FROM pg_replication_slots`;

async function stateOf(port: number, password: string, ordinal: number): Promise<string> {
  const client = new pg.Client({
    host: "127.0.0.1",
    port,
    user: "postgres",
    password,
    database: "postgres",
    application_name: "herd-test-report",
    connectionTimeoutMillis: 2_000,
    statement_timeout: 2_000,
  });
  try {
    await client.connect();
    const { rows } = await client.query<{ line: string }>(`SELECT line FROM (${STATE_SQL}) AS states (line)`);
    const lines = rows.map((row) => `  ${row.line}`);
    return `server of ordinal ${ordinal} (port ${port}):\n${lines.join("\n") || "  nothing running, prepared or replicating"}`;
  } catch (error) {
    return `server of ordinal ${ordinal} (port ${port}): ${(error as Error).message}`;
  } finally {
    await client.end().catch(() => {});
  }
}
