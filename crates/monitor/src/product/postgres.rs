//! PostgreSQL physical streaming replication.

use std::time::Duration;

use rwsplit_core::{Lag, Lsn, PgPosition, ReplayPosition, Role};

use super::{LagUnit, Product, flag, unexpected};
use crate::probe::{Observation, ProbeConn, ProbeError, Row};

/// PostgreSQL 13+ (hot standbys; `pg_promote()`; `ALTER SYSTEM SET primary_conninfo` reloads).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Postgres;

/// The timeline a primary's WAL position (an SQL expression, a literal) is on: the first 8 hex
/// digits of the WAL file name holding it. One expression for the probe and the adapter's
/// position capture ([`crate::sql::postgres::CAPTURE`]).
macro_rules! timeline_of {
    ($lsn:literal) => {
        concat!("('x' || substr(pg_walfile_name(", $lsn, "), 1, 8))::bit(32)::int")
    };
}
pub(crate) use timeline_of;

/// A standby's timeline: its WAL receiver's, or without one the control file's (the last
/// restartpoint's), which reads the file (see [`PROBE_SQL`]). Function calls, not the
/// `pg_stat_wal_receiver` view: in an expression they run only where a `CASE` reaches them (the
/// view would be a sub-select, planned and set up on every run of a prepared statement).
macro_rules! standby_timeline_read {
    () => {
        "COALESCE((pg_stat_get_wal_receiver()).received_tli, \
                  (pg_control_checkpoint()).timeline_id)"
    };
}

/// The monitor's probe on a PostgreSQL connection: one text for every probe, its parameter `$1`
/// saying what the run reads ([`Read`]), so that a connection prepares one probe statement, on its
/// first probe (which waits as long as a connect may take), and every later probe is one round
/// trip. With a statement for each read, the second probe on every connection would be a Parse
/// round trip and then the run — on a server a whole fleet is connecting to, a backend woken twice
/// where once would do, each wake-up a wait for the CPU — and so would a standby's first probe
/// after its primary goes (the receiver gone: [`Read::Probe`] after [`Read::Known`]), when every
/// instance of a fleet probes it at once. What a run does not read is behind a `CASE` on the
/// parameter, in function calls that run only where the `CASE` reaches them: a custom plan (a
/// prepared statement's first five runs) folds the `CASE` away, and the generic plan PostgreSQL 15
/// settles on after them (`pg_prepared_statements`: 5 generic, 5 custom after ten runs) evaluates
/// it per run; `pg_control_*()` are volatile, never called in planning. Columns:
/// - `in_recovery`, `replayed` (a standby's replay position, a primary's current write
///   position), `received`, `since_replay_ms`, `paused`, `started` (the postmaster's start
///   time);
/// - `system_id`, on a connection's first probe only ([`Read::First`]);
/// - `timeline`: a primary's, from its WAL position; a standby's, its WAL receiver's, or without
///   one the control file's, or for [`Read::Known`] NULL without one;
/// - `tli_received`: whether the receiver reported the timeline (NULL without a receiver).
const PROBE_SQL: &str = concat!(
    "SELECT pg_is_in_recovery()::text AS in_recovery, \
    CASE WHEN $1::text = 'first' \
        THEN (pg_control_system()).system_identifier::text END AS system_id, \
    (CASE WHEN NOT pg_is_in_recovery() THEN ",
    timeline_of!("pg_current_wal_lsn()"),
    " WHEN $1::text <> 'known' THEN ",
    standby_timeline_read!(),
    " WHEN (pg_stat_get_wal_receiver()).pid IS NOT NULL THEN ",
    standby_timeline_read!(),
    " END)::text AS timeline, \
    (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
          ELSE pg_current_wal_lsn() END)::text AS replayed, \
    pg_last_wal_receive_lsn()::text AS received, \
    (extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000)::bigint::text \
        AS since_replay_ms, \
    (CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END)::text AS paused, \
    pg_postmaster_start_time()::text AS started, \
    CASE WHEN (pg_stat_get_wal_receiver()).pid IS NOT NULL \
        THEN ((pg_stat_get_wal_receiver()).received_tli IS NOT NULL)::text END AS tli_received"
);

