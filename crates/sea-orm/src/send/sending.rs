//! Sending a write in two steps, so that a write given up while it waits is known never to have
//! been sent, and may be tried once more on the new primary.
//!
//! A write to the primary is never cut short by time: once sent, it may commit whatever the
//! caller is told. But most of a write's wait in a failover is not spent on the server: it is
//! spent taking a connection from the node's pool — waiting for a free one, pinging an idle one,
//! opening a new one, which sqlx keeps retrying while the port refuses, up to the pool's acquire
//! timeout (5 s by default). Nothing of the statement has been sent then. So a write runs in two
//! steps ([`in_steps`]):
//!
//! 1. **Take a connection** from the node's pool ([`take`]). Raced against the monitor: once
//!    the node stops being the primary ([`Standing`]: it is a replica now, another node is the
//!    primary, or it is marked down) the step is dropped and the write ends
//!    [`End::Deposed`] — not sent, safe to try again elsewhere. A failure of this step
//!    ([`End::Unsent`]: the pool timed out or was closed, no connection could be opened) was
//!    not sent either. Once the connection is there the monitor is asked once more before
//!    anything is sent.
//! 2. **Send the statement** on that connection ([`Taken`]). Raced only against the monitor
//!    marking the node down (a frozen server, a cut network: the connection would hang until
//!    the kernel gives it up): then it ends [`End::Unknown`] — it may have committed. A role
//!    change alone does not end it: the node's answer is coming.
//!
//! Some work has no effect on the server until it returns: a `BEGIN` (the transaction's
//! statements come later) and a stream (its statement runs when it is first read). Such work
//! runs entirely as step 1.
//!
//! Why the adapter takes the connection itself: SeaORM's `DatabaseConnection` takes the
//! connection and sends the statement in one call, so a caller that drops the call cannot tell
//! which of the two it interrupted. SeaORM has no way to run a `Statement` on a connection taken
//! out of its pool (a `DatabaseTransaction`, the only handle over one, cannot be built from
//! outside). So step 2 does what SeaORM's sqlx drivers do (`sqlx_postgres.rs`, `sqlx_mysql.rs`
//! in SeaORM 2.0): `sqlx::query_with` on the statement's values bound by `sea-query-sqlx`,
//! `fetch_one` mapping "no row" to `None`, the results and errors converted as SeaORM does.
//! SeaORM's instrumentation of that call (the metric callback, its `debug-print` line and
//! `tracing-spans` span) is done by the caller, `watched_write`, through [`crate::observe::hooks`].
//! Pools that are not sqlx PostgreSQL or MySQL pools (mocks, proxies) run the write in one
//! step, as SeaORM does, with step 1 empty.

use sea_orm::{DatabaseConnection, DbErr, ExecResult, QueryResult, Statement};
use std::future::Future;
use std::time::Duration;

/// Where the node a statement is on stands, as the monitor sees it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// The primary, not marked down.
    Primary,
    /// Still the primary, but marked down by the monitor (its probes fail on connections of
    /// their own).
    Down,
    /// Not the primary any more (a replica now, or another node is the primary), and up.
    NotPrimary,
    /// Not the primary and marked down: an old primary that stays unreachable while another
    /// node is the primary, a fenced node, a removed one.
    Gone,
}

impl Standing {
    /// Marked down (or gone): a statement sent there is given up, outcome unknown.
    pub(crate) fn is_down(self) -> bool {
        matches!(self, Standing::Down | Standing::Gone)
    }

    /// Not the primary any more, whatever its health.
    pub(crate) fn is_replaced(self) -> bool {
        matches!(self, Standing::NotPrimary | Standing::Gone)
    }

    /// Not the primary any more, or marked down: a read on it is given up.
    pub(crate) fn serves_no_more(self) -> bool {
        self != Standing::Primary
    }
}

