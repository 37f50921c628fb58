import { createHmac } from "node:crypto";
import { Defaults } from "@herd/shared";
import type pg from "pg";
import type { LoginCredential } from "../protocol/client-session.js";
import { makeVerifier, parseVerifierText, verifierText } from "../protocol/scram.js";

/**
 * The credentials herd's own connections use, none of them the application's password.
 *
 * - The internal password (generated at cluster creation, kept in `cluster.json` by `herd up` and
 *   in the chart's Secret) is the superuser `postgres`'s on every PostgreSQL of the cluster.
 * - Every other role gets, on the workers only, a password derived from it
 *   (HMAC-SHA-256(internal password, role name)): herd opens a session's worker connections as
 *   the session's own role with it, so the worker's PostgreSQL checks privileges and row-level
 *   security itself, and no one who knows a role's application password can log in to a worker.
 * - The SQL user `postgres` logs in to the SQL port with the cluster's SQL password (HERD_PASSWORD),
 *   checked by herd: rotating it needs no change in PostgreSQL. Every other role logs in with the
 *   password the coordinator's PostgreSQL holds for it (CREATE ROLE … PASSWORD), as in PostgreSQL.
 */
export class ClusterCredentials {
  private readonly sqlVerifier;

  constructor(
    readonly internalPassword: string,
    sqlPassword: string,
  ) {
    this.sqlVerifier = makeVerifier(sqlPassword);
  }

  /** The password herd logs in to a worker's PostgreSQL with, as `role`. */
  workerPassword(role: string): string {
    if (role === Defaults.superuser) return this.internalPassword;
    return createHmac("sha256", this.internalPassword).update(`herd-role:${role}`).digest("base64url");
  }

  /**
   * The verifier a worker holds for `role`. Its salt is derived too, so the same role always
   * gets the same text and a sync compares texts instead of hashing again.
   */
  workerVerifier(role: string): string {
    const salt = createHmac("sha256", this.internalPassword).update(`herd-salt:${role}`).digest().subarray(0, 16);
    return verifierText(makeVerifier(this.workerPassword(role), 4096, salt));
  }

  /**
   * How `user` logs in to the SQL port: `postgres` with the SQL password (herd then logs in to its
   * PostgreSQL with the internal one); any other role with the verifier the coordinator's
   * PostgreSQL holds, whose rules (LOGIN, VALID UNTIL, CONNECTION LIMIT, pg_hba) then apply when
   * herd logs in as it. Undefined for a role without a SCRAM password, or none at all.
   */
  async login(metadata: pg.Pool, user: string): Promise<LoginCredential | undefined> {
    if (user === Defaults.superuser) {
      return { verifier: this.sqlVerifier, superuser: true, backendSecret: this.internalPassword };
    }
    const { rows } = await metadata.query<{ rolpassword: string | null; rolsuper: boolean }>(
      "SELECT rolpassword, rolsuper FROM pg_authid WHERE rolname = $1",
      [user],
    );
    const row = rows[0];
    const verifier = parseVerifierText(row?.rolpassword);
    return row && verifier ? { verifier, superuser: row.rolsuper } : undefined;
  }
}
