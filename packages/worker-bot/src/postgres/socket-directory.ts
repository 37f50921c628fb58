import { chown, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { errorMessage, type Logger } from "@herd/shared";
import type { RunAs } from "./run-as.js";

/** Where a Unix socket path must fit: sun_path holds 108 bytes with its NUL; PostgreSQL checks 107. */
const SOCKET_PATH_MAX = 103;

export interface SocketDirectory {
  readonly path: string;
  remove(): Promise<void>;
}

/**
 * A private directory (0700, owned by the account PostgreSQL runs as) for the Unix socket of the
 * coordinator's own PostgreSQL. The coordinator talks to that server on every passthrough
 * statement and twice per distributed write; on one machine a Unix socket costs a third less
 * system time per round trip than loopback TCP. It lives in the temporary directory, not on the
 * volume: some volume types cannot hold sockets, and a data directory's path may be too long.
 * Undefined (the coordinator stays on TCP) when no such directory can be made.
 */
export async function makeSocketDirectory(
  port: number,
  runAs: RunAs | undefined,
  logger: Logger,
): Promise<SocketDirectory | undefined> {
  let path: string | undefined;
  try {
    path = await mkdtemp(join(tmpdir(), "herd-pg-"));
    if (join(path, `.s.PGSQL.${port}`).length > SOCKET_PATH_MAX) throw new Error(`${path} is too long a path`);
    if (runAs) await chown(path, runAs.uid, runAs.gid);
    const made = path;
    return { path: made, remove: () => rm(made, { recursive: true, force: true }) };
  } catch (error) {
    if (path) await rm(path, { recursive: true, force: true }).catch(() => {});
    logger.warn("no Unix socket directory for PostgreSQL; the coordinator reaches it over TCP", {
      error: errorMessage(error),
    });
    return undefined;
  }
}
