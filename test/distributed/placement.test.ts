import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectTo, expectHerdError } from "../helpers/differential.js";
import { useHerdCluster } from "../helpers/herd-up.js";
import { DISTRIBUTE, dataStatements, runAll, SCHEMA } from "./schema.js";

// Where the rows are: create_distributed_table's checks and metadata, then, connecting to every
// worker directly, that each row sits in exactly the shards its hash names, on both replicas.
const herdUp = useHerdCluster("placement", { workers: 3 });
let herd: pg.Client;
const workers = new Map<number, pg.Client>();

beforeAll(async () => {
  herd = await connectTo({ host: "127.0.0.1", port: herdUp.cluster.sqlPort, user: "postgres", password: "postgres" });
  await runAll(herd, SCHEMA);
  const data = dataStatements();
  await runAll(herd, data.slice(0, 2));
  await runAll(herd, DISTRIBUTE);
  await runAll(herd, data.slice(2));
  const { rows } = await herd.query<{ nodeid: number; nodeport: number }>("SELECT nodeid, nodeport FROM pg_dist_node");
  for (const node of rows) {
    workers.set(
      node.nodeid,
      await connectTo({
        host: "127.0.0.1",
        port: node.nodeport,
        user: "postgres",
        password: herdUp.cluster.internalPassword,
      }),
    );
  }
});

afterAll(async () => {
  await herd?.end();
  for (const client of workers.values()) await client.end();
});

interface ShardRow {
  shardid: string;
  shardminvalue: string | null;
  shardmaxvalue: string | null;
  nodes: number[];
}

async function shardsOf(table: string): Promise<ShardRow[]> {
  const { rows } = await herd.query<ShardRow>(
    `SELECT s.shardid, s.shardminvalue, s.shardmaxvalue, array_agg(p.groupid ORDER BY p.groupid) AS nodes
       FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
      WHERE s.logicalrelid = $1::regclass GROUP BY 1, 2, 3 ORDER BY s.shardid`,
    [table],
  );
  return rows;
}

describe("create_distributed_table", () => {
  it("makes 32 shards of equal hash ranges, each on two different workers, spread evenly", async () => {
    const shards = await shardsOf("customers");
    expect(shards).toHaveLength(32);
    expect(shards[0]?.shardminvalue).toBe("-2147483648");
    expect(shards.at(-1)?.shardmaxvalue).toBe("2147483647");
    for (let i = 1; i < shards.length; i += 1) {
      expect(Number(shards[i]?.shardminvalue)).toBe(Number(shards[i - 1]?.shardmaxvalue) + 1);
    }
    const perNode = new Map<number, number>();
    for (const shard of shards) {
      expect(new Set(shard.nodes).size).toBe(2);
      for (const node of shard.nodes) perNode.set(node, (perNode.get(node) ?? 0) + 1);
    }
    expect([...perNode.values()].sort()).toEqual([21, 21, 22]);
  });

  it("colocates orders with customers: same workers shard by shard", async () => {
    const [customers, orders] = [await shardsOf("customers"), await shardsOf("orders")];
    expect(orders.map((s) => s.nodes)).toEqual(customers.map((s) => s.nodes));
    const { rows } = await herd.query(
      "SELECT table_name::text, citus_table_type, distribution_column, shard_count FROM citus_tables ORDER BY 1",
    );
    expect(rows).toEqual([
      { table_name: "countries", citus_table_type: "reference", distribution_column: "<none>", shard_count: "1" },
      { table_name: "customers", citus_table_type: "distributed", distribution_column: "tenant_id", shard_count: "32" },
      { table_name: "events", citus_table_type: "distributed", distribution_column: "id", shard_count: "8" },
      { table_name: "orders", citus_table_type: "distributed", distribution_column: "tenant_id", shard_count: "32" },
    ]);
    const colocation = await herd.query(
      "SELECT logicalrelid::text AS t, partmethod, repmodel, colocationid FROM pg_dist_partition ORDER BY 1",
    );
    const byTable = Object.fromEntries(colocation.rows.map((r) => [r.t, r]));
    expect(byTable.orders.colocationid).toBe(byTable.customers.colocationid);
    expect(byTable.events.colocationid).not.toBe(byTable.customers.colocationid);
    expect([byTable.countries.partmethod, byTable.countries.repmodel]).toEqual(["n", "t"]);
    expect([byTable.customers.partmethod, byTable.customers.repmodel]).toEqual(["h", "c"]);
  });

  it("puts a reference table on every worker", async () => {
    const [shard] = await shardsOf("countries");
    expect(shard?.nodes).toHaveLength(3);
    for (const client of workers.values()) {
      const { rows } = await client.query(`SELECT count(*)::int AS n FROM countries_${shard?.shardid}`);
      expect(rows[0].n).toBe(4);
    }
  });

  it("stores every row in the shard its hash names, on both replicas, and nowhere else", async () => {
    for (const [table, column, hash] of [
      ["customers", "tenant_id", "hashint4"],
      ["orders", "tenant_id", "hashint4"],
      ["events", "id", "uuid_hash"],
    ] as const) {
      let total = 0;
      for (const shard of await shardsOf(table)) {
        const contents: string[] = [];
        for (const node of shard.nodes) {
          const client = workers.get(node) as pg.Client;
          const misplaced = await client.query(
            `SELECT count(*)::int AS n FROM ${table}_${shard.shardid} WHERE ${hash}(${column}) NOT BETWEEN $1 AND $2`,
            [shard.shardminvalue, shard.shardmaxvalue],
          );
          expect(misplaced.rows[0].n, `${table}_${shard.shardid} on node ${node}`).toBe(0);
          const { rows } = await client.query(
            `SELECT count(*)::int AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS digest FROM ${table}_${shard.shardid} t`,
          );
          contents.push(`${rows[0].n}:${rows[0].digest}`);
        }
        expect(new Set(contents).size, `replicas of ${table}_${shard.shardid} differ`).toBe(1);
        total += Number(contents[0]?.split(":")[0]);
      }
      const expected = { customers: 240, orders: 800, events: 50 }[table];
      expect(total, table).toBe(expected);
    }
    // the shell tables in the coordinator's own PostgreSQL (SQL port + 1) stay empty (read on
    // purpose: the shell guard would refuse the read)
    const coordinator = await connectTo({
      host: "127.0.0.1",
      port: herdUp.cluster.sqlPort + 1,
      user: "postgres",
      password: herdUp.cluster.internalPassword,
      options: "-c herd.shell_guard=off",
    });
    const shell = await coordinator.query(
      "SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM orders) AS n",
    );
    await coordinator.end();
    expect(shell.rows).toEqual([{ n: "0" }]);
  });

  it("answers get_shard_id_for_distribution_column as PostgreSQL's hash and the shard ranges say", async () => {
    for (const tenant of [1, 7, 123456, -5]) {
      const { rows } = await herd.query("SELECT get_shard_id_for_distribution_column('customers', $1) AS id", [tenant]);
      const worker = workers.values().next().value as pg.Client;
      const hash = (await worker.query("SELECT hashint4($1) AS h", [tenant])).rows[0].h as number;
      const shard = (await shardsOf("customers")).find(
        (s) => Number(s.shardminvalue) <= hash && hash <= Number(s.shardmaxvalue),
      );
      expect(rows[0].id).toBe(shard?.shardid);
    }
    const reference = await herd.query("SELECT get_shard_id_for_distribution_column('countries')");
    expect(reference.rows[0].get_shard_id_for_distribution_column).toBe((await shardsOf("countries"))[0]?.shardid);
  });
});