/// Why one attempt on a node failed.
pub(crate) enum Attempt {
    /// The node (or the driver) returned an error.
    Failed(DbErr),
    /// The adapter gave it up: a deadline passed, or the monitor marked the node down.
    GivenUp(DbErr),
    /// A write's connection could not be had (the pool timed out or was closed, none could be
    /// opened): the write was not sent.
    Unsent(DbErr),
    /// A write's node stopped being the primary (or was marked down) before the write was
    /// sent; a read's primary stopped being the primary while the read waited on it.
    Deposed(Standing),
}

impl Attempt {
    /// Known not to have reached the server: safe to try again.
    pub(crate) fn unsent(&self) -> bool {
        matches!(self, Attempt::Unsent(_) | Attempt::Deposed(_))
    }
}

/// How a write that did not succeed ended.
#[derive(Debug)]
pub(crate) enum End {
    /// Step 1 failed (no connection: the pool timed out or was closed, none could be opened):
    /// nothing was sent.
    Unsent(DbErr),
    /// The node stopped being the primary before anything was sent: nothing was sent.
    Deposed(Standing),
    /// The statement was sent and failed (or the connection broke under it: it may have been
    /// applied).
    Failed(DbErr),
    /// The statement was sent and the monitor marked the node down before it ended: its outcome
    /// is unknown.
    Unknown,
}

/// The error a write (`write`) fails with when its node stopped being the primary
/// (`standing`) before it was sent; or a read, given up on a primary that is one no more.
pub(crate) fn deposed(node: &str, standing: Standing, write: bool) -> DbErr {
    use crate::routing_error::{DownReason, NotSentReason, RoutingError};
    let node = node.to_owned();
    if write {
        let reason = if standing.is_replaced() {
            NotSentReason::NotPrimary
        } else {
            NotSentReason::PrimaryDown
        };
        RoutingError::WriteNotSent { node, reason, source: None }.into()
    } else {
        let reason =
            if standing.is_replaced() { DownReason::NotPrimary } else { DownReason::MarkedDown };
        RoutingError::NodeDown { node, attempts: 1, reason, source: None }.into()
    }
}

/// Runs a write in two steps (see the module docs): `take` (nothing is sent), then `send` on
/// what it returned. `standing` is the monitor's view of the node, checked at once and again
/// each time `changed()` completes: it must count changes from when it is called (the
/// monitor's `TopologyState::changed`), so that no change between a check and the wait is
/// missed.
pub(crate) async fn in_steps<C, T, S, F>(
    take: impl Future<Output = Result<C, DbErr>>,
    send: impl FnOnce(C) -> S,
    standing: impl Fn() -> Standing,
    changed: impl Fn() -> F,
) -> Result<T, End>
where
    S: Future<Output = Result<T, DbErr>>,
    F: Future<Output = ()>,
{
    let taken = tokio::select! {
        biased;
        r = take => r.map_err(End::Unsent)?,
        s = until(&standing, &changed, |s| s != Standing::Primary) => return Err(End::Deposed(s)),
    };
    // The monitor may have seen the change while the connection was taken; nothing is sent yet
    // (what was taken goes back to the pool).
    let now = standing();
    if now != Standing::Primary {
        return Err(End::Deposed(now));
    }
    tokio::select! {
        biased;
        r = send(taken) => r.map_err(End::Failed),
        _ = until(&standing, &changed, Standing::is_down) => Err(End::Unknown),
    }
}

/// Returns the first standing for which `done` holds, checked now and after each `changed()`.
async fn until<F: Future<Output = ()>>(
    standing: &impl Fn() -> Standing,
    changed: &impl Fn() -> F,
    done: impl Fn(Standing) -> bool,
) -> Standing {
    loop {
        let next = changed();
        let s = standing();
        if done(s) {
            return s;
        }
        next.await;
    }
}

/// A connection taken from a node's sqlx pool; back to the pool when dropped.
#[derive(Debug)]
pub(crate) enum Taken {
    /// From a PostgreSQL pool.
    #[cfg(feature = "postgres")]
    Postgres(sea_orm::sqlx::pool::PoolConnection<sea_orm::sqlx::Postgres>),
    /// From a MySQL/MariaDB pool.
    #[cfg(feature = "mysql")]
    MySql(sea_orm::sqlx::pool::PoolConnection<sea_orm::sqlx::MySql>),
}

