import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect } from "vitest";
import { type HerdUp, REPO, startHerdUp } from "../helpers/herd-up.js";
import { scratchDir } from "../helpers/scratch-dir.js";

/**
 * Helpers for the client tests: each runs a program written against a real client library (pgjdbc,
 * psycopg), which prints one JSON line per check, `{"check": name, "ok": bool, "detail": text}`.
 * The test asserts on each check by name, so a failure names the feature and the client's reason.
 */

export const CLIENTS_DIR = join(REPO, "test", "clients");
const CACHE = join(CLIENTS_DIR, ".cache");
const INSTALL_SCRIPT = join(CLIENTS_DIR, "install-deps.sh");

/** A version pinned in install-deps.sh, the one place that names it. */
export function pinnedVersion(name: "PGJDBC_VERSION" | "PSYCOPG_VERSION"): string {
  const match = new RegExp(`^${name}=(\\S+)$`, "m").exec(readFileSync(INSTALL_SCRIPT, "utf8"));
  if (!match?.[1]) throw new Error(`${name} is not set in ${INSTALL_SCRIPT}`);
  return match[1];
}

/** A file that install-deps.sh puts under .cache/. */
export function cached(relativePath: string): string {
  return join(CACHE, relativePath);
}

/**
 * When a client library is not installed, a run in which every check fails and says how to install
 * it: the tests fail rather than being skipped, as they would be if `beforeAll` threw.
 */
function missingInstall(path: string): CheckRun | undefined {
  if (existsSync(path)) return undefined;
  const notRun = `${path} is missing: install the client libraries with \`bash test/clients/install-deps.sh\``;
  return { code: null, checks: new Map(), stdout: "", stderr: "", notRun };
}

/**
 * Registers hooks that, when `installed` exists, start a one-worker cluster with `password`, run
 * the client program against it once (`run`), and stop the cluster afterwards. Read `.run` in tests.
 */
export function useClientChecks(
  name: string,
  options: { installed: string; password: string; run: (cluster: HerdUp) => Promise<CheckRun> },
): { readonly run: CheckRun } {
  let scratch: { path: string; remove(): Promise<void> } | undefined;
  let cluster: HerdUp | undefined;
  let run: CheckRun | undefined;
  beforeAll(async () => {
    run = missingInstall(options.installed);
    if (run) return;
    scratch = await scratchDir(name);
    cluster = await startHerdUp({ dataDir: scratch.path, workers: 1, env: { HERD_PASSWORD: options.password } });
    run = await options.run(cluster);
  });
  afterAll(async () => {
    await cluster?.stop();
    await scratch?.remove();
  });
  return {
    get run() {
      if (!run) throw new Error("the client checks have not run yet");
      return run;
    },
  };
}

export interface CheckResult {
  readonly check: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface CheckRun {
  readonly code: number | null;
  readonly checks: ReadonlyMap<string, CheckResult>;
  readonly stdout: string;
  readonly stderr: string;
  /** Why the program did not run at all. */
  readonly notRun?: string;
}

/** Runs a check program to its end (killed after `timeoutMs`) and collects its result lines. */
export function runChecks(command: string, args: string[], timeoutMs = 90_000): Promise<CheckRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${timeoutMs} ms)`;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      const checks = new Map<string, CheckResult>();
      for (const line of stdout.split("\n")) {
        if (!line.startsWith("{")) continue;
        const result = JSON.parse(line) as CheckResult;
        checks.set(result.check, result);
      }
      resolve({ code, checks, stdout, stderr });
    });
  });
}

/** Asserts that the program ran check `name` and that it passed; a failure shows the client's reason. */
export function expectCheck(run: CheckRun, name: string): void {
  if (run.notRun) throw new Error(run.notRun);
  const result = run.checks.get(name);
  const reason = result
    ? `${name} failed: ${result.detail}`
    : `${name} was not reported (exit code ${run.code})\n${run.stdout}\n${run.stderr}`;
  expect(result?.ok, reason).toBe(true);
}

/**
 * Asserts that the program ran exactly the checks the test knows about and ended normally: with
 * exit code 1 when a check failed (each check's own test reports that), else 0.
 */
export function expectCompleteRun(run: CheckRun, names: readonly string[]): void {
  if (run.notRun) throw new Error(run.notRun);
  expect([...run.checks.keys()].sort(), run.stderr).toEqual([...names].sort());
  const failed = [...run.checks.values()].some((result) => !result.ok);
  expect(run.code, `exit code ${run.code}\n${run.stderr}`).toBe(failed ? 1 : 0);
}