describe("create_distributed_table refuses what Citus refuses", () => {
  it("a unique key without the distribution column", async () => {
    await herd.query("CREATE TABLE bad_key (id int PRIMARY KEY, tenant int)");
    await expectHerdError(
      herd,
      "SELECT create_distributed_table('bad_key', 'tenant')",
      "0A000",
      'cannot create constraint on "bad_key"',
    );
  });

  it("a column that does not exist, a type without a hash function, a table that is not there", async () => {
    await herd.query("CREATE TABLE shapes (id int, p point)");
    await expectHerdError(
      herd,
      "SELECT create_distributed_table('shapes', 'nope')",
      "42703",
      'column "nope" of relation "shapes" does not exist',
    );
    await expectHerdError(
      herd,
      "SELECT create_distributed_table('shapes', 'p')",
      "42704",
      "data type point has no default operator class for specified partition method",
    );
    await expectHerdError(
      herd,
      "SELECT create_distributed_table('missing', 'id')",
      "42P01",
      'relation "missing" does not exist',
    );
  });

  it("a table distributed already, and colocation with a different column type", async () => {
    await expectHerdError(
      herd,
      "SELECT create_distributed_table('customers', 'tenant_id')",
      "42P16",
      'table "customers" is already distributed',
    );
    await herd.query("CREATE TABLE by_text (k text)");
    await expectHerdError(
      herd,
      "SELECT create_distributed_table('by_text', 'k', colocate_with => 'customers')",
      "42804",
      "cannot colocate tables customers and by_text",
    );
  });

  it("leaves no metadata behind after a refusal", async () => {
    const { rows } = await herd.query("SELECT count(*)::int AS n FROM pg_dist_partition");
    expect(rows[0].n).toBe(4);
  });
});

describe("nodes by SQL", () => {
  it("adds and removes a node with citus_add_node / citus_remove_node, and refuses removing one with shards", async () => {
    const added = await herd.query("SELECT citus_add_node('10.0.0.9', 5432) AS id");
    const again = await herd.query("SELECT citus_add_node('10.0.0.9', 5432) AS id");
    expect(again.rows[0].id).toBe(added.rows[0].id);
    const listed = await herdUp.cluster.admin("/v1/nodes");
    const body = (await listed.json()) as { nodes: { host: string; state: string }[] };
    // nothing answers there: pending, so no shard goes to it
    expect(body.nodes.find((n) => n.host === "10.0.0.9")).toMatchObject({ state: "pending" });
    await herd.query("SELECT citus_remove_node('10.0.0.9', 5432)");
    expect(
      (await herd.query("SELECT count(*)::int AS n FROM pg_dist_node WHERE nodename = '10.0.0.9'")).rows[0].n,
    ).toBe(0);
    const busy = (await herd.query("SELECT nodename, nodeport FROM pg_dist_node ORDER BY nodeid LIMIT 1")).rows[0];
    await expectHerdError(herd, "SELECT citus_remove_node($1, $2)", "55006", /contains a shard placement/, [
      busy.nodename,
      busy.nodeport,
    ]);
  });
});
