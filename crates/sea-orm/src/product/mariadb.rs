//! MariaDB: positions are GTID positions (one per replication domain); the server waits for a
//! replica itself (`MASTER_GTID_WAIT`); sessions are made read-only by `SET SESSION
//! TRANSACTION READ ONLY`.

use std::time::Duration;

use rwsplit_core::{CausalToken, MariaDbPosition, ReplayPosition};
use rwsplit_monitor::sql::mariadb as sql;
use sea_orm::{ConnectOptions, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};

use super::rows::{OneRow, query_on, query_one_stmt, text, unreadable};
use super::server::Server;
use super::{Pooling, Seam, ServerError, Waited};

/// MariaDB's side of the adapter's seam.
#[derive(Debug, Clone, Copy)]
pub(super) struct MariaDb;

impl Seam for MariaDb {
    const BACKEND: DbBackend = DbBackend::MySql;
    const SEAORM_SYSTEM: &'static str = "mysql";
    const SCHEMES: &'static [&'static str] = if cfg!(feature = "mysql") { &["mysql"] } else { &[] };
    const DEFAULT_PORT: u16 = 3306;

    /// MariaDB positions have no system identifier: 0.
    async fn capture<O: OneRow>(on: &mut O, _system_id: u64) -> Result<(CausalToken, u64), DbErr> {
        Ok((capture(on).await?, 0))
    }

    async fn wait_for(
        conn: &DatabaseConnection,
        position: &ReplayPosition,
        max: Duration,
    ) -> Result<Waited, DbErr> {
        match position {
            ReplayPosition::MariaDb(want) => wait_for(conn, want, max).await,
            _ => Ok(Waited::TimedOut),
        }
    }

    async fn server(conn: &DatabaseConnection) -> Result<Server, DbErr> {
        server(conn).await
    }

    fn no_statement_cache(opts: &mut ConnectOptions) {
        #[cfg(feature = "mysql")]
        opts.map_sqlx_mysql_opts(|o| o.statement_cache_capacity(0));
        #[cfg(not(feature = "mysql"))]
        let _ = opts;
    }

    fn frame_monitor(opts: &mut ConnectOptions) {
        #[cfg(feature = "mysql")]
        frame_monitor(opts);
        #[cfg(not(feature = "mysql"))]
        let _ = opts;
    }

    /// Nothing here ends a statement whose client has gone: `checks_clients` is PostgreSQL's.
    fn make_read_only(opts: &mut ConnectOptions, pooling: Pooling, _checks_clients: bool) {
        #[cfg(feature = "mysql")]
        make_read_only(opts, pooling);
        #[cfg(not(feature = "mysql"))]
        let _ = (opts, pooling);
    }
}

/// See [`super::Product::capture`].
async fn capture<O: OneRow>(on: &mut O) -> Result<CausalToken, DbErr> {
    let row = query_on(on, DbBackend::MySql, sql::CAPTURE, "gtid_binlog_pos").await?;
    let pos = text(&row, "pos").unwrap_or_default();
    let parsed = pos
        .trim()
        .parse::<MariaDbPosition>()
        .map_err(|e| unreadable("gtid_binlog_pos", &pos, e))?;
    Ok(CausalToken::new(parsed))
}

/// Waits in the server, for at most `max`.
async fn wait_for(
    conn: &DatabaseConnection,
    want: &MariaDbPosition,
    max: Duration,
) -> Result<Waited, DbErr> {
    let stmt = Statement::from_sql_and_values(
        DbBackend::MySql,
        sql::WAIT,
        [want.to_string().into(), max.as_secs_f64().into()],
    );
    let row = query_one_stmt(conn, stmt, "MASTER_GTID_WAIT").await?;
    let waited: i64 = row.try_get("", "waited").unwrap_or(-1);
    Ok(if waited == 0 { Waited::CaughtUp } else { Waited::TimedOut })
}

/// What the server says it is (MariaDB or MySQL: both speak this protocol).
async fn server(conn: &DatabaseConnection) -> Result<Server, DbErr> {
    let row = conn.query_one_raw(Statement::from_string(DbBackend::MySql, sql::VERSION)).await?;
    let (version, comment) =
        row.map(|r| (text(&r, "version"), text(&r, "comment"))).unwrap_or_default();
    Ok(Server::mysql_protocol(version.as_deref().unwrap_or(""), comment.as_deref().unwrap_or("")))
}

