import { parseArgs } from "node:util";
import { Defaults, HerdError, SqlState } from "@herd/shared";
import type { DrainOptions, RebalanceOptions, ShardsOptions } from "./placement-commands.js";
import type { StatusOptions } from "./status-command.js";
import type { UpOptions } from "./up-command.js";

export type CliCommand =
  | { readonly kind: "up"; readonly options: UpOptions }
  | { readonly kind: "status"; readonly options: StatusOptions }
  | { readonly kind: "shards"; readonly options: ShardsOptions }
  | { readonly kind: "rebalance"; readonly options: RebalanceOptions }
  | { readonly kind: "drain"; readonly options: DrainOptions }
  | { readonly kind: "bot" }
  | { readonly kind: "help"; readonly text: string }
  | { readonly kind: "version" };

export const MAIN_HELP = `herd — a sharded PostgreSQL cluster (Citus-style) for Kubernetes and for this machine

Usage:
  herd up [options]        run a local cluster (a coordinator and N workers) until Ctrl-C
  herd status [options]    show the coordinator and its worker nodes
  herd shards [options]    show every shard, its hash range and where its copies are
  herd rebalance [options] even out the shards over the workers (--dry-run: only say how)
  herd drain <node>        move every shard off a worker, so it can be removed
  herd bot                 run one pod's bot (the container entrypoint; configured by environment)
  herd help [command]      show help for a command
  herd --version

Environment:
  HERD_PASSWORD      password of the SQL user "postgres" (herd up default: postgres); other roles
                     log in with the password CREATE ROLE … PASSWORD gave them
  HERD_ADMIN_TOKEN   bearer token of the admin API (herd up default: generated, kept in <data-dir>/cluster.json)
  HERD_INTERNAL_PASSWORD  herd's own superuser password on every PostgreSQL of the cluster (herd up:
                     generated, kept in <data-dir>/cluster.json; the chart: its Secret)
  HERD_PG_BIN        a PostgreSQL 18 bin/ directory to use instead of the bundled one
`;

export const UP_HELP = `herd up — run a herd cluster on this machine with real PostgreSQL servers

Usage: herd up [--workers N] [--port P] [--admin-port A] [--data-dir D]
               [--shard-count N] [--replication-factor N]
               [--no-auto-rebalance] [--replace-lost-after S]

Options:
  --workers N              worker nodes to run (default ${Defaults.localWorkers})
  --port P                 SQL port of the coordinator (default ${Defaults.localSqlPort}); the
                           PostgreSQL servers take the ports after it (P+1 … P+1+N)
  --admin-port A           admin HTTP port (default ${Defaults.adminPort}); worker probes take A+1 … A+N
  --data-dir D             where the cluster lives; it survives restarts (default ./${Defaults.localDataDir})
  --shard-count N          shards of a new distributed table (default ${Defaults.shardCount})
  --replication-factor N   copies of each shard, on different workers (default ${Defaults.replicationFactor}, or 1
                           with a single worker)
  --no-auto-rebalance      a worker that joins gets the reference tables, but shards move only when
                           a rebalance is asked for (herd rebalance); default: they even out by themselves
  --replace-lost-after S   a worker not heard from for S seconds has its shards copied to other
                           workers, back to the replication factor (default 900; 0: never)
  -h, --help               show this help

Starting again on the same data directory brings back the same cluster. Stop with Ctrl-C.
Logs: <data-dir>/logs/.
`;

export const STATUS_HELP = `herd status — show the coordinator and its worker nodes

Usage: herd status [--data-dir D] | [--admin-url URL --token T]

Options:
  --data-dir D      the data directory of a running herd up (default ./${Defaults.localDataDir})
  --admin-url URL   a coordinator's admin API instead (e.g. through kubectl port-forward)
  --token T         its admin token (or HERD_ADMIN_TOKEN)

Exits 0 when the coordinator is ready and every node is active, 1 otherwise.
`;

