//! The topology state machine: what the monitor knows of every node, and the snapshots it
//! publishes for the router.
//!
//! Inputs are probe results ([`TopologyState::observe`]), positions from the position feed
//! ([`TopologyState::observe_position`]), failures and successes that statements saw
//! ([`TopologyState::record_failure`], [`TopologyState::record_success`]) and fencing. Every
//! input takes the instant it happened as a parameter, so tests drive the machine with
//! controlled time. The output is an immutable [`Topology`] snapshot in a [`SharedTopology`]:
//! readers load it without locks or allocation.
//!
//! The rules are on [`TopologyState`].

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rwsplit_core::{
    Health, HealthPolicy, HealthTracker, Lag, MAX_NODES, Node, NodeBuilder, NodeId, NodeLoad,
    ReplayPosition, Role, SharedTopology, Topology, TopologyGuard,
};

use crate::probe::{Observation, ProbeError};

mod history;

use history::History;

/// Where a slot (a node id) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Slot {
    /// No node: the id can be given to a new one.
    Free = 0,
    /// Added, probed, not yet in the snapshot: it joins once a probe has seen it healthy and
    /// caught up (see [`TopologyState::add_node`]).
    Joining = 1,
    /// In the snapshot.
    Live = 2,
    /// Removed: out of the snapshot, its id kept until [`TopologyState::release`] says its
    /// last statement has finished.
    Draining = 3,
}

impl Slot {
    fn from_u8(v: u8) -> Slot {
        match v {
            1 => Slot::Joining,
            2 => Slot::Live,
            3 => Slot::Draining,
            _ => Slot::Free,
        }
    }
}

/// One node's state beside its place in the snapshot.
#[derive(Debug)]
struct NodeState {
    /// A [`Slot`].
    slot: AtomicU8,
    /// A joining node as it enters the snapshot (name, placement; role and health are
    /// rebuilt).
    template: Mutex<Option<Node>>,
    /// A draining node's load tracker: its slot is free again only once nothing is in flight.
    retired: Mutex<Option<Arc<NodeLoad>>>,
    tracker: Mutex<HealthTracker>,
    /// Failures since the last success: lets a success skip the tracker's lock when there is
    /// nothing to reset.
    pending: AtomicU32,
    /// Consecutive failed probes (automatic failover's trigger).
    probe_failures: AtomicU32,
    /// Out of rotation and never primary until unfenced.
    fenced: AtomicBool,
    /// The latest probe's observation (`None`: the last probe failed, or none yet).
    latest: Mutex<Option<Observation>>,
    /// Whether the latest failed probe found nothing accepting its connection.
    refused: AtomicBool,
    /// Woken when a published snapshot changes its role or health, or it joins or leaves
    /// ([`TopologyState::changed`]).
    changes: tokio::sync::Notify,
}