/// What one run of [`PROBE_SQL`] reads: its parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// A connection's first probe: everything, the cluster's system identifier included.
    /// `pg_control_system()` reads the control file, and waits while the server rewrites and
    /// fsyncs it (a standby does on each advance of its minimum recovery point): on a disk busy
    /// with the primary's commits the fleet benchmark measured it taking 1.5 s on a replica that
    /// answered its replay position at once, and the monitors of the whole fleet timed out on it
    /// together. A server's identifier cannot change while it runs, so it is read once per
    /// server ([`Memo`]): later probes read the postmaster's start time from shared memory
    /// instead, and a different one (a pooler in front re-pointed at another server, which keeps
    /// the client's connection) has the identifier read again at once.
    First,
    /// A later probe: a standby's timeline from its receiver, or else the control file.
    Probe,
    /// A later probe of a standby whose WAL receiver reported its timeline to the last probe
    /// ([`Memo`]): the timeline from the receiver, NULL without one. [`Read::Probe`]'s
    /// fallback, `pg_control_checkpoint()`, reads the control file like `pg_control_system()`,
    /// and every standby loses its receiver when its primary goes — when every instance of a
    /// fleet probes it, and one of them is being promoted. Without a receiver, a standby that
    /// has replayed no further than what it received by streaming (`pg_last_wal_receive_lsn()`,
    /// which stays where the receiver left it) is replaying WAL of the timeline the receiver
    /// last reported, as the probes said while it ran: the probe takes the remembered one. One
    /// that has replayed past it (from an archive, perhaps across a timeline switch) is asked
    /// again at once with [`Read::Probe`], and from then on probed with it. A role that may not
    /// read the receiver's details (neither superuser nor `pg_read_all_stats`) sees them NULL
    /// beside its process id: the control file then, as with [`Read::Probe`].
    Known,
}

impl Read {
    /// The parameter's value.
    fn arg(self) -> &'static str {
        match self {
            Read::First => "first",
            Read::Probe => "probe",
            Read::Known => "known",
        }
    }
}

/// One run of [`PROBE_SQL`].
async fn probe_row<C: ProbeConn>(conn: &C, read: Read) -> Result<Row, ProbeError> {
    Ok(conn.fetch_row_with(PROBE_SQL, read.arg()).await?.unwrap_or_default())
}

/// The position feed: a few function calls, no catalogue view. A standby's replay position, a
/// primary's current write position. A statement of its own, not a fourth read of
/// [`PROBE_SQL`]: a prepared statement's every run sets up its whole expression, and the
/// probe's took a position read from 30–36 µs to 60–88 µs a round trip (`pgbench -M prepared`
/// on a standby, over a Unix socket), at hundreds of feed reads a second per node under a
/// fleet's read-your-writes load. It is prepared on a connection's first feed read.
const POSITION_SQL: &str = "SELECT pg_is_in_recovery()::text AS in_recovery, \
    (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
          ELSE pg_current_wal_lsn() END)::text AS replayed";

/// A failover candidate's received position (only while choosing one: the control file's
/// timeline is read then, as a standby whose primary is gone has no receiver).
const RECEIVED_SQL: &str = concat!(
    "SELECT pg_is_in_recovery()::text AS in_recovery, ",
    standby_timeline_read!(),
    "::text AS timeline, \
    GREATEST(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text AS received"
);

/// Replay has reached what the WAL receiver wrote (or there is no receiver position).
const APPLIED: &str =
    "pg_last_wal_replay_lsn() >= COALESCE(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())";

/// The failover lock's two keys, `pg_try_advisory_lock(int4, int4)`: "rwsp" and "fail" in
/// ASCII, unlikely to be an application's. `pg_locks` shows them as `classid` and `objid`, with
/// `objsubid = 2` (the two-key form).
const LOCK_PARTS: (i32, i32) = (0x7277_7370, 0x6661_696c);

/// [`LOCK_PARTS`] as the lock functions' arguments.
const LOCK_KEY: &str = "1920430960, 1717660012";

/// The one boolean column `v` of `sql`'s row.
async fn one_flag<C: ProbeConn>(conn: &C, sql: &str) -> Result<bool, ProbeError> {
    flag(&conn.fetch_row(sql).await?.unwrap_or_default(), "v")
}

/// How far a standby has received: timeline first, then LSN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Received {
    timeline: u32,
    lsn: u64,
}

