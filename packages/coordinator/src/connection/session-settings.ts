import type { WorkerConnection } from "./worker-connection.js";

/**
 * The session settings worker connections must share (TimeZone, DateStyle, …), with a key that
 * changes whenever a value does, so a connection that has them already is not asked again.
 */
export interface SessionSettings {
  readonly values: ReadonlyMap<string, string>;
  readonly key: string;
  /**
   * The role worker connections log in as: the session's authenticated role (its
   * session_authorization and role are among the values). Absent: herd's own work, as `postgres`.
   */
  readonly login?: string;
}

/** Gives a worker connection the session's settings (when they differ from what it has). */
export async function applySettings(connection: WorkerConnection, settings: SessionSettings): Promise<void> {
  if (connection.appliedSettings === settings.key) return;
  const entries = [...settings.values];
  const calls = entries.map((_, i) => `set_config($${2 * i + 1}, $${2 * i + 2}, false)`);
  if (calls.length > 0) await connection.query(`SELECT ${calls.join(", ")}`, entries.flat());
  connection.appliedSettings = settings.key;
}

/** Settings that say who the statements run as: herd's own work on the workers leaves them out. */
const IDENTITY_SETTINGS = new Set(["session_authorization", "role"]);

/**
 * A session's settings for work herd does for it as `postgres` (DDL on placements, after the
 * coordinator's PostgreSQL checked the session's privileges on the shell table): its other values,
 * none of its identity.
 */
export function asHerd(settings: SessionSettings): SessionSettings {
  if (settings.login === undefined) return settings;
  const values = new Map([...settings.values].filter(([name]) => !IDENTITY_SETTINGS.has(name)));
  return { values, key: `herd:${JSON.stringify([...values])}` };
}

/**
 * What herd's own work on a pooled connection (recovery, repair) runs with: no timeout a client's
 * session left on the connection.
 */
export const INTERNAL_SETTINGS: SessionSettings = {
  values: new Map([
    ["statement_timeout", "0"],
    ["lock_timeout", "0"],
  ]),
  key: "herd-internal",
};