/// What the monitor knows of every node, and the snapshot it publishes.
///
/// Rules:
/// - **Health** per node is a core [`HealthTracker`] fed by probes and by the statements' own
///   node failures (back-pressure is not one: the adapter never reports it).
/// - **Roles** come from each node's latest successful probe. A node whose latest probe failed
///   while another reports the primary role loses the role (a promotion is followed); two
///   reachable nodes reporting it make two primaries, and the router refuses writes (split
///   brain) until an operator or HA manager settles it.
/// - **Fencing**: a fenced node is out of rotation for reads and writes and its claim to the
///   primary role is ignored, whatever it reports, until it is unfenced.
/// - **Lag** of a replica is measured against the one reachable primary's latest observation
///   ([`lag`](crate::lag)); unknown without exactly one. Its time is the larger of what the
///   server reports and an estimate from positions alone: how long ago the primary was last
///   seen at a position the replica has replayed (a bounded history of the primary's positions,
///   sampled by its probes and position feed). The estimate catches a replica whose link was
///   cut silently while the server still reports no delay (MariaDB's `Seconds_Behind_Master`
///   until `slave_net_timeout`). Replicas' lag moves with the position feed, not only with full
///   probes.
///
/// ```
/// use std::time::{Duration, Instant};
/// use rwsplit_core::{Health, HealthPolicy, Node, NodeId, Role, Topology};
/// use rwsplit_monitor::{ProbeError, TopologyState};
///
/// let topology = Topology::builder()
///     .node(Node::builder(NodeId::new(0), Role::Primary).name("db-1").build())
///     .node(Node::builder(NodeId::new(1), Role::Replica).name("db-2").build())
///     .build()?;
/// let state = TopologyState::new(topology, HealthPolicy::default().failure_threshold(2));
/// let t0 = Instant::now();
/// for i in 0..2 {
///     let refused = Err(ProbeError::unreachable("connection refused"));
///     state.observe(1, &refused, t0 + Duration::from_millis(500 * i));
/// }
/// assert_eq!(state.health(1), Health::Down);
/// # Ok::<_, rwsplit_core::Error>(())
/// ```
#[derive(Debug)]
pub struct TopologyState {
    topology: SharedTopology,
    /// One per possible node id ([`MAX_NODES`]), indexed by id.
    nodes: Box<[NodeState]>,
    policy: HealthPolicy,
    /// How far behind a joining replica may be when it enters the snapshot.
    join_lag: Duration,
    /// Serialises load-modify-store of the snapshot, so concurrent changes on two nodes cannot
    /// lose one another.
    publish: Mutex<()>,
    /// The primary's recent positions, for replicas' time lag.
    history: Mutex<History>,
    /// The latest instant an input carried (for a rebuild that has none of its own: fencing).
    clock: Mutex<Option<Instant>>,
    /// What [`changed`](Self::changed) waits on for an id with no node: never notified.
    never: tokio::sync::Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TopologyState {
    /// Starts from `topology` (node ids below [`MAX_NODES`], gaps allowed), every node `Up`
    /// with the role it has there. The other ids are free for [`add_node`](Self::add_node).
    pub fn new(topology: Topology, policy: HealthPolicy) -> TopologyState {
        let nodes = (0..MAX_NODES)
            .map(|i| {
                let present = topology.node(node_id(i));
                NodeState {
                    slot: AtomicU8::new(
                        if present.is_some() { Slot::Live } else { Slot::Free } as u8
                    ),
                    template: Mutex::new(None),
                    retired: Mutex::new(None),
                    tracker: Mutex::new(HealthTracker::new(
                        present.map_or(Role::Replica, Node::role),
                        policy,
                    )),
                    pending: AtomicU32::new(0),
                    probe_failures: AtomicU32::new(0),
                    fenced: AtomicBool::new(false),
                    latest: Mutex::new(None),
                    refused: AtomicBool::new(false),
                    changes: tokio::sync::Notify::new(),
                }
            })
            .collect();
        TopologyState {
            topology: SharedTopology::new(topology),
            nodes,
            policy,
            join_lag: Duration::from_secs(1),
            publish: Mutex::new(()),
            history: Mutex::new(History::default()),
            clock: Mutex::new(None),
            never: tokio::sync::Notify::new(),
        }
    }

    /// A future that completes once a snapshot is published in which `node`'s role or health
    /// changed, or it joined or left (not at lag or position updates, which come every few
    /// milliseconds). It counts from when it is made, not from when it is first polled: check
    /// the condition after making it, then await it, and no change in between is missed. One
    /// `Notify` per node: a waiter costs a registration, no timer, and wakes for its node only.
    ///
    /// ```
    /// # use rwsplit_core::{Health, HealthPolicy, Node, NodeId, Role, Topology};
    /// # use rwsplit_monitor::{ProbeError, TopologyState};
    /// # use std::time::Instant;
    /// # let topology = Topology::builder()
    /// #     .node(Node::builder(NodeId::new(0), Role::Primary).build())
    /// #     .node(Node::builder(NodeId::new(1), Role::Replica).build())
    /// #     .build()?;
    /// let state = TopologyState::new(topology, HealthPolicy::default().failure_threshold(1));
    /// let changed = state.changed(1);
    /// assert_eq!(state.health(1), Health::Up);
    /// state.observe(1, &Err(ProbeError::unreachable("refused")), Instant::now());
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// changed.await; // ready: node 1 went down after the future was made
    /// # });
    /// assert_eq!(state.health(1), Health::Down);
    /// # Ok::<_, rwsplit_core::Error>(())
    /// ```
    pub fn changed(&self, node: usize) -> tokio::sync::futures::Notified<'_> {
        // No such node: nothing about it will ever change (`never` is never notified).
        self.nodes.get(node).map_or(&self.never, |n| &n.changes).notified()
    }

