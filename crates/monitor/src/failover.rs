//! Opt-in automatic promotion, and fencing: see [`AutoFailover`].

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rwsplit_core::{NodeId, Role};
use tokio::time::Instant;

use crate::connector::{Connector, Purpose, open};
use crate::probe::{MonitorConfig, Observation, ProbeError};
use crate::product::{Product, probe_as};
use crate::state::TopologyState;

/// Opt-in automatic promotion of the most advanced replica when the primary is lost.
///
/// Off by default: an external HA manager (Patroni, repmgr, pg_auto_failover, MaxScale's
/// MariaDB monitor, orchestrator) sees the whole cluster, holds a lock or quorum and can fence
/// the old primary at the server; an in-process router sees only what this process can reach.
/// Two application processes (or an application and an HA manager) both promoting is a split
/// brain. Turn it on only where this process is the only one that promotes.
///
/// When enabled and the primary has failed `after_failures` consecutive probes (on the
/// monitor's own connection: a full application pool never counts):
/// 1. the primary is probed once more on a **fresh connection**; if it answers, nothing happens;
/// 2. every reachable replica is asked whether it still receives from the primary (PostgreSQL:
///    its WAL receiver is `streaming`; MariaDB: `Slave_IO_Running = Yes`); if one does, the
///    primary is alive and only this process cannot reach it, so nothing happens (a frozen
///    primary is taken as gone once the replicas' receivers time out: PostgreSQL
///    `wal_receiver_timeout`, MariaDB `slave_net_timeout`);
/// 3. every reachable replica is asked how far it has *received* (PostgreSQL:
///    `pg_last_wal_receive_lsn()`, on the latest timeline; MariaDB: `Gtid_IO_Pos`), and the most
///    advanced one is chosen (ties: configuration order);
/// 4. the old primary is **fenced**: from here on no statement is routed to it and its claim to
///    the primary role is ignored, until an operator unfences it;
/// 5. the chosen replica is promoted: PostgreSQL `pg_promote()`; MariaDB waits until it has
///    applied what it received (`MASTER_GTID_WAIT`), then `STOP SLAVE; RESET SLAVE ALL;
///    SET GLOBAL read_only = 0`;
/// 6. the other replicas are re-pointed at it: MariaDB `CHANGE MASTER TO MASTER_HOST, MASTER_PORT,
///    MASTER_USE_GTID = slave_pos`; PostgreSQL (13+) `ALTER SYSTEM SET primary_conninfo` (the
///    standby's own conninfo with the new host and port) plus its replication slot created on the
///    new primary, then `pg_reload_conf()` — the walreceiver follows the new timeline without a
///    restart. Both use the new primary's [replication address](AutoFailover::replication_address)
///    if one is set, else the host and port this process uses to reach it (from its name,
///    `host:port/db`). Each replica gets up to three attempts (each bounded by five probe
///    timeouts, at least 5 s). Where the replicas reach a node by another address than the application
///    does (NAT, published container ports, a proxy, a separate replication network), set each
///    node's replication address, or leave re-pointing to an HA manager
///    ([`AutoFailover::repoint_replicas`]`(false)`).
///
/// Risks, in the order they bite: with asynchronous replication, writes the old primary
/// acknowledged but had not yet sent are lost (use PostgreSQL synchronous replication,
/// `synchronous_standby_names = 'ANY 1 (*)'`, or MariaDB lossless semi-sync,
/// `rpl_semi_sync_master_wait_point = AFTER_SYNC`); a primary that is only cut off from this
/// process *and* its replicas keeps taking writes from others (fencing here is only routing:
/// fence it at the server or the network too); a replica that received more WAL than the
/// promoted one cannot follow it without `pg_rewind` (choosing the most advanced replica avoids
/// creating one).
///
/// ```
/// use rwsplit_monitor::AutoFailover;
///
/// // Promote after 5 failed probes; promotion and re-pointing need an admin account.
/// let failover = AutoFailover::default().after_failures(5).admin_credentials("root", "secret");
/// assert_eq!(failover.after_failures_value(), 5);
/// assert!(!format!("{failover:?}").contains("secret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AutoFailover {
    after_failures: u32,
    admin: Option<(String, String)>,
    repoint_replicas: bool,
    retry_after: Duration,
    /// Where the other nodes replicate a node from, by id, for the nodes it was set for.
    addresses: Vec<(NodeId, ReplicationAddress)>,
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
            addresses: Vec::new(),
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
            .field("addresses", &self.addresses)
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

    /// Where the other nodes replicate node `node` (the adapter's configured nodes: the
    /// primary `NodeId::new(0)`, then the replicas in the order given) from, when that is not
    /// the host and port of the node's name: re-pointing the replicas at a promoted node uses
    /// this address. Set again for the same id, the last address counts. Keyed by the whole
    /// id: a node that later gets the same index (another generation) does not inherit it.
    ///
    /// ```
    /// use rwsplit_core::NodeId;
    /// use rwsplit_monitor::{AutoFailover, ReplicationAddress};
    ///
    /// let address: ReplicationAddress = "pg-2:5432".parse()?;
    /// let failover = AutoFailover::default().replication_address(NodeId::new(1), address.clone());
    /// assert_eq!(failover.replication_address_of(NodeId::new(1)), Some(&address));
    /// assert_eq!(failover.replication_address_of(NodeId::new(0)), None);
    /// assert_eq!(failover.replication_address_of(NodeId::with_generation(1, 1)), None);
    /// # Ok::<_, rwsplit_monitor::InvalidReplicationAddress>(())
    /// ```
    #[must_use]
    pub fn replication_address(mut self, node: NodeId, address: ReplicationAddress) -> Self {
        match self.addresses.iter_mut().find(|(id, _)| *id == node) {
            Some((_, a)) => *a = address,
            None => self.addresses.push((node, address)),
        }
        self
    }

    /// Node `node`'s replication address, if one was set.
    pub fn replication_address_of(&self, node: NodeId) -> Option<&ReplicationAddress> {
        self.addresses.iter().find(|(id, _)| *id == node).map(|(_, a)| a)
    }

    /// Where the replicas are re-pointed to follow node `node`, named `name` (`host:port/db`):
    /// its replication address, else the host and port of its name.
    pub(crate) fn repoint_target(&self, node: NodeId, name: &str) -> Option<(String, u16)> {
        match self.replication_address_of(node) {
            Some(a) => Some((a.host.clone(), a.port)),
            None => host_port(name),
        }
    }

    /// Consecutive failed probes before promoting.
    pub fn after_failures_value(&self) -> u32 {
        self.after_failures
    }

    /// The admin account, `(user, password)`, for a [`Connector`] opening
    /// [`Purpose::Admin`] connections.
    pub fn admin_credentials_value(&self) -> Option<(&str, &str)> {
        self.admin.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }
}

