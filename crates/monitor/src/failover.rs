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
/// MariaDB monitor, orchestrator) sees the whole cluster and can fence the old primary at the
/// server; an in-process router sees only what its process can reach. Every application
/// process may run it: the processes of a fleet decide together (step 3), and at most one
/// promotes for a given failure. The guide's high-availability chapter states what it loses
/// (its RPO) under each replication mode and what the servers must allow.
///
/// When enabled and the primary has failed `after_failures` consecutive probes (on the
/// monitor's own connection: a full application pool never counts):
/// 1. **grace**: nothing happens for [`grace`](Self::grace) (default 10 s): a primary that
///    restarts within it is not failed over;
/// 2. the primary is probed once more on a **fresh connection**; if it answers, or refuses the
///    connection for lack of room (alive and busy), nothing happens;
/// 3. **one decider**: the failover lock (PostgreSQL `pg_try_advisory_lock`, which hot standbys
///    grant too; MariaDB `GET_LOCK`) is taken on a **majority of the servers** (the nodes there
///    are, the primary included), each on a session of its own, in an order every process
///    shares, backing off at the first server where another session holds it. Two processes
///    cannot both hold a majority: their majorities share a server, which grants the lock to
///    one session at a time. A process that cannot take a majority does not promote; so a
///    primary with one replica (two servers, the primary gone) never fails over automatically;
/// 4. **every replica is asked**, on its lock session or a fresh one: one that cannot be asked
///    vetoes (it may be the most advanced; [`allow_unreachable_replicas`](Self::allow_unreachable_replicas)
///    accepts that risk); one that still receives from the primary vetoes (the primary is
///    alive, only unreachable from here; PostgreSQL needs `pg_read_all_stats` to say, and its
///    absence vetoes); one that is a primary already ends the attempt (another process
///    promoted it: the monitor follows). The most advanced by what it has *received* is
///    chosen (PostgreSQL: `pg_last_wal_receive_lsn()` on the latest timeline; MariaDB:
///    `Gtid_IO_Pos`; ties: configuration order);
/// 5. **the loss is bounded**: a candidate further behind the primary's last position this
///    process sampled than [`max_lag_bytes`](Self::max_lag_bytes) (PostgreSQL, default 1 MiB)
///    or [`max_lag_transactions`](Self::max_lag_transactions) (MariaDB, default 1,000) is not
///    promoted, nor one compared with no sample;
/// 6. **the candidate applies what it received** before anything irreversible (MariaDB stops
///    its IO thread and `MASTER_GTID_WAIT`s; PostgreSQL waits for replay to reach what it
///    received); if it cannot before the deadline, the attempt is abandoned with nothing
///    changed, and tried again after [`retry_after`](Self::retry_after);
/// 7. the lock is **checked again** on every server (a restarted server forgot it): fewer than
///    a majority abandons the attempt;
/// 8. the old primary is **fenced** and the promotion sent (PostgreSQL `pg_promote()`; MariaDB
///    `STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0`). From here nothing is undone: a
///    promotion that does not report success by the deadline leaves the old primary fenced,
///    since the server may still finish it;
/// 9. the other replicas are re-pointed at it: MariaDB `CHANGE MASTER TO MASTER_HOST, MASTER_PORT,
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
/// Steps 2–8 end by [`deadline`](Self::deadline) (default 30 s); every statement is bounded.
///
/// **The old primary afterwards.** On PostgreSQL every process, a restarted one too, takes a
/// primary on an older timeline than a node of its system has reached as deposed (out of
/// rotation): the fence is the servers' history, not a flag in one process. SQL cannot stop a
/// PostgreSQL primary, though: other clients can still write to a deposed one that answers
/// again (synchronous replication makes their commits wait forever, as no standby follows it);
/// stop it, or fence it at the server or the network. On MariaDB the process that promoted
/// makes the old primary read-only (`SET GLOBAL read_only = 1`) when it answers again.
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
    grace: Duration,
    deadline: Duration,
    max_lag_bytes: u64,
    max_lag_transactions: u64,
    allow_unreachable_replicas: bool,
}