    /// Tells the waiters of [`changed`](Self::changed) on `node`, after a snapshot was
    /// published.
    fn announce(&self, node: usize) {
        if let Some(n) = self.nodes.get(node) {
            n.changes.notify_waiters();
        }
    }

    /// The current snapshot (lock-free).
    pub fn snapshot(&self) -> TopologyGuard {
        self.topology.load()
    }

    /// The current snapshot as an `Arc`, to keep across awaits (one plan acting on one
    /// topology from its route to its last attempt).
    pub fn snapshot_arc(&self) -> Arc<Topology> {
        self.topology.load_full()
    }

    /// How far behind the primary a node added at run time may be, in time (or in bytes: none
    /// at all), when it enters the snapshot (default 1 s). Until then it gets no statement.
    #[must_use]
    pub fn join_lag(mut self, max: Duration) -> TopologyState {
        self.join_lag = max;
        self
    }

    fn slot(&self, node: usize) -> Slot {
        self.nodes.get(node).map_or(Slot::Free, |n| Slot::from_u8(n.slot.load(Ordering::Acquire)))
    }

    /// The node's state if it is probed (in the snapshot, or joining it).
    fn probed(&self, node: usize) -> Option<&NodeState> {
        matches!(self.slot(node), Slot::Live | Slot::Joining)
            .then(|| self.nodes.get(node))
            .flatten()
    }

    /// How many nodes there are (in the snapshot or joining it).
    pub fn len(&self) -> usize {
        self.ids().len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.ids().is_empty()
    }

