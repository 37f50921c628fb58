import { availableParallelism } from "node:os";
import { describe, expect, it } from "vitest";
import { usableCores } from "./usable-cores.js";

/** A reader of the given cgroup files; any other path is missing, as on a machine without them. */
const files = (contents: Record<string, string>) => (path: string) => {
  const content = contents[path];
  if (content === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: "ENOENT" });
  return content;
};

describe("usableCores", () => {
  const cpus = availableParallelism();

  it("is every CPU when no cgroup limits them", () => {
    expect(usableCores(files({}))).toBe(cpus);
    expect(usableCores(files({ "/sys/fs/cgroup/cpu.max": "max 100000\n" }))).toBe(cpus);
    expect(usableCores(files({ "/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1\n" }))).toBe(cpus);
  });

  it("rounds a cgroup v2 quota up, never above the CPUs there are, never below one", () => {
    expect(usableCores(files({ "/sys/fs/cgroup/cpu.max": "50000 100000\n" }))).toBe(1);
    expect(usableCores(files({ "/sys/fs/cgroup/cpu.max": `${cpus * 100000} 100000` }))).toBe(cpus);
    expect(usableCores(files({ "/sys/fs/cgroup/cpu.max": `${cpus * 1000000} 100000` }))).toBe(cpus);
    if (cpus >= 2) expect(usableCores(files({ "/sys/fs/cgroup/cpu.max": "150000 100000" }))).toBe(2);
  });

  it("reads cgroup v1's quota and period", () => {
    const v1 = {
      "/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "100000\n",
      "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n",
    };
    expect(usableCores(files(v1))).toBe(1);
  });
});
