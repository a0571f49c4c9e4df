//! [`RoutedConnection`]'s public methods: what it runs on, the ways out to a node's own
//! connection, where a block of calls is routed, sessions, transactions, metrics and fencing.
//! The type (a handle on the shared `Inner` and the `Members`) is defined in `inner.rs`; its
//! methods here reach the part of `Inner` that owns what they ask (privacy stops at this
//! folder). Its constructors (`builder`, `from_connections`, `from_env`) name the
//! configuration, a floor above this folder, and are `crate::config`'s.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use rwsplit_core::{Consistency, Target, TokenKind};
use sea_orm::{
    AccessMode, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, IsolationLevel,
    TransactionError, TransactionOptions,
};

use crate::connection::RoutedConnection;
use crate::connection::session::{Routed, Session, snippet};
use crate::consistency::SessionToken;
use crate::error::Result;
use crate::routing::{Ctx, SCOPE};

impl RoutedConnection {
    // What it runs on, and how it has routed.

    /// The database backend (the same on every node). Inherent, so `db.get_database_backend()`
    /// is not ambiguous between SeaORM's `ConnectionTrait` and `StreamTrait`.
    pub fn get_database_backend(&self) -> DbBackend {
        self.inner.backend
    }

    /// The primary's database server, product and version, as checked against rwsplit's
    /// version policy ([`Error::UnsupportedServer`](crate::Error::UnsupportedServer)): the
    /// configured primary's at [`connect`](crate::RoutedConnectionBuilder::connect); after a
    /// promotion, the new primary's once checked. `None` for connections made by
    /// [`from_connections`](RoutedConnection::from_connections) until the monitor's first probe
    /// of the primary (mock connections: never).
    ///
    /// ```no_run
    /// # async fn demo(db: rwsplit_sea_orm::RoutedConnection) {
    /// if let Some(server) = db.server() {
    ///     println!("connected to {server}"); // PostgreSQL 15.8
    /// }
    /// # }
    /// ```
    pub fn server(&self) -> Option<crate::product::Server> {
        self.inner.with_primary(|n| n.server().cloned())
    }

    /// The kind of read-your-writes token this connection's sessions carry
    /// ([`SessionToken::kind`](crate::SessionToken::kind)), the kind
    /// [`session_from`](Self::session_from) accepts; `None` for a database without replicas
    /// (SQLite), which has no replication positions. A layer that carries tokens between
    /// requests checks a token against it, and names [`product_name`](Self::product_name) when
    /// it does not fit.
    ///
    /// ```
    /// use rwsplit_sea_orm::RoutedConnection;
    /// use rwsplit_sea_orm::advanced::TokenKind;
    /// use sea_orm::{DbBackend, MockDatabase};
    ///
    /// # fn main() -> Result<(), rwsplit_sea_orm::Error> {
    /// let mock = MockDatabase::new(DbBackend::Postgres).into_connection();
    /// let db = RoutedConnection::from_connections(mock, vec![])?;
    /// assert_eq!(db.token_kind(), Some(TokenKind::Postgres));
    /// assert_eq!(db.product_name(), "PostgreSQL");
    ///
    /// let sqlite = MockDatabase::new(DbBackend::Sqlite).into_connection();
    /// let db = RoutedConnection::from_connections(sqlite, vec![])?;
    /// assert_eq!((db.token_kind(), db.product_name()), (None, "SQLite"));
    /// # Ok(()) }
    /// ```
    pub fn token_kind(&self) -> Option<TokenKind> {
        self.inner.product.replicated()
    }