fn lsn(row: &Row, name: &'static str) -> Result<Option<Lsn>, ProbeError> {
    row.get(name).map(|v| v.parse::<Lsn>().map_err(|_| unexpected(name, Some(v)))).transpose()
}

/// What a node's probes remember on one connection (see [`Read::First`]): the system identifier
/// of the server it reached, and that server's start time; on a standby, the timeline its last
/// probe reported, if the WAL receiver reported it (or it was remembered: see
/// [`Read::Known`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Memo {
    server: Option<(u64, String)>,
    standby: Option<u32>,
}

impl Memo {
    /// Remembers a standby's timeline from what a probe saw, if `known` (the receiver reported
    /// it, or it was remembered); forgets it otherwise.
    fn saw(&mut self, seen: &Observation, known: bool) {
        self.standby = match (seen.role(), seen.position(), known) {
            (Role::Replica, Some(ReplayPosition::Postgres(p)), true) => Some(p.timeline()),
            _ => None,
        };
    }
}

/// Whether the row's timeline is the WAL receiver's.
fn tli_received(row: &Row) -> bool {
    row.get("tli_received") == Some("true")
}

/// Reads the full probe's row; `system_id` is the connection's, if an earlier probe read it
/// (the row then has none), and `timeline` the standby's, used if the row has none (no
/// receiver: see [`Read::Known`]).
pub(crate) fn read(
    row: &Row,
    system_id: Option<u64>,
    timeline: Option<u32>,
    latency: std::time::Duration,
) -> Result<Observation, ProbeError> {
    let in_recovery = flag(row, "in_recovery")?;
    let system_id = match system_id {
        Some(id) => id,
        None => row
            .get("system_id")
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| unexpected("system identifier", row.get("system_id")))?,
    };
    let timeline = match row.get("timeline") {
        None => timeline,
        Some(v) => v.parse::<u32>().ok(),
    }
    .ok_or_else(|| unexpected("timeline", row.get("timeline")))?;
    let position = lsn(row, "replayed")?
        .map(|l| ReplayPosition::Postgres(PgPosition::new(system_id, timeline, l)));
    Ok(Observation {
        role: if in_recovery { Role::Replica } else { Role::Primary },
        position,
        received_lsn: lsn(row, "received")?,
        since_replay: row
            .get("since_replay_ms")
            .and_then(|v| v.parse::<i64>().ok())
            .map(|ms| std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        replay_paused: flag(row, "paused").unwrap_or(false),
        seconds_behind: None,
        applying: None,
        latency,
        lineage: None,
    })
}

/// A PostgreSQL string literal's body (standard-conforming strings: only quotes double).
fn literal(s: &str) -> String {
    s.replace('\'', "''")
}

async fn setting<C: ProbeConn>(conn: &C, sql: &str) -> Result<String, ProbeError> {
    Ok(conn.fetch_row(sql).await?.and_then(|r| r.get("v").map(str::to_owned)).unwrap_or_default())
}

impl Product for Postgres {
    type Received = Received;
    const UNIT: LagUnit = LagUnit::Bytes;
    type Detached = Detached;

    /// Bytes: the primary's WAL position minus the replica's replay position (unknown across
    /// systems or timelines). Time: zero when nothing is left to replay; otherwise the time
    /// since the replica last replayed a commit, which only counts while something is waiting,
    /// so an idle primary does not make a caught-up replica look late.
    ///
    /// "Nothing left" is the replica's own word as well as the bytes': the primary's sample can
    /// be older than the replica's (the position feed reads replicas between the primary's
    /// probes), and a replica that applies with a delay replays up to that older position while
    /// newer WAL waits in it. WAL it had received, at its last full probe, past what it has
    /// replayed is waiting: its time is then the time since its last replayed commit, not zero.
    fn lag(primary: &Observation, replica: &Observation) -> Lag {
        let (Some(ReplayPosition::Postgres(p)), Some(ReplayPosition::Postgres(r))) =
            (primary.position(), replica.position())
        else {
            return Lag::unknown();
        };
        if p.system_id() != r.system_id() || p.timeline() != r.timeline() {
            return Lag::unknown();
        }
        let bytes = p.lsn().get().saturating_sub(r.lsn().get());
        let waiting = replica.received_lsn.is_some_and(|received| received > r.lsn());
        let time = if bytes == 0 && !waiting { Some(Duration::ZERO) } else { replica.since_replay };
        Lag::new(Some(bytes), time)
    }