const CONNECTION_OPTIONS = `  --data-dir D      the data directory of a running herd up (default ./${Defaults.localDataDir})
  --admin-url URL   a coordinator's admin API instead (e.g. through kubectl port-forward)
  --token T         its admin token (or HERD_ADMIN_TOKEN)`;

export const SHARDS_HELP = `herd shards — show every shard, its hash range and where its copies are (with sizes)

Usage: herd shards [--table T] [--data-dir D | --admin-url URL --token T]

Options:
  --table T         only the shards of table T
${CONNECTION_OPTIONS}
`;

export const REBALANCE_HELP = `herd rebalance — even out the shards over the active workers, online

Usage: herd rebalance [--dry-run] [--strategy by_shard_count|by_disk_size] [--data-dir D | --admin-url URL --token T]

Colocated shards move together and copies of a shard never share a worker. Runs as a job on the
coordinator (it goes on if this command is stopped; GET /v1/jobs/<id> follows it) and shows its
progress until it ends. Exits 0 when the job is done.

Options:
  --dry-run         only list the moves it would make
  --strategy S      by_shard_count (default) or by_disk_size
${CONNECTION_OPTIONS}
`;

export const DRAIN_HELP = `herd drain — move every shard off a worker, online, so that it can be removed

Usage: herd drain <node id or name> [--data-dir D | --admin-url URL --token T]

The node's state becomes draining (no new shards go there); its shards move to the least loaded
workers without a copy. Drain a worker before scaling the StatefulSet down (docs/shard-placement.md).

Options:
${CONNECTION_OPTIONS}
`;

/** Turns `argv` (without node and the script) into a command, or throws a clear usage error. */
export function parseCli(argv: readonly string[]): CliCommand {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
    case "help":
    case "-h":
    case "--help":
      return { kind: "help", text: HELPS[rest[0] ?? ""] ?? MAIN_HELP };
    case "--version":
    case "-V":
      return { kind: "version" };
    case "bot":
      return { kind: "bot" };
    case "up":
      return parseUp(rest);
    case "status":
      return parseStatus(rest);
    case "shards":
    case "rebalance":
    case "drain":
      return parsePlacementCommand(command, rest);
    default:
      throw usageError(`unknown command "${command}"`, "Run `herd --help` for the commands.");
  }
}

