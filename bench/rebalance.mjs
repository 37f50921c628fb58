// pnpm bench rebalance: an online shard move under a pgbench write load, against a plain copy of the
// same rows between the same two servers. Reports the move's MB/s next to the plain copy's, and
// pgbench's TPS and worst per-second latency while the move runs against before it.
import { spawn } from "node:child_process";
import pg from "pg";
import { writeBenchmarkSection } from "./lib/benchmarks-doc.mjs";
import { startHerdCluster } from "./lib/herd-cluster.mjs";
import { describeMachine } from "./lib/machine.mjs";
import { parseIntegerOptions } from "./lib/options.mjs";
import { pgbench, pgbenchVersion } from "./lib/pgbench.mjs";
import { markdownTable } from "./lib/table.mjs";

export const description = "an online shard move under pgbench writes: MB/s vs a plain copy, TPS during vs before";

const OPTIONS = {
  scale: { default: 20, min: 1, help: "pgbench scale (about 15 MB of pgbench_accounts per unit)" },
  seconds: { default: 15, min: 3, help: "seconds of pgbench before the move (the baseline TPS)" },
};
const WORKERS = 3;
const SHARDS = 4;
const CLIENTS = ["-c", "4", "-j", "2"];

export async function run(argv, { signal }) {
  const options = parseIntegerOptions("rebalance", argv, OPTIONS);
  if (!options) return;
  const password = process.env.HERD_PASSWORD ?? "postgres";
  const [version, machine] = await Promise.all([pgbenchVersion(), describeMachine()]);
  progress(`starting herd up --workers ${WORKERS}`);
  let started = Date.now();
  const cluster = await startHerdCluster({ workers: WORKERS, signal });
  const admin = async (path, init = {}) => {
    const response = await fetch(`http://127.0.0.1:${cluster.adminPort}${path}`, {
      ...init,
      headers: {
        authorization: `Bearer ${cluster.adminToken()}`,
        ...(init.body ? { "content-type": "application/json" } : {}),
      },
    });
    const body = await response.json();
    if (!response.ok) throw new Error(`${path}: ${response.status} ${JSON.stringify(body)}`);
    return body;
  };
  let figures;
  try {
    progress(`cluster ready in ${since(started)}`);
    started = Date.now();
    await pgbench(["-i", "-q", "-s", String(options.scale)], { port: cluster.sqlPort, password, signal });
    await query(cluster.sqlPort, password, [
      `SELECT create_distributed_table('pgbench_accounts', 'aid', shard_count => ${SHARDS})`,
      "SELECT create_distributed_table('pgbench_history', 'aid', colocate_with => 'pgbench_accounts')",
    ]);
    progress(`pgbench -i -s ${options.scale}, distributed (${SHARDS} shards, 2 copies) in ${since(started)}`);

    // the largest shard group, and a worker without a copy of it
    const { shards } = await admin("/v1/shards?table=pgbench_accounts");
    const { nodes } = await admin("/v1/nodes");
    const shard = shards.sort((a, b) => (b.placements[0]?.bytes ?? 0) - (a.placements[0]?.bytes ?? 0))[0];
    const holders = shard.placements.map((p) => p.nodeId);
    const from = nodes.find((n) => n.id === holders[0]);
    const to = nodes.find((n) => !holders.includes(n.id));
    const shardTable = `pgbench_accounts_${shard.id}`;

    // the plain copy: the same rows, source worker → target worker, COPY … TO STDOUT | COPY … FROM STDIN
    progress(`plain copy of ${shardTable}: ${from.name} → ${to.name}`);
    const internal = cluster.internalPassword;
    await query(to.port, internal, [
      "DROP TABLE IF EXISTS bench_plain_copy",
      // pgbench_accounts' definition, with its primary key (the moved shard has it too)
      "CREATE TABLE bench_plain_copy (aid int PRIMARY KEY, bid int, abalance int, filler character(84))",
    ]);
    const plainStarted = performance.now();
    await pipeCopy(
      { port: from.port, password: internal, sql: `COPY public.${shardTable} TO STDOUT (FORMAT binary)` },
      { port: to.port, password: internal, sql: "COPY bench_plain_copy FROM STDIN (FORMAT binary)" },
      signal,
    );
    const plainSeconds = (performance.now() - plainStarted) / 1000;
    const [{ bytes: plainBytes }] = (
      await query(to.port, internal, ["SELECT pg_total_relation_size('bench_plain_copy') AS bytes"])
    ).rows;
    await query(to.port, internal, ["DROP TABLE bench_plain_copy"]);

    progress(`pgbench -N through herd, ${options.seconds} s before the move, then during it`);
    const load = runPgbench(cluster.sqlPort, password, signal);
    await sleep(options.seconds * 1000);
    const moveStartedAt = load.elapsed();
    const move = await admin(`/v1/shards/${shard.id}/move`, {
      method: "POST",
      body: JSON.stringify({ from: from.id, to: to.id }),
    });
    const moveEndedAt = load.elapsed();
    await sleep(1000);
    const samples = await load.stop();
    const before = samples.filter((s) => s.at <= moveStartedAt && s.at > 1);
    const during = samples.filter((s) => s.at > moveStartedAt && s.at <= moveEndedAt + 1);
    const mean = (list, key) => list.reduce((sum, s) => sum + s[key], 0) / Math.max(list.length, 1);
    figures = {
      shardTable,
      from: from.name,
      to: to.name,
      move,
      moveMBs: move.bytes / 2 ** 20 / (move.ms / 1000),
      plainMBs: Number(plainBytes) / 2 ** 20 / plainSeconds,
      plainBytes: Number(plainBytes),
      plainSeconds,
      tpsBefore: mean(before, "tps"),
      tpsDuring: mean(during, "tps"),
      latencyBefore: Math.max(0, ...before.map((s) => s.latency)),
      latencyDuring: Math.max(0, ...during.map((s) => s.latency)),
      failed: samples.failed,
    };
  } finally {
    progress("stopping the cluster");
    await cluster.stop();
  }
  const f = figures;
  const table = [
    markdownTable(
      ["", "move (logical replication)", "plain COPY", "ratio"],
      [["MB/s", f.moveMBs.toFixed(1), f.plainMBs.toFixed(1), (f.moveMBs / f.plainMBs).toFixed(2)]],
      ["l", "r", "r", "r"],
    ),
    "",
    markdownTable(
      ["pgbench -N through herd", "before the move", "during the move", "ratio"],
      [
        [
          "TPS (mean of per-second figures)",
          f.tpsBefore.toFixed(0),
          f.tpsDuring.toFixed(0),
          (f.tpsDuring / f.tpsBefore).toFixed(2),
        ],
        ["worst per-second mean latency (ms)", f.latencyBefore.toFixed(1), f.latencyDuring.toFixed(1), ""],
      ],
      ["l", "r", "r", "r"],
    ),
  ].join("\n");
  process.stdout.write(`\n${table}\n\nmove: ${JSON.stringify(f.move)}\n`);
  await writeBenchmarkSection(
    "rebalance",
    `Targets (the placement issue): the move at ≥ 0.5× a plain copy's rate, pgbench keeping ≥ 0.7× of its TPS during it.

- date: ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC
- machine: nproc ${machine.nproc}, ${machine.model}; load average ${machine.load} before the run; Node ${machine.node}; ${version}
- commit: ${machine.commit}
- command: \`${["pnpm bench rebalance", ...argv].join(" ")}\`

A \`herd up --workers ${WORKERS}\` cluster on tmpfs, \`pgbench -i -s ${options.scale}\` through herd, \`pgbench_accounts\` and
\`pgbench_history\` distributed by \`aid\` (${SHARDS} shards, 2 copies). The largest shard group
(\`${f.shardTable}\` and its pgbench_history shard) moves from ${f.from} to ${f.to} with
\`POST /v1/shards/:id/move\` while \`pgbench -n -N -M prepared ${CLIENTS.join(" ")}\` runs through herd. The plain
copy is the same shard's rows between the same two PostgreSQL servers with
\`COPY … TO STDOUT (FORMAT binary) | COPY … FROM STDIN\` into a table of the same definition (this box has
no pg_dump 18 for a \`pg_dump | psql\`; the COPY pair is what such a pipe spends its time on). The
move's rate is its bytes on the target over its whole time (tables made, replication set up, initial
copy, switch, cleanup): ${(f.move.bytes / 2 ** 20).toFixed(1)} MB in ${f.move.ms} ms; the plain copy ${(f.plainBytes / 2 ** 20).toFixed(1)} MB in
${(f.plainSeconds * 1000).toFixed(0)} ms. Writes to the moved shards waited ${f.move.writePauseMs} ms for the switch;
pgbench statements that failed: ${f.failed}.

${table}
`,
  );
  progress("wrote the rebalance section of docs/benchmarks.md");
}

