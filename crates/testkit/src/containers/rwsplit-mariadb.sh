#!/bin/bash
# rwsplit-mariadb SERVER_ID READ_ONLY PORT [--option=value ...]   one MariaDB node
# rwsplit-mariadb --install                                  make the template in /data/db, exit
# (containers backend): GTID binlog, root@'%' without a password for the testkit's controls
# (created outside the binlog). The testkit lays each node out from the template on the host.
# Data in /data/db, log in /data/server.log.
set -eu
mkdir -p /data/db /run/mysqld
chown mysql: /data /data/db /run/mysqld
if [ "$1" = --install ]; then
  exec mariadb-install-db --no-defaults --user=mysql --datadir=/data/db \
    --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve >/dev/null
fi
ID=$1 RO=$2 P=$3
shift 3
exec >>/data/server.log 2>&1
# One statement per line: that is how --init-file reads it.
cat >/tmp/init.sql <<'SQL'
SET sql_log_bin=0;
CREATE USER IF NOT EXISTS root@'%';
GRANT ALL ON *.* TO root@'%' WITH GRANT OPTION;
SQL
exec mariadbd --no-defaults --user=mysql --datadir=/data/db --socket=/run/mysqld/mysqld.sock \
  --port="$P" --bind-address=0.0.0.0 --skip-name-resolve --server-id="$ID" --log-bin=binlog \
  --log-slave-updates=ON --binlog-format=ROW --gtid-strict-mode=ON --relay-log=relay \
  --innodb-flush-log-at-trx-commit=2 --sync-binlog=0 --innodb-doublewrite=0 \
  --innodb-buffer-pool-size=32M --innodb-log-file-size=16M --performance-schema=OFF \
  --max-connections=300 --slave-net-timeout=5 --read-only="$RO" --init-file=/tmp/init.sql "$@"
