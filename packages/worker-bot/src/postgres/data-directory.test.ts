import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HerdError } from "@herd/shared";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { inspectDataDirectory } from "./data-directory.js";

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "herd-data-directory-"));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A data directory that looks like one initdb of `version` left. */
async function fakeCluster(version: string, leaveOut: string[] = []): Promise<void> {
  await writeFile(join(dir, "PG_VERSION"), `${version}\n`);
  if (!leaveOut.includes("global/pg_control")) {
    await mkdir(join(dir, "global"));
    await writeFile(join(dir, "global", "pg_control"), "");
  }
  if (!leaveOut.includes("base")) await mkdir(join(dir, "base"));
  if (!leaveOut.includes("pg_wal")) await mkdir(join(dir, "pg_wal"));
}

async function rejection(promise: Promise<unknown>): Promise<HerdError> {
  const error = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(error).toBeInstanceOf(HerdError);
  return error as HerdError;
}

describe("inspectDataDirectory", () => {
  it("reports a directory that does not exist as missing", async () => {
    await expect(inspectDataDirectory(join(dir, "nope"), 18)).resolves.toEqual({ kind: "missing" });
  });

  it("reports an empty directory as empty", async () => {
    await expect(inspectDataDirectory(dir, 18)).resolves.toEqual({ kind: "empty" });
  });

  it("refuses a directory of other files, naming them", async () => {
    await writeFile(join(dir, "notes.txt"), "hello");
    await mkdir(join(dir, "photos"));
    const error = await rejection(inspectDataDirectory(dir, 18));
    expect(error.sqlState).toBe("XX001");
    expect(error.message).toBe(`${dir} is not empty and is not a PostgreSQL data directory`);
    expect(error.detail).toContain("notes.txt");
    expect(error.detail).toContain("photos");
    expect(error.hint).toContain("will not run initdb");
  });

  it("names at most five of many files", async () => {
    for (let i = 0; i < 7; i += 1) await writeFile(join(dir, `file-${i}`), "");
    const error = await rejection(inspectDataDirectory(dir, 18));
    expect(error.detail).toMatch(/^It holds (file-\d, ){5}…\.$/);
  });

  it("refuses a cluster of another major version", async () => {
    await fakeCluster("16");
    const error = await rejection(inspectDataDirectory(dir, 18));
    expect(error.sqlState).toBe("XX001");
    expect(error.message).toBe(`${dir} was initialized by PostgreSQL 16, not 18`);
    expect(error.hint).toContain("pg_upgrade");
  });

  it("refuses an unreadable PG_VERSION", async () => {
    await fakeCluster("garbage");
    const error = await rejection(inspectDataDirectory(dir, 18));
    expect(error.sqlState).toBe("XX001");
    expect(error.message).toBe(`${dir} was initialized by PostgreSQL (unreadable PG_VERSION), not 18`);
  });

  it.each(["global/pg_control", "base", "pg_wal"])("refuses a cluster missing %s as damaged", async (missing) => {
    await fakeCluster("18", [missing]);
    const error = await rejection(inspectDataDirectory(dir, 18));
    expect(error.sqlState).toBe("XX001");
    expect(error.message).toBe(`${dir} is damaged: ${missing} is missing`);
  });

  it("refuses a PG_VERSION alone as damaged", async () => {
    await writeFile(join(dir, "PG_VERSION"), "18\n");
    const error = await rejection(inspectDataDirectory(dir, 18));
    expect(error.message).toContain("damaged");
  });

  it("reports a complete cluster of the expected version as initialized", async () => {
    await fakeCluster("18");
    await expect(inspectDataDirectory(dir, 18)).resolves.toEqual({ kind: "initialized", majorVersion: 18 });
  });

  it("reads PG_VERSION without its trailing newline", async () => {
    await fakeCluster("17");
    await expect(inspectDataDirectory(dir, 17)).resolves.toEqual({ kind: "initialized", majorVersion: 17 });
  });
});
