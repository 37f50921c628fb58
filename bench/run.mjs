// pnpm bench <name> [options]: runs bench/<name>.mjs, which exports `description` and
// `run(argv, { signal })`. Ctrl-C aborts `signal`; the benchmark then stops what it started.
import { readdir } from "node:fs/promises";
import { UsageError } from "./lib/options.mjs";

const [name, ...argv] = process.argv.slice(2);
const benchmarks = await Promise.all(
  (await readdir(import.meta.dirname))
    .filter((file) => file.endsWith(".mjs") && file !== "run.mjs")
    .sort()
    .map(async (file) => ({ name: file.slice(0, -".mjs".length), module: await import(`./${file}`) })),
);
const benchmark = benchmarks.find((candidate) => candidate.name === name);

if (!benchmark) {
  if (name !== undefined) process.stderr.write(`bench: no benchmark named "${name}"\n`);
  const width = Math.max(...benchmarks.map((b) => b.name.length));
  process.stderr.write(
    `usage: pnpm bench <name> [options]   (pnpm bench <name> --help for its options)\n\n${benchmarks
      .map((b) => `  ${b.name.padEnd(width)}  ${b.module.description}`)
      .join("\n")}\n`,
  );
  process.exit(2);
}

const controller = new AbortController();
const onSignal = (signal) => {
  if (controller.signal.aborted) {
    process.stderr.write("bench: still stopping what the benchmark started…\n");
    return;
  }
  process.stderr.write(`\nbench: ${signal === "SIGINT" ? "interrupted" : `received ${signal}`}; stopping…\n`);
  controller.abort(new Error(`interrupted by ${signal}`));
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

try {
  await benchmark.module.run(argv, { signal: controller.signal });
} catch (error) {
  if (controller.signal.aborted) {
    process.exitCode = 130;
  } else if (error instanceof UsageError) {
    process.stderr.write(`bench ${name}: ${error.message}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`bench ${name}: ${error.message}\n`);
    process.exitCode = 1;
  }
}
