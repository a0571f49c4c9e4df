#!/bin/bash
# rwsplit-pg NAME UPSTREAM_HOST UPSTREAM_PORT [-c key=value ...]
# One PostgreSQL node of an rwsplit testkit cluster (containers backend). UPSTREAM_HOST "-" makes
# a primary (initdb); anything else a streaming standby of that server (pg_basebackup into the
# slot NAME, which the testkit has created there). Data in /data/pg, log in /data/server.log.
set -eu
N=$1 UH=$2 UP=$3
shift 3
D=/data/pg
if [ "$(id -u)" = 0 ]; then
  chown postgres: /data
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$N" "$UH" "$UP" "$@"
fi
exec >>/data/server.log 2>&1
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
if [ ! -s "$D/PG_VERSION" ]; then
  if [ "$UH" = - ]; then
    "$BIN/initdb" -D "$D" -U postgres --auth=trust --no-sync -E UTF8 --no-locale --no-instructions >/dev/null
    printf 'host all all 0.0.0.0/0 trust\nhost replication all 0.0.0.0/0 trust\n' >>"$D/pg_hba.conf"
  else
    # No application_name: pg_basebackup's own stream must not pass for the standby's.
    until "$BIN/pg_basebackup" -h "$UH" -p "$UP" -U postgres -D "$D" -R -X stream -S "$N" \
        -c fast --no-sync -d connect_timeout=2; do
      rm -rf "$D"
      sleep 0.2
    done
  fi
fi
# exec: postgres is PID 1 and gets Docker's stop signal (SIGINT: fast shutdown) itself.
exec "$BIN/postgres" -D "$D" -c cluster_name="rwsplit-$N" -c listen_addresses='*' \
  -c unix_socket_directories=/tmp -c fsync=off -c synchronous_commit=on -c full_page_writes=on \
  -c wal_log_hints=on -c wal_level=replica -c max_wal_senders=16 -c max_replication_slots=16 \
  -c wal_keep_size=256MB -c hot_standby=on -c hot_standby_feedback=on -c jit=off \
  -c wal_receiver_status_interval=1s -c wal_retrieve_retry_interval=200ms \
  -c wal_sender_timeout=5s -c wal_receiver_timeout=5s -c shared_buffers=32MB \
  -c max_connections=200 -c log_min_messages=warning -c "log_line_prefix=%m [%p] " "$@"
