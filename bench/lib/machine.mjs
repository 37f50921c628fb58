import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { availableParallelism, loadavg } from "node:os";
import { promisify } from "node:util";
import { REPO } from "./herd-cluster.mjs";

/**
 * What a figure was measured on: cores, CPU model, the 1-minute load average before the run (other
 * work on the machine skews a benchmark), Node, and the commit (with or without local changes).
 */
export async function describeMachine() {
  const cpuinfo = await readFile("/proc/cpuinfo", "utf8").catch(() => "");
  const model = cpuinfo.match(/^model name\s*:\s*(.+)$/m)?.[1].trim() ?? "unknown CPU";
  return {
    nproc: availableParallelism(),
    model,
    load: loadavg()[0].toFixed(2),
    node: process.version,
    commit: await gitCommit(),
  };
}

async function gitCommit() {
  const git = (...args) => promisify(execFile)("git", args, { cwd: REPO }).then(({ stdout }) => stdout.trim());
  try {
    const commit = await git("rev-parse", "--short", "HEAD");
    return (await git("status", "--porcelain")) ? `${commit} with uncommitted changes` : commit;
  } catch {
    return "unknown";
  }
}
