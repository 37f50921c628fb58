import { readFileSync } from "node:fs";
import { createConnection } from "node:net";
import { decodeNotice } from "@herd/coordinator";
import { sleep } from "@herd/shared";
import { describe, expect, it } from "vitest";
import { useHerdCluster } from "../helpers/herd-up.js";
import { botPid } from "../helpers/processes.js";
import { int32, msg, RawClient } from "../helpers/raw-client.js";

const herd = useHerdCluster("raw-protocol", { workers: 1 });

const ready = () => RawClient.ready(herd.cluster.sqlPort);
const startupPacket = (parameters: Record<string, string>, version = 196608) => {
  const body = Buffer.concat([
    int32(version),
    ...Object.entries(parameters).flatMap(([k, v]) => [Buffer.from(`${k}\0${v}\0`)]),
    Buffer.from([0]),
  ]);
  return Buffer.concat([int32(body.length + 4), body]);
};

async function stillServes(): Promise<void> {
  const client = await ready();
  client.send(msg.query("SELECT 41 + 1"));
  expect(await client.untilReady()).toEqual(["T", "D", "C", "Z"]);
  client.end();
}

describe("simple query protocol", () => {
  it("answers several statements in one Query, each with its own result", async () => {
    const client = await ready();
    client.send(msg.query("SELECT 1; SELECT 2, 3"));
    expect(await client.untilReady()).toEqual(["T", "D", "C", "T", "D", "C", "Z"]);
    client.end();
  });

  it("answers an empty query with EmptyQueryResponse", async () => {
    const client = await ready();
    client.send(msg.query(""));
    expect(await client.untilReady()).toEqual(["I", "Z"]);
    client.send(msg.query("  ;  "));
    expect(await client.untilReady()).toEqual(["I", "Z"]);
    client.end();
  });

  it("reports the transaction status in ReadyForQuery: idle, in a block, failed", async () => {
    const client = await ready();
    const statusAfter = async (sql: string) => {
      client.send(msg.query(sql));
      let last = await client.next();
      while (last.type !== 0x5a) last = await client.next();
      return String.fromCharCode(last.body[0] as number);
    };
    expect(await statusAfter("BEGIN")).toBe("T");
    expect(await statusAfter("SELECT 1/0")).toBe("E");
    expect(await statusAfter("ROLLBACK")).toBe("I");
    client.end();
  });

  it("passes notices and errors with all their fields", async () => {
    const client = await ready();
    client.send(msg.query("DO $$ BEGIN RAISE NOTICE 'hello %', 42 USING HINT = 'a hint'; END $$"));
    const notice = await client.next();
    expect(String.fromCharCode(notice.type)).toBe("N");
    expect(decodeNotice(notice.body)).toMatchObject({
      severity: "NOTICE",
      code: "00000",
      message: "hello 42",
      hint: "a hint",
    });
    await client.untilReady();
    client.send(msg.query("SELECT * FROM no_such_table"));
    const error = await client.next();
    expect(decodeNotice(error.body)).toMatchObject({ severity: "ERROR", code: "42P01", position: "15" });
    expect(await client.untilReady()).toEqual(["Z"]);
    client.end();
  });
});

