import type pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { answer, connectTo, expectSameAnswer, type SameAnswerOptions } from "../helpers/differential.js";
import { useHerdCluster } from "../helpers/herd-up.js";
import { startTestPostgres, type TestPostgres } from "../helpers/postgres.js";
import { loadAnalytics } from "./analytics-schema.js";

/**
 * The machinery of the analytics differential files: one herd cluster (3 workers, 32 shards,
 * two placements each) and one plain PostgreSQL per file, loaded with the same schema and data,
 * and tables of cases that each register one test.
 *
 * A case is a SQL string, or an object with parameters (sent through the extended protocol) and
 * the comparison: by default rows are compared in order exactly when the statement's outermost
 * ORDER BY exists (then the order must be total), else as multisets; `orderKeys` names the output
 * columns of an ORDER BY with ties (see `orderedRuns`).
 */
export interface QueryCase extends SameAnswerOptions {
  readonly sql: string;
  readonly params?: unknown[];
}
export type Case = string | QueryCase;

export interface Sides {
  readonly herd: pg.Client;
  readonly plain: pg.Client;
}

/** The suite checks itself (see `useAnalyticsDatabases`); herd-only tests are skipped. */
export const selfCheck = Boolean(process.env.HERD_ANALYTICS_SELFCHECK);

/**
 * Starts herd and PostgreSQL for this file and loads both; read `sides()` inside tests.
 * HERD_ANALYTICS_SELFCHECK=1 checks the suite itself instead: a second plain PostgreSQL, with the
 * rows stored in the opposite order, stands in for herd, so every case must pass.
 */
export function useAnalyticsDatabases(name: string): { sides(): Sides; herdDataDir(): string } {
  const herdUp = selfCheck ? undefined : useHerdCluster(name, { workers: 3 });
  const servers: TestPostgres[] = [];
  let sides: Sides | undefined;
  beforeAll(async () => {
    servers.push(await startTestPostgres(`${name}-plain`));
    if (selfCheck) servers.push(await startTestPostgres(`${name}-reversed`));
    const herd = await connectTo(
      herdUp
        ? { host: "127.0.0.1", port: herdUp.cluster.sqlPort, user: "postgres", password: "postgres" }
        : (servers[1] as TestPostgres).connection,
    );
    const plain = await connectTo((servers[0] as TestPostgres).connection);
    await loadAnalytics(herd, plain, selfCheck);
    sides = { herd, plain };
  });
  afterAll(async () => {
    await sides?.herd.end();
    await sides?.plain.end();
    for (const server of servers) await server.stop();
  });
  return {
    sides() {
      if (!sides) throw new Error("the databases are not loaded yet");
      return sides;
    },
    herdDataDir() {
      if (!herdUp) throw new Error("no herd cluster in the self-check");
      return herdUp.cluster.dataDir;
    },
  };
}

/** Whether the statement's outermost level has ORDER BY (not one inside parentheses). */
export function outerOrderBy(sql: string): boolean {
  let depth = 0;
  let outer = "";
  for (const char of sql) {
    if (char === "(") depth += 1;
    else if (char === ")") depth -= 1;
    else if (depth === 0) outer += char;
  }
  return /\border\s+by\b/i.test(outer);
}

const asCase = (c: Case): QueryCase => (typeof c === "string" ? { sql: c } : c);
const title = (c: QueryCase) => `${c.sql.replace(/\s+/g, " ")}${c.params ? ` ${JSON.stringify(c.params)}` : ""}`;

/** One test per case: herd must answer exactly as the plain PostgreSQL does. */
export function sameAnswers(sides: () => Sides, cases: readonly Case[]): void {
  for (const c of cases.map(asCase)) {
    it(title(c), async () => {
      const { herd, plain } = sides();
      await expectSameAnswer(herd, plain, c.sql, c.params, {
        ordered: c.ordered ?? outerOrderBy(c.sql),
        orderKeys: c.orderKeys,
      });
    });
  }
}

/** What herd refused among the "answer or refuse" cases, printed at the end of the file. */
const refused: string[] = [];

/**
 * For shapes the issue lets herd refuse when it cannot answer them exactly: herd must either give
 * PostgreSQL's answer or refuse with 0A000 (feature not supported). A wrong answer, or any other
 * error, fails.
 */
export function sameAnswersOrRefusals(sides: () => Sides, cases: readonly Case[]): void {
  for (const c of cases.map(asCase)) {
    it(title(c), async () => {
      const { herd, plain } = sides();
      const fromHerd = await answer(herd, c.sql, c.params);
      if ("error" in fromHerd) {
        const fromPlain = await answer(plain, c.sql, c.params);
        expect("error" in fromPlain, `PostgreSQL answers ${c.sql}`).toBe(false);
        expect(fromHerd.error.code, `${c.sql}: ${fromHerd.error.message}`).toBe("0A000");
        refused.push(`${title(c)}\n    -> ${fromHerd.error.message}`);
        return;
      }
      await expectSameAnswer(herd, plain, c.sql, c.params, {
        ordered: c.ordered ?? outerOrderBy(c.sql),
        orderKeys: c.orderKeys,
      });
    });
  }
}

afterAll(() => {
  if (refused.length > 0) console.info(`herd refused (0A000) these optional shapes:\n  ${refused.join("\n  ")}`);
});

/** One test per case: herd must refuse the statement with this SQLSTATE and exact message. */
export function refusals(
  sides: () => Sides,
  cases: readonly { readonly sql: string; readonly message: string | RegExp; readonly code?: string }[],
): void {
  for (const c of cases) {
    it.skipIf(selfCheck)(c.sql.replace(/\s+/g, " "), async () => {
      const result = await answer(sides().herd, c.sql);
      expect("error" in result, `${c.sql} should fail, herd answered ${JSON.stringify(result).slice(0, 300)}`).toBe(
        true,
      );
      const { error } = result as { error: { code?: string; message: string } };
      expect(error.code, `${c.sql}: ${error.message}`).toBe(c.code ?? "0A000");
      if (typeof c.message === "string") expect(error.message).toBe(c.message);
      else expect(error.message).toMatch(c.message);
    });
  }
}