impl Default for AutoFailover {
    /// Start after 3 consecutive failed probes of the primary (with the default monitor,
    /// about 1.5 s for a refused connection, 4.5 s for a hung server), then a grace of 10 s,
    /// all steps within 30 s; at most 1 MiB of WAL or 1,000 transactions behind the primary's
    /// last sampled position; every replica must answer; each node's own credentials;
    /// re-pointing the other replicas; a failed attempt is retried after 5 s.
    fn default() -> Self {
        AutoFailover {
            after_failures: 3,
            admin: None,
            repoint_replicas: true,
            retry_after: Duration::from_secs(5),
            addresses: Vec::new(),
            grace: Duration::from_secs(10),
            deadline: Duration::from_secs(30),
            max_lag_bytes: 1 << 20,
            max_lag_transactions: 1_000,
            allow_unreachable_replicas: false,
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
            .field("grace", &self.grace)
            .field("deadline", &self.deadline)
            .field("max_lag_bytes", &self.max_lag_bytes)
            .field("max_lag_transactions", &self.max_lag_transactions)
            .field("allow_unreachable_replicas", &self.allow_unreachable_replicas)
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

    /// How long the primary must stay unreachable after `after_failures` failed probes before
    /// anything else happens (default 10 s): a primary that crashes and restarts within it is
    /// not failed over. Every second of it is a second without writes after a real failure.
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The time the failover's steps after the grace must end by (default 30 s; at least one
    /// probe timeout is given to each step). A candidate that has not applied what it received
    /// by then is not promoted; a promotion sent and not finished by then leaves the old
    /// primary fenced.
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// PostgreSQL: the most WAL, in bytes, the candidate may lack of the primary's last
    /// position this process sampled (default 1 MiB, as Patroni's `maximum_lag_on_failover`);
    /// `u64::MAX` lifts the bound (and promotes a candidate compared with no sample).
    #[must_use]
    pub fn max_lag_bytes(mut self, bytes: u64) -> Self {
        self.max_lag_bytes = bytes;
        self
    }

    /// MariaDB: the most transactions (GTID sequence numbers) the candidate may lack of the
    /// primary's last position this process sampled (default 1,000); `u64::MAX` lifts the
    /// bound.
    #[must_use]
    pub fn max_lag_transactions(mut self, transactions: u64) -> Self {
        self.max_lag_transactions = transactions;
        self
    }

    /// Whether a replica that cannot be asked how far it has received may be passed over
    /// (default false: it vetoes the failover, since it may be the most advanced; with true,
    /// the writes only it received are lost).
    #[must_use]
    pub fn allow_unreachable_replicas(mut self, allow: bool) -> Self {
        self.allow_unreachable_replicas = allow;
        self
    }

    /// The bound on how far behind a candidate may be, in `unit`.
    pub(crate) fn max_lag_for(&self, unit: crate::product::LagUnit) -> u64 {
        match unit {
            crate::product::LagUnit::Bytes => self.max_lag_bytes,
            crate::product::LagUnit::Transactions => self.max_lag_transactions,
        }
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
    /// Old primaries this process deposed, to be made read-only when they answer again.
    deposed: Mutex<Vec<NodeId>>,
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

    fn deposed(&self) -> std::sync::MutexGuard<'_, Vec<NodeId>> {
        self.deposed.lock().unwrap_or_else(PoisonError::into_inner)
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

/// After a failed probe of `node`: starts a failover when the node is the primary, automatic
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
        match failover::<P, S>(&*shared, node).await {
            Ok(Outcome::Promoted(new)) => {
                shared.failover().promotions.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target: "rwsplit", old = %name(node), new = %name(new), "automatic failover: promoted a replica and fenced the old primary");
            }
            Ok(outcome) => {
                tracing::warn!(target: "rwsplit", primary = %name(node), outcome = %outcome.describe(&name), "automatic failover: not promoting");
            }
            Err(e) => {
                tracing::error!(target: "rwsplit", primary = %name(node), error = %e, "automatic failover failed");
            }
        }
        shared.failover().finish_attempt();
    });
}

