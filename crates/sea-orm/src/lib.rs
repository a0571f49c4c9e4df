//! `RoutedConnection`: a drop-in read/write-splitting replacement for SeaORM's
//! `DatabaseConnection`.
//!
//! Swap the type and keep your code: entity reads go to healthy replicas; writes, locking reads
//! and transactions go to the primary; a read after your own write goes only where that write
//! has been replayed (SeaORM re-reads inserted rows on MySQL through the same handle, so this
//! matters even inside SeaORM).
//!
//! ```no_run
//! use rwsplit_sea_orm::RoutedConnection;
//! use sea_orm::{ConnectionTrait, Statement};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let db = RoutedConnection::builder()
//!     .primary("postgres://app@primary/app")
//!     .replica("postgres://app@replica-1/app")
//!     .connect()
//!     .await?;
//! // A read: served by the replica.
//! db.query_one_raw(Statement::from_string(db.get_database_backend(), "SELECT 1")).await?;
//! // Migrations and code typed to `&DatabaseConnection` use the primary explicitly.
//! let _primary: &sea_orm::DatabaseConnection = db.primary();
//! # Ok(()) }
//! ```
//!
//! # Routing
//!
//! Every statement's SQL is classified by `rwsplit-core` (a single-pass lexer: comments,
//! strings, CTEs, locking clauses, side-effecting functions); anything it cannot prove to be a
//! read is a write. The method a statement arrives through is not trusted: SeaORM sends
//! `INSERT … RETURNING` through `query_one`. `execute*` always runs on the primary, as do
//! `begin` and `transaction`; `begin_with_config(_, Some(AccessMode::ReadOnly))` may run on a
//! replica (except SERIALIZABLE on PostgreSQL). Explicit control: [`RoutedConnection::primary`]
//! and [`RoutedConnection::replica`] hand out one node's connection, [`RoutedConnection::scope`]
//! pins a block of calls, and `/*rwsplit:primary*/` or `/*rwsplit:replica*/` comments pin one
//! statement.
//!
//! # Read-your-writes
//!
//! After each write the primary's position is read (PostgreSQL: WAL insert LSN, timeline and
//! system identifier; MariaDB: `gtid_binlog_pos`) — one round trip per write; SeaORM's drivers
//! expose no way to have it ride on the write's own reply — and kept as a
//! [`CausalToken`](advanced::CausalToken) in the writer's scope: its tokio task automatically, or a [`Session`]
//! (`db.session()`) that crosses tasks and exports its token as text for another process. A
//! later read in that scope goes to a replica the monitor has seen replay the token; if none
//! has, it waits up to a bound on the closest one when asked
//! ([`RoutedConnection::wait_for_replica`]), else reads from the primary. A token from another
//! history (a failover) is never satisfied by a replica. [`RoutedConnection::consistent`] sets
//! a call's level (`Strong`, `BoundedStaleness`, `Eventual`); the builder sets the default.
//!
//! # Replicas are read-only by construction
//!
//! Replica pools built by [`RoutedConnectionBuilder`] set every session read-only, so a
//! misrouted write fails loudly instead of diverging a replica whose `read_only` is off. How
//! depends on what stands in front of the replica ([`Pooling`], per [`Replica`]): directly,
//! PostgreSQL's `default_transaction_read_only` as a startup parameter (free) and MySQL's `SET
//! SESSION TRANSACTION READ ONLY` per connection; behind PgBouncer in session pooling, `SET
//! SESSION CHARACTERISTICS AS TRANSACTION READ ONLY` per connection; in transaction pooling,
//! every statement inside `BEGIN READ ONLY … COMMIT` (two round trips more per read). PgBouncer
//! refuses the startup parameter, so a replica behind it must be declared with its pool mode.
//!
//! # Configuration
//!
//! The builder in code; [`RoutedConfig`] from serde (TOML, YAML, JSON; the `config` crate,
//! figment), checked field by field with errors that name the field and node; or
//! [`RoutedConnection::from_env`] from `DATABASE_*` and `RWSPLIT_*` variables (an unknown
//! `RWSPLIT_*` name is an error naming the nearest one it reads). Each can name a topology
//! source ([`config::TopologyConfig`]: a Patroni cluster or a DNS name) that adds and removes
//! nodes at run time. A setting that does nothing with another (a catch-up wait with
//! `Consistency::Strong`, a replication address without automatic failover …) is logged at
//! `warn` by `connect()`, naming both.
//!
//! This page shows the everyday API. The sections of a configuration file are in [`config`];
//! balancers, routing rules, the monitor, health, topology sources and automatic failover are
//! in [`advanced`].
//!
//! # Session state
//!
//! A pool hands each statement whichever connection is free, so session state already behaves
//! per connection with plain SeaORM; routing keeps it on the primary and does no worse:
//! - **`SET`**, **`LISTEN`** and other statements through `execute*` run on the primary, on one
//!   pooled connection, and never reach a replica's sessions. Settings every connection needs
//!   belong in the node's `ConnectOptions`; work that needs one session belongs in a
//!   transaction (one connection, on the primary).
//! - **Temporary tables** are created on the primary. A read of one is a plain `SELECT`, so it
//!   is tried on a replica first; the replica answers "no such table" (PostgreSQL 42P01, MySQL
//!   1146) and the read moves on to the primary, where it finds the table if the pool hands it
//!   the connection that created it — as with plain SeaORM: use a transaction or a
//!   one-connection pool. A table that exists nowhere still fails with the database's error,
//!   unchanged.
//! - **Session advisory locks** (`pg_advisory_lock`, `GET_LOCK`) are writes to the classifier:
//!   they go to the primary, on one pooled connection; unlock on the same connection by taking
//!   and releasing the lock in one transaction (or `pg_advisory_xact_lock`).
//! - Writes made through [`RoutedConnection::primary`], `DatabaseExecutor::from(&db)` or the
//!   primary's pool accessors are unseen by the router: the caller's read-your-writes scope then
//!   asks the primary for its position before its next read.
//!
//! # Failures
//!
//! A read that cannot reach its replica, that waits on a replica the monitor then marks down
//! (a hung server keeps its port open), that the replica does not answer within
//! [`replica_read_timeout`](RoutedConnectionBuilder::replica_read_timeout) (if set), or that a
//! standby cancels in a recovery conflict, is retried on the next candidate, the primary last, at
//! most [`read_retries`](RoutedConnectionBuilder::read_retries) times and only while the caller's
//! [deadline](RoutedConnection::deadline) leaves time; the node is marked down after repeated
//! failures and probed again after a back-off. Writes and statements inside transactions are
//! never retried. A node's failure reaches the caller as `DbErr::Conn` naming the node (a
//! [`RoutingError`], below); the database's own errors (constraints, syntax) reach it unchanged. Pools wait at most
//! [`acquire_timeout`](RoutedConnectionBuilder::acquire_timeout) for a connection (by default
//! 30 s where a pool writes, as plain SeaORM's, and 5 s on a replica's read-only pool);
//! a pool with none free in time is the application's own back-pressure: a read moves on to the
//! next candidate, a write fails saying so (it was not sent), the node's
//! [`pool_timeouts`](NodeStats::pool_timeouts) counts it, and the node's health does not change
//! (the monitor judges health on connections of its own).
//!
//! A statement classified as a read that a replica refuses because it writes (a user function
//! or view that writes, which its text cannot show: PostgreSQL 25006 and the recovery refusals,
//! MySQL/MariaDB 1290/1792) did nothing durable there. By default it runs once on the primary
//! as a write and returns that result, and its shape is learned, so later statements of that
//! shape go to the primary directly; [`OnReplicaRefusal::Fail`] makes it an error naming the
//! statement instead (for functions with effects outside the database). Each refusal is
//! counted ([`Stats::replica_refusals`]) and each new shape logged once at `warn` (target
//! `rwsplit`).
//!
//! The adapter's own failures are typed: a [`RoutingError`] (write not sent, write outcome
//! unknown, node down, back-pressure, timed out, replica refused, no primary, split brain …)
//! travels inside the `DbErr` (`DbErr::Conn` for node failures, `DbErr::Query` for a
//! replica's refusal, `DbErr::Exec` reading "error with configuration" for the router's
//! decisions where nothing was sent and no node failed: no primary, a split brain …), and
//! [`routing_error`] gets it back, so callers branch on a type rather than on text:
//!
//! ```no_run
//! use rwsplit_sea_orm::{RoutedConnection, RoutingError, routing_error};
//! use sea_orm::{ConnectionTrait, DbErr, Statement};
//!
//! # async fn demo(db: RoutedConnection) -> Result<(), DbErr> {
//! let insert = Statement::from_string(db.get_database_backend(), "INSERT INTO t VALUES (1)");
//! match db.execute_raw(insert).await {
//!     Ok(_) => {}
//!     Err(e) => match routing_error(&e) {
//!         // Sent, then the primary failed: check whether it committed before writing again.
//!         Some(r) if r.outcome_unknown() => return Err(e),
//!         // Not applied (not sent, back-pressure, failover under way): try again later.
//!         Some(r) if r.is_retryable() => return Err(e),
//!         // Only with `OnReplicaRefusal::Fail`, or a replica asked for on purpose.
//!         Some(RoutingError::ReplicaRefused { statement, sqlstate, .. }) => {
//!             eprintln!("a replica refused {statement:?}, SQLSTATE {sqlstate:?}");
//!             return Err(e);
//!         }
//!         // The database's own error (constraint, syntax …), unchanged.
//!         _ => return Err(e),
//!     },
//! }
//! # Ok(()) }
//! ```
//!
//! # Supported servers
//!
//! PostgreSQL 13 or later (tested: 15, 16, 18) and MariaDB 10.5 or later (tested: 10.11), through
//! `postgres://` and `mysql://` URLs. [`connect`](RoutedConnectionBuilder::connect) asks every
//! node what it runs and refuses MySQL, older versions and other products with
//! [`Error::UnsupportedServer`]; versions CI does not run are used with a warning.
//! [`RoutedConnection::server`] and [`NodeStats::server`] show what was found.
//!
//! # URLs and secrets
//!
//! Every URL is checked before any connection is made: a URL that does not parse (a bad port,
//! an unencoded `#`, `/` or `?` in a password) or whose scheme no driver of this build connects
//! (`mariadb://`: write `mysql://`) is [`Error::InvalidUrl`], naming the node and the reason.
//! Stats, logs, errors and `Debug` name nodes `host:port/db` or
//! `scheme://***@host:port/db?…`, never with a password. Passwords may hold `@`, `:` and `,`
//! as they are; `#`, `/`, `?` and `%` must be percent-encoded (`%23`, `%2F`, `%3F`, `%25`).
//!
//! Without a reachable primary, reads go on from the replicas and writes fail at once with an
//! error saying the primary is unreachable; when it returns, or a replica is promoted by an
//! operator or HA manager, writes follow within about one probe interval, without a restart.
//! [`AutoFailover`](advanced::AutoFailover) (off by default) promotes the most advanced replica itself and fences the
//! old primary ([`RoutedConnection::unfence`]); read its risks first.
//!
//! A replica unreachable at start is left out of rotation with a warning; an unreachable primary
//! is an error.
//!
//! # SeaORM's hooks
//!
//! [`RoutedConnection::set_metric_callback`] takes SeaORM's callback (same signature) and calls
//! it once for each statement the router runs for you — reads wherever they ran, writes,
//! streams, transactions' statements — with SeaORM's `Info`; never for the adapter's own
//! statements (position reads, catch-up waits, server checks). SeaORM's `debug-print` and
//! `tracing-spans` features cover the statements the adapter sends itself — writes, and reads
//! on pools it made, which go straight to the sqlx pool while nothing listens — only when
//! turned on through this crate's features of the same names, which forward to SeaORM's (a
//! crate cannot see another's features).
//!
//! # Layering
//!
//! This crate is where rwsplit meets SeaORM: `rwsplit-core` and `rwsplit-monitor` never name
//! it (the tidy test keeps SeaORM out of both), and `rwsplit-axum`, built on this crate, names
//! only its `DbBackend` (and `MockDatabase` in examples and tests). It depends on `rwsplit-core` for every decision and on
//! `rwsplit-monitor` for health: the monitor probes every node on connections of
//! its own (never the application's pools) and publishes the topology this crate routes by.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings), allow(dead_code))))]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout))]

