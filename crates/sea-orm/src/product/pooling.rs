//! [`Pooling`]: how a replica's sessions are made read-only, by what stands between the
//! application and the server. The reasoning and costs are on [`Pooling`] itself (and in
//! docs/ARCHITECTURE.md, *PgBouncer*); each product's SQL and driver hooks for it are in its
//! own module ([`super::Product::make_read_only`]).

use sea_orm::{ConnectOptions, DbBackend};

/// How a replica's sessions are made read-only, by what stands between the application and the
/// server: nothing, a session-pooling proxy or a transaction-pooling proxy (PgBouncer, pgcat,
/// Odyssey, ProxySQL with multiplexing).
///
/// A replica's sessions are read-only so that a statement the classifier wrongly judged a read
/// fails loudly (PostgreSQL 25006, MySQL 1290/1792) instead of writing to a node whose
/// `read_only` is off: a logical replica, a promoted standby the monitor has not caught up
/// with yet, a pooler in front of the primary. Hot standbys refuse writes anyway; this is the
/// guard for everything else.
///
/// # The three ways, and why
///
/// - [`Pooling::Direct`] (the default). PostgreSQL: the startup parameter
///   `options=-c default_transaction_read_only=on`, which costs nothing per connection or
///   statement. MySQL/MariaDB: `SET SESSION TRANSACTION READ ONLY` once per new connection.
///   PgBouncer 1.18 refuses the `options` parameter (`FATAL: unsupported startup parameter:
///   options`), and with `ignore_startup_parameters = options` it drops it, leaving the session
///   writable: do not use this mode behind PgBouncer.
/// - [`Pooling::Session`]: session pooling (PgBouncer `pool_mode = session`). Each new connection
///   runs `SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY` (MySQL: `SET SESSION
///   TRANSACTION READ ONLY`): one round trip per connection, none per statement. The server
///   connection is the client's for as long as the client stays connected, and PgBouncer's
///   `server_reset_query` (`DISCARD ALL`) resets it only when the client leaves, when this pool
///   has no use for it any more.
/// - [`Pooling::Transaction`]: transaction pooling (PgBouncer `pool_mode = transaction`). A
///   server connection belongs to a client only for one transaction, so a session `SET` would
///   land on whichever server connection ran it — leaking to other clients, or reset — and the
///   next statement could run on another, writable one. Every use of a pooled connection is
///   therefore one read-only transaction: `BEGIN READ ONLY` (MySQL `START TRANSACTION READ
///   ONLY`) when the pool hands the connection out, the statements it prepared deallocated and
///   `COMMIT` when it takes it back (sqlx's `after_connect`/`before_acquire` and `after_release` hooks),
///   each one simple-protocol round trip. The statement, however many round trips it takes,
///   runs inside that transaction on one server connection. On the caller's path this adds the
///   `BEGIN` round trip, which replaces sqlx's ping before each use (`test_before_acquire` is
///   off for these pools: a connection that fails its `BEGIN` is closed and another one used);
///   the `COMMIT` runs after the connection is handed back, in sqlx's release task. Measured in
///   `docs/ARCHITECTURE.md`, *PgBouncer*. The monitor's connection to a PostgreSQL node so
///   pooled is not framed: it sends each statement alone in the simple protocol, one round
///   trip and a transaction of its own, nothing prepared.
///
///   Prepared statements: the pools of such a node (reads, the writable pool used after a
///   promotion; on MySQL/MariaDB the monitor's, which is framed the same way but read-write)
///   get `statement_cache_capacity(0)`, since a statement cached by
///   the client would be missing on the next transaction's server connection. That alone is
///   not enough with sqlx 0.9: it still *names* every statement it prepares (`sqlx_s_<n>`,
///   counted per client connection; only queries marked non-persistent, which SeaORM never
///   sends, use the unnamed statement) and never closes the uncached ones, so a second client's
///   `sqlx_s_1` on the same server connection fails with "prepared statement already exists".
///   So the end of each use deallocates the statements named `sqlx_s_…` that were prepared
///   since its `BEGIN` — its own, on the server connection that was its own meanwhile — and
///   nothing else: another client's statements there are not touched (no `DEALLOCATE ALL`).
///   A statement another sqlx client left there under the same name makes ours fail with
///   "already exists" (the caller gets the server's error: it is not retried).
///
///   Read-only transactions (`begin_with_config`): on PostgreSQL one routed to such a replica
///   runs inside the frame as a savepoint (its `COMMIT` releases the savepoint; the frame's
///   end still deallocates what it prepared). A savepoint keeps the frame's isolation level,
///   so one asking for another level than read committed runs on the primary, as does every
///   read-only transaction on MySQL/MariaDB (which refuse `SET TRANSACTION` inside the
///   frame), while any replica is behind transaction pooling. PgBouncer
///   1.21 and later track named statements themselves with `max_prepared_statements` (renamed
///   `PGBOUNCER_…`, left to it); read-only enforcement still needs the transaction there.
///
/// Streams and read-your-writes catch-up waits run on the same pool, so they are covered too. The replica's
/// writable pool, used only if it is promoted, is not framed (a write must commit before its
/// caller hears of it): like a primary, a promoted replica behind PgBouncer 1.18's transaction
/// pooling is not usable with sqlx, whose named statements collide there. A custom
/// `before_acquire`/`after_release` hook set on a [`Pooling::Transaction`] replica's
/// `ConnectOptions` is replaced.
///
/// # Example
///
/// ```
/// use rwsplit_sea_orm::{Pooling, Replica};
/// // A replica behind PgBouncer in transaction pooling mode.
/// let replica = Replica::new("postgres://app@pgbouncer-replica-1:6432/app").pooling(Pooling::Transaction);
/// # drop(replica);
/// assert_eq!("transaction".parse::<Pooling>(), Ok(Pooling::Transaction));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Pooling {
    /// The server itself, or a proxy that forwards startup parameters: read-only by a startup
    /// parameter (PostgreSQL) or a `SET` on each new connection (MySQL). Free per statement.
    #[default]
    Direct,
    /// A session-pooling proxy (PgBouncer `pool_mode = session`): a `SET SESSION
    /// CHARACTERISTICS AS TRANSACTION READ ONLY` on each new connection.
    Session,
    /// A transaction-pooling proxy (PgBouncer `pool_mode = transaction`): every statement in a
    /// `BEGIN READ ONLY … COMMIT` (one round trip more on the caller's path, the `COMMIT` after
    /// release); no client-side statement cache.
    Transaction,
}

