// pnpm bench router: the router path. pgbench's select-only, simple-update and tpcb-like workloads
// (prepared) with pgbench_accounts and pgbench_history distributed by aid over 3 workers ("herd",
// SQL port) against one plain PostgreSQL holding the same data ("postgres": the coordinator's own
// PostgreSQL, SQL port + 1, in a schema of its own), alternated run by run; reported as
// herd / postgres ratios of median TPS.
import { fileURLToPath } from "node:url";
import pg from "pg";
import { cpuTable, ratioTable, runAlternating, TARGETS, tps } from "./lib/alternate.mjs";
import { startBareRelay } from "./lib/bare-relay.mjs";
import { writeBenchmarkSection } from "./lib/benchmarks-doc.mjs";
import { coordinatorProcesses, profileSummary, takeCpuProfile } from "./lib/coordinator-cpu.mjs";
import { startHerdCluster } from "./lib/herd-cluster.mjs";
import { describeMachine } from "./lib/machine.mjs";
import { parseIntegerOptions } from "./lib/options.mjs";
import { parsePgbenchReport, pgbench, pgbenchVersion } from "./lib/pgbench.mjs";
import { median } from "./lib/table.mjs";

export const description =
  "pgbench -S, -N and tpcb-like, prepared: pgbench_accounts distributed by aid over 3 workers vs one PostgreSQL";

const SINGLE_ROW_UPDATE = fileURLToPath(new URL("./scripts/single-row-update.sql", import.meta.url));
/** What each placement does for one single-row update, on one PostgreSQL (its floor). */
const PLACEMENT_WRITE = fileURLToPath(new URL("./scripts/placement-write.sql", import.meta.url));

/** pgbench's built-in scripts and one of ours, each run with -M prepared. */
const WORKLOADS = [
  { name: "select-only", args: ["-S"], statements: 1 },
  // one UPDATE by aid, autocommit (bench/scripts/single-row-update.sql; -D scale: a custom script's :scale is 1)
  { name: "single-row update", args: ["-f", SINGLE_ROW_UPDATE], scaled: true, statements: 1 },
  // BEGIN; UPDATE; SELECT; INSERT; END
  { name: "simple-update", args: ["-N"], statements: 5 },
  // BEGIN; UPDATE; SELECT; UPDATE; UPDATE; INSERT; END
  { name: "tpcb-like", args: ["-b", "tpcb-like"], statements: 7 },
  // the same reads sent as simple Queries with literals (psql, drivers without prepared statements)
  { name: "select-only -M simple", args: ["-S"], statements: 1, mode: "simple" },
];
const CLIENTS = ["-c", "8", "-j", "2"];
const WORKERS = 3;
/** The router issue's goal for select-only: through herd, at least this share of one PostgreSQL's TPS. */
const TARGET_RATIO = 0.6;
const TARGET_WORKLOAD = "select-only";
/**
 * The plain copy of the pgbench tables, in the coordinator's own PostgreSQL next to herd's shell
 * tables of the same names. pgbench() always connects to database postgres, so the plain runs
 * find their tables through search_path (PGOPTIONS) in this schema of their own.
 */
const PLAIN_SCHEMA = "bench_plain";

const OPTIONS = {
  rounds: { default: 3, min: 1, help: "rounds; each runs every workload on postgres, then herd" },
  seconds: { default: 10, min: 1, help: "seconds per pgbench run" },
  warmup: { default: 3, min: 0, help: "seconds of unrecorded warm-up per workload through herd" },
  scale: { default: 10, min: 1, help: "pgbench -i scale factor" },
};

