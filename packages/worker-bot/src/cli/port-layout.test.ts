import { createServer, type Server } from "node:net";
import { HerdError } from "@herd/shared";
import { afterEach, describe, expect, it } from "vitest";
import { assertPortsFree, portLayout } from "./port-layout.js";

describe("portLayout", () => {
  const layout = portLayout(6432, 6480);

  it("keeps the SQL and admin ports", () => {
    expect(layout.sqlPort).toBe(6432);
    expect(layout.adminPort).toBe(6480);
  });

  it("puts the metadata PostgreSQL after the SQL port and worker i's PostgreSQL at SQL+1+i", () => {
    expect(layout.pgPort(0)).toBe(6433);
    expect(layout.pgPort(1)).toBe(6434);
    expect(layout.pgPort(3)).toBe(6436);
  });

  it("puts worker i's probe server at admin+i", () => {
    expect(layout.probePort(0)).toBe(6480);
    expect(layout.probePort(1)).toBe(6481);
    expect(layout.probePort(3)).toBe(6483);
  });

  it("lists every port of a cluster, sorted", () => {
    expect(layout.all(3)).toEqual([6432, 6433, 6434, 6435, 6436, 6480, 6481, 6482, 6483]);
    expect(layout.all(0)).toEqual([6432, 6433, 6480]);
    expect(portLayout(9000, 100).all(1)).toEqual([100, 101, 9000, 9001, 9002]);
  });

  it("lists a shared port once", () => {
    expect(portLayout(7000, 7000).all(1)).toEqual([7000, 7001, 7002]);
  });
});

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

async function isFree(port: number): Promise<boolean> {
  try {
    await close(await listen(port));
    return true;
  } catch {
    return false;
  }
}

/** A layout for `workers` whose ports are all free right now (tests run in parallel, so try a few). */
async function freeLayout(workers: number) {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const sql = 20_000 + Math.floor(Math.random() * 40_000);
    const layout = portLayout(sql, sql + workers + 10);
    let allFree = true;
    for (const port of layout.all(workers)) if (allFree) allFree = await isFree(port);
    if (allFree) return layout;
  }
  throw new Error("no free port layout found");
}

async function rejection(promise: Promise<unknown>): Promise<HerdError> {
  const error = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(error).toBeInstanceOf(HerdError);
  return error as HerdError;
}

describe("assertPortsFree", () => {
  const servers: Server[] = [];

  afterEach(async () => {
    await Promise.all(servers.splice(0).map(close));
  });

  it("passes when every port is free", async () => {
    const layout = await freeLayout(2);
    await expect(assertPortsFree(layout, 2)).resolves.toBeUndefined();
  });

  it.each([
    ["the admin port inside the PostgreSQL ports", 6432, 6434, 3],
    ["the same SQL and admin port", 7000, 7000, 1],
    ["the SQL port inside the probe ports", 6482, 6480, 3],
    ["ranges that touch at the last worker", 6432, 6436, 3],
  ])("refuses %s", async (_, sql, admin, workers) => {
    const error = await rejection(assertPortsFree(portLayout(sql, admin), workers));
    expect(error.sqlState).toBe("22023");
    expect(error.message).toBe(
      `the SQL port range and the admin port range overlap (--port ${sql}, --admin-port ${admin})`,
    );
  });

  it("names a port that is really taken", async () => {
    const server = await listen(0);
    servers.push(server);
    const taken = (server.address() as { port: number }).port;
    // `taken` is the SQL port; the admin range sits well clear of the PostgreSQL ports
    const admin = taken > 60_000 ? taken - 100 : taken + 100;
    const error = await rejection(assertPortsFree(portLayout(taken, admin), 1));
    expect(error.sqlState).toBe("55006");
    expect(error.message).toMatch(
      new RegExp(`^ports? (\\d+, )*${taken}(, \\d+)* (is|are) not available on 127\\.0\\.0\\.1$`),
    );
    expect(error.hint).toContain("--port and --admin-port");
  });

  it("names a taken port that is not the first of the layout", async () => {
    const layout = await freeLayout(1);
    const taken = layout.probePort(1);
    servers.push(await listen(taken));
    const error = await rejection(assertPortsFree(layout, 1));
    expect(error.sqlState).toBe("55006");
    expect(error.message).toBe(`port ${taken} is not available on 127.0.0.1`);
  });

  it("names the ports past 65535 as not available", async () => {
    const error = await rejection(assertPortsFree(portLayout(65534, 20_000), 3));
    expect(error.sqlState).toBe("55006");
    expect(error.message).toContain("65536, 65537, 65538 are not available");
  });
});
