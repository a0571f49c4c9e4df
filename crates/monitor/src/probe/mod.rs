//! One probe of one node: what it is, how far it has got, and the lag that follows.

use std::future::Future;
use std::time::{Duration, Instant};

use rwsplit_core::{Lag, Lsn, MariaDbPosition, PgPosition, ReplayPosition, Role};

/// Which SQL dialect of replication status a node speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Flavor {
    /// PostgreSQL physical streaming replication.
    Postgres,
    /// MariaDB GTID replication.
    MariaDb,
}

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
///     async fn fetch_row(&self, _sql: &'static str) -> Result<Option<Row>, ProbeError> {
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
    fn fetch_row(
        &self,
        sql: &'static str,
    ) -> impl Future<Output = Result<Option<Row>, ProbeError>> + Send;
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

    /// Whether the node did not answer in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ProbeError::Timeout { .. })
    }
}

/// What one probe saw on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    role: Role,
    position: Option<ReplayPosition>,
    received_lsn: Option<Lsn>,
    since_replay: Option<Duration>,
    replay_paused: bool,
    seconds_behind: Option<u64>,
    applying: Option<bool>,
    latency: Duration,
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

const PG_SQL: &str = "SELECT pg_is_in_recovery()::text AS in_recovery, \
    (SELECT system_identifier::text FROM pg_control_system()) AS system_id, \
    (CASE WHEN pg_is_in_recovery() \
          THEN COALESCE((SELECT received_tli FROM pg_stat_wal_receiver), \
                        (SELECT timeline_id FROM pg_control_checkpoint())) \
          ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END)::text AS timeline, \
    (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS replayed, \
    pg_last_wal_receive_lsn()::text AS received, \
    (extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000)::bigint::text AS since_replay_ms, \
    (CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END)::text AS paused";

const MARIA_SQL: &str = "SELECT IF(@@global.read_only, 'true', 'false') AS read_only, \
    @@global.gtid_binlog_pos AS binlog_pos, @@global.gtid_slave_pos AS slave_pos";

const MARIA_STATUS_SQL: &str = "SHOW SLAVE STATUS";

/// How often and how patiently the monitor probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MonitorConfig {
    interval: Duration,
    timeout: Duration,
    jitter: Duration,
}

impl Default for MonitorConfig {
    /// Every 500 ms, each probe bounded by 1 s, each round delayed by up to 50 ms at random so
    /// that many processes do not probe in lockstep.
    fn default() -> Self {
        MonitorConfig {
            interval: Duration::from_millis(500),
            timeout: Duration::from_secs(1),
            jitter: Duration::from_millis(50),
        }
    }
}

impl MonitorConfig {
    /// Time between probe rounds.
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// The deadline for one probe (connect included); a node that misses it has failed it.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The most a round may be delayed at random beyond the interval.
    #[must_use]
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Time between probe rounds.
    pub fn interval_value(&self) -> Duration {
        self.interval
    }

    /// The deadline for one probe.
    pub fn timeout_value(&self) -> Duration {
        self.timeout
    }

    /// The pause before round number `round`: the interval plus a pseudo-random share of the
    /// jitter (deterministic per round, no RNG dependency).
    pub fn pause(&self, round: u64) -> Duration {
        let nanos = u64::try_from(self.jitter.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return self.interval;
        }
        let mut x = round.wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        self.interval + Duration::from_nanos(x % nanos)
    }
}

/// Probes `conn` once, under `timeout` for the whole probe.
pub async fn probe<C: ProbeConn>(
    conn: &C,
    flavor: Flavor,
    timeout: Duration,
) -> Result<Observation, ProbeError> {
    let started = Instant::now();
    let run = async {
        match flavor {
            Flavor::Postgres => {
                let row = conn.fetch_row(PG_SQL).await?.unwrap_or_default();
                read_postgres(&row, started.elapsed())
            }
            Flavor::MariaDb => {
                let vars = conn.fetch_row(MARIA_SQL).await?.unwrap_or_default();
                // Needs the SLAVE MONITOR privilege; without it the role comes from read_only
                // alone and a lagging replica's time lag is unknown (never guessed as zero).
                let status = conn.fetch_row(MARIA_STATUS_SQL).await.unwrap_or(None);
                read_mariadb(&vars, status.as_ref(), started.elapsed())
            }
        }
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::Timeout { after: timeout }),
    }
}

