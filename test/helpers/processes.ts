import { readdirSync, readFileSync } from "node:fs";

export interface ProcessInfo {
  readonly pid: number;
  readonly cmdline: string;
  readonly env: Record<string, string>;
}

/** Every process on this machine whose command line or environment mentions `text`. */
export function processesMentioning(text: string): ProcessInfo[] {
  return allProcesses().filter(
    (p) => p.cmdline.includes(text) || Object.values(p.env).some((value) => value.includes(text)),
  );
}

/** The bot process of `podName` whose volume lies under `dataDir`. */
export function botPid(dataDir: string, podName: string): number | undefined {
  return allProcesses().find(
    (p) => p.env.POD_NAME === podName && p.env.HERD_DATA_DIR?.startsWith(dataDir) && p.cmdline.includes(" bot"),
  )?.pid;
}

function allProcesses(): ProcessInfo[] {
  const found: ProcessInfo[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").replaceAll("\0", " ").trim();
      if (!cmdline) continue; // kernel thread or zombie
      const env: Record<string, string> = {};
      for (const pair of readFileSync(`/proc/${entry}/environ`, "utf8").split("\0")) {
        const at = pair.indexOf("=");
        if (at > 0) env[pair.slice(0, at)] = pair.slice(at + 1);
      }
      found.push({ pid: Number(entry), cmdline, env });
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}
