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

    /// Makes this replica apply each change only `delay` after it happened on the primary.
    /// PostgreSQL: `recovery_min_apply_delay` (milliseconds, reloaded without a restart);
    /// MariaDB: `MASTER_DELAY` in whole seconds, rounded up plus one because event timestamps
    /// have whole seconds (the change is held between `delay` and `delay` + 1 s).
    pub async fn set_apply_delay(&self, delay: Duration) -> Result<()> {
        self.require_replica().await?;
        match &*self.engine {
            Engine::Postgres(_) => {
                let ms = delay.as_millis();
                self.admin(&format!("ALTER SYSTEM SET recovery_min_apply_delay = '{ms}ms'"))
                    .await?;
                self.admin("SELECT pg_reload_conf()").await
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

    /// Removes an apply delay set by [`Node::set_apply_delay`].
    pub async fn clear_apply_delay(&self) -> Result<()> {
        match &*self.engine {
            Engine::Postgres(_) => {
                self.admin("ALTER SYSTEM RESET recovery_min_apply_delay").await?;
                self.admin("SELECT pg_reload_conf()").await
            }
            Engine::MariaDb(_) => {
                self.admin("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 0; START SLAVE").await
            }
        }
    }

    /// Freezes the server and all its processes with SIGSTOP. It keeps accepting TCP
    /// connections but answers nothing, like a hung machine.
    pub fn hang(&self) -> Result<()> {
        let mut guard = self.lock();
        let pid = guard
            .pid
            .filter(|&p| !process::is_gone(p))
            .ok_or_else(|| self.invalid("is not running"))?;
        let mut pids = vec![pid];
        pids.extend(process::children_of(pid));
        for &p in &pids {
            process::send(p, Signal::SIGSTOP)?;
        }
        // Signals are delivered asynchronously: return only once the server is really frozen.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !process::is_stopped(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        guard.hung = pids;
        Ok(())
    }

    /// Resumes a server frozen by [`Node::hang`].
    pub fn unhang(&self) -> Result<()> {
        let mut guard = self.lock();
        let mut pids = std::mem::take(&mut guard.hung);
        if let Some(pid) = guard.pid {
            pids.extend(process::children_of(pid));
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

    /// Stops the server cleanly (fast shutdown) and waits for it.
    pub fn stop(&self) -> Result<()> {
        self.kill_and_wait(self.engine.stop_signal(), Duration::from_secs(30))
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
        let mut guard = self.lock();
        let Some(pid) = guard.pid.take() else { return Vec::new() };
        // A recorded pid may have been reused by an unrelated process: check before signalling.
        if guard.child.is_none() && !process::cmdline_contains(pid, self.data.as_os_str()) {
            return Vec::new();
        }
        let mut pids = process::children_of(pid);
        pids.push(pid);
        for &p in &pids {
            let _ = process::send(p, sig);
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

/// MariaDB: the `CHANGE MASTER TO` that makes a replica follow the primary on `port` by GTID.
pub(crate) fn change_master(port: u16) -> String {
    format!(
        "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {port}, MASTER_USER = 'repl', \
         MASTER_PASSWORD = '', MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1"
    )
}
