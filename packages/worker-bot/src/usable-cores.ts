import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";

/**
 * The cores this process may use: the CPUs it may run on, capped by its cgroup's CPU quota and
 * rounded up (a Kubernetes CPU limit of 1.5 gives 2; no limit gives every CPU of the node). cgroup
 * v2's `cpu.max` ("max 100000" or "150000 100000"), else v1's cfs quota and period.
 */
export function usableCores(read: (path: string) => string = (path) => readFileSync(path, "utf8")): number {
  const cpus = availableParallelism();
  const quota = cgroupQuota(read);
  return quota === undefined ? cpus : Math.max(1, Math.min(cpus, Math.ceil(quota)));
}

/** The cgroup's CPU quota in cores; undefined when there is none (or no cgroup file to read). */
function cgroupQuota(read: (path: string) => string): number | undefined {
  const v2 = attempt(() => read("/sys/fs/cgroup/cpu.max").trim().split(/\s+/));
  if (v2) return v2[0] === "max" ? undefined : ratio(v2[0], v2[1]);
  const quota = attempt(() => read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").trim());
  const period = attempt(() => read("/sys/fs/cgroup/cpu/cpu.cfs_period_us").trim());
  return quota === undefined || quota === "-1" ? undefined : ratio(quota, period);
}

function ratio(quota: string | undefined, period: string | undefined): number | undefined {
  const cores = Number(quota) / Number(period ?? 100_000);
  return Number.isFinite(cores) && cores > 0 ? cores : undefined;
}

function attempt<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    return undefined;
  }
}
