import type { WorkerConnection } from "../connection/worker-connection.js";
import { quoteIdent } from "../parser/identifiers.js";

/**
 * The schemas of distributed tables exist on the workers too (herd makes them with the first
 * shard), and statements on shards name them: a worker's schema must have the coordinator's
 * owner and privileges, or a role allowed to use the schema on the coordinator would be refused
 * on the worker (42501), or the reverse. Like roles (role-sync.ts), compared and corrected,
 * not replayed: GRANT … ON SCHEMA in a block, or schemas made before a worker joined, converge too.
 */
export interface SchemaSecurity {
  readonly owner: string;
  /** Sorted `grantee privilege grantable` lines: what the ACL allows, grantors left out. */
  readonly privileges: readonly string[];
}

type Queryable = Pick<WorkerConnection, "query">;

/** The named schemas' owners and privileges, as a server sees them (schemas it lacks are absent). */
export async function readSchemaSecurities(
  server: Queryable,
  schemas: readonly string[],
): Promise<Map<string, SchemaSecurity>> {
  if (schemas.length === 0) return new Map();
  const result = await server.query(
    `SELECT n.nspname, pg_catalog.pg_get_userbyid(n.nspowner),
            (SELECT coalesce(pg_catalog.jsonb_agg(l ORDER BY l), '[]') FROM (
               SELECT format('%s %s %s',
                        CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END,
                        a.privilege_type, a.is_grantable) AS l
                 FROM pg_catalog.aclexplode(n.nspacl) a) x)
       FROM pg_catalog.pg_namespace n
      WHERE n.nspname IN (SELECT pg_catalog.jsonb_array_elements_text($1::jsonb))`,
    [JSON.stringify(schemas)],
  );
  const text = (value: Buffer | null | undefined) => value?.toString("utf8") ?? "";
  return new Map(
    result.rows.map((row) => [
      text(row[0]),
      { owner: text(row[1]), privileges: JSON.parse(text(row[2]) || "[]") as string[] },
    ]),
  );
}

/** Statements that give a worker's schema the coordinator's owner and privileges. */
export function schemaSyncStatements(
  wanted: ReadonlyMap<string, SchemaSecurity>,
  worker: ReadonlyMap<string, SchemaSecurity>,
): string[] {
  const statements: string[] = [];
  for (const [schema, security] of wanted) {
    const theirs = worker.get(schema);
    if (!theirs) continue; // no shard there yet: made with the right privileges when one comes
    const name = quoteIdent(schema);
    if (theirs.owner !== security.owner) statements.push(`ALTER SCHEMA ${name} OWNER TO ${quoteIdent(security.owner)}`);
    if (theirs.privileges.join("\n") === security.privileges.join("\n")) continue;
    const grantees = new Set([...theirs.privileges, ...security.privileges].map((line) => line.split(" ")[0]));
    for (const grantee of grantees) statements.push(`REVOKE ALL ON SCHEMA ${name} FROM ${grantee} CASCADE`);
    for (const line of security.privileges) {
      const [grantee, privilege, grantable] = line.split(" ");
      statements.push(
        `GRANT ${privilege} ON SCHEMA ${name} TO ${grantee}${grantable === "true" ? " WITH GRANT OPTION" : ""}`,
      );
    }
  }
  return statements;
}
