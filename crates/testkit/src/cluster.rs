//! A replicated cluster: its builder, its nodes and their controls, and teardown.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use sqlx::{Connection, Row};

use crate::error::{Error, IoContext, Result};
use crate::native::postgres::{self, PgEngine};
use crate::native::process;
use crate::state::{ClusterState, NodeState};

/// Which database server a cluster runs (the database seam).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DbKind {
    /// PostgreSQL with physical streaming replication and hot standbys.
    #[default]
    Postgres,
}

impl std::fmt::Display for DbKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DbKind::Postgres => "postgres",
        })
    }
}

impl std::str::FromStr for DbKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" | "pg" => Ok(DbKind::Postgres),
            other => Err(format!("unknown database kind `{other}` (expected: postgres)")),
        }
    }
}

/// Where the servers run (the backend seam).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum BackendKind {
    /// Server processes started from the binaries on this machine, as children of this process.
    #[default]
    Native,
}

/// How long a node may take to start accepting connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the standbys may take to stream after the primary is up.
const STREAM_TIMEOUT: Duration = Duration::from_secs(30);
/// Connect timeout for the testkit's own control connections.
pub(crate) const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// Configures and starts a [`Cluster`].
///
/// ```no_run
/// # async fn demo() -> rwsplit_testkit::Result<()> {
/// let cluster = rwsplit_testkit::Cluster::builder().replicas(2).start().await?;
/// println!("primary at {}", cluster.primary_url());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ClusterBuilder {
    db: DbKind,
    backend: BackendKind,
    replicas: usize,
    base_port: Option<u16>,
    keep: bool,
    bin_dir: Option<PathBuf>,
    root: Option<PathBuf>,
    settings: Vec<(String, String)>,
    name: String,
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        ClusterBuilder {
            db: DbKind::Postgres,
            backend: BackendKind::Native,
            replicas: 2,
            base_port: None,
            keep: std::env::var_os("RWSPLIT_KEEP").is_some_and(|v| v == "1"),
            bin_dir: None,
            root: None,
            settings: Vec::new(),
            name: "cluster".into(),
        }
    }
}

impl ClusterBuilder {
    /// The database server to run (default PostgreSQL).
    pub fn db(mut self, db: DbKind) -> Self {
        self.db = db;
        self
    }

    /// Where the servers run (default native processes).
    pub fn backend(mut self, backend: BackendKind) -> Self {
        self.backend = backend;
        self
    }

    /// How many replicas to start beside the primary (default 2).
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n;
        self
    }

    /// Use ports `base`, `base + 1`, … instead of free ports picked at random in 20000–29999.
    /// A taken port is then an error rather than a reason to pick another.
    pub fn base_port(mut self, base: u16) -> Self {
        self.base_port = Some(base);
        self
    }

    /// Keep the servers running and the data on disk when the cluster is dropped (for debugging).
    /// Also on when the environment has `RWSPLIT_KEEP=1`.
    pub fn keep(mut self, keep: bool) -> Self {
        self.keep = keep;
        self
    }

    /// The directory holding the server binaries (default: `$RWSPLIT_PG_BIN`, then the newest
    /// `/usr/lib/postgresql/*/bin`, then `PATH`).
    pub fn bin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bin_dir = Some(dir.into());
        self
    }

    /// The directory under which clusters and the cached template live (default:
    /// `$RWSPLIT_TESTKIT_DIR`, else `<tmp>/rwsplit-testkit`). Every ancestor must be traversable
    /// by the unprivileged server user.
    pub fn root_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.root = Some(dir.into());
        self
    }

    /// An extra server setting for every node, passed as `-c key=value`.
    pub fn setting(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((key.into(), value.into()));
        self
    }

    /// A short name used in directory names and logs (default `cluster`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Starts the cluster: ready means the primary accepts connections and every replica streams.
    pub async fn start(self) -> Result<Cluster> {
        let BackendKind::Native = self.backend;
        let DbKind::Postgres = self.db;
        let engine = PgEngine::discover(self.bin_dir.as_deref())?;
        let root = self.root.clone().unwrap_or_else(default_root);
        ensure_traversable_dir(&root)?;
        let ports = allocate_ports(self.base_port, self.replicas + 1)?;
        let cache = template_root();
        ensure_traversable_dir(&cache)?;
        let template = engine.template(&cache)?;
        let dir = root.join(format!(
            "{}-{}-{:x}",
            sanitize(&self.name),
            std::process::id(),
            postgres::unique()
        ));
        fs::create_dir_all(&dir).io_context(|| format!("creating {}", dir.display()))?;
        engine.chown(&dir)?;

        let engine = Arc::new(engine);
        let mut nodes = Vec::with_capacity(ports.len());
        for (i, port) in ports.iter().copied().enumerate() {
            let name = format!("n{i}");
            let data = dir.join(&name);
            engine.copy_template(&template, &data)?;
            if i > 0 {
                engine.make_standby(&data, &name, ports[0])?;
            }
            nodes.push(Node {
                name: name.clone(),
                port,
                log: dir.join(format!("{name}.log")),
                data,
                settings: self.settings.clone(),
                engine: Arc::clone(&engine),
                proc: Mutex::new(Proc::default()),
            });
        }
        let cluster = Cluster { db: self.db, dir, nodes, keep: self.keep, owned: true };
        cluster.nodes[0].spawn()?;
        cluster.nodes[0].wait_accepting(START_TIMEOUT).await?;
        {
            let mut conn = cluster.nodes[0].connect("postgres").await?;
            for n in &cluster.nodes[1..] {
                let sql = "SELECT pg_create_physical_replication_slot($1)";
                sqlx::query(sql)
                    .bind(&n.name)
                    .execute(&mut conn)
                    .await
                    .map_err(|e| cluster.nodes[0].sql_error(sql, e))?;
            }
        }
        for n in &cluster.nodes[1..] {
            n.spawn()?;
        }
        for n in &cluster.nodes[1..] {
            n.wait_accepting(START_TIMEOUT).await?;
        }
        cluster.wait_streaming(cluster.nodes.len() - 1, STREAM_TIMEOUT).await?;
        Ok(cluster)
    }
}

