import { join } from "node:path";
import { describe, it } from "vitest";
import {
  CLIENTS_DIR,
  cached,
  expectCheck,
  expectCompleteRun,
  pinnedVersion,
  runChecks,
  useClientChecks,
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
  {
    check: "current-schema",
    does: "reads and updates the distributed table of the schema currentSchema= names, of two with one name",
  },
] as const;

const JAR = cached(`postgresql-${VERSION}.jar`);

const checks = useClientChecks("jdbc", {
  installed: JAR,
  password: PASSWORD,
  run: (cluster) => {
    const url = `jdbc:postgresql://127.0.0.1:${cluster.sqlPort}/postgres?user=postgres`;
    return runChecks("java", ["-cp", JAR, join(CLIENTS_DIR, "jdbc", "JdbcCheck.java"), url, PASSWORD]);
  },
});

describe(`pgjdbc ${VERSION} on herd's SQL port`, () => {
  for (const { check, does } of CHECKS) it(`${does} (${check})`, () => expectCheck(checks.run, check));

  it("runs every check, exiting 1 only if one failed", () =>
    expectCompleteRun(
      checks.run,
      CHECKS.map((c) => c.check),
    ));
});