// A router without a driver has nothing to route to: say so, instead of the type errors a build
// without either driver ends in.
#[cfg(not(any(feature = "postgres", feature = "mysql")))]
compile_error!(
    "rwsplit-sea-orm needs a database driver: enable its `postgres` or `mysql` feature \
     (both are on by default)"
);

pub mod advanced;
mod cluster;
pub mod config;
mod connection;
mod consistency;
mod error;
mod hedge;
mod nodes;
mod observe;
mod product;
mod retry;
mod routing;
mod routing_error;
mod send;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_hardening;
#[cfg(test)]
mod tests_redaction;

pub use config::RoutedConfig;
pub use config::builder::RoutedConnectionBuilder;
pub use connection::RoutedConnection;
pub use connection::session::{Routed, Session};
pub use connection::stats::{Hedges, NodeStats, ReadYourWrites, Stats};
pub use connection::stream::RoutedStream;
pub use consistency::{SessionToken, SessionTokenError};
pub use error::{Error, Result, adapter_error};
pub use nodes::replica::Replica;
pub use observe::telemetry;
pub use product::{Pooling, Server, ServerProduct, UnknownPooling};
pub use routing_error::{
    DownReason, NodeOut, NotSentReason, OutReason, RoutingError, TimeLimit, UnknownReason,
    routing_error,
};
pub use rwsplit_core::{Consistency, Staleness, Target};
pub use send::refusal::OnReplicaRefusal;
