import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HerdError } from "@herd/shared";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { acquireLock, type LockInfo, readLock } from "./data-dir-lock.js";

let dataDir: string;

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "herd-lock-"));
});

afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

const info = (pid: number, sqlPort = 6432): LockInfo => ({
  pid,
  sqlPort,
  adminPort: 6480,
  workers: 3,
  startedAt: "2026-01-01T00:00:00.000Z",
});

const lockPath = () => join(dataDir, "herd.lock");

/** The pid of a process that has run and exited (and been reaped). */
function exitedPid(): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn("true", { stdio: "ignore" });
    child.once("error", reject);
    child.once("exit", () => {
      if (child.pid === undefined) reject(new Error("spawn gave no pid"));
      else resolve(child.pid);
    });
  });
}

describe("acquireLock", () => {
  it("creates herd.lock holding the lock info, readable only by its owner", async () => {
    await acquireLock(dataDir, info(process.pid));
    expect(JSON.parse(await readFile(lockPath(), "utf8"))).toEqual(info(process.pid));
    expect((await stat(lockPath())).mode & 0o777).toBe(0o600);
  });

  it("refuses a second herd up while the holder is alive", async () => {
    await acquireLock(dataDir, info(process.pid, 7000));
    const error = await acquireLock(dataDir, info(process.pid, 8000)).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(error).toBeInstanceOf(HerdError);
    expect((error as HerdError).sqlState).toBe("55006");
    expect((error as HerdError).message).toBe(`${dataDir} is in use by another herd up (pid ${process.pid})`);
    expect((error as HerdError).hint).toContain("Its SQL port is 7000");
    // the holder's lock is untouched
    expect(await readLock(dataDir)).toEqual(info(process.pid, 7000));
  });

  it("takes over a lock left by a process that has exited", async () => {
    const stale = await exitedPid();
    await writeFile(lockPath(), JSON.stringify(info(stale)));
    await acquireLock(dataDir, info(process.pid));
    expect(await readLock(dataDir)).toEqual(info(process.pid));
  });

  it("takes over an unreadable lock file", async () => {
    await writeFile(lockPath(), "not json");
    await acquireLock(dataDir, info(process.pid));
    expect(await readLock(dataDir)).toEqual(info(process.pid));
  });

  it("removes the lock on release, so the next herd up can take it", async () => {
    const lock = await acquireLock(dataDir, info(process.pid));
    await lock.release();
    await expect(stat(lockPath())).rejects.toMatchObject({ code: "ENOENT" });
    expect(await readLock(dataDir)).toBeUndefined();
    const again = await acquireLock(dataDir, info(process.pid, 9000));
    expect(await readLock(dataDir)).toEqual(info(process.pid, 9000));
    await again.release();
  });

  it("does not mind a release after the file is gone", async () => {
    const lock = await acquireLock(dataDir, info(process.pid));
    await rm(lockPath());
    await expect(lock.release()).resolves.toBeUndefined();
  });

  it("fails with the file system's error when the directory does not exist", async () => {
    await expect(acquireLock(join(dataDir, "missing"), info(process.pid))).rejects.toMatchObject({ code: "ENOENT" });
  });
});

describe("readLock", () => {
  it("is undefined without a lock file", async () => {
    expect(await readLock(dataDir)).toBeUndefined();
  });

  it("is undefined for a lock file that is not JSON", async () => {
    await writeFile(lockPath(), "{");
    expect(await readLock(dataDir)).toBeUndefined();
  });

  it("reads the info of the holder", async () => {
    await acquireLock(dataDir, info(process.pid));
    expect(await readLock(dataDir)).toEqual(info(process.pid));
  });
});
