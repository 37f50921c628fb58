/**
 * V8 flags for every Node process herd starts (a bot, a coordinator process sharing the SQL port).
 *
 * `--max-semi-space-size=4`: V8 grows the young generation of a busy process to two 16 MB
 * semi-spaces and keeps them; with 4 MB ones each process holds some 25–40 MB less (`pnpm bench
 * clients`: 1000 clients at once 372 → 293 MB for the coordinator's two processes) at the same
 * throughput (`pnpm bench router`, within run-to-run noise). The objects of a statement die young
 * either way; what outlives a statement (sessions, caches) is promoted after a scavenge or two.
 *
 * V8 reads its heap layout when the process starts (`v8.setFlagsFromString` later does not resize
 * it), so the flags go on the command line: `fork`'s `execArgv` here, the image's ENTRYPOINT.
 */
export const NODE_FLAGS: readonly string[] = ["--max-semi-space-size=4"];

/**
 * The `execArgv` for a Node process herd forks: this process's own (an inspector, a profiler
 * flag) and NODE_FLAGS, less any the user sets themselves on the command line or in NODE_OPTIONS.
 */
export function nodeExecArgv(
  execArgv: readonly string[] = process.execArgv,
  options = process.env.NODE_OPTIONS,
): string[] {
  const userSet = (flag: string) => {
    const name = flag.split("=")[0] as string;
    return (
      execArgv.some((arg) => arg.split("=")[0] === name) ||
      (options ?? "").split(/\s+/).some((arg) => arg.split("=")[0] === name)
    );
  };
  return [...execArgv, ...NODE_FLAGS.filter((flag) => !userSet(flag))];
}
