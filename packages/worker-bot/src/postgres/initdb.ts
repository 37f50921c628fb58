import { execFile } from "node:child_process";
import { chmod, mkdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { Defaults, HerdError, SqlState } from "@herd/shared";
import type { PgBinaries } from "./pg-binaries.js";
import { chownTree, type RunAs } from "./run-as.js";

const run = promisify(execFile);

/**
 * Every connection authenticates with SCRAM-SHA-256: as the superuser with herd's internal
 * password, or as a role with the password herd derives for it (never the application's). From
 * any address, because in Kubernetes the coordinator's Pod address changes with every restart:
 * which Pods may reach a worker's PostgreSQL is the chart's NetworkPolicy's to say (only the
 * coordinator). No physical replication connections: herd copies shards with COPY and moves them
 * with logical replication, which connects to a database like any client.
 */
const PG_HBA = `# Written by herd. Every connection authenticates with SCRAM-SHA-256; no physical replication.
local   all           all                 scram-sha-256
host    all           all   0.0.0.0/0     scram-sha-256
host    all           all   ::/0          scram-sha-256
`;

export interface InitdbOptions {
  readonly binaries: PgBinaries;
  readonly dataDir: string;
  readonly superuserPassword: string;
  readonly runAs: RunAs | undefined;
}

/**
 * Creates a new cluster at `dataDir`. initdb runs into a sibling directory that is renamed into
 * place only when complete, so a crash during initdb never leaves a half-made cluster where the
 * next start would take it for a real one.
 */
export async function initdb(options: InitdbOptions): Promise<void> {
  const { binaries, dataDir, runAs } = options;
  const staging = `${dataDir}.initdb`;
  const pwfile = join(dirname(dataDir), ".initdb-password");
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true, mode: 0o700 });
  await writeFile(pwfile, `${options.superuserPassword}\n`, { mode: 0o600 });
  try {
    if (runAs) {
      await chownTree(staging, runAs);
      await chownTree(pwfile, runAs);
    }
    await run(
      binaries.initdb,
      [
        "--pgdata",
        staging,
        "--username",
        Defaults.superuser,
        "--pwfile",
        pwfile,
        "--auth",
        "scram-sha-256",
        "--encoding",
        "UTF8",
        "--locale",
        "C",
      ],
      { uid: runAs?.uid, gid: runAs?.gid, maxBuffer: 16 * 1024 * 1024 },
    ).catch((error: { stderr?: string }) => {
      throw new HerdError(`initdb failed for ${dataDir}`, {
        sqlState: SqlState.configFileError,
        detail: error.stderr?.trim(),
      });
    });
    const hba = join(staging, "pg_hba.conf");
    await writeFile(hba, PG_HBA);
    await chmod(hba, 0o600);
    if (runAs) await chownTree(hba, runAs);
    await rename(staging, dataDir);
  } finally {
    await rm(pwfile, { force: true });
    await rm(staging, { recursive: true, force: true });
  }
}
