import { createLogger } from "@herd/shared";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ClusterCredentials } from "./cluster-credentials.js";
import { PgConnection } from "./pg-connection.js";
import { SessionWorkers } from "./session-workers.js";
import type { WorkerConnection } from "./worker-connection.js";
import { RoomRefused, WorkerPool } from "./worker-pool.js";

// The pool's line for room, with its connections opened by a stand-in for PgConnection.open: the
// order of grants and takes is what is under test, and it can only be set up step by step with
// connections that answer at once. test/protocol/worker-connections.test.ts runs the same rules
// against real workers and clients.
const A = { host: "10.0.0.1", port: 5432 };
const B = { host: "10.0.0.2", port: 5432 };

let opened: { target: string; closed: boolean }[] = [];

function fakeOpen() {
  opened = [];
  return vi.spyOn(PgConnection, "open").mockImplementation(async (server) => {
    const record = { target: `${server.host}:${server.port}`, closed: false };
    opened.push(record);
    const connection = {
      target: record.target,
      login: "app",
      idle: true,
      status: "I",
      broken: undefined,
      close: () => {
        record.closed = true;
      },
    };
    return connection as unknown as PgConnection;
  });
}

function poolWithCap(cap: number, idleMs?: number): WorkerPool {
  return new WorkerPool({
    idleMs,
    credentials: new ClusterCredentials("internal-secret", "sql-secret"),
    database: "postgres",
    maxPerServer: cap,
    logger: createLogger("worker-pool-test", { level: "error" }),
  });
}

const session = (pool: WorkerPool) => new SessionWorkers(pool, () => false);