function parseUp(args: readonly string[]): CliCommand {
  const { values } = parse(
    args,
    {
      workers: { type: "string" },
      port: { type: "string" },
      "admin-port": { type: "string" },
      "data-dir": { type: "string" },
      "shard-count": { type: "string" },
      "replication-factor": { type: "string" },
      "no-auto-rebalance": { type: "boolean" },
      "replace-lost-after": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    "up",
  );
  if (values.help) return { kind: "help", text: UP_HELP };
  return {
    kind: "up",
    options: {
      workers: wholeNumber(values.workers, "--workers", Defaults.localWorkers, 1, 64),
      port: wholeNumber(values.port, "--port", Defaults.localSqlPort, 1, 65535),
      adminPort: wholeNumber(values["admin-port"], "--admin-port", Defaults.adminPort, 1, 65535),
      dataDir: nonEmpty(values["data-dir"], "--data-dir") ?? Defaults.localDataDir,
      shardCount: wholeNumber(values["shard-count"], "--shard-count", Defaults.shardCount, 1, 10_000),
      // undefined when not given: herd up then uses the default, capped at the number of workers
      replicationFactor:
        values["replication-factor"] === undefined
          ? undefined
          : wholeNumber(values["replication-factor"], "--replication-factor", Defaults.replicationFactor, 1, 16),
      autoRebalance: values["no-auto-rebalance"] !== true,
      replaceLostAfterS:
        values["replace-lost-after"] === undefined
          ? undefined
          : wholeNumber(values["replace-lost-after"], "--replace-lost-after", 900, 0, 30 * 86_400),
    },
  };
}

function parseStatus(args: readonly string[]): CliCommand {
  const { values } = parse(
    args,
    {
      "data-dir": { type: "string" },
      "admin-url": { type: "string" },
      token: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    "status",
  );
  if (values.help) return { kind: "help", text: STATUS_HELP };
  return {
    kind: "status",
    options: {
      dataDir: nonEmpty(values["data-dir"], "--data-dir") ?? Defaults.localDataDir,
      adminUrl: nonEmpty(values["admin-url"], "--admin-url"),
      token: nonEmpty(values.token, "--token"),
    },
  };
}

const HELPS: Record<string, string> = {
  up: UP_HELP,
  status: STATUS_HELP,
  shards: SHARDS_HELP,
  rebalance: REBALANCE_HELP,
  drain: DRAIN_HELP,
};

function parsePlacementCommand(command: "shards" | "rebalance" | "drain", args: readonly string[]): CliCommand {
  let parsed: ReturnType<typeof parseArgs<{ args: string[]; options: Spec; strict: true; allowPositionals: true }>>;
  try {
    parsed = parseArgs({
      args: [...args],
      options: {
        "data-dir": { type: "string" },
        "admin-url": { type: "string" },
        token: { type: "string" },
        table: { type: "string" },
        "dry-run": { type: "boolean" },
        strategy: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: command === "drain",
    });
  } catch (error) {
    throw usageError((error as Error).message, `Run \`herd ${command} --help\` for its options.`);
  }
  const { values, positionals } = parsed;
  if (values.help) return { kind: "help", text: HELPS[command] as string };
  const connection = {
    dataDir: nonEmpty(values["data-dir"], "--data-dir") ?? Defaults.localDataDir,
    adminUrl: nonEmpty(values["admin-url"], "--admin-url"),
    token: nonEmpty(values.token, "--token"),
  };
  const misplaced = (flag: string) =>
    usageError(`${flag} is not an option of herd ${command}`, `Run \`herd ${command} --help\` for its options.`);
  if (command !== "shards" && values.table !== undefined) throw misplaced("--table");
  if (command !== "rebalance" && (values["dry-run"] !== undefined || values.strategy !== undefined))
    throw misplaced(values.strategy !== undefined ? "--strategy" : "--dry-run");
  switch (command) {
    case "shards":
      return { kind: "shards", options: { ...connection, table: nonEmpty(values.table, "--table") } };
    case "rebalance": {
      const strategy = values.strategy ?? "by_shard_count";
      if (strategy !== "by_shard_count" && strategy !== "by_disk_size")
        throw usageError(`--strategy must be by_shard_count or by_disk_size, not "${String(strategy)}"`);
      return { kind: "rebalance", options: { ...connection, dryRun: values["dry-run"] === true, strategy } };
    }
    case "drain": {
      if (positionals.length !== 1)
        throw usageError("herd drain takes one node (its id or name)", "Run `herd status` for the nodes.");
      return { kind: "drain", options: { ...connection, node: positionals[0] as string } };
    }
  }
}

type Spec = Record<string, { type: "string" | "boolean"; short?: string }>;

function parse<S extends Spec>(args: readonly string[], options: S, command: string) {
  try {
    return parseArgs({ args: [...args], options, strict: true, allowPositionals: false });
  } catch (error) {
    throw usageError((error as Error).message, `Run \`herd ${command} --help\` for its options.`);
  }
}

function wholeNumber(
  text: string | boolean | undefined,
  flag: string,
  fallback: number,
  min: number,
  max: number,
): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (typeof text !== "string" || !/^\d+$/.test(text) || value < min || value > max) {
    throw usageError(`${flag} must be a whole number from ${min} to ${max}, not "${String(text)}"`);
  }
  return value;
}

function nonEmpty(text: string | boolean | undefined, flag: string): string | undefined {
  if (text === undefined) return undefined;
  if (typeof text !== "string" || text.trim() === "") throw usageError(`${flag} needs a value`);
  return text;
}

function usageError(message: string, hint?: string): HerdError {
  return new HerdError(message, { sqlState: SqlState.invalidParameterValue, ...(hint ? { hint } : {}) });
}