/// See [`super::server_error`]: by error number (and SQLSTATE 40001, which MariaDB gives a
/// deadlock).
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
pub(super) fn server_error(number: u16, sqlstate: Option<&str>) -> Option<ServerError> {
    match number {
        // ER_SERVER_SHUTDOWN
        1053 => Some(ServerError::GoingAway),
        // ER_QUERY_INTERRUPTED (`KILL QUERY`)
        1317 => Some(ServerError::Cancelled),
        // ER_OPTION_PREVENTS_STATEMENT (--read-only), ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
        1290 | 1792 => Some(ServerError::ReadOnly),
        // ER_NO_SUCH_TABLE
        1146 => Some(ServerError::NoSuchTable),
        // ER_CON_COUNT_ERROR (max_connections), ER_TOO_MANY_USER_CONNECTIONS
        // (max_user_connections), ER_USER_LIMIT_REACHED (an account's MAX_USER_CONNECTIONS)
        1040 | 1203 | 1226 => Some(ServerError::TooManyConnections),
        _ if sqlstate == Some("40001") => Some(ServerError::Conflict),
        _ => None,
    }
}

#[cfg(feature = "mysql")]
fn frame_monitor(opts: &mut ConnectOptions) {
    opts.map_sqlx_mysql_pool_opts(|o| {
        o.after_connect(|conn, _| Box::pin(my(conn, "START TRANSACTION")))
            .before_acquire(|conn, _| Box::pin(super::keep(my(conn, "START TRANSACTION"))))
            .after_release(|conn, _| Box::pin(super::keep(my(conn, "COMMIT"))))
    });
}

/// [`Pooling::Direct`] and [`Pooling::Session`]: a `SET` per new connection;
/// [`Pooling::Transaction`]: every use a read-only transaction.
#[cfg(feature = "mysql")]
fn make_read_only(opts: &mut ConnectOptions, pooling: Pooling) {
    match pooling {
        Pooling::Direct | Pooling::Session => {
            opts.map_sqlx_mysql_pool_opts(|o| {
                o.after_connect(|conn, _| Box::pin(my(conn, "SET SESSION TRANSACTION READ ONLY")))
            });
        }
        Pooling::Transaction => {
            opts.map_sqlx_mysql_pool_opts(|o| {
                o.after_connect(|conn, _| Box::pin(my(conn, "START TRANSACTION READ ONLY")))
                    .before_acquire(|conn, _| {
                        Box::pin(super::keep(my(conn, "START TRANSACTION READ ONLY")))
                    })
                    .after_release(|conn, _| Box::pin(super::keep(my(conn, "COMMIT"))))
            });
        }
    }
}

/// Runs one fixed statement (simple protocol: no prepared statement) on a pooled connection.
#[cfg(feature = "mysql")]
async fn my(
    conn: &mut sea_orm::sqlx::MySqlConnection,
    sql: &'static str,
) -> Result<(), sea_orm::sqlx::Error> {
    sea_orm::sqlx::Executor::execute(conn, sql).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case(1053, None, Some(ServerError::GoingAway))]
    #[case(1290, Some("HY000"), Some(ServerError::ReadOnly))]
    #[case(1317, Some("70100"), Some(ServerError::Cancelled))]
    #[case(1040, Some("08004"), Some(ServerError::TooManyConnections))]
    #[case(1203, Some("42000"), Some(ServerError::TooManyConnections))]
    #[case(1226, Some("42000"), Some(ServerError::TooManyConnections))]
    #[case(1792, Some("25006"), Some(ServerError::ReadOnly))]
    #[case(1146, Some("42S02"), Some(ServerError::NoSuchTable))]
    #[case(1213, Some("40001"), Some(ServerError::Conflict))]
    #[case(1062, Some("23000"), None)]
    fn error_numbers(
        #[case] number: u16,
        #[case] sqlstate: Option<&str>,
        #[case] meaning: Option<ServerError>,
    ) {
        assert_eq!(server_error(number, sqlstate), meaning);
    }
}
