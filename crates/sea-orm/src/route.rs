//! The adapter's side of routing: a topology snapshot kept up to date with each node's health,
//! and the plan (target plus fallbacks) that `rwsplit-core`'s router makes for each statement.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rwsplit_core::{
    Access, CausalToken, Health, HealthPolicy, HealthTracker, InFlight, Lag, Node as CoreNode,
    NodeId, Role, Route, RouteContext, RouteReason, Router, RouterConfig, SharedTopology,
    Staleness, Topology,
};

use crate::causal::Settled;
use rwsplit_monitor::{Observation, ProbeError};
use sea_orm::DbErr;

/// Where one statement goes: the router's [`Route`] (target, then fallbacks, no heap), what the
/// statement is, and why it goes there; for a read-your-writes read, the nodes a staleness bound
/// excludes and the catch-up wait to do first.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    access: Access,
    reason: &'static str,
    route: Route,
    /// Bit `i`: node `i` is not to be used.
    excluded: u64,
    wait: Option<(CausalToken, Duration)>,
}

impl Plan {
    pub(crate) fn route_reason(&self) -> RouteReason {
        self.route.reason()
    }

    /// Wait up to `max` for the first candidate to replay `token` before reading there.
    pub(crate) fn with_wait(mut self, token: CausalToken, max: Duration) -> Plan {
        self.wait = Some((token, max));
        self
    }

    pub(crate) fn wait(&self) -> Option<(&CausalToken, Duration)> {
        self.wait.as_ref().map(|(t, d)| (t, *d))
    }

    pub(crate) fn access(&self) -> Access {
        self.access
    }

    pub(crate) fn reason(&self) -> &'static str {
        self.reason
    }

    pub(crate) fn with_reason(mut self, reason: &'static str) -> Plan {
        self.reason = reason;
        self
    }

    /// The node to try first.
    pub(crate) fn first(&self) -> usize {
        self.iter().next().unwrap_or_else(|| self.route.target().index())
    }

    /// Whether the first node is a primary.
    pub(crate) fn on_primary(&self) -> bool {
        // A plan with exclusions still has a replica first (see `Routing::exclude_lagging`).
        self.excluded == 0 && self.route.is_primary()
    }

    /// Every candidate in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        let excluded = self.excluded;
        self.route.candidates().map(NodeId::index).filter(move |i| excluded & (1 << i) == 0)
    }
}

/// Health per node and the snapshot plans are made from.
#[derive(Debug)]
pub(crate) struct Routing {
    topology: SharedTopology,
    trackers: Vec<Mutex<HealthTracker>>,
    /// Failures since the last success, per node: lets a success skip the tracker's lock when
    /// there is nothing to reset.
    pending: Vec<AtomicU32>,
    /// Serialises load-modify-store of the snapshot, so concurrent health changes on two nodes
    /// cannot lose one another.
    publish: Mutex<()>,
    router: Router,
    /// Each node's latest probe result (`None`: its last probe failed, or none yet). Nodes are
    /// probed independently, so one hung node never delays what the others report.
    latest: Mutex<Vec<Option<Observation>>>,
    /// Consecutive failed probes per node (the automatic failover's trigger).
    probe_failures: Vec<AtomicU32>,
    /// Fenced nodes: never routed to and never taken as primary, whatever they report, until
    /// an operator unfences them (an old primary after an automatic promotion).
    fenced: Vec<AtomicBool>,
}

