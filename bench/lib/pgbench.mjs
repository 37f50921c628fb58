import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";

/** `pgbench (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)`; throws a clear error when pgbench is missing. */
export async function pgbenchVersion() {
  try {
    const { stdout } = await promisify(execFile)("pgbench", ["--version"]);
    return stdout.trim();
  } catch (error) {
    throw new Error(
      `pgbench is needed (the PostgreSQL client tools, e.g. apt-get install postgresql-client): ${error.message}`,
    );
  }
}

/**
 * Runs pgbench against 127.0.0.1:`port` as user postgres on database postgres, with
 * `password` (TLS off, so that both targets speak plain TCP). Resolves with its stdout; a non-zero
 * exit rejects with pgbench's own messages. An abort of `signal` stops pgbench.
 */
export function pgbench(args, { port, password, signal }) {
  const fullArgs = [...args, "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "postgres"];
  return new Promise((resolve, reject) => {
    const child = spawn("pgbench", fullArgs, {
      env: { ...process.env, PGPASSWORD: password, PGSSLMODE: "disable" },
      stdio: ["ignore", "pipe", "pipe"],
      signal,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.once("error", reject);
    child.once("close", (code, signalName) => {
      if (code === 0) resolve(stdout);
      else {
        const output = `${stdout}${stderr}`.trimEnd().split("\n").slice(-20).join("\n");
        reject(new Error(`pgbench ${fullArgs.join(" ")} exited with ${code ?? signalName}:\n${output}`));
      }
    });
  });
}

/**
 * The figures of a pgbench run's report:
 *   number of transactions actually processed: 273367
 *   number of failed transactions: 0 (0.000%)
 *   tps = 55050.739791 (without initial connection time)
 * The failed-transactions line needs pgbench 15 or later.
 */
export function parsePgbenchReport(stdout) {
  const tps = stdout.match(/^tps = ([\d.]+) \(without initial connection time\)$/m);
  const processed = stdout.match(/^number of transactions actually processed: (\d+)/m);
  const failed = stdout.match(/^number of failed transactions: (\d+)/m);
  if (!tps || !processed || !failed) {
    throw new Error(
      `cannot read tps, processed and failed transactions from pgbench's report (pgbench 15+ needed):\n${stdout}`,
    );
  }
  return { tps: Number(tps[1]), processed: Number(processed[1]), failed: Number(failed[1]) };
}