/// After a probe of `node` answered: a primary this process deposed that answers as a primary
/// again is made read-only where SQL can do that (MariaDB), one attempt at a time; on
/// PostgreSQL it stays fenced for every process by its older timeline, and what remains is
/// said in the log. MariaDB's `SET GLOBAL read_only = 1` waits for the commits in flight,
/// which under semi-sync wait for an acknowledgement no replica will send: the statement is
/// given [`READ_ONLY_PATIENCE`], on one connection, rather than sent again at every probe.
pub(crate) fn after_answer<P: Product, S: Cluster>(
    shared: &Arc<S>,
    node: NodeId,
    seen: &Observation,
) {
    if seen.role() != Role::Primary {
        return;
    }
    {
        let mut deposed = shared.failover().deposed();
        let Some(at) = deposed.iter().position(|&n| n == node) else { return };
        deposed.swap_remove(at);
    }
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let timeout = shared.config().probe_timeout_value();
        let name = name_of(shared.state(), node);
        let made = async {
            let conn = open(shared.connector(), node, Purpose::Admin, timeout).await?;
            within(READ_ONLY_PATIENCE, P::make_read_only(&conn)).await
        };
        match made.await {
            Ok(true) => {
                tracing::warn!(target: "rwsplit", node = %name, "the deposed primary answered again: made read-only");
            }
            Ok(false) => {
                tracing::error!(target: "rwsplit", node = %name, "the deposed primary answered again and still takes writes from clients other than rwsplit (SQL cannot stop a PostgreSQL primary): stop it, or fence it at the server or network");
            }
            Err(e) => {
                tracing::error!(target: "rwsplit", node = %name, error = %e, "the deposed primary answered again and could not be made read-only; trying again at its next answer");
                shared.failover().deposed().push(node);
            }
        }
    });
}

/// How long a deposed MariaDB primary's `SET GLOBAL read_only = 1` may wait for the commits
/// it holds (see [`after_answer`]).
const READ_ONLY_PATIENCE: Duration = Duration::from_secs(600);

/// How a failover attempt ended without an error.
#[derive(Debug)]
enum Outcome {
    /// The replica was promoted.
    Promoted(NodeId),
    /// The primary answered (or refused a connection for lack of room: alive and busy).
    PrimaryAlive,
    /// Another process holds the failover lock on too many servers, or too few answered.
    NoMajority { held: usize, needed: usize },
    /// A replica is a primary already: another process (or an operator) promoted it, and the
    /// monitor follows it.
    AlreadyPromoted(NodeId),
    /// A reason not to promote anyone (see [`Veto`]).
    Vetoed(Veto),
}

impl Outcome {
    fn describe(&self, name: &impl Fn(NodeId) -> String) -> String {
        match self {
            Outcome::Promoted(n) => format!("promoted {}", name(*n)),
            Outcome::PrimaryAlive => "the primary answered on a fresh connection".into(),
            Outcome::NoMajority { held, needed } => format!(
                "the failover lock held on {held} servers, {needed} needed (another process decides, or too few servers answer)"
            ),
            Outcome::AlreadyPromoted(n) => {
                format!("{} was promoted already (by another process?): following it", name(*n))
            }
            Outcome::Vetoed(v) => v.describe(name),
        }
    }
}

/// Why no replica is promoted this time.
#[derive(Debug)]
enum Veto {
    /// A replica could not be asked how far it has received: it may be the most advanced.
    Unreachable { node: NodeId, error: ProbeError },
    /// A replica still receives from the primary: the primary is alive, only unreachable here.
    StillReceiving(NodeId),
    /// No replica to promote.
    NoCandidate,
    /// The best candidate is further behind the primary's last sighting than allowed.
    TooFarBehind { node: NodeId, behind: u64, limit: u64, sample_age: Duration },
    /// The primary's position is unknown to this process, or on another history than the
    /// candidate's: how much would be lost cannot be bounded.
    Unbounded { node: NodeId },
    /// The candidate did not apply what it received before the deadline (its replay is slow,
    /// delayed, stopped or blocked): promoting it would lose what it has not applied.
    NotApplied(NodeId),
    /// The failover lock was lost on a server before the promotion (it restarted, or ended
    /// the session): another process may decide now.
    LockLost,
    /// Another replica received more than the candidate after it was chosen (the primary is
    /// back, or was never gone).
    Overtaken(NodeId),
}

