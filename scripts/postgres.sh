#!/usr/bin/env bash
# A private PostgreSQL 15 server for metalab's PostgresStore tests and benchmarks.
#
#   bash scripts/postgres.sh start   # start one (installs Debian's postgresql if missing),
#                                    # wait until it accepts connections, print its DSN
#   bash scripts/postgres.sh env     # print `export METALAB_POSTGRES_DSN=...` for it
#   bash scripts/postgres.sh stop    # stop exactly that server and delete its data
#
# The server lives in $METALAB_PG_DIR (default /tmp/metalab-postgres): data folder,
# unix socket folder, log and the DSN. It listens on 127.0.0.1 only, on a free port,
# with trust authentication (anyone on this machine may connect: a test server, never
# one for data that matters). No systemd: pg_ctl starts and stops it. Because initdb
# refuses to run as root, every server command runs as the `postgres` user.
set -euo pipefail

DIR="${METALAB_PG_DIR:-/tmp/metalab-postgres}"
BIN="${METALAB_PG_BIN:-/usr/lib/postgresql/15/bin}"
DB=metalab

as_postgres() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

install_server() {
  if [ ! -x "$BIN/postgres" ]; then
    echo "postgres.sh: installing Debian's postgresql (no $BIN/postgres)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2 ||
      { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2; }
  fi
  if [ ! -x "$BIN/postgres" ]; then
    echo "postgres.sh: no PostgreSQL 15 server binaries in $BIN after installing" >&2
    exit 1
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

running() {
  [ -f "$DIR/data/postmaster.pid" ] && as_postgres "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1
}

start() {
  if running && [ -f "$DIR/dsn" ]; then
    cat "$DIR/dsn"
    return
  fi
  install_server
  rm -rf "$DIR"
  mkdir -p "$DIR/socket"
  chmod 755 "$DIR"
  [ "$(id -u)" = 0 ] && chown -R postgres: "$DIR"
  as_postgres "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
    >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; exit 1; }
  local port tries
  for tries in 1 2 3; do
    port=$(free_port)
    # fsync stays on (the default): the store's durability is part of what is tested.
    if as_postgres "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $DIR/socket -c max_connections=200" \
      >/dev/null; then
      break
    fi
    [ "$tries" = 3 ] && { cat "$DIR/server.log" >&2; exit 1; }
  done
  for _ in $(seq 1 100); do
    "$BIN/pg_isready" -q -h 127.0.0.1 -p "$port" && break
    sleep 0.1
  done
  as_postgres "$BIN/createdb" -h "$DIR/socket" -p "$port" -U postgres "$DB"
  echo "postgresql://postgres@127.0.0.1:$port/$DB" >"$DIR/dsn"
  cat "$DIR/dsn"
}

stop() {
  if [ -f "$DIR/data/postmaster.pid" ]; then
    as_postgres "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$DIR"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env)
    running || { echo "postgres.sh: no server running in $DIR; run: $0 start" >&2; exit 1; }
    echo "export METALAB_POSTGRES_DSN=$(cat "$DIR/dsn")"
    ;;
  *)
    echo "usage: METALAB_PG_DIR=/tmp/pg $0 start|stop|env" >&2
    exit 2
    ;;
esac
