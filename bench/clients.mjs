// pnpm bench clients: many connected clients. What the coordinator holds for them (its processes'
// RSS, its own PostgreSQL's connections, each worker's connections from herd) once they have
// connected, while they run statements, and once they have been idle a while; and how fast a wave
// of them is answered.
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { writeBenchmarkSection } from "./lib/benchmarks-doc.mjs";
import { coordinatorProcesses, pssKb, rssKb } from "./lib/coordinator-cpu.mjs";
import { startHerdCluster } from "./lib/herd-cluster.mjs";
import { describeMachine } from "./lib/machine.mjs";
import { parseIntegerOptions } from "./lib/options.mjs";
import { connect } from "./lib/pg-client.mjs";
import { markdownTable } from "./lib/table.mjs";

export const description =
  "many connected clients: coordinator RSS, coordinator and worker connections, connected / busy / idle";

const WORKERS = 2;
const APPLICATION = "bench-clients";
/**
 * Longer than the idle timeouts of the shared coordinator connections (protocol/backend-pool.ts,
 * 30 s) and of the worker connections (connection/worker-pool.ts, 60 s, swept every 5 s).
 */
const IDLE_SECONDS = 70;
const OPTIONS = {
  clients: { default: 1000, min: 1, help: "clients connected at once" },
  wave: { default: 100, min: 1, help: "clients running a statement at the same moment" },
};

