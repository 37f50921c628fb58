import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { sleep } from "@herd/shared";
import type pg from "pg";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useHerdCluster } from "../helpers/herd-up.js";
import { divergentShards, herdBackends, herdClient, preparedTransactions, within } from "./fault-kit.js";

// Clients on the same rows, with pgbench: one hot row under 4 clients, and pgbench's TPC-B-like
// workload on distributed tables (replication factor 2) under 8 clients, which all update the
// one branch row. Before two-phase commit and coordinator locks, the first hung forever after one
// transaction. Now: no failed and no stuck transaction, the sums agree, the copies are identical.
// `pnpm test:faults` runs each for minutes (HERD_FAULT_SECONDS); CI for a few seconds.
const SECONDS = Number(process.env.HERD_FAULT_SECONDS ?? 8);
const herdUp = useHerdCluster("contention", { workers: 3 });
let herd: pg.Client;
const run = promisify(execFile);

async function pgbench(...args: string[]): Promise<string> {
  const { stdout, stderr } = await run(
    "pgbench",
    ["-h", "127.0.0.1", "-p", String(herdUp.cluster.sqlPort), "-U", "postgres", ...args, "postgres"],
    { env: { ...process.env, PGPASSWORD: "postgres" }, timeout: (SECONDS + 60) * 1000 },
  );
  return stdout + stderr;
}

/** "number of transactions actually processed: N" */
function processed(out: string): number {
  return Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1]);
}

/**
 * A hand-off table's copies are identical, and each row's n is what its updater was told (the
 * rows it updated: 1, or 0 when it came first); resolves with the number of rows.
 */
async function expectCopiesAgree(
  table: "handoff" | "handoff_copy",
  told: ReadonlyMap<number, number>,
): Promise<number> {
  expect(await divergentShards(herdUp.cluster, herd, table)).toEqual([]);
  // the table's name is one of the two above, not input
  const { rows } = await herd.query<{ id: number; n: number }>(`SELECT id, n FROM ${table}`);
  const wrong = rows
    .filter((row) => told.get(row.id) !== row.n)
    .map((row) => `${row.id}: told ${told.get(row.id)}, n ${row.n}`);
  expect(wrong).toEqual([]);
  return rows.length;
}

beforeAll(async () => {
  herd = await herdClient(herdUp.cluster);
});

afterAll(async () => {
  await herd?.end();
});