    /// The cluster's system identifier, once the connection's first probe has read it.
    type Memo = Memo;

    async fn probe<C: ProbeConn>(
        conn: &C,
        memo: &mut Memo,
        started: tokio::time::Instant,
    ) -> Result<Observation, ProbeError> {
        if let Some((system_id, since)) = memo.server.clone() {
            let known = memo.standby;
            let row =
                probe_row(conn, if known.is_some() { Read::Known } else { Read::Probe }).await?;
            if row.get("started") == Some(since.as_str()) {
                let mut row = row;
                let mut timeline = None;
                if let Some(tl) = known
                    && row.get("timeline").is_none()
                    && flag(&row, "in_recovery")?
                {
                    let (replayed, received) = (lsn(&row, "replayed")?, lsn(&row, "received")?);
                    if replayed.zip(received).is_some_and(|(p, r)| p <= r) {
                        // No receiver, replaying what it streamed: the remembered timeline.
                        timeline = Some(tl);
                    } else {
                        // Past what it streamed (from an archive, perhaps across a timeline
                        // switch): the control file says which.
                        row = probe_row(conn, Read::Probe).await?;
                    }
                }
                let seen = read(&row, Some(system_id), timeline, started.elapsed())?;
                memo.saw(&seen, timeline.is_some() || tli_received(&row));
                return Ok(seen);
            }
            // Another server behind the same connection: who it is, read afresh.
            *memo = Memo::default();
        }
        let row = probe_row(conn, Read::First).await?;
        let seen = read(&row, None, None, started.elapsed())?;
        if let (Some(ReplayPosition::Postgres(p)), Some(since)) =
            (seen.position(), row.get("started"))
        {
            memo.server = Some((p.system_id(), since.to_owned()));
            memo.saw(&seen, tli_received(&row));
        }
        Ok(seen)
    }

    async fn replay_position<C: ProbeConn>(
        conn: &C,
        last: &Observation,
    ) -> Result<Option<ReplayPosition>, ProbeError> {
        let row = conn.fetch_row(POSITION_SQL).await?.unwrap_or_default();
        // A role change (a promotion, a demotion) is the next full probe's to read.
        if flag(&row, "in_recovery")? != (last.role() == Role::Replica) {
            return Ok(None);
        }
        let Some(ReplayPosition::Postgres(seen)) = last.position() else { return Ok(None) };
        Ok(lsn(&row, "replayed")?.map(|l| {
            ReplayPosition::Postgres(PgPosition::new(seen.system_id(), seen.timeline(), l))
        }))
    }

    async fn receiving<C: ProbeConn>(conn: &C) -> Result<bool, ProbeError> {
        // A row while a WAL receiver runs; its status is NULL to a role without
        // pg_read_all_stats, which must not read as "not receiving".
        let row = conn.fetch_row("SELECT status AS status FROM pg_stat_wal_receiver").await?;
        match row.as_ref().map(|r| r.get("status")) {
            None => Ok(false),
            Some(Some(status)) => Ok(status == "streaming"),
            Some(None) => Err(unexpected(
                "pg_stat_wal_receiver.status (grant pg_read_all_stats to the failover's account)",
                None,
            )),
        }
    }

    async fn received<C: ProbeConn>(conn: &C) -> Result<Option<Received>, ProbeError> {
        let row = conn.fetch_row(RECEIVED_SQL).await?.unwrap_or_default();
        if !flag(&row, "in_recovery")? {
            return Ok(None);
        }
        let timeline = row.get("timeline").and_then(|t| t.parse().ok()).unwrap_or(0);
        let lsn = lsn(&row, "received")?.ok_or_else(|| unexpected("received LSN", None))?;
        Ok(Some(Received { timeline, lsn: lsn.get() }))
    }

    fn received_more(other: &Received, than: &Received) -> bool {
        other > than
    }

    fn behind(primary: &ReplayPosition, received: &Received) -> Option<u64> {
        match primary {
            ReplayPosition::Postgres(p) if p.timeline() == received.timeline => {
                Some(p.lsn().get().saturating_sub(received.lsn))
            }
            _ => None,
        }
    }