export async function run(argv, { signal }) {
  const options = parseIntegerOptions("clients", argv, OPTIONS);
  if (!options) return;
  const password = process.env.HERD_PASSWORD ?? "postgres";
  const machine = await describeMachine();
  progress(`starting herd up --workers ${WORKERS}`);
  const cluster = await startHerdCluster({
    workers: WORKERS,
    signal,
    env: { HERD_MAX_CONNECTIONS: String(options.clients + 20) },
  });
  const rows = [];
  const clients = [];
  let waveMs = 0;
  let burstMs = 0;
  try {
    const herd = await connect(cluster.sqlPort, password);
    try {
      await herd.query("CREATE TABLE bench_items (id int PRIMARY KEY, v text)");
      await herd.query("SELECT create_distributed_table('bench_items', 'id')");
      await herd.query("INSERT INTO bench_items SELECT g, 'v' || g FROM generate_series(1, 10000) g");
      const processes = await coordinatorProcesses(cluster);
      const measure = async (state) => {
        const row = { state, ...memory(processes), ...(await connectionCounts(cluster, herd)) };
        rows.push(row);
        progress(
          `${state}: coordinator RSS ${row.rssMb.toFixed(0)} MB (PSS ${row.pssMb.toFixed(0)} MB), coordinator connections ${row.coordinator}, per worker ${row.workers.join(" / ")}`,
        );
      };
      await measure("no clients");
      // (a few at a time: the SQL port takes 32 still authenticating)
      for (let i = 0; i < options.clients; i += 25) {
        const batch = Array.from({ length: Math.min(25, options.clients - i) }, () =>
          client(cluster.sqlPort, password),
        );
        clients.push(...(await Promise.all(batch)));
        signal.throwIfAborted();
      }
      await measure(`${options.clients} connected`);
      const started = performance.now();
      for (let i = 0; i < clients.length; i += options.wave) {
        const wave = clients.slice(i, i + options.wave);
        const answers = await Promise.all(
          wave.map(async (c, j) => {
            const id = ((i + j) % 10000) + 1;
            const routed = await c.query("SELECT v FROM bench_items WHERE id = $1", [id]);
            const local = await c.query("SELECT $1::int + 1 AS n", [id]);
            return routed.rows[0]?.v === `v${id}` && local.rows[0]?.n === id + 1;
          }),
        );
        if (!answers.every(Boolean)) throw new Error("a client got a wrong answer");
      }
      waveMs = performance.now() - started;
      await measure(`after each ran 2 statements (${options.wave} at a time)`);
      // every client at the same moment: a routed read and a single-row write each, while the
      // workers' connections from herd (the cap, HERD_WORKER_CONNECTIONS, holds them) and the
      // coordinator's memory are sampled
      const most = [0, 0];
      const peak = { rssMb: 0, pssMb: 0 };
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const { workers } = await connectionCounts(cluster, herd);
          workers.forEach((n, i) => {
            most[i] = Math.max(most[i], n);
          });
          const now = memory(processes);
          peak.rssMb = Math.max(peak.rssMb, now.rssMb);
          peak.pssMb = Math.max(peak.pssMb, now.pssMb);
          await sleep(25);
        }
      })();
      const burstStarted = performance.now();
      try {
        const answers = await Promise.all(
          clients.map(async (c, i) => {
            const id = (i % 10000) + 1;
            const routed = await c.query("SELECT v FROM bench_items WHERE id = $1", [id]);
            const written = await c.query("UPDATE bench_items SET v = v WHERE id = $1", [id]);
            return routed.rows[0]?.v === `v${id}` && written.rowCount === 1;
          }),
        );
        if (!answers.every(Boolean)) throw new Error("a client got a wrong answer");
      } finally {
        sampling = false;
        await sampler;
      }
      burstMs = performance.now() - burstStarted;
      rows.push({
        state: `all ${options.clients} at once (most seen while they ran)`,
        ...peak,
        coordinator: "",
        workers: most,
      });
      progress(`all at once: ${(burstMs / 1000).toFixed(1)} s, most worker connections ${most.join(" / ")}`);
      progress(`idle for ${IDLE_SECONDS} s`);
      await sleep(IDLE_SECONDS * 1000, undefined, { signal });
      await measure(`${options.clients} connected, idle ${IDLE_SECONDS} s`);
    } finally {
      await Promise.all(clients.map((c) => c.end().catch(() => {})));
      await herd.end();
    }
  } finally {
    progress("stopping the cluster");
    await cluster.stop();
  }
  const table = markdownTable(
    [
      "clients",
      "coordinator RSS",
      "coordinator PSS",
      "coordinator PostgreSQL connections of the clients",
      "herd's connections per worker",
    ],
    rows.map((r) => [
      r.state,
      `${r.rssMb.toFixed(0)} MB`,
      `${r.pssMb.toFixed(0)} MB`,
      String(r.coordinator),
      r.workers.join(" / "),
    ]),
    ["l", "r", "r", "r", "r"],
  );
  const statements = options.clients * 2;
  const baseMb = rows[0]?.rssMb ?? 0;
  const clientCostMb = Math.max(...rows.map((r) => r.rssMb)) - baseMb;
  process.stdout.write(`\n${table}\n\n${statements} statements in ${(waveMs / 1000).toFixed(1)} s\n`);
  await writeBenchmarkSection(
    "clients",
    `Target (the coordinator issue): 1000 idle clients with at most 300 MB of coordinator RSS and at most 16 server connections per worker.

- date: ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC
- machine: nproc ${machine.nproc}, ${machine.model}; load average ${machine.load} before the run; Node ${machine.node}
- commit: ${machine.commit}
- command: \`${["pnpm bench clients", ...argv].join(" ")}\`

A \`herd up --workers ${WORKERS}\` cluster on tmpfs (default coordinator processes; \`HERD_MAX_CONNECTIONS\`
raised to let ${options.clients} clients in), a distributed table of 10,000 rows. ${options.clients} node-postgres
clients connect (25 at a time), then each runs a routed read by key and a statement the
coordinator's PostgreSQL answers (\`${options.wave}\` clients at the same moment, all answers checked);
then they stay connected, idle, for ${IDLE_SECONDS} s. Coordinator RSS is the sum of its processes' RSS, in
which the pages they share (Node's binary and libraries, some 45 MB) count once per process;
coordinator PSS counts them once in all, split between the processes (/proc/<pid>/smaps_rollup),
which is what the coordinator takes from the machine (and what a pod's memory limit counts: its
cgroup charges a shared page once). The target is read on PSS. The
coordinator's PostgreSQL connections are those of the clients' sessions (shared between sessions
between transactions, protocol/backend-pool.ts); a worker's are those herd holds there
(\`application_name = 'herd'\`, of every coordinator process).

${table}

The ${statements} statements took ${(waveMs / 1000).toFixed(1)} s; then all ${options.clients} clients ran a routed read and a
single-row write (replication factor 2: both placements, two-phase commit) at the same moment, in
${(burstMs / 1000).toFixed(1)} s, while the workers' connections from herd were sampled every 25 ms.

Tried and left off (2026-12-04): young-generation semi-spaces of 4 MB instead of the 16 MB V8 grows
them to in a busy process (\`NODE_OPTIONS=--max-semi-space-size=4\`) took 60–80 MB off the
coordinator's RSS at the peak of this benchmark, and cost some 5 % more user CPU per routed read
(pgbench -S through herd, 4 alternating pairs of runs, more in each pair; the whole \`pnpm bench
router\` differs by as much between two runs of the same code); a deployment short of memory can
make that trade with NODE_OPTIONS, which every herd process inherits.

What the figures say: ${options.clients} clients cost the coordinator ${clientCostMb.toFixed(0)} MB of RSS at most (the ${baseMb.toFixed(0)} MB with no
client are its Node processes, each with the parser and the catalog loaded; under \`herd up\` the
Kubernetes client library is not loaded, in Kubernetes it adds some 35 MB to the first process).
Every client's first connection to the coordinator's PostgreSQL is a new
one (PostgreSQL checks each login), so right after connecting they hold as many as the pool allows
(its cap: max_connections 300, less what herd keeps, split between the processes); once the
sessions have been idle for the pool's 30 s they hold none, and a statement takes one only while it
runs. Worker connections are shared by every session and capped (\`HERD_WORKER_CONNECTIONS\`, 16 per
worker in all, herd's own included: the first process's sessions get 7, the other's 8, and the
first process's own work, 2PC recovery every 5 s, the one seen with no client): with every client running statements at once, statements outside a
transaction block wait for room instead of opening more, a write for room on both its workers at
once; idle ones close after 60 s (a transaction block never
waits and may go over while it runs; packages/coordinator/src/protocol/README.md).
`,
  );
  progress("wrote the clients section of docs/benchmarks.md");
}

/** The coordinator processes' memory, MB: the sum of their RSS, and of their PSS (pssKb). */
function memory(processes) {
  return { rssMb: rssKb(processes) / 1024, pssMb: pssKb(processes) / 1024 };
}

async function client(port, password) {
  const c = new pg.Client({
    host: "127.0.0.1",
    port,
    user: "postgres",
    password,
    database: "postgres",
    application_name: APPLICATION,
  });
  await c.connect();
  return c;
}

/** The clients' connections on the coordinator's PostgreSQL, and herd's on each worker. */
async function connectionCounts(cluster, herd) {
  const { rows } = await herd.query(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND backend_type = 'client backend'",
    [APPLICATION],
  );
  const workers = [];
  for (let ordinal = 1; ordinal <= WORKERS; ordinal++) {
    const worker = await connect(cluster.postgresPort + ordinal, cluster.internalPassword);
    try {
      const result = await worker.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'herd' AND backend_type = 'client backend'",
      );
      workers.push(result.rows[0].n);
    } finally {
      await worker.end();
    }
  }
  return { coordinator: rows[0].n, workers };
}

function progress(message) {
  process.stderr.write(`clients: ${message}\n`);
}
