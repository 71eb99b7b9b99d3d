#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on 127.0.0.1 for the store tests and print its URL.
# Usage: eval "$(bash .ci/postgres.sh)"   -> exports VIDEOZERO_TEST_PG_URL
set -euo pipefail
PORT="${VIDEOZERO_PG_PORT:-54329}"
DATA="${VIDEOZERO_PG_DATA:-/tmp/videozero-pg-$PORT}"

if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
BIN="$(dirname "$(ls -d /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -1)")"

run_pg() {  # PostgreSQL refuses to run as root: use the postgres system user when we are root.
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}

if ! run_pg "$BIN/pg_ctl -D $DATA status" >/dev/null 2>&1; then
  rm -rf "$DATA"
  mkdir -p "$DATA"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$DATA"
  run_pg "$BIN/initdb -D $DATA -U postgres --auth=trust -E UTF8 >/dev/null"
  run_pg "$BIN/pg_ctl -D $DATA -l $DATA/server.log -w -t 60 -o \"-h 127.0.0.1 -p $PORT -k /tmp -c fsync=off\" start >/dev/null"
fi
for _ in $(seq 1 30); do
  "$BIN/pg_isready" -h 127.0.0.1 -p "$PORT" -q && break
  sleep 1
done
"$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='videozero_test'" | grep -q 1 \
  || "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -qc "CREATE DATABASE videozero_test" >&2
echo "export VIDEOZERO_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:$PORT/videozero_test"