impl Veto {
    fn describe(&self, name: &impl Fn(NodeId) -> String) -> String {
        match self {
            Veto::Unreachable { node, error } => {
                format!(
                    "replica {} could not be asked how far it has received ({error}): it vetoes",
                    name(*node)
                )
            }
            Veto::StillReceiving(n) => format!(
                "replica {} still receives from the primary: the primary is alive, only unreachable from here",
                name(*n)
            ),
            Veto::NoCandidate => "no replica to promote".into(),
            Veto::TooFarBehind { node, behind, limit, sample_age } => format!(
                "the most advanced replica, {}, is {behind} behind the primary's last sampled position ({sample_age:?} old; limit {limit})",
                name(*node)
            ),
            Veto::Unbounded { node } => format!(
                "how far {} is behind the primary is unknown (no sample of the primary's position on its history)",
                name(*node)
            ),
            Veto::NotApplied(n) => format!(
                "replica {} did not apply everything it received within the deadline: abandoned before promoting",
                name(*n)
            ),
            Veto::LockLost => "the failover lock was lost before promoting".into(),
            Veto::Overtaken(n) => format!(
                "replica {} received more than the candidate after it was chosen: abandoned",
                name(*n)
            ),
        }
    }
}

/// Why a failover failed.
#[derive(Debug, thiserror::Error)]
enum FailoverError {
    /// The promotion was sent and failed or did not finish: the old primary stays fenced (the
    /// server may still finish the promotion).
    #[error("promoting {node} did not finish: {source}; the old primary stays fenced")]
    Promote {
        node: String,
        #[source]
        source: ProbeError,
    },
    /// A step before the promotion failed: nothing changed on any server.
    #[error("before promoting {node}: {source}")]
    Prepare {
        node: String,
        #[source]
        source: ProbeError,
    },
}

/// The one instant a failover's steps must end by.
#[derive(Debug, Clone, Copy)]
struct Deadline(Instant);

impl Deadline {
    /// What is left, at least `floor` (a step given nothing would fail at once).
    fn left(self, floor: Duration) -> Duration {
        self.0.saturating_duration_since(Instant::now()).max(floor)
    }

    fn passed(self) -> bool {
        Instant::now() >= self.0
    }
}

/// `step` under `timeout`, its expiry a [`ProbeError::Timeout`].
async fn within<T>(
    timeout: Duration,
    step: impl std::future::Future<Output = Result<T, ProbeError>>,
) -> Result<T, ProbeError> {
    tokio::time::timeout(timeout, step).await.unwrap_or(Err(ProbeError::Timeout { after: timeout }))
}

/// The failover for the lost primary `old`, in its steps: the grace for the primary to come
/// back; a last look at it; the failover lock on a majority of the servers; the candidates
/// (every replica must answer); the bound on what may be lost; the candidate applies what it
/// received; the lock checked again; fence and promote (from here nothing is undone); re-point.
async fn failover<P: Product, S: Cluster>(
    shared: &S,
    old: NodeId,
) -> Result<Outcome, FailoverError> {
    let Some(config) = shared.failover().config.clone() else {
        return Ok(Outcome::PrimaryAlive);
    };
    // A primary that restarts within the grace is not failed over.
    tokio::time::sleep(config.grace).await;
    let deadline = Deadline(Instant::now() + config.deadline);
    let timeout = shared.config().probe_timeout_value();
    match probe_fresh::<P, S>(shared, old, timeout).await {
        Ok(_) => return Ok(Outcome::PrimaryAlive),
        Err(e) if e.is_busy() => return Ok(Outcome::PrimaryAlive),
        Err(_) => {}
    }
    let members = shared.state().ids();
    let needed = members.len() / 2 + 1;
    let held = lock_majority::<P, S>(shared, &members, needed, timeout).await;
    if held.len() < needed {
        unlock_all::<P, _>(&held, timeout).await;
        return Ok(Outcome::NoMajority { held: held.len(), needed });
    }
    let outcome = decide::<P, S>(shared, old, &config, &held, needed, deadline).await;
    unlock_all::<P, _>(&held, timeout).await;
    outcome
}

/// A session on a server that holds the failover lock.
type Held<C> = Vec<(NodeId, C)>;

/// Takes the failover lock on the servers `members`, in one order every process shares (by
/// name), until `needed` hold it; stops at the first server where another session holds it
/// (two processes racing then do not each take a minority: the one that lost the first
/// contested server backs off). A server that cannot be reached is passed over.
async fn lock_majority<P: Product, S: Cluster>(
    shared: &S,
    members: &[NodeId],
    needed: usize,
    timeout: Duration,
) -> Held<<S::Connector as Connector>::Conn> {
    let mut order: Vec<(String, NodeId)> =
        members.iter().map(|&i| (name_of(shared.state(), i), i)).collect();
    order.sort();
    let mut held = Vec::new();
    for (name, i) in order {
        if held.len() >= needed {
            break;
        }
        let taken = async {
            let conn = open(shared.connector(), i, Purpose::Admin, timeout).await?;
            let got = within(timeout, P::try_lock(&conn)).await?;
            Ok::<_, ProbeError>((got, conn))
        };
        match taken.await {
            Ok((true, conn)) => held.push((i, conn)),
            Ok((false, _)) => {
                tracing::info!(target: "rwsplit", node = %name, "automatic failover: another session holds the failover lock here; backing off");
                break;
            }
            Err(e) => {
                tracing::info!(target: "rwsplit", node = %name, error = %e, "automatic failover: no failover lock here (unreachable)");
            }
        }
    }
    held
}