/// A monitor's failover state.
#[derive(Debug, Default)]
pub(crate) struct Failover {
    config: Option<AutoFailover>,
    busy: AtomicBool,
    last_attempt: Mutex<Option<Instant>>,
    promotions: AtomicU64,
}

impl Failover {
    pub(crate) fn new(config: Option<AutoFailover>) -> Failover {
        Failover { config, ..Failover::default() }
    }

    pub(crate) fn promotions(&self) -> u64 {
        self.promotions.load(Ordering::Relaxed)
    }

    fn retry_allowed(&self, config: &AutoFailover) -> bool {
        let last = *self.last_attempt.lock().unwrap_or_else(PoisonError::into_inner);
        last.is_none_or(|t| t.elapsed() >= config.retry_after)
    }

    fn finish_attempt(&self) {
        *self.last_attempt.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        self.busy.store(false, Ordering::Release);
    }
}

/// What a failover needs of the monitor it runs in.
pub(crate) trait Cluster: Send + Sync + 'static {
    /// How the monitor opens connections.
    type Connector: Connector;

    /// The state the failover decides on and updates (fencing, the new primary's probe).
    fn state(&self) -> &TopologyState;

    /// Opens the connections the failover probes, promotes and re-points through.
    fn connector(&self) -> &Self::Connector;

    /// The probe timeout and interval the failover's steps are bounded by.
    fn config(&self) -> &MonitorConfig;

    /// The failover's own configuration and standing.
    fn failover(&self) -> &Failover;
}

