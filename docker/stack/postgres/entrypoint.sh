#!/bin/sh
# First start (empty PGDATA): initdb with the superuser from POSTGRES_USER and
# POSTGRES_PASSWORD, run /docker-entrypoint-initdb.d/*.sh against a server that listens
# on the socket only, stop it. Every start: exec the server on all addresses, password
# (scram) authentication for TCP clients.
set -eu
: "${POSTGRES_USER:=postgres}"
: "${PGDATA:?PGDATA must be set}"

# As upstream: arguments that start with a dash are the server's (`-c ssl=on ...`).
case "${1:-}" in -*) set -- postgres "$@" ;; esac
if [ "${1:-postgres}" != postgres ]; then
    exec "$@"
fi
shift || true

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo "postgres: POSTGRES_PASSWORD is empty; refusing to initialise an open database." >&2
        exit 1
    fi
    mkdir -p "$PGDATA"
    chmod 0700 "$PGDATA"
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"
    printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -k /var/run/postgresql" start >/dev/null
    for script in /docker-entrypoint-initdb.d/*; do
        [ -e "$script" ] || continue
        echo "postgres: running $script" >&2
        case $script in
            *.sh) if [ -x "$script" ]; then "$script"; else . "$script"; fi ;;
            *.sql) psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -f "$script" ;;
            *) echo "postgres: ignoring $script" >&2 ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi

exec postgres -D "$PGDATA" -c listen_addresses='*' -k /var/run/postgresql "$@"