/// Releases the failover lock on every server in `held` (closing the sessions would too).
async fn unlock_all<P: Product, C: crate::probe::ProbeConn>(
    held: &[(NodeId, C)],
    timeout: Duration,
) {
    for (_, conn) in held {
        let _ = within(timeout, P::unlock(conn)).await;
    }
}

/// With the failover lock held on a majority (`held`): chooses the candidate, bounds the loss,
/// makes it apply what it received, checks the lock again, then fences the old primary and
/// promotes.
async fn decide<P: Product, S: Cluster>(
    shared: &S,
    old: NodeId,
    config: &AutoFailover,
    held: &Held<<S::Connector as Connector>::Conn>,
    needed: usize,
    deadline: Deadline,
) -> Result<Outcome, FailoverError> {
    let timeout = shared.config().probe_timeout_value();
    let name = |i: NodeId| name_of(shared.state(), i);
    let Candidate { received, node: new, fresh } =
        match candidates::<P, S>(shared, old, config, held).await {
            Ok(best) => best,
            Err(outcome) => return Ok(outcome),
        };
    let conn = match fresh.as_ref() {
        Some(c) => c,
        None => match held.iter().find(|(i, _)| *i == new) {
            Some((_, c)) => c,
            None => return Ok(Outcome::Vetoed(Veto::NoCandidate)),
        },
    };
    // What may be lost: how far the candidate is behind the primary's last sampled position.
    if let Some(veto) = loss_bound::<P>(shared.state(), old, new, &received, config) {
        return Ok(Outcome::Vetoed(veto));
    }
    let prepare = |source| FailoverError::Prepare { node: name(new), source };
    let left = deadline.left(timeout);
    if !within(left + timeout, P::apply_received(conn, left)).await.map_err(prepare)? {
        return Ok(Outcome::Vetoed(Veto::NotApplied(new)));
    }
    // The lock again, just before the step that cannot be undone: a server that restarted
    // since has forgotten it, and another process may hold it now.
    let mut still = 0;
    for (_, c) in held {
        still += usize::from(within(timeout, P::holds_lock(c)).await.unwrap_or(false));
    }
    if still < needed || deadline.passed() {
        let _ = within(timeout, P::resume_receiving(conn)).await;
        return Ok(Outcome::Vetoed(if still < needed {
            Veto::LockLost
        } else {
            Veto::NotApplied(new)
        }));
    }
    // The other replicas stop receiving from the old primary: one that thaws now would send
    // them what the candidate never gets, and they could not follow it. None may have got
    // further than the candidate meanwhile.
    let detached = match detach_others::<P, S>(shared, old, new, held, &received).await {
        Ok(d) => d,
        Err(veto) => {
            let _ = within(timeout, P::resume_receiving(conn)).await;
            return Ok(Outcome::Vetoed(veto));
        }
    };
    // Fence, then promote. From here the old primary is never unfenced by this process: the
    // server may finish a promotion whose answer did not come.
    shared.state().set_fenced(old, true);
    shared.failover().deposed().push(old);
    tracing::warn!(target: "rwsplit", node = %name(old), "fenced: no statement goes to it until it is unfenced");
    let left = deadline.left(timeout);
    let promoted = match within(left + timeout, P::promote(conn, left)).await {
        Ok(done) => done || promotion_finished::<P, S>(shared, new, deadline).await,
        Err(source) => {
            // Sent or not, the detached replicas follow the candidate: re-pointing is what
            // they need either way once it is a primary.
            repoint_replicas::<P, S>(shared, new, conn, &detached, &name).await;
            return Err(FailoverError::Promote { node: name(new), source });
        }
    };
    if !promoted {
        repoint_replicas::<P, S>(shared, new, conn, &detached, &name).await;
        return Err(FailoverError::Promote {
            node: name(new),
            source: ProbeError::Timeout { after: config.deadline },
        });
    }
    // The new primary is taken at once, without waiting for its next probe.
    let seen = probe_fresh::<P, S>(shared, new, timeout).await;
    shared.state().observe(new, &seen, Instant::now().into_std());
    repoint_replicas::<P, S>(shared, new, conn, &detached, &name).await;
    Ok(Outcome::Promoted(new))
}