/// A running primary with its replicas.
///
/// Dropping it stops every server it started and deletes its data, unless it was built with
/// [`ClusterBuilder::keep`] or turned into a [`ClusterState`] by [`Cluster::detach`].
#[derive(Debug)]
pub struct Cluster {
    db: DbKind,
    dir: PathBuf,
    nodes: Vec<Node>,
    keep: bool,
    /// Whether this process started the cluster (and so stops it on drop).
    owned: bool,
}

impl Cluster {
    /// A builder with the defaults: PostgreSQL, native processes, two replicas.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// Takes control of a cluster started elsewhere (e.g. by `cargo xtask cluster up`). Dropping
    /// the returned value leaves the servers running; [`Cluster::stop`] stops them.
    pub fn attach(state: &ClusterState) -> Result<Cluster> {
        let DbKind::Postgres = state.db;
        let engine = Arc::new(PgEngine::discover(Some(&state.bin_dir))?);
        let nodes = state
            .nodes
            .iter()
            .map(|n| Node {
                name: n.name.clone(),
                port: n.port,
                data: n.data_dir.clone(),
                log: n.log.clone(),
                settings: state.settings.clone(),
                engine: Arc::clone(&engine),
                proc: Mutex::new(Proc { child: None, pid: n.pid, hung: Vec::new() }),
            })
            .collect();
        Ok(Cluster { db: state.db, dir: state.dir.clone(), nodes, keep: true, owned: false })
    }

    /// Which database this cluster runs.
    pub fn db(&self) -> DbKind {
        self.db
    }

    /// The directory holding the nodes' data and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every node; node 0 started as the primary.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Node `index`, or an error naming the valid range.
    pub fn node(&self, index: usize) -> Result<&Node> {
        self.nodes.get(index).ok_or(Error::NoSuchNode { index, len: self.nodes.len() })
    }

    /// The node that started as the primary (node 0).
    pub fn primary(&self) -> &Node {
        &self.nodes[0]
    }

    /// The nodes that started as replicas (nodes 1…).
    pub fn replicas(&self) -> &[Node] {
        &self.nodes[1..]
    }

    /// The URL of the `postgres` database on the primary.
    pub fn primary_url(&self) -> String {
        self.primary().url()
    }

    /// The URLs of the `postgres` database on each replica.
    pub fn replica_urls(&self) -> Vec<String> {
        self.replicas().iter().map(Node::url).collect()
    }

