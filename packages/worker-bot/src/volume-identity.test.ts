import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HerdError } from "@herd/shared";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { claimVolume } from "./volume-identity.js";

let volume: string;

beforeEach(async () => {
  volume = await mkdtemp(join(tmpdir(), "herd-volume-"));
});

afterEach(async () => {
  await rm(volume, { recursive: true, force: true });
});

async function rejection(promise: Promise<unknown>): Promise<HerdError> {
  const error = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(error).toBeInstanceOf(HerdError);
  return error as HerdError;
}

const stamp = () => readFile(join(volume, "herd-node.json"), "utf8");

describe("claimVolume", () => {
  it("stamps a fresh volume with herd-node.json", async () => {
    const identity = await claimVolume(volume, "db/herd", "herd-1");
    expect(identity.clusterId).toBe("db/herd");
    expect(identity.podName).toBe("herd-1");
    expect(new Date(identity.createdAt).toISOString()).toBe(identity.createdAt);
    expect(JSON.parse(await stamp())).toEqual(identity);
  });

  it("returns the same identity to the same cluster and pod, leaving the file alone", async () => {
    const first = await claimVolume(volume, "db/herd", "herd-1");
    const written = await stamp();
    const again = await claimVolume(volume, "db/herd", "herd-1");
    expect(again).toEqual(first);
    expect(await stamp()).toBe(written);
  });

  it("refuses another cluster", async () => {
    await claimVolume(volume, "db/herd", "herd-1");
    const error = await rejection(claimVolume(volume, "other/herd", "herd-1"));
    expect(error.sqlState).toBe("55006");
    expect(error.message).toBe(`the volume ${volume} belongs to herd-1 of cluster "db/herd"`);
    expect(error.detail).toBe('This is herd-1 of cluster "other/herd".');
  });

  it("refuses another pod of the same cluster", async () => {
    await claimVolume(volume, "db/herd", "herd-1");
    const error = await rejection(claimVolume(volume, "db/herd", "herd-2"));
    expect(error.sqlState).toBe("55006");
    expect(error.message).toContain("belongs to herd-1");
    expect(JSON.parse(await stamp()).podName).toBe("herd-1");
  });

  it("refuses a PostgreSQL data directory it did not stamp, and writes nothing", async () => {
    await mkdir(join(volume, "pgdata"));
    const error = await rejection(claimVolume(volume, "db/herd", "herd-1"));
    expect(error.sqlState).toBe("55006");
    expect(error.message).toBe(`${volume} holds a PostgreSQL data directory that herd did not create`);
    expect(error.hint).toContain('{"clusterId": "db/herd", "podName": "herd-1"}');
    await expect(stamp()).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("accepts a stamp written by hand beside an existing data directory", async () => {
    await mkdir(join(volume, "pgdata"));
    await writeFile(join(volume, "herd-node.json"), '{"clusterId": "db/herd", "podName": "herd-1"}');
    await expect(claimVolume(volume, "db/herd", "herd-1")).resolves.toMatchObject({
      clusterId: "db/herd",
      podName: "herd-1",
    });
  });

  it("refuses an unreadable stamp as corrupted", async () => {
    await writeFile(join(volume, "herd-node.json"), "{not json");
    const error = await rejection(claimVolume(volume, "db/herd", "herd-1"));
    expect(error.sqlState).toBe("XX001");
    expect(error.message).toBe(`${join(volume, "herd-node.json")} is unreadable or not a herd volume identity`);
  });

  it("refuses a stamp that is valid JSON but not an identity, instead of overwriting it", async () => {
    await writeFile(join(volume, "herd-node.json"), "null");
    const error = await rejection(claimVolume(volume, "db/herd", "herd-1"));
    expect(error.sqlState).toBe("XX001");
    expect(await readFile(join(volume, "herd-node.json"), "utf8")).toBe("null");
  });
});
