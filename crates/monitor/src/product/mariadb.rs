//! MariaDB GTID replication.

use std::time::Duration;

use rwsplit_core::{CausalToken, Lag, MariaDbPosition, ReplayPosition, Role};

use super::{LagUnit, Product, flag, unexpected};
use crate::probe::{Lineage, Observation, ProbeConn, ProbeError, Row};

/// MariaDB 10.5+ with GTIDs (`MASTER_USE_GTID = slave_pos`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MariaDb;

/// The probe: one statement, readable without the SLAVE MONITOR privilege. Besides the
/// variables (`server_id` and the slave position give the node's [`Lineage`]), two counters from `information_schema.GLOBAL_STATUS`: `sql_threads`
/// (`Slaves_running`: replication SQL threads running now) and `config_epoch`
/// (`Com_change_master` and `Com_reset`: every `CHANGE MASTER` and `RESET …` since the server
/// started), which moves whenever the replication configuration may have changed.
const PROBE_SQL: &str = "SELECT IF(@@global.read_only, 'true', 'false') AS read_only, \
    @@global.gtid_binlog_pos AS binlog_pos, @@global.gtid_slave_pos AS slave_pos, \
    @@global.server_id AS server_id, \
    (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
      WHERE VARIABLE_NAME = 'SLAVES_RUNNING') AS sql_threads, \
    (SELECT GROUP_CONCAT(VARIABLE_VALUE ORDER BY VARIABLE_NAME) FROM information_schema.GLOBAL_STATUS \
      WHERE VARIABLE_NAME IN ('COM_CHANGE_MASTER', 'COM_RESET')) AS config_epoch";

const STATUS_SQL: &str = "SHOW SLAVE STATUS";

/// The position feed: three server variables, no status scan. A replica's applied position, a
/// primary's binlog position.
const POSITION_SQL: &str = "SELECT IF(@@global.read_only, 'true', 'false') AS read_only, \
    @@global.gtid_slave_pos AS slave_pos, @@global.gtid_binlog_pos AS binlog_pos";

/// How far a replica has received: the total of its sequence numbers (within one cluster's
/// history, more is further), the IO thread's position and what the SQL thread has applied
/// (how far behind the primary's last sighting it is: the further of the two).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Received {
    weight: u128,
    /// The same measure of what was applied: among replicas that received as much, the one
    /// that applied more is further.
    applied_weight: u128,
    io_pos: String,
    applied: String,
}

/// The failover lock's name (`GET_LOCK`), unlikely to be an application's.
const LOCK: &str = "rwsplit.failover";

fn position(text: Option<&str>) -> Result<ReplayPosition, ProbeError> {
    gtids(text).map(ReplayPosition::MariaDb)
}

/// A GTID position variable's value (empty or absent: no GTID).
fn gtids(text: Option<&str>) -> Result<MariaDbPosition, ProbeError> {
    match text.map(str::trim) {
        None | Some("") => Ok(MariaDbPosition::new([])),
        Some(text) => {
            text.parse::<MariaDbPosition>().map_err(|_| unexpected("GTID position", Some(text)))
        }
    }
}

/// What a MariaDB node's probes remember on one connection: whether replication is configured
/// (`SHOW SLAVE STATUS` has a row), as of a `config_epoch`. Only `CHANGE MASTER` or `RESET
/// SLAVE` changes it, and both move the epoch; a restart drops the connection, and a new
/// connection starts with nothing remembered.
///
/// The server counts a statement when it begins, so a probe can see the epoch moved while the
/// `RESET SLAVE ALL` or `CHANGE MASTER` that moved it is still running, and read the status
/// as it was before: remembered, that answer would stand until the next change — a promoted
/// replica seen as a replica for good (the switchover itests can hit that window). So an
/// answer is remembered only once a later probe, at the same epoch, has read the same
/// (`confirmed`), and a writable node with no SQL thread running that is remembered as
/// configured — a replica stopped, or one being promoted — is asked every probe, since that
/// answer alone keeps it from being the primary. What is left: a `CHANGE MASTER` on a writable
/// node with no SQL thread started, still running across two probes, would be remembered as
/// not configured (the node taken for a primary) until the next change.
#[derive(Debug, Default)]
pub(crate) struct Memo {
    configured: Option<Configured>,
}

/// `SHOW SLAVE STATUS`'s last answer on a connection.
#[derive(Debug)]
struct Configured {
    /// The configuration epoch it was read at.
    epoch: String,
    /// It had a row.
    configured: bool,
    /// An earlier read at the same epoch said the same.
    confirmed: bool,
}

