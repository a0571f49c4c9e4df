//! [`Routing`]: the live view of the cluster, the adapter's one owner of the monitor's
//! `TopologyState` (which nodes there are is [`Nodes`](crate::nodes::Nodes)' over the same
//! state): plans made from its snapshots, a node's standing and health, fencing, the samples
//! and wants of positions, the notifications a waiting read is woken by, the failures and
//! answers statements report.

use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(test)]
use rwsplit_core::HealthPolicy;
use rwsplit_core::{
    Access, CausalToken, Health, InFlight, Lag, Node, NodeId, Role, RouteContext, Router,
    RouterConfig, Staleness, Topology,
};
use rwsplit_monitor::TopologyState;
use sea_orm::DbErr;

use crate::consistency::{Learned, Samples, Seen, Settled};
use crate::routing_error::{NodeOut, OutReason};

use super::plan::{Plan, Why};
use crate::observe::counters::Effects;
/// The adapter's view of the monitor's state: plans are made from its snapshots, and the
/// failures statements see are reported to it.
#[derive(Debug)]
pub(crate) struct Routing {
    state: Arc<TopologyState>,
    router: Router,
    /// Whether the balancer reads latency estimates (else statements do not record them).
    feeds_latency: bool,
    /// Whether a monitor runs on the state (else nobody reads its uses or its wants).
    monitored: bool,
    /// How long the monitor keeps sampling the positions a plan wants.
    linger: Duration,
    /// Positions catch-up waits proved replicas had, between the monitor's samples.
    learned: Learned,
    /// The nodes fenced because their server is not one rwsplit supports
    /// ([`fence_unsupported`](Routing::fence_unsupported)): errors that name nodes say so.
    unsupported: std::sync::Mutex<Vec<NodeId>>,
    /// Looks at the live topology so far: by the plans and everything else, and by the
    /// statements' watches ([`Routing::looks`]).
    #[cfg(test)]
    looks: [std::sync::atomic::AtomicUsize; 2],
}

impl Routing {
    /// Routing on a state of its own over `topology` (the tests').
    #[cfg(test)]
    pub(crate) fn fresh(topology: Topology, config: RouterConfig, policy: HealthPolicy) -> Routing {
        Routing::new(Arc::new(TopologyState::new(topology, policy)), config, false, Duration::ZERO)
    }

    /// The live view over the monitor's `state` (its own, or one shared with other
    /// connections; `monitored`: a monitor runs on it), planning with a router of `config`;
    /// the positions a plan wants are sampled for `linger`.
    pub(crate) fn new(
        state: Arc<TopologyState>,
        config: RouterConfig,
        monitored: bool,
        linger: Duration,
    ) -> Routing {
        let router = Router::new(config);
        Routing {
            state,
            feeds_latency: router.uses_latency(),
            monitored,
            linger,
            router,
            learned: Learned::default(),
            unsupported: std::sync::Mutex::default(),
            #[cfg(test)]
            looks: Default::default(),
        }
    }