/// After a failed probe of `node`: starts a promotion when the node is the primary, automatic
/// failover is on, and it has failed enough probes in a row.
pub(crate) fn after_failed_probe<P: Product, S: Cluster>(
    shared: &Arc<S>,
    node: NodeId,
    failures: u32,
) {
    let state = shared.failover();
    let Some(config) = &state.config else { return };
    if failures < config.after_failures
        || shared.state().primary_id() != Some(node)
        || shared.state().is_fenced(node)
        || !state.retry_allowed(config)
        || state.busy.swap(true, Ordering::AcqRel)
    {
        return;
    }
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let name = |i: NodeId| name_of(shared.state(), i);
        match promote::<P, S>(&*shared, node).await {
            Ok(Some(new)) => {
                shared.failover().promotions.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target: "rwsplit", old = %name(node), new = %name(new), "automatic failover: promoted a replica and fenced the old primary");
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(target: "rwsplit", primary = %name(node), error = %e, "automatic failover failed");
            }
        }
        shared.failover().finish_attempt();
    });
}

/// Why a promotion did not happen.
#[derive(Debug, thiserror::Error)]
enum FailoverError {
    #[error("no reachable replica to promote")]
    NoCandidate,
    #[error("promoting {node} failed: {source}")]
    Promote {
        node: String,
        #[source]
        source: ProbeError,
    },
}

async fn promote<P: Product, S: Cluster>(
    shared: &S,
    old: NodeId,
) -> Result<Option<NodeId>, FailoverError> {
    let timeout = shared.config().probe_timeout_value();
    let topo = shared.state().snapshot();
    let name = |i: NodeId| topo.node(i).map(|n| n.name().to_owned()).unwrap_or_default();
    // 1. Still gone, seen on a fresh connection of our own?
    if probe_fresh::<P, S>(shared, old, timeout).await.is_ok() {
        tracing::info!(target: "rwsplit", primary = %name(old), "automatic failover: the primary answered again on a fresh connection, not promoting");
        return Ok(None);
    }
    // 2 and 3. The replicas: does any still receive from the primary; who has received most?
    let Some((received, new, admin)) = best_candidate::<P, S>(shared, old, &name).await? else {
        return Ok(None);
    };
    // 4. Fence, then 5. promote.
    shared.state().set_fenced(old, true);
    tracing::warn!(target: "rwsplit", node = %name(old), "fenced: no statement goes to it until it is unfenced");
    if let Err(source) = P::promote(&admin, &received).await {
        // Nothing changed on any server: the old primary is not fenced after all.
        shared.state().set_fenced(old, false);
        return Err(FailoverError::Promote { node: name(new), source });
    }
    // The new primary is taken at once, without waiting for its next probe.
    let seen = probe_fresh::<P, S>(shared, new, timeout).await;
    shared.state().observe(new, &seen, Instant::now().into_std());
    // 6. Re-point the others.
    if shared.failover().config.as_ref().is_some_and(|c| c.repoint_replicas) {
        repoint_replicas::<P, S>(shared, old, new, &admin, &name).await;
    }
    Ok(Some(new))
}

/// `node` probed on a fresh connection of the monitor's own, within `timeout`.
async fn probe_fresh<P: Product, S: Cluster>(
    shared: &S,
    node: NodeId,
    timeout: Duration,
) -> Result<Observation, ProbeError> {
    let conn = open(shared.connector(), node, Purpose::Probe, timeout).await?;
    probe_as::<P, <S::Connector as Connector>::Conn>(&conn, timeout).await
}