/// Reads the probe's row and, if it was read this time, `SHOW SLAVE STATUS` (absent: not
/// replicating, or no privilege); `configured` is whether replication is configured (a status
/// row exists, now or as remembered).
///
/// A node is a replica if it is read-only, has replication configured, or runs a replication
/// SQL thread; else the primary. Its applying comes from the status row when there is one,
/// else from the running SQL threads; `Seconds_Behind_Master` only from a status row (without
/// it a replica's time lag is estimated from positions: see `TopologyState`).
pub(crate) fn read(
    vars: &Row,
    configured: bool,
    status: Option<&Row>,
    latency: std::time::Duration,
) -> Result<Observation, ProbeError> {
    let read_only = flag(vars, "read_only")?;
    let sql_threads = vars.get("sql_threads").and_then(|v| v.trim().parse::<u32>().ok());
    let running = sql_threads.is_some_and(|n| n > 0);
    let role = if read_only || configured || running { Role::Replica } else { Role::Primary };
    let pos_text =
        if role == Role::Replica { vars.get("slave_pos") } else { vars.get("binlog_pos") };
    let applying = match status {
        Some(s) => Some(s.get("Slave_SQL_Running") == Some("Yes")),
        None if role == Role::Replica => sql_threads.map(|n| n > 0),
        None => None,
    };
    Ok(Observation {
        role,
        position: Some(position(pos_text)?),
        received_lsn: None,
        since_replay: None,
        replay_paused: false,
        seconds_behind: status
            .and_then(|s| s.get("Seconds_Behind_Master"))
            .and_then(|v| v.parse().ok()),
        applying,
        latency,
        lineage: lineage(vars)?,
    })
}

/// The node's place in the GTID history, when the probe read its `server_id` (the position
/// feed does not).
fn lineage(vars: &Row) -> Result<Option<Lineage>, ProbeError> {
    let Some(id) = vars.get("server_id") else { return Ok(None) };
    let server_id = id.trim().parse::<u32>().map_err(|_| unexpected("server_id", Some(id)))?;
    Ok(Some(Lineage { server_id, slave_pos: gtids(vars.get("slave_pos"))? }))
}

/// A position's total of sequence numbers.
fn weight(pos: &str) -> u128 {
    pos.trim()
        .parse::<MariaDbPosition>()
        .map(|p| p.gtids().iter().map(|g| u128::from(g.sequence())).sum())
        .unwrap_or(0)
}

/// A MariaDB string literal's body (backslashes escape there).
fn literal(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "''")
}

impl Product for MariaDb {
    type Received = Received;
    const UNIT: LagUnit = LagUnit::Transactions;
    type Detached = ();

    /// No byte measure (unknown). Time: zero when the replica has applied every GTID the
    /// primary has written, in every domain; otherwise `Seconds_Behind_Master` while the SQL
    /// thread runs, if above 0 (else left to the estimate from positions), and unknown when it
    /// is stopped (where MariaDB itself reports NULL).
    fn lag(primary: &Observation, replica: &Observation) -> Lag {
        let (Some(ReplayPosition::MariaDb(p)), Some(ReplayPosition::MariaDb(r))) =
            (primary.position(), replica.position())
        else {
            return Lag::unknown();
        };
        let caught_up = p
            .gtids()
            .iter()
            .all(|g| r.get(g.domain()).is_some_and(|have| have.sequence() >= g.sequence()));
        if caught_up {
            Lag::new(None, Some(Duration::ZERO))
        } else if replica.applying == Some(true) {
            // `Seconds_Behind_Master` is whole seconds, and reads 0 on a replica waiting out
            // its `MASTER_DELAY` between events: while the replica lacks a GTID the primary has
            // written, 0 says nothing a millisecond wait could use, and the estimate from
            // positions stands instead (`TopologyState`).
            let said = replica.seconds_behind.filter(|&s| s > 0);
            Lag::new(None, said.map(Duration::from_secs))
        } else {
            Lag::unknown()
        }
    }
    type Memo = Memo;

