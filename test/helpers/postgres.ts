import { join } from "node:path";
import { createLogger, Defaults } from "@herd/shared";
import { findPgBinaries, PostgresServer, resolveRunAs } from "@herd/worker-bot";
import pg from "pg";
import { freePortRange } from "./ports.js";
import { scratchDir } from "./scratch-dir.js";

export const TEST_PASSWORD = "test-password";

export interface TestPostgres {
  readonly server: PostgresServer;
  readonly port: number;
  readonly dir: string;
  readonly connection: pg.ClientConfig;
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<R[]>;
  /** Stops the server and removes its files. */
  stop(): Promise<void>;
}

/** A real PostgreSQL 18 server in a scratch directory, for tests that need one. */
export async function startTestPostgres(name: string): Promise<TestPostgres> {
  const scratch = await scratchDir(name);
  const port = await freePortRange(1);
  const server = new PostgresServer({
    binaries: await findPgBinaries(),
    dataDir: join(scratch.path, "pgdata"),
    logFile: join(scratch.path, "postgres.log"),
    port,
    listenAddresses: "127.0.0.1",
    superuserPassword: TEST_PASSWORD,
    runAs: resolveRunAs(),
    logger: createLogger(`test-pg ${name}`, { level: "warn" }),
  });
  await server.start();
  const connection = {
    host: "127.0.0.1",
    port,
    user: Defaults.superuser,
    password: TEST_PASSWORD,
    database: "postgres",
  };
  return {
    server,
    port,
    dir: scratch.path,
    connection,
    async query(sql, params) {
      const client = new pg.Client(connection);
      await client.connect();
      try {
        return (await client.query(sql, params)).rows;
      } finally {
        await client.end();
      }
    },
    async stop() {
      await server.stop();
      await scratch.remove();
    },
  };
}

/** A plain PostgreSQL beside herd for a differential test: its server and a connected client. */
export interface PlainTwin {
  readonly server: TestPostgres;
  readonly client: pg.Client;
  /** Ends the client and stops the server. */
  stop(): Promise<void>;
}

/** Starts a plain PostgreSQL and runs each of `schema` on it and on `herd`, in order. */
export async function startPlainTwin(name: string, herd: pg.Client, schema: readonly string[]): Promise<PlainTwin> {
  const server = await startTestPostgres(name);
  const client = new pg.Client(server.connection);
  await client.connect();
  for (const sql of schema) {
    await herd.query(sql);
    await client.query(sql);
  }
  return {
    server,
    client,
    async stop() {
      await client.end();
      await server.stop();
    },
  };
}
