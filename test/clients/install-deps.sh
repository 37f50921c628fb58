#!/usr/bin/env bash
# Installs the real clients that test/clients/ drives, into test/clients/.cache/:
#   - pgjdbc, the PostgreSQL JDBC driver, from Maven Central (with Maven);
#   - psycopg 3 with its binary libpq, from PyPI, into a virtualenv, with SQLAlchemy and Alembic
#     (the migration tool whose transaction-wrapped migrations test/clients/alembic runs).
# Idempotent, and quiet unless something fails. The tests read the versions below from this file.
set -euo pipefail
cd "$(dirname "$0")"

PGJDBC_VERSION=42.7.11
PSYCOPG_VERSION=3.3.9
SQLALCHEMY_VERSION=2.1.9
ALEMBIC_VERSION=1.20.1
DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

CACHE="$PWD/.cache"
mkdir -p "$CACHE"

# Runs a command with its output kept aside, shown only when it fails.
quietly() {
  local log
  log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then
    echo "install-deps: failed: $*" >&2
    cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
}

for tool in java mvn python3; do
  command -v "$tool" >/dev/null || {
    echo "install-deps: $tool is required" >&2
    exit 1
  }
done

jar="$CACHE/postgresql-$PGJDBC_VERSION.jar"
if [ ! -s "$jar" ]; then
  quietly mvn -q -B -Dstyle.color=never "$DEPENDENCY_PLUGIN:copy" \
    "-Dartifact=org.postgresql:postgresql:$PGJDBC_VERSION" "-DoutputDirectory=$CACHE"
  # a jar of another pinned version would only confuse whoever looks here
  find "$CACHE" -maxdepth 1 -name 'postgresql-*.jar' ! -name "postgresql-$PGJDBC_VERSION.jar" -delete
fi

venv="$CACHE/venv"
has_psycopg() {
  "$venv/bin/python" -c '
import sys, psycopg
sys.exit(psycopg.__version__ != sys.argv[1] or psycopg.pq.__impl__ != "binary")' "$PSYCOPG_VERSION" 2>/dev/null
}
if ! has_psycopg; then
  [ -x "$venv/bin/python" ] || quietly python3 -m venv "$venv"
  quietly "$venv/bin/python" -m pip install --disable-pip-version-check "psycopg[binary]==$PSYCOPG_VERSION"
  has_psycopg || {
    echo "install-deps: psycopg $PSYCOPG_VERSION (binary) is not importable from $venv" >&2
    exit 1
  }
fi

has_alembic() {
  "$venv/bin/python" -c '
import sys, alembic, sqlalchemy
sys.exit(alembic.__version__ != sys.argv[1] or sqlalchemy.__version__ != sys.argv[2])' "$ALEMBIC_VERSION" "$SQLALCHEMY_VERSION" 2>/dev/null
}
if ! has_alembic; then
  quietly "$venv/bin/python" -m pip install --disable-pip-version-check \
    "sqlalchemy==$SQLALCHEMY_VERSION" "alembic==$ALEMBIC_VERSION"
  has_alembic || {
    echo "install-deps: alembic $ALEMBIC_VERSION with sqlalchemy $SQLALCHEMY_VERSION is not importable from $venv" >&2
    exit 1
  }
fi
