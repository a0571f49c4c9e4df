//! The product seam: everything the adapter does differently on PostgreSQL and on MariaDB, in
//! one place, as the monitor keeps its probe SQL behind its own `Product` trait.
//!
//! Which products there are is core's list, [`rwsplit_core::Product`]; what is pure about each
//! (names, dialect, token kind) is core's too. What the adapter does on one is that product's
//! module here (`postgres.rs`, `mariadb.rs`), an implementation of [`Seam`]; `with_product!`
//! is the one match that picks it, and [`Product`] (a connection's product, or another
//! backend) delegates to it once per method. Adding a product is its module and its arm in
//! `with_product!`.
//!
//! - which URL schemes connect which protocol (`DbBackend`), and its default port
//!   ([`scheme`]);
//! - what a node's server is, and whether rwsplit supports it ([`check`], the version policy
//!   in [`server`]);
//! - a write's replication position, and waiting for a replica to replay one
//!   ([`Product::capture`], [`wait_for`]); the SQL is `rwsplit_monitor::sql`'s, shared with
//!   the monitor's probes;
//! - how a replica's sessions are made read-only, per [`Pooling`] mode, and told to end a
//!   statement whose client has gone (a hedged read's losing attempt: see
//!   `connection::attempt`) ([`Product::make_read_only`], [`Product::prepare_options`],
//!   [`Product::frame_monitor`]);
//! - the server errors the adapter branches on (SQLSTATEs, MariaDB error numbers:
//!   [`server_error`]), and a refused connection's cause in words ([`refusal`]);
//! - names: SeaORM's `db.system` (the rest are core's, by [`Product::replicated`]).
//!
//! A connection's product is chosen once, when it is built: from what the primary's server
//! said it is ([`check`]) for a connection built from URLs (members a topology source adds
//! later take the connection's); from the connections' backend ([`Product::of`]) only for
//! connections given as they are, whose servers nobody asked. Nothing outside this module names
//! a product's SQL, error codes or `DbBackend` variants (the tidy test
//! `product_sql_stays_in_the_seam` checks it).
//!
//! The seam depends on no module of the crate that depends on it: it imports only
//! `routing_error` (the position errors, made in `rows`). The connection a position is read on
//! comes in as a [`OneRow`], and a refused server goes out as [`server::Refused`], which the
//! error module makes an `Error::UnsupportedServer` of.

mod mariadb;
mod pooling;
mod postgres;
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) mod refusal;
mod rows;
pub(crate) mod server;

use std::time::Duration;

use rwsplit_core::{CausalToken, Dialect, ReplayPosition, TokenKind};
use sea_orm::{ConnectOptions, DatabaseConnection, DbBackend, DbErr};

pub use pooling::{Pooling, UnknownPooling};
pub(crate) use rows::OneRow;
pub use server::{Server, ServerProduct};

/// Evaluates `$body` with `$P` the [`Seam`] implementation of `$product` (core's
/// [`rwsplit_core::Product`]): the one place the adapter lists its per-product modules, one arm
/// per product of core's list, which the compiler keeps complete.
macro_rules! with_product {
    ($product:expr, $P:ident => $body:expr) => {
        match $product {
            rwsplit_core::Product::Postgres => {
                type $P = postgres::Postgres;
                $body
            }
            rwsplit_core::Product::MariaDb => {
                type $P = mariadb::MariaDb;
                $body
            }
        }
    };
}

