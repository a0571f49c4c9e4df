//! One probe of one node: what it is, how far it has got, and the lag that follows.

use std::future::Future;
use std::time::Duration;

use rwsplit_core::{Lsn, MariaDbPosition, ReplayPosition, Role};

/// Which product a node runs, which decides the SQL its probes speak: core's one list of
/// products, [`rwsplit_core::Product`], under the monitor's name for it.
pub use rwsplit_core::Product as Flavor;

/// One result row, every column as text (`None` for SQL NULL), looked up by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Row {
    columns: Vec<(String, Option<String>)>,
}

impl Row {
    /// A row from `(column name, text value)` pairs.
    pub fn new<I, N, V>(columns: I) -> Row
    where
        I: IntoIterator<Item = (N, Option<V>)>,
        N: Into<String>,
        V: Into<String>,
    {
        Row { columns: columns.into_iter().map(|(n, v)| (n.into(), v.map(Into::into))).collect() }
    }

    /// The value of column `name` (ASCII case-insensitive), `None` if NULL or absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_deref())
    }
}

/// A connection a probe can run SQL on. The adapter implements it over its own pools; tests
/// implement it with fakes.
///
/// ```
/// use rwsplit_monitor::{Flavor, ProbeConn, ProbeError, Row, probe};
///
/// /// A node that is always unreachable.
/// struct Unreachable;
///
/// impl ProbeConn for Unreachable {
///     async fn fetch_row(&self, _sql: &str) -> Result<Option<Row>, ProbeError> {
///         Err(ProbeError::unreachable("connection refused"))
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let err = probe(&Unreachable, Flavor::Postgres, std::time::Duration::from_secs(1)).await.unwrap_err();
/// assert!(!err.is_timeout());
/// assert_eq!(err.to_string(), "probe failed: connection refused");
/// # });
/// ```
pub trait ProbeConn: Send + Sync {
    /// Runs `sql` and returns its first row with every column as text, or `None` when it
    /// returns no row. Implementations decode numbers as text too (e.g. `SHOW SLAVE STATUS`).
    fn fetch_row(&self, sql: &str) -> impl Future<Output = Result<Option<Row>, ProbeError>> + Send;

    /// Runs `sql` for its effect (failover's `STOP SLAVE`, `ALTER SYSTEM …`). The default runs
    /// it through [`fetch_row`](ProbeConn::fetch_row) and drops the row.
    fn execute(&self, sql: &str) -> impl Future<Output = Result<(), ProbeError>> + Send {
        async move { self.fetch_row(sql).await.map(drop) }
    }

    /// Runs `sql`, whose one parameter is `$1` (PostgreSQL's placeholder), with `arg` as its
    /// text value, and returns its first row as [`fetch_row`](ProbeConn::fetch_row) does. The
    /// monitor's PostgreSQL probes are one text whose parameter says what a run reads, so that
    /// a connection prepares one probe statement, on its first probe, whatever later probes
    /// read (the position feed's read is a statement of its own). A driver that
    /// prepares statements binds `arg`; the default runs the text with `arg` written in as a
    /// literal ([`with_literal`]), as a driver in the simple protocol must.
    ///
    /// ```
    /// use rwsplit_monitor::{ProbeConn, ProbeError, Row};
    ///
    /// /// Answers every statement with its own text.
    /// struct Echo;
    ///
    /// impl ProbeConn for Echo {
    ///     async fn fetch_row(&self, sql: &str) -> Result<Option<Row>, ProbeError> {
    ///         Ok(Some(Row::new([("sql", Some(sql))])))
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let row = Echo.fetch_row_with("SELECT $1::text AS v", "it's").await.unwrap().unwrap();
    /// assert_eq!(row.get("sql"), Some("SELECT 'it''s'::text AS v"));
    /// # });
    /// ```
    fn fetch_row_with(
        &self,
        sql: &str,
        arg: &str,
    ) -> impl Future<Output = Result<Option<Row>, ProbeError>> + Send {
        let sql = with_literal(sql, arg);
        async move { self.fetch_row(&sql).await }
    }
}

