import { existsSync } from "node:fs";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";

/**
 * A fresh directory on tmpfs (/dev/shm when present: PostgreSQL servers start in well under a
 * second there), removed by `remove()` (kept when HERD_KEEP_SCRATCH is set, to read the logs of a
 * failed run).
 */
export async function scratchDir(prefix: string): Promise<{ path: string; remove(): Promise<void> }> {
  const root = existsSync("/dev/shm") ? "/dev/shm" : (process.env.TMPDIR ?? "/tmp");
  const path = await mkdtemp(join(root, `herd-${prefix}-`));
  // mkdtemp makes it 0700; PostgreSQL runs as an unprivileged user when we are root
  await chmod(path, 0o755);
  return {
    path,
    remove: async () => {
      if (!process.env.HERD_KEEP_SCRATCH) await rm(path, { recursive: true, force: true });
    },
  };
}