/// Whether the adapter can take connections from `pool` itself (a sqlx PostgreSQL or MySQL
/// pool; not a mock or a proxy).
pub(crate) fn can_take(pool: &DatabaseConnection) -> bool {
    #[cfg(feature = "postgres")]
    if matches!(pool.inner, sea_orm::DatabaseConnectionType::SqlxPostgresPoolConnection(_)) {
        return true;
    }
    #[cfg(feature = "mysql")]
    if matches!(pool.inner, sea_orm::DatabaseConnectionType::SqlxMySqlPoolConnection(_)) {
        return true;
    }
    let _ = pool;
    false
}

/// A node's sqlx pool, for a read run straight on it as SeaORM's driver runs it
/// ([`direct`]): SeaORM's `DatabaseConnection` layer — its boxed future, its dispatch, its
/// statement clone per retry — is skipped, and with it its instrumentation, so the adapter does
/// this only when nothing listens to that ([`Direct::quiet`]).
#[derive(Clone, Copy)]
pub(crate) enum Direct<'a> {
    #[cfg(feature = "postgres")]
    Postgres(&'a sea_orm::sqlx::PgPool),
    #[cfg(feature = "mysql")]
    MySql(&'a sea_orm::sqlx::MySqlPool),
}

/// `pool`'s sqlx pool, if it is a sqlx PostgreSQL or MySQL pool (not a mock or a proxy).
pub(crate) fn direct(pool: &DatabaseConnection) -> Option<Direct<'_>> {
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    {
        use sea_orm::DatabaseConnectionType as T;
        match &pool.inner {
            #[cfg(feature = "postgres")]
            T::SqlxPostgresPoolConnection(_) => {
                Some(Direct::Postgres(pool.get_postgres_connection_pool()))
            }
            #[cfg(feature = "mysql")]
            T::SqlxMySqlPoolConnection(_) => Some(Direct::MySql(pool.get_mysql_connection_pool())),
            _ => None,
        }
    }
    #[cfg(not(any(feature = "postgres", feature = "mysql")))]
    {
        let _ = pool;
        None
    }
}

impl Direct<'_> {
    /// Whether nothing listens to what SeaORM's `DatabaseConnection` would report of a read
    /// on a node whose pools are `hooked` to a metric callback or not: no callback, neither
    /// `debug-print` nor `tracing-spans` (rwsplit's features forwarding to SeaORM's), and no
    /// `trace`-level subscriber (SeaORM's drivers make a `trace` span per statement).
    pub(crate) fn quiet(hooked: bool) -> bool {
        !hooked
            && !cfg!(feature = "debug-print")
            && !cfg!(feature = "tracing-spans")
            && tracing::level_filters::LevelFilter::current() < tracing::Level::TRACE
    }
}