    /// The database product this connection routes for, as people write it: `PostgreSQL`,
    /// `MariaDB` or `SQLite` (see [`token_kind`](Self::token_kind)). From the primary's server
    /// check at [`connect`](crate::RoutedConnectionBuilder::connect); for connections given to
    /// [`from_connections`](Self::from_connections), from their SeaORM backend (MySQL's is
    /// taken to be MariaDB's).
    pub fn product_name(&self) -> &'static str {
        self.inner.product.name()
    }

    /// Statement counts per node and routing totals, for operators and tests.
    pub fn stats(&self) -> crate::connection::stats::Stats {
        crate::connection::stats::snapshot(self)
    }

    // Ways out of the router: a node's own connection.

    /// The primary's own connection: every call on it runs on the primary, unrouted. Use it for
    /// migrations (`Migrator::up(db.primary(), None)`), schema changes and code typed to
    /// `&DatabaseConnection`.
    ///
    /// Writes made through it are not seen by the router, so handing it out makes the caller's
    /// read-your-writes scope conservative, as `begin()` does: its next read first asks the
    /// primary for its position (at or past anything written through this connection by then),
    /// or reads from the primary.
    pub fn primary(&self) -> &DatabaseConnection {
        crate::connection::lend_primary(self)
    }

    /// The primary's sqlx pool (as [`DatabaseConnection::get_postgres_connection_pool`], which
    /// panics on another backend). Like [`primary`](RoutedConnection::primary), it makes the
    /// caller's read-your-writes scope conservative.
    #[cfg(feature = "postgres")]
    pub fn get_postgres_connection_pool(&self) -> &sea_orm::sqlx::PgPool {
        self.primary().get_postgres_connection_pool()
    }

    /// The primary's sqlx pool (as [`DatabaseConnection::get_mysql_connection_pool`], which
    /// panics on another backend). Like [`primary`](RoutedConnection::primary), it makes the
    /// caller's read-your-writes scope conservative.
    #[cfg(feature = "mysql")]
    pub fn get_mysql_connection_pool(&self) -> &sea_orm::sqlx::MySqlPool {
        self.primary().get_mysql_connection_pool()
    }

    /// A replica's own connection, chosen as a read would be (healthy, by the balancer), for
    /// calls that must not reach the primary. When no replica is in rotation (all down,
    /// excluded, or none configured), [`RoutingError::NoNodeLeft`](crate::RoutingError::NoNodeLeft)
    /// naming each replica and why, never the primary's connection. Its sessions are
    /// read-only, so writes through it fail. rwsplit does not route what runs on it: no
    /// retry on another node, no read-your-writes.
    ///
    /// ```no_run
    /// # async fn demo(db: rwsplit_sea_orm::RoutedConnection) -> Result<(), sea_orm::DbErr> {
    /// use sea_orm::ConnectionTrait;
    /// let replica = db.replica()?; // an error, not the primary, when none is in rotation
    /// replica.execute_unprepared("SELECT 1").await?;
    /// # Ok(()) }
    /// ```
    pub fn replica(&self) -> Result<&DatabaseConnection, DbErr> {
        let id = self.inner.replica_for_reads()?;
        Ok(self.inner.read_conn(id))
    }

    // Where a block of calls, or one call, is routed.

    /// Runs `fut` with every statement this connection routes inside it sent to `target`
    /// (reads included; writes always go to the primary). The scope follows the task, not the
    /// connection value.
    ///
    /// ```no_run
    /// # async fn demo(db: rwsplit_sea_orm::RoutedConnection) -> Result<(), sea_orm::DbErr> {
    /// use rwsplit_sea_orm::{RoutedConnection, Target};
    /// RoutedConnection::scope(Target::Primary, async {
    ///     // every read here sees the primary
    ///     db.ping().await
    /// })
    /// .await
    /// # }
    /// ```
    pub async fn scope<F: Future>(target: Target, fut: F) -> F::Output {
        SCOPE.scope(target, fut).await
    }

    /// Runs `fut` with a deadline `within` from now for every read this connection routes inside
    /// it: each attempt is bounded by the time left, and a failed read is retried on another
    /// node only while time is left. The deadline follows the task, like
    /// [`RoutedConnection::scope`]. Writes are never cut short by it (a write abandoned
    /// mid-flight may still commit); bound them with `tokio::time::timeout` if you must, and
    /// treat a timeout as "outcome unknown".
    ///
    /// ```no_run
    /// # async fn demo(db: rwsplit_sea_orm::RoutedConnection) -> Result<(), sea_orm::DbErr> {
    /// use std::time::Duration;
    /// use rwsplit_sea_orm::RoutedConnection;
    /// // A request handler with a 2 s budget: reads give up (and stop retrying) in time.
    /// RoutedConnection::deadline(Duration::from_secs(2), async {
    ///     db.ping().await
    /// })
    /// .await
    /// # }
    /// ```
    pub async fn deadline<F: Future>(within: Duration, fut: F) -> F::Output {
        crate::send::deadline::within(within, fut).await
    }

    /// A view of this connection whose reads use `consistency` instead of the connection's
    /// default, e.g. `Post::find().all(&db.consistent(Consistency::Strong))`.
    pub fn consistent(&self, consistency: Consistency) -> Routed<'_> {
        Routed::new(self).consistent(consistency)
    }

    /// A view of this connection whose read-your-writes reads, when no replica is known to have
    /// the caller's writes, wait up to `max` (instead of the connection's default) for the
    /// closest replica to replay them, in the server, before going to the primary.
    pub fn wait_for_replica(&self, max: Duration) -> Routed<'_> {
        Routed::new(self).wait_for_replica(max)
    }

    /// A view of this connection whose read-your-writes reads go to the primary at once when
    /// no replica is known to have the caller's writes, instead of waiting for one (see
    /// [`wait_for_replica`](crate::RoutedConnectionBuilder::wait_for_replica)).
    pub fn primary_if_behind(&self) -> Routed<'_> {
        Routed::new(self).primary_if_behind()
    }

    // Read-your-writes scopes carried elsewhere: sessions and tokens.

    /// A new, empty [`Session`].
    pub fn session(&self) -> Session {
        Session::new(self.clone())
    }

    /// The caller's read-your-writes scope as a [`Session`], to carry it elsewhere: inside
    /// [`Session::scope`] (as every web middleware of rwsplit's runs a request) the request's
    /// session itself, shared; elsewhere a session that starts from what the calling task wrote
    /// and read. Export it with [`Session::token`] to hand it to a job queue; a worker resumes
    /// it with [`RoutedConnection::session_from`].
    pub fn current_session(&self) -> Session {
        Session::current(self)
    }

    /// Spawns `task` on the tokio runtime in the caller's read-your-writes scope
    /// ([`current_session`](Self::current_session)), so that its reads see what the caller
    /// wrote before spawning it: `db.spawn(async move { … })` where a handler would write
    /// `tokio::spawn(async move { … })`. A bare `tokio::spawn` starts a task with a scope of its
    /// own, which knows nothing of the handler's writes.
    ///
    /// ```no_run
    /// # async fn demo(db: rwsplit_sea_orm::RoutedConnection) -> Result<(), sea_orm::DbErr> {
    /// use sea_orm::{ConnectionTrait, Statement};
    ///
    /// let backend = db.get_database_backend();
    /// db.execute_unprepared("INSERT INTO note (body) VALUES ('hi')").await?;
    /// let reader = db.clone();
    /// db.spawn(async move {
    ///     // Sees the insert: on a replica that has replayed it, else on the primary.
    ///     reader.query_one_raw(Statement::from_string(backend, "SELECT count(*) FROM note")).await
    /// });
    /// # Ok(()) }
    /// ```
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let session = self.current_session();
        tokio::spawn(async move { session.scope(task).await })
    }

    /// A [`Session`] that starts from a token exported by [`Session::token`] (in this process or
    /// another). An empty string gives an empty session, so a missing cookie needs no special
    /// case; anything else that is not a token is an error naming the problem: malformed,
    /// longer than `CausalToken::MAX_LEN` (16 KiB; refused before parsing, which is linear),
    /// or of another database than this connection's (a `mariadb:` token on PostgreSQL). A
    /// token further ahead than the primary is lowered to the primary's position (see
    /// [`Session::observe`]). A token's last read node (see [`SessionToken`]) bounds the
    /// session's next reads by that replica's state now: they go to it, or to a node the
    /// monitor has since seen at or past it; a node this connection does not know by that name
    /// (another configuration) is bounded by the primary's position instead, read by the
    /// session's next read.
    ///
    /// ```no_run
    /// # fn demo(db: rwsplit_sea_orm::RoutedConnection) {
    /// let err = db.session_from("pg:1:not-a-token").unwrap_err();
    /// assert!(err.to_string().contains("read-your-writes token"));
    /// # }
    /// ```
    pub fn session_from(&self, token: &str) -> crate::error::Result<Session> {
        let session = self.session();
        let token = token.trim();
        if !token.is_empty() {
            // Only tokens of this connection's database. Length-checked before parsing.
            let kind = self.inner.product.tokens_checked_as();
            let parsed = SessionToken::parse_for(token, kind).map_err(|source| {
                crate::error::Error::InvalidToken { token: snippet(token), source }
            })?;
            session.resume(&parsed);
        }
        Ok(session)
    }

    /// The current task's read-your-writes token, if it has written or read (or the ambient
    /// session's, inside [`Session::scope`]); see [`Session::token`].
    pub async fn token(&self) -> Result<Option<SessionToken>, DbErr> {
        let scope = Ctx::default().scope();
        crate::connection::session::resolve(self, &scope).await
    }

    // Transactions in the async-closure form (SeaORM's own forms are its `TransactionTrait`).

    /// Runs `callback` in a transaction on the primary (the async-closure form of
    /// [`TransactionTrait::transaction`](sea_orm::TransactionTrait::transaction)).
    pub async fn transaction_async<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> AsyncFnOnce(&'c DatabaseTransaction) -> Result<T, E> + Send,
        T: Send,
        E: fmt::Display + fmt::Debug + Send,
    {
        self.transaction_with_config_async(callback, None, None).await
    }

    /// Runs `callback` in a transaction with the given isolation level and access mode; a
    /// read-only one may run on a replica (see
    /// [`TransactionTrait::begin_with_config`](sea_orm::TransactionTrait::begin_with_config)).
    pub async fn transaction_with_config_async<F, T, E>(
        &self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<T, TransactionError<E>>
    where
        F: for<'c> AsyncFnOnce(&'c DatabaseTransaction) -> Result<T, E> + Send,
        T: Send,
        E: fmt::Display + fmt::Debug + Send,
    {
        let ctx = Ctx::default();
        let options = TransactionOptions::default();
        let (txn, node) = crate::connection::transactions::begin_in(
            &self.inner,
            isolation_level,
            access_mode,
            options,
            &ctx,
            false,
        )
        .await
        .map_err(TransactionError::Connection)?;
        let result = callback(&txn).await;
        crate::connection::transactions::end_transaction(&self.inner, txn, result, node, &ctx).await
    }

    // SeaORM's metric callback, and the rest of `DatabaseConnection`'s own methods.

    /// Sets a callback called once for every statement this connection runs for you, with
    /// SeaORM's [`Info`](sea_orm::metric::Info) (time taken, statement, whether it failed): the
    /// same signature as SeaORM's `DatabaseConnection::set_metric_callback`, so code that sets
    /// one compiles unchanged after the type swap.
    ///
    /// It sees reads on replicas and on the primary, writes (also those the adapter sends
    /// itself, past SeaORM's `DatabaseConnection`: see *Writes in two steps* in
    /// docs/ARCHITECTURE.md), streams, every statement of a transaction begun from this
    /// connection, statements through [`primary`](Self::primary), [`replica`](Self::replica)
    /// and `DatabaseExecutor::from(&db)` handed out after it is set, and statements on nodes a
    /// topology source adds later. It does not see the adapter's own statements (the position
    /// read after each write, catch-up waits, server checks, the monitor's probes), nor what
    /// SeaORM does not report either: `execute_unprepared`, `BEGIN`/`COMMIT`/`ROLLBACK`, and a
    /// statement whose future is dropped before it ends (a read the router gives up on a
    /// replica, a write whose outcome is unknown). A read retried on another node is reported
    /// once per node it ran on. Mock and proxy connections report nothing, as in SeaORM.
    ///
    /// It applies to every clone of this connection (they share their nodes), and replaces a
    /// callback set before. A SeaORM callback set on a `DatabaseConnection` given to
    /// [`from_connections`](Self::from_connections) still sees that pool's statements until
    /// this is called, and the adapter's own after. Setting one costs every statement a clock
    /// reading when it starts and one when it ends (a write sent in two steps reads it once
    /// more, when its connection is taken) and, for writes, a clone of the statement; none is
    /// paid until then.
    ///
    /// ```no_run
    /// # async fn demo(mut db: rwsplit_sea_orm::RoutedConnection) {
    /// db.set_metric_callback(|info| {
    ///     let failed = if info.failed { " (failed)" } else { "" };
    ///     println!("{:?} {}{failed}", info.elapsed, info.statement.sql);
    /// });
    /// # }
    /// ```
    pub fn set_metric_callback<F>(&mut self, callback: F)
    where
        F: Fn(&sea_orm::metric::Info<'_>) + Send + Sync + 'static,
    {
        self.inner.hooks.set_metric(callback);
        self.inner.nodes.hook(&self.inner.hooks);
    }

    /// Pings the primary.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.inner.nodes.ping(self.inner.routing.primary_index()).await
    }

    /// Closes every node's pool.
    pub async fn close(self) -> Result<(), DbErr> {
        self.close_by_ref().await
    }

    /// Closes every node's pool, by reference.
    pub async fn close_by_ref(&self) -> Result<(), DbErr> {
        self.inner.nodes.close().await
    }

    /// SeaORM's schema builder for this backend.
    pub fn get_schema_builder(&self) -> sea_orm::SchemaBuilder {
        self.inner.with_primary(|n| n.writer().get_schema_builder())
    }

    // Fencing a node by hand.

    /// Fences the node named `name` (`host:port/db`, as in [`stats`](RoutedConnection::stats)):
    /// no statement is routed to it and its claim to the primary role is ignored until
    /// [`unfence`](RoutedConnection::unfence). Automatic failover fences the old primary itself.
    /// Fencing is routing only: the server keeps running and other clients may still write to
    /// it.
    pub fn fence(&self, name: &str) -> crate::error::Result<()> {
        let node = self.node_named(name)?;
        self.inner.routing.set_fenced(node, true);
        tracing::warn!(target: "rwsplit", node = %name, "fenced by the application");
        Ok(())
    }

    /// Lifts a fence: the node is routed to again as its probes report it. Do this only once it
    /// cannot claim the primary role any more (demoted and following the new primary, or
    /// rebuilt); a second primary makes the router refuse writes.
    pub fn unfence(&self, name: &str) -> crate::error::Result<()> {
        let node = self.node_named(name)?;
        self.inner.routing.set_fenced(node, false);
        tracing::warn!(target: "rwsplit", node = %name, "unfenced by the application");
        Ok(())
    }

    fn node_named(&self, name: &str) -> crate::error::Result<rwsplit_core::NodeId> {
        let nodes = self.inner.nodes.names();
        nodes.iter().find(|(_, n)| n == name).map(|(i, _)| *i).ok_or_else(|| {
            crate::error::Error::UnknownNode {
                name: crate::connection::session::snippet(name),
                known: nodes.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>().join(", "),
            }
        })
    }
}
