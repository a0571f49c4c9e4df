//! Opt-in automatic promotion, and fencing: see [`AutoFailover`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rwsplit_core::{MariaDbPosition, Role};
use rwsplit_monitor::{Flavor, ProbeConn};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, Statement};

use crate::connection::Inner;
use crate::probe::NodeProbe;
use crate::{RoutedConnection, RoutedConnectionBuilder};

/// Opt-in automatic promotion of the most advanced replica when the primary is lost.
///
/// Off by default: an external HA manager (Patroni, repmgr, pg_auto_failover, MaxScale's
/// MariaDB monitor, orchestrator) sees the whole cluster, holds a lock or quorum and can fence
/// the old primary at the server; an in-process router sees only what this process can reach.
/// Two application processes (or an application and an HA manager) both promoting is a split
/// brain. Turn it on only where this process is the only one that promotes.
///
/// When enabled and the primary has failed `after_failures` consecutive probes:
/// 1. the primary is probed once more; if it answers, nothing happens;
/// 2. every reachable replica is asked how far it has *received* (PostgreSQL:
///    `pg_last_wal_receive_lsn()`, on the latest timeline; MariaDB: `Gtid_IO_Pos`), and the most
///    advanced one is chosen (ties: configuration order);
/// 3. the old primary is **fenced**: from here on no statement is routed to it and its claim to
///    the primary role is ignored, until an operator calls [`RoutedConnection::unfence`];
/// 4. the chosen replica is promoted: PostgreSQL `pg_promote()`; MariaDB waits until it has
///    applied what it received (`MASTER_GTID_WAIT`), then `STOP SLAVE; RESET SLAVE ALL;
///    SET GLOBAL read_only = 0`;
/// 5. the other replicas are re-pointed at it: MariaDB `CHANGE MASTER TO MASTER_HOST, MASTER_PORT,
///    MASTER_USE_GTID = slave_pos`; PostgreSQL (13+) `ALTER SYSTEM SET primary_conninfo` (the
///    standby's own conninfo with the new host and port) plus its replication slot created on the
///    new primary, then `pg_reload_conf()` — the walreceiver follows the new timeline without a
///    restart. Both use the host and port this process uses to reach the new primary, so they
///    must be reachable from the replicas too; otherwise leave re-pointing to an HA manager
///    ([`AutoFailover::repoint_replicas`]`(false)`).
///
/// Risks, in the order they bite: with asynchronous replication, writes the old primary
/// acknowledged but had not yet sent are lost (use PostgreSQL synchronous replication,
/// `synchronous_standby_names = 'ANY 1 (*)'`, or MariaDB lossless semi-sync,
/// `rpl_semi_sync_master_wait_point = AFTER_SYNC`); a primary that is only cut off from this
/// process keeps taking writes from others (fencing here is only routing: fence it at the server
/// or the network too); a replica that received more WAL than the promoted one cannot follow
/// it without `pg_rewind` (choosing the most advanced replica avoids creating one).
///
/// ```no_run
/// # async fn demo() -> Result<(), rwsplit_sea_orm::Error> {
/// use rwsplit_sea_orm::{AutoFailover, RoutedConnection};
///
/// let db = RoutedConnection::builder()
///    .primary("mysql://app@db-1:3306/shop")
///    .replica("mysql://app@db-2:3306/shop")
///    // Promote after 5 failed probes; promotion and re-pointing need an admin account.
///    .auto_failover(AutoFailover::default().after_failures(5).admin_credentials("root", ""))
///    .connect()
///    .await?;
/// # drop(db);
/// # Ok(()) }
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AutoFailover {
    after_failures: u32,
    admin: Option<(String, String)>,
    repoint_replicas: bool,
    retry_after: Duration,
}

impl Default for AutoFailover {
    /// Promote after 3 consecutive failed probes of the primary (with the default monitor,
    /// about 1.5 s for a refused connection, 4.5 s for a hung server), with each node's own
    /// credentials, re-pointing the other replicas; a failed attempt is retried after 5 s.
    fn default() -> Self {
        AutoFailover {
            after_failures: 3,
            admin: None,
            repoint_replicas: true,
            retry_after: Duration::from_secs(5),
        }
    }
}

impl fmt::Debug for AutoFailover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AutoFailover")
            .field("after_failures", &self.after_failures)
            .field("admin_user", &self.admin.as_ref().map(|(u, _)| u.as_str()))
            .field("repoint_replicas", &self.repoint_replicas)
            .field("retry_after", &self.retry_after)
            .finish()
    }
}