describe("extended query protocol", () => {
  it("honours Execute row limits with PortalSuspended, then completes", async () => {
    const client = await ready();
    client.send(
      msg.parse("", "SELECT g FROM generate_series(1, 5) g"),
      msg.bind("p1", ""),
      msg.describePortal("p1"),
      msg.execute("p1", 2),
      msg.execute("p1", 2),
      msg.execute("p1", 2),
      msg.sync(),
    );
    expect(await client.untilReady()).toEqual(["1", "2", "T", "D", "D", "s", "D", "D", "s", "D", "C", "Z"]);
    client.end();
  });

  it("skips everything after an error until Sync, then serves again", async () => {
    const client = await ready();
    client.send(msg.parse("bad", "SELEC 1"), msg.bind("", "bad"), msg.execute(""), msg.sync());
    const types = await client.untilReady();
    expect(types).toEqual(["E", "Z"]);
    client.send(msg.parse("", "SELECT $1::int + 1"), msg.bind("", "", ["41"]), msg.execute(""), msg.sync());
    expect(await client.untilReady()).toEqual(["1", "2", "D", "C", "Z"]);
    client.end();
  });

  it("keeps named statements across Syncs and answers Flush without a Sync", async () => {
    const client = await ready();
    client.send(msg.parse("s1", "SELECT 'x'::text"), msg.sync());
    expect(await client.untilReady()).toEqual(["1", "Z"]);
    client.send(msg.bind("", "s1"), msg.execute(""), msg.flush());
    expect(String.fromCharCode((await client.next()).type)).toBe("2");
    expect(String.fromCharCode((await client.next()).type)).toBe("D");
    client.send(msg.sync());
    expect(await client.untilReady()).toEqual(["C", "Z"]);
    client.end();
  });
});

describe("startup", () => {
  it("declines SSL and GSS encryption without a certificate, then starts on the same connection", async () => {
    const client = await RawClient.connect(herd.cluster.sqlPort);
    const answers: string[] = [];
    client.socket.prependListener("data", (chunk: Buffer) => answers.push(chunk.toString("latin1", 0, 1)));
    client.socket.write(Buffer.concat([int32(8), int32(80877104)]));
    await sleep(100);
    client.socket.write(Buffer.concat([int32(8), int32(80877103)]));
    await sleep(100);
    expect(answers).toEqual(["N", "N"]);
    client.end();
  });

  it("negotiates a 3.2 client down to 3.0 and names the options it ignores", async () => {
    const client = await RawClient.connect(herd.cluster.sqlPort);
    client.send(startupPacket({ user: "postgres", "_pq_.test_option": "1" }, 196610));
    const first = await client.next();
    expect(String.fromCharCode(first.type)).toBe("v");
    expect(first.body.readInt32BE(0)).toBe(196608); // 3.0
    expect(first.body.readInt32BE(4)).toBe(1);
    expect(first.body.subarray(8).toString()).toBe("_pq_.test_option\0");
    expect(String.fromCharCode((await client.next()).type)).toBe("R");
    client.end();
  });

  it.each([
    ["no user", {}, "28000", /no PostgreSQL user name/],
    ["a replication connection", { user: "postgres", replication: "database" }, "0A000", /replication/],
  ])("refuses %s with a FATAL error", async (_name, parameters, code, message) => {
    const client = await RawClient.connect(herd.cluster.sqlPort);
    client.send(startupPacket(parameters));
    const error = await client.closedWith();
    expect(error).toMatchObject({ severity: "FATAL", code });
    expect(error?.message).toMatch(message);
  });

  it("refuses a wrong password with 28P01 and an unknown user the same way", async () => {
    await expect(RawClient.ready(herd.cluster.sqlPort, "wrong")).rejects.toThrow(
      'password authentication failed for user "postgres"',
    );
    await expect(RawClient.ready(herd.cluster.sqlPort, "postgres", { user: "mallory" })).rejects.toThrow(
      'password authentication failed for user "mallory"',
    );
  });

  it("closes an oversized startup packet before reading it", async () => {
    const client = await RawClient.connect(herd.cluster.sqlPort);
    client.send(int32(1_000_000), int32(196608));
    const error = await client.closedWith();
    expect(error).toMatchObject({ severity: "FATAL", code: "08P01" });
    await stillServes();
  });
});

