import { resolve } from "node:path";
import { HerdError, type NodeListJson, SqlState } from "@herd/shared";
import { readClusterFile } from "./cluster-file.js";
import { readLock } from "./data-dir-lock.js";
import { printTable } from "./text-table.js";

export interface StatusOptions {
  readonly dataDir: string;
  readonly adminUrl: string | undefined;
  readonly token: string | undefined;
}

/** `herd status`: the coordinator's readiness and its nodes, from the admin API. */
export async function statusCommand(options: StatusOptions, say: (line: string) => void): Promise<number> {
  const { adminUrl, token } = await adminTarget(options);
  const ready = await fetch(new URL("/readyz", adminUrl), { signal: AbortSignal.timeout(5_000) }).catch(
    () => undefined,
  );
  if (!ready) {
    throw new HerdError(`no coordinator answers at ${adminUrl}`, { sqlState: SqlState.connectionFailure });
  }
  const response = await fetch(new URL("/v1/nodes", adminUrl), {
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(5_000),
  });
  if (!response.ok) {
    throw new HerdError(`the coordinator answered ${response.status} for /v1/nodes`, {
      sqlState: SqlState.invalidAuthorizationSpecification,
      detail: await response.text(),
    });
  }
  const { nodes } = (await response.json()) as NodeListJson;
  say(`coordinator ${adminUrl}: ${ready.ok ? "ready" : "not ready"}`);
  const rows = [
    ["ID", "NAME", "HOST", "PORT", "STATE", "PLACEMENTS"],
    ...nodes.map((n) => [
      String(n.id),
      n.name,
      n.host,
      String(n.port),
      n.state,
      n.placements.stale > 0
        ? `${n.placements.active} active, ${n.placements.stale} stale`
        : String(n.placements.active),
    ]),
  ];
  printTable(rows, say);
  if (nodes.length === 0) say("(no workers registered)");
  return ready.ok && nodes.every((node) => node.state === "active") ? 0 : 1;
}

export async function adminTarget(options: StatusOptions): Promise<{ adminUrl: string; token: string }> {
  const token = options.token ?? process.env.HERD_ADMIN_TOKEN;
  if (options.adminUrl) {
    if (!token)
      throw new HerdError("--token (or HERD_ADMIN_TOKEN) is required with --admin-url", {
        sqlState: SqlState.invalidParameterValue,
      });
    return { adminUrl: options.adminUrl, token };
  }
  const dataDir = resolve(options.dataDir);
  const lock = await readLock(dataDir);
  if (!lock) {
    throw new HerdError(`no herd up is running in ${dataDir}`, {
      sqlState: SqlState.connectionFailure,
      hint: "Start one with `herd up`, or pass --data-dir, or --admin-url and --token.",
    });
  }
  const fileToken = token ?? (await readClusterFile(dataDir))?.adminToken;
  if (!fileToken)
    throw new HerdError(`${dataDir}/cluster.json is missing; pass --token`, {
      sqlState: SqlState.invalidParameterValue,
    });
  return { adminUrl: `http://127.0.0.1:${lock.adminPort}`, token: fileToken };
}