/// The replica that has received most from the old primary `old`, with what it received and an
/// admin connection to it; `Ok(None)` when one still receives from `old` (this process cannot
/// reach the primary, but it is not gone: nothing is promoted).
///
/// # Errors
///
/// [`FailoverError::NoCandidate`] when no replica in the snapshot answered.
async fn best_candidate<P: Product, S: Cluster>(
    shared: &S,
    old: NodeId,
    name: &impl Fn(NodeId) -> String,
) -> Result<Option<(P::Received, NodeId, <S::Connector as Connector>::Conn)>, FailoverError> {
    let timeout = shared.config().probe_timeout_value();
    let topo = shared.state().snapshot();
    let latest = shared.state().latest();
    let mut best: Option<(P::Received, NodeId, <S::Connector as Connector>::Conn)> = None;
    for &(i, ref obs) in &latest {
        let reachable_replica = matches!(obs, Some(o) if o.role() == Role::Replica);
        // Joining nodes are probed too but take no statement yet: not a candidate.
        if i == old || !reachable_replica || shared.state().is_fenced(i) || topo.node(i).is_none() {
            continue;
        }
        let asked = async {
            let conn = open(shared.connector(), i, Purpose::Admin, timeout).await?;
            let streaming = tokio::time::timeout(timeout, P::receiving(&conn))
                .await
                .map_err(|_| ProbeError::Timeout { after: timeout })??;
            let received = tokio::time::timeout(timeout, P::received(&conn))
                .await
                .map_err(|_| ProbeError::Timeout { after: timeout })??;
            Ok::<_, ProbeError>((streaming, received, conn))
        };
        match asked.await {
            Ok((true, _, _)) => {
                tracing::warn!(target: "rwsplit", primary = %name(old), replica = %name(i), "automatic failover: a replica still receives from the primary: this process cannot reach it, but it is not gone; not promoting");
                return Ok(None);
            }
            Ok((false, received, conn)) => {
                if best.as_ref().is_none_or(|(b, _, _)| received > *b) {
                    best = Some((received, i, conn));
                }
            }
            Err(e) => {
                tracing::warn!(target: "rwsplit", node = %name(i), error = %e, "automatic failover: candidate unreachable");
            }
        }
    }
    best.map(Some).ok_or(FailoverError::NoCandidate)
}