    /// Counts a look at the live topology (a snapshot, or a node's role or health read from the
    /// monitor's state): the tests assert how many one statement makes.
    #[inline]
    fn look(&self) {
        #[cfg(test)]
        self.looks[0].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts a look at one node's standing
    /// ([`standing`](crate::send::watch::Standings::standing)): a statement's watch, or a
    /// failed attempt's next step.
    #[inline]
    fn look_at_standing(&self) {
        #[cfg(test)]
        self.looks[1].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many looks at the live topology were made so far: by plans and everything else
    /// ([`look`](Self::look)), and at a node's standing
    /// ([`look_at_standing`](Self::look_at_standing)).
    #[cfg(test)]
    pub(crate) fn looks(&self) -> (usize, usize) {
        let get = |i: usize| self.looks[i].load(std::sync::atomic::Ordering::Relaxed);
        (get(0), get(1))
    }

    /// The monitor's state (the tests', to feed it observations).
    #[cfg(test)]
    pub(crate) fn state(&self) -> &Arc<TopologyState> {
        &self.state
    }

    /// Asks the monitor, if one runs, as of `now`, for the positions a plan's `effects` want
    /// (it keeps sampling them for the policy's linger).
    pub(crate) fn want(&self, effects: &Effects, now: Instant) {
        if !self.monitored
            || !(effects.want_positions
                || effects.want_floor.is_some()
                || effects.want_replayed.is_some())
        {
            return;
        }
        let until = now.checked_add(self.linger).unwrap_or(now);
        if effects.want_positions {
            self.state.want_positions(now, until);
        }
        if let Some(node) = effects.want_floor {
            self.state.want_floor(node, now, until);
        }
        if let Some(token) = &effects.want_replayed {
            self.state.want_replayed(token, until);
        }
    }

    /// Asks the router, in a snapshot taken now, for a [`Plan`]. A route that cannot be made (no
    /// primary, two primaries) becomes an error naming the problem; nothing is sent anywhere.
    pub(crate) fn route(&self, ctx: &RouteContext<'_>) -> Result<Plan, DbErr> {
        self.route_in(self.snap(), ctx)
    }

    /// The topology one plan is made from.
    pub(crate) fn snap(&self) -> Snap {
        self.look();
        self.state.snapshot_arc()
    }

    /// [`route`](Self::route) from `snap`: the router's decisions read that one snapshot.
    pub(crate) fn route_in(&self, topo: Snap, ctx: &RouteContext<'_>) -> Result<Plan, DbErr> {
        match self.router.route(&topo, ctx) {
            Ok(route) => Ok(Plan {
                access: ctx.access(),
                reason: Why::Router(route.reason()),
                operation: None,
                route,
                excluded: 0,
                wait: None,
                made: ctx.now(),
                topology: topo,
            }),
            // No primary, two primaries: the cluster cannot take the statement now, like a node
            // that cannot be reached (`DbErr::Conn`, as every other node failure).
            Err(e) => {
                let why = || self.why_not_primary(&topo);
                Err(crate::routing_error::RoutingError::from_route(e, &topo, why).into())
            }
        }
    }

    /// Takes out of `plan` the replicas not provably within `bound` when the plan was made (a
    /// bounded-staleness read that also carries a read-your-writes token; see
    /// [`Staleness::allows_at`]). The primary stays as the last resort.
    pub(crate) fn exclude_lagging(&self, mut plan: Plan, bound: &Staleness) -> Plan {
        let topo = Arc::clone(&plan.topology);
        for id in plan.route.candidates() {
            if let Some(n) = topo.node(id)
                && n.role() != Role::Primary
                && !bound.allows_at(&n.lag(), plan.made)
            {
                plan.excluded |= 1 << id.index();
            }
        }
        let replica_left =
            plan.iter().any(|i| topo.node(i).is_some_and(|n| n.role() != Role::Primary));
        if plan.excluded != 0 && !replica_left {
            let ctx = RouteContext::for_access(Access::Read, plan.made)
                .with_target(rwsplit_core::Target::Primary);
            if let Ok(p) = self.route_in(Arc::clone(&topo), &ctx) {
                return p.with_reason(Why::OutsideBound);
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
        self.look();
        foreign_in(&self.state.snapshot(), token)
    }

    /// The bound of what a scope's last read `seen` can have seen (monotonic reads): the
    /// node's position in the first monitor sample sent after the read ended (a replica's
    /// replay position, a primary's written position; at least what it held then), or
    /// unknown while there is no such sample (or the read may still be reading). The
    /// monitor's marks first, then the snapshot ([`floor_mark`](Self::floor_mark)).
    pub(crate) fn floor(&self, seen: &Seen) -> Floor {
        let mark = self.floor_mark(seen);
        mark.resolve(&self.snap())
    }

    /// The half of [`floor`](Self::floor) read from the monitor's sample marks, to be resolved
    /// in a snapshot taken after it ([`FloorMark::resolve`]): a sample is published before it
    /// is marked, so a snapshot taken after the mark holds the sample it counts.
    pub(crate) fn floor_mark(&self, seen: &Seen) -> FloorMark {
        let Some(at) = seen.at else { return FloorMark::Unknown(seen.node) };
        if !self.state.sampled_since(seen.node, at) {
            return FloorMark::Unknown(seen.node);
        }
        // A read on the primary: its position at the first sample after the read, which
        // replicas reach a replication delay later (its newest would ask them to be as fresh
        // as the primary is now, which they never are).
        match self.state.primary_position_since(seen.node, at) {
            Some(p) => FloorMark::Known(CausalToken::new(p)),
            None => FloorMark::Sampled(seen.node),
        }
    }

    /// A catch-up wait proved, just now, that replica `node` has replayed `token`.
    pub(crate) fn learn(&self, node: NodeId, token: &CausalToken) {
        self.learned.learn(node, token, Instant::now());
    }

    /// Whether replica `node` of `topo` is known to have replayed `token`: its sampled
    /// position, or a catch-up wait's proof not long before `now` while the node is a replica
    /// not down.
    pub(crate) fn has_replayed(
        &self,
        topo: &Topology,
        node: NodeId,
        token: &CausalToken,
        now: Instant,
    ) -> bool {
        let Some(n) = topo.node(node) else { return false };
        if n.position().is_some_and(|p| token.is_satisfied_by(p)) {
            return true;
        }
        n.serves_reads() && !self.learned.is_empty() && self.learned.has(node, token, now)
    }

    /// A replica of `topo` a catch-up wait proved, not long before `now`, to have `token`, not
    /// down, preferring `rather`; `None` if none (the monitor's samples are the router's to
    /// read).
    pub(crate) fn proven_replica(
        &self,
        topo: &Topology,
        token: &CausalToken,
        rather: Option<NodeId>,
        now: Instant,
    ) -> Option<NodeId> {
        if self.learned.is_empty() {
            return None;
        }
        let fits = |n: &Node| n.serves_reads() && self.learned.has(n.id(), token, now);
        if let Some(r) = rather.and_then(|r| topo.node(r)).filter(|n| fits(n)) {
            return Some(r.id());
        }
        topo.replicas().find(|n| fits(n)).map(Node::id)
    }

    /// Forgets expired proofs.
    pub(crate) fn sweep_learned(&self, now: Instant) {
        self.learned.sweep(now);
    }

    /// The primary's position as the monitor last saw it, if known.
    pub(crate) fn primary_position(&self) -> Option<rwsplit_core::ReplayPosition> {
        self.look();
        let topo = self.state.snapshot();
        topo.primary().and_then(|p| p.position()).cloned()
    }

    /// Where `token` stands: replayed by every replica, not yet, or never (another history
    /// than the primary's).
    pub(crate) fn settled(&self, token: &CausalToken) -> Settled {
        self.look();
        if self.foreign(token) {
            return Settled::Never;
        }
        let topo = self.state.snapshot();
        let all = topo
            .nodes()
            .iter()
            .filter(|n| n.role() != Role::Primary)
            .all(|n| n.position().is_some_and(|p| token.is_satisfied_by(p)));
        if all { Settled::Everywhere } else { Settled::NotYet }
    }

    /// The current primary's id, if exactly one node has the role.
    pub(crate) fn primary_id(&self) -> Option<NodeId> {
        self.look();
        self.state.primary_id()
    }

    /// The id of the node that has the primary role now (the configured one, node 0, until a
    /// promotion is seen).
    pub(crate) fn primary_index(&self) -> NodeId {
        self.primary_id().unwrap_or(NodeId::new(0))
    }

    /// A plan for `access` on the primary, whatever the SQL would allow (`execute*`: no rows
    /// come back, so a replica is never worth it).
    pub(crate) fn plan_on_primary(&self, access: Access, reason: Why) -> Result<Plan, DbErr> {
        let rc = RouteContext::for_access(access, Instant::now())
            .with_target(rwsplit_core::Target::Primary);
        Ok(self.route(&rc)?.with_reason(reason))
    }

    /// An attempt on `node` succeeded at `now`: its round trip ends its in-flight count
    /// (`guard`) and feeds the balancer's latency estimate when the balancer reads one, and a
    /// pending failure count is cleared.
    #[inline]
    pub(crate) fn answered(&self, node: NodeId, guard: Option<InFlight>, now: Instant) {
        if let Some(g) = guard
            && self.feeds_latency
        {
            g.finish(now);
        }
        self.state.record_success(node, now);
    }

    /// A failure of the node itself (never back-pressure) that a statement saw.
    pub(crate) fn record_failure(&self, node: NodeId) {
        self.state.record_failure(node, Instant::now());
    }

    /// Takes a node out of rotation at once (the tests' way of making a node unroutable).
    #[cfg(test)]
    pub(crate) fn ban(&self, node: NodeId) {
        self.state.ban(node, Instant::now());
    }

    /// A node's role, lag and position in the current snapshot.
    pub(crate) fn node_view(
        &self,
        node: NodeId,
    ) -> Option<(Role, Lag, Option<rwsplit_core::ReplayPosition>)> {
        self.look();
        let topo = self.state.snapshot();
        topo.node(node).map(|n| (n.role(), n.lag(), n.position().cloned()))
    }

    pub(crate) fn health(&self, node: NodeId) -> Health {
        self.look();
        self.state.health(node)
    }

    /// How many changes of `node`'s role or health have been announced (see
    /// `TopologyState::changes`): a watch polls
    /// [`changed`](crate::send::watch::Standings::changed) again only when this moved.
    #[inline]
    pub(crate) fn changes(&self, node: NodeId) -> u64 {
        self.state.changes(node)
    }

    /// Wakes the statements waiting on `node` (its reads have gone unanswered past their hedge
    /// delay) without announcing a change.
    pub(crate) fn nudge(&self, node: NodeId) {
        self.state.nudge(node);
    }

    /// Whether `node` is joining: probed (the monitor has it) but not in the snapshot yet, so
    /// nothing is routed to it (see `TopologyState::add_node`).
    pub(crate) fn is_joining(&self, node: NodeId) -> bool {
        self.look();
        // The snapshot first: a node that joins in between reads as joining once more, never
        // a joining node as in rotation.
        self.state.snapshot().node(node).is_none() && self.state.contains(node)
    }

    /// The live topology, uncounted by the tests' looks (the gauges read it, not a plan).
    pub(crate) fn live_topology(&self) -> rwsplit_core::TopologyGuard {
        self.state.snapshot()
    }

    /// Whether the monitor has `node` (in the snapshot or joining it).
    pub(crate) fn in_monitor(&self, node: NodeId) -> bool {
        self.state.contains(node)
    }

    /// Holds `node` out of rotation until the monitor has an answer from it; whether it was
    /// held (see `TopologyState::hold_until_answered`).
    pub(crate) fn hold_until_answered(&self, node: NodeId) -> bool {
        self.state.hold_until_answered(node)
    }

    /// Completes at the monitor's next published topology, counted from when it is enabled.
    pub(crate) fn published(&self) -> tokio::sync::futures::Notified<'_> {
        self.state.published()
    }

    /// Whether the monitor sampled `node` after `at`.
    pub(crate) fn sampled_since(&self, node: NodeId, at: Instant) -> bool {
        self.state.sampled_since(node, at)
    }

    /// Tells the monitor, if one runs, that the cluster is in use at `now`: it probes at its
    /// usual interval, not the idle one. One atomic load while statements come often.
    #[inline]
    pub(crate) fn note_use(&self, now: Instant) {
        if self.monitored {
            self.state.used(now);
        }
    }

    /// How the routing state sees `node` now, for `Stats`: its role, lag and position in the
    /// snapshot, its health, and the monitor's counts.
    pub(crate) fn node_routing(&self, node: NodeId) -> NodeRouting {
        NodeRouting {
            view: self.node_view(node),
            health: self.health(node),
            joining: self.is_joining(node),
            fenced: self.is_fenced(node),
            changes: self.changes(node),
            failed_probes: self.state.failed_probes(node),
            busy_probes: self.busy_probes(node),
        }
    }

    /// The monitor's probes of `node` refused for lack of room (busy, not gone).
    pub(crate) fn busy_probes(&self, node: NodeId) -> u64 {
        self.state.busy_probes(node)
    }

    /// Whether `node` is fenced.
    pub(crate) fn is_fenced(&self, node: NodeId) -> bool {
        self.state.is_fenced(node)
    }

    /// Fences or unfences `node`.
    pub(crate) fn set_fenced(&self, node: NodeId, fenced: bool) -> bool {
        if !fenced {
            self.unsupported().retain(|i| *i != node);
        }
        self.state.set_fenced(node, fenced)
    }

    /// Fences `node` because its server is not one rwsplit supports, and remembers why.
    pub(crate) fn fence_unsupported(&self, node: NodeId) {
        let mut unsupported = self.unsupported();
        if !unsupported.contains(&node) {
            unsupported.push(node);
        }
        drop(unsupported);
        self.state.set_fenced(node, true);
    }

    fn unsupported(&self) -> std::sync::MutexGuard<'_, Vec<NodeId>> {
        self.unsupported.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every node of `topo` and every node joining it, with why it is not the primary, for
    /// [`RoutingError::NoPrimary`](crate::RoutingError::NoPrimary): as the monitor's state
    /// has them now.
    pub(crate) fn why_not_primary(&self, topo: &Topology) -> Vec<NodeOut> {
        self.why_out(topo, |_| true)
    }

    /// Every replica of `plan`'s topology and every node joining it, with why it is out of
    /// rotation (down, fenced, joining, or a replica some rule excluded): for an error that no
    /// replica can take a call that must not reach the primary.
    pub(crate) fn replicas_out(&self, plan: &Plan) -> Vec<NodeOut> {
        self.why_out(&plan.topology, |n| n.role() != Role::Primary)
    }

    /// The nodes of `topo` that `keep` keeps, and every node joining it, each with why it is
    /// not in rotation as the primary or a replica.
    fn why_out(&self, topo: &Topology, keep: impl Fn(&Node) -> bool) -> Vec<NodeOut> {
        let unsupported = self.unsupported().clone();
        let why = |id: NodeId, otherwise: OutReason| {
            if unsupported.contains(&id) {
                OutReason::Unsupported
            } else if self.state.is_fenced(id) {
                OutReason::Fenced
            } else {
                otherwise
            }
        };
        let live = topo.nodes().iter().filter(|n| keep(n)).map(|n| {
            let otherwise =
                if n.health() == Health::Down { OutReason::Down } else { OutReason::Replica };
            NodeOut::new(n.name(), why(n.id(), otherwise))
        });
        let joining = self.state.joining().into_iter();
        let joining = joining.map(|(id, name)| NodeOut::new(name, why(id, OutReason::Joining)));
        live.chain(joining).collect()
    }
}

/// The bound of what a scope has read ([`Routing::floor`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Floor {
    /// Everything it read is at or before this position.
    Known(CausalToken),
    /// Not bounded yet: its last read was on this node.
    Unknown(NodeId),
}

impl Floor {
    /// The position, if the bound is known.
    pub(crate) fn known(self) -> Option<CausalToken> {
        match self {
            Floor::Known(t) => Some(t),
            Floor::Unknown(_) => None,
        }
    }
}

/// What the monitor's sample marks say of a scope's last read ([`Routing::floor_mark`]),
/// before a snapshot is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FloorMark {
    /// No sample of its node since it ended (or it may still be reading).
    Unknown(NodeId),
    /// A read on the primary: bounded by the primary's position at its next sample.
    Known(CausalToken),
    /// Its node was sampled since: its position in a snapshot taken after this mark.
    Sampled(NodeId),
}

impl FloorMark {
    /// The floor, read in `snap` (taken after the mark).
    pub(crate) fn resolve(self, snap: &Snap) -> Floor {
        match self {
            FloorMark::Unknown(node) => Floor::Unknown(node),
            FloorMark::Known(token) => Floor::Known(token),
            FloorMark::Sampled(node) => match snap.node(node).and_then(Node::position) {
                Some(p) => Floor::Known(CausalToken::new(p.clone())),
                None => Floor::Unknown(node),
            },
        }
    }
}

/// One plan's view of the topology ([`Routing::snap`]): every decision of the plan reads
/// this one snapshot.
pub(crate) type Snap = Arc<Topology>;

/// [`Routing::foreign`] in `topo`.
pub(crate) fn foreign_in(topo: &Topology, token: &CausalToken) -> bool {
    topo.primary().and_then(|p| p.position()).is_some_and(|p| token.shortfall(p).is_none())
}

/// How the routing state sees one node ([`Routing::node_routing`]): plain values, read once.
pub(crate) struct NodeRouting {
    /// Its role, lag and position in the current snapshot (`None`: not in it).
    pub(crate) view: Option<(Role, Lag, Option<rwsplit_core::ReplayPosition>)>,
    /// Its health as the monitor judges it.
    pub(crate) health: Health,
    /// Probed but not in the snapshot yet.
    pub(crate) joining: bool,
    /// Fenced: out of rotation, never primary.
    pub(crate) fenced: bool,
    /// Changes of its role or health announced so far.
    pub(crate) changes: u64,
    /// Probes of it that failed.
    pub(crate) failed_probes: u64,
    /// Probes of it refused for lack of room (busy, not gone).
    pub(crate) busy_probes: u64,
}

/// What a statement's watch asks of the live view: standings read from one snapshot, and the
/// monitor's state's announced changes, which this view owns.
impl crate::send::watch::Standings for Routing {
    /// Where `node` stands for a statement on it: its role (the primary or not) and whether it
    /// is marked down (a node no longer in the snapshot is neither primary nor up).
    fn standing(&self, node: NodeId) -> crate::send::sending::Standing {
        self.look_at_standing();
        use crate::send::sending::Standing;
        let topo = self.state.snapshot();
        let Some(n) = topo.node(node) else { return Standing::Gone };
        match (n.role() == Role::Primary, n.health() == Health::Down) {
            (true, false) => Standing::Primary,
            (true, true) => Standing::Down,
            (false, false) => Standing::NotPrimary,
            (false, true) => Standing::Gone,
        }
    }

