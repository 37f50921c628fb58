import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { HerdError, SqlState } from "@herd/shared";

export type DataDirectoryState =
  | { readonly kind: "missing" }
  | { readonly kind: "empty" }
  | { readonly kind: "initialized"; readonly majorVersion: number };

/**
 * Says whether `dir` is free for initdb or an existing cluster to start. Anything else (files
 * that are not a PostgreSQL cluster, a cluster of another major version, a cluster missing its
 * control file) is an error: herd never runs initdb over data that is already there.
 */
export async function inspectDataDirectory(dir: string, expectedMajor: number): Promise<DataDirectoryState> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { kind: "missing" };
    throw error;
  }
  if (entries.length === 0) return { kind: "empty" };
  if (!entries.includes("PG_VERSION")) {
    throw new HerdError(`${dir} is not empty and is not a PostgreSQL data directory`, {
      sqlState: SqlState.dataCorrupted,
      detail: `It holds ${entries.slice(0, 5).join(", ")}${entries.length > 5 ? ", …" : ""}.`,
      hint: "herd will not run initdb over existing files. Empty the directory or point herd at another one.",
    });
  }
  const majorVersion = Number.parseInt((await readFile(join(dir, "PG_VERSION"), "utf8")).trim(), 10);
  if (majorVersion !== expectedMajor) {
    throw new HerdError(
      `${dir} was initialized by PostgreSQL ${Number.isNaN(majorVersion) ? "(unreadable PG_VERSION)" : majorVersion}, not ${expectedMajor}`,
      { sqlState: SqlState.dataCorrupted, hint: "Upgrade it with pg_upgrade, or use another data directory." },
    );
  }
  for (const required of ["global/pg_control", "base", "pg_wal"]) {
    try {
      await stat(join(dir, required));
    } catch {
      throw new HerdError(`${dir} is damaged: ${required} is missing`, {
        sqlState: SqlState.dataCorrupted,
        hint: "Restore it from a backup or from the shard's other placement; herd will not start on it.",
      });
    }
  }
  return { kind: "initialized", majorVersion };
}
