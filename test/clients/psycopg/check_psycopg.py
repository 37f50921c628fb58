"""Drives herd's SQL port with psycopg 3, as a Python application would.

Usage: check_psycopg.py <conninfo> <password>

Prints one JSON line per check, {"check": name, "ok": true|false, "detail": text}, and exits 1
when any check failed. Each check runs on a fresh connection, even when an earlier one failed.
"""

import hashlib
import json
import sys
import threading
import traceback
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import psycopg
from psycopg import errors, pq

CONNINFO, PASSWORD = sys.argv[1], sys.argv[2]
CHECKS = []


def check(name):
    """Registers a check: a function of a fresh autocommit connection that returns a detail or None."""

    def register(fn):
        CHECKS.append((name, fn))
        return fn

    return register


def connect(**kwargs):
    return psycopg.connect(CONNINFO, password=PASSWORD, **kwargs)


def create_table(conn, name, columns):
    """A new, empty table (dropped first, so that the program can run again on the same cluster)."""
    conn.execute(f"DROP TABLE IF EXISTS {name}")
    conn.execute(f"CREATE TABLE {name} ({columns})")


def expect(actual, expected, what):
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r} but got {actual!r}")


def expect_error(error_class, sqlstate, run):
    """Runs `run`, which must raise `error_class` with `sqlstate`; returns the error."""
    try:
        run()
    except psycopg.Error as error:
        if not isinstance(error, error_class) or error.sqlstate != sqlstate:
            raise AssertionError(
                f"expected {error_class.__name__} ({sqlstate}) but got "
                f"{type(error).__name__} ({error.sqlstate}): {error}"
            ) from error
        return error
    raise AssertionError(f"expected {error_class.__name__} ({sqlstate}) but nothing was raised")


TZ = timezone(timedelta(hours=5, minutes=30))
# Python value -> the same value read back (a list comes back as a list, through an int[] column)
VALUES = {
    "i": 2**31 - 1,
    "big": -(2**62),
    "n": Decimal("-12345678901234567890.000000000123"),
    "s": "héllo, ☃ 'quoted' \\ \"twice\"",
    "b": True,
    "d": date(2024, 2, 29),
    "ts": datetime(2024, 12, 31, 23, 59, 58, 123456, tzinfo=TZ),
    "z": None,
    "by": b"\x00\x01\xfe\xff binary",
    "arr": [1, -2, 3, None],
}
COLUMNS = "i int, big bigint, n numeric, s text, b boolean, d date, ts timestamptz, z int, by bytea, arr int[]"


