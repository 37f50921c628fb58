import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const source = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));

// Tests import the packages' sources (one copy of every class, so instanceof holds); end-to-end
// tests start the built CLI (`pnpm test` builds first), exactly as a user runs it.
const alias = {
  "@herd/shared": source("shared"),
  "@herd/coordinator": source("coordinator"),
  "@herd/worker-bot": source("worker-bot"),
};

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
