#!/bin/bash
# rwsplit-pg NAME PORT [-c key=value ...]   one PostgreSQL node of an rwsplit testkit cluster
# rwsplit-pg --initdb                  make the data directory template in /data/pg, then exit
# (containers backend). The testkit lays each node out from the template on the host (a standby
# gets standby.signal and its primary_conninfo there), so this only starts the server. Data in
# /data/pg, log in /data/server.log.
set -eu
D=/data/pg
if [ "$(id -u)" = 0 ]; then
  chown postgres: /data
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
if [ "$1" = --initdb ]; then
  "$BIN/initdb" -D "$D" -U postgres --auth=trust --no-sync -E UTF8 --no-locale --no-instructions >/dev/null
  printf 'host all all 0.0.0.0/0 trust\nhost replication all 0.0.0.0/0 trust\n' >>"$D/pg_hba.conf"
  exit 0
fi
N=$1 P=$2
shift 2
exec >>/data/server.log 2>&1
# exec: postgres is PID 1 and gets Docker's stop signal (SIGINT: fast shutdown) itself.
# The port the host publishes, so the server names the same port as natively.
exec "$BIN/postgres" -D "$D" -p "$P" -c cluster_name="rwsplit-$N" -c listen_addresses='*' \
  -c unix_socket_directories=/tmp -c fsync=off -c synchronous_commit=on -c full_page_writes=on \
  -c wal_log_hints=on -c wal_level=replica -c max_wal_senders=16 -c max_replication_slots=16 \
  -c wal_keep_size=256MB -c hot_standby=on -c hot_standby_feedback=on -c jit=off \
  -c wal_receiver_status_interval=1s -c wal_retrieve_retry_interval=200ms \
  -c wal_sender_timeout=5s -c wal_receiver_timeout=5s -c shared_buffers=32MB \
  -c max_connections=200 -c log_min_messages=warning -c "log_line_prefix=%m [%p] " "$@"
