// pnpm bench scaling: the coordinator on more cores. pgbench's select-only and simple-update
// (prepared, 16 clients) through herd with 1, 2, … coordinator processes sharing the SQL port
// (HERD_SQL_PROCESSES), one cluster per process count; TPS and the coordinator's CPU per statement
// (every coordinator process, user + system). The ratios against one PostgreSQL are the router
// benchmark's; this one shows how herd's own throughput grows with its processes.
import pg from "pg";
import { writeBenchmarkSection } from "./lib/benchmarks-doc.mjs";
import { coordinatorProcesses, measured } from "./lib/coordinator-cpu.mjs";
import { startHerdCluster } from "./lib/herd-cluster.mjs";
import { describeMachine } from "./lib/machine.mjs";
import { parseIntegerOptions } from "./lib/options.mjs";
import { parsePgbenchReport, pgbench, pgbenchVersion } from "./lib/pgbench.mjs";
import { markdownTable, median } from "./lib/table.mjs";

export const description =
  "pgbench -S and -N through herd with 1, 2, … coordinator processes: TPS and CPU per statement";

const WORKLOADS = [
  { name: "select-only", args: ["-S"], statements: 1 },
  { name: "simple-update", args: ["-N"], statements: 5 },
];
const WORKERS = 3;
const CLIENTS = ["-c", "16", "-j", "2"];

const OPTIONS = {
  processes: { default: [1, 2], min: 1, list: true, help: "coordinator process counts, one cluster each" },
  rounds: { default: 3, min: 1, help: "runs of each workload per process count (the median counts)" },
  seconds: { default: 10, min: 1, help: "seconds per pgbench run" },
  scale: { default: 10, min: 1, help: "pgbench -i scale factor" },
};

export async function run(argv, { signal }) {
  const options = parseIntegerOptions("scaling", argv, OPTIONS);
  if (!options) return;
  const password = process.env.HERD_PASSWORD ?? "postgres";
  const [version, machine] = await Promise.all([pgbenchVersion(), describeMachine()]);
  const results = [];
  for (const processes of options.processes) {
    progress(`starting herd up --workers ${WORKERS} with HERD_SQL_PROCESSES=${processes}`);
    const cluster = await startHerdCluster({
      workers: WORKERS,
      signal,
      env: { HERD_SQL_PROCESSES: String(processes) },
    });
    try {
      const bench = (args) => pgbench(args, { port: cluster.sqlPort, password, signal });
      await bench(["-i", "-q", "-s", String(options.scale)]);
      await distribute(cluster.sqlPort, password);
      const coordinator = await coordinatorProcesses(cluster);
      if (coordinator.length < processes) {
        throw new Error(`expected ${processes} coordinator processes, found ${coordinator.length}`);
      }
      for (const workload of WORKLOADS) {
        const tps = [];
        const cpu = [];
        for (let round = 0; round < options.rounds; round += 1) {
          const outcome = await measured(coordinator, async () => {
            const output = await bench([
              "-n",
              ...workload.args,
              "-M",
              "prepared",
              ...CLIENTS,
              "-T",
              String(options.seconds),
            ]);
            return parsePgbenchReport(output);
          });
          if (outcome.failed > 0) throw new Error(`${outcome.failed} failed transactions through herd`);
          tps.push(outcome.tps);
          cpu.push((outcome.cpuSeconds * 1e6) / (outcome.processed * workload.statements));
          progress(
            `${processes} process(es), ${workload.name}: ${outcome.tps.toFixed(0)} TPS, ${cpu.at(-1).toFixed(0)} µs coordinator CPU per statement`,
          );
        }
        results.push({ processes, workload: workload.name, tps: median(tps), cpu: median(cpu) });
      }
    } finally {
      progress("stopping the cluster");
      await cluster.stop();
    }
  }
  const single = (workload) => results.find((r) => r.workload === workload && r.processes === options.processes[0]);
  const table = markdownTable(
    ["workload", "coordinator processes", "TPS (median)", `vs ${options.processes[0]}`, "coordinator CPU µs/statement"],
    results.map((r) => [
      r.workload,
      String(r.processes),
      r.tps.toFixed(0),
      `${(r.tps / single(r.workload).tps).toFixed(2)}×`,
      r.cpu.toFixed(0),
    ]),
    ["l", "r", "r", "r", "r"],
  );
  process.stdout.write(`\n${table}\n`);
  await writeBenchmarkSection(
    "scaling",
    `Coordinator processes sharing the SQL port (\`HERD_SQL_PROCESSES\`; the chart's \`coordinatorProcesses\`).

- date: ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC
- machine: nproc ${machine.nproc}, ${machine.model}; load average ${machine.load} before the run; Node ${machine.node}
- commit: ${machine.commit}; ${version}
- command: \`${["pnpm bench scaling", ...argv].join(" ")}\`

One \`herd up --workers ${WORKERS}\` cluster per process count (every server on this one machine);
\`pgbench -i -s ${options.scale}\` through herd, pgbench_accounts and pgbench_history distributed by
aid; then \`pgbench -n -M prepared ${CLIENTS.join(" ")} -T ${options.seconds}\`, ${options.rounds} runs per workload.
CPU per statement is that of every coordinator process (user + system, /proc) over the run,
divided by the statements served. On a machine whose cores the workers' PostgreSQL servers share,
more coordinator processes can only take what the servers leave.

${table}
`,
  );
  progress("wrote the scaling section of docs/benchmarks.md");
}

async function distribute(port, password) {
  const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", password, database: "postgres" });
  await client.connect();
  try {
    await client.query("SELECT create_distributed_table('pgbench_accounts', 'aid')");
    await client.query(
      "SELECT create_distributed_table('pgbench_history', 'aid', colocate_with => 'pgbench_accounts')",
    );
  } finally {
    await client.end();
  }
}

function progress(message) {
  process.stderr.write(`scaling: ${message}\n`);
}