    async fn probe<C: ProbeConn>(
        conn: &C,
        memo: &mut Memo,
        started: tokio::time::Instant,
    ) -> Result<Observation, ProbeError> {
        let vars = conn.fetch_row(PROBE_SQL).await?.unwrap_or_default();
        let epoch = vars.get("config_epoch").map(str::to_owned);
        // `SHOW SLAVE STATUS` only when the replication configuration may have changed since
        // it was last read on this connection: the first probe, then after a `CHANGE MASTER`
        // or `RESET`. It tells a writable replica whose SQL thread is stopped (a row) from a
        // primary (none). Needs the SLAVE MONITOR privilege; without it, no row: the role
        // comes from read_only and the running SQL threads.
        // (See `Memo` for when the answer is asked again.)
        // As `read` sees it: no SQL thread known to run.
        let writable_and_stopped = !flag(&vars, "read_only")?
            && vars
                .get("sql_threads")
                .and_then(|v| v.trim().parse::<u32>().ok())
                .is_none_or(|n| n == 0);
        if let (Some(known), Some(now)) = (&memo.configured, &epoch)
            && known.epoch == *now
            && known.confirmed
            && !(known.configured && writable_and_stopped)
        {
            return read(&vars, known.configured, None, started.elapsed());
        }
        let status = match conn.fetch_row(STATUS_SQL).await {
            Ok(row) => {
                if let Some(epoch) = epoch {
                    // Confirmed by a second read at the same epoch that says the same.
                    let confirmed = memo
                        .configured
                        .as_ref()
                        .is_some_and(|k| k.epoch == epoch && k.configured == row.is_some());
                    memo.configured =
                        Some(Configured { epoch, configured: row.is_some(), confirmed });
                }
                row
            }
            // A read that failed after one succeeded on this connection (a lock wait, the
            // connection breaking between the two statements) says nothing new: what was read
            // stands (unconfirmed, it is asked again next probe). Never having read one (no
            // SLAVE MONITOR privilege): no row, and the role comes from `read_only` and the
            // running SQL threads.
            Err(_) => {
                if let Some(known) = &memo.configured {
                    return read(&vars, known.configured, None, started.elapsed());
                }
                None
            }
        };
        read(&vars, status.is_some(), status.as_ref(), started.elapsed())
    }

    async fn replay_position<C: ProbeConn>(
        conn: &C,
        last: &Observation,
    ) -> Result<Option<ReplayPosition>, ProbeError> {
        let row = conn.fetch_row(POSITION_SQL).await?.unwrap_or_default();
        // A replica that is no longer read-only may have been promoted, a primary that is may
        // have been demoted: the full probe decides.
        match (last.role(), flag(&row, "read_only")?) {
            (Role::Replica, true) => position(row.get("slave_pos")).map(Some),
            (Role::Primary, false) => position(row.get("binlog_pos")).map(Some),
            _ => Ok(None),
        }
    }

    async fn receiving<C: ProbeConn>(conn: &C) -> Result<bool, ProbeError> {
        let status = conn.fetch_row(STATUS_SQL).await?;
        Ok(status.is_some_and(|s| s.get("Slave_IO_Running") == Some("Yes")))
    }

    async fn received<C: ProbeConn>(conn: &C) -> Result<Option<Received>, ProbeError> {
        let status = conn.fetch_row(STATUS_SQL).await?;
        let vars = conn
            .fetch_row(
                "SELECT @@global.gtid_slave_pos AS slave_pos, @@global.read_only AS read_only",
            )
            .await?
            .unwrap_or_default();
        if status.is_none() && !flag(&vars, "read_only")? {
            // Writable and replicating from nobody: a primary (promoted already).
            return Ok(None);
        }
        let io_pos = status.as_ref().and_then(|s| s.get("Gtid_IO_Pos")).unwrap_or("").to_owned();
        let applied = vars.get("slave_pos").unwrap_or("").to_owned();
        Ok(Some(Received {
            weight: weight(&io_pos).max(weight(&applied)),
            applied_weight: weight(&applied),
            io_pos,
            applied,
        }))
    }

    fn received_more(other: &Received, than: &Received) -> bool {
        other.weight > than.weight
    }

    fn behind(primary: &ReplayPosition, received: &Received) -> Option<u64> {
        let primary = CausalToken::new(primary.clone());
        [&received.io_pos, &received.applied]
            .into_iter()
            .filter_map(|pos| position(Some(pos)).ok())
            .filter_map(|pos| primary.shortfall(&pos))
            .min()
    }

    async fn try_lock<C: ProbeConn>(conn: &C) -> Result<bool, ProbeError> {
        let row = conn.fetch_row(&format!("SELECT GET_LOCK('{LOCK}', 0) AS v")).await?;
        flag(&row.unwrap_or_default(), "v")
    }

