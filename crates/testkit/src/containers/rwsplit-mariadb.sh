#!/bin/bash
# rwsplit-mariadb SERVER_ID READ_ONLY [--option=value ...]
# One MariaDB node of an rwsplit testkit cluster (containers backend): GTID binlog, root@'%'
# without a password for the testkit's controls (created outside the binlog). Data in /data/db,
# log in /data/server.log.
set -eu
ID=$1 RO=$2
shift 2
mkdir -p /data/db /run/mysqld
chown mysql: /data /data/db /run/mysqld
exec >>/data/server.log 2>&1
if [ ! -d /data/db/mysql ]; then
  mariadb-install-db --no-defaults --user=mysql --datadir=/data/db \
    --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve >/dev/null
fi
# One statement per line: that is how --init-file reads it.
cat >/tmp/init.sql <<'SQL'
SET sql_log_bin=0;
CREATE USER IF NOT EXISTS root@'%';
GRANT ALL ON *.* TO root@'%' WITH GRANT OPTION;
SQL
exec mariadbd --no-defaults --user=mysql --datadir=/data/db --socket=/run/mysqld/mysqld.sock \
  --port=3306 --bind-address=0.0.0.0 --skip-name-resolve --server-id="$ID" --log-bin=binlog \
  --log-slave-updates=ON --binlog-format=ROW --gtid-strict-mode=ON --relay-log=relay \
  --innodb-flush-log-at-trx-commit=2 --sync-binlog=0 --innodb-doublewrite=0 \
  --innodb-buffer-pool-size=32M --innodb-log-file-size=16M --performance-schema=OFF \
  --max-connections=300 --slave-net-timeout=5 --read-only="$RO" --init-file=/tmp/init.sql "$@"
