// pnpm bench protocol: the coordinator's protocol path. pgbench's select-only workload straight to
// the coordinator's own PostgreSQL ("postgres", SQL port + 1), through a bare Node relay to it
// ("relay": the floor of any proxy written in Node on this machine) and through herd's SQL port
// ("herd"), alternated run by run, in both query modes; reported as ratios of median TPS.
import { cpuTable, ratioTable, runAlternating, tps } from "./lib/alternate.mjs";
import { startBareRelay } from "./lib/bare-relay.mjs";
import { writeBenchmarkSection } from "./lib/benchmarks-doc.mjs";
import { coordinatorProcesses, profileSummary, takeCpuProfile } from "./lib/coordinator-cpu.mjs";
import { startHerdCluster } from "./lib/herd-cluster.mjs";
import { describeMachine } from "./lib/machine.mjs";
import { parseIntegerOptions } from "./lib/options.mjs";
import { pgbench, pgbenchVersion } from "./lib/pgbench.mjs";
import { markdownTable, median } from "./lib/table.mjs";

export const description =
  "pgbench -S, prepared and simple: straight to PostgreSQL vs through a bare Node relay vs through herd's SQL port";

const MODES = ["prepared", "simple"];
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
  // the coordinator's own PostgreSQL takes herd's internal password (cluster.passwordFor)
  let passwordFor = () => password;
  const pgbenchAt = (args, port) => pgbench(args, { port, password: passwordFor(port), signal });
  const [version, machine] = await Promise.all([pgbenchVersion(), describeMachine()]);
  const select = (mode, seconds) => ["-n", "-S", "-M", mode, ...CLIENTS, "-T", String(seconds)];

  const targets = ["postgres", "relay", "herd"];
  const runSeconds = (options.warmup + options.rounds * targets.length * options.seconds) * MODES.length;
  progress(`starting herd up --workers 1 (then about ${runSeconds} s of pgbench runs)`);
  let started = Date.now();
  const cluster = await startHerdCluster({ workers: 1, signal });
  let relay;
  const ports = { postgres: cluster.postgresPort, herd: cluster.sqlPort };
  // the relay's clients log in to the coordinator's PostgreSQL, with its password
  passwordFor = (port) => cluster.passwordFor(port === ports.relay ? ports.postgres : port, password);
  let runs;
  let profile;
  try {
    relay = await startBareRelay(ports.postgres);
    ports.relay = relay.port;
    progress(`cluster ready in ${since(started)} (${cluster.dataDir}; herd ${ports.herd}, postgres ${ports.postgres})`);
    started = Date.now();
    await pgbenchAt(["-i", "-q", "-s", String(options.scale)], ports.herd);
    progress(`pgbench -i -s ${options.scale} through herd in ${since(started)}`);
    runs = await runAlternating({
      cases: MODES,
      rounds: options.rounds,
      seconds: options.seconds,
      warmup: options.warmup,
      pgbenchRun: (mode, target, seconds) => pgbenchAt(select(mode, seconds), ports[target]),
      progress,
      coordinator: await coordinatorProcesses(cluster),
      targets,
      measured: { relay: [relay.pid] },
    });
    // one more prepared run through herd, profiled (not counted: sampling costs a little)
    const profiling = takeCpuProfile(cluster, Math.max(1, options.seconds - 1));
    await pgbenchAt(select("prepared", options.seconds), ports.herd);
    profile = profileSummary(await profiling);
  } finally {
    progress("stopping the cluster");
    await relay?.stop();
    await cluster.stop();
  }

  const table = ratioTable("mode", runs, TARGET_RATIO);
  const cpu = cpuTable("mode", runs, { prepared: 1, simple: 1 });
  const floor = relayTable(runs);
  process.stdout.write(`\n${table}\n\n${floor}\n\n${cpu}\n\n${profile.table}\n`);

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
through a bare Node relay to it ("relay"), then through herd ("herd", SQL port), after
${options.warmup} s of unrecorded warm-up per mode through herd.
TPS without initial connection time; runs in order. pgbench, the coordinator and PostgreSQL
share the machine's ${machine.nproc} cores.

${table}

The floor: a bare Node relay (bench/lib/bare-relay-process.mjs, in a process of its own) passes each client's bytes to a connection of its own to the same PostgreSQL and back,
parsing nothing. It is the least any proxy written in Node does per statement (a read and a write
on each of its two sockets); herd also authenticates, parses and answers the protocol itself.

${floor}

The coordinator's CPU per statement of the herd runs (user + system time of its processes from
\`/proc\`, over the run, divided by the statements pgbench counted):

${cpu}

A CPU profile of the coordinator (\`POST /v1/debug/cpu-profile\`) over one more prepared run through
herd, the functions with the most self time (busy ${(profile.busyShare * 100).toFixed(0)} % of the sampled time):

${profile.table}
`,
  );
  progress("wrote the protocol section of docs/benchmarks.md");
}

/** The bare relay against PostgreSQL and herd against the relay: TPS ratios and the relay's CPU. */
function relayTable(runs) {
  return markdownTable(
    [
      "mode",
      "relay TPS (median)",
      "relay / postgres",
      "herd / relay",
      "relay CPU µs / statement (median)",
      "relay runs",
    ],
    Object.entries(runs).map(([mode, r]) => [
      mode,
      tps(median(r.relay)),
      (median(r.relay) / median(r.postgres)).toFixed(2),
      (median(r.herd) / median(r.relay)).toFixed(2),
      (median(r.cpuOf.relay) * 1e6).toFixed(0),
      r.relay.map(tps).join(" / "),
    ]),
    ["l", "r", "r", "r", "r", "r"],
  );
}

function progress(message) {
  process.stderr.write(`protocol: ${message}\n`);
}

function since(start) {
  return `${((Date.now() - start) / 1000).toFixed(1)} s`;
}