    async fn holds_lock<C: ProbeConn>(conn: &C) -> Result<bool, ProbeError> {
        let sql = format!("SELECT COALESCE(IS_USED_LOCK('{LOCK}') = CONNECTION_ID(), 0) AS v");
        flag(&conn.fetch_row(&sql).await?.unwrap_or_default(), "v")
    }

    async fn unlock<C: ProbeConn>(conn: &C) -> Result<(), ProbeError> {
        conn.fetch_row(&format!("SELECT RELEASE_LOCK('{LOCK}') AS v")).await.map(drop)
    }

    async fn apply_received<C: ProbeConn>(conn: &C, within: Duration) -> Result<bool, ProbeError> {
        // Nothing more arrives (the primary is gone; a relay log that grew meanwhile would be
        // lost by RESET SLAVE ALL), then the SQL thread applies what the IO thread wrote.
        conn.execute("STOP SLAVE IO_THREAD").await?;
        let status = conn.fetch_row(STATUS_SQL).await?.unwrap_or_default();
        let io_pos = status.get("Gtid_IO_Pos").unwrap_or("").trim().to_owned();
        let applying = status.get("Slave_SQL_Running") == Some("Yes");
        let applied = if io_pos.is_empty() {
            true
        } else if !applying {
            false
        } else {
            let wait = format!(
                "SELECT MASTER_GTID_WAIT('{}', {}) AS v",
                literal(&io_pos),
                within.as_secs_f64()
            );
            // 0: applied; -1: timed out (NULL: an error).
            conn.fetch_row(&wait).await?.is_some_and(|r| r.get("v") == Some("0"))
        };
        if !applied {
            // Back as it was: the failover is abandoned with nothing changed.
            conn.execute("START SLAVE IO_THREAD").await?;
        }
        Ok(applied)
    }

    async fn resume_receiving<C: ProbeConn>(conn: &C) -> Result<(), ProbeError> {
        conn.execute("START SLAVE IO_THREAD").await
    }

    async fn promote<C: ProbeConn>(conn: &C, _within: Duration) -> Result<bool, ProbeError> {
        conn.execute("STOP SLAVE").await?;
        conn.execute("RESET SLAVE ALL").await?;
        conn.execute("SET GLOBAL read_only = 0").await?;
        Ok(true)
    }

    async fn make_read_only<C: ProbeConn>(conn: &C) -> Result<bool, ProbeError> {
        conn.execute("SET GLOBAL read_only = 1").await?;
        Ok(true)
    }

    async fn detach<C: ProbeConn>(replica: &C) -> Result<(), ProbeError> {
        replica.execute("STOP SLAVE IO_THREAD").await
    }

    async fn reattach<C: ProbeConn>(replica: &C, _detached: &()) -> Result<(), ProbeError> {
        replica.execute("START SLAVE IO_THREAD").await
    }

    async fn repoint<C: ProbeConn>(
        replica: &C,
        _detached: &(),
        _new_primary: &C,
        host: &str,
        port: u16,
    ) -> Result<(), ProbeError> {
        replica.execute("STOP SLAVE").await?;
        replica
            .execute(&format!(
                "CHANGE MASTER TO MASTER_HOST = '{}', MASTER_PORT = {port}, \
                 MASTER_USE_GTID = slave_pos",
                literal(host)
            ))
            .await?;
        replica.execute("START SLAVE").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replica that applied more of what it received has not received more: the check that
    /// no other replica got further than the candidate compares what arrived.
    #[test]
    fn received_more_counts_what_arrived_not_what_was_applied() {
        let at = |io: &str, applied: &str| Received {
            weight: weight(io).max(weight(applied)),
            applied_weight: weight(applied),
            io_pos: io.to_owned(),
            applied: applied.to_owned(),
        };
        let candidate = at("0-1-10", "0-1-4");
        assert!(!MariaDb::received_more(&at("0-1-10", "0-1-10"), &candidate));
        assert!(at("0-1-10", "0-1-10") > candidate, "yet it is the better choice between them");
        assert!(MariaDb::received_more(&at("0-1-11", "0-1-4"), &candidate));
    }

    #[test]
    fn positions_compare_by_progress() {
        assert!(weight("0-1-10,1-2-5") > weight("0-1-12"));
        assert_eq!(weight(""), 0);
        assert_eq!(literal("a'b\\c"), "a''b\\\\c");
    }
}