/// One product's side of the adapter's seam: what the adapter does differently on it. One
/// implementation per product, each in its module (`postgres.rs`, `mariadb.rs`); what is pure
/// about a product (names, dialect, token kind) is core's [`rwsplit_core::Product`]'s. A
/// method whose driver is not in this build does nothing.
pub(crate) trait Seam {
    /// The SeaORM backend (the protocol) its connections speak.
    const BACKEND: DbBackend;
    /// SeaORM's `db.system` in its `tracing-spans` spans: its backend's name.
    const SEAORM_SYSTEM: &'static str;
    /// The URL schemes that connect it in this build (none without its driver's feature).
    const SCHEMES: &'static [&'static str];
    /// Its servers' default port.
    const DEFAULT_PORT: u16;
    /// Whether Patroni can run its nodes.
    const RUNS_UNDER_PATRONI: bool = false;
    /// Whether the monitor probes a node behind transaction pooling on a driver connection of
    /// its own, each statement alone in the simple protocol, rather than on a framed
    /// one-connection pool (see `crate::nodes::probe`).
    const POOLED_PROBE_UNFRAMED: bool = false;

    /// See [`Product::frame_hosts`]: none, by default (MySQL/MariaDB refuse `SET TRANSACTION`,
    /// which SeaORM sends for a read-only transaction, inside the frame's transaction).
    fn frame_hosts(isolation: Option<sea_orm::IsolationLevel>) -> bool {
        let _ = isolation;
        false
    }

    /// See [`Product::capture`].
    async fn capture<O: OneRow>(on: &mut O, system_id: u64) -> Result<(CausalToken, u64), DbErr>;

    /// See [`wait_for`]; `position` is of this product (else: not caught up).
    async fn wait_for(
        conn: &DatabaseConnection,
        position: &ReplayPosition,
        max: Duration,
    ) -> Result<Waited, DbErr>;

    /// What the server says it is (see [`check`]).
    async fn server(conn: &DatabaseConnection) -> Result<Server, DbErr>;

    /// The system identifier of `position`, kept per node for [`Product::capture`]; `None`
    /// for a product whose positions have none.
    fn system_id(position: &ReplayPosition) -> Option<u64> {
        let _ = position;
        None
    }

    /// No client-side statement cache (see [`Product::prepare_options`]).
    fn no_statement_cache(opts: &mut ConnectOptions);

    /// See [`Product::frame_monitor`].
    fn frame_monitor(opts: &mut ConnectOptions);

    /// See [`Product::make_read_only`].
    fn make_read_only(opts: &mut ConnectOptions, pooling: Pooling, checks_clients: bool);
}

/// The product a connection runs on, chosen once: from what the primary's server said it is
/// ([`check`]) when the connection is built from URLs, else from the connections' backend
/// ([`Product::of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Product {
    /// One of core's products, with replication positions: its [`Seam`] does the work.
    Replicated(rwsplit_core::Product),
    /// Anything else (SQLite, mocks of it), by its backend: no monitor, no positions.
    Other(DbBackend),
}

impl Product {
    /// PostgreSQL, for tests.
    #[cfg(test)]
    pub(crate) const POSTGRES: Product = Product::Replicated(rwsplit_core::Product::Postgres);

    /// The seam for connections of `backend` given as they are, whose server nobody asked
    /// ([`RoutedConnection::from_connections`](crate::RoutedConnection::from_connections),
    /// mocks, pools a user makes read-only with [`Pooling::make_read_only`]): by the
    /// protocol alone, the first product of core's list that speaks it, which cannot tell
    /// MySQL from MariaDB, so a MySQL-protocol connection is taken to be MariaDB. A connection
    /// built from URLs has its product from [`check`].
    pub(crate) fn of(backend: DbBackend) -> Product {
        rwsplit_core::Product::ALL
            .into_iter()
            .find(|&p| with_product!(p, P => P::BACKEND == backend))
            .map_or(Product::Other(backend), Product::Replicated)
    }

    /// The product of core's list, if it is one (the monitor's flavor, the token kind).
    pub(crate) fn replicated(self) -> Option<rwsplit_core::Product> {
        match self {
            Product::Replicated(p) => Some(p),
            Product::Other(_) => None,
        }
    }

    /// The SeaORM backend (the protocol) its connections speak.
    pub(crate) fn backend(self) -> DbBackend {
        match self {
            Product::Replicated(p) => with_product!(p, P => P::BACKEND),
            Product::Other(backend) => backend,
        }
    }