/// Whether `new`, whose promotion was sent and not reported finished, leaves recovery before
/// the deadline: asked once per probe interval on fresh connections.
async fn promotion_finished<P: Product, S: Cluster>(
    shared: &S,
    new: NodeId,
    deadline: Deadline,
) -> bool {
    let timeout = shared.config().probe_timeout_value();
    let pause = shared.config().probe_interval_value();
    while !deadline.passed() {
        if probe_fresh::<P, S>(shared, new, timeout).await.is_ok_and(|o| o.role() == Role::Primary)
        {
            return true;
        }
        tokio::time::sleep(pause).await;
    }
    false
}

/// The most advanced replica, with what it received and (when the lock was not held there)
/// the connection it was asked on. Every replica in the membership is asked, on its lock
/// session or a fresh one: one that cannot be asked vetoes (unless the configuration accepts
/// that risk), one that still receives from the primary vetoes, and one that is a primary
/// already ends the attempt (another process promoted it: the monitor follows).
async fn candidates<P: Product, S: Cluster>(
    shared: &S,
    old: NodeId,
    config: &AutoFailover,
    held: &Held<<S::Connector as Connector>::Conn>,
) -> Result<Candidate<P::Received, <S::Connector as Connector>::Conn>, Outcome> {
    let timeout = shared.config().probe_timeout_value();
    let veto = |v| Err(Outcome::Vetoed(v));
    let mut best: Option<Candidate<P::Received, <S::Connector as Connector>::Conn>> = None;
    for i in shared.state().ids() {
        // A node fenced by hand is out, and no candidate.
        if i == old || shared.state().is_fenced(i) {
            continue;
        }
        let lock_session = held.iter().find(|(n, _)| *n == i).map(|(_, c)| c);
        let fresh = match lock_session {
            Some(_) => None,
            None => match open(shared.connector(), i, Purpose::Admin, timeout).await {
                Ok(c) => Some(c),
                Err(error) if !config.allow_unreachable_replicas => {
                    return veto(Veto::Unreachable { node: i, error });
                }
                Err(_) => continue,
            },
        };
        let Some(conn) = lock_session.or(fresh.as_ref()) else { continue };
        let asked = async {
            let streaming = within(timeout, P::receiving(conn)).await?;
            let received = within(timeout, P::received(conn)).await?;
            Ok::<_, ProbeError>((streaming, received))
        };
        match asked.await {
            Ok((true, _)) => return veto(Veto::StillReceiving(i)),
            Ok((false, None)) => return Err(Outcome::AlreadyPromoted(i)),
            Ok((false, Some(received))) => {
                if best.as_ref().is_none_or(|b| received > b.received) {
                    best = Some(Candidate { received, node: i, fresh });
                }
            }
            Err(error) if !config.allow_unreachable_replicas => {
                return veto(Veto::Unreachable { node: i, error });
            }
            Err(_) => {}
        }
    }
    best.map_or_else(|| veto(Veto::NoCandidate), Ok)
}

/// The replica chosen for promotion.
struct Candidate<R, C> {
    /// How far it has received.
    received: R,
    node: NodeId,
    /// The connection it was asked on, when it is not its lock session.
    fresh: Option<C>,
}