/// Re-points every replica but `old` and `new` (and fenced ones) at the new primary `new`,
/// whose admin connection is `admin`. Each attempt is bounded by five probe timeouts, at least
/// 5 s (a loaded replica may take a while to stop its IO thread); a failed attempt is retried
/// after a probe interval. A replica whose latest probe failed is tried too: it may only have
/// been slow.
async fn repoint_replicas<P: Product, S: Cluster>(
    shared: &S,
    old: NodeId,
    new: NodeId,
    admin: &<S::Connector as Connector>::Conn,
    name: &impl Fn(NodeId) -> String,
) {
    let timeout = shared.config().probe_timeout_value();
    let address = shared.failover().config.as_ref().and_then(|c| c.repoint_target(new, &name(new)));
    let bound = timeout.saturating_mul(5).max(REPOINT_MIN_BOUND);
    let pause = shared.config().probe_interval_value().min(REPOINT_MIN_BOUND);
    for i in shared.state().ids() {
        if i == old || i == new || shared.state().is_fenced(i) {
            continue;
        }
        let Some((host, port)) = address.as_ref() else {
            tracing::warn!(target: "rwsplit", node = %name(new), "the new primary's address is unknown: replicas not re-pointed");
            break;
        };
        for attempt in 1..=REPOINT_ATTEMPTS {
            let result = async {
                let conn = open(shared.connector(), i, Purpose::Admin, bound).await?;
                P::repoint(&conn, admin, host, *port).await
            };
            let error = match tokio::time::timeout(bound, result).await {
                Ok(Ok(())) => {
                    tracing::info!(target: "rwsplit", node = %name(i), primary = %name(new), "re-pointed replica");
                    break;
                }
                Ok(Err(e)) => e,
                Err(_) => ProbeError::Timeout { after: bound },
            };
            if attempt == REPOINT_ATTEMPTS {
                tracing::warn!(target: "rwsplit", node = %name(i), error = %error, attempts = attempt, "could not re-point replica");
            } else {
                tracing::info!(target: "rwsplit", node = %name(i), error = %error, attempt, "re-pointing the replica failed, retrying");
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// Where the other nodes replicate a node from: a host (a name, an IPv4 address or a bracketed
/// IPv6 address) and a port, written `host:port`. Parsing refuses anything else, and any
/// character that could leave a quoted SQL literal or a `primary_conninfo` value (whitespace,
/// quotes, backslashes, control characters): it ends up in both.
///
/// ```
/// use rwsplit_monitor::ReplicationAddress;
///
/// let a: ReplicationAddress = "[fd00::2]:5432".parse()?;
/// assert_eq!((a.host(), a.port()), ("fd00::2", 5432));
/// assert_eq!(a.to_string(), "[fd00::2]:5432");
/// let err = "pg-2".parse::<ReplicationAddress>().unwrap_err();
/// assert_eq!(err.to_string(), "replication address `pg-2` is not host:port: no port");
/// # Ok::<_, rwsplit_monitor::InvalidReplicationAddress>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReplicationAddress {
    host: String,
    port: u16,
}

impl ReplicationAddress {
    /// The host (an IPv6 address without its brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for ReplicationAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A [`ReplicationAddress`] that is not `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("replication address `{address}` is not host:port: {reason}")]
pub struct InvalidReplicationAddress {
    address: String,
    reason: &'static str,
}

impl InvalidReplicationAddress {
    /// What is wrong with it, without the address (`no port`, `no host`, …), for an error
    /// that must not echo what it was given.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl FromStr for ReplicationAddress {
    type Err = InvalidReplicationAddress;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| InvalidReplicationAddress {
            // Shown in errors: bounded, printable, and without credentials (a URL given here
            // by mistake may hold a password).
            address: crate::source::redact(s)
                .chars()
                .take(100)
                .flat_map(char::escape_default)
                .collect(),
            reason,
        };
        let (host, port) = s.rsplit_once(':').ok_or_else(|| invalid("no port"))?;
        let port: u16 =
            port.parse().map_err(|_| invalid("the port is not a number in 1..=65535"))?;
        if port == 0 {
            return Err(invalid("the port is not a number in 1..=65535"));
        }
        let host = match host.strip_prefix('[') {
            Some(v6) => v6.strip_suffix(']').ok_or_else(|| invalid("an unclosed `[`"))?,
            None if host.contains(':') => return Err(invalid("an IPv6 host needs brackets")),
            None => host,
        };
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        let bad = |c: char| {
            c.is_whitespace()
                || c.is_control()
                || matches!(c, '\'' | '"' | '\\' | '[' | ']' | '/' | '@')
        };
        if host.chars().any(bad) {
            return Err(invalid("the host has a character no host name has"));
        }
        Ok(ReplicationAddress { host: host.to_owned(), port })
    }
}

/// Attempts to re-point one replica at a promoted node.
const REPOINT_ATTEMPTS: u32 = 3;

/// The least time one re-pointing attempt is given.
const REPOINT_MIN_BOUND: Duration = Duration::from_secs(5);

/// `host:port/db` → (host, port). IPv6 hosts keep their brackets off.
pub(crate) fn host_port(name: &str) -> Option<(String, u16)> {
    let authority = name.split('/').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

/// Node `node`'s name in the current snapshot, by id (index and generation): empty once the
/// node is gone, even if a newer node holds its index.
fn name_of(state: &crate::TopologyState, node: NodeId) -> String {
    state.snapshot().node(node).map(|n| n.name().to_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The failover log names nodes by id: with node 1 removed, id 2 is the list's second entry.
    #[test]
    fn failover_names_nodes_by_id_not_by_position() {
        use rwsplit_core::{HealthPolicy, Node, NodeId, Role, Topology};
        let topology = Topology::builder()
            .node(Node::builder(NodeId::new(0), Role::Primary).name("a:5432/app").build())
            .node(Node::builder(NodeId::new(1), Role::Replica).name("b:5432/app").build())
            .node(Node::builder(NodeId::new(2), Role::Replica).name("c:5432/app").build())
            .build()
            .unwrap();
        let state = crate::TopologyState::new(topology, HealthPolicy::default());
        assert!(state.remove_node(NodeId::new(1)));
        assert_eq!(name_of(&state, NodeId::new(2)), "c:5432/app");
        assert_eq!(name_of(&state, NodeId::new(1)), "");
        assert_eq!(name_of(&state, NodeId::new(0)), "a:5432/app");
        // Index 1 reused by a node that joined: the old id still names nothing, the new one
        // names the newcomer.
        assert!(state.release(NodeId::new(1)));
        let new = state
            .add_node(|id| Node::builder(id, Role::Replica).name("d:5432/app").build())
            .unwrap();
        assert_eq!(new, NodeId::with_generation(1, 1));
        state.observe(NodeId::new(0), &Ok(seen(Role::Primary)), std::time::Instant::now());
        state.observe(new, &Ok(seen(Role::Replica)), std::time::Instant::now());
        assert_eq!(name_of(&state, new), "d:5432/app");
        assert_eq!(name_of(&state, NodeId::new(1)), "", "the removed node's id names no one");
    }

    fn seen(role: Role) -> crate::Observation {
        use rwsplit_core::{Lsn, PgPosition, ReplayPosition};
        crate::Observation {
            role,
            position: Some(ReplayPosition::Postgres(PgPosition::new(7, 1, Lsn::new(100)))),
            received_lsn: None,
            since_replay: Some(Duration::ZERO),
            replay_paused: false,
            seconds_behind: None,
            applying: None,
            latency: Duration::from_millis(1),
        }
    }

    #[test]
    fn node_names_give_host_and_port() {
        assert_eq!(host_port("127.0.0.1:5433/app"), Some(("127.0.0.1".into(), 5433)));
        assert_eq!(host_port("[::1]:5433/app"), Some(("::1".into(), 5433)));
        assert_eq!(host_port("db"), None);
    }

    #[rstest::rstest]
    #[case("pg-2:5432", Ok(("pg-2", 5432)))]
    #[case("10.0.0.3:3306", Ok(("10.0.0.3", 3306)))]
    #[case("[::1]:5433", Ok(("::1", 5433)))]
    #[case("pg-2", Err("no port"))]
    #[case("pg-2:", Err("the port is not a number in 1..=65535"))]
    #[case("pg-2:0", Err("the port is not a number in 1..=65535"))]
    #[case("pg-2:70000", Err("the port is not a number in 1..=65535"))]
    #[case(":5432", Err("no host"))]
    #[case("::1:5432", Err("an IPv6 host needs brackets"))]
    #[case("[::1:5432", Err("an unclosed `[`"))]
    #[case("pg 2:5432", Err("the host has a character no host name has"))]
    #[case("pg'2:5432", Err("the host has a character no host name has"))]
    #[case("u@pg:5432", Err("the host has a character no host name has"))]
    fn replication_addresses_parse_or_say_why_not(
        #[case] text: &str,
        #[case] expected: Result<(&str, u16), &str>,
    ) {
        let parsed = text.parse::<ReplicationAddress>();
        match expected {
            Ok((host, port)) => {
                let a = parsed.unwrap();
                assert_eq!((a.host(), a.port()), (host, port));
                assert_eq!(a.to_string().parse::<ReplicationAddress>().unwrap(), a);
            }
            Err(reason) => assert_eq!(parsed.unwrap_err().reason, reason, "{text}"),
        }
    }

    #[test]
    fn repointing_uses_the_replication_address_else_the_name() {
        let a: ReplicationAddress = "pg-3:5432".parse().unwrap();
        let f = AutoFailover::default()
            .replication_address(NodeId::new(2), a)
            .replication_address(NodeId::new(2).next_generation().unwrap(), "x:1".parse().unwrap());
        assert_eq!(
            f.repoint_target(NodeId::new(2), "127.0.0.1:49153/app"),
            Some(("pg-3".into(), 5432))
        );
        assert_eq!(
            f.repoint_target(NodeId::new(1), "127.0.0.1:49152/app"),
            Some(("127.0.0.1".into(), 49152))
        );
        let later = NodeId::new(2).next_generation().unwrap();
        assert_eq!(
            f.repoint_target(later, "127.0.0.1:49154/app"),
            Some(("x".into(), 1)),
            "a later node at the same index has its own address, not the first one's"
        );
        let readdressed = f.replication_address(NodeId::new(2), "pg-4:5432".parse().unwrap());
        assert_eq!(readdressed.addresses.len(), 2, "setting an id again replaces its address");
        assert_eq!(readdressed.repoint_target(NodeId::new(2), "n"), Some(("pg-4".into(), 5432)));
    }

    #[test]
    fn admin_passwords_stay_out_of_debug() {
        let debug = format!("{:?}", AutoFailover::default().admin_credentials("root", "hunter2"));
        assert!(!debug.contains("hunter2") && debug.contains("root"), "{debug}");
    }
}
