import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { type CatalogData, catalogSnapshot } from "../metadata/catalog-snapshot.js";
import type { DistributedTable, Shard } from "../metadata/catalog-types.js";
import { type AnyNode, parseStatements } from "../parser/ast.js";
import { loadParser } from "../parser/statement-cache.js";
import { planStatement } from "../planner/plan-statement.js";
import { CATALOG_FIXTURE, fixtureCatalog } from "../testing/catalog-fixture.js";
import { CollectingSink } from "../testing/collecting-sink.js";
import { FakePort } from "../testing/fake-port.js";
import { type FakeWorkerConnection, FakeWorkers, type Script } from "../testing/fake-workers.js";
import { PlacementsChanged } from "../transaction/placements-changed.js";
import { lockGroup, MAX_VALUE_LOCKS_PER_TRANSACTION, shardLock } from "../transaction/shard-lock.js";

// Plans of the fixture cluster (3 workers, customers in 32 shards with 2 placements each) run
// against fake workers: what goes to which placement, failover, and the commit of a write that
// reaches several placements. The same paths run on real servers in test/distributed.
const catalog = fixtureCatalog();
const [first, second, third] = [...catalog.nodes.values()].map((node) => `${node.host}:${node.port}`) as [
  string,
  string,
  string,
];
const shardOf = (sql: string) => /_(\d+)\b/.exec(sql)?.[1] ?? "";
const customers = catalog.resolve(undefined, "customers");
const workerOf = (nodeId: number) => {
  const node = catalog.nodes.get(nodeId);
  return `${node?.host}:${node?.port}`;
};
/** The workers holding tenant 1's shard of customers (102010), in placement order. */
const tenantOneWorkers = (customers?.shards[1]?.placements ?? []).map((placement) => workerOf(placement.nodeId));
const oneRowPerShard: Script = (sql) => ({ columns: ["shard"], rows: [[shardOf(sql)]] });

async function run(sql: string, workers: FakeWorkers, options: { inBlock?: boolean; cancelled?: boolean } = {}) {
  const statement = parseStatements(sql)[0] as AnyNode;
  const port = new FakePort({ catalog, workers, inBlock: options.inBlock });
  port.cancelRequested = options.cancelled ?? false;
  const sink = new CollectingSink();
  const plan = planStatement(statement, catalog);
  const outcome = await plan
    .execute(port, { sql, statement, parameterTypes: [], bind: undefined, describe: true }, sink)
    .then(
      () => undefined,
      (error: Error) => error,
    );
  await port.quiesce();
  return { port, sink, error: outcome };
}

beforeAll(async () => {
  await loadParser();
});