    /// The ids of the nodes there are (in the snapshot or joining it), in order: what the
    /// monitor probes.
    pub fn ids(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.probed(i).is_some()).collect()
    }

    /// Whether `node` is in the snapshot or joining it.
    pub fn contains(&self, node: usize) -> bool {
        self.probed(node).is_some()
    }

    /// Adds a node at run time under the lowest free id and returns that id (`None`: all
    /// [`MAX_NODES`] ids are taken, by nodes or by removed nodes still draining). `node` makes
    /// the node's snapshot entry from its id (name, weight, zone, tags; its role and health
    /// come from probes).
    ///
    /// The node is not in the snapshot yet, so nothing is routed to it: it joins at the first
    /// probe that sees it as the primary, or as a replica whose lag against the primary is
    /// known and within [`join_lag`](Self::join_lag) (a fresh standby still replaying its base
    /// backup waits).
    pub fn add_node(&self, node: impl FnOnce(NodeId) -> Node) -> Option<usize> {
        let _publishing = lock(&self.publish);
        let (i, n) = self
            .nodes
            .iter()
            .enumerate()
            .find(|(_, n)| Slot::from_u8(n.slot.load(Ordering::Acquire)) == Slot::Free)?;
        let template = node(node_id(i));
        *lock(&n.tracker) = HealthTracker::new(template.role(), self.policy);
        *lock(&n.template) = Some(template);
        *lock(&n.latest) = None;
        *lock(&n.retired) = None;
        n.pending.store(0, Ordering::Relaxed);
        n.probe_failures.store(0, Ordering::Relaxed);
        n.fenced.store(false, Ordering::Relaxed);
        n.refused.store(false, Ordering::Relaxed);
        n.slot.store(Slot::Joining as u8, Ordering::Release);
        Some(i)
    }

    /// Removes `node`: it leaves the published snapshot at once (no new statement is routed to
    /// it) and its id stays taken until [`release`](Self::release). Returns whether it was
    /// there.
    pub fn remove_node(&self, node: usize) -> bool {
        let Some(n) = self.probed(node) else { return false };
        {
            let _publishing = lock(&self.publish);
            let topo = self.topology.load_full();
            *lock(&n.retired) = topo.node(node_id(node)).map(|v| Arc::clone(v.load()));
            n.slot.store(Slot::Draining as u8, Ordering::Release);
            *lock(&n.latest) = None;
            *lock(&n.template) = None;
            n.fenced.store(false, Ordering::Relaxed);
            let next = topo
                .to_builder()
                .generation(topo.generation().saturating_add(1))
                .remove(node_id(node));
            if let Ok(t) = next.build() {
                self.topology.store(t);
            }
        }
        self.announce(node);
        tracing::warn!(target: "rwsplit", node, "node removed");
        // Roles and lag are rebuilt without it (it may have been the primary).
        self.rebuild(None);
        true
    }

    /// Replaces `node`'s tags (a topology source saw them change), in the snapshot at once or
    /// when it joins. Returns whether the node is there.
    pub fn set_tags(&self, node: usize, tags: &[&str]) -> bool {
        let Some(n) = self.probed(node) else { return false };
        if let Some(t) = lock(&n.template).take() {
            *lock(&n.template) = Some(t.to_builder().tags(tags.iter().copied()).build());
        }
        self.republish(|i, v| (i == node).then(|| v.to_builder().tags(tags.iter().copied())));
        true
    }

    /// Frees a removed node's id for reuse, if no statement is in flight on it any more (as its
    /// load tracker counts them; the adapter also waits for its own handles). Returns whether
    /// the id is free now.
    pub fn release(&self, node: usize) -> bool {
        let Some(n) = self.nodes.get(node) else { return false };
        match self.slot(node) {
            Slot::Free => true,
            Slot::Draining => {
                let mut retired = lock(&n.retired);
                if retired.as_ref().is_some_and(|l| l.in_flight() > 0) {
                    return false;
                }
                *retired = None;
                n.slot.store(Slot::Free as u8, Ordering::Release);
                true
            }
            Slot::Joining | Slot::Live => false,
        }
    }

    /// A node's health in the current snapshot (`Down` for an unknown node).
    pub fn health(&self, node: usize) -> Health {
        self.snapshot().node(node_id(node)).map_or(Health::Down, Node::health)
    }

    /// The node that has the primary role now, if exactly one has it.
    pub fn primary_index(&self) -> Option<usize> {
        let topo = self.snapshot();
        (topo.primary_count() == 1).then(|| topo.primary().map(|n| n.id().index())).flatten()
    }

    /// Every node's latest probe observation, by id ([`MAX_NODES`] entries; `None` for an id
    /// with no node).
    pub fn latest(&self) -> Vec<Option<Observation>> {
        (0..self.nodes.len())
            .map(|i| self.probed(i).and_then(|n| lock(&n.latest).clone()))
            .collect()
    }

    /// Whether `node`'s latest probe found nothing accepting its connection
    /// ([`ProbeError::is_refused`]): the node is not there, rather than slow or busy.
    pub fn refused(&self, node: usize) -> bool {
        self.nodes.get(node).is_some_and(|n| {
            lock(&n.latest).is_none()
                && n.probe_failures.load(Ordering::Relaxed) > 0
                && n.refused.load(Ordering::Relaxed)
        })
    }

    /// Consecutive failed probes of `node`.
    pub fn probe_failures(&self, node: usize) -> u32 {
        self.nodes.get(node).map_or(0, |n| n.probe_failures.load(Ordering::Relaxed))
    }

    /// A statement `node` served at `now`.
    pub fn record_success(&self, node: usize, now: Instant) {
        let Some(n) = self.probed(node) else { return };
        if n.pending.load(Ordering::Relaxed) == 0 && self.health(node) == Health::Up {
            return;
        }
        n.pending.store(0, Ordering::Relaxed);
        self.update(node, |t| t.record_success(now));
    }

    /// A failure of `node` itself that a statement saw at `now` (I/O, protocol, the server
    /// shutting down). Back-pressure on the application's side is never one.
    pub fn record_failure(&self, node: usize, now: Instant) {
        if let Some(n) = self.probed(node) {
            n.pending.fetch_add(1, Ordering::Relaxed);
        }
        self.update(node, |t| t.record_failure(now));
    }

    /// Takes `node` out of rotation at once (it was unreachable at start).
    pub fn ban(&self, node: usize, now: Instant) {
        if let Some(n) = self.probed(node) {
            n.pending.fetch_add(1, Ordering::Relaxed);
        }
        self.update(node, |t| {
            let mut h = t.health();
            for _ in 0..t.policy().failure_threshold_value() {
                h = t.record_failure(now);
            }
            h
        });
    }

    fn update(&self, node: usize, f: impl FnOnce(&mut HealthTracker) -> Health) {
        let Some(n) = self.probed(node) else { return };
        // The tracker's lock is released before the publish lock is taken: `republish` takes
        // them in the other order.
        let (before, after) = {
            let mut t = lock(&n.tracker);
            (t.health(), f(&mut t))
        };
        if before != after {
            self.republish(|_, _| None);
        }
    }

    /// One node's probe result at `now`, published at once. Drives the node's health, takes its
    /// reported role and position, then rebuilds every node's role and lag from each node's
    /// latest observation. Returns the node's consecutive failed probes (0 after a success).
    pub fn observe(
        &self,
        node: usize,
        result: &Result<Observation, ProbeError>,
        now: Instant,
    ) -> u32 {
        let Some(n) = self.probed(node) else { return 0 };
        let failures = {
            let mut t = lock(&n.tracker);
            match result {
                Ok(obs) => {
                    t.set_role(obs.role());
                    n.pending.store(0, Ordering::Relaxed);
                    t.record_success(now);
                    n.probe_failures.store(0, Ordering::Relaxed);
                    0
                }
                Err(e) => {
                    n.refused.store(e.is_refused(), Ordering::Relaxed);
                    t.record_failure(now);
                    n.probe_failures.fetch_add(1, Ordering::Relaxed).saturating_add(1)
                }
            }
        };
        *lock(&n.latest) = result.as_ref().ok().cloned();
        if let Ok(obs) = result
            && obs.role() == Role::Primary
            && !self.is_fenced(node)
            && let Some(position) = obs.position()
        {
            // Sampled when the probe was sent: the earliest the primary can have been there.
            let sent = now.checked_sub(obs.latency()).unwrap_or(now);
            lock(&self.history).record(node, position, sent);
        }
        self.rebuild(Some(now));
        failures
    }

    /// A position from the position feed at `now`: a replica's replay position, or the
    /// primary's written position (taken when the feed sent its query). The snapshot's position
    /// moves; a replica's lag is recomputed against the primary's latest position (and the
    /// primary's history, so the lag of a replica that stopped grows while the primary moves on);
    /// roles wait for the next full probe. Ignored unless the node's latest probe saw the same
    /// role the position is for (a replica, or the primary, unfenced).
    pub fn observe_position(&self, node: usize, position: ReplayPosition, now: Instant) {
        let Some(n) = self.probed(node) else { return };
        self.tick(now);
        let (moved, replica) = {
            let mut latest = lock(&n.latest);
            let Some(obs) = latest.as_mut() else { return };
            let moved = obs.position() != Some(&position);
            if moved {
                obs.position = Some(position.clone());
            }
            let replica = (obs.role() == Role::Replica).then(|| obs.clone());
            (moved, replica)
        };
        match replica {
            None if self.is_fenced(node) => {}
            None => {
                lock(&self.history).record(node, &position, now);
                if moved {
                    self.republish(|i, n| {
                        (i == node).then(|| n.to_builder().position(position.clone()))
                    });
                }
            }
            Some(obs) => {
                let lag = match self.primary() {
                    Some((p, p_obs)) => self.with_history(crate::lag(&p_obs, &obs), p, &obs, now),
                    None => Lag::unknown(),
                };
                let lag_moved = self.snapshot().node(node_id(node)).is_none_or(|n| n.lag() != lag);
                if moved || lag_moved {
                    self.republish(|i, n| {
                        (i == node).then(|| n.to_builder().position(position.clone()).lag(lag))
                    });
                }
            }
        }
    }

    /// Moves the state's clock to `now` if that is later.
    fn tick(&self, now: Instant) {
        let mut clock = lock(&self.clock);
        if clock.is_none_or(|c| c < now) {
            *clock = Some(now);
        }
    }

    /// The one unfenced node whose latest probe saw a primary, with that observation.
    fn primary(&self) -> Option<(usize, Observation)> {
        let mut found = None;
        for (i, n) in self.nodes.iter().enumerate() {
            if self.is_fenced(i) || self.probed(i).is_none() {
                continue;
            }
            let latest = lock(&n.latest);
            if let Some(obs) = latest.as_ref().filter(|o| o.role() == Role::Primary) {
                if found.is_some() {
                    return None;
                }
                found = Some((i, obs.clone()));
            }
        }
        found
    }

    /// `server`'s time lag, or the history's estimate for `replica` against primary `primary`
    /// at `now` if that is larger. Unknown stays unknown.
    fn with_history(
        &self,
        server: Lag,
        primary: usize,
        replica: &Observation,
        now: Instant,
    ) -> Lag {
        let Some(time) = server.time() else { return server };
        let history = lock(&self.history);
        if history.node() != Some(primary) {
            return server;
        }
        match replica.position().and_then(|r| history.lag(r, now)) {
            Some(estimate) if estimate > time => Lag::new(server.bytes(), Some(estimate)),
            _ => server,
        }
    }

    /// Roles and lag from every node's latest observation, at `now` (else the latest instant
    /// an input carried). A joining node that is the primary, or a replica within the join lag,
    /// enters the snapshot here.
    fn rebuild(&self, now: Option<Instant>) {
        if let Some(now) = now {
            self.tick(now);
        }
        let now = *lock(&self.clock);
        let latest = self.latest();
        let primaries: Vec<usize> = latest
            .iter()
            .enumerate()
            .filter(|(i, o)| {
                !self.is_fenced(*i) && matches!(o, Some(o) if o.role() == Role::Primary)
            })
            .map(|(i, _)| i)
            .collect();
        let primary_obs = match primaries.as_slice() {
            [p] => latest.get(*p).and_then(Option::as_ref).map(|o| (*p, o)),
            _ => None,
        };
        let lag_of = |obs: &Observation| match (obs.role(), primary_obs) {
            (Role::Primary, _) => Lag::zero(),
            (Role::Replica, Some((p, p_obs))) => {
                let server = crate::lag(p_obs, obs);
                match now {
                    Some(now) => self.with_history(server, p, obs, now),
                    None => server,
                }
            }
            (Role::Replica, None) => Lag::unknown(),
        };
        let joins: Vec<usize> = latest
            .iter()
            .enumerate()
            .filter(|(i, _)| self.slot(*i) == Slot::Joining)
            .filter_map(|(i, o)| o.as_ref().map(|o| (i, o)))
            .filter(|(_, obs)| {
                let lag = lag_of(obs);
                obs.role() == Role::Primary
                    || lag.bytes() == Some(0)
                    || lag.time().is_some_and(|t| t <= self.join_lag)
            })
            .map(|(i, _)| i)
            .collect();
        self.republish_with(&joins, |i, n| {
            let b = n.to_builder();
            Some(match latest.get(i).and_then(Option::as_ref) {
                Some(obs) => b.role(obs.role()).position(obs.position().cloned()).lag(lag_of(obs)),
                None if n.role() == Role::Primary && !primaries.is_empty() => {
                    tracing::warn!(target: "rwsplit", node = %n.name(), "unreachable old primary: another node is primary now");
                    b.role(Role::Replica).lag(Lag::unknown())
                }
                None => b.lag(Lag::unknown()),
            })
        });
    }

    /// Whether `node` is fenced.
    pub fn is_fenced(&self, node: usize) -> bool {
        self.probed(node).is_some_and(|n| n.fenced.load(Ordering::Relaxed))
    }

    /// Fences or unfences `node` and publishes the change at once; roles are rebuilt, so an
    /// unfenced node that still claims the primary role is a second primary. Returns whether it
    /// changed.
    pub fn set_fenced(&self, node: usize, fenced: bool) -> bool {
        let Some(n) = self.probed(node) else { return false };
        let changed = n.fenced.swap(fenced, Ordering::Relaxed) != fenced;
        if changed {
            self.rebuild(None);
        }
        changed
    }

    /// Publishes the next snapshot: each node with its tracker's health, changed by `edit` where
    /// it returns a builder.
    fn republish(&self, edit: impl Fn(usize, &Node) -> Option<NodeBuilder>) {
        self.republish_with(&[], edit);
    }

    /// [`republish`](Self::republish), with the joining nodes `joins` entering the snapshot
    /// (each from its template, through `edit`).
    fn republish_with(&self, joins: &[usize], edit: impl Fn(usize, &Node) -> Option<NodeBuilder>) {
        let _publishing = lock(&self.publish);
        let topo = self.topology.load_full();
        let mut next = topo.to_builder().generation(topo.generation().saturating_add(1));
        let mut joined = Vec::new();
        let mut changed = Vec::new();
        for &i in joins {
            let Some(n) = self.nodes.get(i) else { continue };
            if self.slot(i) != Slot::Joining {
                continue;
            }
            if let Some(template) = lock(&n.template).take() {
                // It joins on a successful probe, so it starts healthy: the failures of the
                // probes before its server took connections (a member Patroni lists while it
                // still restores its base backup) must not ban a node that never served.
                *lock(&n.tracker) = HealthTracker::new(template.role(), self.policy);
                n.probe_failures.store(0, Ordering::Relaxed);
                n.slot.store(Slot::Live as u8, Ordering::Release);
                joined.push(template);
            }
        }
        let nodes = topo.nodes().iter().filter(|n| self.slot(n.id().index()) == Slot::Live);
        for n in nodes.chain(joined.iter()) {
            let i = n.id().index();
            let health = self.nodes.get(i).map_or(n.health(), |s| lock(&s.tracker).health());
            let mut b = edit(i, n).unwrap_or_else(|| n.to_builder()).health(health);
            if self.is_fenced(i) {
                // Out of rotation for reads and writes alike, whatever it says it is.
                b = b.role(Role::Replica).health(Health::Down);
            }
            let built = b.build();
            if joined.iter().any(|j| j.id() == n.id()) {
                changed.push(i);
                tracing::warn!(target: "rwsplit", node = %n.name(), health = ?built.health(), role = ?built.role(), "node joined");
            } else if built.health() != n.health() || built.role() != n.role() {
                changed.push(i);
                tracing::warn!(target: "rwsplit", node = %n.name(), health = ?built.health(), role = ?built.role(), "node changed");
            }
            next = next.node(built);
        }
        // Removed nodes are dropped here too, should a removal race this publication.
        for n in topo.nodes().iter().filter(|n| self.slot(n.id().index()) != Slot::Live) {
            changed.push(n.id().index());
            next = next.remove(n.id());
        }
        if let Ok(t) = next.build() {
            self.topology.store(t);
            for i in changed {
                self.announce(i);
            }
        }
    }
}

/// The id of node `i`.
pub(crate) fn node_id(i: usize) -> NodeId {
    NodeId::new(u16::try_from(i).unwrap_or(u16::MAX))
}

#[cfg(test)]
mod tests;