impl AutoFailover {
    /// Consecutive failed probes of the primary before promoting (at least 1, default 3).
    #[must_use]
    pub fn after_failures(mut self, n: u32) -> Self {
        self.after_failures = n.max(1);
        self
    }

    /// The account promotion and re-pointing use, instead of each node's own (the application
    /// user usually may not run `pg_promote()`, `ALTER SYSTEM`, `STOP SLAVE` or
    /// `SET GLOBAL read_only`). Used on the same hosts, ports and databases as the nodes' URLs;
    /// never logged.
    #[must_use]
    pub fn admin_credentials(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.admin = Some((user.into(), password.into()));
        self
    }

    /// Whether the other replicas are re-pointed at the promoted one (default true).
    #[must_use]
    pub fn repoint_replicas(mut self, repoint: bool) -> Self {
        self.repoint_replicas = repoint;
        self
    }

    /// How long after a failed promotion attempt the next one may start (default 5 s).
    #[must_use]
    pub fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = wait;
        self
    }
}

impl RoutedConnectionBuilder {
    /// Turns on automatic promotion (off by default). Read [`AutoFailover`]'s risks first: an
    /// external HA manager is the better choice wherever there is one.
    pub fn auto_failover(mut self, config: AutoFailover) -> Self {
        self.policy.failover = Some(config);
        self
    }
}

/// A node's URL, which may carry credentials: its `Debug` shows only the node name.
#[derive(Clone)]
pub(crate) struct NodeUrl {
    name: String,
    url: String,
}

impl NodeUrl {
    pub(crate) fn new(name: String, url: String) -> NodeUrl {
        NodeUrl { name, url }
    }
}

impl fmt::Debug for NodeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The failover state a connection keeps.
#[derive(Debug, Default)]
pub(crate) struct Failover {
    config: Option<AutoFailover>,
    urls: Vec<NodeUrl>,
    busy: AtomicBool,
    /// When the last attempt ended, as milliseconds since `epoch` (0: never).
    last_attempt_ms: AtomicU64,
    promotions: AtomicU64,
    epoch: Option<Instant>,
}

impl Failover {
    pub(crate) fn new(config: Option<AutoFailover>, urls: Vec<NodeUrl>) -> Failover {
        Failover { config, urls, epoch: Some(Instant::now()), ..Failover::default() }
    }

    /// Promotions this connection carried out.
    pub(crate) fn promotions(&self) -> u64 {
        self.promotions.load(Ordering::Relaxed)
    }

    fn retry_allowed(&self, config: &AutoFailover) -> bool {
        let last = self.last_attempt_ms.load(Ordering::Relaxed);
        let Some(epoch) = self.epoch else { return false };
        let now = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let wait = u64::try_from(config.retry_after.as_millis()).unwrap_or(u64::MAX);
        last == 0 || now.saturating_sub(last) >= wait
    }

    fn finish_attempt(&self) {
        if let Some(epoch) = self.epoch {
            let now = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.last_attempt_ms.store(now.max(1), Ordering::Relaxed);
        }
        self.busy.store(false, Ordering::Release);
    }
}

/// Called by the monitor after each probe of `node`: starts a promotion when the node is the
/// primary, automatic failover is on, and it has failed enough probes in a row.
pub(crate) fn after_probe(inner: &Arc<Inner>, node: usize, failures: u32, flavor: Flavor) {
    let state = &inner.failover;
    let Some(config) = &state.config else { return };
    if failures < config.after_failures
        || inner.routing.primary_index() != Some(node)
        || inner.routing.is_fenced(node)
        || !state.retry_allowed(config)
        || state.busy.swap(true, Ordering::AcqRel)
    {
        return;
    }
    let inner = Arc::clone(inner);
    tokio::spawn(async move {
        match promote(&inner, node, flavor).await {
            Ok(Some(new)) => {
                inner.failover.promotions.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target: "rwsplit", old = %inner.nodes[node].name, new = %inner.nodes[new].name, "automatic failover: promoted a replica and fenced the old primary");
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(target: "rwsplit", primary = %inner.nodes[node].name, error = %e, "automatic failover failed");
            }
        }
        inner.failover.finish_attempt();
    });
}

/// How far a candidate has received, comparable across candidates of one cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Received {
    Postgres { timeline: u32, lsn: u64 },
    MariaDb { applied_or_received: u128, io_pos: String },
}

