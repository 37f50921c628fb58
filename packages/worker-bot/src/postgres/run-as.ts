import { readFileSync } from "node:fs";
import { chown, lstat, readdir, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { HerdError, SqlState } from "@herd/shared";

/** The unprivileged account PostgreSQL runs as when herd itself runs as root. */
export interface RunAs {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/**
 * PostgreSQL refuses to run as root. When we are root (a container's PID 1, or CI), PostgreSQL
 * runs as `HERD_PG_USER`, else `postgres`, else `nobody`. Returns undefined when we are not root:
 * then PostgreSQL runs as we do.
 */
export function resolveRunAs(env: NodeJS.ProcessEnv = process.env): RunAs | undefined {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) return undefined;
  const accounts = readPasswd();
  const wanted = env.HERD_PG_USER ? [env.HERD_PG_USER] : ["postgres", "nobody"];
  for (const name of wanted) {
    const account = accounts.get(name);
    if (account && account.uid !== 0) return account;
  }
  throw new HerdError(`running as root, and no unprivileged account (${wanted.join(", ")}) to run PostgreSQL as`, {
    sqlState: SqlState.configFileError,
    hint: "Set HERD_PG_USER to an existing non-root user.",
  });
}

function readPasswd(): Map<string, RunAs> {
  const accounts = new Map<string, RunAs>();
  for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
    const [name, , uid, gid] = line.split(":");
    if (name && uid && gid) accounts.set(name, { name, uid: Number(uid), gid: Number(gid) });
  }
  return accounts;
}

/** Makes `path` and everything below it owned by `runAs` (only where it is not already). */
export async function chownTree(path: string, runAs: RunAs): Promise<void> {
  const info = await lstat(path);
  if (info.uid !== runAs.uid || info.gid !== runAs.gid) await chown(path, runAs.uid, runAs.gid);
  if (!info.isDirectory()) return;
  for (const entry of await readdir(path)) await chownTree(join(path, entry), runAs);
}

/**
 * Checks that `runAs` may walk down to `dir`: a data directory under /root (mode 700) cannot be
 * reached by the postgres account, and PostgreSQL's own error for that is obscure.
 */
export async function assertTraversable(dir: string, runAs: RunAs): Promise<void> {
  for (let current = dirname(dir); ; current = dirname(current)) {
    const info = await stat(current);
    const mode = info.mode;
    const allowed = info.uid === runAs.uid ? mode & 0o100 : info.gid === runAs.gid ? mode & 0o010 : mode & 0o001;
    if (!allowed) {
      throw new HerdError(`PostgreSQL runs as "${runAs.name}", which cannot enter ${current}`, {
        sqlState: SqlState.configFileError,
        hint: `Put the data directory somewhere "${runAs.name}" can reach (e.g. under /var/lib or /tmp), or run herd as a non-root user.`,
      });
    }
    if (current === dirname(current)) return;
  }
}
