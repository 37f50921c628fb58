import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const source = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));

// Tests import the packages' sources (one copy of every class, so instanceof holds); end-to-end
// tests start the built CLI (`pnpm test` builds first), exactly as a user runs it.
const alias = [
  { find: /^@herd\/shared$/, replacement: source("shared") },
  { find: /^@herd\/coordinator$/, replacement: source("coordinator") },
  {
    find: /^@herd\/coordinator\/server-setup$/,
    replacement: fileURLToPath(new URL("./packages/coordinator/src/server-setup.ts", import.meta.url)),
  },
  { find: /^@herd\/worker-bot$/, replacement: source("worker-bot") },
];

export default defineConfig({
  test: {
    projects: [
      {
        resolve: { alias },
        test: {
          name: "unit",
          include: ["packages/*/src/**/*.test.ts"],
          sequence: { groupOrder: 0 },
        },
      },
      {
        resolve: { alias },
        test: {
          name: "integration",
          include: ["test/**/*.test.ts"],
          // after the unit tests, which are quick and fail fast
          sequence: { groupOrder: 1 },
          // real PostgreSQL servers and clusters: two files at a time suits a 2-core machine
          pool: "forks",
          maxWorkers: 2,
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