export async function run(argv, { signal }) {
  const options = parseIntegerOptions("router", argv, OPTIONS);
  if (!options) return;
  const password = process.env.HERD_PASSWORD ?? "postgres";
  const [version, machine] = await Promise.all([pgbenchVersion(), describeMachine()]);
  // pgbench's arguments for a workload ({ args, scaled, mode }) run for `seconds`
  const argsOf = ({ args, scaled, mode }, seconds) => [
    "-n",
    ...args,
    ...(scaled ? ["-D", `scale=${options.scale}`] : []),
    "-M",
    mode ?? "prepared",
    ...CLIENTS,
    "-T",
    String(seconds),
  ];
  const workload = (name, seconds) =>
    argsOf(
      WORKLOADS.find((w) => w.name === name),
      seconds,
    );

  const runSeconds = (options.warmup + options.rounds * TARGETS.length * options.seconds) * WORKLOADS.length;
  progress(`starting herd up --workers ${WORKERS} (then about ${runSeconds} s of pgbench runs)`);
  let started = Date.now();
  const cluster = await startHerdCluster({ workers: WORKERS, signal });
  const ports = { postgres: cluster.postgresPort, herd: cluster.sqlPort };
  // "relay": a bare Node relay to the same PostgreSQL (its clients log in there), for the latency
  // any hop through a Node process adds on this machine
  const direct = (target) => target === "postgres" || target === "relay";
  const pgbenchOn = (target, args) =>
    withSearchPath(direct(target) ? PLAIN_SCHEMA : undefined, () =>
      pgbench(args, {
        port: ports[target],
        password: cluster.passwordFor(target === "relay" ? ports.postgres : ports[target], password),
        signal,
      }),
    );
  let runs;
  let shardCount;
  let profile;
  let relay;
  const latency = { postgres: [], relay: [], herd: [] };
  const placementWrites = [];
  try {
    relay = await startBareRelay(ports.postgres);
    ports.relay = relay.port;
    progress(`cluster ready in ${since(started)} (${cluster.dataDir}; herd ${ports.herd}, postgres ${ports.postgres})`);
    started = Date.now();
    await pgbenchOn("herd", ["-i", "-q", "-s", String(options.scale)]);
    progress(`pgbench -i -s ${options.scale} through herd in ${since(started)}`);
    started = Date.now();
    const distributed = await query(ports.herd, password, [
      "SELECT create_distributed_table('pgbench_accounts', 'aid')",
      "SELECT create_distributed_table('pgbench_history', 'aid', colocate_with => 'pgbench_accounts')",
      "SELECT shard_count FROM citus_tables WHERE table_name::text = 'pgbench_accounts'",
    ]);
    shardCount = Number(distributed.rows[0]?.shard_count);
    progress(`pgbench_accounts and pgbench_history distributed by aid (${shardCount} shards) in ${since(started)}`);
    started = Date.now();
    await query(ports.postgres, cluster.internalPassword, [
      `DROP SCHEMA IF EXISTS ${PLAIN_SCHEMA} CASCADE`,
      `CREATE SCHEMA ${PLAIN_SCHEMA}`,
    ]);
    await pgbenchOn("postgres", ["-i", "-q", "-s", String(options.scale)]);
    progress(`pgbench -i -s ${options.scale} straight to postgres (schema ${PLAIN_SCHEMA}) in ${since(started)}`);
    runs = await runAlternating({
      cases: WORKLOADS.map(({ name }) => name),
      rounds: options.rounds,
      seconds: options.seconds,
      warmup: options.warmup,
      pgbenchRun: (name, target, seconds) => pgbenchOn(target, workload(name, seconds)),
      progress,
      coordinator: await coordinatorProcesses(cluster),
    });
    // the latency herd adds: one client, one routed read at a time, on each target in turn
    for (let round = 0; round < options.rounds; round += 1) {
      for (const target of Object.keys(latency)) {
        const output = await pgbenchOn(target, ["-n", "-S", "-M", "prepared", "-c", "1", "-j", "1", "-T", "5"]);
        const average = Number(/^latency average = ([\d.]+) ms$/m.exec(output)?.[1]);
        latency[target].push(average);
        progress(`latency, 1 client, ${target}: ${average.toFixed(3)} ms`);
      }
    }
    // the floor of a replicated write: one PostgreSQL doing, alone, what each placement does
    for (let round = 0; round < options.rounds; round += 1) {
      const output = await pgbenchOn(
        "postgres",
        argsOf({ args: ["-f", PLACEMENT_WRITE], scaled: true, mode: "simple" }, options.seconds),
      );
      const report = parsePgbenchReport(output);
      if (report.failed > 0) throw new Error(`${report.failed} failed transactions (placement write)`);
      placementWrites.push(report.tps);
      progress(
        `round ${round + 1}/${options.rounds}  placement write (2PC) on postgres  ${Math.round(report.tps)} tps`,
      );
    }
    // one more select-only run through herd, profiled (not counted: sampling costs a little)
    const profiling = takeCpuProfile(cluster, Math.max(1, options.seconds - 1));
    await pgbenchOn("herd", workload(TARGET_WORKLOAD, options.seconds));
    profile = profileSummary(await profiling);
    progress(
      `profiled ${TARGET_WORKLOAD} through herd: the coordinator was busy ${(profile.busyShare * 100).toFixed(0)} % of the time`,
    );
  } finally {
    progress("stopping the cluster");
    await relay?.stop();
    await cluster.stop();
  }

  const table = ratioTable(
    "workload (-M prepared unless said)",
    runs,
    TARGET_RATIO,
    (name) => name === TARGET_WORKLOAD,
  );
  const cpu = cpuTable(
    "workload (-M prepared unless said)",
    runs,
    Object.fromEntries(WORKLOADS.map(({ name, statements }) => [name, statements])),
  );
  const added = (median(latency.herd) - median(latency.postgres)) * 1000;
  const relayAdded = (median(latency.relay) - median(latency.postgres)) * 1000;
  const latencyLine = `One client (\`pgbench -n -S -M prepared -c 1 -T 5\`, ${options.rounds} runs each): a routed read takes ${median(latency.herd).toFixed(3)} ms through herd and ${median(latency.postgres).toFixed(3)} ms on one PostgreSQL (medians): herd adds **${added.toFixed(0)} µs** (target ≤ 100 µs). A bare Node relay in front of the same PostgreSQL (bench/lib/bare-relay-process.mjs: bytes to and from a connection of its own, nothing parsed) adds ${relayAdded.toFixed(0)} µs: the least one hop through a Node process costs here; a routed read is that hop plus herd's own work.`;
  const plainWrites = median(runs["single-row update"].postgres);
  const floorShare = median(placementWrites) / plainWrites;
  const floorLine = `The floor of a replicated write (\`bench/scripts/placement-write.sql\`, -M simple, ${options.rounds} runs): one PostgreSQL doing alone what each placement does for a single-row update (the UPDATE and PREPARE TRANSACTION in one round trip, then COMMIT PREPARED) reaches ${tps(median(placementWrites))} TPS, **${floorShare.toFixed(2)}** of its ${tps(plainWrites)} plain UPDATEs. Both placements run on the same cores, so with replication factor 2 herd's single-row update ratio is bounded near ${(floorShare / 2).toFixed(2)} before any work of the coordinator (its process, and its PostgreSQL's lock and commit record).`;
  process.stdout.write(`\n${table}\n\n${cpu}\n\n${latencyLine}\n\n${floorLine}\n\n${profile.table}\n`);

  const command = ["pnpm bench router", ...argv].join(" ");
  await writeBenchmarkSection(
    "router",
    `Target (the router issue): for ${TARGET_WORKLOAD} through herd, at least ${TARGET_RATIO} × the TPS of one plain PostgreSQL holding the same data.

- date: ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC
- machine: nproc ${machine.nproc}, ${machine.model}; load average ${machine.load} before the run; Node ${machine.node}; ${version}
- commit: ${machine.commit}
- command: \`${command}\`

A \`herd up --workers ${WORKERS}\` cluster on tmpfs, loaded with \`pgbench -i -s ${options.scale}\` through herd's
SQL port; then \`pgbench_accounts\` and \`pgbench_history\` distributed by \`aid\` with
\`create_distributed_table\` (${shardCount} shards each, colocated, replication factor 2 over the ${WORKERS} workers);
\`pgbench_branches\` and \`pgbench_tellers\` stay local tables on the coordinator. The same data,
loaded with \`pgbench -i -s ${options.scale}\` straight into the coordinator's own PostgreSQL ("postgres",
SQL port + 1, schema \`${PLAIN_SCHEMA}\`), is the single-server baseline. Then ${options.rounds} round${options.rounds === 1 ? "" : "s"} of
\`pgbench -n <workload> -M prepared ${CLIENTS.join(" ")} -T ${options.seconds}\` per workload (the last with \`-M simple\`), each on "postgres",
then through herd ("herd", SQL port), after ${options.warmup} s of unrecorded warm-up per workload through herd.
select-only (\`-S\`) is one routed \`SELECT\` by \`aid\`; single-row update
(\`bench/scripts/single-row-update.sql\`) one \`UPDATE pgbench_accounts\` by \`aid\` outside a block,
reaching both placements of its shard with two-phase commit (the issue's target: ≥ 0.2 × one PostgreSQL); simple-update (\`-N\`) is a transaction of
\`UPDATE pgbench_accounts\`, \`SELECT abalance\` and \`INSERT INTO pgbench_history\`, all keyed by
\`aid\`, so one shard group per transaction, each write reaching both placements of its shard;
tpcb-like (\`-b tpcb-like\`, the TPC-B-like default) adds updates of the local \`pgbench_tellers\` and
\`pgbench_branches\` to that transaction. TPS without initial connection time; runs in order.
pgbench, the coordinator, its PostgreSQL, the ${WORKERS} workers' bots and PostgreSQL servers share the
machine's ${machine.nproc} cores, while the baseline is one PostgreSQL.

${table}

${latencyLine}

${floorLine}

The coordinator's CPU per transaction of the herd runs (user + system time of its processes from
\`/proc\`, over the run, divided by the transactions pgbench counted; "statements" are what pgbench
sends per transaction, BEGIN and END included):

${cpu}

Where it goes: a CPU profile of the coordinator (V8's sampler, \`POST /v1/debug/cpu-profile\`)
over one more ${TARGET_WORKLOAD} run through herd, the ${profile.table.split("\n").length - 2} functions with the most self time
(the coordinator was busy ${(profile.busyShare * 100).toFixed(0)} % of the sampled time; "(program)" and "(garbage
collector)" are V8's own; \`writev\`/\`writeBuffer\` are the native calls that write a socket):

${profile.table}

Where the remaining microseconds go. V8's sampler charges about half of the coordinator's time to
\`writeBuffer\`, more than the system time \`/proc\` counts (the table above: about a third for
reads, a quarter for writes); \`/proc\` and \`perf\` agree with each other, so the profile's
share for the native write call is not the kernel's. \`perf record\` of the coordinator over
select-only (8 clients, 2026-12-04) put 39 % of its samples in the kernel (a third of that in the
scheduler, switching the coordinator out and back in: on 2 cores a write to a worker wakes its
PostgreSQL backend, which often takes the core), 40 % in Node's own binary (V8's builtins:
property loads, promise reactions, typed arrays; the C++ of streams and libuv), 16 % in
JIT-compiled JavaScript and 4 % in libc, with no JavaScript function above about 1 %. A routed
read is two exchanges for the coordinator (the client's statement and its answer; the statement
to a worker and its answer): 2 writes, 2 reads (the least a relay can do) and some 70 µs of user
time, most of it the per-message cost of Node's stream and promise machinery around herd's own
code. A routed read of one shard outside a block takes an idle pooled connection synchronously
and none of the fan-out's bookkeeping (2026-12-04, runs before and after it back to back: 171 →
117 µs of coordinator CPU per read, 0.20 → 0.25 of one PostgreSQL's TPS); simple-protocol
statements cost what prepared ones do because literals become parameters (one parse and one plan
per statement shape). The floor, measured (2026-12-04, \`pnpm bench protocol\`): a bare Node relay
that only passes bytes between a client and a connection of its own to PostgreSQL costs 41 µs of
CPU per statement at 8 clients (0.46 of PostgreSQL's TPS), and reading its sockets through
\`onread\` into a reused buffer instead of the stream's push and emit measured the same (14,600
vs 14,700 TPS, 39–40 µs). A routed read does what that relay does (two sockets, a read and a write
on each; \`strace\` shows exactly those four system calls and the epoll waits between them) plus
herd's work on the statement: some 70 µs above the floor, spread over the session's protocol
state, the plan cache, shard selection, the worker's Bind and relaying the answer, no function
above ~1 % in \`perf\`. What would go below ~50 µs is fewer hops per statement (several sessions'
statements pipelined on one worker connection, so one write and one wakeup carry several), not
tuning of herd's own functions.

System calls of the coordinator per transaction, counted with \`strace -c\` over 1 client (2026-12-03):
select-only 2 writes and 2 reads; single-row update 7 writes (\`writev\` when several messages go
together) and 10 reads: the lock with BEGIN on the coordinator, the UPDATE with PREPARE
TRANSACTION on each placement, the decision on the coordinator, the answer, COMMIT PREPARED on
each placement; simple-update 16 writes and 17 reads. One PostgreSQL answers a single-row update
with one write, and on tmpfs its commit costs no flush. Two-phase commit over two placements is
seven exchanges for the coordinator (the client; the lock; two workers; the decision; two COMMIT
PREPAREDs), each with its user time as above plus the transaction's bookkeeping: some 750 µs of
coordinator CPU per write, a quarter of it system time. Fewer exchanges per write (COMMIT
PREPAREDs of several transactions sent together to each worker) is what would move those
ratios. Two things tried and measured without a gain (2026-12-03): the coordinator's own
PostgreSQL over a Unix socket instead of loopback TCP (a Node ping-pong saves ~7 µs per round
trip, herd's passthrough showed none within the noise), and fewer Buffer views per message
(framing a routed answer went from ~1.4 to 0.5 µs: real, but under 1 % of a statement).

Writes commit atomically on both placements (two-phase commit with a commit record on the
coordinator, docs/distributed-tables.md). Round trips a write waits for, in order (each to one
server, or to several in parallel):

- one statement on two placements, outside a block, 3: the coordinator's write lock (with BEGIN;
  it answers the transaction's id and the placement versions); the statement and PREPARE
  TRANSACTION pipelined on both workers; the decision (commit record and COMMIT) on the
  coordinator. COMMIT PREPARED goes out after the client has its answer (with one coordinator
  process; with several, before it).
- pgbench simple-update (BEGIN; UPDATE; SELECT; INSERT; END on one shard group), 7: BEGIN, the
  lock before the UPDATE and the decision on the coordinator (the INSERT into the colocated
  pgbench_history needs no lock of its own: locks cover a shard group); UPDATE, SELECT, INSERT and
  PREPARE on the workers; COMMIT PREPARED after the answer. Before two-phase commit it was 6.
`,
  );
  progress("wrote the router section of docs/benchmarks.md");
}

/** Runs `statements` in order on one connection to 127.0.0.1:`port`; resolves with the last result. */
async function query(port, password, statements) {
  const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", password, database: "postgres" });
  await client.connect();
  try {
    let result;
    for (const statement of statements) result = await client.query(statement);
    return result;
  } finally {
    await client.end();
  }
}

/**
 * Runs `work` with PGOPTIONS setting search_path to `schema` (when given) for the processes it
 * spawns (pgbench() passes its environment on); runs are sequential, so nothing else sees it.
 */
async function withSearchPath(schema, work) {
  if (schema === undefined) return work();
  const saved = process.env.PGOPTIONS;
  process.env.PGOPTIONS = `${saved ?? ""} -c search_path=${schema}`.trim();
  try {
    return await work();
  } finally {
    if (saved === undefined) delete process.env.PGOPTIONS;
    else process.env.PGOPTIONS = saved;
  }
}

function progress(message) {
  process.stderr.write(`router: ${message}\n`);
}

function since(start) {
  return `${((Date.now() - start) / 1000).toFixed(1)} s`;
}
