//! One server of a cluster, with the controls that break and heal it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{Net, ProcessState, Routes, Runtime, no_network};
use crate::error::{Error, Result};
use crate::pgbouncer::{PgBouncer, PoolMode};
use crate::product::{BoxFuture, Control, Product, mariadb, postgres};
use crate::proxy::DelayProxy;
use crate::sql::Conn;
use crate::vocab::Addr;
use crate::vocab::{CONTROL_TIMEOUT, DbKind, START_TIMEOUT, parse_lsn};

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
///
/// What it runs is its product (PostgreSQL, MariaDB); where its process runs is its backend
/// (native, containers). The controls are the same on both, except the network faults, which
/// need a network of the node's own (the containers backend).
#[derive(Debug)]
pub struct Node {
    pub(crate) name: String,
    pub(crate) port: u16,
    pub(crate) product: Arc<dyn Product>,
    pub(crate) runtime: Box<dyn Runtime>,
    pub(crate) routes: Routes,
}

impl Node {
    /// The node's name (`n0`, `n1`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which database it runs.
    pub fn db(&self) -> DbKind {
        self.product.kind()
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The application URL of the default database (`postgres` on PostgreSQL, `mysql` on
    /// MariaDB). MariaDB URLs use the unprivileged user `app`, which `read_only` stops on
    /// replicas.
    pub fn url(&self) -> String {
        self.product.url(self.port, self.product.admin_db())
    }

    /// Where the other nodes of the cluster replicate from this one, `host:port`: on the native
    /// backend its URL's host and port (`127.0.0.1:<port>`); on containers its name on the
    /// cluster's replication network (`n1:<port>`), which the application cannot reach and
    /// the other containers can. What a router's failover must re-point replicas at
    /// (`Replica::replication_address` in `rwsplit-sea-orm`).
    pub fn replication_address(&self) -> String {
        self.replication_addr().to_string()
    }

    /// The application URL of database `db` on this node.
    pub fn url_for(&self, db: &str) -> String {
        self.product.url(self.port, db)
    }

    /// `url` (one of this node's, e.g. [`Node::url_for`]) made to reach the server without
    /// Docker's port proxy: on containers, at the node's address on the cluster's client
    /// network, which this machine reaches through the bridge; on the native backend, `url`
    /// itself. Docker's published port goes through its userland proxy, one process copying
    /// every byte of every connection to the node: with hundreds of connections on a loaded
    /// machine it becomes the bottleneck a real deployment does not have (the fleet benchmark
    /// measures the servers, not the proxy). [`Node::cut_clients`] cuts this path too.
    pub fn direct_url(&self, url: &str) -> Result<String> {
        let Some(net) = self.runtime.net() else { return Ok(url.to_owned()) };
        let ip = net.client_ip()?;
        let published = format!("@127.0.0.1:{}/", self.port);
        if !url.contains(&published) {
            return Err(
                self.invalid(&format!("the URL is not of this node (no `{published}` in it)"))
            );
        }
        Ok(url.replace(&published, &format!("@{ip}:{}/", self.port)))
    }

    /// Its data directory (on this machine; the containers backend mounts it into the node's
    /// container).
    pub fn data_dir(&self) -> &Path {
        self.runtime.data_dir()
    }

    /// Its server log.
    pub fn log_path(&self) -> &Path {
        self.runtime.log_path()
    }

    /// The last `lines` lines of its server log.
    pub fn log_tail(&self, lines: usize) -> String {
        crate::native::process::tail_file(self.runtime.log_path(), lines)
    }

    /// The server's process id on this machine, when running.
    pub fn pid(&self) -> Option<u32> {
        self.runtime.pid()
    }

    /// CPU time the node's server has used so far, all its processes together, when the
    /// backend gives each node a control group of its own (containers: the container's
    /// cgroup, v1 `cpuacct.usage` or v2 `cpu.stat`); `None` on the native backend, whose
    /// servers share this process's cgroup, or when it is not running. What a benchmark
    /// reads before and after a window to tell each node's share of the machine.
    pub fn cpu_time(&self) -> Option<std::time::Duration> {
        if !self.runtime.own_cgroup() {
            return None;
        }
        crate::cgroup::cpu_time(self.runtime.pid()?)
    }

    /// Whether the server process runs (hung counts as running).
    pub fn is_running(&self) -> bool {
        self.process_state() != ProcessState::Stopped
    }

    /// The process state.
    pub fn process_state(&self) -> ProcessState {
        self.runtime.state()
    }

    pub(crate) fn routes(&self) -> &Routes {
        &self.routes
    }

    /// How the other nodes reach this one for replication.
    pub(crate) fn replication_addr(&self) -> Addr {
        self.runtime.replication_addr()
    }

    pub(crate) fn start(&self) -> Result<()> {
        self.runtime.start()
    }

    /// Fails with the log tail if the server process has exited.
    pub(crate) fn check_alive(&self) -> Result<()> {
        self.runtime.check_alive()
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
                return Err(Error::NodeStartFailed {
                    node: self.name.clone(),
                    reason: format!("not accepting connections after {timeout:?}"),
                    log: self.log_path().to_path_buf(),
                    log_tail: self.log_tail(30),
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn conn_timeout(&self, timeout: Duration) -> Result<Conn, sqlx::Error> {
        let url = self.product.admin_url(self.port, self.product.admin_db());
        Conn::open(self.product.kind(), &url, timeout).await
    }

    pub(crate) async fn conn(&self) -> Result<Conn> {
        self.conn_timeout(CONTROL_TIMEOUT).await.map_err(|e| self.sql_error("connect", e))
    }

    /// Runs `sql` (one or more statements) as the superuser on database `db` of this node.
    pub async fn execute(&self, db: &str, sql: &str) -> Result<()> {
        let url = self.product.admin_url(self.port, db);
        let mut c = Conn::open(self.product.kind(), &url, CONTROL_TIMEOUT)
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

    /// Runs `sql` on the default database as the superuser.
    pub(crate) async fn admin(&self, sql: &str) -> Result<()> {
        self.execute(self.product.admin_db(), sql).await
    }

    pub(crate) fn sql_error(&self, sql: &str, source: sqlx::Error) -> Error {
        Error::Sql { node: self.name.clone(), sql: sql.to_owned(), source }
    }

    pub(crate) fn invalid(&self, what: &str) -> Error {
        Error::InvalidControl { node: self.name.clone(), what: what.to_owned() }
    }

    /// Whether the server reports being a replica: `pg_is_in_recovery()` on PostgreSQL,
    /// `@@read_only` on MariaDB.
    pub async fn is_replica(&self) -> Result<bool> {
        let sql = self.product.is_replica_sql();
        Ok(matches!(self.text(sql).await?.as_deref(), Some("true" | "1" | "ON")))
    }

    async fn require_replica(&self) -> Result<()> {
        if self.is_replica().await? { Ok(()) } else { Err(self.invalid("is not a replica")) }
    }

    fn require(&self, db: DbKind, what: &str) -> Result<()> {
        if self.db() == db {
            Ok(())
        } else {
            let only = match db {
                DbKind::Postgres => "PostgreSQL",
                DbKind::MariaDb => "MariaDB",
            };
            Err(self.invalid(&format!("{what} is {only}-only")))
        }
    }

    /// PostgreSQL: the primary's current WAL position (`pg_current_wal_lsn()`), in bytes.
    pub async fn current_lsn(&self) -> Result<u64> {
        self.require(DbKind::Postgres, "current_lsn")?;
        let s = self.text(postgres::CURRENT_LSN).await?.unwrap_or_default();
        parse_lsn(&s).ok_or_else(|| self.invalid(&format!("returned an unreadable LSN `{s}`")))
    }

    /// PostgreSQL: a replica's replay position (`pg_last_wal_replay_lsn()`), in bytes; `None`
    /// on a primary.
    pub async fn replay_lsn(&self) -> Result<Option<u64>> {
        self.require(DbKind::Postgres, "replay_lsn")?;
        let s = self.text(postgres::REPLAY_LSN).await?;
        Ok(s.as_deref().and_then(parse_lsn))
    }

    /// MariaDB: `@@gtid_binlog_pos`, everything this server has written to its binlog.
    pub async fn gtid_binlog_pos(&self) -> Result<String> {
        self.require(DbKind::MariaDb, "gtid_binlog_pos")?;
        Ok(self.text(mariadb::GTID_BINLOG_POS).await?.unwrap_or_default())
    }

    /// MariaDB: `@@gtid_slave_pos`, what this replica has applied.
    pub async fn gtid_slave_pos(&self) -> Result<String> {
        self.require(DbKind::MariaDb, "gtid_slave_pos")?;
        Ok(self.text(mariadb::GTID_SLAVE_POS).await?.unwrap_or_default())
    }

    /// Waits until this replica has applied everything `primary` has written so far.
    pub async fn wait_caught_up_with(&self, primary: &Node, timeout: Duration) -> Result<()> {
        self.product.wait_caught_up(self, primary, timeout).await
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
        status.is_replica = c
            .text(self.product.is_replica_sql())
            .await
            .ok()
            .flatten()
            .map(|v| matches!(v.as_str(), "true" | "1"));
        status.position = c.text(self.product.position_sql()).await.ok().flatten();
        if let Some(sql) = self.product.unreplayed_sql() {
            status.unreplayed_bytes = c.text(sql).await.ok().flatten().and_then(|v| v.parse().ok());
        }
        c.close().await;
        status
    }

    /// Pauses applying replicated changes on this replica; it keeps receiving them.
    /// PostgreSQL: `pg_wal_replay_pause()`; MariaDB: `STOP SLAVE SQL_THREAD`.
    pub async fn pause_replay(&self) -> Result<()> {
        self.require_replica().await?;
        self.admin(self.product.pause_replay_sql()).await
    }

    /// Resumes applying replicated changes on this replica.
    pub async fn resume_replay(&self) -> Result<()> {
        self.require_replica().await?;
        self.admin(self.product.resume_replay_sql()).await
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
        self.product.set_apply_delay(self, delay).await
    }

    /// Removes an apply delay set by [`Node::set_apply_delay`], and returns once it is gone.
    ///
    /// PostgreSQL: waits, as [`Node::set_apply_delay`] does, until a new session sees the
    /// reset value, then until a probe commit on the server the replica streams from has been
    /// applied (unless it streams from nobody or its replay is paused): everything committed
    /// before the probe has been applied, and what follows is applied without delay.
    /// MariaDB: `MASTER_DELAY = 0` with the replica threads stopped, in effect when it returns.
    pub async fn clear_apply_delay(&self) -> Result<()> {
        self.product.clear_apply_delay(self).await
    }

    /// Freezes the server: it keeps accepting TCP connections but answers nothing, like a hung
    /// machine. Native: SIGSTOP of the server and all its processes; containers: `docker
    /// pause` (the cgroup freezer).
    pub fn hang(&self) -> Result<()> {
        self.runtime.hang()
    }

    /// Resumes a server frozen by [`Node::hang`]: its children first, then the server.
    pub fn unhang(&self) -> Result<()> {
        self.runtime.unhang()
    }

    /// Kills the server and all its processes with SIGKILL, like a crash (containers: `docker
    /// kill`), and waits until they are gone.
    pub fn crash(&self) -> Result<()> {
        if !self.is_running() {
            return Err(self.invalid("is not running"));
        }
        self.runtime.crash()
    }

    /// Stops the server cleanly (fast shutdown) and waits for it. Only the server process is
    /// signalled, as `pg_ctl stop -m fast` or a service manager does: it ends its sessions itself
    /// (PostgreSQL: "terminating connection due to administrator command"). Signalling its
    /// backends too would cancel their statements instead ("canceling statement due to user
    /// request"), which no real shutdown does.
    pub fn stop(&self) -> Result<()> {
        self.runtime.stop()
    }

    /// Starts the server again after [`Node::crash`] or [`Node::stop`]; a replica comes back as a
    /// replica and resumes replicating.
    pub async fn restart(&self) -> Result<()> {
        if self.is_running() {
            return Err(self.invalid("is already running"));
        }
        self.runtime.start()?;
        self.wait_accepting(START_TIMEOUT).await
    }

    /// Promotes this replica to a primary and waits until it accepts writes. PostgreSQL:
    /// `pg_promote()`; MariaDB: `STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = OFF`. The
    /// old primary is left as it is; the other replicas keep following it until
    /// [re-pointed](Node::follow).
    pub async fn promote(&self) -> Result<()> {
        self.require_replica().await?;
        self.product.promote(self).await
    }

    /// Makes this replica follow `primary` instead (after a promotion), without a restart.
    /// PostgreSQL: creates its slot there and changes `primary_conninfo` with a reload;
    /// MariaDB: `CHANGE MASTER TO` the new primary, by GTID.
    pub async fn follow(&self, primary: &Node) -> Result<()> {
        self.require_replica().await?;
        self.product.follow(self, primary, primary.replication_addr()).await
    }

    fn net(&self, what: &str) -> Result<&dyn Net> {
        self.runtime.net().ok_or_else(|| no_network(&self.name, what))
    }

    /// Cuts this node from the replication network: it stops receiving changes (a replica) or
    /// its replicas lose it (a primary), while clients still reach it. Containers only: the
    /// node's container leaves the cluster's replication network. Replication notices after
    /// its timeouts (5 s: `wal_receiver_timeout`, `slave-net-timeout`); meanwhile a replica
    /// serves ever staler reads and may still say it streams.
    pub fn cut_replication(&self) -> Result<()> {
        self.net("cutting the replication link")?.cut_replication()
    }

    /// Reconnects a node cut by [`Node::cut_replication`]; replication resumes by itself.
    pub fn heal_replication(&self) -> Result<()> {
        self.net("healing the replication link")?.heal_replication()
    }

    /// Cuts clients (this process, the application) off this node while it keeps replicating:
    /// every packet to its server port from the cluster's client network is dropped, so
    /// connections hang rather than fail. Containers only (an INPUT rule in the node's own
    /// network namespace, tagged with the cluster's run id).
    pub fn cut_clients(&self) -> Result<()> {
        self.net("cutting the clients off")?.cut_clients()
    }

    /// Undoes [`Node::cut_clients`].
    pub fn heal_clients(&self) -> Result<()> {
        self.net("healing the clients' path")?.heal_clients()
    }

    /// A one-way partition: this node drops every packet it receives from `peer` on the
    /// replication network, while `peer` still receives what this node sends. Containers only.
    pub fn drop_from(&self, peer: &Node) -> Result<()> {
        let p = peer.net("a one-way partition")?;
        self.net("a one-way partition")?.drop_from(p)
    }

    /// Undoes [`Node::drop_from`].
    pub fn undrop_from(&self, peer: &Node) -> Result<()> {
        let p = peer.net("healing a one-way partition")?;
        self.net("healing a one-way partition")?.undrop_from(p)
    }

    /// Puts `latency` ± `jitter` on this node's client path: a [`DelayProxy`] on 127.0.0.1 in
    /// front of its port. Connect through [`DelayProxy::url`]; the node itself is untouched.
    /// Works on both backends.
    pub async fn delay_clients(&self, latency: Duration, jitter: Duration) -> Result<DelayProxy> {
        let target = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        DelayProxy::start([127, 0, 0, 1].into(), target, latency, jitter).await
    }

    /// Starts a real PgBouncer (Debian's `pgbouncer`, `RWSPLIT_TESTKIT_PGBOUNCER_BIN` elsewhere) in
    /// `mode` pooling in front of this PostgreSQL node, on a port of its own on 127.0.0.1;
    /// connect through [`PgBouncer::url`]. It lives until dropped. Works on both backends.
    pub async fn pgbouncer(&self, mode: PoolMode) -> Result<PgBouncer> {
        self.pgbouncer_with(mode, 20).await
    }

    /// [`Node::pgbouncer`] with `pool_size` server connections per database and user
    /// (`default_pool_size`; 20 there): with 1, every client shares one server connection, as
    /// a test of what one client leaves there for the next needs.
    pub async fn pgbouncer_with(&self, mode: PoolMode, pool_size: u32) -> Result<PgBouncer> {
        self.start_pgbouncer(mode, pool_size, &[]).await
    }

    /// [`Node::pgbouncer`] that also lists `params` in `ignore_startup_parameters` (besides
    /// `extra_float_digits`, which is always there): PgBouncer then accepts a client that sends
    /// them and drops them, so they never reach the server. Without that, PgBouncer 1.18
    /// refuses such a client (`FATAL: unsupported startup parameter: options`). With
    /// `&["options"]` this is the pooler that silently drops a URL's `options=-c …`, a common
    /// production setting. Each name is a parameter's name: ASCII letters, digits, `_` and `.`
    /// (nothing that could end the setting's line or list); anything else is an error.
    pub async fn pgbouncer_ignoring(&self, mode: PoolMode, params: &[&str]) -> Result<PgBouncer> {
        self.start_pgbouncer(mode, 20, params).await
    }

    async fn start_pgbouncer(
        &self,
        mode: PoolMode,
        pool_size: u32,
        ignore: &[&str],
    ) -> Result<PgBouncer> {
        if self.db() != DbKind::Postgres {
            return Err(self.invalid("PgBouncer fronts PostgreSQL nodes only"));
        }
        if pool_size == 0 {
            return Err(self.invalid("a PgBouncer pool needs at least one server connection"));
        }
        let ignore = crate::pgbouncer::ignored_parameters(ignore).map_err(|e| self.invalid(&e))?;
        PgBouncer::start(&self.name, self.data_dir(), self.port, mode, pool_size, &ignore).await
    }

    /// Puts `latency` ± `jitter` on this replica's replication path: a [`DelayProxy`] in front
    /// of `upstream` (on the replication network's gateway on containers, on 127.0.0.1
    /// natively), and the replica re-pointed at it without a restart ([`Node::follow`]'s
    /// mechanism). Keep the proxy while the delay should last; call [`Node::follow`] with
    /// `upstream` before dropping it, or replication stops with it.
    pub async fn delay_replication(
        &self,
        upstream: &Node,
        latency: Duration,
        jitter: Duration,
    ) -> Result<DelayProxy> {
        self.require_replica().await?;
        let listen: std::net::IpAddr = match self.runtime.net() {
            Some(net) => {
                let gw = net.gateway()?;
                gw.parse().map_err(|_| self.invalid(&format!("gateway `{gw}` is no IP address")))?
            }
            None => [127, 0, 0, 1].into(),
        };
        let target = std::net::SocketAddr::from(([127, 0, 0, 1], upstream.port));
        let proxy = DelayProxy::start(listen, target, latency, jitter).await?;
        let via = Addr::new(proxy.local_addr().ip().to_string(), proxy.local_addr().port());
        self.routes.add(via.clone(), upstream.port);
        self.product.follow(self, upstream, via).await?;
        Ok(proxy)
    }
}

/// What the product's setup and controls use of a node ([`Control`]).
impl Control for Node {
    fn name(&self) -> &str {
        Node::name(self)
    }

    fn is_running(&self) -> bool {
        Node::is_running(self)
    }

    fn start(&self) -> Result<()> {
        Node::start(self)
    }

    fn wait_accepting(&self, timeout: Duration) -> BoxFuture<'_, Result<()>> {
        Box::pin(Node::wait_accepting(self, timeout))
    }

    fn conn(&self) -> BoxFuture<'_, Result<Conn>> {
        Box::pin(Node::conn(self))
    }

    fn execute<'a>(&'a self, db: &'a str, sql: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(Node::execute(self, db, sql))
    }

    fn text<'a>(&'a self, sql: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(Node::text(self, sql))
    }

    fn admin<'a>(&'a self, sql: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(Node::admin(self, sql))
    }

    fn sql_error(&self, sql: &str, source: sqlx::Error) -> Error {
        Node::sql_error(self, sql, source)
    }

    fn invalid(&self, what: &str) -> Error {
        Node::invalid(self, what)
    }

    fn routes(&self) -> &Routes {
        Node::routes(self)
    }

    fn replication_addr(&self) -> Addr {
        Node::replication_addr(self)
    }
}
