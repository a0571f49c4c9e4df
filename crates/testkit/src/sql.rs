//! The testkit's own control connections: one small enum over the two drivers. What to send
//! on them is the product's (`crate::product`).

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

    pub(crate) async fn close(self) {
        let _ = match self {
            Conn::Pg(c) => c.close().await,
            Conn::My(c) => c.close().await,
        };
    }
}
