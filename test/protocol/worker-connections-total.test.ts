import type pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { herdClient, onServer } from "../faults/fault-kit.js";
import { useHerdCluster } from "../helpers/herd-up.js";

// HERD_WORKER_CONNECTIONS bounds every connection a worker gets from the coordinator, herd's own
// work included (processes/sql-process-config.ts): the process that also runs herd's own work
// (2PC recovery every few seconds, repairs, moves; it never waits for room) leaves one of its
// share for it. One process and 4 here: sessions get 3, herd's own work the fourth.
const TOTAL = 4;
const herdUp = useHerdCluster("worker-connections-total", {
  workers: 2,
  env: { HERD_SQL_PROCESSES: "1", HERD_WORKER_CONNECTIONS: String(TOTAL) },
});
let admin: pg.Client;
const opened: pg.Client[] = [];

async function client(): Promise<pg.Client> {
  const session = await herdClient(herdUp.cluster);
  opened.push(session);
  return session;
}

/** Every connection worker 1 has from the coordinator now (the one asking left out). */
async function fromCoordinator(): Promise<number> {
  const rows = await onServer<{ n: number }>(
    herdUp.cluster,
    1,
    `SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE backend_type = 'client backend' AND application_name = 'herd' AND pid <> pg_backend_pid()`,
  );
  return rows[0]?.n ?? 0;
}

beforeAll(async () => {
  admin = await client();
  await admin.query("CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)");
  await admin.query("SELECT create_distributed_table('accounts', 'id')");
  await admin.query("INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 40) g");
}, 120_000);

afterAll(async () => {
  await Promise.all(opened.map((session) => session.end().catch(() => {})));
});

it("gives sessions one connection less than the total, so herd's own work fits within it", async () => {
  // three blocks that wrote hold a connection on each worker: the sessions' share is full
  const holders = [await client(), await client(), await client()];
  for (const [i, holder] of holders.entries()) {
    await holder.query("BEGIN");
    await holder.query("UPDATE accounts SET balance = balance + 1 WHERE id = $1", [i + 1]);
  }
  // a fourth session's read waits for room although the total is not reached
  const reader = await client();
  const read = reader.query<{ balance: number }>("SELECT balance FROM accounts WHERE id = 10");
  const early = await Promise.race([read.then(() => "answered"), new Promise((r) => setTimeout(r, 1_000, "waits"))]);
  expect(early).toBe("waits");
  // herd's own work meanwhile (2PC recovery, every 5 s) takes the fourth and stays within the total
  const seen: number[] = [];
  for (let i = 0; i < 60; i++) {
    seen.push(await fromCoordinator());
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  expect(Math.min(...seen)).toBeGreaterThanOrEqual(3);
  expect(Math.max(...seen)).toBeLessThanOrEqual(TOTAL);
  for (const holder of holders) await holder.query("COMMIT");
  expect((await read).rows).toEqual([{ balance: 100 }]);
  const { rows } = await admin.query("SELECT sum(balance)::int AS total FROM accounts");
  expect(rows).toEqual([{ total: 40 * 100 + 3 }]);
});