    /// Changes announced on `node` plus the nudges that woke its waiters without one: what a
    /// statement's watch compares to know it was woken.
    fn wake_ups(&self, node: NodeId) -> u64 {
        self.state.changes(node).wrapping_add(self.state.nudges(node))
    }

    /// Completes at the next change of `node`'s role or health, or its leaving (see
    /// `TopologyState::changed`): counted from when it is called.
    fn changed(&self, node: NodeId) -> tokio::sync::futures::Notified<'_> {
        self.state.changed(node)
    }
}

/// The monitor's position samples as read-your-writes asks for and reads them: the monitor's
/// state's, which this view owns.
impl Samples for Routing {
    fn want_sample(&self, node: NodeId, after: Instant, until: Instant) {
        self.state.want_sample(node, after, until);
    }

    fn want_floor(&self, node: NodeId, after: Instant, until: Instant) {
        self.state.want_floor(node, after, until);
    }

    fn want_replayed(&self, token: &CausalToken, until: Instant) {
        self.state.want_replayed(token, until);
    }

    fn sampled(&self) -> tokio::sync::futures::Notified<'_> {
        self.state.sampled()
    }

    fn known_floor(&self, seen: &Seen) -> Option<CausalToken> {
        self.floor(seen).known()
    }

    fn primary(&self) -> NodeId {
        self.primary_index()
    }
}