    /// `db.system.name` (OpenTelemetry's semantic conventions).
    pub(crate) fn system_name(self) -> &'static str {
        self.replicated().map_or("other_sql", rwsplit_core::Product::system_name)
    }

    /// SeaORM's `db.system` in its `tracing-spans` spans: its backend's name ("mysql" for
    /// MariaDB, where OpenTelemetry's `db.system.name` says "mariadb").
    #[cfg_attr(not(any(test, feature = "tracing-spans")), allow(dead_code))]
    pub(crate) fn seaorm_system(self) -> &'static str {
        match self {
            Product::Replicated(p) => with_product!(p, P => P::SEAORM_SYSTEM),
            Product::Other(_) => "sqlite",
        }
    }

    /// Whether SeaORM runs it on its sqlx MySQL driver (whose module is the target of its
    /// `debug-print` lines), rather than its PostgreSQL one.
    #[cfg_attr(not(feature = "debug-print"), allow(dead_code))]
    pub(crate) fn on_seaorm_mysql_driver(self) -> bool {
        self.backend() == DbBackend::MySql
    }

    /// The classifier's SQL dialect.
    pub(crate) fn dialect(self) -> Dialect {
        self.replicated().map_or(Dialect::Sqlite, rwsplit_core::Product::dialect)
    }

    /// The product's name as people write it, for errors: `PostgreSQL`, `MariaDB`, `SQLite`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Product::Replicated(p) => p.name(),
            Product::Other(DbBackend::Sqlite) => "SQLite",
            Product::Other(_) => "an unknown database",
        }
    }

    /// The kind a session's tokens are minted and checked as: its product's, and MariaDB's for
    /// a product without positions (which never mints a position of its own).
    pub(crate) fn tokens_checked_as(self) -> TokenKind {
        self.replicated().unwrap_or(TokenKind::MariaDb)
    }

    /// Whether a replica refuses SERIALIZABLE transactions (PostgreSQL hot standbys do), so a
    /// read-only one must stay on the primary.
    pub(crate) fn replicas_refuse_serializable(self) -> bool {
        self.replicated().is_some_and(rwsplit_core::Product::replicas_refuse_serializable)
    }

    /// Whether a read-only transaction asking for `isolation` can run on a replica behind
    /// transaction pooling ([`Pooling::Transaction`]), inside the frame that makes each use of
    /// its connections one read-only transaction. If not, such transactions are planned on the
    /// primary while any replica is so pooled.
    pub(crate) fn frame_hosts(self, isolation: Option<sea_orm::IsolationLevel>) -> bool {
        self.replicated().is_some_and(|p| with_product!(p, P => P::frame_hosts(isolation)))
    }

    /// The primary's position now, as a token: at or past every write that has committed.
    /// `system_id` is the node's cached PostgreSQL system identifier (0 when not yet known; it
    /// is then read, and returned for caching).
    pub(crate) async fn capture<O: OneRow>(
        self,
        on: &mut O,
        system_id: u64,
    ) -> Result<(CausalToken, u64), DbErr> {
        match self {
            Product::Replicated(p) => with_product!(p, P => P::capture(on, system_id).await),
            Product::Other(backend) => Err(rows::unsupported(backend)),
        }
    }

    /// Options every pool of a node behind `pooling` needs (the replica's read pool, its
    /// writable pool, the monitor's): in transaction pooling, no client-side statement cache
    /// and nothing opened in advance (see [`Pooling`]).
    pub(crate) fn prepare_options(self, opts: &mut ConnectOptions, pooling: Pooling) {
        if pooling != Pooling::Transaction {
            return;
        }
        // An idle connection the pool opened in advance would sit inside its transaction,
        // holding a PgBouncer server connection, until first used.
        opts.min_connections(0);
        if let Product::Replicated(p) = self {
            with_product!(p, P => P::no_statement_cache(opts));
        }
    }

    /// The monitor's connection to a node behind transaction pooling: each probe statement in
    /// a read-write transaction framed like the read pool's, so its prepared statements neither
    /// hop server connections between parse and execute nor collide with other clients'.
    /// Read-write, so that failover's promotion is not refused.
    pub(crate) fn frame_monitor(
        self,
        mut opts: ConnectOptions,
        pooling: Pooling,
    ) -> ConnectOptions {
        if pooling != Pooling::Transaction {
            return opts;
        }
        // No ping before each use: the `BEGIN` that starts it is one (a connection that fails
        // it is closed and another one used).
        opts.test_before_acquire(false);
        if let Product::Replicated(p) = self {
            with_product!(p, P => P::frame_monitor(&mut opts));
        }
        opts
    }

    /// Makes every session of a replica pool read-only, so a write that reaches it fails
    /// loudly, the way `pooling` allows (see [`Pooling`]); where the server `checks_clients`
    /// ([`Server::checks_clients`]), its sessions also end by themselves a statement whose
    /// client has gone (a hedged read's losing attempt).
    pub(crate) fn make_read_only(
        self,
        opts: &mut ConnectOptions,
        pooling: Pooling,
        checks_clients: bool,
    ) {
        if pooling == Pooling::Transaction {
            // No ping before each use: the `BEGIN` is one.
            opts.test_before_acquire(false);
        }
        if let Product::Replicated(p) = self {
            with_product!(p, P => P::make_read_only(opts, pooling, checks_clients));
        }
    }
}

