import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { sleep } from "@herd/shared";

/** A long-running child process whose output goes to a log file, stopped by `stop()`. */
export class ManagedProcess {
  private readonly exited: Promise<number | null>;

  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly logFile: string,
  ) {
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
      else child.once("exit", (code) => resolve(code));
    });
  }

  static start(
    name: string,
    command: string,
    args: readonly string[],
    options: { logFile: string; env?: NodeJS.ProcessEnv; cwd?: string },
  ): ManagedProcess {
    const log = createWriteStream(options.logFile, { flags: "a" });
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    child.once("exit", () => setTimeout(() => log.end(), 100));
    return new ManagedProcess(name, child, options.logFile);
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  async log(): Promise<string> {
    return readFile(this.logFile, "utf8").catch(() => "");
  }

  /** The last lines of the log, for an error message. */
  async tail(lines = 30): Promise<string> {
    return (await this.log()).trimEnd().split("\n").slice(-lines).join("\n");
  }

  /** Polls `check` until it holds; fails early (with the log's tail) if the process ends. */
  async waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await check().catch(() => false)) return;
      if (!this.running) throw new Error(`${this.name} exited before ${what}:\n${await this.tail()}`);
      if (Date.now() > deadline)
        throw new Error(`${this.name}: no ${what} after ${timeoutMs} ms:\n${await this.tail()}`);
      await sleep(200);
    }
  }

  /** Sends `signal`, and SIGKILL after `graceMs`; resolves with the exit code. */
  async stop(signal: NodeJS.Signals = "SIGTERM", graceMs = 15_000): Promise<number | null> {
    if (this.running) this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves with the exit code once the process has ended by itself. */
  exitCode(): Promise<number | null> {
    return this.exited;
  }
}
