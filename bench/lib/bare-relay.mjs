// A bare Node relay in front of a PostgreSQL (bare-relay-process.mjs), in a process of its own so
// that its CPU is measured apart.
import { fork } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";

const ENTRY = join(import.meta.dirname, "bare-relay-process.mjs");

/** Starts the relay to `upstreamPort`; resolves with its `port`, its `pid` and `stop()`. */
export async function startBareRelay(upstreamPort) {
  const child = fork(ENTRY, [String(upstreamPort)], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const [message] = await Promise.race([
    once(child, "message"),
    once(child, "exit").then(([code]) => {
      throw new Error(`the bare relay exited (${code}) before listening`);
    }),
  ]);
  return {
    port: message.port,
    pid: child.pid,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, "exit");
      child.kill();
      await exited;
    },
  };
}