/// What `conn`'s server is, asked in its protocol's SQL and checked against the version policy
/// ([`server::verdict`]): the product the connection's seam is for, and the server; or why it
/// is not used. `node` names it in the error. An untested version is accepted with a warning
/// (once per version and process).
///
/// The product comes from the server's answer, not from the protocol: MySQL speaks MariaDB's
/// and is refused here. A node checked later (a replica, a promoted or added node) speaks the
/// connection's protocol, for which the policy accepts one product, so it finds the
/// connection's product.
pub(crate) async fn check(
    conn: &DatabaseConnection,
    node: &str,
) -> Result<(Product, Server), Unchecked> {
    let backend = conn.get_database_backend();
    let Product::Replicated(speaks) = Product::of(backend) else {
        // Nothing to ask: no monitor, no positions.
        return Ok((Product::Other(backend), Server::other(backend)));
    };
    let found =
        with_product!(speaks, P => P::server(conn).await).map_err(Unchecked::Unreachable)?;
    let server = server::judge(found, node).map_err(Unchecked::Refused)?;
    // Anything else is refused by the policy above.
    let product = server.product().supported().map_or(Product::Other(backend), Product::Replicated);
    Ok((product, server))
}

/// Whether Patroni can run the nodes at URLs of `backend` (Patroni runs PostgreSQL only).
pub(crate) fn runs_under_patroni(backend: DbBackend) -> bool {
    Product::of(backend).replicated().is_some_and(|p| with_product!(p, P => P::RUNS_UNDER_PATRONI))
}

