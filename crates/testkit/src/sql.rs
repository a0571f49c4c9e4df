//! The testkit's own control connections: one small enum over the two drivers.

use std::time::Duration;

use sqlx::{Connection, MySqlConnection, PgConnection, Row};

use crate::vocab::DbKind;

/// A control connection (superuser on PostgreSQL, root on MariaDB).
#[derive(Debug)]
pub(crate) enum Conn {
    Pg(PgConnection),
    My(MySqlConnection),
}

impl Conn {
    /// Connects to `url`, a server of `kind`, failing after `timeout` (a hung server accepts
    /// TCP but never answers).
    pub(crate) async fn open(
        kind: DbKind,
        url: &str,
        timeout: Duration,
    ) -> Result<Conn, sqlx::Error> {
        let connect = async {
            Ok(match kind {
                DbKind::Postgres => Conn::Pg(PgConnection::connect(url).await?),
                DbKind::MariaDb => Conn::My(MySqlConnection::connect(url).await?),
            })
        };
        tokio::time::timeout(timeout, connect).await.unwrap_or(Err(sqlx::Error::PoolTimedOut))
    }

    /// Runs one or more statements, ignoring their results.
    pub(crate) async fn execute(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Conn::Pg(c) => sqlx::raw_sql(sql).execute(c).await.map(drop),
            Conn::My(c) => sqlx::raw_sql(sql).execute(c).await.map(drop),
        }
    }

    /// The first column of the first row as text (`None` for SQL NULL or no row). The
    /// statement must produce text (cast in SQL where needed).
    pub(crate) async fn text(&mut self, sql: &str) -> Result<Option<String>, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            Conn::Pg(c) => {
                let row = sqlx::query(sql).fetch_optional(c).await?;
                row.map(|r| r.try_get::<Option<String>, _>(0)).transpose().map(Option::flatten)
            }
            Conn::My(c) => {
                let row = sqlx::query(sql).fetch_optional(c).await?;
                row.map(|r| r.try_get::<Option<String>, _>(0)).transpose().map(Option::flatten)
            }
        }
    }

    /// MariaDB: the IO and SQL thread states of `SHOW REPLICA STATUS`, or `None` when the
    /// server replicates from nobody.
    pub(crate) async fn replica_threads(
        &mut self,
    ) -> Result<Option<(String, String)>, sqlx::Error> {
        let Conn::My(c) = self else { return Ok(None) };
        let Some(row) = sqlx::query("SHOW SLAVE STATUS").fetch_optional(c).await? else {
            return Ok(None);
        };
        let get = |name: &str| -> String {
            row.try_get::<String, _>(name)
                .or_else(|_| {
                    row.try_get::<Vec<u8>, _>(name)
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                })
                .unwrap_or_default()
        };
        Ok(Some((get("Slave_IO_Running"), get("Slave_SQL_Running"))))
    }

    pub(crate) async fn close(self) {
        let _ = match self {
            Conn::Pg(c) => c.close().await,
            Conn::My(c) => c.close().await,
        };
    }
}
