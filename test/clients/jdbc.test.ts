import { join } from "node:path";
import { afterAll, beforeAll, describe, it } from "vitest";
import { type HerdUp, startHerdUp } from "../helpers/herd-up.js";
import { scratchDir } from "../helpers/scratch-dir.js";
import {
  type CheckRun,
  CLIENTS_DIR,
  cached,
  expectCheck,
  expectCompleteRun,
  missingInstall,
  pinnedVersion,
  runChecks,
} from "./client-checks.js";

// pgjdbc, the PostgreSQL JDBC driver, drives herd's SQL port from JdbcCheck.java (one JVM run).
const VERSION = pinnedVersion("PGJDBC_VERSION");
// not the default: proves that clients authenticate with HERD_PASSWORD
const PASSWORD = "jdbc-s3cret pass";

const CHECKS = [
  { check: "connect", does: "connects with SCRAM-SHA-256, sees PostgreSQL 18 and passes startup parameters on" },
  { check: "wrong-password", does: "is refused with SQLState 28P01 for a wrong password" },
  {
    check: "protocol-3.2",
    does: "connects when it asks for protocol 3.2 (protocolVersion=3.2): NegotiateProtocolVersion",
  },
  { check: "simple-statement", does: "runs a simple statement" },
  {
    check: "prepared-types",
    does: "round-trips int, bigint, text, numeric, boolean, date, timestamp and null through PreparedStatements",
  },
  {
    check: "server-prepare",
    does: "switches to a server-side prepared statement after prepareThreshold and keeps answering right",
  },
  { check: "commit", does: "commits a transaction (setAutoCommit(false)), visible to another session only after" },
  { check: "rollback", does: "rolls a transaction back, leaving no row" },
  { check: "batch", does: "inserts with addBatch/executeBatch" },
  { check: "fetch-size", does: "reads a result 100 rows at a time through a portal (setFetchSize)" },
  {
    check: "error-sqlstate",
    does: "reports 42P01, 22012 and 42601 (with its position), and the connection keeps working",
  },
  { check: "error-in-transaction", does: "reports 25P02 in an aborted transaction, and works again after rollback" },
  { check: "cancel", does: "cancels a statement past setQueryTimeout (57014), and the connection keeps working" },
  { check: "metadata", does: "finds a new table with DatabaseMetaData.getTables, getColumns and getPrimaryKeys" },
] as const;

let scratch: { path: string; remove(): Promise<void> } | undefined;
let cluster: HerdUp | undefined;
let run: CheckRun;

beforeAll(async () => {
  const jar = cached(`postgresql-${VERSION}.jar`);
  const missing = missingInstall(jar);
  if (missing) {
    run = missing;
    return;
  }
  scratch = await scratchDir("jdbc");
  cluster = await startHerdUp({ dataDir: scratch.path, workers: 1, env: { HERD_PASSWORD: PASSWORD } });
  const url = `jdbc:postgresql://127.0.0.1:${cluster.sqlPort}/postgres?user=postgres`;
  run = await runChecks("java", ["-cp", jar, join(CLIENTS_DIR, "jdbc", "JdbcCheck.java"), url, PASSWORD]);
});

afterAll(async () => {
  await cluster?.stop();
  await scratch?.remove();
});

describe(`pgjdbc ${VERSION} on herd's SQL port`, () => {
  for (const { check, does } of CHECKS) it(`${does} (${check})`, () => expectCheck(run, check));

  it("runs every check, exiting 1 only if one failed", () =>
    expectCompleteRun(
      run,
      CHECKS.map((c) => c.check),
    ));
});
