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

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rwsplit_core::{
    Health, HealthPolicy, HealthTracker, Lag, MAX_NODES, Node, NodeBuilder, NodeId, NodeLoad,
    ReplayPosition, Role, SharedTopology, Topology, TopologyGuard,
};

use crate::probe::{Lineage, Observation, ProbeError};

mod demand;
mod history;

use demand::Demand;
use history::History;

/// Where an entry of the registry (a node index) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Slot {
    /// No node: the index can be given to a new one, under the generation in its stamp.
    Free = 0,
    /// Added, probed, not yet in the snapshot: it joins once a probe has seen it healthy and
    /// caught up (see [`TopologyState::add_node`]).
    Joining = 1,
    /// In the snapshot.
    Live = 2,
    /// Removed: out of the snapshot, its index kept until [`TopologyState::release`] says its
    /// last statement has finished.
    Draining = 3,
    /// Its generations are used up: the index is never given out again (an old id must never
    /// name a new node).
    Retired = 4,
}

impl Slot {
    fn from_u8(v: u8) -> Slot {
        match v {
            1 => Slot::Joining,
            2 => Slot::Live,
            3 => Slot::Draining,
            4 => Slot::Retired,
            _ => Slot::Free,
        }
    }
}

/// An entry's generation and [`Slot`] in one word, so that one atomic load says which node
/// (if any) holds the index and where it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    generation: u16,
    slot: Slot,
}

impl Stamp {
    fn pack(self) -> u32 {
        (u32::from(self.generation) << 8) | self.slot as u32
    }

    fn unpack(word: u32) -> Stamp {
        Stamp {
            generation: u16::try_from(word >> 8).unwrap_or(u16::MAX),
            slot: Slot::from_u8(u8::try_from(word & 0xff).unwrap_or(0)),
        }
    }
}

/// Everything the monitor knows of one node beside its place in the snapshot: one entry of
/// the registry, at the node's index, holding the node whose generation its stamp says.
#[derive(Debug)]
struct Entry {
    /// A [`Stamp`]: the generation of the node at this index (for a free index, the one the
    /// next node gets) and its [`Slot`].
    stamp: AtomicU32,
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
    /// Failed probes since the start ([`TopologyState::failed_probes`]).
    probes_failed: AtomicU64,
    /// Probes a busy server refused since the start ([`TopologyState::busy_probes`]).
    probes_busy: AtomicU64,
    /// When the node last answered one of the application's statements, as `sampled` (0:
    /// never), to [`SERVE_GRAIN`] ([`TopologyState::served_since`]).
    served: AtomicU64,
    /// Out of rotation and never primary until unfenced.
    fenced: AtomicBool,
    /// A primary of an older epoch (a PostgreSQL timeline, a MariaDB takeover): deposed by a
    /// promotion, whoever made it ([`TopologyState::is_superseded`]). Out of rotation, as a
    /// fenced node, for as long as its probes say so.
    superseded: AtomicBool,
    /// The latest probe's observation (`None`: the last probe failed, or none yet).
    latest: Mutex<Option<Observation>>,
    /// Whether the latest failed probe found nothing accepting its connection.
    refused: AtomicBool,
    /// Woken when a published snapshot changes its role or health, or it joins or leaves
    /// ([`TopologyState::changed`]).
    changes: tokio::sync::Notify,
    /// How many times `changes` was notified ([`TopologyState::changes`]).
    announced: AtomicU64,
    /// When the latest position sample the published snapshot reflects was sent, as
    /// nanoseconds after [`TopologyState::base`] plus one (0: none yet). Stored after that
    /// snapshot is published ([`TopologyState::sampled_since`]).
    sampled: AtomicU64,
    /// A sample sent after this instant is wanted ([`TopologyState::want_sample`]), as
    /// `sampled` (0: none).
    sample_after: AtomicU64,
    /// Until when that sample is wanted, as `sampled`.
    sample_until: AtomicU64,
    /// Until when the wanted sample's position is wanted on the replicas too
    /// ([`TopologyState::want_floor`]), as `sampled` (0: not).
    floor_until: AtomicU64,
    /// Wake-ups of the waiters of `changes` that announced no change ([`TopologyState::nudge`]).
    nudged: AtomicU64,
    /// A configured node held out of the snapshot until it answers a probe
    /// ([`TopologyState::hold_until_answered`]): it joins at that answer, whatever its lag.
    unvouched: AtomicBool,
}

/// What the monitor knows of every node, and the snapshot it publishes.
///
/// Nodes are known by [`NodeId`]: the state is a registry of [`MAX_NODES`] entries, one per
/// index, each holding everything about the node at that index and its generation. Every
/// lookup compares the generation, so an id of a removed node finds nothing even once a new
/// node holds its index (it gets the next generation).
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
///   probes. Each replica's lag also carries the instant it is provably fresh as of (the last
///   sighting of the primary at a position it has replayed; [`Lag::fresh_as_of`]), so a
///   bounded-staleness read judges it at the read's own instant: its staleness grows while no
///   news of the primary comes, and a replica that holds everything the primary was last seen
///   writing (the one being promoted) serves bounded reads through a switchover only while the
///   bound allows. A replica the history cannot place is [unprovable](Lag::unprovable).
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
///     state.observe(NodeId::new(1), &refused, t0 + Duration::from_millis(500 * i));
/// }
/// assert_eq!(state.health(NodeId::new(1)), Health::Down);
/// # Ok::<_, rwsplit_core::Error>(())
/// ```
#[derive(Debug)]
pub struct TopologyState {
    topology: SharedTopology,
    /// The registry: one entry per index ([`MAX_NODES`]).
    nodes: Box<[Entry]>,
    /// How many entries hold a node in the snapshot or joining it ([`len`](Self::len)):
    /// moved under the publishing lock by [`add_node`](Self::add_node) and
    /// [`remove_node`](Self::remove_node), the only changes in and out of that set, so a
    /// statement reads it with one atomic load.
    members: AtomicUsize,
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
    /// The newest PostgreSQL timeline seen on each system (system identifier → timeline), on
    /// any node: the epoch a promotion starts, against which an older primary is superseded.
    epochs: Mutex<Vec<(u64, u32)>>,
    /// MariaDB's epochs: each server a writable node was seen to have taken over from, and the
    /// newest sequence number it was taken over at (domain, `server_id`, sequence), learned
    /// from the new primary's slave position ([`Lineage`]). At most [`MAX_TAKEOVERS`].
    takeovers: Mutex<Vec<(u32, u32, u64)>>,
    /// What [`changed`](Self::changed) waits on for an id of no node: never notified.
    never: tokio::sync::Notify,
    /// Notified after each snapshot is published ([`published`](Self::published)).
    published: tokio::sync::Notify,
    /// Notified after each position sample is noted ([`sampled`](Self::sampled)).
    sampled: tokio::sync::Notify,
    /// What readers want of the feeds and probes, and the marks the entries' instants are
    /// stored as (`state/demand.rs`).
    demand: Demand,
}

