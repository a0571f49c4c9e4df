//! MariaDB: GTID replication, `read_only` replicas, an unprivileged application user.

use std::time::Duration;

use sqlx::Row;

use super::{Addr, BoxFuture, Control, Product, start_all};
use crate::error::{Error, Result};
use crate::sql::Conn;
use crate::vocab::{DbKind, START_TIMEOUT};

/// MariaDB 10.5+ (GTID, `MASTER_GTID_WAIT`, `SLAVE MONITOR`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MariaDb;

/// Every GTID this server has written to its binlog.
pub(crate) const GTID_BINLOG_POS: &str = "SELECT @@global.gtid_binlog_pos";

/// Every GTID this replica has applied.
pub(crate) const GTID_SLAVE_POS: &str = "SELECT @@global.gtid_slave_pos";

/// The IO and SQL thread states of `SHOW SLAVE STATUS`, or `None` when the server replicates
/// from nobody (or `conn` is not a MariaDB connection).
async fn replica_threads(
    conn: &mut Conn,
) -> std::result::Result<Option<(String, String)>, sqlx::Error> {
    let Conn::My(c) = conn else { return Ok(None) };
    let Some(row) = sqlx::query("SHOW SLAVE STATUS").fetch_optional(c).await? else {
        return Ok(None);
    };
    let get = |name: &str| -> String {
        row.try_get::<String, _>(name)
            .or_else(|_| {
                row.try_get::<Vec<u8>, _>(name).map(|b| String::from_utf8_lossy(&b).into_owned())
            })
            .unwrap_or_default()
    };
    Ok(Some((get("Slave_IO_Running"), get("Slave_SQL_Running"))))
}

/// The `CHANGE MASTER TO` that makes a replica follow `upstream` by GTID.
pub(crate) fn change_master(upstream: &Addr) -> String {
    format!(
        "CHANGE MASTER TO MASTER_HOST = '{}', MASTER_PORT = {}, MASTER_USER = 'repl', \
         MASTER_PASSWORD = '', MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1",
        upstream.host, upstream.port
    )
}

impl Product for MariaDb {
    fn kind(&self) -> DbKind {
        DbKind::MariaDb
    }

    fn admin_db(&self) -> &'static str {
        "mysql"
    }

    /// As the unprivileged application user `app` (no password; every privilege on every
    /// database but no global ones, so `read_only` stops it on replicas).
    fn url(&self, port: u16, db: &str) -> String {
        format!("mysql://app@127.0.0.1:{port}/{db}")
    }

    fn admin_url(&self, port: u16, db: &str) -> String {
        format!("mysql://root@127.0.0.1:{port}/{db}")
    }

    fn create_database_sql(&self, name: &str) -> String {
        format!("CREATE DATABASE `{name}`")
    }

    fn database_exists_sql(&self, name: &str) -> String {
        format!("SELECT schema_name FROM information_schema.schemata WHERE schema_name = '{name}'")
    }

    fn drop_database_sql(&self, name: &str) -> String {
        format!("DROP DATABASE IF EXISTS `{name}`")
    }

    fn is_replica_sql(&self) -> &'static str {
        "SELECT IF(@@global.read_only, 'true', 'false')"
    }

    fn position_sql(&self) -> &'static str {
        "SELECT IF(@@global.read_only, @@global.gtid_slave_pos, @@global.gtid_binlog_pos)"
    }

    fn unreplayed_sql(&self) -> Option<&'static str> {
        None
    }

    fn pause_replay_sql(&self) -> &'static str {
        "STOP SLAVE SQL_THREAD"
    }

    fn resume_replay_sql(&self) -> &'static str {
        "START SLAVE SQL_THREAD"
    }

    fn start_cluster<'a>(&'a self, nodes: &'a [&'a dyn Control]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let Some((primary, replicas)) = nodes.split_first() else { return Ok(()) };
            start_all(nodes)?;
            primary.wait_accepting(START_TIMEOUT).await?;
            // Binlogged, so the replicas get the users too when they replay from the start.
            primary
                .execute(
                    "mysql",
                    "CREATE USER 'repl'@'%'; GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'; \
                     CREATE USER 'app'@'%'; GRANT ALL PRIVILEGES ON `%`.* TO 'app'@'%'; \
                     GRANT SLAVE MONITOR ON *.* TO 'app'@'%'",
                )
                .await?;
            let upstream = primary.replication_addr();
            for n in replicas {
                n.wait_accepting(START_TIMEOUT).await?;
                n.execute("mysql", &format!("{}; START SLAVE", change_master(&upstream))).await?;
            }
            Ok(())
        })
    }

    fn replicating<'a>(&'a self, nodes: &'a [&'a dyn Control]) -> BoxFuture<'a, usize> {
        Box::pin(async move {
            let mut n = 0;
            for r in nodes.iter().skip(1).filter(|r| r.is_running()) {
                if let Ok(mut c) = r.conn().await {
                    if let Ok(Some((io, sql))) = replica_threads(&mut c).await
                        && io == "Yes"
                        && sql == "Yes"
                    {
                        n += 1;
                    }
                    c.close().await;
                }
            }
            n
        })
    }

    fn wait_caught_up<'a>(
        &'a self,
        node: &'a dyn Control,
        primary: &'a dyn Control,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let target = primary.text(GTID_BINLOG_POS).await?.unwrap_or_default();
            let secs = timeout.as_secs_f64();
            let sql = format!("SELECT CAST(MASTER_GTID_WAIT('{target}', {secs}) AS CHAR)");
            match node.text(&sql).await?.as_deref() {
                Some("0") => Ok(()),
                _ => Err(Error::Timeout {
                    what: format!("{} to apply GTID {target}", node.name()),
                    waited: timeout,
                }),
            }
        })
    }

    /// `MASTER_DELAY` in whole seconds, rounded up plus one because event timestamps have whole
    /// seconds (the change is held between `delay` and `delay` + 1 s). `CHANGE MASTER` needs the
    /// replica threads stopped, so the SQL thread that `START SLAVE` starts applies the new
    /// delay from its first event: nothing to wait for.
    fn set_apply_delay<'a>(
        &'a self,
        node: &'a dyn Control,
        delay: Duration,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0) + 1;
            node.admin(&format!("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = {secs}; START SLAVE"))
                .await
        })
    }

    fn clear_apply_delay<'a>(&'a self, node: &'a dyn Control) -> BoxFuture<'a, Result<()>> {
        node.admin("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 0; START SLAVE")
    }

    fn promote<'a>(&'a self, node: &'a dyn Control) -> BoxFuture<'a, Result<()>> {
        node.admin("STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = OFF")
    }

    fn follow<'a>(
        &'a self,
        node: &'a dyn Control,
        _slot_on: &'a dyn Control,
        upstream: Addr,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            node.admin(&format!("STOP SLAVE; {}; START SLAVE", change_master(&upstream))).await
        })
    }
}
