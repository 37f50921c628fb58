// pnpm bench protocol: the coordinator's protocol path. pgbench's select-only workload straight to
// the coordinator's own PostgreSQL ("postgres", SQL port + 1) and through herd's SQL port ("herd"),
// alternated run by run, in both query modes; reported as herd / postgres ratios of median TPS.
import { writeBenchmarkSection } from "./lib/benchmarks-doc.mjs";
import { startHerdCluster } from "./lib/herd-cluster.mjs";
import { describeMachine } from "./lib/machine.mjs";
import { parseIntegerOptions } from "./lib/options.mjs";
import { parsePgbenchReport, pgbench, pgbenchVersion } from "./lib/pgbench.mjs";
import { markdownTable, median } from "./lib/table.mjs";

export const description = "pgbench -S, prepared and simple: straight to PostgreSQL vs through herd's SQL port";

const MODES = ["prepared", "simple"];
const TARGETS = ["postgres", "herd"];
const CLIENTS = ["-c", "8", "-j", "2"];
/** The protocol issue's goal: through herd, at least this share of direct TPS. */
const TARGET_RATIO = 0.7;

const OPTIONS = {
  rounds: { default: 3, min: 1, help: "rounds; each runs every mode on postgres, then herd" },
  seconds: { default: 10, min: 1, help: "seconds per pgbench run" },
  warmup: { default: 3, min: 0, help: "seconds of unrecorded warm-up per mode through herd" },
  scale: { default: 10, min: 1, help: "pgbench -i scale factor" },
};

export async function run(argv, { signal }) {
  const options = parseIntegerOptions("protocol", argv, OPTIONS);
  if (!options) return;
  const password = process.env.HERD_PASSWORD ?? "postgres";
  const pgbenchAt = (args, port) => pgbench(args, { port, password, signal });
  const [version, machine] = await Promise.all([pgbenchVersion(), describeMachine()]);
  const select = (mode, seconds) => ["-n", "-S", "-M", mode, ...CLIENTS, "-T", String(seconds)];

  const runSeconds = (options.warmup + options.rounds * TARGETS.length * options.seconds) * MODES.length;
  progress(`starting herd up --workers 1 (then about ${runSeconds} s of pgbench runs)`);
  let started = Date.now();
  const cluster = await startHerdCluster({ workers: 1, signal });
  const ports = { postgres: cluster.postgresPort, herd: cluster.sqlPort };
  const runs = Object.fromEntries(MODES.map((mode) => [mode, { postgres: [], herd: [] }]));
  try {
    progress(`cluster ready in ${since(started)} (${cluster.dataDir}; herd ${ports.herd}, postgres ${ports.postgres})`);
    started = Date.now();
    await pgbenchAt(["-i", "-q", "-s", String(options.scale)], ports.herd);
    progress(`pgbench -i -s ${options.scale} through herd in ${since(started)}`);
    if (options.warmup > 0) {
      for (const mode of MODES) {
        const report = parsePgbenchReport(await pgbenchAt(select(mode, options.warmup), ports.herd));
        progress(`warm-up    ${mode.padEnd(8)}  herd      ${tps(report.tps).padStart(8)} tps (not recorded)`);
      }
    }
    for (let round = 1; round <= options.rounds; round += 1) {
      for (const mode of MODES) {
        for (const target of TARGETS) {
          const report = parsePgbenchReport(await pgbenchAt(select(mode, options.seconds), ports[target]));
          if (report.failed > 0) throw new Error(`${report.failed} failed transactions (${mode}, ${target})`);
          runs[mode][target].push(report.tps);
          progress(
            `round ${round}/${options.rounds}  ${mode.padEnd(8)}  ${target.padEnd(8)}  ${tps(report.tps).padStart(8)} tps (${report.processed} transactions)`,
          );
        }
      }
    }
  } finally {
    progress("stopping the cluster");
    await cluster.stop();
  }

  const table = markdownTable(
    [
      "mode",
      "postgres TPS (median)",
      "herd TPS (median)",
      "herd / postgres",
      `≥ ${TARGET_RATIO}?`,
      "postgres runs",
      "herd runs",
    ],
    MODES.map((mode) => {
      const direct = median(runs[mode].postgres);
      const herd = median(runs[mode].herd);
      return [
        mode,
        tps(direct),
        tps(herd),
        (herd / direct).toFixed(2),
        herd / direct >= TARGET_RATIO ? "yes" : "no",
        runs[mode].postgres.map(tps).join(" / "),
        runs[mode].herd.map(tps).join(" / "),
      ];
    }),
    ["l", "r", "r", "r", "l", "r", "r"],
  );
  process.stdout.write(`\n${table}\n`);

  const command = ["pnpm bench protocol", ...argv].join(" ");
  await writeBenchmarkSection(
    "protocol",
    `Target (the protocol issue): through herd, at least ${TARGET_RATIO} × the TPS of a direct connection, in each mode.

- date: ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC
- machine: nproc ${machine.nproc}, ${machine.model}; load average ${machine.load} before the run; Node ${machine.node}; ${version}
- commit: ${machine.commit}
- command: \`${command}\`

A \`herd up --workers 1\` cluster on tmpfs, loaded with \`pgbench -i -s ${options.scale}\` through herd's
SQL port. Then ${options.rounds} round${options.rounds === 1 ? "" : "s"} of \`pgbench -n -S -M <mode> ${CLIENTS.join(" ")} -T ${options.seconds}\`
per mode, each straight to the coordinator's own PostgreSQL ("postgres", SQL port + 1), then
through herd ("herd", SQL port), after ${options.warmup} s of unrecorded warm-up per mode through herd.
TPS without initial connection time; runs in order. pgbench, the coordinator and PostgreSQL
share the machine's ${machine.nproc} cores.

${table}
`,
  );
  progress("wrote the protocol section of docs/benchmarks.md");
}

function progress(message) {
  process.stderr.write(`protocol: ${message}\n`);
}

function since(start) {
  return `${((Date.now() - start) / 1000).toFixed(1)} s`;
}

function tps(value) {
  return Math.round(value).toLocaleString("en-US");
}