async fn promote(inner: &Arc<Inner>, old: usize, flavor: Flavor) -> Result<Option<usize>, DbErr> {
    let timeout = inner.policy.monitor.timeout_value();
    // 1. Still gone?
    let again = rwsplit_monitor::probe(&NodeProbe(&inner.nodes[old].conn), flavor, timeout).await;
    if again.is_ok() {
        tracing::info!(target: "rwsplit", primary = %inner.nodes[old].name, "automatic failover: the primary answered again, not promoting");
        return Ok(None);
    }
    // 2. The most advanced reachable replica.
    let latest = inner.routing.latest();
    let mut best: Option<(Received, usize, DatabaseConnection)> = None;
    for (i, obs) in latest.iter().enumerate() {
        let reachable_replica = matches!(obs, Some(o) if o.role() == Role::Replica);
        if i == old || !reachable_replica || inner.routing.is_fenced(i) {
            continue;
        }
        let admin = match admin_conn(inner, i, timeout).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(target: "rwsplit", node = %inner.nodes[i].name, error = %e, "automatic failover: candidate unreachable");
                continue;
            }
        };
        let received = match tokio::time::timeout(timeout, received(&admin, flavor)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::warn!(target: "rwsplit", node = %inner.nodes[i].name, error = %e, "automatic failover: could not read the candidate's position");
                continue;
            }
            Err(_) => continue,
        };
        if best.as_ref().is_none_or(|(b, _, _)| received > *b) {
            best = Some((received, i, admin));
        }
    }
    let Some((received, new, admin)) = best else {
        return Err(DbErr::Custom("rwsplit: no reachable replica to promote".into()));
    };
    // 3. Fence, then 4. promote.
    inner.routing.set_fenced(old, true);
    tracing::warn!(target: "rwsplit", node = %inner.nodes[old].name, "fenced: no statement goes to it until `unfence`");
    if let Err(e) = promote_node(&admin, flavor, &received).await {
        // Nothing changed on any server: the old primary is not fenced after all.
        inner.routing.set_fenced(old, false);
        return Err(e);
    }
    // The new primary is taken at once, without waiting for its next probe.
    let seen = rwsplit_monitor::probe(&NodeProbe(&inner.nodes[new].conn), flavor, timeout).await;
    inner.routing.observe_node(new, &seen);
    // 5. Re-point the others.
    let repoint = inner.failover.config.as_ref().is_some_and(|c| c.repoint_replicas);
    if repoint {
        for (i, obs) in latest.iter().enumerate() {
            if i == old || i == new || obs.is_none() || inner.routing.is_fenced(i) {
                continue;
            }
            let result = async {
                let conn = admin_conn(inner, i, timeout).await?;
                repoint_node(inner, &conn, &admin, flavor, new).await
            };
            match tokio::time::timeout(timeout * 5, result).await {
                Ok(Ok(())) => {
                    tracing::info!(target: "rwsplit", node = %inner.nodes[i].name, primary = %inner.nodes[new].name, "re-pointed replica");
                }
                Ok(Err(e)) => {
                    tracing::warn!(target: "rwsplit", node = %inner.nodes[i].name, error = %e, "could not re-point replica");
                }
                Err(_) => {
                    tracing::warn!(target: "rwsplit", node = %inner.nodes[i].name, "re-pointing the replica timed out");
                }
            }
        }
    }
    let _ = admin.close().await;
    Ok(Some(new))
}

/// A one-connection pool to `node` with the admin credentials (or the node's own).
async fn admin_conn(
    inner: &Inner,
    node: usize,
    timeout: Duration,
) -> Result<DatabaseConnection, DbErr> {
    let url = inner
        .failover
        .urls
        .get(node)
        .ok_or_else(|| DbErr::Custom("rwsplit: no URL for the node".into()))?;
    let admin = inner.failover.config.as_ref().and_then(|c| c.admin.as_ref());
    let url = match admin {
        Some((user, password)) => with_credentials(&url.url, user, password),
        None => url.url.clone(),
    };
    let mut opts = ConnectOptions::new(url);
    opts.max_connections(1).min_connections(0).acquire_timeout(timeout).sqlx_logging(false);
    Database::connect(opts).await
}

const PG_RECEIVED: &str = "SELECT pg_is_in_recovery()::text AS in_recovery, \
    COALESCE((SELECT received_tli FROM pg_stat_wal_receiver), \
             (SELECT timeline_id FROM pg_control_checkpoint()))::text AS timeline, \
    GREATEST(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text AS received";

