import { readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { REPO } from "./herd-cluster.mjs";

export const BENCHMARKS_DOC = join(REPO, "docs", "benchmarks.md");

const HEADER = `# Benchmarks

Figures from \`pnpm bench <name>\` (see \`bench/README.md\`): herd and plain PostgreSQL side by side,
alternated in one run on one machine. Each benchmark owns one \`## <name>\` section below and
rewrites only that section when it runs again. Compare ratios, not absolute figures, across machines.
`;

/**
 * Writes `body` as the section `## name` of docs/benchmarks.md: replaces that section (up to the
 * next `## ` heading) when it exists, else appends it; creates the file with its header if needed.
 */
export async function writeBenchmarkSection(name, body) {
  const existing = await readFile(BENCHMARKS_DOC, "utf8").catch((error) => {
    if (error.code === "ENOENT") return HEADER;
    throw error;
  });
  const lines = existing.trimEnd().split("\n");
  const section = [`## ${name}`, "", ...body.trimEnd().split("\n")];
  const start = lines.findIndex((line) => line.trimEnd() === `## ${name}`);
  if (start === -1) {
    lines.push("", ...section);
  } else {
    const next = lines.findIndex((line, i) => i > start && line.startsWith("## "));
    const end = next === -1 ? lines.length : next;
    lines.splice(start, end - start, ...section, ...(next === -1 ? [] : [""]));
  }
  const temporary = `${BENCHMARKS_DOC}.${process.pid}.tmp`;
  await writeFile(temporary, `${lines.join("\n")}\n`);
  await rename(temporary, BENCHMARKS_DOC);
}