    /// Waits until `count` standbys stream from node 0.
    pub async fn wait_streaming(&self, count: usize, timeout: Duration) -> Result<()> {
        let primary = self.primary();
        let start = Instant::now();
        loop {
            let sql = "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'";
            let got: i64 = match primary.connect("postgres").await {
                Ok(mut c) => sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap_or(0),
                Err(_) => 0,
            };
            if usize::try_from(got).is_ok_and(|g| g >= count) {
                return Ok(());
            }
            for n in self.replicas() {
                n.check_alive()?;
            }
            if start.elapsed() > timeout {
                return Err(Error::Timeout {
                    what: format!("{count} standbys to stream from {} (saw {got})", primary.name),
                    waited: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every running replica has replayed everything node `primary` has written so
    /// far.
    pub async fn wait_caught_up(&self, primary: usize, timeout: Duration) -> Result<()> {
        let p = self.node(primary)?;
        let target = p.current_lsn().await?;
        let start = Instant::now();
        for (i, n) in self.nodes.iter().enumerate() {
            if i == primary || !n.is_running() {
                continue;
            }
            loop {
                if n.replay_lsn().await?.is_some_and(|l| l >= target) {
                    break;
                }
                if start.elapsed() > timeout {
                    return Err(Error::Timeout {
                        what: format!("{} to replay up to {}", n.name, format_lsn(target)),
                        waited: timeout,
                    });
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        Ok(())
    }

    /// Creates a fresh database on node 0 and waits until every running replica has it. It is
    /// dropped when the returned value is dropped.
    pub async fn create_database(&self, prefix: &str) -> Result<crate::TestDatabase> {
        let name = format!("{}_{}_{:x}", sanitize(prefix), std::process::id(), postgres::unique());
        let primary = self.primary();
        let sql = format!("CREATE DATABASE \"{name}\"");
        primary.execute("postgres", &sql).await?;
        let start = Instant::now();
        for n in self.replicas().iter().filter(|n| n.is_running()) {
            loop {
                let seen = match n.connect("postgres").await {
                    Ok(mut c) => sqlx::query("SELECT 1 FROM pg_database WHERE datname = $1")
                        .bind(&name)
                        .fetch_optional(&mut c)
                        .await
                        .ok()
                        .flatten()
                        .is_some(),
                    Err(_) => false,
                };
                if seen {
                    break;
                }
                if start.elapsed() > STREAM_TIMEOUT {
                    return Err(Error::Timeout {
                        what: format!("database {name} to reach {}", n.name),
                        waited: STREAM_TIMEOUT,
                    });
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        Ok(crate::TestDatabase::new(
            name,
            primary.port,
            self.replicas().iter().map(|n| n.port).collect(),
            Arc::clone(&primary.engine),
        ))
    }

    /// Stops every node (immediate shutdown) and deletes the data directory, whether or not this
    /// process started the cluster.
    pub fn stop(mut self) -> Result<()> {
        self.keep = false;
        self.owned = true;
        self.teardown()
    }

    /// Leaves the servers running after this value is gone, and returns what is needed to find
    /// and stop them later.
    pub fn detach(mut self) -> ClusterState {
        self.keep = true;
        self.state()
    }

    /// A description of the cluster that can be saved and later [attached](Cluster::attach).
    pub fn state(&self) -> ClusterState {
        ClusterState {
            db: self.db,
            dir: self.dir.clone(),
            bin_dir: self.primary().engine.bin.clone(),
            settings: self.primary().settings.clone(),
            nodes: self
                .nodes
                .iter()
                .map(|n| NodeState {
                    name: n.name.clone(),
                    port: n.port,
                    pid: n.pid(),
                    data_dir: n.data.clone(),
                    log: n.log.clone(),
                })
                .collect(),
        }
    }

    fn teardown(&mut self) -> Result<()> {
        let mut left = Vec::new();
        for n in &self.nodes {
            left.extend(n.kill(Signal::SIGKILL));
        }
        let left = process::wait_gone(&left, Duration::from_secs(10));
        if !left.is_empty() {
            return Err(Error::Timeout {
                what: format!("server processes {left:?} to exit"),
                waited: Duration::from_secs(10),
            });
        }
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => {
                Err(Error::Io { what: format!("removing {}", self.dir.display()), source: e })
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.keep || !self.owned {
            if self.owned {
                tracing::warn!(dir = %self.dir.display(), "keeping the cluster (RWSPLIT_KEEP)");
            }
            return;
        }
        if let Err(e) = self.teardown() {
            tracing::error!(error = %e, "cluster teardown failed");
        }
    }
}

#[derive(Debug, Default)]
struct Proc {
    child: Option<Child>,
    pid: Option<u32>,
    /// Processes stopped by [`Node::hang`], resumed by [`Node::unhang`].
    hung: Vec<u32>,
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
    /// `Some(true)` when in recovery (a replica), `Some(false)` when a primary, `None` when it did
    /// not answer.
    pub in_recovery: Option<bool>,
    /// On a primary, its current WAL position; on a replica, its replay position.
    pub position: Option<String>,
    /// On a replica, the WAL it has received but not replayed, in bytes.
    pub unreplayed_bytes: Option<i64>,
}

/// One database server of a [`Cluster`], with the controls that break and heal it.
#[derive(Debug)]
pub struct Node {
    name: String,
    port: u16,
    data: PathBuf,
    log: PathBuf,
    settings: Vec<(String, String)>,
    engine: Arc<PgEngine>,
    proc: Mutex<Proc>,
}

impl Node {
    /// The node's name (`n0`, `n1`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        postgres::url(self.port, "postgres")
    }

    /// The URL of database `db` on this node.
    pub fn url_for(&self, db: &str) -> String {
        postgres::url(self.port, db)
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

    fn spawn(&self) -> Result<()> {
        let mut guard = self.lock();
        if guard.pid.is_some_and(|p| !process::is_gone(p)) {
            return Err(self.invalid("already running"));
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
    fn check_alive(&self) -> Result<()> {
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

    async fn wait_accepting(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            self.check_alive()?;
            if let Ok(mut c) =
                postgres::connect(self.port, "postgres", Duration::from_secs(2)).await
                && sqlx::query("SELECT 1").execute(&mut c).await.is_ok()
            {
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

    /// A new connection to database `db` on this node (fails after 5 s, e.g. when hung).
    pub async fn connect(&self, db: &str) -> Result<sqlx::PgConnection> {
        postgres::connect(self.port, db, CONTROL_TIMEOUT)
            .await
            .map_err(|e| self.sql_error(&format!("connect to {db}"), e))
    }

    /// Runs one statement on database `db` of this node.
    pub async fn execute(&self, db: &str, sql: &str) -> Result<()> {
        let mut c = self.connect(db).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut c)
            .await
            .map_err(|e| self.sql_error(sql, e))?;
        let _ = c.close().await;
        Ok(())
    }

    async fn scalar<T>(&self, sql: &str) -> Result<T>
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
    {
        let mut c = self.connect("postgres").await?;
        let v = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut c)
            .await
            .map_err(|e| self.sql_error(sql, e))?;
        let _ = c.close().await;
        Ok(v)
    }

    fn sql_error(&self, sql: &str, source: sqlx::Error) -> Error {
        Error::Sql { node: self.name.clone(), sql: sql.to_owned(), source }
    }

    fn invalid(&self, what: &str) -> Error {
        Error::InvalidControl { node: self.name.clone(), what: what.to_owned() }
    }

    /// Whether the server reports being in recovery (a replica).
    pub async fn is_in_recovery(&self) -> Result<bool> {
        self.scalar("SELECT pg_is_in_recovery()").await
    }

    async fn require_replica(&self) -> Result<()> {
        if self.is_in_recovery().await? { Ok(()) } else { Err(self.invalid("is not a replica")) }
    }

    /// The primary's current WAL position (`pg_current_wal_lsn()`), as a byte offset.
    pub async fn current_lsn(&self) -> Result<u64> {
        let s: String = self.scalar("SELECT pg_current_wal_lsn()::text").await?;
        parse_lsn(&s).ok_or_else(|| self.invalid(&format!("returned an unreadable LSN `{s}`")))
    }

    /// A replica's replay position (`pg_last_wal_replay_lsn()`), as a byte offset; `None` on a
    /// primary.
    pub async fn replay_lsn(&self) -> Result<Option<u64>> {
        let s: Option<String> = self.scalar("SELECT pg_last_wal_replay_lsn()::text").await?;
        Ok(s.as_deref().and_then(parse_lsn))
    }

    /// The node's role and position.
    pub async fn status(&self) -> NodeStatus {
        let process = self.process_state();
        let mut status = NodeStatus {
            name: self.name.clone(),
            port: self.port,
            process,
            in_recovery: None,
            position: None,
            unreplayed_bytes: None,
        };
        if process != ProcessState::Running {
            return status;
        }
        let sql = "SELECT pg_is_in_recovery(), \
            CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text ELSE pg_current_wal_lsn()::text END, \
            pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint";
        if let Ok(mut c) = postgres::connect(self.port, "postgres", Duration::from_secs(2)).await
            && let Ok(row) = sqlx::query(sql).fetch_one(&mut c).await
        {
            status.in_recovery = row.try_get(0).ok();
            status.position = row.try_get(1).ok();
            status.unreplayed_bytes = row.try_get(2).ok().flatten();
        }
        status
    }

    /// Pauses WAL replay on this replica (`pg_wal_replay_pause()`): it keeps receiving WAL but
    /// its data stops advancing.
    pub async fn pause_replay(&self) -> Result<()> {
        self.require_replica().await?;
        self.execute("postgres", "SELECT pg_wal_replay_pause()").await
    }

    /// Resumes WAL replay on this replica.
    pub async fn resume_replay(&self) -> Result<()> {
        self.require_replica().await?;
        self.execute("postgres", "SELECT pg_wal_replay_resume()").await
    }

    /// Makes this replica apply each commit only `delay` after it happened on the primary
    /// (`recovery_min_apply_delay`, reloaded without a restart).
    pub async fn set_apply_delay(&self, delay: Duration) -> Result<()> {
        self.require_replica().await?;
        let sql = format!("ALTER SYSTEM SET recovery_min_apply_delay = '{}ms'", delay.as_millis());
        self.execute("postgres", &sql).await?;
        self.execute("postgres", "SELECT pg_reload_conf()").await
    }

    /// Removes an apply delay set by [`Node::set_apply_delay`].
    pub async fn clear_apply_delay(&self) -> Result<()> {
        self.execute("postgres", "ALTER SYSTEM RESET recovery_min_apply_delay").await?;
        self.execute("postgres", "SELECT pg_reload_conf()").await
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
        let left = process::wait_gone(&self.kill(Signal::SIGKILL), Duration::from_secs(10));
        if left.is_empty() {
            Ok(())
        } else {
            Err(Error::Timeout {
                what: format!("{} to die", self.name),
                waited: Duration::from_secs(10),
            })
        }
    }

    /// Stops the server cleanly (fast shutdown) and waits for it.
    pub fn stop(&self) -> Result<()> {
        let left = process::wait_gone(&self.kill(Signal::SIGINT), Duration::from_secs(30));
        if left.is_empty() {
            Ok(())
        } else {
            Err(Error::Timeout {
                what: format!("{} to stop", self.name),
                waited: Duration::from_secs(30),
            })
        }
    }

    /// Signals the server and its processes and reaps the server if it is our child. Returns the
    /// pids to wait for.
    fn kill(&self, sig: Signal) -> Vec<u32> {
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
            if sig == Signal::SIGKILL {
                let _ = child.wait();
            } else {
                // Clean shutdown: reap in the background of the polling in wait_gone.
                let deadline = Instant::now() + Duration::from_secs(30);
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = child.try_wait() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        guard.hung.clear();
        pids
    }

    /// Starts the server again after [`Node::crash`] or [`Node::stop`]; a replica comes back as a
    /// replica and resumes streaming.
    pub async fn restart(&self) -> Result<()> {
        if self.is_running() {
            return Err(self.invalid("is already running"));
        }
        self.spawn()?;
        self.wait_accepting(START_TIMEOUT).await
    }

    /// Promotes this replica to a primary (`pg_promote()`), waiting until it accepts writes.
    /// The old primary is left as it is; the other replicas keep following it until
    /// [repointed](Node::follow).
    pub async fn promote(&self) -> Result<()> {
        self.require_replica().await?;
        let ok: bool = self.scalar("SELECT pg_promote(true, 30)").await?;
        if ok { Ok(()) } else { Err(self.invalid("pg_promote() returned false")) }
    }

    /// Makes this replica follow `primary` instead (after a promotion): creates its slot there
    /// and changes `primary_conninfo` with a reload, no restart.
    pub async fn follow(&self, primary: &Node) -> Result<()> {
        self.require_replica().await?;
        let mut c = primary.connect("postgres").await?;
        let sql = "SELECT pg_create_physical_replication_slot($1) \
                   WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)";
        sqlx::query(sql)
            .bind(&self.name)
            .execute(&mut c)
            .await
            .map_err(|e| primary.sql_error(sql, e))?;
        let conninfo = format!(
            "host=127.0.0.1 port={} user=postgres application_name={}",
            primary.port, self.name
        );
        self.execute("postgres", &format!("ALTER SYSTEM SET primary_conninfo = '{conninfo}'"))
            .await?;
        self.execute("postgres", &format!("ALTER SYSTEM SET primary_slot_name = '{}'", self.name))
            .await?;
        self.execute("postgres", "SELECT pg_reload_conf()").await
    }
}

/// Parses PostgreSQL's `X/Y` LSN text into a byte position.
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.trim().split_once('/')?;
    let hi = u64::from_str_radix(hi, 16).ok()?;
    let lo = u64::from_str_radix(lo, 16).ok()?;
    if hi > u64::from(u32::MAX) || lo > u64::from(u32::MAX) {
        return None;
    }
    Some((hi << 32) | lo)
}

/// Formats a byte position as PostgreSQL's `X/Y` LSN text.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// Where the cached `initdb` template lives: `$RWSPLIT_TESTKIT_CACHE`, else
/// `<tmp>/rwsplit-testkit`. Separate from the cluster directory so a per-run cluster directory
/// does not pay for `initdb` again.
fn template_root() -> PathBuf {
    std::env::var_os("RWSPLIT_TESTKIT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("rwsplit-testkit"))
}

fn default_root() -> PathBuf {
    std::env::var_os("RWSPLIT_TESTKIT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("rwsplit-testkit"))
}

/// Creates `dir` readable and traversable by everyone (the servers run as another user).
fn ensure_traversable_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(dir).io_context(|| format!("creating {}", dir.display()))?;
    let meta = fs::metadata(dir).io_context(|| format!("reading {}", dir.display()))?;
    if meta.permissions().mode() & 0o005 != 0o005 {
        let mut p = meta.permissions();
        p.set_mode(p.mode() | 0o755);
        fs::set_permissions(dir, p).io_context(|| format!("chmod {}", dir.display()))?;
    }
    Ok(())
}

fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .take(30)
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 't');
    }
    out
}

fn allocate_ports(base: Option<u16>, count: usize) -> Result<Vec<u16>> {
    if let Some(base) = base {
        let mut ports = Vec::with_capacity(count);
        for i in 0..count {
            let port = u16::try_from(usize::from(base) + i)
                .map_err(|_| Error::PortInUse { port: u16::MAX })?;
            if !process::port_is_free(port) {
                return Err(Error::PortInUse { port });
            }
            ports.push(port);
        }
        return Ok(ports);
    }
    // Random free ports in 20000–29999 (below the ephemeral range), never twice in a process.
    static TAKEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut taken = TAKEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut ports = Vec::with_capacity(count);
    let mut seed = postgres::unique() ^ u64::from(std::process::id()).rotate_left(32);
    for _ in 0..10_000 {
        if ports.len() == count {
            break;
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let port = 20_000 + u16::try_from(seed % 10_000).unwrap_or(0);
        if !taken.contains(&port) && !ports.contains(&port) && process::port_is_free(port) {
            ports.push(port);
        }
    }
    if ports.len() < count {
        return Err(Error::Timeout {
            what: "free ports in 20000-29999".into(),
            waited: Duration::ZERO,
        });
    }
    taken.extend(&ports);
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_round_trips() {
        assert_eq!(parse_lsn("0/3000060"), Some(0x300_0060));
        assert_eq!(parse_lsn("1/0"), Some(1 << 32));
        assert_eq!(format_lsn(0x1_0000_00A0), "1/A0");
        assert_eq!(parse_lsn("nonsense"), None);
        assert_eq!(parse_lsn("1/2/3"), None);
    }

    #[test]
    fn sanitized_names_are_identifiers() {
        assert_eq!(sanitize("My Test-1"), "my_test_1");
        assert_eq!(sanitize("9lives"), "t9lives");
        assert_eq!(sanitize(""), "t");
    }

    #[test]
    fn a_taken_base_port_is_named() {
        let holder = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = holder.local_addr().unwrap().port();
        let err = allocate_ports(Some(port), 1).unwrap_err();
        assert!(matches!(err, Error::PortInUse { port: p } if p == port));
        assert!(err.to_string().contains(&format!("port {port}")), "{err}");
    }

    #[test]
    fn random_ports_are_distinct_and_free() {
        let ports = allocate_ports(None, 5).unwrap();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 5);
        assert!(ports.iter().all(|p| (20_000..30_000).contains(p)));
    }

    #[test]
    fn missing_binaries_say_how_to_install_them() {
        let empty = std::env::temp_dir().join(format!("rwsplit-empty-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        let err = PgEngine::discover(Some(&empty)).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::BinariesNotFound { .. }));
        assert!(text.contains("apt-get install postgresql"), "{text}");
        assert!(text.contains(&empty.display().to_string()), "{text}");
        std::fs::remove_dir_all(&empty).unwrap();
    }
}
