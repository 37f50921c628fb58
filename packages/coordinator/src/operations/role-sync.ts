import type { ClusterCredentials } from "../connection/cluster-credentials.js";
import type { WorkerConnection } from "../connection/worker-connection.js";
import { quoteIdent, quoteLiteral } from "../parser/identifiers.js";

/**
 * Roles are cluster-wide objects of each PostgreSQL server, so the workers hold a copy of the
 * coordinator's: the same names, attributes and memberships, and (for herd's own logins as the
 * role, cluster-credentials.ts) a password of their own. Instead of replaying each CREATE ROLE,
 * ALTER ROLE, GRANT role or DROP ROLE statement, herd compares what a worker has with what the
 * coordinator has and sends the difference: one mechanism for a role statement (in the
 * statement's own distributed transaction), a worker that joins later, and a statement herd did
 * not see (a role made inside a DO block): the periodic pass catches those.
 *
 * Left to the coordinator only: the application passwords, VALID UNTIL and CONNECTION LIMIT
 * (they govern logging in to the SQL port, which the coordinator's PostgreSQL checks), and
 * per-role settings (ALTER ROLE … SET; a session's values reach the workers as its settings).
 * Roles PostgreSQL creates itself (oid below 16384: `postgres`, the `pg_*` roles) are never
 * touched; memberships in them are copied.
 */

/** The role attributes a worker must share with the coordinator. */
const ATTRIBUTES = [
  ["rolsuper", "SUPERUSER"],
  ["rolinherit", "INHERIT"],
  ["rolcreaterole", "CREATEROLE"],
  ["rolcreatedb", "CREATEDB"],
  ["rolcanlogin", "LOGIN"],
  ["rolreplication", "REPLICATION"],
  ["rolbypassrls", "BYPASSRLS"],
] as const;

interface Role {
  readonly name: string;
  /** The attribute clause, e.g. `NOSUPERUSER INHERIT … LOGIN …`. */
  readonly attributes: string;
  readonly password: string | null;
}

interface Membership {
  readonly role: string;
  readonly member: string;
  /** `ADMIN TRUE, INHERIT FALSE, SET TRUE`: the grant's options as GRANT takes them. */
  readonly options: string;
}

export interface RoleState {
  readonly roles: ReadonlyMap<string, Role>;
  readonly memberships: ReadonlyMap<string, Membership>;
}

type Queryable = Pick<WorkerConnection, "query">;

/**
 * The user-made roles and their memberships, as a server (or a transaction on it) sees them:
 * `pg_roles` (readable by any role: a session's own transaction reads the coordinator's), or
 * `pg_authid` with the passwords (a worker's, read by herd as the superuser).
 */
export async function readRoles(server: Queryable, catalog: "pg_roles" | "pg_authid"): Promise<RoleState> {
  const roles = await server.query(
    `SELECT rolname, ${ATTRIBUTES.map(([column]) => column).join(", ")}, rolpassword
       FROM pg_catalog.${catalog} WHERE oid >= 16384 ORDER BY rolname`,
  );
  const memberships = await server.query(
    `SELECT r.rolname, m.rolname, bool_or(a.admin_option), bool_or(a.inherit_option), bool_or(a.set_option)
       FROM pg_catalog.pg_auth_members a
       JOIN pg_catalog.pg_roles r ON r.oid = a.roleid
       JOIN pg_catalog.pg_roles m ON m.oid = a.member
      WHERE a.member >= 16384
      GROUP BY r.rolname, m.rolname`,
  );
  const text = (value: unknown) => (value === null || value === undefined ? null : (value as Buffer).toString("utf8"));
  const yes = (value: unknown) => text(value) === "t";
  return {
    roles: new Map(
      roles.rows.map((row) => {
        const name = text(row[0]) as string;
        const attributes = ATTRIBUTES.map(([, keyword], i) => (yes(row[i + 1]) ? keyword : `NO${keyword}`)).join(" ");
        return [name, { name, attributes, password: text(row[ATTRIBUTES.length + 1]) }];
      }),
    ),
    memberships: new Map(
      memberships.rows.map((row) => {
        const [role, member] = [text(row[0]) as string, text(row[1]) as string];
        const options = `ADMIN ${yes(row[2])}, INHERIT ${yes(row[3])}, SET ${yes(row[4])}`.toUpperCase();
        return [`${role}\u0000${member}`, { role, member, options }];
      }),
    ),
  };
}

/**
 * The statements that make a worker's roles (`worker`) what the coordinator's are (`wanted`),
 * in an order that works: roles are made before memberships name them, and memberships are
 * revoked before the roles they name are dropped.
 */
export function roleSyncStatements(wanted: RoleState, worker: RoleState, credentials: ClusterCredentials): string[] {
  const statements: string[] = [];
  for (const role of wanted.roles.values()) {
    const verifier = credentials.workerVerifier(role.name);
    const theirs = worker.roles.get(role.name);
    if (theirs && theirs.attributes === role.attributes && theirs.password === verifier) continue;
    const verb = theirs ? "ALTER" : "CREATE";
    statements.push(`${verb} ROLE ${quoteIdent(role.name)} WITH ${role.attributes} PASSWORD ${quoteLiteral(verifier)}`);
  }
  for (const [key, grant] of worker.memberships) {
    if (wanted.memberships.get(key)?.options === grant.options) continue;
    statements.push(`REVOKE ${quoteIdent(grant.role)} FROM ${quoteIdent(grant.member)} CASCADE`);
  }
  for (const [key, grant] of wanted.memberships) {
    if (worker.memberships.get(key)?.options === grant.options) continue;
    statements.push(`GRANT ${quoteIdent(grant.role)} TO ${quoteIdent(grant.member)} WITH ${grant.options}`);
  }
  for (const name of worker.roles.keys()) {
    if (!wanted.roles.has(name)) statements.push(`DROP ROLE ${quoteIdent(name)}`);
  }
  return statements;
}

/** Makes one worker's roles the coordinator's; resolves with how many statements it took. */
export async function syncRoles(
  wanted: RoleState,
  worker: WorkerConnection,
  credentials: ClusterCredentials,
): Promise<number> {
  const statements = roleSyncStatements(wanted, await readRoles(worker, "pg_authid"), credentials);
  for (const sql of statements) await worker.query(sql);
  return statements.length;
}
