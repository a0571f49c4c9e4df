//! PostgreSQL: physical streaming replication with hot standbys, one replication slot per
//! standby.

use std::time::{Duration, Instant};

use super::{Addr, BoxFuture, Control, Product, start_all};
use crate::error::{Error, Result};
use crate::sql::Conn;
use crate::vocab::{CONTROL_TIMEOUT, DbKind, START_TIMEOUT, format_lsn, parse_lsn};

/// PostgreSQL (any version with `pg_promote`, 12+; `ALTER SYSTEM SET primary_conninfo` with a
/// reload needs 13+).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Postgres;

/// The server's current WAL write position, as text.
pub(crate) const CURRENT_LSN: &str = "SELECT pg_current_wal_lsn()::text";

/// A replica's replay position, as text (`NULL` on a primary).
pub(crate) const REPLAY_LSN: &str = "SELECT pg_last_wal_replay_lsn()::text";

/// Succeeds only on a server that accepts writes (a standby cannot assign a transaction id).
pub(crate) const ACCEPTS_WRITES: &str = "SELECT txid_current()::text";

/// `true` once a replica has replayed up to `target` (an LSN as text).
pub(crate) fn replayed_past(target: &str) -> String {
    format!("SELECT (pg_last_wal_replay_lsn() >= '{target}'::pg_lsn)::text")
}

/// The apply delay a session sees, in milliseconds.
const APPLY_DELAY_SQL: &str =
    "SELECT setting FROM pg_settings WHERE name = 'recovery_min_apply_delay'";

/// The URL of database `db` on the node listening on `port` of 127.0.0.1.
pub(crate) fn url(port: u16, db: &str) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/{db}")
}

/// The `primary_conninfo` and `primary_slot_name` of a standby of `upstream`.
pub(crate) fn standby_settings(node: &str, upstream: &Addr) -> String {
    format!(
        "primary_conninfo = 'host={} port={} user=postgres application_name={node}'\n\
         primary_slot_name = '{node}'\n",
        upstream.host, upstream.port
    )
}

impl Product for Postgres {
    fn kind(&self) -> DbKind {
        DbKind::Postgres
    }

