//! One server of a cluster, with the controls that break and heal it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::cluster::{CONTROL_TIMEOUT, DbKind, START_TIMEOUT, parse_lsn};
use crate::error::{Error, IoContext, Result};
use crate::native::{Engine, process};
use crate::sql::Conn;

#[derive(Debug, Default)]
pub(crate) struct Proc {
    child: Option<Child>,
    pid: Option<u32>,
    /// Processes stopped by [`Node::hang`], resumed by [`Node::unhang`].
    hung: Vec<u32>,
}

impl Proc {
    pub(crate) fn adopted(pid: Option<u32>) -> Proc {
        Proc { child: None, pid, hung: Vec::new() }
    }
}

/// What a node's server process is doing, as far as the operating system says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProcessState {
    /// Running.
    Running,
    /// Stopped by SIGSTOP ([`Node::hang`]).
    Hung,
    /// Not running (never started, crashed or stopped).
    Stopped,
}

impl std::fmt::Display for ProcessState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProcessState::Running => "running",
            ProcessState::Hung => "hung",
            ProcessState::Stopped => "stopped",
        })
    }
}

/// A node's role and position, as the server reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStatus {
    /// The node's name.
    pub name: String,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The process state.
    pub process: ProcessState,
    /// `Some(true)` for a replica, `Some(false)` for a primary, `None` when it did not answer.
    pub is_replica: Option<bool>,
    /// PostgreSQL: the current WAL position on a primary, the replay position on a replica.
    /// MariaDB: `gtid_binlog_pos` on a primary, `gtid_slave_pos` on a replica.
    pub position: Option<String>,
    /// PostgreSQL replicas: WAL received but not replayed, in bytes.
    pub unreplayed_bytes: Option<i64>,
}

/// One database server of a [`Cluster`](crate::Cluster).
#[derive(Debug)]
pub struct Node {
    pub(crate) name: String,
    pub(crate) port: u16,
    pub(crate) data: PathBuf,
    pub(crate) log: PathBuf,
    pub(crate) settings: Vec<(String, String)>,
    pub(crate) engine: Arc<Engine>,
    pub(crate) proc: Mutex<Proc>,
}