/// Why [`check`] gave no server.
#[derive(Debug)]
pub(crate) enum Unchecked {
    /// The server could not be asked (unreachable, or the query failed): check it later.
    Unreachable(DbErr),
    /// It answered, and is not one rwsplit supports ([`crate::Error::UnsupportedServer`]).
    Refused(server::Refused),
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
/// `max` (each product's way: see its [`Seam::wait_for`]).
pub(crate) async fn wait_for(
    conn: &DatabaseConnection,
    token: &CausalToken,
    max: Duration,
) -> Result<Waited, DbErr> {
    with_product!(token.kind(), P => P::wait_for(conn, token.position(), max).await)
}

/// The system identifier a probe saw, kept per node for the tokens [`Product::capture`] makes
/// (PostgreSQL's; MariaDB positions have none).
pub(crate) fn system_id(seen: &rwsplit_monitor::Observation) -> Option<u64> {
    let position = seen.position()?;
    with_product!(position.token_kind(), P => P::system_id(position))
}

/// The product a URL scheme connects in this build, if any.
fn scheme_product(scheme: &str) -> Option<rwsplit_core::Product> {
    rwsplit_core::Product::ALL
        .into_iter()
        .find(|&p| with_product!(p, P => P::SCHEMES.contains(&scheme)))
}

/// The backend a URL scheme connects in this build, and its default port; `None` for a scheme
/// no driver of this build connects.
pub(crate) fn scheme(scheme: &str) -> Option<(DbBackend, u16)> {
    let p = scheme_product(scheme)?;
    Some(with_product!(p, P => (P::BACKEND, P::DEFAULT_PORT)))
}

/// Whether the monitor probes a node behind transaction pooling at `url` on a driver
/// connection of its own, each statement alone in the simple protocol (PostgreSQL), rather than
/// on a framed one-connection pool (MySQL/MariaDB: see `crate::nodes::probe`).
pub(crate) fn pooled_probe_unframed(url: &str) -> bool {
    let name = url.split_once("://").map_or("", |(name, _)| name);
    scheme_product(name).is_some_and(|p| with_product!(p, P => P::POOLED_PROBE_UNFRAMED))
}

/// What a server error means to the adapter, by its SQLSTATE or MariaDB error number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerError {
    /// The server is going away or refused the session (PostgreSQL class 08 and
    /// 57P01–57P03; MariaDB 1053 `ER_SERVER_SHUTDOWN`): the node failed, not the statement.
    GoingAway,
    /// The session is read-only or the server in recovery and the statement writes
    /// (PostgreSQL 25006, and the recovery refusals 55000, XX000 and 0A000 by their message;
    /// MariaDB 1290 `ER_OPTION_PREVENTS_STATEMENT`, 1792
    /// `ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION`).
    ReadOnly,
    /// SQLSTATE 40001: on a PostgreSQL standby a recovery conflict (replay needed to remove
    /// rows the query could still see); on MariaDB a deadlock. Another node may serve it.
    Conflict,
    /// No such table (PostgreSQL 42P01; MariaDB 1146 `ER_NO_SUCH_TABLE`).
    NoSuchTable,
    /// The server refused a new connection for lack of room (PostgreSQL 53300
    /// `too_many_connections`, also a role's `CONNECTION LIMIT`; MariaDB 1040
    /// `ER_CON_COUNT_ERROR`, 1203 `ER_TOO_MANY_USER_CONNECTIONS`, 1226 `ER_USER_LIMIT_REACHED`):
    /// alive and busy, not failed.
    TooManyConnections,
    /// The statement was cancelled on the server (PostgreSQL 57014 `query_canceled`; MariaDB
    /// 1317 `ER_QUERY_INTERRUPTED`): by an operator or a timeout of the server's. Another node
    /// may serve a read so cancelled on a replica.
    Cancelled,
}

/// What `db` means to the adapter, if it is one of the errors it branches on.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn server_error(db: &dyn sea_orm::sqlx::error::DatabaseError) -> Option<ServerError> {
    #[cfg(feature = "mysql")]
    if let Some(my) = db.try_downcast_ref::<sea_orm::sqlx::mysql::MySqlDatabaseError>() {
        return mariadb::server_error(my.number(), my.code());
    }
    postgres::server_error(db.code().as_deref().unwrap_or(""), db.message())
}

/// A hook's verdict: keep the connection if the statement ran; an error closes it (sqlx then
/// opens or picks another), so a connection whose transaction state is unknown is never reused.
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn keep(
    ran: impl std::future::Future<Output = Result<(), sea_orm::sqlx::Error>>,
) -> Result<bool, sea_orm::sqlx::Error> {
    ran.await.map(|()| true)
}

/// Opens a replica read pool's `min` connections ([`crate::nodes::pools`]) in a task of its
/// own, at once: the reads of a starting application then find them open instead of each
/// waiting for a new server session. A lazy sqlx pool with an idle timeout (sqlx's default)
/// opens its `min_connections` only after it has closed an idle one, so a setting the user
/// made to start warm would otherwise do nothing at the start. Each open is bounded by the
/// pool's acquire timeout (a frozen replica holds nothing); the connections go back to the
/// pool idle.
pub(crate) fn warm(conn: &sea_orm::DatabaseConnection, min: u32) {
    if min == 0 || tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    match conn.get_database_backend() {
        #[cfg(feature = "postgres")]
        sea_orm::DbBackend::Postgres => {
            tokio::spawn(fill(conn.get_postgres_connection_pool().clone(), min));
        }
        #[cfg(feature = "mysql")]
        sea_orm::DbBackend::MySql => {
            tokio::spawn(fill(conn.get_mysql_connection_pool().clone(), min));
        }
        _ => {}
    }
}