    async fn try_lock<C: ProbeConn>(conn: &C) -> Result<bool, ProbeError> {
        let sql = format!("SELECT pg_try_advisory_lock({LOCK_KEY})::text AS v");
        one_flag(conn, &sql).await
    }

    async fn holds_lock<C: ProbeConn>(conn: &C) -> Result<bool, ProbeError> {
        let (class, object) = LOCK_PARTS;
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND pid = pg_backend_pid() AND classid = {class} AND objid = {object} \
             AND objsubid = 2)::text AS v"
        );
        one_flag(conn, &sql).await
    }

    async fn unlock<C: ProbeConn>(conn: &C) -> Result<(), ProbeError> {
        let sql = format!("SELECT pg_advisory_unlock({LOCK_KEY})::text AS v");
        conn.fetch_row(&sql).await.map(drop)
    }

    async fn apply_received<C: ProbeConn>(conn: &C, within: Duration) -> Result<bool, ProbeError> {
        // One round trip whose waiting is the server's (as the adapter's catch-up wait): replay
        // reaching what the receiver wrote, looked at every millisecond up to `within`. Replay
        // that is paused or blocked (a recovery conflict under max_standby_streaming_delay = -1)
        // does not get there, and the failover is abandoned before the promotion is sent.
        let sql = format!(
            "WITH RECURSIVE w(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM w \
             WHERE clock_timestamp() < statement_timestamp() + make_interval(secs => {secs}) \
             AND CASE WHEN {APPLIED} THEN false ELSE pg_sleep(0.001)::text = '' END) \
             SELECT ({APPLIED})::text AS v FROM (SELECT max(i) FROM w) AS waited",
            secs = within.as_secs_f64(),
        );
        one_flag(conn, &sql).await
    }

    async fn resume_receiving<C: ProbeConn>(_conn: &C) -> Result<(), ProbeError> {
        Ok(())
    }

    async fn promote<C: ProbeConn>(conn: &C, within: Duration) -> Result<bool, ProbeError> {
        // pg_promote waits (in whole seconds) until the standby has left recovery; `false`
        // means not yet, not "not sent": the server may still finish it.
        let secs = within.as_secs().max(1);
        let sql = format!("SELECT pg_promote(true, {secs})::text AS v");
        match one_flag(conn, &sql).await {
            Ok(done) => Ok(done),
            // A promotion finished while the answer was on its way is still a promotion.
            Err(e) => match one_flag(conn, "SELECT (NOT pg_is_in_recovery())::text AS v").await {
                Ok(true) => Ok(true),
                _ => Err(e),
            },
        }
    }

    async fn make_read_only<C: ProbeConn>(_conn: &C) -> Result<bool, ProbeError> {
        Ok(false)
    }

    async fn detach<C: ProbeConn>(replica: &C) -> Result<Detached, ProbeError> {
        let conninfo = setting(replica, "SELECT current_setting('primary_conninfo') AS v").await?;
        let slot = setting(replica, "SELECT current_setting('primary_slot_name') AS v").await?;
        if conninfo.is_empty() {
            return Err(unexpected("primary_conninfo (empty: not streaming from anyone)", None));
        }
        replica.execute("ALTER SYSTEM SET primary_conninfo = ''").await?;
        replica.fetch_row("SELECT pg_reload_conf()::text AS v").await?;
        Ok(Detached { conninfo, slot })
    }

    async fn reattach<C: ProbeConn>(replica: &C, detached: &Detached) -> Result<(), ProbeError> {
        let set = format!("ALTER SYSTEM SET primary_conninfo = '{}'", literal(&detached.conninfo));
        replica.execute(&set).await?;
        replica.fetch_row("SELECT pg_reload_conf()::text AS v").await.map(drop)
    }

    async fn repoint<C: ProbeConn>(
        replica: &C,
        detached: &Detached,
        new_primary: &C,
        host: &str,
        port: u16,
    ) -> Result<(), ProbeError> {
        let rewritten = rewrite_conninfo(&detached.conninfo, host, port)
            .ok_or_else(|| unexpected("primary_conninfo (not keyword=value)", None))?;
        let slot = &detached.slot;
        if !slot.is_empty() {
            let create = format!(
                "SELECT pg_create_physical_replication_slot('{s}') WHERE NOT EXISTS \
                 (SELECT 1 FROM pg_replication_slots WHERE slot_name = '{s}')",
                s = literal(slot)
            );
            new_primary.fetch_row(&create).await?;
        }
        replica
            .execute(&format!("ALTER SYSTEM SET primary_conninfo = '{}'", literal(&rewritten)))
            .await?;
        replica.fetch_row("SELECT pg_reload_conf()::text AS v").await.map(drop)
    }
}

