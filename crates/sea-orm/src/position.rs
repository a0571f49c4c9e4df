//! Replication positions on the wire: what the primary has written after a write (the causal
//! token), and waiting for a replica to replay up to a token.
//!
//! Capture costs one round trip on the primary per write. SeaORM's drivers give no way to have
//! the server send its position with the write's own reply (MariaDB can put `last_gtid` in the
//! OK packet with `session_track_system_variables`, MySQL the GTID with `session_track_gtids`,
//! but sqlx does not expose session-state tracking), so the position is asked for right after
//! the write, off the request path. Any connection of the primary's would do (once the write
//! has committed, the server-wide position is at or past it); it is asked on the write's own
//! ([`On::Taken`]), which is then given back to the pool.

use std::time::Duration;

use rwsplit_core::CausalToken;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};

use crate::routing_error::{RoutingError, bounded};

/// Where the primary's position is read
/// ([`Product::capture`](crate::product::Product::capture): a token at or past every write
/// that has committed): any connection of the primary's pool, or the connection a write has
/// just committed on, before it goes back to the pool. Reading it there saves an acquire per
/// write, and a second connection per instance for a sequential workload: sqlx tests each
/// returned connection with a ping on a task of its own, so the statement right after a write
/// would find no idle one and open another.
pub(crate) enum On<'a> {
    /// A connection of the pool's, acquired for the statement.
    Pool(&'a DatabaseConnection),
    /// A connection taken from the pool already.
    Taken(&'a mut crate::sending::Taken),
}

impl On<'_> {
    /// The SQL dialect of the connection's server.
    pub(crate) fn backend(&self) -> sea_orm::DbBackend {
        match self {
            On::Pool(conn) => conn.get_database_backend(),
            On::Taken(taken) => crate::product::backend_of(taken),
        }
    }

    /// One row of `sql` (`what` names it in the error); no row is an error.
    pub(crate) async fn query_one(
        &mut self,
        sql: &str,
        what: &'static str,
    ) -> Result<sea_orm::QueryResult, DbErr> {
        let stmt = Statement::from_string(self.backend(), sql);
        match self {
            On::Pool(conn) => query_one_stmt(conn, stmt, what).await,
            On::Taken(taken) => taken.query_one(stmt).await?.ok_or_else(|| no_row(what)),
        }
    }
}

/// How waiting for a replica ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waited {
    /// The replica has replayed the token.
    CaughtUp,
    /// It had not within the time allowed.
    TimedOut,
}

/// Whether the replica behind `conn` has replayed up to `token`, waiting in the server up to
/// `max` ([`crate::product::wait_for`]).
pub(crate) async fn wait_for(
    conn: &DatabaseConnection,
    token: &CausalToken,
    max: Duration,
) -> Result<Waited, DbErr> {
    crate::product::wait_for(conn, token, crate::deadline::cap(max)).await
}

/// The error for a backend that has no replication positions.
pub(crate) fn unsupported(backend: sea_orm::DbBackend) -> DbErr {
    RoutingError::PositionUnsupported { backend }.into()
}

/// The error for a position the server returned that does not read as one.
pub(crate) fn unreadable(what: &'static str, text: &str, e: rwsplit_core::Error) -> DbErr {
    RoutingError::PositionUnreadable { what, value: Some(bounded(text)), source: Some(e) }.into()
}

/// One row of `stmt`; no row is an error.
/// (`what` names it in the error.)
pub(crate) async fn query_one_stmt(
    conn: &DatabaseConnection,
    stmt: Statement,
    what: &'static str,
) -> Result<sea_orm::QueryResult, DbErr> {
    conn.query_one_raw(stmt).await?.ok_or_else(|| no_row(what))
}

/// The error for a position query that returned no row (`what` names it).
fn no_row(what: &'static str) -> DbErr {
    RoutingError::PositionUnreadable { what, value: None, source: None }.into()
}

pub(crate) async fn query_one(
    conn: &DatabaseConnection,
    sql: &str,
    what: &'static str,
) -> Result<sea_orm::QueryResult, DbErr> {
    query_one_stmt(conn, Statement::from_string(conn.get_database_backend(), sql), what).await
}

/// A column as text: MariaDB returns system variables as strings or as bytes.
pub(crate) fn text(row: &sea_orm::QueryResult, column: &str) -> Option<String> {
    if let Ok(v) = row.try_get::<Option<String>>("", column) {
        return v;
    }
    row.try_get::<Option<Vec<u8>>>("", column)
        .ok()
        .flatten()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

pub(crate) fn parse<T: std::str::FromStr>(
    row: &sea_orm::QueryResult,
    column: &'static str,
) -> Result<T, DbErr> {
    let text = text(row, column);
    text.as_deref().and_then(|t| t.trim().parse().ok()).ok_or_else(|| {
        RoutingError::PositionUnreadable {
            what: column,
            value: text.as_deref().map(bounded),
            source: None,
        }
        .into()
    })
}
