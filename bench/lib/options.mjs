import { parseArgs } from "node:util";

/** A mistake in the command line: run.mjs prints it with the benchmark's help and exits 2. */
export class UsageError extends Error {}

/**
 * Parses `--name N` integer options after `spec` ({ name: { default, min, help, list } }), plus
 * `--help`. A `list` option takes comma-separated integers (`--rows 20000,100000`; its default is
 * an array) and yields an array. Returns the values, or undefined after printing the help when
 * asked for it.
 */
export function parseIntegerOptions(name, argv, spec) {
  const help = () =>
    [
      `usage: pnpm bench ${name} [options]`,
      ...Object.entries(spec).map(
        ([key, o]) => `  --${`${key} ${o.list ? "N,…" : "N"}`.padEnd(14)} ${o.help} (default ${[o.default].flat()})`,
      ),
    ].join("\n");
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        help: { type: "boolean" },
        ...Object.fromEntries(Object.keys(spec).map((key) => [key, { type: "string" }])),
      },
    }).values;
  } catch (error) {
    throw new UsageError(`${error.message}\n${help()}`);
  }
  if (parsed.help) {
    process.stdout.write(`${help()}\n`);
    return undefined;
  }
  const values = {};
  for (const [key, option] of Object.entries(spec)) {
    const texts = (parsed[key] ?? [option.default].flat().join(",")).split(option.list ? "," : undefined);
    const numbers = texts.map((text) => {
      const value = Number(text);
      if (!/^\d+$/.test(text) || value < option.min) {
        throw new UsageError(
          `--${key} must be ${option.list ? "integers" : "an integer"} ≥ ${option.min}, not "${text}"\n${help()}`,
        );
      }
      return value;
    });
    values[key] = option.list ? numbers : numbers[0];
  }
  return values;
}