/// A standby detached from its primary: the conninfo and slot it streamed with.
#[derive(Debug, Clone)]
pub(crate) struct Detached {
    conninfo: String,
    slot: String,
}

/// A keyword=value conninfo with `host` and `port` replaced (and `hostaddr` dropped, since it
/// would override the host). `None` for a URI conninfo.
pub(crate) fn rewrite_conninfo(conninfo: &str, host: &str, port: u16) -> Option<String> {
    let trimmed = conninfo.trim();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        return None;
    }
    let mut out: Vec<String> = Vec::new();
    let mut chars = trimmed.chars().peekable();
    // Split into keyword=value pairs, honouring single-quoted values with \' escapes.
    while chars.peek().is_some() {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut pair = String::new();
        let mut quoted = false;
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() && !quoted {
                break;
            }
            chars.next();
            if c == '\\' {
                pair.push(c);
                if let Some(n) = chars.next() {
                    pair.push(n);
                }
                continue;
            }
            if c == '\'' {
                quoted = !quoted;
            }
            pair.push(c);
        }
        if pair.is_empty() {
            continue;
        }
        let key = pair.split('=').next().unwrap_or("").trim();
        if !matches!(key, "host" | "port" | "hostaddr") {
            out.push(pair);
        }
    }
    out.push(format!("host={host}"));
    out.push(format!("port={port}"));
    Some(out.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conninfo_gets_the_new_host_and_port_and_keeps_the_rest() {
        let old = "user=postgres passfile='/var/lib/post gres/.pgpass' host=127.0.0.1 port=5432 \
                   hostaddr=10.0.0.1 application_name=n2";
        assert_eq!(
            rewrite_conninfo(old, "10.1.1.1", 6543).unwrap(),
            "user=postgres passfile='/var/lib/post gres/.pgpass' application_name=n2 \
             host=10.1.1.1 port=6543"
        );
        assert_eq!(rewrite_conninfo("", "h", 1).unwrap(), "host=h port=1");
        assert!(rewrite_conninfo("postgres://u@h:1/db", "x", 2).is_none());
    }

    /// A replica's lag against a primary sampled at 100: bytes from the positions; time zero
    /// only when nothing waits in the replica (it received nothing past its replay position).
    #[rstest::rstest]
    #[case::caught_up(100, Some(100), Some(ZERO))]
    #[case::caught_up_no_receiver(100, None, Some(ZERO))]
    #[case::behind(60, Some(100), Some(SINCE))]
    #[case::past_an_older_primary_sample_with_wal_waiting(120, Some(180), Some(SINCE))]
    #[case::past_an_older_primary_sample_all_replayed(120, Some(120), Some(ZERO))]
    fn time_is_zero_only_when_nothing_waits(
        #[case] replayed: u64,
        #[case] received: Option<u64>,
        #[case] time: Option<Duration>,
    ) {
        let at = |role, lsn| Observation {
            role,
            position: Some(ReplayPosition::Postgres(PgPosition::new(7, 1, Lsn::new(lsn)))),
            received_lsn: None,
            since_replay: Some(SINCE),
            replay_paused: false,
            seconds_behind: None,
            applying: None,
            latency: Duration::from_millis(1),
            lineage: None,
        };
        let primary = at(Role::Primary, 100);
        let replica =
            Observation { received_lsn: received.map(Lsn::new), ..at(Role::Replica, replayed) };
        let lag = Postgres::lag(&primary, &replica);
        assert_eq!((lag.bytes(), lag.time()), (Some(100u64.saturating_sub(replayed)), time));
    }

    const ZERO: Duration = Duration::ZERO;
    const SINCE: Duration = Duration::from_millis(230);

    #[test]
    fn a_later_timeline_is_further_whatever_its_lsn() {
        let a = Received { timeline: 1, lsn: 100 };
        let b = Received { timeline: 2, lsn: 10 };
        assert!(b > a);
    }
}
