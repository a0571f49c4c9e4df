//! The seam between the monitor and each database product: one implementation of [`Product`]
//! per product, the way sqlx has one driver per database. Everything that differs between
//! PostgreSQL and MariaDB — the probe's SQL and how its answer is read, the cheap position feed,
//! and the failover steps (how far a replica has received, promoting it, re-pointing another
//! replica at it) — lives behind this trait, and nothing outside this module names a product's
//! SQL. The monitor is generic over it: [`Flavor`](crate::Flavor), core's list of products, is
//! matched in one place, `with_product!`, which the monitor's start and a one-off probe call.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use rwsplit_core::{Lag, ReplayPosition};

use crate::probe::{Flavor, Observation, ProbeConn, ProbeError};

mod mariadb;
mod postgres;

/// The SQL the adapter (`rwsplit-sea-orm`) runs on the application's own connections, kept
/// here, next to the probe's, so that each product's SQL has one home and shared expressions
/// are written once. Each statement returns one row; its columns are named in its docs.
pub mod sql {
    /// PostgreSQL.
    pub mod postgres {
        /// What the server is: `num` (`server_version_num`, e.g. `150008`) and `version`
        /// (`version()`, e.g. `PostgreSQL 15.8 (Debian 15.8-0+deb12u1) on x86_64-pc-linux-gnu…`).
        pub const VERSION: &str = "SELECT current_setting('server_version_num') AS num, \
            version() AS version";

        /// The cluster's system identifier, `system_id` (it reads the control file).
        pub const SYSTEM_ID: &str =
            "SELECT system_identifier::text AS system_id FROM pg_control_system()";

        /// A primary's WAL insert position, `lsn` (the end of every record inserted so far, so
        /// at or past the commit record of any committed write, with `synchronous_commit` off
        /// too), and the `timeline` it is on (the probe's expression).
        pub const CAPTURE: &str = concat!(
            "SELECT pg_current_wal_insert_lsn()::text AS lsn, (",
            super::super::postgres::timeline_of!("pg_current_wal_insert_lsn()"),
            ")::text AS timeline"
        );

        /// How far a standby has replayed, `lsn` (NULL on a primary).
        pub const REPLAYED: &str = "SELECT pg_last_wal_replay_lsn()::text AS lsn";

        /// Waits in the standby until it has replayed an LSN (the first parameter, as text),
        /// looking again every tenth of a millisecond for at most as many seconds as the second
        /// parameter says (a `float8`, from the statement's arrival), then returns how far it
        /// has replayed after waiting, `lsn` (NULL on a primary: not a standby, and then it does
        /// not wait), and how many looks it took, `looks`. PostgreSQL up to 18 has no `WAIT FOR
        /// LSN`; this is one round trip whose waiting is the server's (`pg_sleep` between
        /// looks), so a read that follows a write waits for the replica's replay, typically a
        /// fraction of a millisecond on a local network, rather than for the monitor's next
        /// sample. The `CASE` orders the look before the sleep; the bound is the server's clock,
        /// not a count of looks, since a sleep this short overshoots by the kernel's timer slack.
        pub const WAIT_REPLAYED: &str = "WITH RECURSIVE w(i) AS (SELECT 0 UNION ALL \
            SELECT i + 1 FROM w WHERE clock_timestamp() < statement_timestamp() \
            + make_interval(secs => $2::float8) AND CASE WHEN coalesce(pg_last_wal_replay_lsn() \
            >= $1::text::pg_lsn, true) THEN false ELSE pg_sleep(0.0001)::text = '' END) \
            SELECT pg_last_wal_replay_lsn()::text AS lsn, looks FROM (SELECT max(i) AS looks \
            FROM w) AS waited";
    }

    /// MariaDB.
    pub mod mariadb {
        /// What the server is: `version` (`VERSION()`, e.g. `10.11.6-MariaDB-0+deb12u1`) and
        /// `comment` (`@@version_comment`, e.g. `Debian 12`, or `MySQL Community Server - GPL`
        /// on MySQL).
        pub const VERSION: &str = "SELECT VERSION() AS version, @@version_comment AS comment";

        /// Every GTID the server has written, in every domain, `pos`. `@@last_gtid` would be
        /// the session's own write, but a pool gives no guarantee the next statement runs on
        /// the same session; the global position is at or past it.
        pub const CAPTURE: &str = "SELECT @@global.gtid_binlog_pos AS pos";

        /// Waits in the server until it has applied a GTID position (the first parameter) for
        /// at most a number of seconds (the second): `waited` is 0 once applied, -1 on timeout.
        pub const WAIT: &str = "SELECT MASTER_GTID_WAIT(?, ?) AS waited";
    }
}

