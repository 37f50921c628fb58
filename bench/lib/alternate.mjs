// The side-by-side protocol every pgbench benchmark here follows: a warm-up through herd, then
// rounds in which each case runs on "postgres", then on "herd", so both see the same machine state.
import { cpuSeconds, cpuTimes } from "./coordinator-cpu.mjs";
import { parsePgbenchReport } from "./pgbench.mjs";
import { markdownTable, median } from "./table.mjs";

export const TARGETS = ["postgres", "herd"];

/**
 * Runs `cases` (names) alternately on each of `targets` (TARGETS unless given: a benchmark may add
 * a baseline of its own, e.g. "relay"); `pgbenchRun(name, target, seconds)` resolves with
 * pgbench's output. Resolves with the TPS of every run: runs[name][target] = [tps, …]; with
 * `coordinator` (its process ids), also the coordinator's CPU per transaction of each herd run:
 * runs[name].cpuPerTransaction = [seconds, …], and the system (kernel) part of it:
 * runs[name].systemPerTransaction; with `measured` (target → process ids, for targets other than
 * herd), the CPU per transaction of those processes: runs[name].cpuOf[target] = [seconds, …].
 */
export async function runAlternating({
  cases,
  rounds,
  seconds,
  warmup,
  pgbenchRun,
  progress,
  coordinator,
  targets = TARGETS,
  measured = {},
}) {
  const width = Math.max(...cases.map((name) => name.length));
  if (warmup > 0) {
    for (const name of cases) {
      const report = parsePgbenchReport(await pgbenchRun(name, "herd", warmup));
      progress(`warm-up    ${name.padEnd(width)}  herd      ${tps(report.tps).padStart(8)} tps (not recorded)`);
    }
  }
  const runs = Object.fromEntries(
    cases.map((name) => [
      name,
      {
        ...Object.fromEntries(targets.map((target) => [target, []])),
        cpuPerTransaction: [],
        systemPerTransaction: [],
        cpuOf: Object.fromEntries(Object.keys(measured).map((target) => [target, []])),
      },
    ]),
  );
  for (let round = 1; round <= rounds; round += 1) {
    for (const name of cases) {
      for (const target of targets) {
        const cpuBefore = coordinator && target === "herd" ? cpuTimes(coordinator) : undefined;
        const otherBefore = measured[target] ? cpuSeconds(measured[target]) : undefined;
        const report = parsePgbenchReport(await pgbenchRun(name, target, seconds));
        if (report.failed > 0) throw new Error(`${report.failed} failed transactions (${name}, ${target})`);
        runs[name][target].push(report.tps);
        let cpu = "";
        if (cpuBefore !== undefined) {
          const cpuAfter = cpuTimes(coordinator);
          const systemPerTransaction = (cpuAfter.system - cpuBefore.system) / report.processed;
          const perTransaction = (cpuAfter.user - cpuBefore.user) / report.processed + systemPerTransaction;
          runs[name].cpuPerTransaction.push(perTransaction);
          runs[name].systemPerTransaction.push(systemPerTransaction);
          cpu = `, coordinator ${(perTransaction * 1e6).toFixed(0)} µs CPU each`;
        }
        if (otherBefore !== undefined) {
          const perTransaction = (cpuSeconds(measured[target]) - otherBefore) / report.processed;
          runs[name].cpuOf[target].push(perTransaction);
          cpu = `, ${target} ${(perTransaction * 1e6).toFixed(0)} µs CPU each`;
        }
        progress(
          `round ${round}/${rounds}  ${name.padEnd(width)}  ${target.padEnd(8)}  ${tps(report.tps).padStart(8)} tps (${report.processed} transactions${cpu})`,
        );
      }
    }
  }
  return runs;
}

/** Medians, herd/postgres ratios and the verdict against `targetRatio` (for the cases `hasTarget` says). */
export function ratioTable(firstHeader, runs, targetRatio, hasTarget = () => true) {
  return markdownTable(
    [
      firstHeader,
      "postgres TPS (median)",
      "herd TPS (median)",
      "herd / postgres",
      `≥ ${targetRatio}?`,
      "postgres runs",
      "herd runs",
    ],
    Object.entries(runs).map(([name, { postgres, herd }]) => {
      const ratio = median(herd) / median(postgres);
      return [
        name,
        tps(median(postgres)),
        tps(median(herd)),
        ratio.toFixed(2),
        hasTarget(name) ? (ratio >= targetRatio ? "yes" : "no") : "(no target)",
        postgres.map(tps).join(" / "),
        herd.map(tps).join(" / "),
      ];
    }),
    ["l", "r", "r", "r", "l", "r", "r"],
  );
}

export function tps(value) {
  return Math.round(value).toLocaleString("en-US");
}

/**
 * The coordinator's CPU (user + system, all its processes) per transaction and per statement of
 * the herd runs, medians, and how much of it was system time; `statements[name]` is how many
 * statements a transaction of that case sends.
 */
export function cpuTable(firstHeader, runs, statements) {
  return markdownTable(
    [
      firstHeader,
      "coordinator CPU µs / transaction (median)",
      "statements / transaction",
      "µs / statement",
      "of which system (kernel)",
      "runs (µs / transaction)",
    ],
    Object.entries(runs).map(([name, { cpuPerTransaction, systemPerTransaction }]) => {
      const perTransaction = median(cpuPerTransaction) * 1e6;
      const system = median(systemPerTransaction) * 1e6;
      return [
        name,
        perTransaction.toFixed(0),
        String(statements[name]),
        (perTransaction / statements[name]).toFixed(0),
        `${(system / statements[name]).toFixed(0)} (${((100 * system) / perTransaction).toFixed(0)} %)`,
        cpuPerTransaction.map((value) => (value * 1e6).toFixed(0)).join(" / "),
      ];
    }),
    ["l", "r", "r", "r", "r", "r"],
  );
}
