import { decodeNotice } from "@herd/coordinator";
import type pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { answer, connectTo } from "../helpers/differential.js";
import { useHerdCluster } from "../helpers/herd-up.js";
import { RawClient } from "../helpers/raw-client.js";

// The SQL port's admission: sockets that never authenticate have their own small limit and a
// short time to do so, so they cannot take the slots of clients that can (before, 50 of them held
// everyone out for 60 s at the 250-connection limit). Small limits here, to reach them. One
// coordinator process: the limit of sockets still authenticating is each process's own (which of
// them accepts a socket is the kernel's choice); sql-processes.test.ts checks the session slots,
// counted for all processes, with several.
const LIMITS = {
  HERD_SQL_PROCESSES: "1",
  HERD_MAX_CONNECTIONS: "4",
  HERD_SUPERUSER_RESERVED_CONNECTIONS: "2",
  HERD_MAX_UNAUTHENTICATED: "5",
  HERD_AUTH_TIMEOUT_MS: "1500",
};
const herdUp = useHerdCluster("connection-limits", { workers: 1, env: LIMITS });
const clients: pg.Client[] = [];
const strangers: RawClient[] = [];

afterAll(async () => {
  for (const stranger of strangers) stranger.end();
  await Promise.all(clients.map((client) => client.end().catch(() => {})));
});

const login = () =>
  connectTo({ host: "127.0.0.1", port: herdUp.cluster.sqlPort, user: "postgres", password: "postgres" });

/** The first message a server sends a socket that says nothing: an ErrorResponse, or none before it closes. */
async function firstError(
  client: RawClient,
  timeoutMs: number,
): Promise<{ code?: string; message: string } | undefined> {
  const frame = await client.next(timeoutMs).catch(() => undefined);
  if (!frame || String.fromCharCode(frame.type) !== "E") return undefined;
  const notice = decodeNotice(frame.body);
  return { code: notice.code, message: notice.message };
}

describe("connections that never authenticate", () => {
  it("are held to their own limit: past it a socket gets 53300, signed-in clients go on", async () => {
    clients.push(await login(), await login());
    for (let i = 0; i < 5; i += 1) strangers.push(await RawClient.connect(herdUp.cluster.sqlPort));
    const sixth = await RawClient.connect(herdUp.cluster.sqlPort);
    strangers.push(sixth);
    const refused = await firstError(sixth, 2_000);
    expect(refused).toEqual({ code: "53300", message: "sorry, too many clients are authenticating already" });
    for (const client of clients) expect((await client.query("SELECT 42 AS n")).rows).toEqual([{ n: 42 }]);
  });

  it("are closed after the authentication timeout, and a client can sign in again", async () => {
    const timedOut = await firstError(strangers[0] as RawClient, 5_000);
    expect(timedOut?.message).toBe("canceling authentication due to timeout");
    const client = await login();
    clients.push(client);
    expect((await client.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
  });
});

describe("signed-in sessions", () => {
  it("past HERD_MAX_CONNECTIONS: 53300 after the password, the others unaffected", async () => {
    clients.push(await login()); // the fourth
    const fifth = await login().then(
      () => undefined,
      (error: { code?: string; message: string }) => error,
    );
    expect(fifth?.code).toBe("53300");
    expect(fifth?.message).toBe("sorry, too many clients already");
    const results = await Promise.all(clients.map((client) => answer(client, "SELECT 7 AS n")));
    for (const result of results) expect(result).toMatchObject({ rows: [["7"]] });
    // a slot freed is a slot taken again
    await clients.pop()?.end();
    clients.push(await login());
  });
});

describe("slots reserved for superusers", () => {
  it("keep the last HERD_SUPERUSER_RESERVED_CONNECTIONS sessions for superusers, as PostgreSQL does", async () => {
    const admin = clients.pop() as pg.Client;
    await admin.query("CREATE ROLE plain_user LOGIN PASSWORD 'plain'");
    await admin.end();
    await Promise.all(clients.splice(0).map((client) => client.end()));
    const asPlainUser = () =>
      connectTo({
        host: "127.0.0.1",
        port: herdUp.cluster.sqlPort,
        user: "plain_user",
        password: "plain",
        database: "postgres",
      });
    clients.push(await asPlainUser(), await asPlainUser());
    const third = await asPlainUser().then(
      (client) => client,
      (error: { code?: string; message: string }) => error,
    );
    expect(third).toMatchObject({
      code: "53300",
      message: "remaining connection slots are reserved for roles with the SUPERUSER attribute",
    });
    // a superuser still gets in, up to the limit itself
    clients.push(await login(), await login());
    const fifth = await login().then(
      () => undefined,
      (error: { code?: string; message: string }) => error,
    );
    expect(fifth?.message).toBe("sorry, too many clients already");
  });
});