pub(crate) use mariadb::MariaDb;
pub(crate) use postgres::Postgres;

/// Evaluates `$body` with `$P` the [`Product`] implementation of `$flavor`: the one place the
/// monitor lists its per-product modules, one arm per product of core's list
/// ([`rwsplit_core::Product`]), which the compiler keeps complete.
macro_rules! with_product {
    ($flavor:expr, $P:ident => $body:expr) => {
        match $flavor {
            rwsplit_core::Product::Postgres => {
                type $P = $crate::product::Postgres;
                $body
            }
            rwsplit_core::Product::MariaDb => {
                type $P = $crate::product::MariaDb;
                $body
            }
        }
    };
}
pub(crate) use with_product;

/// What a distance between two positions of one history counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LagUnit {
    /// Bytes of WAL (PostgreSQL).
    Bytes,
    /// Transactions, by GTID sequence numbers (MariaDB).
    Transactions,
}

/// What one database product says and does, in SQL, over a [`ProbeConn`].
pub(crate) trait Product: Send + Sync + Copy + Default + Debug + 'static {
    /// How far a failover candidate has received, comparable across the candidates of one
    /// cluster (more is further).
    type Received: Ord + Debug + Send + Sync;

    /// What [`behind`](Product::behind) counts.
    const UNIT: LagUnit;

    /// What a [detached](Product::detach) replica keeps for its re-pointing.
    type Detached: Debug + Send + Sync;

    /// What a node's probes remember between one probe and the next on the same connection
    /// (a new connection starts from `Default`): facts that change only by an operator's act,
    /// which a probe then need not read again until something says they may have changed.
    type Memo: Default + Debug + Send + Sync + 'static;

    /// One full probe: role, position, what the node knows of its own delay. `started` is when
    /// the probe began (for its latency).
    fn probe<C: ProbeConn>(
        conn: &C,
        memo: &mut Self::Memo,
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

    /// The replica's lag behind the primary, from two observations of this product (each
    /// with a position of this product; else unknown).
    fn lag(primary: &Observation, replica: &Observation) -> Lag;

    /// Whether a replica still receives from its primary right now (PostgreSQL: its WAL
    /// receiver is streaming; MariaDB: its IO thread runs). Failover asks this before promoting:
    /// a primary that its replicas still hear is alive, only unreachable from here.
    ///
    /// # Errors
    ///
    /// [`ProbeError::Unexpected`] when the server does not say (PostgreSQL shows the WAL
    /// receiver's status only to `pg_read_all_stats`): unknown is not "not receiving".
    fn receiving<C: ProbeConn>(conn: &C) -> impl Future<Output = Result<bool, ProbeError>> + Send;

    /// How far a replica has received (perhaps not yet applied), for choosing whom to promote;
    /// `None` when the node is not a replica (already promoted, by another process or by hand).
    fn received<C: ProbeConn>(
        conn: &C,
    ) -> impl Future<Output = Result<Option<Self::Received>, ProbeError>> + Send;

    /// Whether `other` has received more than `than` (what it applied aside: a replica still
    /// applying what it had received has not received more).
    fn received_more(other: &Self::Received, than: &Self::Received) -> bool;

    /// How far `received` is behind `primary`, a position the primary was seen at, in the
    /// history's own unit (WAL bytes; transactions for GTIDs); `None` when the two are on
    /// different histories (another timeline or server) and cannot be compared.
    fn behind(primary: &ReplayPosition, received: &Self::Received) -> Option<u64>;

    /// Takes the failover lock on this server for this session, without waiting: `true` if
    /// this session holds it now (PostgreSQL `pg_try_advisory_lock`, which a hot standby grants
    /// too; MariaDB `GET_LOCK` with no wait, on a replica too). It is the session's: it goes with
    /// the connection or a restart of the server.
    fn try_lock<C: ProbeConn>(conn: &C) -> impl Future<Output = Result<bool, ProbeError>> + Send;

    /// Whether this session still holds the failover lock (a restart of the server, or a
    /// connection the server ended, would have released it).
    fn holds_lock<C: ProbeConn>(conn: &C) -> impl Future<Output = Result<bool, ProbeError>> + Send;

    /// Releases the failover lock this session holds.
    fn unlock<C: ProbeConn>(conn: &C) -> impl Future<Output = Result<(), ProbeError>> + Send;

    /// Makes the chosen replica apply everything it has received, before any step that cannot
    /// be undone, and returns once it has: `Ok(false)` when it could not within `within` (or its
    /// replay is stopped), after undoing what this step changed, so the failover is abandoned
    /// with nothing changed on the server. MariaDB stops its IO thread first (nothing more
    /// arrives), then `MASTER_GTID_WAIT`s for the IO thread's position; PostgreSQL waits until
    /// replay has reached what was received.
    fn apply_received<C: ProbeConn>(
        conn: &C,
        within: Duration,
    ) -> impl Future<Output = Result<bool, ProbeError>> + Send;

    /// Undoes what [`apply_received`](Product::apply_received) changed when the failover is
    /// abandoned after it (MariaDB restarts the IO thread it stopped).
    fn resume_receiving<C: ProbeConn>(
        conn: &C,
    ) -> impl Future<Output = Result<(), ProbeError>> + Send;

    /// Sends the promotion, the step that cannot be undone (PostgreSQL `pg_promote`, MariaDB
    /// `STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0`), and returns once the node
    /// accepts writes or `within` has passed (`Ok(false)`: sent, not finished yet; the server
    /// may still finish it).
    fn promote<C: ProbeConn>(
        conn: &C,
        within: Duration,
    ) -> impl Future<Output = Result<bool, ProbeError>> + Send;

    /// Makes a deposed primary refuse writes where SQL can (MariaDB `SET GLOBAL read_only = 1`):
    /// `Ok(false)` where it cannot (PostgreSQL: any client can `SET` its way past
    /// `default_transaction_read_only`, so rwsplit does not pretend).
    fn make_read_only<C: ProbeConn>(
        conn: &C,
    ) -> impl Future<Output = Result<bool, ProbeError>> + Send;

    /// Stops a replica that is not promoted from receiving from the lost primary, just before
    /// the promotion: a primary that thaws would otherwise send it what the promoted one never
    /// gets, and it could not follow the new primary (PostgreSQL: `primary_conninfo` emptied,
    /// MariaDB: `STOP SLAVE IO_THREAD`). Returns what re-pointing it needs later.
    fn detach<C: ProbeConn>(
        replica: &C,
    ) -> impl Future<Output = Result<Self::Detached, ProbeError>> + Send;

    /// Undoes [`detach`](Product::detach) when the failover is abandoned before the promotion.
    fn reattach<C: ProbeConn>(
        replica: &C,
        detached: &Self::Detached,
    ) -> impl Future<Output = Result<(), ProbeError>> + Send;

    /// Re-points a [detached](Product::detach) `replica` at the new primary, reachable at
    /// `host:port` (and through `new_primary` for anything that must be prepared there first).
    fn repoint<C: ProbeConn>(
        replica: &C,
        detached: &Self::Detached,
        new_primary: &C,
        host: &str,
        port: u16,
    ) -> impl Future<Output = Result<(), ProbeError>> + Send;
}