describe("a read of several shards", () => {
  it("runs each shard's statement once, on one of its placements, and appends the rows", async () => {
    const workers = new FakeWorkers(oneRowPerShard);
    const { sink, error } = await run("SELECT name FROM customers WHERE country = 'se'", workers);
    expect(error).toBeUndefined();
    const shards = workers.log.map((entry) => shardOf(entry.sql)).filter(Boolean);
    expect(shards).toHaveLength(32);
    expect(new Set(shards).size).toBe(32);
    expect(sink.rows.map(([shard]) => shard).sort()).toEqual([...shards].sort());
    expect(sink.tags).toEqual(["SELECT 32"]);
    // a worker's shards are spread over at most two connections, all given back
    for (const worker of [first, second, third]) {
      expect(workers.acquired.filter((connection) => connection.target === worker).length).toBeLessThanOrEqual(2);
    }
    expect(workers.released).toHaveLength(workers.acquired.length);
  });

  it("sends nothing more once a CancelRequest came for the statement, and fails it with 57014", async () => {
    const workers = new FakeWorkers(oneRowPerShard);
    const { sink, error } = await run("SELECT name FROM customers", workers, { cancelled: true });
    expect(error).toMatchObject({ sqlState: "57014", message: "canceling statement due to user request" });
    expect(workers.log.filter((entry) => shardOf(entry.sql))).toEqual([]);
    expect(sink.rows).toEqual([]);
    expect(workers.released).toHaveLength(workers.acquired.length);
  });

  it("reads the shards of a worker that cannot be reached from their other placement", async () => {
    const workers = new FakeWorkers(oneRowPerShard);
    workers.unreachable.add(second);
    const { sink, port, error } = await run("SELECT name FROM customers", workers);
    expect(error).toBeUndefined();
    expect(sink.rows).toHaveLength(32);
    expect(workers.statementsOn(second)).toEqual([]);
    expect(workers.isDown({ host: second.split(":")[0] as string, port: Number(second.split(":")[1]) })).toBe(true);
    expect(port.lines.join("\n")).toMatch(/worker unreachable, reading other placements/);
  });

  it("reads from the other placement when a worker's connection is lost before any row came", async () => {
    const workers = new FakeWorkers(oneRowPerShard);
    // a pooled connection to a worker that crashed since: it fails on first use
    workers.loseConnection.set(second, /^BEGIN|^SELECT/);
    const { sink, port, error } = await run("SELECT name FROM customers", workers);
    expect(error).toBeUndefined();
    expect(sink.rows.map((row) => row[0]).sort()).toEqual(
      (customers?.shards ?? []).map((shard) => String(shard.id)).sort(),
    );
    expect(port.lines.join("\n")).toMatch(/worker connection lost, reading other placements/);
  });

  it("passes on the notices of the placement whose rows the client gets", async () => {
    const workers = new FakeWorkers((sql) => ({
      columns: ["n"],
      rows: [["1"]],
      notice: { severity: "NOTICE", code: "00000", message: `checked ${shardOf(sql)}` },
    }));
    const { sink } = await run("SELECT name FROM customers WHERE tenant_id = 1", workers);
    expect(sink.notices.map((notice) => notice.message)).toEqual(["checked 102010"]);
  });
});