    fn admin_db(&self) -> &'static str {
        "postgres"
    }

    fn url(&self, port: u16, db: &str) -> String {
        url(port, db)
    }

    fn admin_url(&self, port: u16, db: &str) -> String {
        url(port, db)
    }

    fn create_database_sql(&self, name: &str) -> String {
        format!("CREATE DATABASE \"{name}\"")
    }

    fn database_exists_sql(&self, name: &str) -> String {
        format!("SELECT datname::text FROM pg_database WHERE datname = '{name}'")
    }

    fn drop_database_sql(&self, name: &str) -> String {
        format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")
    }

    fn is_replica_sql(&self) -> &'static str {
        "SELECT pg_is_in_recovery()::text"
    }

    fn position_sql(&self) -> &'static str {
        "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text \
         ELSE pg_current_wal_lsn()::text END"
    }

    fn unreplayed_sql(&self) -> Option<&'static str> {
        Some(
            "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint::text",
        )
    }

    fn pause_replay_sql(&self) -> &'static str {
        "SELECT pg_wal_replay_pause()"
    }

    fn resume_replay_sql(&self) -> &'static str {
        "SELECT pg_wal_replay_resume()"
    }

    fn start_cluster<'a>(&'a self, nodes: &'a [&'a dyn Control]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let Some((primary, replicas)) = nodes.split_first() else { return Ok(()) };
            primary.start()?;
            primary.wait_accepting(START_TIMEOUT).await?;
            for n in replicas {
                let sql = format!("SELECT pg_create_physical_replication_slot('{}')", n.name());
                primary.execute("postgres", &sql).await?;
            }
            start_all(replicas)?;
            for n in replicas {
                n.wait_accepting(START_TIMEOUT).await?;
            }
            Ok(())
        })
    }

    fn replicating<'a>(&'a self, nodes: &'a [&'a dyn Control]) -> BoxFuture<'a, usize> {
        Box::pin(async move {
            let Some(primary) = nodes.first() else { return 0 };
            // Not `pg_basebackup`'s own WAL stream, which shows as streaming too while a
            // container backend's standby copies its data.
            let sql = "SELECT count(*)::text FROM pg_stat_replication \
                       WHERE state = 'streaming' AND application_name <> 'pg_basebackup'";
            match primary.text(sql).await {
                Ok(Some(n)) => n.parse().unwrap_or(0),
                _ => 0,
            }
        })
    }

    fn wait_caught_up<'a>(
        &'a self,
        node: &'a dyn Control,
        primary: &'a dyn Control,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let start = Instant::now();
            let target = primary.text(CURRENT_LSN).await?.unwrap_or_default();
            let target = parse_lsn(&target).ok_or_else(|| {
                primary.invalid(&format!("returned an unreadable LSN `{target}`"))
            })?;
            while node
                .text(REPLAY_LSN)
                .await?
                .as_deref()
                .and_then(parse_lsn)
                .is_none_or(|l| l < target)
            {
                if start.elapsed() > timeout {
                    return Err(Error::Timeout {
                        what: format!("{} to replay up to {}", node.name(), format_lsn(target)),
                        waited: timeout,
                    });
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(())
        })
    }

    fn set_apply_delay<'a>(
        &'a self,
        node: &'a dyn Control,
        delay: Duration,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let ms = delay.as_millis();
            let was = node.text(APPLY_DELAY_SQL).await?;
            node.admin(&format!("ALTER SYSTEM SET recovery_min_apply_delay = '{ms}ms'")).await?;
            node.admin("SELECT pg_reload_conf()").await?;
            wait_apply_delay_reloaded(node, ms).await?;
            confirm_apply_delay(node, delay, was.as_deref() == Some("0")).await
        })
    }

    fn clear_apply_delay<'a>(&'a self, node: &'a dyn Control) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            node.admin("ALTER SYSTEM RESET recovery_min_apply_delay").await?;
            node.admin("SELECT pg_reload_conf()").await?;
            wait_apply_delay_reloaded(node, 0).await?;
            confirm_apply_delay(node, Duration::ZERO, false).await
        })
    }

    fn promote<'a>(&'a self, node: &'a dyn Control) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let ok = node.text("SELECT pg_promote(true, 30)::text").await?;
            if ok.as_deref() == Some("true") {
                Ok(())
            } else {
                Err(node.invalid("pg_promote() did not finish"))
            }
        })
    }

    fn follow<'a>(
        &'a self,
        node: &'a dyn Control,
        slot_on: &'a dyn Control,
        upstream: Addr,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let slot = node.name();
            slot_on
                .admin(&format!(
                    "SELECT pg_create_physical_replication_slot('{slot}') WHERE NOT EXISTS \
                     (SELECT 1 FROM pg_replication_slots WHERE slot_name = '{slot}')"
                ))
                .await?;
            for line in standby_settings(slot, &upstream).lines() {
                node.admin(&format!("ALTER SYSTEM SET {line}")).await?;
            }
            node.admin("SELECT pg_reload_conf()").await
        })
    }
}