/// The statement's values, bound as SeaORM binds them (cloned, as its drivers do: the
/// statement stays the caller's, for another attempt).
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn bound(stmt: &Statement) -> sea_query_sqlx::SqlxValues {
    let values = stmt.values.clone().unwrap_or(sea_orm::sea_query::Values(Vec::new()));
    sea_query_sqlx::SqlxValues(values)
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
impl Direct<'_> {
    /// `query_one_raw`, as SeaORM's sqlx drivers run it: a connection taken from the pool, the
    /// first row, `None` if there is none; errors as SeaORM reports them.
    pub(crate) async fn query_one(self, stmt: &Statement) -> Result<Option<QueryResult>, DbErr> {
        use sea_orm::sqlx::{AssertSqlSafe, query_with};
        let sql = AssertSqlSafe(stmt.sql.as_str());
        let row = match self {
            #[cfg(feature = "postgres")]
            Direct::Postgres(p) => {
                let mut c = Reading::new(p.acquire().await.map_err(acquire_err)?);
                let row = query_with(sql, bound(stmt)).fetch_one(&mut *c.conn).await;
                c.answered = true;
                row.map(Into::into)
            }
            #[cfg(feature = "mysql")]
            Direct::MySql(p) => {
                let mut c = Reading::new(p.acquire().await.map_err(acquire_err)?);
                let row = query_with(sql, bound(stmt)).fetch_one(&mut *c.conn).await;
                c.answered = true;
                row.map(Into::into)
            }
        };
        match row {
            Ok(row) => Ok(Some(row)),
            Err(sea_orm::sqlx::Error::RowNotFound) => Ok(None),
            Err(e) => Err(query_err(e)),
        }
    }

    /// `query_all_raw`, as SeaORM's sqlx drivers run it.
    pub(crate) async fn query_all(self, stmt: &Statement) -> Result<Vec<QueryResult>, DbErr> {
        use sea_orm::sqlx::{AssertSqlSafe, query_with};
        let sql = AssertSqlSafe(stmt.sql.as_str());
        match self {
            #[cfg(feature = "postgres")]
            Direct::Postgres(p) => {
                let mut c = Reading::new(p.acquire().await.map_err(acquire_err)?);
                let rows = query_with(sql, bound(stmt)).fetch_all(&mut *c.conn).await;
                c.answered = true;
                rows.map(|rows| rows.into_iter().map(Into::into).collect())
            }
            #[cfg(feature = "mysql")]
            Direct::MySql(p) => {
                let mut c = Reading::new(p.acquire().await.map_err(acquire_err)?);
                let rows = query_with(sql, bound(stmt)).fetch_all(&mut *c.conn).await;
                c.answered = true;
                rows.map(|rows| rows.into_iter().map(Into::into).collect())
            }
        }
        .map_err(query_err)
    }
}

/// A pooled connection a direct read runs on. Once the read has its answer (rows or an
/// error) the connection goes back to the pool as usual. A read dropped before that (a hedge's
/// losing attempt, an attempt given up, a caller gone) closes it instead: sqlx would ping it on
/// its way back, which waits for the abandoned statement's answer (on a frozen server, until
/// the kernel gives the connection up) and then hands the connection to the next read. Closed,
/// it is never reused: a cancel sent for the abandoned statement ([`crate::connection::cancel`]) cannot hit
/// a later statement on the same server session, and that session ends with the statement.
#[cfg(any(feature = "postgres", feature = "mysql"))]
struct Reading<DB: sea_orm::sqlx::Database> {
    conn: sea_orm::sqlx::pool::PoolConnection<DB>,
    answered: bool,
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
impl<DB: sea_orm::sqlx::Database> Reading<DB> {
    fn new(conn: sea_orm::sqlx::pool::PoolConnection<DB>) -> Self {
        Reading { conn, answered: false }
    }
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
impl<DB: sea_orm::sqlx::Database> Drop for Reading<DB> {
    fn drop(&mut self) {
        if !self.answered {
            // Abandoned mid-statement: closed, never pinged or reused (sqlx closes it on a task
            // of its own, bounded, keeping its place in the pool until then).
            self.conn.close_on_drop();
        }
    }
}

#[cfg(not(any(feature = "postgres", feature = "mysql")))]
impl Direct<'_> {
    /// Never called: without a sqlx driver [`direct`] finds no pool.
    pub(crate) async fn query_one(self, _: &Statement) -> Result<Option<QueryResult>, DbErr> {
        Err(crate::send::failure::internal("no sqlx driver"))
    }