impl Node {
    /// The node's name (`n0`, `n1`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which database it runs.
    pub fn db(&self) -> DbKind {
        self.engine.kind()
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The application URL of the default database (`postgres` on PostgreSQL, `mysql` on
    /// MariaDB). MariaDB URLs use the unprivileged user `app`, which `read_only` stops on
    /// replicas.
    pub fn url(&self) -> String {
        self.engine.url(self.port, self.engine.admin_db())
    }

    /// The application URL of database `db` on this node.
    pub fn url_for(&self, db: &str) -> String {
        self.engine.url(self.port, db)
    }

    /// Its data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Its server log.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of its server log.
    pub fn log_tail(&self, lines: usize) -> String {
        process::tail_file(&self.log, lines)
    }

    /// The server's process id, when running.
    pub fn pid(&self) -> Option<u32> {
        self.lock().pid.filter(|&p| !process::is_gone(p))
    }

    fn lock(&self) -> MutexGuard<'_, Proc> {
        self.proc.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the server process runs (hung counts as running).
    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// The process state.
    pub fn process_state(&self) -> ProcessState {
        match self.pid() {
            None => ProcessState::Stopped,
            Some(p) if process::is_stopped(p) => ProcessState::Hung,
            Some(_) => ProcessState::Running,
        }
    }

    pub(crate) fn spawn(&self) -> Result<()> {
        let mut guard = self.lock();
        if guard.pid.is_some_and(|p| !process::is_gone(p)) {
            return Err(self.invalid("is already running"));
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .io_context(|| format!("opening {}", self.log.display()))?;
        let err = log.try_clone().io_context(|| "duplicating the log handle".into())?;
        let mut cmd = self.engine.server(&self.data, &self.name, self.port, &self.settings);
        cmd.stdin(Stdio::null()).stdout(log).stderr(err);
        // Its own process group: a Ctrl-C meant for the test runner does not reach the server.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().io_context(|| format!("starting {}", process::describe(&cmd)))?;
        guard.pid = Some(child.id());
        guard.child = Some(child);
        guard.hung.clear();
        Ok(())
    }

    /// Fails with the log tail if the server process has exited.
    pub(crate) fn check_alive(&self) -> Result<()> {
        let mut guard = self.lock();
        let exited = match guard.child.as_mut() {
            Some(c) => c.try_wait().ok().flatten().map(|s| s.to_string()),
            None => guard.pid.filter(|&p| process::is_gone(p)).map(|_| "exited".to_owned()),
        };
        match exited {
            Some(status) => {
                guard.child = None;
                guard.pid = None;
                Err(self.start_failed(format!("the server exited ({status})")))
            }
            None => Ok(()),
        }
    }

    fn start_failed(&self, reason: String) -> Error {
        Error::NodeStartFailed {
            node: self.name.clone(),
            reason,
            log: self.log.clone(),
            log_tail: self.log_tail(30),
        }
    }

    pub(crate) async fn wait_accepting(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            self.check_alive()?;
            if let Ok(mut c) = self.conn_timeout(Duration::from_secs(2)).await
                && c.execute("SELECT 1").await.is_ok()
            {
                c.close().await;
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(
                    self.start_failed(format!("not accepting connections after {timeout:?}"))
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn conn_timeout(&self, timeout: Duration) -> Result<Conn, sqlx::Error> {
        Conn::open(&self.engine, self.port, self.engine.admin_db(), timeout).await
    }

    pub(crate) async fn conn(&self) -> Result<Conn> {
        self.conn_timeout(CONTROL_TIMEOUT).await.map_err(|e| self.sql_error("connect", e))
    }

    /// Runs `sql` (one or more statements) as the superuser on database `db` of this node.
    pub async fn execute(&self, db: &str, sql: &str) -> Result<()> {
        let mut c = Conn::open(&self.engine, self.port, db, CONTROL_TIMEOUT)
            .await
            .map_err(|e| self.sql_error(&format!("connect to {db}"), e))?;
        c.execute(sql).await.map_err(|e| self.sql_error(sql, e))?;
        c.close().await;
        Ok(())
    }

    /// Runs `sql` on the default database and returns its first column as text.
    pub(crate) async fn text(&self, sql: &str) -> Result<Option<String>> {
        let mut c = self.conn().await?;
        let v = c.text(sql).await.map_err(|e| self.sql_error(sql, e))?;
        c.close().await;
        Ok(v)
    }

    async fn admin(&self, sql: &str) -> Result<()> {
        self.execute(self.engine.admin_db(), sql).await
    }

    pub(crate) fn sql_error(&self, sql: &str, source: sqlx::Error) -> Error {
        Error::Sql { node: self.name.clone(), sql: sql.to_owned(), source }
    }

    fn invalid(&self, what: &str) -> Error {
        Error::InvalidControl { node: self.name.clone(), what: what.to_owned() }
    }

    /// Whether the server reports being a replica: `pg_is_in_recovery()` on PostgreSQL,
    /// `@@read_only` on MariaDB.
    pub async fn is_replica(&self) -> Result<bool> {
        let sql = match &*self.engine {
            Engine::Postgres(_) => "SELECT pg_is_in_recovery()::text",
            Engine::MariaDb(_) => "SELECT IF(@@global.read_only, 'true', 'false')",
        };
        Ok(matches!(self.text(sql).await?.as_deref(), Some("true" | "1" | "ON")))
    }

    async fn require_replica(&self) -> Result<()> {
        if self.is_replica().await? { Ok(()) } else { Err(self.invalid("is not a replica")) }
    }

    fn require_postgres(&self, what: &str) -> Result<()> {
        match &*self.engine {
            Engine::Postgres(_) => Ok(()),
            Engine::MariaDb(_) => Err(self.invalid(&format!("{what} is PostgreSQL-only"))),
        }
    }

    fn require_mariadb(&self, what: &str) -> Result<()> {
        match &*self.engine {
            Engine::MariaDb(_) => Ok(()),
            Engine::Postgres(_) => Err(self.invalid(&format!("{what} is MariaDB-only"))),
        }
    }

    /// PostgreSQL: the primary's current WAL position (`pg_current_wal_lsn()`), in bytes.
    pub async fn current_lsn(&self) -> Result<u64> {
        self.require_postgres("current_lsn")?;
        let s = self.text("SELECT pg_current_wal_lsn()::text").await?.unwrap_or_default();
        parse_lsn(&s).ok_or_else(|| self.invalid(&format!("returned an unreadable LSN `{s}`")))
    }

    /// PostgreSQL: a replica's replay position (`pg_last_wal_replay_lsn()`), in bytes; `None`
    /// on a primary.
    pub async fn replay_lsn(&self) -> Result<Option<u64>> {
        self.require_postgres("replay_lsn")?;
        let s = self.text("SELECT pg_last_wal_replay_lsn()::text").await?;
        Ok(s.as_deref().and_then(parse_lsn))
    }

    /// MariaDB: `@@gtid_binlog_pos`, everything this server has written to its binlog.
    pub async fn gtid_binlog_pos(&self) -> Result<String> {
        self.require_mariadb("gtid_binlog_pos")?;
        Ok(self.text("SELECT @@global.gtid_binlog_pos").await?.unwrap_or_default())
    }

    /// MariaDB: `@@gtid_slave_pos`, what this replica has applied.
    pub async fn gtid_slave_pos(&self) -> Result<String> {
        self.require_mariadb("gtid_slave_pos")?;
        Ok(self.text("SELECT @@global.gtid_slave_pos").await?.unwrap_or_default())
    }

    /// Waits until this replica has applied everything `primary` has written so far.
    pub async fn wait_caught_up_with(&self, primary: &Node, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let timed_out = |what: String| Error::Timeout { what, waited: timeout };
        match &*self.engine {
            Engine::Postgres(_) => {
                let target = primary.current_lsn().await?;
                while self.replay_lsn().await?.is_none_or(|l| l < target) {
                    if start.elapsed() > timeout {
                        return Err(timed_out(format!(
                            "{} to replay up to {}",
                            self.name,
                            crate::format_lsn(target)
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Ok(())
            }
            Engine::MariaDb(_) => {
                let target = primary.gtid_binlog_pos().await?;
                let secs = timeout.as_secs_f64();
                let sql = format!("SELECT CAST(MASTER_GTID_WAIT('{target}', {secs}) AS CHAR)");
                match self.text(&sql).await?.as_deref() {
                    Some("0") => Ok(()),
                    _ => Err(timed_out(format!("{} to apply GTID {target}", self.name))),
                }
            }
        }
    }

    /// The node's role and position.
    pub async fn status(&self) -> NodeStatus {
        let process = self.process_state();
        let mut status = NodeStatus {
            name: self.name.clone(),
            port: self.port,
            process,
            is_replica: None,
            position: None,
            unreplayed_bytes: None,
        };
        if process != ProcessState::Running {
            return status;
        }
        let Ok(mut c) = self.conn_timeout(Duration::from_secs(2)).await else { return status };
        let (role, pos, unreplayed) = match &*self.engine {
            Engine::Postgres(_) => (
                "SELECT pg_is_in_recovery()::text",
                "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text \
                 ELSE pg_current_wal_lsn()::text END",
                Some(
                    "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint::text",
                ),
            ),
            Engine::MariaDb(_) => (
                "SELECT IF(@@global.read_only, 'true', 'false')",
                "SELECT IF(@@global.read_only, @@global.gtid_slave_pos, @@global.gtid_binlog_pos)",
                None,
            ),
        };
        status.is_replica =
            c.text(role).await.ok().flatten().map(|v| matches!(v.as_str(), "true" | "1"));
        status.position = c.text(pos).await.ok().flatten();
        if let Some(sql) = unreplayed {
            status.unreplayed_bytes = c.text(sql).await.ok().flatten().and_then(|v| v.parse().ok());
        }
        c.close().await;
        status
    }

    /// Pauses applying replicated changes on this replica; it keeps receiving them.
    /// PostgreSQL: `pg_wal_replay_pause()`; MariaDB: `STOP SLAVE SQL_THREAD`.
    pub async fn pause_replay(&self) -> Result<()> {
        self.require_replica().await?;
        match &*self.engine {
            Engine::Postgres(_) => self.admin("SELECT pg_wal_replay_pause()").await,
            Engine::MariaDb(_) => self.admin("STOP SLAVE SQL_THREAD").await,
        }
    }

    /// Resumes applying replicated changes on this replica.
    pub async fn resume_replay(&self) -> Result<()> {
        self.require_replica().await?;
        match &*self.engine {
            Engine::Postgres(_) => self.admin("SELECT pg_wal_replay_resume()").await,
            Engine::MariaDb(_) => self.admin("START SLAVE SQL_THREAD").await,
        }
    }

    /// Makes this replica apply each change only `delay` after it happened on the primary, and
    /// returns once the delay is in effect: a commit on the primary after this returns is held
    /// back.
    ///
    /// PostgreSQL: `recovery_min_apply_delay` (milliseconds) by `ALTER SYSTEM` and
    /// `pg_reload_conf()`. A reload is asynchronous: replay runs in the startup process, which
    /// takes the new value only once the postmaster has re-read the file and signalled it, so a
    /// commit arriving just after `pg_reload_conf()` returns could still be applied at once. This
    /// therefore waits until a new session sees the value (the postmaster has re-read it and
    /// signalled its children), then confirms with a probe: a commit on the server the replica
    /// streams from, after which the startup process must be seen holding a commit back (wait
    /// event `RecoveryApplyDelay`); a probe applied at once is retried. The probe is skipped
    /// while the replica streams from nobody or its replay is paused (nothing could be applied
    /// then); a delay too short to be observed (under 20 ms) is taken as in effect once a probe
    /// has been applied after the reload.
    ///
    /// MariaDB: `MASTER_DELAY` in whole seconds, rounded up plus one because event timestamps
    /// have whole seconds (the change is held between `delay` and `delay` + 1 s). `CHANGE
    /// MASTER` needs the replica threads stopped, so the SQL thread that `START SLAVE` starts
    /// applies the new delay from its first event: nothing to wait for.
    pub async fn set_apply_delay(&self, delay: Duration) -> Result<()> {
        self.require_replica().await?;
        match &*self.engine {
            Engine::Postgres(_) => {
                let ms = delay.as_millis();
                let was = self.text(APPLY_DELAY_SQL).await?;
                self.admin(&format!("ALTER SYSTEM SET recovery_min_apply_delay = '{ms}ms'"))
                    .await?;
                self.admin("SELECT pg_reload_conf()").await?;
                self.wait_apply_delay_reloaded(ms).await?;
                self.confirm_apply_delay(delay, was.as_deref() == Some("0")).await
            }
            Engine::MariaDb(_) => {
                // Binlog event timestamps have whole seconds: MASTER_DELAY = n holds an event
                // between n - 1 and n seconds. One second more guarantees at least `delay`.
                let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0) + 1;
                self.admin(&format!(
                    "STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = {secs}; START SLAVE"
                ))
                .await
            }
        }
    }

    /// Removes an apply delay set by [`Node::set_apply_delay`], and returns once it is gone.
    ///
    /// PostgreSQL: waits, as [`Node::set_apply_delay`] does, until a new session sees the
    /// reset value, then until a probe commit on the server the replica streams from has been
    /// applied (unless it streams from nobody or its replay is paused): everything committed
    /// before the probe has been applied, and what follows is applied without delay.
    /// MariaDB: `MASTER_DELAY = 0` with the replica threads stopped, in effect when it returns.
    pub async fn clear_apply_delay(&self) -> Result<()> {
        match &*self.engine {
            Engine::Postgres(_) => {
                self.admin("ALTER SYSTEM RESET recovery_min_apply_delay").await?;
                self.admin("SELECT pg_reload_conf()").await?;
                self.wait_apply_delay_reloaded(0).await?;
                self.confirm_apply_delay(Duration::ZERO, false).await
            }
            Engine::MariaDb(_) => {
                self.admin("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 0; START SLAVE").await
            }
        }
    }

    /// PostgreSQL: waits until a new session sees `recovery_min_apply_delay` = `ms`. A new
    /// session is forked from the postmaster, so it sees the value once the postmaster has
    /// re-read the configuration, which it does before signalling its children (the startup
    /// process among them) to do the same.
    async fn wait_apply_delay_reloaded(&self, ms: u128) -> Result<()> {
        let start = Instant::now();
        let want = ms.to_string();
        loop {
            // A new connection each time: an existing session reloads on its own schedule.
            let seen = self.text(APPLY_DELAY_SQL).await?;
            if seen.as_deref() == Some(want.as_str()) {
                return Ok(());
            }
            if start.elapsed() > CONTROL_TIMEOUT {
                return Err(Error::Timeout {
                    what: format!(
                        "{} to reload recovery_min_apply_delay = {ms} ms (it shows {})",
                        self.name,
                        seen.as_deref().unwrap_or("nothing")
                    ),
                    waited: CONTROL_TIMEOUT,
                });
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// PostgreSQL: confirms that the startup process applies with `delay` by probe commits on
    /// the server this replica streams from. A nonzero delay is confirmed when the startup
    /// process is seen holding back a commit: any commit if it applied without delay before
    /// (`was_off`: whatever it holds, it holds by the new value; with other writers that is
    /// often one of theirs), else one written after the probe's first record. Zero is
    /// confirmed when the probe has been applied. Without an upstream it streams from, with
    /// replay paused, or on a node no longer in recovery, nothing can be probed: the reload
    /// alone has to do.
    async fn confirm_apply_delay(&self, delay: Duration, was_off: bool) -> Result<()> {
        /// Shorter holds may fall between two polls: a probe applied after the reload is then
        /// taken as confirmation.
        const OBSERVABLE: Duration = Duration::from_millis(20);
        let waited = CONTROL_TIMEOUT + delay;
        let deadline = Instant::now() + waited;
        let mut me = self.conn().await?;
        // (CASE evaluates in order: `pg_is_wal_replay_paused()` fails on a primary.)
        let upstream = "SELECT CASE WHEN NOT pg_is_in_recovery() OR pg_is_wal_replay_paused() \
             THEN NULL ELSE (SELECT sender_port FROM pg_stat_wal_receiver \
             WHERE status = 'streaming') END::text";
        let upstream = me.text(upstream).await.map_err(|e| self.sql_error(upstream, e))?;
        let Some(port) = upstream.and_then(|p| p.parse::<u16>().ok()) else {
            me.close().await;
            return Ok(());
        };
        let mut up = Conn::open(&self.engine, port, self.engine.admin_db(), CONTROL_TIMEOUT)
            .await
            .map_err(|e| self.sql_error(&format!("connect to its upstream on port {port}"), e))?;
        let result = loop {
            // A transactional message gets the transaction an XID and a WAL record, so its
            // commit record is written and flushed (streamed) at once; `txid_current()` alone
            // would commit asynchronously and reach the replica only when the WAL writer runs.
            let probe = "SELECT pg_logical_emit_message(true, 'rwsplit-testkit', \
                         'apply delay probe')::text";
            let first = up.text(probe).await.map_err(|e| self.sql_error(probe, e))?;
            let committed = "SELECT pg_current_wal_lsn()::text";
            let committed = up.text(committed).await.map_err(|e| self.sql_error(committed, e))?;
            let (Some(first), Some(committed)) = (first, committed) else {
                break Err(self.invalid("could not read its upstream's WAL position"));
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
                let state = me.text(&poll).await.map_err(|e| self.sql_error(&poll, e))?;
                let flags: Vec<bool> =
                    state.as_deref().unwrap_or_default().split(' ').map(|f| f == "t").collect();
                let [past_first, past_commit, holding] = flags[..] else {
                    break Err(self.invalid(&format!("answered `{state:?}` to the probe's poll")));
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
                        format!(
                            "{} to apply a probe commit with the apply delay cleared",
                            self.name
                        )
                    } else {
                        format!(
                            "{} to hold a probe commit back with recovery_min_apply_delay = {} ms",
                            self.name,
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

    /// Freezes the server and all its processes with SIGSTOP. It keeps accepting TCP
    /// connections but answers nothing, like a hung machine.
    ///
    /// The server process is stopped first and seen stopped, and only then are its children
    /// listed and stopped, until every one is: a stopped server forks no more, so no child can
    /// escape. Listing the children first (as this once did) missed a PostgreSQL backend forked
    /// in between; that backend kept answering on its connection — a probe on it succeeded on a
    /// "frozen" server — which is how a frozen primary went unnoticed in 2 of 3 runs while the
    /// application's pool was reconnecting. (A group signal cannot do it: every PostgreSQL child
    /// calls `setsid()`, leaving the server's process group.)
    pub fn hang(&self) -> Result<()> {
        let mut guard = self.lock();
        let pid = guard
            .pid
            .filter(|&p| !process::is_gone(p))
            .ok_or_else(|| self.invalid("is not running"))?;
        process::send(pid, Signal::SIGSTOP)?;
        // Signals are delivered asynchronously: return only once the server and every process
        // it forked are really frozen.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !process::is_stopped(pid) {
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("{} to stop on SIGSTOP", self.name),
                    waited: Duration::from_secs(2),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        loop {
            let running: Vec<u32> = process::children_of(pid)
                .into_iter()
                .filter(|&p| !process::is_stopped(p) && !process::is_gone(p))
                .collect();
            if running.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("the processes of {} to stop on SIGSTOP", self.name),
                    waited: Duration::from_secs(2),
                });
            }
            for &p in &running {
                process::send(p, Signal::SIGSTOP)?;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut pids = vec![pid];
        pids.extend(process::children_of(pid));
        guard.hung = pids;
        Ok(())
    }

    /// Resumes a server frozen by [`Node::hang`]: its children first, then the server.
    pub fn unhang(&self) -> Result<()> {
        let mut guard = self.lock();
        let mut pids = std::mem::take(&mut guard.hung);
        if let Some(pid) = guard.pid {
            pids.extend(process::children_of(pid));
            pids.retain(|&p| p != pid);
            pids.push(pid);
        }
        for p in pids {
            process::send(p, Signal::SIGCONT)?;
        }
        Ok(())
    }

    /// Kills the server and all its processes with SIGKILL, like a crash, and waits until they
    /// are gone.
    pub fn crash(&self) -> Result<()> {
        if !self.is_running() {
            return Err(self.invalid("is not running"));
        }
        self.kill_and_wait(Signal::SIGKILL, Duration::from_secs(10))
    }

    /// Stops the server cleanly (fast shutdown) and waits for it. Only the server process is
    /// signalled, as `pg_ctl stop -m fast` or a service manager does: it ends its sessions itself
    /// (PostgreSQL: "terminating connection due to administrator command"). Signalling its
    /// backends too would cancel their statements instead ("canceling statement due to user
    /// request"), which no real shutdown does.
    pub fn stop(&self) -> Result<()> {
        let timeout = Duration::from_secs(30);
        let left =
            process::wait_gone(&self.signal(self.engine.stop_signal(), false, timeout), timeout);
        if left.is_empty() {
            Ok(())
        } else {
            Err(Error::Timeout { what: format!("{} to stop", self.name), waited: timeout })
        }
    }

    fn kill_and_wait(&self, sig: Signal, timeout: Duration) -> Result<()> {
        let left = process::wait_gone(&self.kill(sig, timeout), timeout);
        if left.is_empty() {
            Ok(())
        } else {
            Err(Error::Timeout { what: format!("{} to exit ({sig})", self.name), waited: timeout })
        }
    }

    /// Signals the server and its processes and reaps the server if it is our child. Returns the
    /// pids to wait for.
    pub(crate) fn kill(&self, sig: Signal, timeout: Duration) -> Vec<u32> {
        self.signal(sig, true, timeout)
    }

    /// Signals the server, and its processes too if `all`, and reaps the server if it is our
    /// child. Returns the pids to wait for (the server's processes in any case).
    fn signal(&self, sig: Signal, all: bool, timeout: Duration) -> Vec<u32> {
        let mut guard = self.lock();
        let Some(pid) = guard.pid.take() else { return Vec::new() };
        // A recorded pid may have been reused by an unrelated process: check before signalling.
        if guard.child.is_none() && !process::cmdline_contains(pid, self.data.as_os_str()) {
            return Vec::new();
        }
        let mut pids = process::children_of(pid);
        pids.push(pid);
        for &p in &pids {
            if all || p == pid {
                let _ = process::send(p, sig);
            }
            // A stopped process only acts on the signal once continued.
            let _ = process::send(p, Signal::SIGCONT);
        }
        if let Some(mut child) = guard.child.take() {
            let deadline = Instant::now() + timeout;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        guard.hung.clear();
        pids
    }

    /// Starts the server again after [`Node::crash`] or [`Node::stop`]; a replica comes back as a
    /// replica and resumes replicating.
    pub async fn restart(&self) -> Result<()> {
        if self.is_running() {
            return Err(self.invalid("is already running"));
        }
        self.spawn()?;
        self.wait_accepting(START_TIMEOUT).await
    }

    /// Promotes this replica to a primary and waits until it accepts writes. PostgreSQL:
    /// `pg_promote()`; MariaDB: `STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = OFF`. The
    /// old primary is left as it is; the other replicas keep following it until
    /// [re-pointed](Node::follow).
    pub async fn promote(&self) -> Result<()> {
        self.require_replica().await?;
        match &*self.engine {
            Engine::Postgres(_) => {
                let ok = self.text("SELECT pg_promote(true, 30)::text").await?;
                if ok.as_deref() == Some("true") {
                    Ok(())
                } else {
                    Err(self.invalid("pg_promote() did not finish"))
                }
            }
            Engine::MariaDb(_) => {
                self.admin("STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = OFF").await
            }
        }
    }

    /// Makes this replica follow `primary` instead (after a promotion), without a restart.
    /// PostgreSQL: creates its slot there and changes `primary_conninfo` with a reload;
    /// MariaDB: `CHANGE MASTER TO` the new primary, by GTID.
    pub async fn follow(&self, primary: &Node) -> Result<()> {
        self.require_replica().await?;
        match &*self.engine {
            Engine::Postgres(_) => {
                let slot = &self.name;
                primary
                    .admin(&format!(
                        "SELECT pg_create_physical_replication_slot('{slot}') WHERE NOT EXISTS \
                         (SELECT 1 FROM pg_replication_slots WHERE slot_name = '{slot}')"
                    ))
                    .await?;
                let settings = crate::native::postgres::standby_settings(slot, primary.port);
                for line in settings.lines() {
                    self.admin(&format!("ALTER SYSTEM SET {line}")).await?;
                }
                self.admin("SELECT pg_reload_conf()").await
            }
            Engine::MariaDb(_) => {
                self.admin(&format!("STOP SLAVE; {}; START SLAVE", change_master(primary.port)))
                    .await
            }
        }
    }
}

/// PostgreSQL: the apply delay a session sees, in milliseconds.
const APPLY_DELAY_SQL: &str =
    "SELECT setting FROM pg_settings WHERE name = 'recovery_min_apply_delay'";

/// What became of one apply-delay probe commit on a PostgreSQL replica.
enum Probe {
    /// The startup process holds a commit back (wait event `RecoveryApplyDelay`).
    Held,
    /// Applied.
    Applied,
    /// Neither, before the deadline.
    TimedOut,
}

/// MariaDB: the `CHANGE MASTER TO` that makes a replica follow the primary on `port` by GTID.
pub(crate) fn change_master(port: u16) -> String {
    format!(
        "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {port}, MASTER_USER = 'repl', \
         MASTER_PASSWORD = '', MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1"
    )
}