async fn received(conn: &DatabaseConnection, flavor: Flavor) -> Result<Received, DbErr> {
    let probe = NodeProbe(conn);
    let unexpected = |what: &str| DbErr::Custom(format!("rwsplit: unexpected {what}"));
    match flavor {
        Flavor::Postgres => {
            let row =
                probe.fetch_row(PG_RECEIVED).await.map_err(|e| DbErr::Custom(e.to_string()))?;
            let row = row.ok_or_else(|| unexpected("empty answer"))?;
            if row.get("in_recovery") != Some("true") {
                return Err(unexpected("primary among the candidates"));
            }
            let timeline = row.get("timeline").and_then(|t| t.parse().ok()).unwrap_or(0);
            let lsn = row
                .get("received")
                .and_then(|l| l.parse::<rwsplit_core::Lsn>().ok())
                .ok_or_else(|| unexpected("LSN"))?;
            Ok(Received::Postgres { timeline, lsn: lsn.get() })
        }
        _ => {
            let status = probe
                .fetch_row("SHOW SLAVE STATUS")
                .await
                .map_err(|e| DbErr::Custom(e.to_string()))?;
            let vars = probe
                .fetch_row("SELECT @@global.gtid_slave_pos AS slave_pos")
                .await
                .map_err(|e| DbErr::Custom(e.to_string()))?;
            let io_pos =
                status.as_ref().and_then(|s| s.get("Gtid_IO_Pos")).unwrap_or("").to_owned();
            let slave_pos = vars.as_ref().and_then(|v| v.get("slave_pos")).unwrap_or("").to_owned();
            let io = gtid_weight(&io_pos);
            let applied = gtid_weight(&slave_pos);
            Ok(Received::MariaDb { applied_or_received: io.max(applied), io_pos })
        }
    }
}

/// A MariaDB position's total of sequence numbers: within one cluster's history, more is
/// further.
fn gtid_weight(pos: &str) -> u128 {
    pos.trim()
        .parse::<MariaDbPosition>()
        .map(|p| p.gtids().iter().map(|g| u128::from(g.sequence())).sum())
        .unwrap_or(0)
}

async fn exec(conn: &DatabaseConnection, sql: &str) -> Result<(), DbErr> {
    conn.execute_unprepared(sql).await.map(drop)
}

async fn promote_node(
    conn: &DatabaseConnection,
    flavor: Flavor,
    received: &Received,
) -> Result<(), DbErr> {
    match flavor {
        Flavor::Postgres => {
            let stmt = Statement::from_string(
                conn.get_database_backend(),
                "SELECT pg_promote(true, 30)::text AS done",
            );
            let row = conn.query_one_raw(stmt).await?;
            let done: Option<String> = row.and_then(|r| r.try_get("", "done").ok());
            if done.as_deref() == Some("true") {
                Ok(())
            } else {
                Err(DbErr::Custom("rwsplit: pg_promote() did not finish".into()))
            }
        }
        _ => {
            if let Received::MariaDb { io_pos, .. } = received
                && !io_pos.is_empty()
            {
                // Apply everything received before the SQL thread stops for good.
                let wait = format!("SELECT MASTER_GTID_WAIT('{}', 10)", escape(io_pos));
                conn.query_one_raw(Statement::from_string(conn.get_database_backend(), wait))
                    .await?;
            }
            exec(conn, "STOP SLAVE").await?;
            exec(conn, "RESET SLAVE ALL").await?;
            exec(conn, "SET GLOBAL read_only = 0").await
        }
    }
}

async fn repoint_node(
    inner: &Inner,
    conn: &DatabaseConnection,
    new_primary: &DatabaseConnection,
    flavor: Flavor,
    new: usize,
) -> Result<(), DbErr> {
    let (host, port) = host_port(&inner.nodes[new].name)
        .ok_or_else(|| DbErr::Custom("rwsplit: the new primary's address is unknown".into()))?;
    match flavor {
        Flavor::Postgres => {
            let probe = &NodeProbe(conn);
            let fetch = |sql: &'static str| async move {
                probe
                    .fetch_row(sql)
                    .await
                    .map_err(|e| DbErr::Custom(e.to_string()))
                    .map(|r| r.and_then(|r| r.get("v").map(str::to_owned)).unwrap_or_default())
            };
            let conninfo = fetch("SELECT current_setting('primary_conninfo') AS v").await?;
            let slot = fetch("SELECT current_setting('primary_slot_name') AS v").await?;
            let rewritten = rewrite_conninfo(&conninfo, &host, port).ok_or_else(|| {
                DbErr::Custom("rwsplit: primary_conninfo is not in keyword=value form".into())
            })?;
            if !slot.is_empty() {
                let create = format!(
                    "SELECT pg_create_physical_replication_slot('{s}') WHERE NOT EXISTS \
                     (SELECT 1 FROM pg_replication_slots WHERE slot_name = '{s}')",
                    s = pg_escape(&slot)
                );
                new_primary
                    .query_one_raw(Statement::from_string(
                        new_primary.get_database_backend(),
                        create,
                    ))
                    .await?;
            }
            exec(conn, &format!("ALTER SYSTEM SET primary_conninfo = '{}'", pg_escape(&rewritten)))
                .await?;
            conn.query_one_raw(Statement::from_string(
                conn.get_database_backend(),
                "SELECT pg_reload_conf()",
            ))
            .await
            .map(drop)
        }
        _ => {
            exec(conn, "STOP SLAVE").await?;
            exec(
                conn,
                &format!(
                    "CHANGE MASTER TO MASTER_HOST = '{}', MASTER_PORT = {port}, \
                     MASTER_USE_GTID = slave_pos",
                    escape(&host)
                ),
            )
            .await?;
            exec(conn, "START SLAVE").await
        }
    }
}