describe("a read of one shard outside a transaction block, on an idle pooled connection", () => {
  const tenantOne = "SELECT name FROM customers WHERE tenant_id = 1";
  const shardStatements = (workers: FakeWorkers) => workers.log.filter((entry) => shardOf(entry.sql));

  it("sends the statement alone on the idle connection, answers, and gives the connection back", async () => {
    const workers = new FakeWorkers(oneRowPerShard, { pooled: true });
    await run(tenantOne, workers);
    expect([workers.acquired.length, workers.reused.length]).toEqual([1, 0]);
    const { sink, error } = await run(tenantOne, workers);
    expect(error).toBeUndefined();
    // no connection acquired: the one given back by the first read was taken idle
    expect([workers.acquired.length, workers.reused.length]).toEqual([1, 1]);
    expect(workers.released).toEqual([workers.acquired[0], workers.acquired[0]]);
    expect(sink.rows).toEqual([["102010"]]);
    expect(sink.tags).toEqual(["SELECT 1"]);
    expect(workers.log.map((entry) => entry.sql)).toEqual([
      "SELECT name FROM customers_102010 AS customers WHERE tenant_id = 1",
      "SELECT name FROM customers_102010 AS customers WHERE tenant_id = 1",
    ]);
  });

  it("reads the shard's other placement when the idle connection is lost before any row came", async () => {
    const workers = new FakeWorkers(oneRowPerShard, { pooled: true });
    await run(tenantOne, workers);
    // the worker crashed since its connection went idle: it fails on first use
    workers.loseConnection.set(tenantOneWorkers[0] as string, /^SELECT/);
    const { sink, port, error } = await run(tenantOne, workers);
    expect(error).toBeUndefined();
    expect(workers.reused).toHaveLength(1);
    expect(sink.rows).toEqual([["102010"]]);
    expect(shardStatements(workers).map((entry) => entry.worker)).toEqual([
      tenantOneWorkers[0],
      tenantOneWorkers[0],
      tenantOneWorkers[1],
    ]);
    expect(port.lines.join("\n")).toMatch(/worker connection lost, reading other placements/);
    const [host, portNumber] = (tenantOneWorkers[0] as string).split(":");
    expect(workers.isDown({ host: host as string, port: Number(portNumber) })).toBe(true);
  });

  it("gives back an idle connection with other session settings and reads through the general path", async () => {
    const workers = new FakeWorkers(oneRowPerShard, { pooled: true });
    await run(tenantOne, workers);
    (workers.acquired[0] as FakeWorkerConnection).appliedSettings = "another session's";
    const { sink, error } = await run(tenantOne, workers);
    expect(error).toBeUndefined();
    expect(sink.rows).toEqual([["102010"]]);
    // taken idle, found unfit, given back; the statement ran on a connection acquired for it
    expect(workers.reused).toHaveLength(1);
    expect(workers.acquired).toHaveLength(2);
    expect(shardStatements(workers).map((entry) => entry.worker)).toEqual([tenantOneWorkers[0], tenantOneWorkers[0]]);
  });

  it("fails with the worker's error, and gives the connection back", async () => {
    const workers = new FakeWorkers(
      (sql) =>
        sql.includes("tenant_id = 1")
          ? { error: { severity: "ERROR", code: "22012", message: "division by zero" } }
          : oneRowPerShard(sql, ""),
      { pooled: true },
    );
    await run("SELECT name FROM customers WHERE tenant_id = 2", workers);
    await run("SELECT name FROM customers WHERE tenant_id = 2", workers);
    expect(workers.reused).toHaveLength(1);
    const before = workers.released.length;
    await run(tenantOne, workers);
    const { error } = await run(tenantOne, workers);
    expect(error).toMatchObject({ sqlState: "22012", message: "division by zero" });
    expect(workers.reused.length).toBeGreaterThan(1);
    expect(workers.released).toHaveLength(before + 2);
  });

  it("sends nothing once a CancelRequest came for the statement", async () => {
    const workers = new FakeWorkers(oneRowPerShard, { pooled: true });
    await run(tenantOne, workers);
    const { error } = await run(tenantOne, workers, { cancelled: true });
    expect(error).toMatchObject({ sqlState: "57014" });
    expect(shardStatements(workers)).toHaveLength(1);
  });
});