/** Whether the promise settled within the microtasks and timers of one turn. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  await new Promise((resolve) => setTimeout(resolve, 5));
  return done;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("WorkerPool's line for room", () => {
  it("reserves a write's room on all its workers at once, never past the cap on one of them", async () => {
    fakeOpen();
    const pool = poolWithCap(1);
    const onA = session(pool);
    const heldA = await onA.acquire(A, "app");
    // the write needs A and B: B has room, A has none, so it takes neither
    const writer = session(pool);
    const reserving = writer.reserve([A, B]);
    expect(await settled(reserving)).toBe(false);
    expect(pool.roomLent(B)).toBe(0);
    // A is free: the write gets both at once
    onA.release(heldA);
    await reserving;
    expect(writer.reserved).toEqual(
      new Map([
        ["10.0.0.1:5432", 1],
        ["10.0.0.2:5432", 1],
      ]),
    );
    expect([pool.roomLent(A), pool.roomLent(B)]).toEqual([1, 1]);
    // its connections take the reserved room; A's reuses the connection given back
    const [toA, toB] = [await writer.acquire(A, "app"), await writer.acquire(B, "app")];
    expect([toA.target, toB.target]).toEqual(["10.0.0.1:5432", "10.0.0.2:5432"]);
    expect(opened.map((record) => record.target)).toEqual(["10.0.0.1:5432", "10.0.0.2:5432"]);
    expect([pool.roomLent(A), pool.roomLent(B)]).toEqual([1, 1]);
    pool.close();
  });

  it("keeps a request that came later behind one waiting for room on several workers (first come, first in)", async () => {
    fakeOpen();
    const pool = poolWithCap(1);
    const onB = session(pool);
    const heldB = await onB.acquire(B, "app");
    const writer = session(pool);
    const reserving = writer.reserve([A, B]);
    // A has room, but the write stands first in A's line: a later read of A waits behind it
    const reader = session(pool);
    const reading = reader.acquire(A, "app");
    expect(await settled(reading)).toBe(false);
    onB.release(heldB);
    await reserving;
    expect(await settled(reading)).toBe(false);
    // the write ends without taking its room: the read gets in
    writer.unreserve();
    const read = await reading;
    expect(read.target).toBe("10.0.0.1:5432");
    pool.close();
  });

  it("lends an idle connection at once (acquireIdle), but not one of another role, nor room granted to a waiter", async () => {
    fakeOpen();
    const pool = poolWithCap(2);
    const holders = [session(pool), session(pool)];
    const held = await Promise.all(holders.map((holder) => holder.acquire(A, "app")));
    const waiter = session(pool);
    const waiting = waiter.acquire(A, "app");
    expect(await settled(waiting)).toBe(false);
    // the first one given back is the waiter's: its room is granted before it takes the connection
    holders[0]?.release(held[0] as WorkerConnection);
    const reader = session(pool);
    expect(reader.acquireIdle(A, "app")).toBeUndefined();
    const taken = await waiting;
    expect(taken).toBe(held[0]);
    // the second one given back stays idle: a reader takes it at once, and counts as holding it
    holders[1]?.release(held[1] as WorkerConnection);
    expect(reader.acquireIdle(A, "other-role")).toBeUndefined();
    expect(reader.acquireIdle(B, "app")).toBeUndefined();
    const idle = reader.acquireIdle(A, "app");
    expect(idle).toBe(held[1]);
    expect([reader.held, pool.roomLent(A)]).toEqual([1, 2]);
    reader.release(idle as WorkerConnection);
    expect([reader.held, pool.roomLent(A)]).toEqual([0, 1]);
    expect(opened).toHaveLength(2);
    pool.close();
  });

  it("lends no idle connection while a commit still finishes on its worker (acquire waits for it)", async () => {
    fakeOpen();
    let finishing: Promise<void> | undefined;
    const pool = new WorkerPool({
      credentials: new ClusterCredentials("internal-secret", "sql-secret"),
      database: "postgres",
      maxPerServer: 2,
      beforeUse: () => finishing,
      logger: createLogger("worker-pool-test", { level: "error" }),
    });
    const reader = session(pool);
    reader.release(await reader.acquire(A, "app"));
    let finish = () => {};
    finishing = new Promise((resolve) => {
      finish = resolve;
    });
    expect(reader.acquireIdle(A, "app")).toBeUndefined();
    const acquiring = reader.acquire(A, "app");
    expect(await settled(acquiring)).toBe(false);
    finishing = undefined;
    finish();
    expect((await acquiring).target).toBe("10.0.0.1:5432");
    pool.close();
  });

  it("hands a connection given back to the waiter granted its room, rather than closing it and opening another", async () => {
    fakeOpen();
    const pool = poolWithCap(2);
    const holders = [session(pool), session(pool)];
    const held = await Promise.all(holders.map((holder) => holder.acquire(A, "app")));
    const waiters = [session(pool), session(pool)];
    const waiting = waiters.map((waiter) => waiter.acquire(A, "app"));
    // both given back in one turn: each is granted to a waiter before the waiter takes a connection
    for (const [i, holder] of holders.entries()) holder.release(held[i] as WorkerConnection);
    const taken = await Promise.all(waiting);
    expect(taken.map((connection) => connection.target)).toEqual(["10.0.0.1:5432", "10.0.0.1:5432"]);
    expect(opened.filter((record) => record.closed)).toEqual([]);
    expect(opened).toHaveLength(2);
    pool.close();
  });

  it("lets those behind in when the one first in line gives up (cancel, session end)", async () => {
    fakeOpen();
    const pool = poolWithCap(1);
    const onB = session(pool);
    await onB.acquire(B, "app");
    const writer = session(pool);
    const reserving = writer.reserve([A, B]);
    const reader = session(pool);
    const reading = reader.acquire(A, "app");
    writer.stopWaiting(new RoomRefused("canceling statement due to user request", { sqlState: "57014" }));
    await expect(reserving).rejects.toThrow(/canceling/);
    expect(writer.reserved.size).toBe(0);
    expect((await reading).target).toBe("10.0.0.1:5432");
    pool.close();
  });

  it("closes the connections left idle longer than its idle timeout, and only those", async () => {
    fakeOpen();
    const pool = poolWithCap(4, 100);
    const [first, second] = [session(pool), session(pool)];
    const [early, late] = [await first.acquire(A, "app"), await second.acquire(A, "app")];
    first.release(early);
    // (the sweep runs every idle timeout, here 100 ms: two or three sweeps later the first is gone)
    await new Promise((resolve) => setTimeout(resolve, 350));
    second.release(late);
    expect(opened.map((record) => record.closed)).toEqual([true, false]);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(opened.map((record) => record.closed)).toEqual([true, true]);
    // the next statement opens a new one
    await first.acquire(A, "app");
    expect(opened).toHaveLength(3);
    pool.close();
  });
});
