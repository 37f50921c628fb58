import { HerdError, SqlState } from "@herd/shared";
import { adminTarget, type StatusOptions } from "./status-command.js";
import { printTable } from "./text-table.js";

/** Where the admin API is: a running `herd up`'s data directory, or --admin-url and --token. */
export type AdminOptions = StatusOptions;

export interface ShardsOptions extends AdminOptions {
  readonly table: string | undefined;
}

export interface RebalanceOptions extends AdminOptions {
  readonly dryRun: boolean;
  readonly strategy: "by_shard_count" | "by_disk_size";
}

export interface DrainOptions extends AdminOptions {
  /** A node's id or name. */
  readonly node: string;
}

interface Job {
  id: number;
  kind: string;
  state: string;
  movesTotal: number;
  movesDone: number;
  bytesCopied: number;
  error: string | null;
}

type Say = (line: string) => void;

/** `herd shards`: every shard (of one table with --table), its hash range and placements. */
export async function shardsCommand(options: ShardsOptions, say: Say): Promise<number> {
  const api = await client(options);
  const rows: string[][] = [["SHARD", "TABLE", "RANGE", "PLACEMENTS"]];
  for (let offset = 0; ; offset += 1000) {
    const query = new URLSearchParams({ offset: String(offset), limit: "1000" });
    if (options.table) query.set("table", options.table);
    const page = (await api.get(`/v1/shards?${query}`)) as {
      shards: {
        id: number;
        table: string;
        minValue: number | null;
        maxValue: number | null;
        placements: { node: string; state: string; bytes: number | null }[];
      }[];
      total: number;
    };
    for (const shard of page.shards) {
      rows.push([
        String(shard.id),
        shard.table,
        shard.minValue === null ? "(reference)" : `${shard.minValue} … ${shard.maxValue}`,
        shard.placements
          .map((p) => `${p.node}${p.state === "active" ? "" : ` (${p.state})`} ${size(p.bytes)}`)
          .join(", "),
      ]);
    }
    if (offset + 1000 >= page.total) break;
  }
  printTable(rows, say);
  if (rows.length === 1) say("(no distributed or reference tables)");
  return 0;
}

/** `herd rebalance`: the plan (--dry-run), or a rebalance job followed to its end. */
export async function rebalanceCommand(options: RebalanceOptions, say: Say): Promise<number> {
  const api = await client(options);
  if (options.dryRun) {
    const plan = (await api.post("/v1/rebalance", { dryRun: true, strategy: options.strategy })) as {
      moves: { shardId: number; shardIds: number[]; from: number; to: number }[];
    };
    const names = await nodeNames(api);
    if (plan.moves.length === 0) say("the shards are even: nothing to move");
    for (const move of plan.moves) {
      say(
        `move shard ${move.shardId} (${move.shardIds.length} colocated) from ${names.get(move.from)} to ${names.get(move.to)}`,
      );
    }
    return 0;
  }
  const job = (await api.post("/v1/rebalance", { strategy: options.strategy })) as Job;
  return follow(api, job, say);
}

/** `herd drain <node>`: every placement off the node, as a job followed to its end. */
export async function drainCommand(options: DrainOptions, say: Say): Promise<number> {
  const api = await client(options);
  const names = await nodeNames(api);
  const id = [...names].find(([nodeId, name]) => name === options.node || String(nodeId) === options.node)?.[0];
  if (id === undefined) {
    throw new HerdError(`no worker node is called ${options.node}`, {
      sqlState: SqlState.invalidParameterValue,
      hint: "`herd status` lists the nodes with their ids and names.",
    });
  }
  const job = (await api.post(`/v1/nodes/${id}/drain`, {})) as Job;
  const code = await follow(api, job, say);
  if (code === 0)
    say(`${names.get(id)} holds nothing now; remove it with DELETE /v1/nodes/${id} once its tables are dropped`);
  return code;
}

/** Polls a job until it ends: a progress bar on a terminal, a line per change otherwise. */
async function follow(api: Api, started: Job, say: Say): Promise<number> {
  const tty = process.stdout.isTTY === true;
  let last = "";
  let job = started;
  for (;;) {
    const line = `${job.kind} job ${job.id}: ${job.movesDone}/${job.movesTotal} moves, ${size(job.bytesCopied)} copied`;
    if (tty) {
      const width = 30;
      const done = job.movesTotal === 0 ? width : Math.round((job.movesDone / job.movesTotal) * width);
      process.stdout.write(`\r[${"#".repeat(done)}${".".repeat(width - done)}] ${line}   `);
    } else if (line !== last) say(line);
    last = line;
    if (job.state !== "running" && job.state !== "cancelling") break;
    await new Promise((resolve) => setTimeout(resolve, 500));
    job = (await api.get(`/v1/jobs/${job.id}`)) as Job;
  }
  if (tty) process.stdout.write("\n");
  say(`${job.kind} job ${job.id} ${job.state}${job.error ? `: ${job.error}` : ""}`);
  return job.state === "done" ? 0 : 1;
}

interface Api {
  get(path: string): Promise<unknown>;
  post(path: string, body: unknown): Promise<unknown>;
}

async function client(options: AdminOptions): Promise<Api> {
  const { adminUrl, token } = await adminTarget(options);
  const call = async (path: string, init: RequestInit) => {
    const response = await fetch(new URL(path, adminUrl), {
      ...init,
      headers: { authorization: `Bearer ${token}`, ...(init.body ? { "content-type": "application/json" } : {}) },
      signal: AbortSignal.timeout(60_000),
    });
    const body = (await response.json().catch(() => ({}))) as { message?: string };
    if (!response.ok) {
      throw new HerdError(body.message ?? `the coordinator answered ${response.status} for ${path}`, {
        sqlState: response.status === 409 ? SqlState.objectInUse : SqlState.invalidParameterValue,
      });
    }
    return body;
  };
  return {
    get: (path) => call(path, { method: "GET" }),
    post: (path, body) => call(path, { method: "POST", body: JSON.stringify(body) }),
  };
}

async function nodeNames(api: Api): Promise<Map<number, string>> {
  const { nodes } = (await api.get("/v1/nodes")) as { nodes: { id: number; name: string }[] };
  return new Map(nodes.map((node) => [node.id, node.name]));
}

function size(bytes: number | null): string {
  if (bytes === null) return "?";
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} kB`;
  return `${(bytes / 2 ** 20).toFixed(1)} MB`;
}
