#!/usr/bin/env bash
# Usage: tests/with-postgres.sh CMD [ARGS...]
#
# Runs CMD with SWITCHYARD_TEST_POSTGRES_URL pointing at a throwaway PostgreSQL cluster, e.g.
#   bash tests/with-postgres.sh cargo test -p switchyard-operator --test integration store::
#
# The cluster uses the binaries of Debian's `postgresql` package (/usr/lib/postgresql/*/bin, the
# newest version; else initdb/pg_ctl on PATH): initdb into a temporary directory, trust
# authentication, listening on 127.0.0.1 on a free port, socket in the temporary directory. The
# server refuses to run as root, so as root it runs as the `postgres` system user. The cluster is
# stopped and deleted when this script exits, however it exits. CMD itself runs as the caller.
#
# Without PostgreSQL installed (apt-get install -y postgresql) it says so and runs CMD without
# the variable, so the PostgreSQL half of the tests is skipped.
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

say() { printf 'with-postgres: %s\n' "$*" >&2; }

run_without() {
    say "$1; running without SWITCHYARD_TEST_POSTGRES_URL (PostgreSQL tests are skipped)"
    shift
    unset SWITCHYARD_TEST_POSTGRES_URL
    exec "$@"
}

bindir=""
for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5 -V -r); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
        bindir="$dir"
        break
    fi
done
if [ -z "$bindir" ] && command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    bindir="$(dirname "$(command -v initdb)")"
fi
if [ -z "$bindir" ]; then
    run_without "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; apt-get install -y postgresql)" "$@"
fi

# As root, the server runs as the postgres system user.
as_db_user=()
if [ "$(id -u)" -eq 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
        run_without "running as root and there is no 'postgres' user to run the server" "$@"
    fi
    if command -v runuser >/dev/null 2>&1; then
        as_db_user=(runuser -u postgres --)
    else
        as_db_user=(su postgres -s /bin/sh -c '"$0" "$@"')
    fi
fi
db() { "${as_db_user[@]}" "$@"; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/switchyard-pg.XXXXXX")"
data="$tmp/data"
log="$tmp/server.log"
started=""

cleanup() {
    local status=$?
    if [ -n "$started" ]; then
        db "$bindir/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$tmp"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "${#as_db_user[@]}" -gt 0 ]; then
    chown postgres: "$tmp"
fi
chmod 700 "$tmp"

db "$bindir/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
    >"$tmp/initdb.log" 2>&1 || {
    # Older versions or minimal images may lack the C.UTF-8 locale.
    rm -rf "$data"
    db "$bindir/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C \
        >"$tmp/initdb.log" 2>&1 || { cat "$tmp/initdb.log" >&2; say "initdb failed"; exit 1; }
}

# A free port: ask the kernel for one (bind to port 0), falling back to a random pick; retry if
# another process takes it first.
free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
    else
        echo $((20000 + RANDOM % 40000))
    fi
}

port=""
for _ in 1 2 3 4 5 6 7 8 9 10; do
    candidate="$(free_port)"
    if (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
        continue # in use
    fi
    if db "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 30 start -o "-c listen_addresses=127.0.0.1 \
        -c port=$candidate -c unix_socket_directories=$tmp -c fsync=off \
        -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        >/dev/null 2>&1; then
        started=1
        port="$candidate"
        break
    fi
done
if [ -z "$port" ]; then
    cat "$log" >&2 2>/dev/null || true
    say "could not start PostgreSQL"
    exit 1
fi

export SWITCHYARD_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
say "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') at $SWITCHYARD_TEST_POSTGRES_URL"

# Not exec: the EXIT trap has to stop the server afterwards.
set +e
"$@"
status=$?
set -e
exit "$status"
