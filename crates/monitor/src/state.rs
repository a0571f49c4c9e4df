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

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use rwsplit_core::{
    Health, HealthPolicy, HealthTracker, Lag, Node, NodeBuilder, NodeId, ReplayPosition, Role,
    SharedTopology, Topology, TopologyGuard,
};

use crate::probe::{Observation, ProbeError};

mod history;

use history::History;

/// One node's state beside its place in the snapshot.
#[derive(Debug)]
struct NodeState {
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
    nodes: Vec<NodeState>,
    /// Serialises load-modify-store of the snapshot, so concurrent changes on two nodes cannot
    /// lose one another.
    publish: Mutex<()>,
    /// The primary's recent positions, for replicas' time lag.
    history: Mutex<History>,
    /// The latest instant an input carried (for a rebuild that has none of its own: fencing).
    clock: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TopologyState {
    /// Starts from `topology` (its nodes' ids must be `0..n`, as [`Topology::builder`] numbers
    /// them in the adapter), every node `Up` with the role it has there.
    pub fn new(topology: Topology, policy: HealthPolicy) -> TopologyState {
        let nodes = topology
            .nodes()
            .iter()
            .map(|n| NodeState {
                tracker: Mutex::new(HealthTracker::new(n.role(), policy)),
                pending: AtomicU32::new(0),
                probe_failures: AtomicU32::new(0),
                fenced: AtomicBool::new(false),
                latest: Mutex::new(None),
                refused: AtomicBool::new(false),
            })
            .collect();
        TopologyState {
            topology: SharedTopology::new(topology),
            nodes,
            publish: Mutex::new(()),
            history: Mutex::new(History::default()),
            clock: Mutex::new(None),
        }
    }

    /// The current snapshot (lock-free).
    pub fn snapshot(&self) -> TopologyGuard {
        self.topology.load()
    }

    /// How many nodes there are.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
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

    /// Every node's latest probe observation.
    pub fn latest(&self) -> Vec<Option<Observation>> {
        self.nodes.iter().map(|n| lock(&n.latest).clone()).collect()
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
        let Some(n) = self.nodes.get(node) else { return };
        if n.pending.load(Ordering::Relaxed) == 0 && self.health(node) == Health::Up {
            return;
        }
        n.pending.store(0, Ordering::Relaxed);
        self.update(node, |t| t.record_success(now));
    }

    /// A failure of `node` itself that a statement saw at `now` (I/O, protocol, the server
    /// shutting down). Back-pressure on the application's side is never one.
    pub fn record_failure(&self, node: usize, now: Instant) {
        if let Some(n) = self.nodes.get(node) {
            n.pending.fetch_add(1, Ordering::Relaxed);
        }
        self.update(node, |t| t.record_failure(now));
    }

    /// Takes `node` out of rotation at once (it was unreachable at start).
    pub fn ban(&self, node: usize, now: Instant) {
        if let Some(n) = self.nodes.get(node) {
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
        let Some(n) = self.nodes.get(node) else { return };
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
        let Some(n) = self.nodes.get(node) else { return 0 };
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
        let Some(n) = self.nodes.get(node) else { return };
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
            if self.is_fenced(i) {
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
    /// an input carried).
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
        self.republish(|i, n| {
            let b = n.to_builder();
            Some(match latest.get(i).and_then(Option::as_ref) {
                Some(obs) => {
                    let lag = match (obs.role(), primary_obs) {
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
                    b.role(obs.role()).position(obs.position().cloned()).lag(lag)
                }
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
        self.nodes.get(node).is_some_and(|n| n.fenced.load(Ordering::Relaxed))
    }

    /// Fences or unfences `node` and publishes the change at once; roles are rebuilt, so an
    /// unfenced node that still claims the primary role is a second primary. Returns whether it
    /// changed.
    pub fn set_fenced(&self, node: usize, fenced: bool) -> bool {
        let Some(n) = self.nodes.get(node) else { return false };
        let changed = n.fenced.swap(fenced, Ordering::Relaxed) != fenced;
        if changed {
            self.rebuild(None);
        }
        changed
    }

    /// Publishes the next snapshot: each node with its tracker's health, changed by `edit` where
    /// it returns a builder.
    fn republish(&self, edit: impl Fn(usize, &Node) -> Option<NodeBuilder>) {
        let _publishing = lock(&self.publish);
        let topo = self.topology.load_full();
        let mut next = topo.to_builder().generation(topo.generation().saturating_add(1));
        for (i, n) in topo.nodes().iter().enumerate() {
            let health = self.nodes.get(i).map_or(n.health(), |s| lock(&s.tracker).health());
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

/// The id of node `i`.
pub(crate) fn node_id(i: usize) -> NodeId {
    NodeId::new(u16::try_from(i).unwrap_or(u16::MAX))
}

#[cfg(test)]
mod tests;