/** pgbench -N with per-second progress until stopped; resolves the samples (at, tps, latency). */
function runPgbench(port, password, signal) {
  const began = performance.now();
  const child = spawn(
    "pgbench",
    [
      "-n",
      "-N",
      "-M",
      "prepared",
      ...CLIENTS,
      "-T",
      "3600",
      "-P",
      "1",
      "-h",
      "127.0.0.1",
      "-p",
      String(port),
      "-U",
      "postgres",
      "postgres",
    ],
    { env: { ...process.env, PGPASSWORD: password, PGSSLMODE: "disable" }, stdio: ["ignore", "pipe", "pipe"], signal },
  );
  const samples = [];
  samples.failed = 0;
  let output = "";
  child.stderr.on("data", (chunk) => {
    output += chunk;
    for (const line of output.split("\n").slice(0, -1)) {
      const match = /progress: ([\d.]+) s, ([\d.]+) tps, lat ([\d.]+) ms/.exec(line);
      if (match) samples.push({ at: Number(match[1]), tps: Number(match[2]), latency: Number(match[3]) });
      const failed = /(\d+) failed/.exec(line);
      if (failed) samples.failed = Number(failed[1]);
    }
    output = output.slice(output.lastIndexOf("\n") + 1);
  });
  child.on("error", () => {});
  const closed = new Promise((resolve) => child.once("close", resolve));
  return {
    elapsed: () => (performance.now() - began) / 1000,
    async stop() {
      child.kill("SIGINT");
      await closed;
      return samples;
    },
  };
}

/** COPY out of one server piped into COPY of another (both take herd's internal password), as a shell pipe. */
function pipeCopy(source, target, signal) {
  const psql = ({ port, sql }) => `psql -X -q -h 127.0.0.1 -p ${Number(port)} -U postgres -d postgres -c '${sql}'`;
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-o", "pipefail", "-c", `${psql(source)} | ${psql(target)}`], {
      env: { ...process.env, PGPASSWORD: source.password },
      stdio: ["ignore", "ignore", "inherit"],
      signal,
    });
    child.once("error", reject);
    child.once("close", (code) => (code === 0 ? resolve() : reject(new Error(`the plain copy exited with ${code}`))));
  });
}

async function query(port, password, statements) {
  const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", password, database: "postgres" });
  await client.connect();
  try {
    let last;
    for (const sql of statements) last = await client.query(sql);
    return last;
  } finally {
    await client.end();
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function progress(message) {
  process.stderr.write(`rebalance: ${message}\n`);
}

function since(start) {
  return `${((Date.now() - start) / 1000).toFixed(1)} s`;
}
