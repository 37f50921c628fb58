import { access, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { HerdError, SqlState } from "@herd/shared";

export interface VolumeIdentity {
  readonly clusterId: string;
  readonly podName: string;
  readonly createdAt: string;
}

const FILE = "herd-node.json";

/**
 * Stamps a pod's volume with the cluster and pod it belongs to, and refuses a volume stamped for
 * another: a PVC re-attached to the wrong pod, or a data directory from another cluster, would
 * otherwise serve someone else's shards under this node's name.
 */
export async function claimVolume(volumeDir: string, clusterId: string, podName: string): Promise<VolumeIdentity> {
  const path = join(volumeDir, FILE);
  let existing: VolumeIdentity | undefined;
  try {
    existing = parseIdentity(await readFile(path, "utf8"));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") {
      throw new HerdError(`${path} is unreadable or not a herd volume identity`, {
        sqlState: SqlState.dataCorrupted,
        cause: error,
        hint: "Restore the file, or remove it together with the volume's data if the data is not needed.",
      });
    }
  }
  if (existing) {
    if (existing.clusterId !== clusterId || existing.podName !== podName) {
      throw new HerdError(`the volume ${volumeDir} belongs to ${existing.podName} of cluster "${existing.clusterId}"`, {
        sqlState: SqlState.objectInUse,
        detail: `This is ${podName} of cluster "${clusterId}".`,
        hint: "Give this node its own volume; herd will not serve another node's data.",
      });
    }
    return existing;
  }
  if (await exists(join(volumeDir, "pgdata"))) {
    throw new HerdError(`${volumeDir} holds a PostgreSQL data directory that herd did not create`, {
      sqlState: SqlState.objectInUse,
      hint: `If it really is ${podName}'s data, create ${path} with {"clusterId": "${clusterId}", "podName": "${podName}"}.`,
    });
  }
  const identity: VolumeIdentity = { clusterId, podName, createdAt: new Date().toISOString() };
  await writeFile(path, `${JSON.stringify(identity, null, 2)}\n`);
  return identity;
}

function parseIdentity(text: string): VolumeIdentity {
  const value = JSON.parse(text) as Partial<VolumeIdentity> | null;
  if (typeof value?.clusterId !== "string" || typeof value.podName !== "string") {
    throw new Error("clusterId and podName are required");
  }
  return value as VolumeIdentity;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
