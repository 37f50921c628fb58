import { describe, expect, it } from "vitest";
import { acquirePair } from "./acquire-pair.js";
import type { ConnectionPool, ServerAddress, WorkerConnection } from "./worker-connection.js";

/** A pool whose servers on `downPort` cannot be reached; it records what it lent and got back. */
function poolWith(downPort: number) {
  const lent: string[] = [];
  const released: string[] = [];
  const pool: ConnectionPool = {
    connectionsPerWorker: 1,
    async acquire(server: ServerAddress) {
      const target = `${server.host}:${server.port}`;
      if (server.port === downPort) throw new Error(`could not connect to the worker at ${target}`);
      lent.push(target);
      return { target } as WorkerConnection;
    },
    release(connection) {
      released.push(connection.target);
    },
    markDown() {},
    isDown: () => false,
  };
  return { pool, lent, released };
}

describe("acquirePair", () => {
  it("gives back the connection it got when the other end cannot be reached", async () => {
    for (const [first, second] of [
      [5001, 5002],
      [5002, 5001],
    ] as const) {
      const { pool, lent, released } = poolWith(5002);
      await expect(acquirePair(pool, { host: "w", port: first }, { host: "w", port: second })).rejects.toThrow(
        "could not connect to the worker at w:5002",
      );
      expect(lent).toEqual(["w:5001"]);
      expect(released).toEqual(["w:5001"]);
    }
  });

  it("returns both, in order, when both come", async () => {
    const { pool, released } = poolWith(0);
    const [a, b] = await acquirePair(pool, { host: "a", port: 1 }, { host: "b", port: 2 });
    expect([a.target, b.target]).toEqual(["a:1", "b:2"]);
    expect(released).toEqual([]);
  });
});
