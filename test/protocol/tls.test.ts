import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type HerdUp, startHerdUp } from "../helpers/herd-up.js";
import { scratchDir } from "../helpers/scratch-dir.js";

const run = promisify(execFile);
let scratch: { path: string; remove(): Promise<void> };
let cluster: HerdUp;
let cert: Buffer;

beforeAll(async () => {
  scratch = await scratchDir("tls");
  const certFile = join(scratch.path, "server.crt");
  const keyFile = join(scratch.path, "server.key");
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=localhost",
    "-keyout",
    keyFile,
    "-out",
    certFile,
  ]);
  cert = await readFile(certFile);
  cluster = await startHerdUp({
    dataDir: join(scratch.path, "cluster"),
    workers: 1,
    env: { HERD_TLS_CERT_FILE: certFile, HERD_TLS_KEY_FILE: keyFile },
  });
});

afterAll(async () => {
  await cluster?.stop();
  await scratch?.remove();
});

describe("TLS on the SQL port", () => {
  it("serves psql with sslmode=require over TLS", async () => {
    const { stdout } = await run(
      "psql",
      [
        `host=127.0.0.1 port=${cluster.sqlPort} user=postgres sslmode=require`,
        "-X",
        "-c",
        "\\conninfo",
        "-c",
        "SELECT 1 AS one",
      ],
      {
        env: { ...process.env, PGPASSWORD: "postgres" },
      },
    );
    expect(stdout).toMatch(/SSL connection \(protocol: TLSv1\.[23]/);
    expect(stdout).toMatch(/one\s*\n-+\s*\n\s*1/);
  });

  it("serves node-postgres verifying the server certificate", async () => {
    const client = new pg.Client({
      host: "127.0.0.1",
      port: cluster.sqlPort,
      user: "postgres",
      password: "postgres",
      ssl: { ca: cert, servername: "localhost" },
    });
    await client.connect();
    const { rows } = await client.query("SELECT 'secret' AS word");
    expect(rows).toEqual([{ word: "secret" }]);
    expect((client as unknown as { connection: { stream: { encrypted?: boolean } } }).connection.stream.encrypted).toBe(
      true,
    );
    await client.end();
  });

  it("still serves clients that do not ask for TLS", async () => {
    const { stdout } = await run(
      "psql",
      [`host=127.0.0.1 port=${cluster.sqlPort} user=postgres sslmode=disable`, "-X", "-tAc", "SELECT 2"],
      {
        env: { ...process.env, PGPASSWORD: "postgres" },
      },
    );
    expect(stdout).toBe("2\n");
  });
});
