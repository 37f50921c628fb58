import { open, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { HerdError, SqlState } from "@herd/shared";
import { isAlive } from "../postgres/postmaster-pid.js";

/** What a running `herd up` tells others about itself (`herd status` reads it). */
export interface LockInfo {
  readonly pid: number;
  readonly sqlPort: number;
  readonly adminPort: number;
  readonly workers: number;
  readonly startedAt: string;
}

const FILE = "herd.lock";

/**
 * One `herd up` per data directory. The lock file is created exclusively; one left by a process
 * that no longer runs (killed, machine restarted) is taken over.
 */
export async function acquireLock(dataDir: string, info: LockInfo): Promise<{ release(): Promise<void> }> {
  const path = join(dataDir, FILE);
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      const handle = await open(path, "wx", 0o600);
      await handle.writeFile(`${JSON.stringify(info, null, 2)}\n`);
      await handle.close();
      return { release: () => rm(path, { force: true }) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const holder = await readLock(dataDir);
    if (holder && isAlive(holder.pid)) {
      throw new HerdError(`${dataDir} is in use by another herd up (pid ${holder.pid})`, {
        sqlState: SqlState.objectInUse,
        hint: `Stop that one first, or choose another --data-dir. Its SQL port is ${holder.sqlPort}.`,
      });
    }
    await rm(path, { force: true });
  }
  throw new HerdError(`cannot lock ${dataDir}`, { sqlState: SqlState.objectInUse });
}

/** The lock of a running (or crashed) `herd up`, if any. */
export async function readLock(dataDir: string): Promise<LockInfo | undefined> {
  try {
    return JSON.parse(await readFile(join(dataDir, FILE), "utf8")) as LockInfo;
  } catch {
    return undefined;
  }
}