@check("connect")
def connects(conn):
    expect(conn.info.server_version // 10000, 18, "server major version")
    expect(conn.info.parameter_status("server_encoding"), "UTF8", "server_encoding")
    # startup parameters reach PostgreSQL
    with connect(application_name="psycopg check", options="-c statement_timeout=4321") as other:
        settings = other.execute(
            "SELECT current_setting('application_name'), current_setting('statement_timeout')"
        ).fetchone()
    expect(settings, ("psycopg check", "4321ms"), "application_name and statement_timeout from options")
    return (
        f"psycopg {psycopg.__version__} ({pq.__impl__}, libpq {pq.version()}), "
        f"server {conn.info.server_version}"
    )


@check("wrong-password")
def wrong_password(_conn):
    try:
        psycopg.connect(CONNINFO, password=PASSWORD + "-wrong").close()
    except psycopg.OperationalError as error:
        # libpq gives no sqlstate for a failed connection: the server's message says what failed
        message = str(error).strip()
        if 'password authentication failed for user "postgres"' not in message:
            raise AssertionError(f"unexpected connection error: {message}") from error
        return message
    raise AssertionError("connected with a wrong password")


@check("protocol-3.2")
def protocol_3_2(_conn):
    # libpq 18 asks for protocol 3.2; a server that speaks only 3.0 answers NegotiateProtocolVersion
    with connect(max_protocol_version="3.2", autocommit=True) as conn:
        version = conn.pgconn.full_protocol_version
        if version not in (30000, 30002):
            raise AssertionError(f"unexpected protocol version {version}")
        expect(conn.execute("SELECT 32").fetchone(), (32,), "a query")
        # the cancel key of either version works
        timer = threading.Timer(0.5, conn.cancel_safe)
        timer.start()
        try:
            expect_error(errors.QueryCanceled, "57014", lambda: conn.execute("SELECT pg_sleep(30)"))
        finally:
            timer.cancel()
    return f"protocol {version // 10000}.{version % 10000}"


@check("types")
def types(conn):
    names = list(VALUES)
    create_table(conn, "py_types", COLUMNS)
    placeholders = ", ".join(f"%({name})s" for name in names)
    conn.execute(f"INSERT INTO py_types ({', '.join(names)}) VALUES ({placeholders})", VALUES)
    row = conn.execute(
        f"SELECT {', '.join(names)} FROM py_types WHERE s = %s AND ts = %s", [VALUES["s"], VALUES["ts"]]
    ).fetchone()
    if row is None:
        raise AssertionError("the inserted row was not found")
    for name, value in zip(names, row):
        expect(value, VALUES[name], f"column {name}")
    # the same values as parameters straight back, in text and in binary
    for binary in (False, True):
        with conn.cursor(binary=binary) as cur:
            cur.execute(f"SELECT {', '.join(['%s'] * len(names))}", list(VALUES.values()))
            for name, value in zip(names, cur.fetchone()):
                expect(value, VALUES[name], f"{name} selected back ({'binary' if binary else 'text'})")


@check("large-values")
def large_values(conn):
    blob = bytes(range(256)) * 4096 * 4  # 4 MiB
    text = "ünïcode ☃ " * 400_000  # about 5 MiB of UTF-8
    for binary in (False, True):
        with conn.cursor(binary=binary) as cur:
            cur.execute("SELECT %s::bytea, %s::text, md5(%s::bytea)", [blob, text, blob])
            back_blob, back_text, digest = cur.fetchone()
            mode = "binary" if binary else "text"
            expect(back_blob == blob, True, f"4 MiB bytea back ({mode})")
            expect(back_text == text, True, f"5 MiB text back ({mode})")
            expect(digest, hashlib.md5(blob).hexdigest(), f"md5 computed by the server ({mode})")
    rows = conn.execute("SELECT g, repeat('x', 100) FROM generate_series(1, 100000) g").fetchall()
    expect((len(rows), rows[-1][0], len(rows[-1][1])), (100_000, 100_000, 100), "rows of a large result")


@check("executemany")
def executemany(conn):
    create_table(conn, "py_many", "id int PRIMARY KEY, label text")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO py_many VALUES (%s, %s)", [(i, f"item {i}") for i in range(1, 101)])
        expect(cur.rowcount, 100, "rowcount")
        # returning=True: one result set per parameter set
        cur.executemany(
            "UPDATE py_many SET label = label || '!' WHERE id = %s RETURNING id, label",
            [(3,), (5,)],
            returning=True,
        )
        returned = []
        while True:
            returned.append(cur.fetchone())
            if not cur.nextset():
                break
        expect(returned, [(3, "item 3!"), (5, "item 5!")], "rows returned")
    expect(conn.execute("SELECT count(*), sum(id) FROM py_many").fetchone(), (100, 5050), "count and sum")


@check("prepare")
def prepare(conn):
    query = "SELECT %s::int * 2, %s::text"
    for i in range(1, 11):
        expect(conn.execute(query, [i, f"run {i}"], prepare=True).fetchone(), (i * 2, f"run {i}"), f"run {i}")
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM pg_prepared_statements WHERE statement = 'SELECT $1::int * 2, $2::text'"
        )
    ]
    if len(names) != 1:
        raise AssertionError(f"expected one server-side prepared statement, found {names}")
    # an automatically prepared statement too, after prepare_threshold (5) runs
    for i in range(conn.prepare_threshold + 1):
        expect(conn.execute("SELECT %s::bigint + 1", [i]).fetchone(), (i + 1,), f"auto-prepared run {i}")
    auto = conn.execute(
        "SELECT count(*) FROM pg_prepared_statements WHERE statement = 'SELECT $1::bigint + 1'"
    ).fetchone()
    expect(auto, (1,), "auto-prepared statements")
    return f"prepared as {names[0]}"