describe("bad clients", () => {
  it("closes a connection that sends an unknown message type, and only that one", async () => {
    const bystander = await ready();
    const client = await ready();
    client.send(msg.raw("Y", Buffer.from("junk")));
    expect(await client.closedWith()).toMatchObject({
      severity: "FATAL",
      code: "08P01",
      message: "invalid frontend message type 89",
    });
    bystander.send(msg.query("SELECT 1"));
    expect(await bystander.untilReady()).toEqual(["T", "D", "C", "Z"]);
    bystander.end();
  });

  it("closes a connection that announces a message over the size limit", async () => {
    const client = await ready();
    client.send(Buffer.concat([Buffer.from("Q"), int32(0x7fffffff)]));
    const error = await client.closedWith();
    expect(error?.code).toBe("08P01");
    expect(error?.message).toMatch(/exceeds the limit/);
    await stillServes();
  });

  it("survives thousands of random and truncated messages, and keeps serving", async () => {
    const coordinatorPid = botPid(herd.cluster.dataDir, "herd-0");
    let seed = 12345;
    const random = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)));
    const valid = [
      msg.query("SELECT 1"),
      msg.parse("", "SELECT $1::int"),
      msg.bind("", "", ["1"]),
      msg.execute(""),
      msg.sync(),
      startupPacket({ user: "postgres" }),
    ];
    const payloads: Buffer[] = [];
    for (let i = 0; i < 3000; i += 1) {
      const kind = i % 3;
      const base = valid[Math.floor(random() * valid.length)] as Buffer;
      if (kind === 0) payloads.push(bytes(1 + Math.floor(random() * 64)));
      else if (kind === 1) payloads.push(base.subarray(0, Math.floor(random() * base.length)));
      else {
        const mutated = Buffer.from(base);
        mutated[Math.floor(random() * mutated.length)] = Math.floor(random() * 256);
        payloads.push(mutated);
      }
    }
    // pre-authentication garbage, 30 connections at a time
    for (let i = 0; i < payloads.length; i += 30) {
      await Promise.all(payloads.slice(i, i + 30).map((payload) => sendAndClose(herd.cluster.sqlPort, payload)));
    }
    // post-authentication garbage on authenticated sessions
    for (let i = 0; i < 200; i += 1) {
      const client = await ready();
      client.send(Buffer.concat(payloads.slice(i * 5, i * 5 + 5)));
      // a truncated message leaves the server waiting for the rest: give it a moment, then hang up
      await client.closedWith(200);
      client.end();
    }
    expect(botPid(herd.cluster.dataDir, "herd-0")).toBe(coordinatorPid);
    await stillServes();
  });
});

describe("flow control", () => {
  it("does not buffer a large result for a client that stops reading", async () => {
    const pid = botPid(herd.cluster.dataDir, "herd-0") as number;
    const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) * 1024;
    const client = await ready();
    const before = rss();
    client.socket.pause();
    // about 600 MB of rows
    client.send(msg.query("SELECT repeat('x', 2000) FROM generate_series(1, 300000)"));
    await sleep(3_000);
    const grown = rss() - before;
    client.end();
    expect(grown).toBeLessThan(64 * 1024 * 1024);
    await stillServes();
  });

  it("cancels a running statement through CancelRequest, and ignores a wrong key", async () => {
    const client = await ready();
    const key = client.key as { processId: number; secretKey: number };
    expect(key).toBeDefined();
    client.send(msg.query("SELECT pg_sleep(30)"));
    await sleep(300);
    await sendAndClose(
      herd.cluster.sqlPort,
      Buffer.concat([int32(16), int32(80877102), int32(key.processId), int32(key.secretKey ^ 1)]),
    );
    await expect(client.next(700)).rejects.toThrow("no message in time"); // still sleeping
    await sendAndClose(
      herd.cluster.sqlPort,
      Buffer.concat([int32(16), int32(80877102), int32(key.processId), int32(key.secretKey)]),
    );
    // PostgreSQL flushes the RowDescription it had buffered together with the error
    let error = await client.next(5_000);
    while (error.type !== 0x45) error = await client.next(5_000);
    expect(decodeNotice(error.body)).toMatchObject({
      code: "57014",
      message: "canceling statement due to user request",
    });
    expect(await client.untilReady()).toEqual(["Z"]);
    client.end();
  });
});

function sendAndClose(port: number, payload: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.on("error", () => resolve());
    socket.on("close", () => resolve());
    socket.on("connect", () => {
      socket.write(payload);
      setTimeout(() => socket.destroy(), 20);
    });
  });
}