impl Routing {
    pub(crate) fn new(names: &[String], config: RouterConfig, policy: HealthPolicy) -> Routing {
        let role = |i: usize| if i == 0 { Role::Primary } else { Role::Replica };
        let mut b = Topology::builder();
        for (i, name) in names.iter().enumerate() {
            b = b.node(CoreNode::builder(node_id(i), role(i)).name(name.as_str()).build());
        }
        // Node ids are the indices 0..n (n ≤ MAX_NODES is checked by the builder of the
        // connection), so building cannot fail; an empty topology would route nothing.
        let topology = b.build().unwrap_or_default();
        Routing {
            topology: SharedTopology::new(topology),
            trackers: (0..names.len())
                .map(|i| Mutex::new(HealthTracker::new(role(i), policy)))
                .collect(),
            pending: (0..names.len()).map(|_| AtomicU32::new(0)).collect(),
            publish: Mutex::new(()),
            router: Router::new(config),
            latest: Mutex::new(vec![None; names.len()]),
            probe_failures: (0..names.len()).map(|_| AtomicU32::new(0)).collect(),
            fenced: (0..names.len()).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// Asks the router. A route that cannot be made (no primary, two primaries) becomes an error
    /// naming the problem; nothing is sent anywhere.
    pub(crate) fn plan(&self, ctx: &RouteContext<'_>) -> Result<Plan, DbErr> {
        let topo = self.topology.load();
        match self.router.route(&topo, ctx) {
            Ok(route) => Ok(Plan {
                access: ctx.access(),
                reason: route.reason().as_str(),
                route,
                excluded: 0,
                wait: None,
            }),
            Err(e) => Err(DbErr::Custom(format!("rwsplit: {e}"))),
        }
    }

    /// Takes out of `plan` the replicas whose known lag exceeds `bound` (a bounded-staleness
    /// read that also carries a read-your-writes token). The primary stays as the last resort.
    pub(crate) fn exclude_lagging(&self, mut plan: Plan, bound: &Staleness) -> Plan {
        let topo = self.topology.load();
        for id in plan.route.candidates() {
            if let Some(n) = topo.node(id)
                && n.role() != Role::Primary
                && !bound.allows(&n.lag())
            {
                plan.excluded |= 1 << id.index();
            }
        }
        let replica_left =
            plan.iter().any(|i| topo.node(node_id(i)).is_some_and(|n| n.role() != Role::Primary));
        if plan.excluded != 0 && !replica_left {
            let ctx = RouteContext::for_access(Access::Read, Instant::now())
                .with_target(rwsplit_core::Target::Primary);
            if let Ok(p) = self.plan(&ctx) {
                return p.with_reason("no replica within the staleness bound has the write");
            }
        }
        plan
    }

    /// Whether `token` is from another history than the current primary's (another PostgreSQL
    /// system or timeline, another MariaDB server in the token's domain): written before a
    /// failover. No node's position is trusted to satisfy it then, not even a replica that
    /// reports the token's own timeline (a standby re-pointed to the new primary reports its
    /// last restartpoint's timeline until its WAL receiver connects).
    pub(crate) fn foreign(&self, token: &CausalToken) -> bool {
        let topo = self.topology.load();
        topo.primary().and_then(|p| p.position()).is_some_and(|p| token.shortfall(p).is_none())
    }

    /// Where `token` stands: replayed by every replica, not yet, or never (another history
    /// than the primary's).
    pub(crate) fn settled(&self, token: &CausalToken) -> Settled {
        if self.foreign(token) {
            return Settled::Never;
        }
        let topo = self.topology.load();
        let all = topo
            .nodes()
            .iter()
            .filter(|n| n.role() != Role::Primary)
            .all(|n| n.position().is_some_and(|p| token.is_satisfied_by(p)));
        if all { Settled::Everywhere } else { Settled::NotYet }
    }

    /// The current primary's index, if exactly one node has the role.
    pub(crate) fn primary_index(&self) -> Option<usize> {
        let topo = self.topology.load();
        (topo.primary_count() == 1).then(|| topo.primary().map(|n| n.id().index())).flatten()
    }

    /// Counts a statement as in flight on `node` until the guard drops.
    pub(crate) fn start(&self, node: usize) -> Option<InFlight> {
        let topo = self.topology.load();
        topo.node(node_id(node)).map(|n| n.load().start(Instant::now()))
    }

    pub(crate) fn record_success(&self, node: usize) {
        let Some(pending) = self.pending.get(node) else { return };
        if pending.load(Ordering::Relaxed) == 0 && self.health(node) == Health::Up {
            return;
        }
        pending.store(0, Ordering::Relaxed);
        self.update(node, |t, now| t.record_success(now));
    }

    pub(crate) fn record_failure(&self, node: usize) {
        if let Some(p) = self.pending.get(node) {
            p.fetch_add(1, Ordering::Relaxed);
        }
        self.update(node, |t, now| t.record_failure(now));
    }

    /// Takes a node out of rotation at once (it was unreachable at start).
    pub(crate) fn ban(&self, node: usize) {
        if let Some(p) = self.pending.get(node) {
            p.fetch_add(1, Ordering::Relaxed);
        }
        self.update(node, |t, now| {
            let mut h = t.health();
            for _ in 0..t.policy().failure_threshold_value() {
                h = t.record_failure(now);
            }
            h
        });
    }

    /// A node's role, lag and position in the current snapshot.
    pub(crate) fn node_view(
        &self,
        node: usize,
    ) -> Option<(Role, Lag, Option<rwsplit_core::ReplayPosition>)> {
        let topo = self.topology.load();
        topo.node(node_id(node)).map(|n| (n.role(), n.lag(), n.position().cloned()))
    }

    pub(crate) fn health(&self, node: usize) -> Health {
        self.topology.load().node(node_id(node)).map_or(Health::Down, CoreNode::health)
    }

    fn update(&self, node: usize, f: impl FnOnce(&mut HealthTracker, Instant) -> Health) {
        let Some(tracker) = self.trackers.get(node) else { return };
        // The tracker's lock is released before the publish lock is taken: `observe` takes them
        // in the other order.
        let (before, after) = {
            let mut t = tracker.lock().unwrap_or_else(PoisonError::into_inner);
            (t.health(), f(&mut t, Instant::now()))
        };
        if before != after {
            self.republish(|_, _| None);
        }
    }

    /// One node's probe result, published as soon as it arrives (the monitor probes every node
    /// on its own schedule). Drives that node's health state machine, takes its reported role
    /// and position, then rebuilds every node's role and lag from each node's latest result:
    /// a replica's lag is measured against the one reachable primary's latest observation.
    /// Returns the node's consecutive failed probes (0 after a success).
    ///
    /// Following a promotion: a node whose latest probe failed while another reports the primary
    /// role loses the role in the snapshot; if it comes back still claiming it, two nodes claim
    /// it and the router refuses writes (split brain) until an operator or HA manager settles it,
    /// unless it was fenced (then its claim is ignored and it is not routed to at all).
    pub(crate) fn observe_node(
        &self,
        node: usize,
        result: &Result<Observation, ProbeError>,
    ) -> u32 {
        let now = Instant::now();
        let Some(tracker) = self.trackers.get(node) else { return 0 };
        let failures = {
            let mut t = tracker.lock().unwrap_or_else(PoisonError::into_inner);
            match result {
                Ok(obs) => {
                    t.set_role(obs.role());
                    if let Some(p) = self.pending.get(node) {
                        p.store(0, Ordering::Relaxed);
                    }
                    t.record_success(now);
                    if let Some(f) = self.probe_failures.get(node) {
                        f.store(0, Ordering::Relaxed);
                    }
                    0
                }
                Err(_) => {
                    t.record_failure(now);
                    self.probe_failures
                        .get(node)
                        .map_or(1, |f| f.fetch_add(1, Ordering::Relaxed).saturating_add(1))
                }
            }
        };
        let latest = {
            let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(slot) = latest.get_mut(node) {
                *slot = result.as_ref().ok().cloned();
            }
            latest.clone()
        };
        let primaries: Vec<usize> = latest
            .iter()
            .enumerate()
            .filter(|(i, o)| {
                !self.is_fenced(*i) && matches!(o, Some(o) if o.role() == Role::Primary)
            })
            .map(|(i, _)| i)
            .collect();
        let primary_obs = match primaries.as_slice() {
            [p] => latest.get(*p).and_then(Option::as_ref),
            _ => None,
        };
        self.republish(|i, n| {
            let b = n.to_builder();
            Some(match latest.get(i).and_then(Option::as_ref) {
                Some(obs) => {
                    let lag = match (obs.role(), primary_obs) {
                        (Role::Primary, _) => Lag::zero(),
                        (Role::Replica, Some(p)) => rwsplit_monitor::lag(p, obs),
                        (Role::Replica, None) => Lag::unknown(),
                    };
                    b.role(obs.role()).position(obs.position().cloned()).lag(lag)
                }
                None if n.role() == Role::Primary && !primaries.is_empty() => {
                    tracing::warn!(target: "rwsplit", node = %n.name(), "unreachable old primary: another node is primary now");
                    b.role(Role::Replica).lag(Lag::unknown())
                }
                None => b.lag(Lag::unknown()),
            })
        });
        failures
    }

    /// Every node's latest probe result.
    pub(crate) fn latest(&self) -> Vec<Option<Observation>> {
        self.latest.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Whether `node` is fenced.
    pub(crate) fn is_fenced(&self, node: usize) -> bool {
        self.fenced.get(node).is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// Fences or unfences `node` and publishes the change at once. Returns whether it changed.
    pub(crate) fn set_fenced(&self, node: usize, fenced: bool) -> bool {
        let Some(f) = self.fenced.get(node) else { return false };
        let changed = f.swap(fenced, Ordering::Relaxed) != fenced;
        if changed {
            self.republish(|_, _| None);
        }
        changed
    }

    /// Publishes the next snapshot: each node with its tracker's health, changed by `edit` where
    /// it returns a builder.
    fn republish(&self, edit: impl Fn(usize, &CoreNode) -> Option<rwsplit_core::NodeBuilder>) {
        let _publishing = self.publish.lock().unwrap_or_else(PoisonError::into_inner);
        let topo = self.topology.load_full();
        let mut next = topo.to_builder().generation(topo.generation() + 1);
        for (i, n) in topo.nodes().iter().enumerate() {
            let health = self
                .trackers
                .get(i)
                .map_or(n.health(), |t| t.lock().unwrap_or_else(PoisonError::into_inner).health());
            let mut b = edit(i, n).unwrap_or_else(|| n.to_builder()).health(health);
            if self.is_fenced(i) {
                // Out of rotation for reads and writes alike, whatever it says it is.
                b = b.role(Role::Replica).health(Health::Down);
            }
            let built = b.build();
            if built.health() != n.health() || built.role() != n.role() {
                tracing::warn!(target: "rwsplit", node = %n.name(), health = ?built.health(), role = ?built.role(), "node changed");
            }
            next = next.node(built);
        }
        if let Ok(t) = next.build() {
            self.topology.store(t);
        }
    }
}

pub(crate) fn node_id(i: usize) -> NodeId {
    NodeId::new(u16::try_from(i).unwrap_or(u16::MAX))
}
