//! Replication positions on the wire: what the primary has written after a write (the causal
//! token), and waiting for a replica to replay up to a token.
//!
//! Capture costs one round trip on the primary per write. SeaORM's drivers give no way to have
//! the server send its position with the write's own reply (MariaDB can put `last_gtid` in the
//! OK packet with `session_track_system_variables`, MySQL the GTID with `session_track_gtids`,
//! but sqlx does not expose session-state tracking), so the position is asked for right after
//! the write. Any connection of the primary's pool will do: once the write has committed, the
//! server-wide position is at or past it.

use std::time::{Duration, Instant};

use rwsplit_core::{CausalToken, Lsn, MariaDbPosition, PgPosition, ReplayPosition};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};

use crate::routing_error::{RoutingError, bounded};

/// PostgreSQL: the WAL insert position (the end of every record inserted so far, so at or past
/// the commit record of any committed write, with `synchronous_commit` off too) and the
/// timeline it is on. The system identifier comes from the monitor or one extra query (it
/// reads the control file), and is cached per node.
const PG_CAPTURE: &str = "SELECT pg_current_wal_insert_lsn()::text AS lsn, \
    (('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::int)::text AS timeline";

const PG_SYSTEM_ID: &str = "SELECT system_identifier::text AS system_id FROM pg_control_system()";

/// MariaDB: every GTID the primary has written, in every domain. `@@last_gtid` would be the
/// session's own write, but a pool gives no guarantee the next statement runs on the same
/// session; the global position is at or past it, which is what a token needs.
const MARIA_CAPTURE: &str = "SELECT @@global.gtid_binlog_pos AS pos";

/// PostgreSQL replica: how far it has replayed.
const PG_REPLAYED: &str = "SELECT pg_last_wal_replay_lsn()::text AS lsn";

/// The primary's position now, as a token: at or past every write that has committed.
/// `system_id` is the node's cached PostgreSQL system identifier (0 when not yet known; it is
/// then read, and returned for caching).
pub(crate) async fn capture(
    conn: &DatabaseConnection,
    system_id: u64,
) -> Result<(CausalToken, u64), DbErr> {
    match conn.get_database_backend() {
        DbBackend::Postgres => {
            let system_id = if system_id == 0 {
                let row = query_one(conn, PG_SYSTEM_ID, "system_id").await?;
                parse::<u64>(&row, "system_id")?
            } else {
                system_id
            };
            let row = query_one(conn, PG_CAPTURE, "lsn").await?;
            let lsn = parse::<Lsn>(&row, "lsn")?;
            let timeline = parse::<u32>(&row, "timeline")?;
            Ok((CausalToken::new(PgPosition::new(system_id, timeline, lsn)), system_id))
        }
        DbBackend::MySql => {
            let row = query_one(conn, MARIA_CAPTURE, "gtid_binlog_pos").await?;
            let text = text(&row, "pos").unwrap_or_default();
            let pos = text
                .trim()
                .parse::<MariaDbPosition>()
                .map_err(|e| unreadable("gtid_binlog_pos", Some(text.as_str()), Some(e)))?;
            Ok((CausalToken::new(pos), 0))
        }
        backend => Err(RoutingError::PositionUnsupported { backend }.into()),
    }
}

/// How waiting for a replica ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waited {
    /// The replica has replayed the token.
    CaughtUp,
    /// It had not within the time allowed.
    TimedOut,
}

/// Waits until the replica behind `conn` has replayed up to `token`, for at most `max`.
/// PostgreSQL 15 has no `WAIT FOR LSN`, so the replay position is polled, at growing intervals
/// (1 ms doubling to 8 ms); MariaDB waits in the server with `MASTER_GTID_WAIT`.
pub(crate) async fn wait_for(
    conn: &DatabaseConnection,
    token: &CausalToken,
    max: Duration,
) -> Result<Waited, DbErr> {
    let max = crate::deadline::cap(max);
    let deadline = crate::deadline::after(max);
    match token.position() {
        ReplayPosition::Postgres(want) => {
            let mut pause = Duration::from_millis(1);
            loop {
                let row = query_one(conn, PG_REPLAYED, "pg_last_wal_replay_lsn").await?;
                // NULL: not a standby (promoted, or a primary): it cannot be trusted here.
                let replayed = text(&row, "lsn");
                let Some(replayed) = replayed else { return Ok(Waited::TimedOut) };
                let lsn = replayed.parse::<Lsn>().map_err(|e| {
                    unreadable("pg_last_wal_replay_lsn", Some(replayed.as_str()), Some(e))
                })?;
                if lsn >= want.lsn() {
                    return Ok(Waited::CaughtUp);
                }
                let now = Instant::now();
                if now >= deadline {
                    return Ok(Waited::TimedOut);
                }
                tokio::time::sleep(pause.min(deadline - now)).await;
                pause = (pause * 2).min(Duration::from_millis(8));
            }
        }
        ReplayPosition::MariaDb(want) => {
            let stmt = Statement::from_sql_and_values(
                DbBackend::MySql,
                "SELECT MASTER_GTID_WAIT(?, ?) AS waited",
                [want.to_string().into(), max.as_secs_f64().into()],
            );
            let row = conn
                .query_one_raw(stmt)
                .await?
                .ok_or_else(|| unreadable("MASTER_GTID_WAIT", None, None))?;
            let waited: i64 = row.try_get("", "waited").unwrap_or(-1);
            Ok(if waited == 0 { Waited::CaughtUp } else { Waited::TimedOut })
        }
        _ => Ok(Waited::TimedOut),
    }
}

/// The one row `sql` returns; `what` names it in the error if there is none.
async fn query_one(
    conn: &DatabaseConnection,
    sql: &str,
    what: &'static str,
) -> Result<sea_orm::QueryResult, DbErr> {
    let stmt = Statement::from_string(conn.get_database_backend(), sql);
    conn.query_one_raw(stmt).await?.ok_or_else(|| unreadable(what, None, None))
}

/// The error for a position the server returned as `value` (`None`: nothing) for `what`.
fn unreadable(
    what: &'static str,
    value: Option<&str>,
    source: Option<rwsplit_core::Error>,
) -> DbErr {
    RoutingError::PositionUnreadable { what, value: value.map(bounded), source }.into()
}

/// A column as text: MariaDB returns system variables as strings or as bytes.
fn text(row: &sea_orm::QueryResult, column: &str) -> Option<String> {
    if let Ok(v) = row.try_get::<Option<String>>("", column) {
        return v;
    }
    row.try_get::<Option<Vec<u8>>>("", column)
        .ok()
        .flatten()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

fn parse<T: std::str::FromStr>(
    row: &sea_orm::QueryResult,
    column: &'static str,
) -> Result<T, DbErr> {
    let text = text(row, column);
    text.as_deref()
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| unreadable(column, text.as_deref(), None))
}
