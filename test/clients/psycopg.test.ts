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

// psycopg 3 (with its binary libpq) drives herd's SQL port from check_psycopg.py (one Python run).
const VERSION = pinnedVersion("PSYCOPG_VERSION");
// not the default: proves that clients authenticate with HERD_PASSWORD
const PASSWORD = "psycopg-s3cret pass";

const CHECKS = [
  {
    check: "connect",
    does: `connects with SCRAM-SHA-256 (psycopg ${VERSION}, binary), sees PostgreSQL 18, passes startup parameters on`,
  },
  { check: "wrong-password", does: "is refused with PostgreSQL's message for a wrong password" },
  { check: "protocol-3.2", does: "connects and cancels when libpq asks for protocol 3.2 (NegotiateProtocolVersion)" },
  {
    check: "types",
    does: "round-trips int, bigint, Decimal, str, bool, date, aware datetime, None, bytes and a list (text and binary)",
  },
  { check: "large-values", does: "round-trips 4-5 MiB values (text and binary) and reads a 100,000-row result" },
  { check: "executemany", does: "inserts with cursor.executemany, and returns rows with returning=True" },
  {
    check: "prepare",
    does: "prepares statements on the server, explicitly (prepare=True) and after prepare_threshold",
  },
  { check: "transaction", does: "commits conn.transaction() blocks, rolls back on exception, and nests savepoints" },
  { check: "copy", does: "copies rows in and out with COPY FROM STDIN / TO STDOUT, in text and binary" },
  {
    check: "error-sqlstate",
    does: "reports 42P01, 22012, 23505 and 42601 (with its position), and the connection keeps working",
  },
  { check: "error-in-transaction", does: "reports 25P02 in an aborted transaction, and works again after rollback" },
  { check: "pipeline", does: "runs several queries in pipeline mode" },
  {
    check: "pipeline-error",
    does: "reports an error in a pipeline, keeps what an earlier Sync committed, and goes on",
  },
  { check: "cancel", does: "cancels a running statement (57014), and the connection keeps working" },
  { check: "notify", does: "delivers NOTICEs and LISTEN/NOTIFY notifications" },
  {
    check: "search-path",
    does: "reads and updates the distributed table its search_path (startup options, SET) names, of two with one name",
  },
] as const;

const PYTHON = cached("venv/bin/python");

const checks = useClientChecks("psycopg", {
  installed: PYTHON,
  password: PASSWORD,
  run: (cluster) => {
    const conninfo = `host=127.0.0.1 port=${cluster.sqlPort} user=postgres dbname=postgres`;
    return runChecks(PYTHON, [join(CLIENTS_DIR, "psycopg", "check_psycopg.py"), conninfo, PASSWORD]);
  },
});

describe(`psycopg ${VERSION} on herd's SQL port`, () => {
  for (const { check, does } of CHECKS) it(`${does} (${check})`, () => expectCheck(checks.run, check));

  it("runs every check, exiting 1 only if one failed", () =>
    expectCompleteRun(
      checks.run,
      CHECKS.map((c) => c.check),
    ));
});