    /// Never called: without a sqlx driver [`direct`] finds no pool.
    pub(crate) async fn query_all(self, _: &Statement) -> Result<Vec<QueryResult>, DbErr> {
        Err(crate::send::failure::internal("no sqlx driver"))
    }
}

/// Takes a connection from `pool` (step 1: nothing is sent but the pool's own checks, a ping
/// or its hooks). Errors as SeaORM reports them when it takes one.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) async fn take(pool: &DatabaseConnection) -> Result<Taken, DbErr> {
    use sea_orm::DatabaseConnectionType as T;
    match &pool.inner {
        #[cfg(feature = "postgres")]
        T::SqlxPostgresPoolConnection(_) => {
            pool.get_postgres_connection_pool().acquire().await.map(Taken::Postgres)
        }
        #[cfg(feature = "mysql")]
        T::SqlxMySqlPoolConnection(_) => {
            pool.get_mysql_connection_pool().acquire().await.map(Taken::MySql)
        }
        _ => {
            return Err(crate::send::failure::internal(
                "not a sqlx pool: connections cannot be taken from it",
            ));
        }
    }
    .map_err(acquire_err)
}

/// Without a sqlx driver there is no pool to take from ([`can_take`] is `false`).
#[cfg(not(any(feature = "postgres", feature = "mysql")))]
pub(crate) async fn take(_pool: &DatabaseConnection) -> Result<Taken, DbErr> {
    Err(crate::send::failure::internal("no sqlx driver: connections cannot be taken"))
}

/// Takes an idle connection from `pool` at once, unchecked — no ping, no `before_acquire` hook
/// — with the pool's acquire timeout (`None`: no connection is idle, or other callers are
/// waiting for one, whose turn this does not take). sqlx pings every connection it is given
/// back before it is idle again, so one found idle was checked when it was last used. Only for
/// a read that is safe to send again on a checked connection if this one turns out broken.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn take_idle(pool: &DatabaseConnection) -> Option<(Taken, Duration)> {
    use sea_orm::DatabaseConnectionType as T;
    match &pool.inner {
        #[cfg(feature = "postgres")]
        T::SqlxPostgresPoolConnection(_) => {
            let p = pool.get_postgres_connection_pool();
            p.try_acquire().map(|c| (Taken::Postgres(c), p.options().get_acquire_timeout()))
        }
        #[cfg(feature = "mysql")]
        T::SqlxMySqlPoolConnection(_) => {
            let p = pool.get_mysql_connection_pool();
            p.try_acquire().map(|c| (Taken::MySql(c), p.options().get_acquire_timeout()))
        }
        _ => None,
    }
}

/// Without a sqlx driver there is no pool to take from.
#[cfg(not(any(feature = "postgres", feature = "mysql")))]
pub(crate) fn take_idle(_pool: &DatabaseConnection) -> Option<(Taken, Duration)> {
    None
}

/// A pool's error as SeaORM reports it when it takes a connection (its `sqlx_conn_acquire_err`).
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn acquire_err(e: sea_orm::sqlx::Error) -> DbErr {
    use sea_orm::ConnAcquireErr;
    match e {
        sea_orm::sqlx::Error::PoolTimedOut => DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
        sea_orm::sqlx::Error::PoolClosed => {
            DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed)
        }
        e => DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into())),
    }
}

/// An execution error as SeaORM reports it.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn exec_err(e: sea_orm::sqlx::Error) -> DbErr {
    DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e.into()))
}

/// A query error as SeaORM reports it.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn query_err(e: sea_orm::sqlx::Error) -> DbErr {
    DbErr::Query(sea_orm::RuntimeErr::SqlxError(e.into()))
}

/// The statement's SQL and its values, bound as SeaORM binds them (moved: the statement is
/// sent once, so nothing is cloned).
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn parts(stmt: Statement) -> (String, sea_query_sqlx::SqlxValues) {
    let values = stmt.values.unwrap_or(sea_orm::sea_query::Values(Vec::new()));
    (stmt.sql, sea_query_sqlx::SqlxValues(values))
}

/// Step 2: the statement on the taken connection, as SeaORM's `DatabaseConnection` runs it.
#[cfg(any(feature = "postgres", feature = "mysql"))]
impl Taken {
    /// `execute_raw`.
    pub(crate) async fn execute(&mut self, stmt: Statement) -> Result<ExecResult, DbErr> {
        use sea_orm::sqlx::{AssertSqlSafe, query_with};
        let (sql, values) = parts(stmt);
        let sql = AssertSqlSafe(sql.as_str());
        match self {
            #[cfg(feature = "postgres")]
            Taken::Postgres(c) => query_with(sql, values).execute(&mut **c).await.map(Into::into),
            #[cfg(feature = "mysql")]
            Taken::MySql(c) => query_with(sql, values).execute(&mut **c).await.map(Into::into),
        }
        .map_err(exec_err)
    }