/// `sql` with its parameter `$1` replaced by `arg` as a PostgreSQL string literal (quotes
/// doubled; standard-conforming strings): the form of a [`ProbeConn::fetch_row_with`] statement
/// for a connection that sends no parameters (the simple protocol). Every `$1` is replaced
/// (`$10` and on are not), so the text holds it nowhere else (in a string or a comment).
///
/// ```
/// use rwsplit_monitor::with_literal;
///
/// assert_eq!(with_literal("SELECT $1 = 'a', $1", "a"), "SELECT 'a' = 'a', 'a'");
/// assert_eq!(with_literal("SELECT $10, $1", "it's"), "SELECT $10, 'it''s'");
/// ```
#[must_use]
pub fn with_literal(sql: &str, arg: &str) -> String {
    let literal = format!("'{}'", arg.replace('\'', "''"));
    let mut out = String::with_capacity(sql.len() + 4 * literal.len());
    let mut rest = sql;
    while let Some(at) = rest.find("$1") {
        let (before, after) = rest.split_at(at);
        out.push_str(before);
        let after = &after[2..];
        // `$10` and on are other parameters: left as they are.
        if after.starts_with(|c: char| c.is_ascii_digit()) {
            out.push_str("$1");
        } else {
            out.push_str(&literal);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The node did not answer within the deadline (a hung server keeps accepting TCP).
    #[error("probe timed out after {after:?}")]
    Timeout {
        /// The deadline.
        after: Duration,
    },
    /// The node could not be reached or the query failed.
    #[error("probe failed: {source}")]
    Unreachable {
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Nothing accepted the connection (refused, no route): the node is not there.
    #[error("probe connection refused: {source}")]
    Refused {
        /// The connect error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The server answered and refused the connection for lack of room (PostgreSQL 53300
    /// `too_many_connections`, MariaDB/MySQL 1040 `ER_CON_COUNT_ERROR`): it is alive and
    /// busy, not failed. The probe learns nothing new of it, and its health does not change
    /// ([`TopologyState::busy_probes`](crate::TopologyState::busy_probes) counts these).
    #[error("probe connection refused by a busy server (connection limit): {source}")]
    Busy {
        /// The server's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The probe timed out, but the node answered the application's statements meanwhile
    /// (as [`TopologyState::record_success`](crate::TopologyState::record_success) noted): alive and slow
    /// (saturated), not failed. Counted like [`Busy`](ProbeError::Busy): no failure.
    #[error("probe timed out after {after:?} while the node answered statements (busy, not down)")]
    Outpaced {
        /// The probe's deadline.
        after: Duration,
    },
    /// The node answered something a probe cannot read.
    #[error("probe read an unexpected {what}: `{value}`")]
    Unexpected {
        /// Which value.
        what: &'static str,
        /// What it was.
        value: String,
    },
}

impl ProbeError {
    /// A failure to reach the node or to run the query, from any error.
    pub fn unreachable(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ProbeError {
        ProbeError::Unreachable { source: source.into() }
    }

    /// Nothing accepted the connection (from a TCP connect error).
    pub fn refused(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ProbeError {
        ProbeError::Refused { source: source.into() }
    }

    /// The server refused the connection for lack of room (see [`ProbeError::Busy`]).
    pub fn busy(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ProbeError {
        ProbeError::Busy { source: source.into() }
    }

    /// Whether the node is alive and busy: it refused the connection for lack of room, or the
    /// probe timed out while it answered the application's statements.
    pub fn is_busy(&self) -> bool {
        matches!(self, ProbeError::Busy { .. } | ProbeError::Outpaced { .. })
    }

    /// Whether nothing accepted the connection: the node is not there (rather than slow, or
    /// answering with an error).
    pub fn is_refused(&self) -> bool {
        matches!(self, ProbeError::Refused { .. })
    }

    /// Whether the node did not answer in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ProbeError::Timeout { .. })
    }
}

/// What one probe saw on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub(crate) role: Role,
    pub(crate) position: Option<ReplayPosition>,
    pub(crate) received_lsn: Option<Lsn>,
    pub(crate) since_replay: Option<Duration>,
    pub(crate) replay_paused: bool,
    pub(crate) seconds_behind: Option<u64>,
    pub(crate) applying: Option<bool>,
    pub(crate) latency: Duration,
    /// MariaDB: the server and what it last applied as a replica.
    pub(crate) lineage: Option<Lineage>,
}

/// A MariaDB server's place in its cluster's history: its `@@server_id` and its
/// `@@gtid_slave_pos`, what it last applied as a replica. A writable server whose slave
/// position names another server (a GTID that server wrote) took over from it at that
/// sequence number: a promotion, and the GTID history's epoch (`TopologyState::is_superseded`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lineage {
    pub(crate) server_id: u32,
    pub(crate) slave_pos: MariaDbPosition,
}

impl Lineage {
    /// The sequence number in `domain` at which this server last took over as primary: where
    /// it stopped applying as a replica (0: it never applied anything there).
    pub(crate) fn took_over_at(&self, domain: u32) -> u64 {
        self.slave_pos.get(domain).map_or(0, |g| g.sequence())
    }

    /// The servers this one took over from, a GTID each (domain, their `server_id`, sequence):
    /// the GTIDs of its slave position that another server wrote.
    pub(crate) fn took_over_from(&self) -> impl Iterator<Item = (u32, u32, u64)> + '_ {
        self.slave_pos
            .gtids()
            .iter()
            .filter(|g| g.server() != self.server_id)
            .map(|g| (g.domain(), g.server(), g.sequence()))
    }
}

impl Observation {
    /// The role the node reports: in recovery / read-only or replicating → replica.
    pub fn role(&self) -> Role {
        self.role
    }

    /// How far it has got: on a primary what it has written, on a replica what it has applied.
    pub fn position(&self) -> Option<&ReplayPosition> {
        self.position.as_ref()
    }

    /// PostgreSQL replicas: WAL received (perhaps not yet replayed).
    pub fn received_lsn(&self) -> Option<Lsn> {
        self.received_lsn
    }

    /// Whether replay is paused (PostgreSQL `pg_wal_replay_pause()`) or the SQL thread is
    /// stopped (MariaDB).
    pub fn replay_stopped(&self) -> bool {
        self.replay_paused || self.applying == Some(false)
    }

    /// The probe's round-trip time.
    pub fn latency(&self) -> Duration {
        self.latency
    }
}

/// How many probe timeouts a connection being opened for probes may take in all, at least
/// ([`MonitorConfig::connect_timeout_value`]).
const CONNECT_PATIENCE: u32 = 3;

/// How often and how patiently the monitor probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MonitorConfig {
    interval: Duration,
    timeout: Duration,
    jitter: Duration,
    position_interval: Duration,
    position_linger: Duration,
    idle_interval: Option<Duration>,
    max_timeout: Option<Duration>,
    /// Which settings a setter gave ([`MonitorConfig::merge`]), one bit each in field order.
    set: u8,
}

impl Default for MonitorConfig {
    /// A full probe every 500 ms, each bounded by 1 s, each round delayed by up to 50 ms at
    /// random so that many processes do not probe in lockstep; between full probes, while a
    /// reader wants fresher positions, each node's position every 20 ms, for 500 ms after the
    /// last want; once no statement has been routed for 2 s (four intervals), a full probe
    /// every 2 s until the next one.
    fn default() -> Self {
        MonitorConfig {
            interval: Duration::from_millis(500),
            timeout: Duration::from_secs(1),
            jitter: Duration::from_millis(50),
            position_interval: Duration::from_millis(20),
            position_linger: Duration::from_millis(500),
            idle_interval: None,
            max_timeout: None,
            set: 0,
        }
    }
}

impl MonitorConfig {
    /// Time between probe rounds. Default 500 ms.
    #[must_use]
    pub fn probe_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self.set |= 1;
        self
    }

    /// The deadline for one probe (connect included); a node that misses it has failed it.
    /// A node's first probe waits for its connection and first answer up to
    /// [`connect_timeout_value`](Self::connect_timeout_value) instead (10 s at the defaults; the
    /// answer has at least this): a server slow to accept and set up a backend while a fleet
    /// starts is not judged before it could answer (a node frozen before the application
    /// started is then seen failed that much later).
    /// While a node has been answering slowly, its probes wait longer (see
    /// [`max_probe_timeout`](Self::max_probe_timeout)). Default 1 s.
    #[must_use]
    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.set |= 2;
        self
    }

    /// The most a probe of a node that has been answering slowly is waited for. A node's
    /// probe waits three times its slowest recent answer (a probe's or a position read's; the
    /// weight of a slow one halves every 10 s), never less than the
    /// [`probe_timeout`](Self::probe_timeout) and never more than this: a saturated server (or an
    /// application starved of CPU) answering in 1.5 s is busy, not failed, and a node that
    /// answered in milliseconds and stops is still caught at the timeout. At or below the
    /// timeout: probes always wait the timeout. Default: ten timeouts (10 s at the default
    /// timeout); a node that stops answering while it was slow is caught within this.
    #[must_use]
    pub fn max_probe_timeout(mut self, max: Duration) -> Self {
        self.max_timeout = Some(max);
        self.set |= 64;
        self
    }

    /// `later` over this configuration: each setting `later` was given replaces this one's,
    /// the others keep this one's (a file's probe timeout, then a position feed set in code:
    /// both kept).
    ///
    /// ```
    /// use std::time::Duration;
    /// use rwsplit_monitor::MonitorConfig;
    /// let c = MonitorConfig::default().probe_timeout(Duration::from_secs(2))
    ///     .merge(MonitorConfig::default().probe_interval(Duration::from_secs(1)));
    /// assert_eq!((c.probe_timeout_value(), c.probe_interval_value()), (Duration::from_secs(2), Duration::from_secs(1)));
    /// ```
    #[must_use]
    pub fn merge(mut self, later: MonitorConfig) -> Self {
        let given = |bit: u8| later.set & bit != 0;
        if given(1) {
            self.interval = later.interval;
        }
        if given(2) {
            self.timeout = later.timeout;
        }
        if given(4) {
            self.jitter = later.jitter;
        }
        if given(8) {
            self.position_interval = later.position_interval;
        }
        if given(16) {
            self.position_linger = later.position_linger;
        }
        if given(32) {
            self.idle_interval = later.idle_interval;
        }
        if given(64) {
            self.max_timeout = later.max_timeout;
        }
        self.set |= later.set;
        self
    }

    /// The most a probe is waited for (see [`max_probe_timeout`](Self::max_probe_timeout)):
    /// never below the timeout.
    pub fn max_probe_timeout_value(&self) -> Duration {
        self.max_timeout.unwrap_or_else(|| self.timeout.saturating_mul(10)).max(self.timeout)
    }

    /// The most a round may be delayed at random beyond the interval. Default 50 ms.
    #[must_use]
    pub fn probe_jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self.set |= 4;
        self
    }

    /// How often, between full probes, a node's position is read on the probe's connection
    /// while a reader wants it (one cheap round trip: PostgreSQL `pg_last_wal_replay_lsn()`,
    /// MariaDB `@@gtid_slave_pos`), so that a read that must see its own write can use a
    /// replica soon after it has replayed that write. The feed runs only on demand (see
    /// [`position_linger`](Self::position_linger)): idle, positions come with the full probes.
    /// Zero turns the feed off (positions then move with the full probe only). Default 20 ms.
    #[must_use]
    pub fn position_interval(mut self, every: Duration) -> Self {
        self.position_interval = every;
        self.set |= 8;
        self
    }

    /// The position feed's interval (zero: off).
    pub fn position_interval_value(&self) -> Duration {
        self.position_interval
    }

    /// How long the position feed keeps running after the last read that wanted fresher
    /// positions than the full probes give
    /// ([`TopologyState::want_positions`](crate::TopologyState::want_positions)): a
    /// read-your-writes read whose token no replica is known to have replayed, a monotonic
    /// read with no sample bounding its scope's last read, a bounded-staleness read no replica
    /// is provably fresh enough for. While such reads keep coming, the feed runs; once they
    /// stop, it stops this long after the last. The cost of a burst's tail: `linger /
    /// position_interval` reads per node (25 by default). Default 500 ms.
    #[must_use]
    pub fn position_linger(mut self, linger: Duration) -> Self {
        self.position_linger = linger;
        self.set |= 16;
        self
    }

    /// How long the position feed runs after the last want.
    pub fn position_linger_value(&self) -> Duration {
        self.position_linger
    }

    /// Time between probe rounds while the cluster is idle: nothing has used it
    /// ([`TopologyState::used`](crate::TopologyState::used): the adapter marks each statement
    /// it routes, and each transaction it begins) for this long. The first use after that
    /// probes every node at once and the pace is [`probe_interval`](Self::probe_interval) again, so a
    /// node that died while nobody used it is judged by a fresh probe as traffic resumes; a
    /// read sent to it meanwhile fails over to another node like any read on a node that
    /// died under it. An idle application then costs each node `1 / idle_interval`
    /// statements per second instead of `1 / interval`, and failure detection while idle
    /// takes up to this plus the timeout (automatic failover included). At or below the
    /// interval: no idle pace. Default: four intervals (2 s at the default interval).
    #[must_use]
    pub fn idle_probe_interval(mut self, idle: Duration) -> Self {
        self.idle_interval = Some(idle);
        self.set |= 32;
        self
    }

    /// Time between probe rounds while idle (see [`idle_probe_interval`](Self::idle_probe_interval)):
    /// never below the interval.
    pub fn idle_probe_interval_value(&self) -> Duration {
        self.idle_interval.unwrap_or_else(|| self.interval.saturating_mul(4)).max(self.interval)
    }

    /// Time between probe rounds.
    pub fn probe_interval_value(&self) -> Duration {
        self.interval
    }

    /// The deadline for one probe.
    pub fn probe_timeout_value(&self) -> Duration {
        self.timeout
    }

    /// How long a connection the monitor opens for its probes may take in all, and how long
    /// a probe's query is left running for the next probe: the
    /// [maximum probe timeout](Self::max_probe_timeout_value), at least three probe timeouts (10 s at
    /// the defaults). A probe waits for it only up to its own timeout (and fails then, as
    /// before), but for a node's first probe, which has nothing to go on yet and waits this
    /// long; the connect goes on for the next probe, so a server slow to accept (a fleet
    /// starting at once) finishes the handshake it began rather than being asked for a new
    /// one every round (see [`Monitor`](crate::Monitor)). A node's first connection may go on
    /// longer: [`first_connect_timeout_value`](Self::first_connect_timeout_value).
    pub fn connect_timeout_value(&self) -> Duration {
        self.timeout.saturating_mul(CONNECT_PATIENCE).max(self.max_probe_timeout_value())
    }

    /// How long a node's first connection may take in all: twice the
    /// [connect timeout](Self::connect_timeout_value) (20 s at the defaults). The node's first
    /// probe waits for it the connect timeout, and fails then (or is excused, if the node
    /// served the application meanwhile); the connect goes on for the probes after it, each
    /// waiting for it up to its own timeout. When a fleet starts at once, a server slow to
    /// accept holds the connects in its listen queue; one given up at the first probe's
    /// patience would begin again at the back of that queue, and the probes after it would time
    /// out waiting (most of a starting fleet's failed probes would be those). A node
    /// unreachable when the monitor starts (a partition) is connected to on that first
    /// connect's own retries until then, up to this long. A [`Connector`](crate::Connector)
    /// bounds its own connects by this.
    pub fn first_connect_timeout_value(&self) -> Duration {
        self.connect_timeout_value().saturating_mul(2)
    }

    /// The pause before round number `round`: the interval plus a pseudo-random share of the
    /// jitter (deterministic per round, no RNG dependency).
    pub fn pause(&self, round: u64) -> Duration {
        self.jittered(self.interval, round)
    }

    /// [`pause`](Self::pause) while idle: the [idle interval](Self::idle_probe_interval) plus the
    /// same share of the jitter.
    pub fn idle_pause(&self, round: u64) -> Duration {
        self.jittered(self.idle_probe_interval_value(), round)
    }

    fn jittered(&self, interval: Duration, round: u64) -> Duration {
        let nanos = u64::try_from(self.jitter.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return interval;
        }
        let mut x = round.wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        interval.saturating_add(Duration::from_nanos(x % nanos))
    }
}

#[cfg(test)]
mod tests;
