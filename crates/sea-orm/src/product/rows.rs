//! Reading the product's SQL: one row, on a pool ([`OneRow`]); columns as text; the errors for a position that does not read as
//! one.

use std::future::Future;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, QueryResult, Statement};

use crate::routing_error::{RoutingError, bounded};

/// A connection a product reads one row on, where the caller chooses which (a write's position
/// is read on one connection taken from the primary's pool for all its statements:
/// `crate::nodes::position`'s `On`).
pub(crate) trait OneRow {
    /// The first row `stmt` returns, if any.
    fn one_row(
        &mut self,
        stmt: Statement,
    ) -> impl Future<Output = Result<Option<QueryResult>, DbErr>> + Send;
}

/// A pool as it is, acquired from for each statement (the unit tests' scripted connections).
#[cfg(test)]
impl OneRow for &DatabaseConnection {
    async fn one_row(&mut self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.query_one_raw(stmt).await
    }
}

/// One row of `sql`, in `backend`'s dialect, on `on` (`what` names it in the error); no row is
/// an error.
pub(super) async fn query_on<O: OneRow>(
    on: &mut O,
    backend: DbBackend,
    sql: &str,
    what: &'static str,
) -> Result<QueryResult, DbErr> {
    on.one_row(Statement::from_string(backend, sql)).await?.ok_or_else(|| no_row(what))
}

/// One row of `stmt`; no row is an error (`what` names it in the error).
pub(super) async fn query_one_stmt(
    conn: &DatabaseConnection,
    stmt: Statement,
    what: &'static str,
) -> Result<QueryResult, DbErr> {
    conn.query_one_raw(stmt).await?.ok_or_else(|| no_row(what))
}

/// One row of `sql` on `conn`; no row is an error (`what` names it in the error).
pub(super) async fn query_one(
    conn: &DatabaseConnection,
    sql: &str,
    what: &'static str,
) -> Result<QueryResult, DbErr> {
    query_one_stmt(conn, Statement::from_string(conn.get_database_backend(), sql), what).await
}

/// A column as text: MariaDB returns system variables as strings or as bytes.
pub(super) fn text(row: &QueryResult, column: &str) -> Option<String> {
    if let Ok(v) = row.try_get::<Option<String>>("", column) {
        return v;
    }
    row.try_get::<Option<Vec<u8>>>("", column)
        .ok()
        .flatten()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// A column parsed from its text; a missing or unreadable one is an error.
pub(super) fn parse<T: std::str::FromStr>(
    row: &QueryResult,
    column: &'static str,
) -> Result<T, DbErr> {
    let text = text(row, column);
    text.as_deref().and_then(|t| t.trim().parse().ok()).ok_or_else(|| {
        RoutingError::PositionUnreadable {
            node: None,
            what: column,
            value: text.as_deref().map(bounded),
            source: None,
        }
        .into()
    })
}

/// The error for a backend that has no replication positions.
pub(super) fn unsupported(backend: DbBackend) -> DbErr {
    RoutingError::PositionUnsupported { backend }.into()
}

/// The error for a position the server returned that does not read as one.
pub(super) fn unreadable(what: &'static str, text: &str, e: rwsplit_core::Error) -> DbErr {
    let value = Some(bounded(text));
    RoutingError::PositionUnreadable { node: None, what, value, source: Some(e) }.into()
}

/// The error for a position query that returned no row (`what` names it).
fn no_row(what: &'static str) -> DbErr {
    RoutingError::PositionUnreadable { node: None, what, value: None, source: None }.into()
}