impl Pooling {
    /// The name used in configuration: `direct`, `session`, `transaction`.
    pub fn as_str(self) -> &'static str {
        match self {
            Pooling::Direct => "direct",
            Pooling::Session => "session",
            Pooling::Transaction => "transaction",
        }
    }
}

impl Pooling {
    /// Makes every session of a pool built from `options` read-only, the way this pooling mode
    /// allows, and turns off the client-side statement cache in [`Pooling::Transaction`]:
    /// what the builder does to each replica's read pool, for pools you build yourself (for
    /// [`RoutedConnection::from_connections`](crate::RoutedConnection::from_connections)).
    /// It replaces the sqlx hooks this mode uses (see [`Pooling`]).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), sea_orm::DbErr> {
    /// use rwsplit_sea_orm::Pooling;
    /// use sea_orm::{ConnectOptions, Database, DbBackend};
    ///
    /// let mut opts = ConnectOptions::new("postgres://app@pgbouncer-replica-1:6432/app");
    /// Pooling::Transaction.make_read_only(&mut opts, DbBackend::Postgres);
    /// let replica = Database::connect(opts).await?;
    /// # drop(replica);
    /// # Ok(()) }
    /// ```
    pub fn make_read_only(self, options: &mut ConnectOptions, backend: DbBackend) {
        // How, is the product's (the SQL and the driver's hooks). A pool given as it is: its
        // product by its backend.
        let product = super::Product::of(backend);
        product.prepare_options(options, self);
        // Whether the server has `client_connection_check_interval` is not known here (nobody
        // asked it): not set.
        product.make_read_only(options, self, false);
    }
}

impl std::fmt::Display for Pooling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pooling mode that is none of `direct`, `session`, `transaction`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown pooling mode `{0}` (expected direct, session or transaction)")]
pub struct UnknownPooling(String);

impl std::str::FromStr for Pooling {
    type Err = UnknownPooling;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "direct" | "none" => Ok(Pooling::Direct),
            "session" => Ok(Pooling::Session),
            "transaction" => Ok(Pooling::Transaction),
            _ => Err(UnknownPooling(s.chars().take(40).collect())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case("direct", Some(Pooling::Direct))]
    #[case("none", Some(Pooling::Direct))]
    #[case(" Session ", Some(Pooling::Session))]
    #[case("TRANSACTION", Some(Pooling::Transaction))]
    #[case("statement", None)]
    #[case("", None)]
    fn pooling_modes_parse(#[case] text: &str, #[case] expected: Option<Pooling>) {
        assert_eq!(text.parse::<Pooling>().ok(), expected);
        if let Some(p) = expected {
            assert_eq!(p.as_str().parse::<Pooling>(), Ok(p));
        }
    }
}