/// A veto when promoting `new`, which has received `received`, could lose more than the
/// configuration allows: its distance behind the old primary's last sampled position.
fn loss_bound<P: Product>(
    state: &TopologyState,
    old: NodeId,
    new: NodeId,
    received: &P::Received,
    config: &AutoFailover,
) -> Option<Veto> {
    let limit = config.max_lag_for(P::UNIT);
    if limit == u64::MAX {
        return None;
    }
    let Some((position, at)) = state.primary_last_seen(old) else {
        return Some(Veto::Unbounded { node: new });
    };
    match P::behind(&position, received) {
        Some(behind) if behind <= limit => None,
        Some(behind) => {
            Some(Veto::TooFarBehind { node: new, behind, limit, sample_age: at.elapsed() })
        }
        None => Some(Veto::Unbounded { node: new }),
    }
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

/// Replicas detached from the old primary (by id), with what re-pointing each needs.
type Detached<P> = Vec<(NodeId, <P as Product>::Detached)>;

/// Detaches every replica but `old` and `new` (and fenced ones) from the old primary, then
/// checks none received more than the candidate (`received`). On a veto, the ones detached are
/// reattached.
async fn detach_others<P: Product, S: Cluster>(
    shared: &S,
    old: NodeId,
    new: NodeId,
    held: &Held<<S::Connector as Connector>::Conn>,
    received: &P::Received,
) -> Result<Detached<P>, Veto> {
    let timeout = shared.config().probe_timeout_value();
    let mut detached = Vec::new();
    let mut veto = None;
    for i in shared.state().ids() {
        if i == old || i == new || shared.state().is_fenced(i) {
            continue;
        }
        let step = async {
            let fresh;
            let conn = match held.iter().find(|(n, _)| *n == i) {
                Some((_, c)) => c,
                None => {
                    fresh = open(shared.connector(), i, Purpose::Admin, timeout).await?;
                    &fresh
                }
            };
            let d = within(timeout, P::detach(conn)).await?;
            let now = within(timeout, P::received(conn)).await;
            Ok::<_, ProbeError>((d, now))
        };
        match step.await {
            Ok((d, now)) => {
                detached.push((i, d));
                if !matches!(&now, Ok(Some(r)) if !P::received_more(r, received)) {
                    veto = Some(Veto::Overtaken(i));
                    break;
                }
            }
            Err(error) => {
                veto = Some(Veto::Unreachable { node: i, error });
                break;
            }
        }
    }
    let Some(veto) = veto else { return Ok(detached) };
    for (i, d) in &detached {
        let undone = async {
            let conn = open(shared.connector(), *i, Purpose::Admin, timeout).await?;
            within(timeout, P::reattach(&conn, d)).await
        };
        if let Err(e) = undone.await {
            tracing::error!(target: "rwsplit", node = %name_of(shared.state(), *i), error = %e, "automatic failover: abandoned, and this replica could not be pointed back at the primary");
        }
    }
    Err(veto)
}

/// Re-points the `detached` replicas at the new primary `new`, whose admin connection is
/// `admin`. Each attempt is bounded by five probe timeouts, at least 5 s (a loaded replica may
/// take a while to stop its IO thread); a failed attempt is retried after a probe interval.
async fn repoint_replicas<P: Product, S: Cluster>(
    shared: &S,
    new: NodeId,
    admin: &<S::Connector as Connector>::Conn,
    detached: &Detached<P>,
    name: &impl Fn(NodeId) -> String,
) {
    let Some(config) = shared.failover().config.as_ref() else { return };
    if !config.repoint_replicas || detached.is_empty() {
        return;
    }
    let timeout = shared.config().probe_timeout_value();
    let Some((host, port)) = config.repoint_target(new, &name(new)) else {
        tracing::warn!(target: "rwsplit", node = %name(new), "the new primary's address is unknown: replicas not re-pointed");
        return;
    };
    let bound = timeout.saturating_mul(5).max(REPOINT_MIN_BOUND);
    let pause = shared.config().probe_interval_value().min(REPOINT_MIN_BOUND);
    for (i, d) in detached {
        for attempt in 1..=REPOINT_ATTEMPTS {
            let result = async {
                let conn = open(shared.connector(), *i, Purpose::Admin, bound).await?;
                P::repoint(&conn, d, admin, &host, port).await
            };
            let error = match tokio::time::timeout(bound, result).await {
                Ok(Ok(())) => {
                    tracing::info!(target: "rwsplit", node = %name(*i), primary = %name(new), "re-pointed replica");
                    break;
                }
                Ok(Err(e)) => e,
                Err(_) => ProbeError::Timeout { after: bound },
            };
            if attempt == REPOINT_ATTEMPTS {
                tracing::warn!(target: "rwsplit", node = %name(*i), error = %error, attempts = attempt, "could not re-point replica");
            } else {
                tracing::info!(target: "rwsplit", node = %name(*i), error = %error, attempt, "re-pointing the replica failed, retrying");
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
            lineage: None,
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
