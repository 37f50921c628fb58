import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { herdClient, onServer } from "../faults/fault-kit.js";
import { answer } from "../helpers/differential.js";
import { useHerdCluster } from "../helpers/herd-up.js";

// The guard inside the coordinator's PostgreSQL (packages/worker-bot/shell-guard): herd plans what
// clients send it and refuses a function whose body names a distributed table, but PostgreSQL can
// still reach a table's empty shell behind herd's back — dynamic SQL whose text is built at run
// time, a trigger on a local table, a column default, a rule made before the table was
// distributed. Each of these read (or wrote) the empty shell before — a wrong answer: 0 for a
// count, 'no item' for an item that exists — now each fails with 0A000 naming the table, and leaves
// nothing half-done.
const herdUp = useHerdCluster("shell-guard", { workers: 2 });
let herd: pg.Client;

const SHELL_REFUSAL = /"public\.items" is distributed: the coordinator's PostgreSQL holds only its empty shell/;

beforeAll(async () => {
  herd = await herdClient(herdUp.cluster);
  for (const sql of [
    "CREATE TABLE items (id int PRIMARY KEY, kind int)",
    "INSERT INTO items SELECT i, i % 3 FROM generate_series(1, 60) i",
    // a rule made before the table was distributed (herd refuses CREATE RULE over distributed tables)
    "CREATE TABLE inbox (id int)",
    "CREATE RULE forward AS ON INSERT TO inbox DO ALSO INSERT INTO items VALUES (NEW.id, 9)",
    "SELECT create_distributed_table('items', 'id', shard_count => 4)",
    "CREATE TABLE notes (id int, body text)",
    "INSERT INTO notes VALUES (1, 'a'), (2, 'b')",
    // the table's name reaches EXECUTE only at run time: herd cannot see it in the body
    `CREATE FUNCTION count_of(t text) RETURNS bigint LANGUAGE plpgsql AS $$
       DECLARE n bigint; BEGIN EXECUTE format('SELECT count(*) FROM %I', t) INTO n; RETURN n; END $$`,
  ])
    await herd.query(sql);
}, 120_000);

afterAll(async () => {
  await herd?.end();
});

async function expectShellRefusal(sql: string) {
  const result = await answer(herd, sql);
  expect(result, sql).toMatchObject({ error: { code: "0A000" } });
  expect((result as { error: { message: string } }).error.message).toMatch(SHELL_REFUSAL);
}

describe("the coordinator's PostgreSQL refuses statements that reach a shell", () => {
  it("is loaded on the coordinator", async () => {
    expect(await onServer(herdUp.cluster, 0, "SHOW herd.shell_guard")).toEqual([{ "herd.shell_guard": "on" }]);
  });

  it("refuses dynamic SQL that reads a distributed table, and runs it on a local one", async () => {
    await expectShellRefusal("SELECT count_of('items')");
    expect((await herd.query("SELECT count_of('notes') AS n")).rows).toEqual([{ n: "2" }]);
  });

  it("refuses a trigger on a local table that reads a distributed one, keeping the local row out", async () => {
    await herd.query(`CREATE TABLE audit (id int)`);
    await herd.query(`CREATE FUNCTION check_item() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NOT EXISTS (SELECT 1 FROM items WHERE id = NEW.id) THEN RAISE EXCEPTION 'no item %', NEW.id; END IF;
      RETURN NEW; END $$`);
    await herd.query("CREATE TRIGGER audit_check BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION check_item()");
    // item 5 exists: on the empty shell the trigger would have raised 'no item 5'
    await expectShellRefusal("INSERT INTO audit VALUES (5)");
    expect((await herd.query("SELECT count(*)::int AS n FROM audit")).rows).toEqual([{ n: 0 }]);
  });

  it("refuses a column default that reads a distributed table", async () => {
    await herd.query("CREATE TABLE snapshots (at int, item_count bigint DEFAULT count_of('items'))");
    await expectShellRefusal("INSERT INTO snapshots (at) VALUES (1)");
    expect((await herd.query("SELECT count(*)::int AS n FROM snapshots")).rows).toEqual([{ n: 0 }]);
  });

  it("refuses a rule that writes a distributed table", async () => {
    await expectShellRefusal("INSERT INTO inbox VALUES (1000)");
    expect((await herd.query("SELECT count(*)::int AS n FROM items WHERE id = 1000")).rows).toEqual([{ n: 0 }]);
    expect((await herd.query("SELECT count(*)::int AS n FROM inbox")).rows).toEqual([{ n: 0 }]);
  });

  it("refuses the foreign-key check of an ordinary table that references a distributed one", async () => {
    // made so that it can be distributed next (its key then holds on the shards); until then its
    // key would be checked against the empty shell: item 7 exists, on a worker
    await herd.query("CREATE TABLE item_tags (item int REFERENCES items (id), tag text)");
    await expectShellRefusal("INSERT INTO item_tags VALUES (7, 'red')");
    expect((await herd.query("SELECT count(*)::int AS n FROM item_tags")).rows).toEqual([{ n: 0 }]);
  });

  it("says in SQL's words why a rule over a distributed table is refused", async () => {
    const rule = await answer(
      herd,
      "CREATE RULE again AS ON INSERT TO inbox DO ALSO DELETE FROM items WHERE id = NEW.id",
    );
    expect(rule).toMatchObject({
      error: { code: "0A000", message: "herd does not support rules that involve distributed tables yet" },
    });
  });

  it("leaves what herd sends through: reads, writes, DDL with validation, EXPLAIN", async () => {
    await herd.query("ALTER TABLE items ADD CONSTRAINT kind_small CHECK (kind < 10)");
    await herd.query("ALTER TABLE items ADD COLUMN weight int DEFAULT 1");
    await herd.query("CREATE INDEX items_kind ON items (kind)");
    await herd.query("UPDATE items SET weight = 2 WHERE id = 3");
    expect((await herd.query("SELECT count(*)::int AS n, sum(weight)::int AS w FROM items")).rows).toEqual([
      { n: 60, w: 61 },
    ]);
    expect((await herd.query("EXPLAIN SELECT * FROM items WHERE id = 3")).rows.length).toBeGreaterThan(0);
  });

  it("refuses under several clients at once while their routed reads still answer", async () => {
    const clients = await Promise.all([1, 2, 3, 4].map(() => herdClient(herdUp.cluster)));
    try {
      const outcomes = await Promise.all(
        clients.map(async (client, index) => {
          const refused: string[] = [];
          for (let round = 0; round < 10; round++) {
            const dynamic = await answer(client, "SELECT count_of('items')");
            if ("error" in dynamic) refused.push(dynamic.error.code ?? "");
            const routed = await client.query("SELECT kind FROM items WHERE id = $1", [index * 10 + round + 1]);
            expect(routed.rows).toEqual([{ kind: (index * 10 + round + 1) % 3 }]);
          }
          return refused;
        }),
      );
      for (const refused of outcomes) expect(refused).toEqual(Array(10).fill("0A000"));
    } finally {
      await Promise.all(clients.map((client) => client.end()));
    }
  });
});