@check("transaction")
def transaction(conn):
    create_table(conn, "py_tx", "id int PRIMARY KEY, note text")

    class Oops(Exception):
        pass

    with conn.transaction():
        conn.execute("INSERT INTO py_tx VALUES (1, 'committed')")
        expect(conn.info.transaction_status, pq.TransactionStatus.INTRANS, "status inside a block")
    try:
        with conn.transaction():
            conn.execute("INSERT INTO py_tx VALUES (2, 'rolled back')")
            expect(conn.execute("SELECT count(*) FROM py_tx").fetchone(), (2,), "rows inside the block")
            raise Oops()
    except Oops:
        pass
    expect(conn.info.transaction_status, pq.TransactionStatus.IDLE, "status after the rollback")
    # a savepoint rolled back inside a committed transaction
    with conn.transaction():
        conn.execute("INSERT INTO py_tx VALUES (3, 'outer')")
        try:
            with conn.transaction():
                conn.execute("INSERT INTO py_tx VALUES (4, 'savepoint')")
                raise Oops()
        except Oops:
            pass
    with connect() as other:
        ids = [row[0] for row in other.execute("SELECT id FROM py_tx ORDER BY id")]
    expect(ids, [1, 3], "rows seen by another session")


@check("copy")
def copy(conn):
    create_table(conn, "py_copy", "id int, name text, amount numeric, seen date")
    rows = [
        (i, f"name {i}\twith tab" if i % 7 == 0 else f"name {i}", Decimal(i) / 4, date(2024, 1, 1 + i % 28))
        for i in range(1, 1001)
    ]
    rows.append((0, None, None, None))
    with conn.cursor() as cur:
        with cur.copy("COPY py_copy FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        expect(cur.rowcount, len(rows), "rows copied in")
        with cur.copy("COPY (SELECT id, name, amount, seen FROM py_copy ORDER BY id) TO STDOUT") as copy:
            copy.set_types(["int4", "text", "numeric", "date"])
            back = list(copy.rows())
    expect(back, sorted(rows), "rows copied out")
    # binary COPY in both directions
    with conn.cursor() as cur:
        with cur.copy("COPY py_copy (id, name) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "text"])
            copy.write_row((5000, "binary"))
        with cur.copy("COPY (SELECT id, name FROM py_copy WHERE id = 5000) TO STDOUT (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "text"])
            expect(list(copy.rows()), [(5000, "binary")], "binary COPY out")


@check("error-sqlstate")
def error_sqlstate(conn):
    first = expect_error(errors.UndefinedTable, "42P01", lambda: conn.execute("SELECT * FROM py_no_such_table"))
    expect(conn.execute("SELECT 1").fetchone(), (1,), "a query after the error")
    expect_error(errors.DivisionByZero, "22012", lambda: conn.execute("SELECT 1 / %s", [0]))
    create_table(conn, "py_unique", "id int PRIMARY KEY")
    conn.execute("INSERT INTO py_unique VALUES (1)")
    unique = expect_error(errors.UniqueViolation, "23505", lambda: conn.execute("INSERT INTO py_unique VALUES (1)"))
    expect(unique.diag.constraint_name, "py_unique_pkey", "constraint name")
    syntax = expect_error(errors.SyntaxError, "42601", lambda: conn.execute("SELEC 1"))
    expect(syntax.diag.statement_position, "1", "position of the syntax error")
    expect(conn.execute("SELECT 2").fetchone(), (2,), "a query after the errors")
    return str(first.diag.message_primary)


@check("error-in-transaction")
def error_in_transaction(_conn):
    # not autocommit: psycopg opens a transaction, which the error aborts
    with connect() as conn:
        expect_error(errors.UndefinedTable, "42P01", lambda: conn.execute("SELECT * FROM py_no_such_table"))
        expect(conn.info.transaction_status, pq.TransactionStatus.INERROR, "status after the error")
        expect_error(errors.InFailedSqlTransaction, "25P02", lambda: conn.execute("SELECT 1"))
        conn.rollback()
        expect(conn.execute("SELECT 3").fetchone(), (3,), "a query after the rollback")


@check("pipeline")
def pipeline(conn):
    create_table(conn, "py_pipe", "id int PRIMARY KEY, label text")
    with conn.pipeline() as p:
        conn.execute("INSERT INTO py_pipe VALUES (%s, %s)", [1, "one"])
        conn.execute("INSERT INTO py_pipe VALUES (%s, %s)", [2, "two"])
        upper = conn.execute("UPDATE py_pipe SET label = upper(label) WHERE id = %s RETURNING label", [2])
        total = conn.execute("SELECT count(*) FROM py_pipe")
        p.sync()
        now = conn.execute("SELECT %s::text || '!'", ["piped"])
    expect(upper.fetchone(), ("TWO",), "UPDATE RETURNING")
    expect(total.fetchone(), (2,), "count")
    expect(now.fetchone(), ("piped!",), "after a sync")


@check("pipeline-error")
def pipeline_error(conn):
    create_table(conn, "py_pipe_err", "id int PRIMARY KEY")
    try:
        with conn.pipeline() as p:
            conn.execute("INSERT INTO py_pipe_err VALUES (1)")
            p.sync()  # autocommit: what precedes a Sync is one transaction, committed here
            conn.execute("INSERT INTO py_pipe_err VALUES (2)")
            conn.execute("SELECT * FROM py_no_such_table")
            conn.execute("INSERT INTO py_pipe_err VALUES (3)")
    except errors.UndefinedTable as error:
        expect(error.sqlstate, "42P01", "sqlstate")
    else:
        raise AssertionError("the pipeline raised no error")
    # 2 is rolled back with the failed statement's transaction; 3 is skipped up to the next Sync
    expect([r[0] for r in conn.execute("SELECT id FROM py_pipe_err ORDER BY id")], [1], "rows after the pipeline")
    with conn.pipeline():
        after = conn.execute("SELECT 'still usable'")
    expect(after.fetchone(), ("still usable",), "a pipeline after the error")


@check("cancel")
def cancel(conn):
    # cancel_safe() sends a CancelRequest on a new connection while this one waits for its answer
    timer = threading.Timer(0.5, conn.cancel_safe)
    timer.start()
    try:
        expect_error(errors.QueryCanceled, "57014", lambda: conn.execute("SELECT pg_sleep(30)"))
    finally:
        timer.cancel()
    expect(conn.execute("SELECT 4").fetchone(), (4,), "a query after the cancel")


@check("notify")
def notify(conn):
    notices = []
    conn.add_notice_handler(lambda diag: notices.append((diag.severity, diag.message_primary)))
    conn.execute("DO $$ BEGIN RAISE NOTICE 'hello from %', 'plpgsql'; END $$")
    expect(notices, [("NOTICE", "hello from plpgsql")], "notices")
    conn.execute("LISTEN py_channel")
    with connect(autocommit=True) as other:
        other.execute("SELECT pg_notify('py_channel', %s)", ["payload ☃"])
    received = [(n.channel, n.payload) for n in conn.notifies(timeout=5, stop_after=1)]
    expect(received, [("py_channel", "payload ☃")], "notifications")


@check("search-path")
def search_path(conn):
    """Two distributed tables of one name: the search_path (startup options, then SET) decides which one."""
    conn.execute("DROP SCHEMA IF EXISTS py_s2 CASCADE")
    conn.execute("DROP TABLE IF EXISTS py_named")
    conn.execute("CREATE SCHEMA py_s2")
    for schema in ("public", "py_s2"):
        conn.execute(f"CREATE TABLE {schema}.py_named (id int PRIMARY KEY, v text)")
        conn.execute("SELECT create_distributed_table(%s, 'id')", (f"{schema}.py_named",))
        conn.execute(f"INSERT INTO {schema}.py_named VALUES (1, %s)", (schema,))
    with connect(autocommit=True, options="-c search_path=py_s2,public") as other:
        expect(other.execute("SELECT v FROM py_named WHERE id = %s", (1,)).fetchone(), ("py_s2",), "py_s2's row")
        other.execute("UPDATE py_named SET v = %s WHERE id = %s", ("py_s2 changed", 1))
        other.execute("SET search_path TO public")
        expect(other.execute("SELECT v FROM py_named WHERE id = %s", (1,)).fetchone(), ("public",), "public's row")
        other.execute("SET search_path TO nowhere")
        expect_error(psycopg.errors.UndefinedTable, "42P01", lambda: other.execute("SELECT v FROM py_named"))
    rows = conn.execute(
        "SELECT (SELECT v FROM public.py_named WHERE id = 1), (SELECT v FROM py_s2.py_named WHERE id = 1)"
    ).fetchone()
    expect(rows, ("public", "py_s2 changed"), "public's row untouched, py_s2's updated")


def main():
    failed = False
    for name, fn in CHECKS:
        try:
            with connect(autocommit=True) as conn:
                detail = fn(conn)
            result = {"check": name, "ok": True, "detail": detail or ""}
        except Exception as error:  # noqa: BLE001 - every failure is reported, then the next check runs
            failed = True
            # the failing line of the check itself, not of a helper it called
            lines = [f.lineno for f in traceback.extract_tb(error.__traceback__) if f.name == fn.__name__]
            where = f" (line {lines[-1]})" if lines else ""
            result = {"check": name, "ok": False, "detail": f"{type(error).__name__}: {error}{where}"}
        print(json.dumps(result), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