/// A PostgreSQL string literal's body (standard-conforming strings: only quotes double).
fn pg_escape(s: &str) -> String {
    s.replace('\'', "''")
}

/// A MariaDB string literal's body (backslashes escape there).
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "''")
}

/// `host:port/db` → (host, port). IPv6 hosts keep their brackets off.
fn host_port(name: &str) -> Option<(String, u16)> {
    let authority = name.split('/').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

/// A keyword=value conninfo with `host` and `port` replaced (and `hostaddr` dropped, since it
/// would override the host). `None` for a URI conninfo.
fn rewrite_conninfo(conninfo: &str, host: &str, port: u16) -> Option<String> {
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

/// `url` with its user and password replaced (percent-encoded).
fn with_credentials(url: &str, user: &str, password: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let userinfo = if password.is_empty() {
        encode(user)
    } else {
        format!("{}:{}", encode(user), encode(password))
    };
    format!("{scheme}://{userinfo}@{host}{tail}")
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl RoutedConnection {
    /// Fences the node named `name` (`host:port/db`, as in [`stats`](RoutedConnection::stats)):
    /// no statement is routed to it and its claim to the primary role is ignored until
    /// [`unfence`](RoutedConnection::unfence). Automatic failover fences the old primary itself.
    /// Fencing is routing only: the server keeps running and other clients may still write to
    /// it.
    pub fn fence(&self, name: &str) -> Result<(), DbErr> {
        let node = self.node_named(name)?;
        self.inner.routing.set_fenced(node, true);
        tracing::warn!(target: "rwsplit", node = %name, "fenced by the application");
        Ok(())
    }

    /// Lifts a fence: the node is routed to again as its probes report it. Do this only once it
    /// cannot claim the primary role any more (demoted and following the new primary, or
    /// rebuilt); a second primary makes the router refuse writes.
    pub fn unfence(&self, name: &str) -> Result<(), DbErr> {
        let node = self.node_named(name)?;
        self.inner.routing.set_fenced(node, false);
        tracing::warn!(target: "rwsplit", node = %name, "unfenced by the application");
        Ok(())
    }

    fn node_named(&self, name: &str) -> Result<usize, DbErr> {
        self.inner
            .nodes
            .iter()
            .position(|n| n.name == name)
            .ok_or_else(|| DbErr::Custom(format!("rwsplit: no node named {name}")))
    }
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

    #[test]
    fn node_names_give_host_and_port() {
        assert_eq!(host_port("127.0.0.1:5433/app"), Some(("127.0.0.1".into(), 5433)));
        assert_eq!(host_port("[::1]:5433/app"), Some(("::1".into(), 5433)));
        assert_eq!(host_port("db"), None);
    }

    #[test]
    fn admin_credentials_replace_the_users_and_are_encoded() {
        assert_eq!(
            with_credentials("mysql://app:pw@h:3306/shop?x=1", "root", ""),
            "mysql://root@h:3306/shop?x=1"
        );
        assert_eq!(
            with_credentials("postgres://h/db", "ad min", "p@ss"),
            "postgres://ad%20min:p%40ss@h/db"
        );
        let debug = format!("{:?}", AutoFailover::default().admin_credentials("root", "hunter2"));
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn gtid_positions_compare_by_progress() {
        assert!(gtid_weight("0-1-10,1-2-5") > gtid_weight("0-1-12"));
        assert_eq!(gtid_weight(""), 0);
        let a = Received::Postgres { timeline: 1, lsn: 100 };
        let b = Received::Postgres { timeline: 2, lsn: 10 };
        assert!(b > a);
    }
}
