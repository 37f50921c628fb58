import { createServer } from "node:net";
import { HerdError, SqlState } from "@herd/shared";

/**
 * Where a local cluster listens. The coordinator has the SQL and admin ports; its own PostgreSQL
 * takes SQL+1 and worker i's PostgreSQL SQL+1+i; worker i's probe server takes admin+i.
 * With the defaults: SQL 6432, metadata PostgreSQL 6433, workers 6434…; admin 6480, probes 6481….
 */
export interface PortLayout {
  readonly sqlPort: number;
  readonly adminPort: number;
  pgPort(ordinal: number): number;
  probePort(ordinal: number): number;
  all(workers: number): number[];
}

export function portLayout(sqlPort: number, adminPort: number): PortLayout {
  return {
    sqlPort,
    adminPort,
    pgPort: (ordinal) => sqlPort + 1 + ordinal,
    probePort: (ordinal) => adminPort + ordinal,
    all(workers) {
      const ports = [sqlPort];
      for (let ordinal = 0; ordinal <= workers; ordinal += 1) ports.push(this.pgPort(ordinal), this.probePort(ordinal));
      return [...new Set(ports)].sort((a, b) => a - b);
    },
  };
}

/** Fails with one clear error naming every port of the layout that is taken or out of range. */
export async function assertPortsFree(layout: PortLayout, workers: number, host = "127.0.0.1"): Promise<void> {
  const ports = layout.all(workers);
  if (ports.length !== 1 + 2 * (workers + 1)) {
    throw new HerdError(
      `the SQL port range and the admin port range overlap (--port ${layout.sqlPort}, --admin-port ${layout.adminPort})`,
      {
        sqlState: SqlState.invalidParameterValue,
        hint: `herd up uses ports ${layout.sqlPort}-${layout.pgPort(workers)} and ${layout.adminPort}-${layout.probePort(workers)}.`,
      },
    );
  }
  const taken: number[] = [];
  for (const port of ports) {
    if (port > 65535 || !(await isFree(port, host))) taken.push(port);
  }
  if (taken.length > 0) {
    throw new HerdError(
      `port${taken.length > 1 ? "s" : ""} ${taken.join(", ")} ${taken.length > 1 ? "are" : "is"} not available on ${host}`,
      {
        sqlState: SqlState.objectInUse,
        hint: `herd up needs ports ${layout.sqlPort}-${layout.pgPort(workers)} and ${layout.adminPort}-${layout.probePort(workers)}; choose others with --port and --admin-port.`,
      },
    );
  }
}

function isFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}