describe("clients on the same rows", () => {
  it(`one hot row, 4 pgbench clients for ${SECONDS} s: every transaction commits, none is lost`, async () => {
    await herd.query("CREATE TABLE hot (id int PRIMARY KEY, n bigint NOT NULL DEFAULT 0)");
    await herd.query("INSERT INTO hot VALUES (1, 0)");
    await herd.query("SELECT create_distributed_table('hot', 'id')");
    const script = join(herdUp.dir, "hot.sql");
    await writeFile(script, "UPDATE hot SET n = n + 1 WHERE id = 1;\n");
    const out = await pgbench("-n", "-c", "4", "-j", "2", "-T", String(SECONDS), "-f", script);
    expect(out).toMatch(/number of failed transactions: 0 \(0\.000%\)/);
    const done = processed(out);
    expect(done).toBeGreaterThan(SECONDS * 10);
    expect((await herd.query("SELECT n FROM hot WHERE id = 1")).rows).toEqual([{ n: String(done) }]);
    console.log(`hot row: ${done} transactions in ${SECONDS} s, 4 clients`);
  });

  it(`pgbench TPC-B on distributed tables, 8 clients for ${SECONDS} s: none failed or stuck, the sums agree`, async () => {
    await pgbench("-i", "-s", "1", "-q");
    await herd.query("SELECT create_distributed_table('pgbench_accounts', 'aid')");
    await herd.query("SELECT create_distributed_table('pgbench_branches', 'bid')");
    await herd.query("SELECT create_distributed_table('pgbench_tellers', 'tid')");
    await herd.query("SELECT create_distributed_table('pgbench_history', 'aid')");
    const out = await pgbench("-n", "-M", "prepared", "-c", "8", "-j", "2", "-T", String(SECONDS));
    expect(out).toMatch(/number of failed transactions: 0 \(0\.000%\)/);
    const done = processed(out);
    expect(done).toBeGreaterThan(SECONDS * 10);
    const sums = await herd
      .query(
        `SELECT (SELECT sum(abalance) FROM pgbench_accounts) AS accounts, (SELECT sum(bbalance) FROM pgbench_branches) AS branches,
              (SELECT sum(tbalance) FROM pgbench_tellers) AS tellers, (SELECT sum(delta) FROM pgbench_history) AS history,
              (SELECT count(*) FROM pgbench_history) AS transactions`,
      )
      .catch(async () => {
        // (scalar subqueries over several distributed tables may be refused: ask one by one)
        const one = async (sql: string) => (await herd.query(sql)).rows[0].v as string;
        return {
          rows: [
            {
              accounts: await one("SELECT sum(abalance) AS v FROM pgbench_accounts"),
              branches: await one("SELECT sum(bbalance) AS v FROM pgbench_branches"),
              tellers: await one("SELECT sum(tbalance) AS v FROM pgbench_tellers"),
              history: await one("SELECT sum(delta) AS v FROM pgbench_history"),
              transactions: await one("SELECT count(*) AS v FROM pgbench_history"),
            },
          ],
        };
      });
    const [row] = sums.rows;
    expect(row.branches).toBe(row.accounts);
    expect(row.tellers).toBe(row.accounts);
    expect(row.history).toBe(row.accounts);
    expect(Number(row.transactions)).toBe(done);
    console.log(`TPC-B: ${done} transactions in ${SECONDS} s, 8 clients`);
    expect(await divergentShards(herdUp.cluster, herd)).toEqual([]);
    // (the last commits' second phase may still be under way for a moment after pgbench's answer)
    for (const ordinal of [1, 2, 3]) {
      await within(5_000, `nothing prepared or open on herd-${ordinal}`, async () => {
        const prepared = await preparedTransactions(herdUp.cluster, ordinal);
        return prepared.length === 0 && (await herdBackends(herdUp.cluster, ordinal)).length === 0;
      });
    }
  });
  it("a write acknowledged to one client is what another client's next statement reads", async () => {
    // the workers' COMMIT PREPAREDs finish after the writer is answered: a reader that comes
    // right after (as a web app's next request on another pooled connection does) must still
    // see the write, as with one PostgreSQL
    await herd.query("CREATE TABLE seen (id int PRIMARY KEY, n int NOT NULL)");
    await herd.query("SELECT create_distributed_table('seen', 'id', shard_count => 4)");
    await herd.query("INSERT INTO seen SELECT g, 0 FROM generate_series(1, 8) g");
    const reader = await herdClient(herdUp.cluster);
    try {
      const missed: string[] = [];
      for (let round = 1; round <= 150; round += 1) {
        // one row (two placements: two phases) and every row (every worker), in turn
        const where = round % 2 === 0 ? "WHERE id = 3" : "";
        await herd.query(`UPDATE seen SET n = $1 ${where}`, [round]);
        const { rows } = await reader.query("SELECT min(n)::int AS n FROM seen WHERE n > 0 AND id = 3");
        if (rows[0].n !== round) missed.push(`round ${round}: read ${rows[0].n}`);
      }
      expect(missed).toEqual([]);
    } finally {
      await reader.end();
    }
  });

  it("a row one client inserts, updated by another client waiting for it: the copies agree", async () => {
    // the updater waits for the inserter's write lock on the coordinator, which the inserter's
    // COMMIT lets go before the workers' COMMIT PREPAREDs are done (in another coordinator
    // process, nothing tells the updater about them): on a copy where the insert is not committed
    // yet the row is invisible, so that copy alone would miss the UPDATE
    await herd.query("CREATE TABLE handoff (id int PRIMARY KEY, n int NOT NULL)");
    await herd.query("SELECT create_distributed_table('handoff', 'id')");
    const pairs = await Promise.all(
      Array.from({ length: 4 }, async () => [await herdClient(herdUp.cluster), await herdClient(herdUp.cluster)]),
    );
    const told = new Map<number, number>();
    try {
      await Promise.all(
        pairs.map(async ([inserter, updater], pair) => {
          for (let k = 0; k < 40; k += 1) {
            const id = pair * 1_000 + k;
            await inserter?.query("BEGIN");
            await inserter?.query("INSERT INTO handoff VALUES ($1, 0)", [id]);
            const updated = updater?.query("UPDATE handoff SET n = n + 1 WHERE id = $1", [id]);
            await sleep(5);
            await inserter?.query("COMMIT");
            told.set(id, (await updated)?.rowCount ?? -1);
          }
        }),
      );
    } finally {
      await Promise.all(pairs.flat().map((client) => client.end()));
    }
    await expectCopiesAgree("handoff", told);
    console.log(
      `handoff: ${told.size} rows, updater saw the insert in ${[...told.values()].filter((n) => n === 1).length}`,
    );
  });

  it("rows a COPY loads, updated by a client waiting for it: the copies agree", async () => {
    // the same hand-off as above, from a COPY (which locks whole shards while it loads)
    await herd.query("CREATE TABLE handoff_copy (id int PRIMARY KEY, n int NOT NULL)");
    await herd.query("SELECT create_distributed_table('handoff_copy', 'id')");
    const { sqlPort } = herdUp.cluster;
    const loader = postgres({ host: "127.0.0.1", port: sqlPort, user: "postgres", password: "postgres", max: 1 });
    const updater = await herdClient(herdUp.cluster);
    const told = new Map<number, number>();
    try {
      for (let id = 1; id <= 60; id += 1) {
        const copy = await loader`COPY handoff_copy (id, n) FROM STDIN`.writable();
        copy.write(`${id}\t0\n`);
        const updated = updater.query("UPDATE handoff_copy SET n = n + 1 WHERE id = $1", [id]);
        await sleep(5);
        await new Promise<void>((resolve, reject) => {
          copy.on("error", reject);
          copy.on("finish", resolve);
          copy.end();
        });
        told.set(id, (await updated).rowCount ?? -1);
      }
    } finally {
      await updater.end();
      await loader.end();
    }
    expect(await expectCopiesAgree("handoff_copy", told)).toBe(60);
  });
});
