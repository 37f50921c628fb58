import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/**
 * Where the kernel picks the local ports of outgoing connections: a port there that is free now
 * may be some connection's local port a moment later (the parallel test files open thousands), so
 * listening ports are picked below it.
 */
function ephemeralLow(): number {
  try {
    return Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]) || 32_768;
  } catch {
    return 32_768;
  }
}

/**
 * A random base port whose `count` consecutive ports are all free on 127.0.0.1. Random, because
 * test files run in parallel and each starts servers of its own; below the ephemeral range, so
 * that no outgoing connection takes one between the pick and the server's start.
 */
export async function freePortRange(count: number): Promise<number> {
  const low = 10_000;
  const high = Math.max(low + 1_000, ephemeralLow() - count);
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const base = low + Math.floor(Math.random() * (high - low));
    let allFree = true;
    for (let port = base; port < base + count && allFree; port += 1) allFree = await isFree(port);
    if (allFree) return base;
  }
  throw new Error(`no ${count} consecutive free ports found`);
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}