describe("a write that reaches several placements, outside a transaction block", () => {
  it("locks its shards, prepares every worker's part with the statement, records the decision, then commits the parts", async () => {
    const workers = new FakeWorkers(() => ({ tag: "UPDATE 2" }));
    const { sink, port, error } = await run("UPDATE customers SET name = 'x'", workers);
    expect(error).toBeUndefined();
    const gids: string[] = [];
    for (const worker of [first, second, third]) {
      const statements = workers.statementsOn(worker);
      expect(statements[0]).toBe("BEGIN");
      const prepare = statements.at(-2) as string;
      expect(prepare).toMatch(/^PREPARE TRANSACTION 'herd_\d+_\d+'$/);
      const gid = prepare.slice("PREPARE TRANSACTION ".length);
      expect(statements.at(-1)).toBe(`COMMIT PREPARED ${gid}`);
      gids.push(gid.slice(1, -1));
    }
    // the coordinator: BEGIN, the 32 whole shards' locks (no pin, answering the xid and their
    // placement versions), the decision with every gid, COMMIT
    expect(port.coordinator.log.map((sql) => sql.split(/[ (]/).slice(0, 2).join(" "))).toEqual([
      "BEGIN",
      "SELECT herd.lock_shards",
      "SELECT herd.record_commit",
      "COMMIT",
    ]);
    expect(port.coordinator.locks[0]?.split(" ")[0]?.split(",")).toHaveLength(32);
    expect([...port.coordinator.records.keys()].sort()).toEqual(gids.sort());
    expect(workers.prepared.size).toBe(0);
    // 32 shards, 2 rows each: the replicas' copies are not counted twice
    expect(sink.tags).toEqual(["UPDATE 64"]);
    // nothing in the metadata changed: the catalog is not loaded again
    expect(port.catalogReloads).toBe(0);
  });

  it("rolls every worker's part back when one placement fails, and gives that error", async () => {
    const shard = customers?.shards.find((candidate) =>
      candidate.placements.some((placement) => workerOf(placement.nodeId) === second),
    );
    const failing = String(shard?.id);
    const workers = new FakeWorkers((sql, worker) =>
      shardOf(sql) === failing && worker === second
        ? { error: { severity: "ERROR", code: "23505", message: `duplicate key value in customers_${failing}` } }
        : { tag: "UPDATE 1" },
    );
    const { sink, port, error } = await run("UPDATE customers SET name = 'x'", workers);
    expect(error?.message).toBe("duplicate key value in customers");
    expect((error as { sqlState?: string }).sqlState).toBe("23505");
    for (const worker of [first, second, third]) {
      expect(workers.statementsOn(worker).some((sql) => sql.startsWith("COMMIT"))).toBe(false);
    }
    expect(workers.prepared.size).toBe(0);
    expect(port.coordinator.records.size).toBe(0);
    expect(port.coordinator.log.at(-1)).toBe("ROLLBACK");
    expect(sink.tags).toEqual([]);
  });

  it("commits on the other copies when a worker is lost before PREPARE, marking its placements stale in the decision", async () => {
    const workers = new FakeWorkers(() => ({ tag: "UPDATE 1" }));
    workers.loseConnection.set(second, /^UPDATE/);
    const { sink, port, error } = await run("UPDATE customers SET name = 'x'", workers);
    expect(error).toBeUndefined();
    expect(sink.tags).toEqual(["UPDATE 32"]);
    const secondId = Number([...catalog.nodes.values()].find((node) => `${node.host}:${node.port}` === second)?.id);
    const onSecond = (customers?.shards ?? []).filter((s) => s.placements.some((p) => p.nodeId === secondId));
    expect(port.coordinator.stale.sort()).toEqual(onSecond.map((s) => `${s.id}:${secondId}`).sort());
    expect([...port.coordinator.records.values()]).not.toContain(secondId);
    expect(port.lines.join("\n")).toMatch(/placements marked stale: they missed a committed write/);
    // the client is answered with the catalog loaded again: no later statement reads the stale copies
    expect(port.catalogReloads).toBe(1);
  });

  it("writes nothing when its shard's placements changed since the plan, and says so (the engine re-plans)", async () => {
    const workers = new FakeWorkers(() => ({ tag: "UPDATE 1" }));
    const statement = parseStatements("UPDATE customers SET name = 'x' WHERE tenant_id = 1")[0] as AnyNode;
    // the coordinator's metadata moved on: tenant 1's shard went stale somewhere, or was repaired
    const data = JSON.parse(readFileSync(CATALOG_FIXTURE, "utf8")) as CatalogData;
    const changed = catalogSnapshot(
      {
        ...data,
        tables: data.tables.map((table) => ({
          ...table,
          shards: table.shards.map((shard) =>
            shard.id === customers?.shards[1]?.id ? { ...shard, placementVersion: 7 } : shard,
          ),
        })),
      },
      2,
    );
    const port = new FakePort({ catalog: changed, workers });
    const error = await planStatement(statement, catalog)
      .execute(port, { sql: "", statement, parameterTypes: [], bind: undefined, describe: false }, new CollectingSink())
      .then(
        () => undefined,
        (e: Error) => e,
      );
    expect(error).toBeInstanceOf(PlacementsChanged);
    for (const worker of [first, second, third]) expect(workers.statementsOn(worker)).toEqual([]);
    // the write's own transaction is kept with its lock for the next attempt
    expect(port.heldWrite).toBeDefined();
    expect(port.coordinator.log).not.toContain("ROLLBACK");
    // planned on the catalog as it is now, the same write goes through in it, locked already
    const again = await planStatement(statement, changed)
      .execute(port, { sql: "", statement, parameterTypes: [], bind: undefined, describe: false }, new CollectingSink())
      .then(
        () => undefined,
        (e: Error) => e,
      );
    expect(again).toBeUndefined();
    expect(port.heldWrite).toBeUndefined();
    expect(port.coordinator.log.filter((sql) => sql === "BEGIN" || sql.includes("lock_value"))).toHaveLength(2);
    expect(port.coordinator.log.at(-1)).toBe("COMMIT");
  });

  it("fails when every placement of a shard is lost, committing nothing", async () => {
    const workers = new FakeWorkers(() => ({ tag: "UPDATE 1" }));
    workers.loseConnection.set(tenantOneWorkers[0] as string, /^UPDATE/);
    workers.loseConnection.set(tenantOneWorkers[1] as string, /^UPDATE/);
    const { error, port } = await run("UPDATE customers SET name = 'x' WHERE tenant_id = 1", workers);
    expect((error as { sqlState?: string }).sqlState).toBe("08006");
    expect(port.coordinator.records.size).toBe(0);
    expect(port.coordinator.log.at(-1)).toBe("ROLLBACK");
  });

  it("answers the client once the decision is recorded, even when a worker cannot finish its part", async () => {
    const workers = new FakeWorkers(() => ({ tag: "UPDATE 1" }));
    workers.loseConnection.set(second, /^COMMIT PREPARED/);
    const { sink, port, error } = await run("UPDATE customers SET name = 'x'", workers);
    expect(error).toBeUndefined();
    expect(sink.tags).toEqual(["UPDATE 32"]);
    // its part stays prepared, with a record: recovery commits it when the worker answers
    expect(workers.prepared.size).toBe(1);
    expect(port.coordinator.records.has([...workers.prepared][0] as string)).toBe(true);
    expect(port.lines.join("\n")).toMatch(/a worker did not finish its prepared transaction; recovery will/);
    // until then that worker's copies lack the write: every placement it wrote goes stale, and
    // only those (a later write of a row inserted there would miss it on that copy alone)
    const secondId = [...catalog.nodes.values()].find((node) => `${node.host}:${node.port}` === second)?.id;
    const written = customers?.shards.filter((shard) => shard.placements.some((p) => p.nodeId === secondId));
    expect(port.staleMarks.map((mark) => mark.nodeId)).toEqual(written?.map(() => secondId));
    expect(port.staleMarks.map((mark) => mark.shardId).sort()).toEqual(written?.map((shard) => shard.id).sort());
    expect(port.lines.join("\n")).toMatch(/placements marked stale: a committed write is not finished on them yet/);
  });

  it("marks nothing stale when recovery finished a part before its COMMIT PREPARED arrived", async () => {
    const workers = new FakeWorkers(() => ({ tag: "UPDATE 1" }));
    // the replica's part is committed by recovery between PREPARE and COMMIT PREPARED: gone
    // from the worker's prepared transactions when herd's COMMIT PREPARED arrives (42704)
    const replicaId = customers?.shards[1]?.placements[1]?.nodeId as number;
    const prepare = workers.prepared.add.bind(workers.prepared);
    workers.prepared.add = (gid) => (gid.endsWith(`_${replicaId}`) ? workers.prepared : prepare(gid));
    const { port, error } = await run("UPDATE customers SET name = 'x' WHERE tenant_id = 1", workers);
    expect(error).toBeUndefined();
    expect(workers.statementsOn(workerOf(replicaId)).at(-1)).toMatch(/^COMMIT PREPARED/);
    expect(port.staleMarks).toEqual([]);
    expect(port.lines.join("\n")).not.toMatch(/did not finish/);
  });

  it("logs replicas that disagree on what a write did", async () => {
    const [primary, replica] = tenantOneWorkers;
    expect(replica).toBeDefined();
    const workers = new FakeWorkers((_sql, worker) => ({ tag: worker === replica ? "UPDATE 0" : "UPDATE 1" }));
    const { port, sink } = await run("UPDATE customers SET name = 'x' WHERE tenant_id = 1", workers);
    expect(workers.statementsOn(primary as string).at(-1)).toMatch(/^COMMIT PREPARED/);
    expect(port.lines.join("\n")).toMatch(/shard replicas disagree on a write .*tags="UPDATE 1 \/ UPDATE 0"/);
    // the client hears what the first placement did
    expect(sink.tags).toEqual(["UPDATE 1"]);
  });
});

describe("a write in a transaction block", () => {
  it("runs on the block's own connections, which stay open until COMMIT", async () => {
    const workers = new FakeWorkers(() => ({ tag: "UPDATE 1" }));
    const { port, error } = await run("UPDATE customers SET name = 'x' WHERE tenant_id = 1", workers, {
      inBlock: true,
    });
    expect(error).toBeUndefined();
    const touched = [first, second, third].filter((worker) => workers.statementsOn(worker).length > 0);
    expect(touched).toHaveLength(2);
    // each copy's worker takes the same value lock first: it waits there for a previous writer's
    // COMMIT PREPARED, whose coordinator lock was let go before it
    for (const worker of touched)
      expect(workers.statementsOn(worker)).toEqual([
        "BEGIN",
        expect.stringMatching(
          /^SELECT pg_catalog\.pg_advisory_xact_lock_shared\(\d+\), pg_catalog\.pg_advisory_xact_lock\(\d+, -?\d+\)$/,
        ),
        expect.stringMatching(/^UPDATE customers_102010/),
      ]);
    expect(workers.released).toHaveLength(0);
    expect(port.transaction.active).toBe(true);
    // tenant 1's value lock is taken in the block's own coordinator transaction, and kept
    expect(port.coordinator.log).toEqual([expect.stringMatching(/herd\.lock_value/)]);
  });

  it("locks the next values' groups whole once the block has locked 1024 values, on the coordinator and the copies", async () => {
    const workers = new FakeWorkers(() => ({ tag: "UPDATE 1" }));
    const port = new FakePort({ catalog, workers, inBlock: true });
    const table = customers as DistributedTable;
    const [other, shard] = [table.shards[0] as Shard, table.shards[1] as Shard];
    const group = lockGroup(table.colocationId, shard.index);
    // 1024 single-value writes (a block of single-row INSERTs): a value lock each
    for (let hash = 0; hash < MAX_VALUE_LOCKS_PER_TRANSACTION; hash += 1)
      await port.transaction.lockShards(
        new Map([[hash % 2 ? shard.id : other.id, shardLock(table, hash % 2 ? shard : other, [hash])]]),
      );
    expect(port.coordinator.locks).toHaveLength(1024);
    expect(port.coordinator.locks.at(-1)).toBe(`${group} 1023`);
    // a value held already needs nothing; a new one takes its whole group instead, once
    await port.transaction.lockShards(new Map([[shard.id, shardLock(table, shard, [1023])]]));
    expect(port.coordinator.locks).toHaveLength(1024);
    await port.transaction.lockShards(new Map([[shard.id, shardLock(table, shard, [5000])]]));
    expect(port.coordinator.locks.at(-1)).toBe(`{${group}} {} {}`);
    await port.transaction.lockShards(new Map([[shard.id, shardLock(table, shard, [5001])]]));
    expect(port.coordinator.locks).toHaveLength(1025);
    // the next write of the group locks it whole on its copies' workers too
    const statement = parseStatements("UPDATE customers SET name = 'x' WHERE tenant_id = 1")[0] as AnyNode;
    await planStatement(statement, catalog).execute(
      port,
      { sql: "", statement, parameterTypes: [], bind: undefined, describe: false },
      new CollectingSink(),
    );
    for (const worker of tenantOneWorkers)
      expect(workers.statementsOn(worker)).toEqual([
        "BEGIN",
        expect.stringMatching(/^SELECT pg_catalog\.pg_advisory_xact_lock\(\d+\)$/),
        expect.stringMatching(/^UPDATE customers_102010/),
      ]);
  });

  it("takes no lock on the worker of a shard's only active copy (nothing can differ from it)", async () => {
    const workers = new FakeWorkers(() => ({ tag: "UPDATE 1" }));
    const data = JSON.parse(readFileSync(CATALOG_FIXTURE, "utf8")) as CatalogData;
    const target = customers?.shards[1]?.id;
    const oneCopy = catalogSnapshot(
      {
        ...data,
        tables: data.tables.map((table) => ({
          ...table,
          shards: table.shards.map((shard) =>
            shard.id === target ? { ...shard, placements: shard.placements.slice(0, 1) } : shard,
          ),
        })),
      },
      2,
    );
    const statement = parseStatements("UPDATE customers SET name = 'x' WHERE tenant_id = 1")[0] as AnyNode;
    const port = new FakePort({ catalog: oneCopy, workers, inBlock: true });
    await planStatement(statement, oneCopy).execute(
      port,
      { sql: "", statement, parameterTypes: [], bind: undefined, describe: false },
      new CollectingSink(),
    );
    const touched = [first, second, third].filter((worker) => workers.statementsOn(worker).length > 0);
    expect(touched).toEqual([tenantOneWorkers[0]]);
    expect(workers.statementsOn(tenantOneWorkers[0] as string)).toEqual([
      "BEGIN",
      expect.stringMatching(/^UPDATE customers_102010/),
    ]);
  });

  it("locks a tenant once for writes of colocated tables, and again after ROLLBACK TO SAVEPOINT", async () => {
    const workers = new FakeWorkers(() => ({ tag: "UPDATE 1" }));
    const port = new FakePort({ catalog, workers, inBlock: true });
    const statements = [
      "UPDATE customers SET name = 'x' WHERE tenant_id = 1",
      "DELETE FROM orders WHERE tenant_id = 1 AND id = 5",
      "UPDATE orders SET amount = 3 WHERE tenant_id = 1",
      "UPDATE orders SET amount = 3 WHERE tenant_id = 2",
    ];
    const execute = async (sql: string) => {
      const statement = parseStatements(sql)[0] as AnyNode;
      await planStatement(statement, catalog).execute(
        port,
        { sql, statement, parameterTypes: [], bind: undefined, describe: false },
        new CollectingSink(),
      );
    };
    for (const sql of statements) await execute(sql);
    const locks = () => port.coordinator.log.filter((sql) => sql.includes("herd.lock_"));
    // tenant 1 once (customers and orders share its shard group), tenant 2 once
    expect(locks()).toHaveLength(2);
    port.transaction.noteSavepoint("TRANS_STMT_ROLLBACK_TO", "s", "ROLLBACK TO SAVEPOINT s");
    await execute(statements[0] as string);
    expect(locks()).toHaveLength(3);
  });

  it("runs an UPDATE that reaches several shards, locking them whole, and commits it with the block in two phases", async () => {
    const workers = new FakeWorkers(() => ({ tag: "UPDATE 2" }));
    const { port, sink, error } = await run("UPDATE customers SET name = 'x'", workers, { inBlock: true });
    expect(error).toBeUndefined();
    expect(sink.tags).toEqual(["UPDATE 64"]);
    // every shard locked whole (no pin) in the block's coordinator transaction
    expect(port.coordinator.locks[0]?.split(" ")[0]?.split(",")).toHaveLength(32);
    for (const worker of [first, second, third]) {
      expect(workers.statementsOn(worker)[0]).toBe("BEGIN");
      expect(workers.statementsOn(worker).some((sql) => sql.startsWith("PREPARE"))).toBe(false);
    }
    await port.transaction.commit();
    await port.quiesce();
    for (const worker of [first, second, third]) {
      const statements = workers.statementsOn(worker);
      expect(statements.at(-2)).toMatch(/^PREPARE TRANSACTION 'herd_\d+_\d+'$/);
      expect(statements.at(-1)).toMatch(/^COMMIT PREPARED/);
    }
    expect(port.coordinator.records.size).toBe(3);
  });
});
