import { sleep } from "@herd/shared";
import type pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { type HerdUp, startHerdUp } from "../helpers/herd-up.js";
import { scratchDir } from "../helpers/scratch-dir.js";
import { divergentShards, herdClient, preparedTransactions } from "./fault-kit.js";

// A shutdown of `herd up` (SIGTERM, as Kubernetes or systemd sends it) under 8 writers: every
// statement under way finishes and is answered before the sessions get 57P01, so an error the
// client saw means the write did not happen, and every acknowledged write is there after a restart.
let scratch: { path: string; remove(): Promise<void> } | undefined;
let cluster: HerdUp | undefined;

afterAll(async () => {
  await cluster?.stop();
  await scratch?.remove();
});

interface Outcomes {
  readonly acknowledged: number[];
  /** ids whose INSERT got an error with an SQLSTATE: they must not be there */
  readonly refused: { id: number; code: string }[];
  /** ids whose INSERT ended with the connection (no answer): either way */
  readonly unknown: number[];
}

async function write(client: pg.Client, writer: number, until: () => boolean, outcomes: Outcomes): Promise<void> {
  client.on("error", () => {});
  for (let n = 0; !until(); n += 1) {
    const id = writer * 1_000_000 + n;
    try {
      if (n % 3 === 0) {
        // a multi-shard write in a block: two rows, most likely on different workers
        await client.query("BEGIN");
        await client.query("INSERT INTO acks VALUES ($1, $2)", [id, writer]);
        await client.query("INSERT INTO acks VALUES ($1, $2)", [-id - 1, writer]);
        await client.query("COMMIT");
      } else await client.query("INSERT INTO acks VALUES ($1, $2)", [id, writer]);
      outcomes.acknowledged.push(id);
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code && !code.startsWith("08")) outcomes.refused.push({ id, code });
      else outcomes.unknown.push(id);
      return;
    }
  }
}

describe("herd up stopped under load", () => {
  it("answers every statement under way before 57P01, and keeps every acknowledged write", async () => {
    scratch = await scratchDir("shutdown");
    cluster = await startHerdUp({ dataDir: scratch.path, workers: 2 });
    const ports = { sqlPort: cluster.sqlPort, adminPort: cluster.adminPort };
    const setup = await herdClient(cluster);
    await setup.query("CREATE TABLE acks (id bigint PRIMARY KEY, writer int NOT NULL)");
    await setup.query("SELECT create_distributed_table('acks', 'id')");
    await setup.end();

    const outcomes: Outcomes = { acknowledged: [], refused: [], unknown: [] };
    const writers = await Promise.all(Array.from({ length: 8 }, () => herdClient(cluster as HerdUp)));
    const loops = writers.map((client, i) => write(client, i + 1, () => false, outcomes));
    await sleep(2_000);
    expect(await cluster.stop("SIGTERM")).toBe(0);
    await Promise.all(loops);
    expect(outcomes.acknowledged.length).toBeGreaterThan(50);
    // every writer ended with the shutdown's 57P01 (or its connection closing), not with a stray error
    expect(outcomes.refused.filter((r) => r.code !== "57P01")).toEqual([]);

    cluster = await startHerdUp({ dataDir: scratch.path, workers: 2, ports });
    const herd = await herdClient(cluster);
    herd.on("error", () => {});
    const all = new Set((await herd.query<{ id: string }>("SELECT id FROM acks")).rows.map((row) => Number(row.id)));
    const present = new Set([...all].filter((id) => id >= 0));
    const lost = outcomes.acknowledged.filter((id) => !present.has(id));
    const refusedButThere = outcomes.refused.filter((r) => present.has(r.id));
    expect({ lost, refusedButThere }).toEqual({ lost: [], refusedButThere: [] });
    // both rows of a block, or neither
    const halves = [...all].filter(
      (id) => (id >= 0 ? id % 1_000_000 : (-id - 1) % 1_000_000) % 3 === 0 && !all.has(-id - 1),
    );
    expect(halves).toEqual([]);
    expect(await divergentShards(cluster, herd, "acks")).toEqual([]);
    for (const ordinal of [1, 2]) expect(await preparedTransactions(cluster, ordinal)).toEqual([]);
    await herd.end();
  });
});