/// Waits until a new session sees `recovery_min_apply_delay` = `ms`. A new session is forked
/// from the postmaster, so it sees the value once the postmaster has re-read the configuration,
/// which it does before signalling its children (the startup process among them) to do the
/// same.
async fn wait_apply_delay_reloaded(node: &dyn Control, ms: u128) -> Result<()> {
    let start = Instant::now();
    let want = ms.to_string();
    loop {
        // A new connection each time: an existing session reloads on its own schedule.
        let seen = node.text(APPLY_DELAY_SQL).await?;
        if seen.as_deref() == Some(want.as_str()) {
            return Ok(());
        }
        if start.elapsed() > CONTROL_TIMEOUT {
            return Err(Error::Timeout {
                what: format!(
                    "{} to reload recovery_min_apply_delay = {ms} ms (it shows {})",
                    node.name(),
                    seen.as_deref().unwrap_or("nothing")
                ),
                waited: CONTROL_TIMEOUT,
            });
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// What became of one apply-delay probe commit.
enum Probe {
    /// The startup process holds a commit back (wait event `RecoveryApplyDelay`).
    Held,
    /// Applied.
    Applied,
    /// Neither, before the deadline.
    TimedOut,
}

/// Confirms that the startup process applies with `delay` by probe commits on the server this
/// replica streams from. A nonzero delay is confirmed when the startup process is seen holding
/// back a commit: any commit if it applied without delay before (`was_off`: whatever it holds,
/// it holds by the new value; with other writers that is often one of theirs), else one written
/// after the probe's first record. Zero is confirmed when the probe has been applied. Without
/// an upstream it streams from (or one this process cannot reach), with replay paused, or on a
/// node no longer in recovery, nothing can be probed: the reload alone has to do.
async fn confirm_apply_delay(node: &dyn Control, delay: Duration, was_off: bool) -> Result<()> {
    /// Shorter holds may fall between two polls: a probe applied after the reload is then
    /// taken as confirmation.
    const OBSERVABLE: Duration = Duration::from_millis(20);
    let waited = CONTROL_TIMEOUT + delay;
    let deadline = Instant::now() + waited;
    let mut me = node.conn().await?;
    // (CASE evaluates in order: `pg_is_wal_replay_paused()` fails on a primary.)
    let upstream = "SELECT CASE WHEN NOT pg_is_in_recovery() OR pg_is_wal_replay_paused() \
         THEN NULL ELSE (SELECT sender_host || ' ' || sender_port FROM pg_stat_wal_receiver \
         WHERE status = 'streaming') END::text";
    let upstream = me.text(upstream).await.map_err(|e| node.sql_error(upstream, e))?;
    // The upstream as the replica names it, mapped to the port this process reaches it on.
    let port = upstream.as_deref().and_then(|u| {
        let (host, port) = u.split_once(' ')?;
        node.routes().client_port(&Addr::new(host, port.parse().ok()?))
    });
    let Some(port) = port else {
        me.close().await;
        return Ok(());
    };
    let url = url(port, "postgres");
    let mut up = Conn::open(DbKind::Postgres, &url, CONTROL_TIMEOUT)
        .await
        .map_err(|e| node.sql_error(&format!("connect to its upstream on port {port}"), e))?;
    let result = loop {
        // A transactional message gets the transaction an XID and a WAL record, so its commit
        // record is written and flushed (streamed) at once; `txid_current()` alone would commit
        // asynchronously and reach the replica only when the WAL writer runs.
        let probe = "SELECT pg_logical_emit_message(true, 'rwsplit-testkit', \
                     'apply delay probe')::text";
        let first = up.text(probe).await.map_err(|e| node.sql_error(probe, e))?;
        let committed = up.text(CURRENT_LSN).await.map_err(|e| node.sql_error(CURRENT_LSN, e))?;
        let (Some(first), Some(committed)) = (first, committed) else {
            break Err(node.invalid("could not read its upstream's WAL position"));
        };
        // Replay position first, then the wait event: a hold seen after the probe's first
        // record was replayed is the hold of a commit written after it.
        let poll = format!(
            "SELECT format('%s %s %s', \
               pg_last_wal_replay_lsn() >= '{first}'::pg_lsn, \
               pg_last_wal_replay_lsn() >= '{committed}'::pg_lsn, \
               EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'startup' \
                       AND wait_event = 'RecoveryApplyDelay'))"
        );
        let outcome = loop {
            let state = me.text(&poll).await.map_err(|e| node.sql_error(&poll, e))?;
            let flags: Vec<bool> =
                state.as_deref().unwrap_or_default().split(' ').map(|f| f == "t").collect();
            let [past_first, past_commit, holding] = flags[..] else {
                break Err(node.invalid(&format!("answered `{state:?}` to the probe's poll")));
            };
            if past_commit {
                break Ok(Probe::Applied);
            }
            if holding && (past_first || was_off) && !delay.is_zero() {
                break Ok(Probe::Held);
            }
            if Instant::now() > deadline {
                break Ok(Probe::TimedOut);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        match outcome {
            Err(e) => break Err(e),
            Ok(Probe::Held) => break Ok(()),
            Ok(Probe::Applied) if delay < OBSERVABLE => break Ok(()),
            // Applied at once: the startup process had not taken the new value yet.
            Ok(Probe::Applied) if Instant::now() <= deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(Probe::Applied | Probe::TimedOut) => {
                let what = if delay.is_zero() {
                    format!("{} to apply a probe commit with the apply delay cleared", node.name())
                } else {
                    format!(
                        "{} to hold a probe commit back with recovery_min_apply_delay = {} ms",
                        node.name(),
                        delay.as_millis()
                    )
                };
                break Err(Error::Timeout { what, waited });
            }
        }
    };
    up.close().await;
    me.close().await;
    result
}