    /// `execute_unprepared` (the simple protocol: no statement is prepared).
    pub(crate) async fn execute_unprepared(&mut self, sql: &str) -> Result<ExecResult, DbErr> {
        use sea_orm::sqlx::{AssertSqlSafe, Executor};
        let sql = AssertSqlSafe(sql.to_owned());
        match self {
            #[cfg(feature = "postgres")]
            Taken::Postgres(c) => Executor::execute(&mut **c, sql).await.map(Into::into),
            #[cfg(feature = "mysql")]
            Taken::MySql(c) => Executor::execute(&mut **c, sql).await.map(Into::into),
        }
        .map_err(exec_err)
    }

    /// Gives the connection back to its pool now, tested with sqlx's ping as a drop would
    /// (its drop leaves that to a task of its own); then dropping it does nothing more.
    pub(crate) async fn give_back(&mut self) {
        match self {
            #[cfg(feature = "postgres")]
            Taken::Postgres(c) => c.return_to_pool().await,
            #[cfg(feature = "mysql")]
            Taken::MySql(c) => c.return_to_pool().await,
        }
    }

    /// `query_one_raw`: the first row, `None` if there is none.
    pub(crate) async fn query_one(
        &mut self,
        stmt: Statement,
    ) -> Result<Option<QueryResult>, DbErr> {
        use sea_orm::sqlx::{AssertSqlSafe, query_with};
        let (sql, values) = parts(stmt);
        let sql = AssertSqlSafe(sql.as_str());
        let row = match self {
            #[cfg(feature = "postgres")]
            Taken::Postgres(c) => query_with(sql, values).fetch_one(&mut **c).await.map(Into::into),
            #[cfg(feature = "mysql")]
            Taken::MySql(c) => query_with(sql, values).fetch_one(&mut **c).await.map(Into::into),
        };
        match row {
            Ok(row) => Ok(Some(row)),
            Err(sea_orm::sqlx::Error::RowNotFound) => Ok(None),
            Err(e) => Err(query_err(e)),
        }
    }

    /// `query_all_raw`.
    pub(crate) async fn query_all(&mut self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        use sea_orm::sqlx::{AssertSqlSafe, query_with};
        let (sql, values) = parts(stmt);
        let sql = AssertSqlSafe(sql.as_str());
        match self {
            #[cfg(feature = "postgres")]
            Taken::Postgres(c) => query_with(sql, values)
                .fetch_all(&mut **c)
                .await
                .map(|rows| rows.into_iter().map(Into::into).collect()),
            #[cfg(feature = "mysql")]
            Taken::MySql(c) => query_with(sql, values)
                .fetch_all(&mut **c)
                .await
                .map(|rows| rows.into_iter().map(Into::into).collect()),
        }
        .map_err(query_err)
    }
}

/// Without a sqlx driver no connection is ever taken ([`Taken`] has no value).
#[cfg(not(any(feature = "postgres", feature = "mysql")))]
impl Taken {
    pub(crate) async fn execute(&mut self, _stmt: Statement) -> Result<ExecResult, DbErr> {
        match *self {}
    }
    pub(crate) async fn execute_unprepared(&mut self, _sql: &str) -> Result<ExecResult, DbErr> {
        match *self {}
    }
    pub(crate) async fn give_back(&mut self) {
        match *self {}
    }
    pub(crate) async fn query_one(&mut self, _: Statement) -> Result<Option<QueryResult>, DbErr> {
        match *self {}
    }
    pub(crate) async fn query_all(&mut self, _stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match *self {}
    }
}

#[cfg(test)]
mod tests;