fn unexpected(what: &'static str, value: Option<&str>) -> ProbeError {
    ProbeError::Unexpected { what, value: value.unwrap_or("NULL").to_owned() }
}

fn flag(row: &Row, name: &'static str) -> Result<bool, ProbeError> {
    match row.get(name) {
        Some("true" | "t" | "1" | "ON" | "on") => Ok(true),
        Some("false" | "f" | "0" | "OFF" | "off") => Ok(false),
        other => Err(unexpected(name, other)),
    }
}

fn read_postgres(row: &Row, latency: Duration) -> Result<Observation, ProbeError> {
    let in_recovery = flag(row, "in_recovery")?;
    let system_id = row
        .get("system_id")
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| unexpected("system identifier", row.get("system_id")))?;
    let timeline = row
        .get("timeline")
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or_else(|| unexpected("timeline", row.get("timeline")))?;
    let lsn = |name: &'static str| -> Result<Option<Lsn>, ProbeError> {
        row.get(name).map(|v| v.parse::<Lsn>().map_err(|_| unexpected(name, Some(v)))).transpose()
    };
    let position =
        lsn("replayed")?.map(|l| ReplayPosition::Postgres(PgPosition::new(system_id, timeline, l)));
    Ok(Observation {
        role: if in_recovery { Role::Replica } else { Role::Primary },
        position,
        received_lsn: lsn("received")?,
        since_replay: row
            .get("since_replay_ms")
            .and_then(|v| v.parse::<i64>().ok())
            .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        replay_paused: flag(row, "paused").unwrap_or(false),
        seconds_behind: None,
        applying: None,
        latency,
    })
}

fn read_mariadb(
    vars: &Row,
    status: Option<&Row>,
    latency: Duration,
) -> Result<Observation, ProbeError> {
    let read_only = flag(vars, "read_only")?;
    let replicating = status.is_some();
    let role = if read_only || replicating { Role::Replica } else { Role::Primary };
    let pos_text =
        if role == Role::Replica { vars.get("slave_pos") } else { vars.get("binlog_pos") };
    let position = match pos_text.map(str::trim) {
        None | Some("") => Some(ReplayPosition::MariaDb(MariaDbPosition::new([]))),
        Some(text) => Some(ReplayPosition::MariaDb(
            text.parse::<MariaDbPosition>().map_err(|_| unexpected("GTID position", Some(text)))?,
        )),
    };
    Ok(Observation {
        role,
        position,
        received_lsn: None,
        since_replay: None,
        replay_paused: false,
        seconds_behind: status
            .and_then(|s| s.get("Seconds_Behind_Master"))
            .and_then(|v| v.parse().ok()),
        applying: status.map(|s| s.get("Slave_SQL_Running") == Some("Yes")),
        latency,
    })
}

/// The replica's lag behind the primary, positions first.
///
/// PostgreSQL: bytes = the primary's WAL position minus the replica's replay position (unknown
/// across systems or timelines). Time: zero when nothing is left to replay; otherwise the time
/// since the replica last replayed a commit — which only counts while something is waiting,
/// so an idle primary does not make a caught-up replica look late.
///
/// MariaDB: no byte measure (unknown). Time: zero when the replica has applied every GTID the
/// primary has written, in every domain; otherwise `Seconds_Behind_Master` while the SQL thread
/// runs, and unknown when it is stopped (where MariaDB itself reports NULL).
pub fn lag(primary: &Observation, replica: &Observation) -> Lag {
    match (primary.position(), replica.position()) {
        (Some(ReplayPosition::Postgres(p)), Some(ReplayPosition::Postgres(r))) => {
            if p.system_id() != r.system_id() || p.timeline() != r.timeline() {
                return Lag::unknown();
            }
            let bytes = p.lsn().get().saturating_sub(r.lsn().get());
            let time = if bytes == 0 { Some(Duration::ZERO) } else { replica.since_replay };
            Lag::new(Some(bytes), time)
        }
        (Some(ReplayPosition::MariaDb(p)), Some(ReplayPosition::MariaDb(r))) => {
            let caught_up = p
                .gtids()
                .iter()
                .all(|g| r.get(g.domain()).is_some_and(|have| have.sequence() >= g.sequence()));
            if caught_up {
                Lag::new(None, Some(Duration::ZERO))
            } else if replica.applying == Some(true) {
                Lag::new(None, replica.seconds_behind.map(Duration::from_secs))
            } else {
                Lag::unknown()
            }
        }
        _ => Lag::unknown(),
    }
}

#[cfg(test)]
mod tests;