/// Holds `n` of `pool`'s connections at once (opening those it lacks), then returns them.
async fn fill<DB: sea_orm::sqlx::Database>(pool: sea_orm::sqlx::Pool<DB>, n: u32) {
    let held = futures_util::future::join_all((0..n).map(|_| pool.acquire())).await;
    drop(held);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sea_orm::{MockDatabase, Value};

    use super::*;

    /// Which read-only transactions a replica behind transaction pooling can host in its
    /// frame: on PostgreSQL a savepoint, at the frame's read committed; on MariaDB none.
    #[rstest::rstest]
    #[case(rwsplit_core::Product::Postgres, None, true)]
    #[case(rwsplit_core::Product::Postgres, Some(sea_orm::IsolationLevel::ReadCommitted), true)]
    #[case(rwsplit_core::Product::Postgres, Some(sea_orm::IsolationLevel::RepeatableRead), false)]
    #[case(rwsplit_core::Product::Postgres, Some(sea_orm::IsolationLevel::ReadUncommitted), false)]
    #[case(rwsplit_core::Product::Postgres, Some(sea_orm::IsolationLevel::Serializable), false)]
    #[case(rwsplit_core::Product::MariaDb, None, false)]
    #[case(rwsplit_core::Product::MariaDb, Some(sea_orm::IsolationLevel::ReadCommitted), false)]
    fn a_frame_hosts_what_a_savepoint_can_be(
        #[case] product: rwsplit_core::Product,
        #[case] isolation: Option<sea_orm::IsolationLevel>,
        #[case] hosts: bool,
    ) {
        assert_eq!(Product::Replicated(product).frame_hosts(isolation), hosts);
    }

    /// A connection whose server answers one row of text columns.
    fn answering(backend: DbBackend, row: &[(&'static str, &str)]) -> DatabaseConnection {
        let row: BTreeMap<&str, Value> =
            row.iter().map(|(k, v)| (*k, Value::String(Some((*v).to_owned())))).collect();
        MockDatabase::new(backend).append_query_results([vec![row]]).into_connection()
    }

    /// The product is what the server says it is, not its protocol: MariaDB and MySQL share
    /// one, and MySQL is refused.
    #[tokio::test]
    async fn the_product_comes_from_the_server_check() {
        let mariadb = answering(
            DbBackend::MySql,
            &[("version", "10.11.6-MariaDB-0+deb12u1"), ("comment", "Debian 12")],
        );
        let (product, server) = check(&mariadb, "db-1").await.unwrap();
        assert_eq!(
            (product, server.product()),
            (Product::Replicated(rwsplit_core::Product::MariaDb), ServerProduct::MariaDb)
        );
        let mysql = answering(
            DbBackend::MySql,
            &[("version", "8.0.36"), ("comment", "MySQL Community Server - GPL")],
        );
        match check(&mysql, "db-2").await {
            Err(Unchecked::Refused(e)) => assert_eq!(e.product, ServerProduct::MySql),
            other => panic!("not refused: {other:?}"),
        }
        let pg = answering(
            DbBackend::Postgres,
            &[("num", "150008"), ("version", "PostgreSQL 15.8 on x86_64-pc-linux-gnu")],
        );
        assert_eq!(check(&pg, "db-3").await.unwrap().0, Product::POSTGRES);
        let sqlite = MockDatabase::new(DbBackend::Sqlite).into_connection();
        assert_eq!(check(&sqlite, "db-4").await.unwrap().0, Product::Other(DbBackend::Sqlite));
    }
}