/// Probes `conn` once, under `timeout` for the whole probe.
pub async fn probe<C: ProbeConn>(
    conn: &C,
    flavor: Flavor,
    timeout: Duration,
) -> Result<Observation, ProbeError> {
    with_product!(flavor, P => probe_as::<P, C>(conn, timeout).await)
}

/// The replica's lag behind the primary, positions first: each product's own measure
/// (PostgreSQL: WAL bytes, and the time since the last replayed commit while something waits;
/// MariaDB: no byte measure, and `Seconds_Behind_Master` until every GTID is applied); unknown
/// when either has no position or they are of different products.
pub fn lag(primary: &Observation, replica: &Observation) -> Lag {
    match (primary.position(), replica.position()) {
        (Some(p), Some(r)) if p.token_kind() == r.token_kind() => {
            with_product!(p.token_kind(), P => P::lag(primary, replica))
        }
        _ => Lag::unknown(),
    }
}

/// [`probe`] for one product, remembering nothing (a one-off probe).
pub(crate) async fn probe_as<P: Product, C: ProbeConn>(
    conn: &C,
    timeout: Duration,
) -> Result<Observation, ProbeError> {
    probe_with::<P, C>(conn, &mut P::Memo::default(), timeout).await
}

/// [`probe`] for one product on a connection whose probes remember `memo` (see
/// [`Product::Memo`]).
pub(crate) async fn probe_with<P: Product, C: ProbeConn>(
    conn: &C,
    memo: &mut P::Memo,
    timeout: Duration,
) -> Result<Observation, ProbeError> {
    let started = tokio::time::Instant::now();
    match tokio::time::timeout(timeout, P::probe(conn, memo, started)).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::Timeout { after: timeout }),
    }
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
