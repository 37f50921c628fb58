import { randomBytes, randomUUID } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** `<data-dir>/cluster.json`: what makes a local cluster the same cluster after a restart. */
export interface ClusterFile {
  readonly clusterId: string;
  /** The generated admin token (absent when HERD_ADMIN_TOKEN was set at creation). */
  readonly adminToken: string;
  /** herd's own password: the superuser's on every PostgreSQL of the cluster (never shown). */
  readonly internalPassword: string;
  readonly createdAt: string;
}

/** Reads the cluster file, creating it (with a new id and admin token) the first time. */
export async function loadOrCreateClusterFile(dataDir: string): Promise<{ file: ClusterFile; created: boolean }> {
  const path = join(dataDir, "cluster.json");
  try {
    const file = JSON.parse(await readFile(path, "utf8")) as Partial<ClusterFile> &
      Omit<ClusterFile, "internalPassword">;
    if (file.internalPassword) return { file: file as ClusterFile, created: false };
    // made before herd had an internal password: give it one (the bots adopt it at their start)
    const upgraded: ClusterFile = { ...file, internalPassword: newSecret() };
    await writeFile(path, `${JSON.stringify(upgraded, null, 2)}\n`, { mode: 0o600 });
    return { file: upgraded, created: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  const file: ClusterFile = {
    clusterId: randomUUID(),
    adminToken: randomBytes(24).toString("base64url"),
    internalPassword: newSecret(),
    createdAt: new Date().toISOString(),
  };
  // 0600: the file holds the admin token and the internal password
  await writeFile(path, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600, flag: "wx" });
  return { file, created: true };
}

/** The cluster file of `dataDir`, or undefined when there is none. */
export async function readClusterFile(dataDir: string): Promise<ClusterFile | undefined> {
  try {
    return JSON.parse(await readFile(join(dataDir, "cluster.json"), "utf8")) as ClusterFile;
  } catch {
    return undefined;
  }
}

function newSecret(): string {
  return randomBytes(32).toString("base64url");
}
