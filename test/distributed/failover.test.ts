import { execFileSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectTo } from "../helpers/differential.js";
import { useHerdCluster } from "../helpers/herd-up.js";

// A worker that is down: its PostgreSQL is killed for real (SIGKILL), and its bot is frozen
// (SIGSTOP) so it cannot restart it while the test looks. Every shard has a second placement on
// another worker, so reads must still answer, exactly; writes commit on the placements that are
// there and mark the missed ones stale, in the same coordinator transaction, so they are never
// read until repaired.
const herdUp = useHerdCluster("failover", { workers: 3 });
let herd: pg.Client;
let frozenBot: number | undefined;

const ROWS = 600;

beforeAll(async () => {
  herd = await connectTo({ host: "127.0.0.1", port: herdUp.cluster.sqlPort, user: "postgres", password: "postgres" });
  await herd.query("CREATE TABLE items (id int PRIMARY KEY, grp int NOT NULL, price numeric(10,2))");
  await herd.query("SELECT create_distributed_table('items', 'id')");
  const values = Array.from({ length: ROWS }, (_, i) => `(${i + 1}, ${i % 7}, ${(i % 50) / 4})`).join(", ");
  await herd.query(`INSERT INTO items VALUES ${values}`);
});

afterAll(async () => {
  if (frozenBot !== undefined) process.kill(frozenBot, "SIGCONT");
  await herd?.end();
});

async function killWorker(name: string): Promise<void> {
  const pidFile = join(herdUp.cluster.dataDir, name, "pgdata", "postmaster.pid");
  const postmaster = Number((await readFile(pidFile, "utf8")).split("\n")[0]);
  frozenBot = Number(execFileSync("ps", ["-o", "ppid=", "-p", String(postmaster)], { encoding: "utf8" }).trim());
  process.kill(frozenBot, "SIGSTOP");
  process.kill(postmaster, "SIGKILL");
  // its port closes once the postmaster is gone (a zombie: its frozen parent cannot reap it)
  for (let i = 0; i < 50; i += 1) {
    const state = execFileSync("ps", ["-o", "stat=", "-p", String(postmaster)], { encoding: "utf8" }).trim();
    if (state === "" || state.startsWith("Z")) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`PostgreSQL of ${name} did not stop`);
}

describe("reads when a worker is down", () => {
  it("answers multi-shard and single-shard reads from the other placements, exactly", async () => {
    const before = await herd.query("SELECT grp, count(*), sum(price) FROM items GROUP BY grp ORDER BY grp");
    const single = await herd.query("SELECT * FROM items WHERE id = ANY($1) ORDER BY id", [[1, 2, 3, 4, 5, 6, 7, 8]]);
    await killWorker("herd-2");

    const after = await herd.query("SELECT grp, count(*), sum(price) FROM items GROUP BY grp ORDER BY grp");
    expect(after.rows).toEqual(before.rows);
    const { rows } = await herd.query("SELECT count(*) AS n FROM items");
    expect(rows[0].n).toBe(String(ROWS));
    for (let id = 1; id <= 8; id += 1) {
      const one = await herd.query("SELECT * FROM items WHERE id = $1", [id]);
      expect(one.rows).toEqual(single.rows.filter((row) => row.id === id));
    }
    const plain = await herd.query("SELECT id FROM items WHERE grp = 3");
    expect(plain.rows.length).toBe(Array.from({ length: ROWS }, (_, i) => i % 7).filter((grp) => grp === 3).length);
  });

  it("commits a write on the placements that are there and marks the missed ones stale", async () => {
    const update = await herd.query("UPDATE items SET price = price + 1");
    expect(update.rowCount).toBe(ROWS);
    const { rows } = await herd.query("SELECT sum(price) AS total FROM items");
    const expected = Array.from({ length: ROWS }, (_, i) => (i % 50) / 4 + 1).reduce((a, b) => a + b, 0);
    expect(Number(rows[0].total)).toBe(expected);
    // herd-2's placements missed the write: stale (shardstate 3), every shard still has an active one
    const states = await herd.query<{ nodeport: number; shardstate: number; n: string }>(
      `SELECT nodeport, shardstate, count(*) AS n FROM citus_shards WHERE table_name::text = 'items'
        GROUP BY 1, 2 ORDER BY 1, 2`,
    );
    const stale = states.rows.filter((row) => row.shardstate === 3);
    expect(stale).toHaveLength(1);
    expect(Number(stale[0]?.n)).toBeGreaterThan(0);
    const perShard = await herd.query<{ active: string }>(
      `SELECT count(*) FILTER (WHERE shardstate = 1) AS active FROM citus_shards
        WHERE table_name::text = 'items' GROUP BY shardid`,
    );
    for (const row of perShard.rows) expect(Number(row.active)).toBeGreaterThanOrEqual(1);
  });
});