/// How many MariaDB takeovers [`TopologyState`] remembers (one per server and domain: a
/// cluster's servers, many times over).
const MAX_TAKEOVERS: usize = 64;

/// Answers closer together than this are one to [`TopologyState::served_since`]: one atomic
/// load per statement while they keep coming.
const SERVE_GRAIN: Duration = Duration::from_millis(10);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TopologyState {
    /// Starts from `topology` (node indices below [`MAX_NODES`], gaps allowed; any
    /// generations), every node `Up` with the role it has there. The other indices are free
    /// for [`add_node`](Self::add_node).
    pub fn new(topology: Topology, policy: HealthPolicy) -> TopologyState {
        let nodes = (0..MAX_NODES)
            .map(|i| {
                let present = topology.nodes().iter().find(|n| n.id().index() == i);
                let stamp = match present {
                    Some(n) => Stamp { generation: n.id().generation(), slot: Slot::Live },
                    None => Stamp { generation: 0, slot: Slot::Free },
                };
                Entry {
                    stamp: AtomicU32::new(stamp.pack()),
                    template: Mutex::new(None),
                    retired: Mutex::new(None),
                    tracker: Mutex::new(HealthTracker::new(
                        present.map_or(Role::Replica, Node::role),
                        policy,
                    )),
                    pending: AtomicU32::new(0),
                    probe_failures: AtomicU32::new(0),
                    probes_failed: AtomicU64::new(0),
                    probes_busy: AtomicU64::new(0),
                    served: AtomicU64::new(0),
                    fenced: AtomicBool::new(false),
                    superseded: AtomicBool::new(false),
                    latest: Mutex::new(None),
                    refused: AtomicBool::new(false),
                    changes: tokio::sync::Notify::new(),
                    announced: AtomicU64::new(0),
                    sampled: AtomicU64::new(0),
                    sample_after: AtomicU64::new(0),
                    sample_until: AtomicU64::new(0),
                    floor_until: AtomicU64::new(0),
                    unvouched: AtomicBool::new(false),
                    nudged: AtomicU64::new(0),
                }
            })
            .collect::<Box<[Entry]>>();
        let members = nodes
            .iter()
            .filter(|n| Stamp::unpack(n.stamp.load(Ordering::Relaxed)).slot == Slot::Live)
            .count();
        TopologyState {
            members: AtomicUsize::new(members),
            topology: SharedTopology::new(topology),
            nodes,
            policy,
            join_lag: Duration::from_secs(1),
            publish: Mutex::new(()),
            history: Mutex::new(History::default()),
            clock: Mutex::new(None),
            epochs: Mutex::new(Vec::new()),
            takeovers: Mutex::new(Vec::new()),
            never: tokio::sync::Notify::new(),
            published: tokio::sync::Notify::new(),
            sampled: tokio::sync::Notify::new(),
            demand: Demand::new(),
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
    /// let changed = state.changed(NodeId::new(1));
    /// assert_eq!(state.health(NodeId::new(1)), Health::Up);
    /// state.observe(NodeId::new(1), &Err(ProbeError::unreachable("refused")), Instant::now());
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// changed.await; // ready: node 1 went down after the future was made
    /// # });
    /// assert_eq!(state.health(NodeId::new(1)), Health::Down);
    /// # Ok::<_, rwsplit_core::Error>(())
    /// ```
    pub fn changed(&self, node: NodeId) -> tokio::sync::futures::Notified<'_> {
        // No such node: nothing about it will ever change (`never` is never notified). A
        // later node at its index wakes it spuriously at most: waiters check again.
        self.at(node).map_or(&self.never, |(n, _)| &n.changes).notified()
    }

    /// Resolves after the next snapshot is published, whatever changed in it — a replica's
    /// replay position included, which [`changed`](Self::changed) does not announce (a
    /// statement's watch on its node would wake at every position). For a waiter on a
    /// position: make the future, look at the snapshot, then await it.
    ///
    /// ```
    /// # use rwsplit_core::{Node, NodeId, Role, Topology};
    /// # use rwsplit_monitor::TopologyState;
    /// # let topology = Topology::builder()
    /// #     .node(Node::builder(NodeId::new(0), Role::Primary).build())
    /// #     .node(Node::builder(NodeId::new(1), Role::Replica).build())
    /// #     .build()?;
    /// let state = TopologyState::new(topology, Default::default());
    /// let published = state.published();
    /// state.set_fenced(NodeId::new(1), true);
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// published.await; // ready: a snapshot was published after the future was made
    /// # });
    /// # Ok::<_, rwsplit_core::Error>(())
    /// ```
    pub fn published(&self) -> tokio::sync::futures::Notified<'_> {
        self.published.notified()
    }

    /// Tells the waiters of [`changed`](Self::changed) on `node`, after a snapshot was
    /// published.
    fn announce(&self, node: NodeId) {
        if let Some(n) = self.nodes.get(node.index()) {
            // Counted first: a waiter woken by the notification sees the count moved.
            n.announced.fetch_add(1, Ordering::Release);
            n.changes.notify_waiters();
        }
    }

    /// How many times the waiters of [`changed`](Self::changed) on `node` have been told of a
    /// change so far. A waiter that polls often (a statement's watch, at each of its own polls)
    /// reads this one atomic and polls its [`changed`](Self::changed) future again only when
    /// it moved: the count moves before the waiters are woken.
    ///
    /// ```
    /// use std::time::Instant;
    /// use rwsplit_core::{Node, NodeId, Role, Topology};
    /// use rwsplit_monitor::{ProbeError, TopologyState};
    ///
    /// let topology = Topology::builder()
    ///     .node(Node::builder(NodeId::new(0), Role::Primary).build())
    ///     .node(Node::builder(NodeId::new(1), Role::Replica).build())
    ///     .build()?;
    /// let state = TopologyState::new(topology, Default::default());
    /// let replica = NodeId::new(1);
    /// let before = state.changes(replica);
    /// for _ in 0..3 {
    ///     state.observe(replica, &Err(ProbeError::unreachable("refused")), Instant::now());
    /// }
    /// assert!(state.changes(replica) > before, "going down is announced");
    /// # Ok::<_, rwsplit_core::Error>(())
    /// ```
    pub fn changes(&self, node: NodeId) -> u64 {
        self.at(node).map_or(0, |(n, _)| n.announced.load(Ordering::Acquire))
    }

    /// Wakes the waiters of [`changed`](Self::changed) on `node` without announcing a change:
    /// for a caller that learnt something of the node itself (its reads have gone unanswered)
    /// and wants the statements waiting on it to look again. Counted in
    /// [`nudges`](Self::nudges), not in [`changes`](Self::changes).
    pub fn nudge(&self, node: NodeId) {
        if let Some((n, _)) = self.at(node) {
            // Counted first: a waiter woken by the notification sees the count moved.
            n.nudged.fetch_add(1, Ordering::Release);
            n.changes.notify_waiters();
        }
    }

    /// How many times [`nudge`](Self::nudge) woke the waiters of `node`.
    pub fn nudges(&self, node: NodeId) -> u64 {
        self.at(node).map_or(0, |(n, _)| n.nudged.load(Ordering::Acquire))
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

    /// The entry of node `node` and where it stands, if the entry at its index holds that
    /// generation (for a free index: the generation its next node gets).
    fn at(&self, node: NodeId) -> Option<(&Entry, Slot)> {
        let entry = self.nodes.get(node.index())?;
        let stamp = Stamp::unpack(entry.stamp.load(Ordering::Acquire));
        (stamp.generation == node.generation()).then_some((entry, stamp.slot))
    }

    /// Where `node` stands (`Free`: no such node).
    fn slot(&self, node: NodeId) -> Slot {
        self.at(node).map_or(Slot::Free, |(_, slot)| slot)
    }

    /// The node's entry if it is probed (in the snapshot, or joining it).
    fn probed(&self, node: NodeId) -> Option<&Entry> {
        self.at(node).and_then(|(n, slot)| matches!(slot, Slot::Live | Slot::Joining).then_some(n))
    }

    /// Every entry with the id of the node it holds (or will give out next) and where that
    /// stands, in index order.
    fn entries(&self) -> impl Iterator<Item = (NodeId, &Entry, Slot)> {
        self.nodes.iter().enumerate().map(|(i, n)| {
            let stamp = Stamp::unpack(n.stamp.load(Ordering::Acquire));
            let index = u16::try_from(i).unwrap_or(u16::MAX);
            (NodeId::with_generation(index, stamp.generation), n, stamp.slot)
        })
    }

    /// How many nodes there are (in the snapshot or joining it): one atomic load.
    #[inline]
    pub fn len(&self) -> usize {
        self.members.load(Ordering::Acquire)
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids of the nodes there are (in the snapshot or joining it), in index order: what
    /// the monitor probes.
    pub fn ids(&self) -> Vec<NodeId> {
        self.entries()
            .filter(|(_, _, slot)| matches!(slot, Slot::Live | Slot::Joining))
            .map(|(id, _, _)| id)
            .collect()
    }

    /// The nodes joining the snapshot (probed, not in rotation yet), with their names, in
    /// index order: for errors that name every node.
    pub fn joining(&self) -> Vec<(NodeId, String)> {
        self.entries()
            .filter(|(_, _, slot)| *slot == Slot::Joining)
            .filter_map(|(id, n, _)| lock(&n.template).as_ref().map(|t| (id, t.name().to_owned())))
            .collect()
    }

    /// Whether `node` is in the snapshot or joining it.
    pub fn contains(&self, node: NodeId) -> bool {
        self.probed(node).is_some()
    }

    /// Adds a node at run time at the lowest free index and returns its id: the index's next
    /// generation, so no id given out before names it. `node` makes the node's snapshot entry
    /// from its id (name, weight, zone, tags; its role and health come from probes).
    ///
    /// # Errors
    ///
    /// [`NoFreeIndex`] when all [`MAX_NODES`] indices are taken, by nodes or by removed nodes
    /// still draining (or, after 65,536 nodes at one index, retired).
    ///
    /// The node is not in the snapshot yet, so nothing is routed to it: it joins at the first
    /// probe that sees it as the primary, or as a replica whose lag against the primary is
    /// known and within [`join_lag`](Self::join_lag) (a fresh standby still replaying its base
    /// backup waits).
    pub fn add_node(&self, node: impl FnOnce(NodeId) -> Node) -> Result<NodeId, NoFreeIndex> {
        let _publishing = lock(&self.publish);
        let (id, n, _) = self
            .entries()
            .find(|(_, _, slot)| *slot == Slot::Free)
            .ok_or(NoFreeIndex { max: MAX_NODES })?;
        let template = node(id);
        *lock(&n.tracker) = HealthTracker::new(template.role(), self.policy);
        *lock(&n.template) = Some(template);
        *lock(&n.latest) = None;
        *lock(&n.retired) = None;
        n.pending.store(0, Ordering::Relaxed);
        n.probe_failures.store(0, Ordering::Relaxed);
        n.fenced.store(false, Ordering::Relaxed);
        n.superseded.store(false, Ordering::Relaxed);
        n.refused.store(false, Ordering::Relaxed);
        n.unvouched.store(false, Ordering::Relaxed);
        n.sampled.store(0, Ordering::Release);
        let stamp = Stamp { generation: id.generation(), slot: Slot::Joining };
        n.stamp.store(stamp.pack(), Ordering::Release);
        self.members.fetch_add(1, Ordering::AcqRel);
        Ok(id)
    }

    /// Removes `node`: it leaves the published snapshot at once (no new statement is routed to
    /// it) and its index stays taken until [`release`](Self::release). Returns whether it was
    /// there.
    pub fn remove_node(&self, node: NodeId) -> bool {
        {
            let _publishing = lock(&self.publish);
            // Looked up under the lock: of two removals of one node, one removes it.
            let Some(n) = self.probed(node) else { return false };
            self.members.fetch_sub(1, Ordering::AcqRel);
            let topo = self.topology.load_full();
            *lock(&n.retired) = topo.node(node).map(|v| Arc::clone(v.load()));
            let stamp = Stamp { generation: node.generation(), slot: Slot::Draining };
            n.stamp.store(stamp.pack(), Ordering::Release);
            *lock(&n.latest) = None;
            *lock(&n.template) = None;
            n.fenced.store(false, Ordering::Relaxed);
            n.superseded.store(false, Ordering::Relaxed);
            self.publish_without(&topo, node);
        }
        self.announce(node);
        tracing::warn!(target: "rwsplit", node = %node, "node removed");
        // Roles and lag are rebuilt without it (it may have been the primary).
        self.rebuild(None);
        true
    }

    /// Publishes `topo` without `node` (the caller holds the publishing lock).
    fn publish_without(&self, topo: &Topology, node: NodeId) {
        let next = topo.to_builder().generation(topo.generation().saturating_add(1)).remove(node);
        if let Ok(t) = next.build() {
            self.topology.store(t);
            self.published.notify_waiters();
        }
    }

    /// Holds `node` — in the snapshot since the start, but never answered a probe — out of the
    /// snapshot until a probe answers: nothing is routed to a node nobody vouches for (a frozen
    /// server accepts nothing and refuses nothing, so every read sent there would wait out its
    /// timeouts). It re-enters at its first answer, whatever its lag (the router judges lag), as
    /// a node added at run time does. Returns whether it was held (`false`: it has answered
    /// already, or is not in the snapshot).
    pub fn hold_until_answered(&self, node: NodeId) -> bool {
        let Some((n, Slot::Live)) = self.at(node) else { return false };
        {
            let _publishing = lock(&self.publish);
            if lock(&n.latest).is_some() {
                return false;
            }
            let topo = self.topology.load_full();
            let Some(current) = topo.node(node) else { return false };
            *lock(&n.template) = Some(current.clone());
            n.unvouched.store(true, Ordering::Relaxed);
            let stamp = Stamp { generation: node.generation(), slot: Slot::Joining };
            n.stamp.store(stamp.pack(), Ordering::Release);
            self.publish_without(&topo, node);
        }
        self.announce(node);
        // (Its probe may have answered meanwhile: roles are rebuilt, and it joins if so.)
        self.rebuild(None);
        true
    }

    /// Whether `node` has answered a probe since it last failed one (or since the start).
    pub fn answered(&self, node: NodeId) -> bool {
        self.at(node).is_some_and(|(n, _)| lock(&n.latest).is_some())
    }

    /// Replaces `node`'s tags (a topology source saw them change), in the snapshot at once or
    /// when it joins. Returns whether the node is there.
    pub fn set_tags(&self, node: NodeId, tags: &[&str]) -> bool {
        let Some(n) = self.probed(node) else { return false };
        if let Some(t) = lock(&n.template).take() {
            *lock(&n.template) = Some(t.to_builder().tags(tags.iter().copied()).build());
        }
        self.republish(|id, v| (id == node).then(|| v.to_builder().tags(tags.iter().copied())));
        true
    }

    /// Frees a removed node's index for reuse, under the next generation, if no statement is
    /// in flight on it any more (as its load tracker counts them; the adapter also waits for
    /// its own handles). Returns whether the node is gone now (also for an id that names no
    /// node any more).
    pub fn release(&self, node: NodeId) -> bool {
        let Some((n, slot)) = self.at(node) else {
            // Released before, and perhaps given out again: this id names no node.
            return self.nodes.get(node.index()).is_some();
        };
        match slot {
            Slot::Free | Slot::Retired => true,
            Slot::Draining => {
                let mut retired = lock(&n.retired);
                if retired.as_ref().is_some_and(|l| l.in_flight() > 0) {
                    return false;
                }
                *retired = None;
                let next = match node.next_generation() {
                    Some(next) => Stamp { generation: next.generation(), slot: Slot::Free },
                    None => Stamp { generation: node.generation(), slot: Slot::Retired },
                };
                n.stamp.store(next.pack(), Ordering::Release);
                true
            }
            Slot::Joining | Slot::Live => false,
        }
    }

    /// A node's health in the current snapshot (`Down` for an unknown node).
    pub fn health(&self, node: NodeId) -> Health {
        self.snapshot().node(node).map_or(Health::Down, Node::health)
    }

    /// The node that has the primary role now, if exactly one has it.
    pub fn primary_id(&self) -> Option<NodeId> {
        self.snapshot().primary().map(Node::id)
    }

    /// Every node's latest probe observation (`None`: its latest probe failed, or none yet),
    /// for the nodes there are (in the snapshot or joining it), in index order.
    pub fn latest(&self) -> Vec<(NodeId, Option<Observation>)> {
        self.entries()
            .filter(|(_, _, slot)| matches!(slot, Slot::Live | Slot::Joining))
            .map(|(id, n, _)| (id, lock(&n.latest).clone()))
            .collect()
    }

    /// Whether `node`'s latest probe found nothing accepting its connection
    /// ([`ProbeError::is_refused`]): the node is not there, rather than slow or busy.
    pub fn refused(&self, node: NodeId) -> bool {
        self.at(node).is_some_and(|(n, _)| {
            lock(&n.latest).is_none()
                && n.probe_failures.load(Ordering::Relaxed) > 0
                && n.refused.load(Ordering::Relaxed)
        })
    }

    /// Consecutive failed probes of `node`.
    pub fn probe_failures(&self, node: NodeId) -> u32 {
        self.at(node).map_or(0, |(n, _)| n.probe_failures.load(Ordering::Relaxed))
    }

    /// Probes of `node` that failed (timed out, refused, errored) since the state was made:
    /// on a healthy cluster under load, 0 — a probe that times out under load is the monitor
    /// mistaking a busy node for a failing one (the fleet benchmark reports it). 0 for an id
    /// of no node.
    pub fn failed_probes(&self, node: NodeId) -> u64 {
        self.at(node).map_or(0, |(n, _)| n.probes_failed.load(Ordering::Relaxed))
    }

    /// Probes of `node` that found it alive and busy since the start: its server refused the
    /// probe's connection for lack of room ([`ProbeError::Busy`]), or the probe timed out while
    /// it answered the application's statements ([`ProbeError::Outpaced`]). Not failures, and
    /// no change of health. 0 for an id of no node.
    pub fn busy_probes(&self, node: NodeId) -> u64 {
        self.at(node).map_or(0, |(n, _)| n.probes_busy.load(Ordering::Relaxed))
    }

    /// A statement `node` served at `now` (its answer came then): the node is alive (a probe
    /// that times out meanwhile is slow, not failed: [`ProbeError::Outpaced`]), and a node that
    /// had failed counts one success.
    pub fn record_success(&self, node: NodeId, now: Instant) {
        let Some(n) = self.probed(node) else { return };
        let mark = self.mark(now);
        let grain = u64::try_from(SERVE_GRAIN.as_nanos()).unwrap_or(u64::MAX);
        if n.served.load(Ordering::Relaxed).saturating_add(grain) < mark {
            n.served.store(mark, Ordering::Relaxed);
        }
        if n.pending.load(Ordering::Relaxed) == 0 && self.health(node) == Health::Up {
            return;
        }
        n.pending.store(0, Ordering::Relaxed);
        self.update(node, |t| t.record_success(now));
    }

    /// Whether `node` answered one of the application's statements
    /// ([`record_success`](Self::record_success)) at or after `at`, give or take 10 ms. A
    /// probe that timed out while the node kept answering the application was slow, not
    /// failed: the monitor counts it as [busy](Self::busy_probes) (a server
    /// saturated by a fleet's statements must not be marked down by the probes waiting behind
    /// them). A frozen or unreachable node answers nothing, so this never hides one.
    pub(crate) fn served_since(&self, node: NodeId, at: Instant) -> bool {
        let Some(n) = self.probed(node) else { return false };
        let served = n.served.load(Ordering::Relaxed);
        served != 0 && served >= self.mark(at)
    }

    /// A failure of `node` itself that a statement saw at `now` (I/O, protocol, the server
    /// shutting down). Back-pressure on the application's side is never one.
    pub fn record_failure(&self, node: NodeId, now: Instant) {
        if let Some(n) = self.probed(node) {
            n.pending.fetch_add(1, Ordering::Relaxed);
        }
        self.update(node, |t| t.record_failure(now));
    }

    /// Takes `node` out of rotation at once (it was unreachable at start).
    pub fn ban(&self, node: NodeId, now: Instant) {
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

    fn update(&self, node: NodeId, f: impl FnOnce(&mut HealthTracker) -> Health) {
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
        node: NodeId,
        result: &Result<Observation, ProbeError>,
        now: Instant,
    ) -> u32 {
        let Some(n) = self.probed(node) else { return 0 };
        if let Err(e) = result
            && e.is_busy()
        {
            // The server answered, refusing a connection for lack of room: alive, and busy.
            // Nothing new about it (its last observation stands, its samples age), no failure.
            n.probes_busy.fetch_add(1, Ordering::Relaxed);
            return 0;
        }
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
                    n.probes_failed.fetch_add(1, Ordering::Relaxed);
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
        if let Ok(obs) = result
            && obs.position().is_some()
        {
            // Published above: the snapshot holds this position (or a later one).
            let sent = now.checked_sub(obs.latency()).unwrap_or(now);
            if let Some(position) = obs.position() {
                self.sampled_at(n, sent, position);
            }
        }
        failures
    }

    /// A position from the position feed at `now`: a replica's replay position, or the
    /// primary's written position (taken when the feed sent its query). The snapshot's position
    /// moves; a replica's lag is recomputed against the primary's latest position (and the
    /// primary's history, so the lag of a replica that stopped grows while the primary moves on);
    /// roles wait for the next full probe. Ignored unless the node's latest probe saw the same
    /// role the position is for (a replica, or the primary, unfenced).
    pub fn observe_position(&self, node: NodeId, position: ReplayPosition, now: Instant) {
        self.observe_position_sent(node, position, now, now);
    }

    /// [`observe_position`](Self::observe_position) of a sample whose query was sent at
    /// `sent` and answered at `now`: [`sampled_since`](Self::sampled_since) learns that the
    /// snapshot holds a position taken no earlier than `sent`.
    pub(crate) fn observe_position_sent(
        &self,
        node: NodeId,
        position: ReplayPosition,
        now: Instant,
        sent: Instant,
    ) {
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
                    self.republish(|id, n| {
                        (id == node).then(|| n.to_builder().position(position.clone()))
                    });
                }
                self.sampled_at(n, sent, &position);
            }
            Some(obs) => {
                let lag = match self.primary() {
                    Some((p, p_obs)) => {
                        self.reckon(crate::lag(&p_obs, &obs), Some(p), &obs, Some(now))
                    }
                    None if self.no_primary_claimed() => {
                        self.reckon(Lag::unknown(), None, &obs, Some(now))
                    }
                    None => Lag::unknown().unprovable(),
                };
                let lag_moved = self.snapshot().node(node).is_none_or(|n| n.lag() != lag);
                if moved || lag_moved {
                    self.republish(|id, n| {
                        (id == node).then(|| n.to_builder().position(position.clone()).lag(lag))
                    });
                }
                self.sampled_at(n, sent, &position);
            }
        }
    }

    /// Notes that the published snapshot holds a position of `n` sampled by a query sent at
    /// `sent` (call after publishing it).
    fn sampled_at(&self, n: &Entry, sent: Instant, position: &ReplayPosition) {
        let mark = self.mark(sent);
        // The sample a floor wanted (`want_floor`): the replicas' feeds run until each has its
        // position, so the scope's next read finds one known to have everything it read.
        let floor_until = n.floor_until.load(Ordering::Acquire);
        if floor_until > 0
            && mark >= n.sample_after.load(Ordering::Acquire)
            && n.floor_until
                .compare_exchange(floor_until, 0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.demand.want_replayed_until(
                &rwsplit_core::CausalToken::new(position.clone()),
                floor_until,
            );
        }
        n.sampled.fetch_max(mark, Ordering::Release);
        self.sampled.notify_waiters();
    }

    /// A future that completes at the next position sample of any node (see
    /// [`sampled_since`](Self::sampled_since)); like [`changed`](Self::changed), it counts from
    /// when it is made.
    pub fn sampled(&self) -> tokio::sync::futures::Notified<'_> {
        // `notify_waiters` reaches a `Notified` from its creation, polled or not.
        self.sampled.notified()
    }

    /// Whether the published snapshot holds a position of `node` sampled by a query sent at or
    /// after `at`, so that position is at least what `node` had replayed (or, on a primary,
    /// written) at `at`: a sound upper bound of what a read that ended on it at `at` can have
    /// seen. Load the snapshot *after* this returns `true`: the sample's snapshot was
    /// published before it was noted here.
    pub fn sampled_since(&self, node: NodeId, at: Instant) -> bool {
        let Some(n) = self.probed(node) else { return false };
        self.demand.at_or_after(n.sampled.load(Ordering::Acquire), at)
    }

    /// `at` as stored in the state's atomics (see `state/demand.rs`).
    fn mark(&self, at: Instant) -> u64 {
        self.demand.mark(at)
    }

    /// Asks for fresh positions until `until` (asked at `now`): the monitor's position feed
    /// reads every node's position each [position
    /// interval](crate::MonitorConfig::position_interval) until then, and not at all when
    /// nobody asks (idle, positions come with the full probes). The adapter asks when a read
    /// needs a position the snapshot cannot prove: a read-your-writes token no replica is
    /// known to have replayed, a monotonic floor with no sample yet, a bounded-staleness read
    /// no replica is provably fresh enough for. Asking again extends the want; never shortens
    /// it. One atomic load when the want already runs long enough.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use rwsplit_core::{Node, NodeId, Role, Topology};
    /// use rwsplit_monitor::TopologyState;
    ///
    /// let topology = Topology::builder()
    ///     .node(Node::builder(NodeId::new(0), Role::Primary).build())
    ///     .build()?;
    /// let state = TopologyState::new(topology, Default::default());
    /// let now = Instant::now();
    /// assert!(!state.positions_wanted_at(now), "idle: nobody asked");
    /// state.want_positions(now, now + Duration::from_millis(500));
    /// assert!(state.positions_wanted_at(now + Duration::from_millis(499)));
    /// assert!(!state.positions_wanted_at(now + Duration::from_millis(500)), "it lapses");
    /// # Ok::<_, rwsplit_core::Error>(())
    /// ```
    pub fn want_positions(&self, now: Instant, until: Instant) {
        self.demand.want_positions(now, until);
    }

    /// Asks for replicas' positions until each is seen at or past `token` (a write's position,
    /// just captured), or until `until`, whichever comes first: the scope that wrote will read
    /// soon, and a replica known to have its write can serve it then. Unlike
    /// [`want_positions`](Self::want_positions), the feed stops on each replica as soon as the
    /// replica has the write (usually the first sample: replication takes about a millisecond).
    /// The primary's feed is not run for it: a read the scope makes on the primary meanwhile
    /// asks for the primary's next sample ([`want_floor`](Self::want_floor)). Tokens merge (the
    /// newest per history).
    pub fn want_replayed(&self, token: &rwsplit_core::CausalToken, until: Instant) {
        self.demand.want_replayed_until(token, self.mark(until));
    }

    /// Asks for one position sample of `node` sent after `after`, until `until`: a read's
    /// monotonic floor is its node's first sample after it (see
    /// [`sampled_since`](Self::sampled_since)), and the scope's next read can leave that node
    /// once it is known. The node's feed reads once, at once or a quarter position interval
    /// after its last read, and stops; the other nodes' feeds are not woken. Asking again for
    /// a later instant moves it on.
    pub fn want_sample(&self, node: NodeId, after: Instant, until: Instant) {
        let Some(n) = self.probed(node) else { return };
        let after = self.mark(after);
        if n.sample_after.load(Ordering::Acquire) >= after
            && n.sample_until.load(Ordering::Acquire) >= self.mark(until)
        {
            return;
        }
        n.sample_after.fetch_max(after, Ordering::AcqRel);
        n.sample_until.fetch_max(self.mark(until), Ordering::AcqRel);
        self.demand.wake_feeds();
    }

    /// [`want_sample`](Self::want_sample), and then the sample's position on the replicas
    /// ([`want_replayed`](Self::want_replayed), until `until`): a scope's last read was on
    /// `node` (the primary, typically) and no sample bounds it yet. Its floor is that sample's
    /// position, and its next read can use a replica once one is known to have it: the
    /// replicas' feeds run until each is seen at or past it, not only until they have the
    /// scope's own write (other writers have moved the primary on since).
    pub fn want_floor(&self, node: NodeId, after: Instant, until: Instant) {
        if let Some(n) = self.probed(node) {
            n.floor_until.fetch_max(self.mark(until), Ordering::AcqRel);
        }
        self.want_sample(node, after, until);
    }

    /// Whether a sample of `node` is wanted at `now` ([`want_sample`](Self::want_sample)) that
    /// it has not had yet.
    pub(crate) fn sample_wanted(&self, node: NodeId, now: Instant) -> bool {
        self.probed(node).is_some_and(|n| {
            n.sample_until.load(Ordering::Acquire) > self.mark(now)
                // As `sampled_since`: a sample sent at or after the instant asked has it.
                && n.sample_after.load(Ordering::Acquire) > n.sampled.load(Ordering::Acquire)
        })
    }

    /// Whether `node`'s position feed should read at `now`: positions are wanted
    /// ([`want_positions`](Self::want_positions)), or a sample of it is
    /// ([`want_sample`](Self::want_sample)) and none was sent after the instant asked, or a
    /// write position is ([`want_replayed`](Self::want_replayed)) and `node` is a replica not
    /// yet seen at or past it.
    pub(crate) fn feed_wanted(&self, node: NodeId, now: Instant) -> bool {
        if self.positions_wanted_at(now) {
            return true;
        }
        if self.sample_wanted(node, now) {
            return true;
        }
        // A replica not yet seen at or past the write position wanted. Not the primary: a read
        // a scope made there meanwhile asks for the primary's next sample itself (`want_floor`,
        // as it ends), once per read; feeding the primary for as long as a replica lacks a
        // write would feed it at every interval, in every instance, for as long as a replica
        // is slow.
        let topo = self.snapshot();
        let lacks = |token: &rwsplit_core::CausalToken| {
            topo.node(node).is_some_and(|n| {
                n.role() == Role::Replica && n.position().is_none_or(|p| !token.is_satisfied_by(p))
            })
        };
        self.demand.with_wanted_token(now, lacks).unwrap_or(false)
    }

    /// Marks the cluster used at `now`: the adapter routed a statement or began a transaction.
    /// Probes run at the [interval](crate::MonitorConfig::probe_interval) while the cluster is used
    /// and slow to the [idle interval](crate::MonitorConfig::idle_probe_interval) once it has not
    /// been for that long; the first use after a pause wakes the probe loops, which probe at
    /// once if their usual turn has passed. One
    /// atomic load while uses come less than 50 ms apart.
    pub fn used(&self, now: Instant) {
        self.demand.used(now);
    }

    /// Whether the cluster was [used](Self::used) within `within` before `now` (its creation
    /// counts as a use).
    pub(crate) fn used_within(&self, now: Instant, within: Duration) -> bool {
        self.demand.used_within(now, within)
    }

    /// A future that completes at the next use that comes after a pause of at least 50 ms
    /// (see [`used`](Self::used)); like [`wanted`](Self::wanted), make it, check
    /// [`used_within`](Self::used_within), then await it.
    pub(crate) fn resumed(&self) -> tokio::sync::futures::Notified<'_> {
        self.demand.resumed()
    }

    /// Whether positions are wanted at `now`.
    pub fn positions_wanted_at(&self, now: Instant) -> bool {
        self.demand.positions_wanted_at(now)
    }

    /// A future that completes when a want for positions starts while none ran (see
    /// [`want_positions`](Self::want_positions)); like [`changed`](Self::changed), it counts
    /// from when it is made: make it, check [`positions_wanted_at`](Self::positions_wanted_at),
    /// then await it.
    pub(crate) fn wanted(&self) -> tokio::sync::futures::Notified<'_> {
        self.demand.wanted()
    }

    /// Moves the state's clock to `now` if that is later.
    fn tick(&self, now: Instant) {
        let mut clock = lock(&self.clock);
        if clock.is_none_or(|c| c < now) {
            *clock = Some(now);
        }
    }

    /// The one unfenced node whose latest probe saw a primary, with that observation.
    fn primary(&self) -> Option<(NodeId, Observation)> {
        let mut found = None;
        for (i, n, slot) in self.entries() {
            if !matches!(slot, Slot::Live | Slot::Joining) || self.is_fenced(i) {
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

    /// Whether no unfenced node's latest probe saw a primary (none answers as one: it died or
    /// is being replaced), as opposed to two claiming it (split brain).
    fn no_primary_claimed(&self) -> bool {
        self.entries().all(|(i, n, slot)| {
            !matches!(slot, Slot::Live | Slot::Joining)
                || self.is_fenced(i)
                || lock(&n.latest).as_ref().is_none_or(|o| o.role() != Role::Primary)
        })
    }

    /// A replica's lag from `server` (measured against primary `primary`'s latest observation,
    /// or unknown without one) and the primary's position history:
    /// - its time is the larger of the server's and the history's estimate at `now` (unknown
    ///   stays unknown, except for a replica that applies without saying how late it is: the
    ///   estimate then);
    /// - it is fresh as of the last time the primary was seen at a position the replica has
    ///   replayed ([`History::fresh_as_of`]), else unprovable. Bounded-staleness reads count
    ///   from that instant, so a replica's staleness grows while nothing new is learnt of the
    ///   primary, whatever the snapshot says.
    ///
    /// With `primary` given, only its own history counts (a new primary's starts empty).
    /// Without one (no node answers as the primary: it died, a switchover is under way), the
    /// last primary's history still proves what a replica holds of what it wrote: a replica
    /// that has all of it (the one being promoted) stays fresh as of the primary's last
    /// sighting, for as long as a bound allows. A replica on another timeline or system
    /// compares with none of it, so it is never proven fresh.
    fn reckon(
        &self,
        server: Lag,
        primary: Option<NodeId>,
        replica: &Observation,
        now: Option<Instant>,
    ) -> Lag {
        let history = lock(&self.history);
        let ours = match primary {
            Some(p) => history.node() == Some(p),
            None => history.node().is_some(),
        };
        let Some(replayed) = replica.position().filter(|_| ours) else {
            return server.unprovable();
        };
        let mut lag = server;
        // A replica that applies but did not say how late it is (a MariaDB probe that read no
        // status row, or whose `Seconds_Behind_Master` said 0 while it lacks a GTID: see
        // `product::mariadb`) is as late as its positions say.
        let silent = server.time().is_none() && replica.applying == Some(true);
        if let Some(now) = now
            && let Some(estimate) = history.lag(replayed, now)
            && (silent || server.time().is_some_and(|time| estimate > time))
        {
            lag = server.with_estimate(estimate);
        }
        match history.fresh_as_of(replayed) {
            Some(at) => lag.with_fresh_as_of(at),
            None => lag.unprovable(),
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
        self.supersede(&latest);
        let seen = |id: NodeId| latest.iter().find(|(i, _)| *i == id).and_then(|(_, o)| o.as_ref());
        let primaries: Vec<NodeId> = latest
            .iter()
            .filter(|(i, o)| {
                !self.is_fenced(*i) && matches!(o, Some(o) if o.role() == Role::Primary)
            })
            .map(|(i, _)| *i)
            .collect();
        let primary_obs = match primaries.as_slice() {
            [p] => seen(*p).map(|o| (*p, o)),
            _ => None,
        };
        let lag_of = |obs: &Observation| match (obs.role(), primary_obs) {
            (Role::Primary, _) => Lag::zero(),
            (Role::Replica, Some((p, p_obs))) => {
                self.reckon(crate::lag(p_obs, obs), Some(p), obs, now)
            }
            (Role::Replica, None) if primaries.is_empty() => {
                self.reckon(Lag::unknown(), None, obs, now)
            }
            // Two claim the primary role: nothing is proven against either.
            (Role::Replica, None) => Lag::unknown().unprovable(),
        };
        let joins: Vec<NodeId> = latest
            .iter()
            .filter(|(i, _)| self.slot(*i) == Slot::Joining)
            .filter_map(|(i, o)| o.as_ref().map(|o| (*i, o)))
            .filter(|(i, obs)| {
                let lag = lag_of(obs);
                obs.role() == Role::Primary
                    || lag.bytes() == Some(0)
                    || lag.time().is_some_and(|t| t <= self.join_lag)
                    || self.at(*i).is_some_and(|(n, _)| n.unvouched.load(Ordering::Relaxed))
            })
            .map(|(i, _)| i)
            .collect();
        self.republish_with(&joins, |i, n| {
            let b = n.to_builder();
            Some(match seen(i) {
                Some(obs) => b.role(obs.role()).position(obs.position().cloned()).lag(lag_of(obs)),
                None if n.role() == Role::Primary && !primaries.is_empty() => {
                    tracing::warn!(target: "rwsplit", node = %n.name(), "unreachable old primary: another node is primary now");
                    b.role(Role::Replica).lag(Lag::unknown())
                }
                None => b.lag(Lag::unknown()),
            })
        });
    }

    /// A position of primary `node` sampled at or after `at` (the earliest the primary's
    /// history keeps): at or past everything it had written at `at`. `None` if `node` is not
    /// the primary the history is of, or no sample that late is kept yet. A read on the
    /// primary that ended at `at` saw at most this, and replicas can reach it, unlike the
    /// primary's newest position.
    pub fn primary_position_since(&self, node: NodeId, at: Instant) -> Option<ReplayPosition> {
        lock(&self.history).since(node, at).cloned()
    }

    /// The newest position primary `node` was seen at by this monitor, and when (its last
    /// sample before it went silent, for a failover's bound on how far behind a candidate may
    /// be). `None` when the monitor's history is of another node or empty.
    pub fn primary_last_seen(&self, node: NodeId) -> Option<(ReplayPosition, Instant)> {
        lock(&self.history).newest(node).map(|(p, at)| (p.clone(), at))
    }

    /// Whether `node` is fenced: by hand or by a failover ([`set_fenced`](Self::set_fenced)),
    /// or [superseded](Self::is_superseded).
    pub fn is_fenced(&self, node: NodeId) -> bool {
        self.probed(node).is_some_and(|n| {
            n.fenced.load(Ordering::Relaxed) || n.superseded.load(Ordering::Relaxed)
        })
    }

    /// Whether `node` is a primary deposed by a promotion (by this process, another, an HA
    /// manager or by hand), derived from what the servers report, so that every process that
    /// has seen the promoted node agrees, a restarted one included, and no flag in one
    /// process's memory has to outlive it:
    ///
    /// - PostgreSQL: a primary on an older timeline than a node of the same system has been
    ///   seen on (a promotion starts a new one).
    /// - MariaDB: a writable server that a writable node was seen to have taken over from
    ///   (its slave position, what it last applied as a replica, holds a GTID this server
    ///   wrote), unless this server has since taken over again at a later sequence number.
    ///   A promoted node that never applied a GTID its old primary wrote (a failover before
    ///   that primary wrote anything of its own) names nobody: both stay primaries, a split
    ///   brain, and writes are refused.
    pub fn is_superseded(&self, node: NodeId) -> bool {
        self.probed(node).is_some_and(|n| n.superseded.load(Ordering::Relaxed))
    }

    /// Notes the epochs `latest` shows (timelines, takeovers), and marks each primary of an
    /// older epoch as superseded (clearing it on one that is not).
    fn supersede(&self, latest: &[(NodeId, Option<Observation>)]) {
        let pg = |o: &Observation| match o.position() {
            Some(ReplayPosition::Postgres(p)) => Some((p.system_id(), p.timeline())),
            _ => None,
        };
        let writable = |o: &&Observation| o.role() == Role::Primary;
        let mut epochs = lock(&self.epochs);
        for (system, timeline) in latest.iter().filter_map(|(_, o)| o.as_ref().and_then(pg)) {
            match epochs.iter_mut().find(|(s, _)| *s == system) {
                Some((_, newest)) => *newest = (*newest).max(timeline),
                None => epochs.push((system, timeline)),
            }
        }
        let mut takeovers = lock(&self.takeovers);
        let lineages =
            latest.iter().filter_map(|(_, o)| o.as_ref().filter(writable)?.lineage.as_ref());
        for (domain, server, seq) in lineages.flat_map(Lineage::took_over_from) {
            match takeovers.iter_mut().find(|(d, s, _)| (*d, *s) == (domain, server)) {
                Some((_, _, newest)) => *newest = (*newest).max(seq),
                None => {
                    if takeovers.len() == MAX_TAKEOVERS {
                        // The oldest takeover goes: it is the least likely to be undone.
                        let oldest = takeovers.iter().enumerate().min_by_key(|(_, t)| t.2);
                        let i = oldest.map_or(0, |(i, _)| i);
                        takeovers.swap_remove(i);
                    }
                    takeovers.push((domain, server, seq));
                }
            }
        }
        for (i, o) in latest {
            let Some(n) = self.probed(*i) else { continue };
            let primary = o.as_ref().filter(writable);
            let older_timeline = primary.and_then(pg).is_some_and(|(system, timeline)| {
                epochs.iter().any(|&(s, t)| s == system && t > timeline)
            });
            let taken_over = primary.and_then(|o| o.lineage.as_ref()).is_some_and(|l| {
                takeovers.iter().any(|&(d, s, seq)| s == l.server_id && seq > l.took_over_at(d))
            });
            let older = older_timeline || taken_over;
            // A node whose probe failed keeps what it was: nothing new is known of it.
            if o.is_some() && n.superseded.swap(older, Ordering::Relaxed) != older && older {
                let why = if older_timeline {
                    "a primary on an older timeline than another node's"
                } else {
                    "a primary that another node has taken over from (its GTID history)"
                };
                tracing::warn!(target: "rwsplit", node = %i, "{why}: superseded by a promotion, out of rotation");
            }
        }
    }

    /// Fences or unfences `node` and publishes the change at once; roles are rebuilt, so an
    /// unfenced node that still claims the primary role is a second primary. Returns whether it
    /// changed.
    pub fn set_fenced(&self, node: NodeId, fenced: bool) -> bool {
        let Some(n) = self.probed(node) else { return false };
        let changed = n.fenced.swap(fenced, Ordering::Relaxed) != fenced;
        if changed {
            self.rebuild(None);
        }
        changed
    }

    /// Publishes the next snapshot: each node with its tracker's health, changed by `edit` where
    /// it returns a builder.
    fn republish(&self, edit: impl Fn(NodeId, &Node) -> Option<NodeBuilder>) {
        self.republish_with(&[], edit);
    }

    /// [`republish`](Self::republish), with the joining nodes `joins` entering the snapshot
    /// (each from its template, through `edit`).
    fn republish_with(
        &self,
        joins: &[NodeId],
        edit: impl Fn(NodeId, &Node) -> Option<NodeBuilder>,
    ) {
        let _publishing = lock(&self.publish);
        let topo = self.topology.load_full();
        let mut next = topo.to_builder().generation(topo.generation().saturating_add(1));
        let mut joined = Vec::new();
        let mut changed = Vec::new();
        for &i in joins {
            let Some((n, Slot::Joining)) = self.at(i) else { continue };
            if let Some(template) = lock(&n.template).take() {
                // It joins on a successful probe, so it starts healthy: the failures of the
                // probes before its server took connections (a member Patroni lists while it
                // still restores its base backup) must not ban a node that never served.
                *lock(&n.tracker) = HealthTracker::new(template.role(), self.policy);
                n.probe_failures.store(0, Ordering::Relaxed);
                n.unvouched.store(false, Ordering::Relaxed);
                let stamp = Stamp { generation: i.generation(), slot: Slot::Live };
                n.stamp.store(stamp.pack(), Ordering::Release);
                joined.push(template);
            }
        }
        let nodes = topo.nodes().iter().filter(|n| self.slot(n.id()) == Slot::Live);
        for n in nodes.chain(joined.iter()) {
            let i = n.id();
            let health = self.at(i).map_or(n.health(), |(s, _)| lock(&s.tracker).health());
            let mut b = edit(i, n).unwrap_or_else(|| n.to_builder()).health(health);
            let fenced = self.is_fenced(i);
            if fenced {
                // Out of rotation for reads and writes alike, whatever it says it is.
                b = b.role(Role::Replica).health(Health::Down);
            }
            let built = b.build();
            let joins = joined.iter().any(|j| j.id() == n.id());
            if joins || built.health() != n.health() || built.role() != n.role() {
                changed.push(i);
                let what = if joins { "node joined" } else { "node changed" };
                if fenced {
                    // The role and health published only keep it out of rotation: a fenced
                    // primary is not a replica, so neither is logged.
                    tracing::warn!(target: "rwsplit", node = %n.name(), fenced = true, "{what}: fenced, out of rotation");
                } else {
                    tracing::warn!(target: "rwsplit", node = %n.name(), health = ?built.health(), role = ?built.role(), "{what}");
                }
            }
            next = next.node(built);
        }
        // Removed nodes are dropped here too, should a removal race this publication.
        for n in topo.nodes().iter().filter(|n| self.slot(n.id()) != Slot::Live) {
            changed.push(n.id());
            next = next.remove(n.id());
        }
        if let Ok(t) = next.build() {
            self.topology.store(t);
            for i in changed {
                self.announce(i);
            }
            self.published.notify_waiters();
        }
    }
}

/// [`TopologyState::add_node`] found every index taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no free node index: {max} nodes exist (removed nodes still draining count)")]
pub struct NoFreeIndex {
    max: usize,
}

impl NoFreeIndex {
    /// The bound: [`MAX_NODES`].
    pub fn max(&self) -> usize {
        self.max
    }
}

#[cfg(test)]
mod tests;
