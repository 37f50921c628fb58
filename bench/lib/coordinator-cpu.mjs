// What the coordinator spends: the CPU time of its processes (user + system, from /proc) around a
// run, and a CPU profile taken through the admin API (POST /v1/debug/cpu-profile) summarised as
// the functions with the most self time.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { markdownTable } from "./table.mjs";

const TICKS_PER_SECOND = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

/**
 * The coordinator's processes: the bot of ordinal 0 (the parent of its PostgreSQL's postmaster),
 * which runs the coordinator, and its other Node children (coordinator processes sharing the SQL
 * port), not PostgreSQL's.
 */
export async function coordinatorProcesses(cluster) {
  const pidFile = join(cluster.dataDir, "herd-0", "pgdata", "postmaster.pid");
  const postmaster = Number((await readFile(pidFile, "utf8")).split("\n")[0]);
  const bot = Number(stat(postmaster)[1]);
  const children = execFileSync("ps", ["-o", "pid=,comm=", "--ppid", String(bot)], { encoding: "utf8" })
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter(([pid, comm]) => pid && comm === "node")
    .map(([pid]) => Number(pid));
  return [bot, ...children];
}

/** CPU seconds (user + system) the processes have used so far; a process gone counts 0. */
export function cpuSeconds(pids) {
  const { user, system } = cpuTimes(pids);
  return user + system;
}

/**
 * CPU seconds the processes have used so far in user space (JavaScript, V8, Node, libuv) and in
 * the kernel (system calls, the loopback TCP they run, being switched out and in), apart.
 */
export function cpuTimes(pids) {
  let user = 0;
  let system = 0;
  for (const pid of pids) {
    try {
      const fields = stat(pid);
      user += Number(fields[11]);
      system += Number(fields[12]);
    } catch {
      // ended meanwhile
    }
  }
  return { user: user / TICKS_PER_SECOND, system: system / TICKS_PER_SECOND };
}

/** Resident memory of the processes, kB (a process gone counts 0). */
export function rssKb(pids) {
  let total = 0;
  for (const pid of pids) {
    try {
      const match = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      total += Number(match?.[1] ?? 0);
    } catch {
      // ended meanwhile
    }
  }
  return total;
}

/**
 * Memory the processes take from the machine, kB: their proportional set size (PSS), in which a
 * page several processes share (Node's binary and libraries, mapped by every coordinator process)
 * counts once in all, split between them, where the sum of their RSS counts it once per process.
 */
export function pssKb(pids) {
  let total = 0;
  for (const pid of pids) {
    try {
      const match = /^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
      total += Number(match?.[1] ?? 0);
    } catch {
      // ended meanwhile
    }
  }
  return total;
}

/** /proc/<pid>/stat's fields after the command name: [state, ppid, …] (utime is [11], stime [12]). */
function stat(pid) {
  const text = readFileSync(`/proc/${pid}/stat`, "utf8");
  return text.slice(text.lastIndexOf(")") + 2).split(" ");
}

/**
 * Wraps `run` (a pgbench run resolving with its output and report) to measure the coordinator's
 * CPU over it: resolves with what `run` resolves with, plus `cpuSeconds`.
 */
export async function measured(pids, run) {
  const before = cpuSeconds(pids);
  const result = await run();
  return { ...result, cpuSeconds: cpuSeconds(pids) - before };
}

/** A CPU profile of the coordinator for `seconds`, through the admin API. */
export async function takeCpuProfile(cluster, seconds) {
  const response = await fetch(`http://127.0.0.1:${cluster.adminPort}/v1/debug/cpu-profile`, {
    method: "POST",
    headers: { authorization: `Bearer ${cluster.adminToken()}`, "content-type": "application/json" },
    body: JSON.stringify({ seconds }),
  });
  if (!response.ok) throw new Error(`cpu profile: ${response.status} ${await response.text()}`);
  return response.json();
}

/**
 * The `top` functions by self time in a .cpuprofile, as a markdown table (function, where, self
 * time, share of the sampled time, idle left out of the share), and the share of idle time.
 */
export function profileSummary(profile, top = 10) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfMicros = new Map();
  let total = 0;
  let idle = 0;
  profile.samples.forEach((id, i) => {
    const micros = profile.timeDeltas[i] ?? 0;
    const frame = byId.get(id)?.callFrame;
    total += micros;
    if (!frame || frame.functionName === "(idle)") {
      idle += micros;
      return;
    }
    const file = frame.url
      ? frame.url
          .replace(/^file:\/\//, "")
          .split("/")
          .slice(-2)
          .join("/")
      : "";
    const key = `${frame.functionName || "(anonymous)"}\u0000${file}${file ? `:${frame.lineNumber + 1}` : ""}`;
    selfMicros.set(key, (selfMicros.get(key) ?? 0) + micros);
  });
  const busy = total - idle;
  const rows = [...selfMicros]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([key, micros]) => {
      const [name, where] = key.split("\u0000");
      return [
        `\`${name}\``,
        where ? `\`${where}\`` : "",
        `${(micros / 1000).toFixed(0)} ms`,
        `${((100 * micros) / busy).toFixed(1)} %`,
      ];
    });
  return {
    table: markdownTable(["function", "where", "self time", "share of busy time"], rows, ["l", "l", "r", "r"]),
    busyShare: busy / total,
  };
}
