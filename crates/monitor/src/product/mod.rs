//! The seam between the monitor and each database product: one implementation of [`Product`]
//! per product, the way sqlx has one driver per database. Everything that differs between
//! PostgreSQL and MariaDB — the probe's SQL and how its answer is read, the cheap position feed,
//! and the failover steps (how far a replica has received, promoting it, re-pointing another
//! replica at it) — lives behind this trait, and nothing outside this module names a product's
//! SQL. The monitor is generic over it: [`Flavor`](crate::Flavor) is matched once, exhaustively,
//! where the monitor starts.

use std::fmt::Debug;
use std::future::Future;

use rwsplit_core::ReplayPosition;

use crate::probe::{Observation, ProbeConn, ProbeError};

mod mariadb;
mod postgres;

pub(crate) use mariadb::MariaDb;
pub(crate) use postgres::Postgres;

/// What one database product says and does, in SQL, over a [`ProbeConn`].
pub(crate) trait Product: Send + Sync + Copy + Default + Debug + 'static {
    /// How far a failover candidate has received, comparable across the candidates of one
    /// cluster (more is further).
    type Received: Ord + Debug + Send + Sync;

    /// One full probe: role, position, what the node knows of its own delay. `started` is when
    /// the probe began (for its latency).
    fn probe<C: ProbeConn>(
        conn: &C,
        started: tokio::time::Instant,
    ) -> impl Future<Output = Result<Observation, ProbeError>> + Send;

    /// The position feed: a replica's replay position, or a primary's written position, in one
    /// cheap round trip, read against its latest full probe (`last`) for what the cheap query
    /// does not return (PostgreSQL's system id and timeline). `None` when the node no longer
    /// has the role `last` saw: the next full probe settles it.
    fn replay_position<C: ProbeConn>(
        conn: &C,
        last: &Observation,
    ) -> impl Future<Output = Result<Option<ReplayPosition>, ProbeError>> + Send;

    /// Whether a replica still receives from its primary right now (PostgreSQL: its WAL
    /// receiver is streaming; MariaDB: its IO thread runs). Failover asks this before promoting:
    /// a primary that its replicas still hear is alive, only unreachable from here. Unknown
    /// (no privilege to see it) is `false`.
    fn receiving<C: ProbeConn>(conn: &C) -> impl Future<Output = Result<bool, ProbeError>> + Send;

    /// How far a replica has received (perhaps not yet applied), for choosing whom to promote.
    fn received<C: ProbeConn>(
        conn: &C,
    ) -> impl Future<Output = Result<Self::Received, ProbeError>> + Send;

    /// Promotes a replica to primary, after it has applied what it received where the product
    /// needs that done by hand.
    fn promote<C: ProbeConn>(
        conn: &C,
        received: &Self::Received,
    ) -> impl Future<Output = Result<(), ProbeError>> + Send;

    /// Re-points `replica` at the new primary, reachable at `host:port` (and through
    /// `new_primary` for anything that must be prepared there first).
    fn repoint<C: ProbeConn>(
        replica: &C,
        new_primary: &C,
        host: &str,
        port: u16,
    ) -> impl Future<Output = Result<(), ProbeError>> + Send;
}

/// A value a probe could not read, named.
pub(crate) fn unexpected(what: &'static str, value: Option<&str>) -> ProbeError {
    ProbeError::Unexpected { what, value: value.unwrap_or("NULL").to_owned() }
}

/// A boolean column, in any of the spellings the products use.
pub(crate) fn flag(row: &crate::Row, name: &'static str) -> Result<bool, ProbeError> {
    match row.get(name) {
        Some("true" | "t" | "1" | "ON" | "on") => Ok(true),
        Some("false" | "f" | "0" | "OFF" | "off") => Ok(false),
        other => Err(unexpected(name, other)),
    }
}
