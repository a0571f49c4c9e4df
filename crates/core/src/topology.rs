//! What the router knows at an instant: an immutable snapshot of the nodes.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use arc_swap::Guard;

use crate::error::{Error, Result};
use crate::health::Health;
use crate::load::NodeLoad;
use crate::node_id::{MAX_NODES, NodeId};
use crate::role::Role;
use crate::token::ReplayPosition;

/// Replication lag, in bytes and in time; `None` is unknown.
///
/// Bytes and time are what was measured, as of the measurement. For bounded-staleness reads
/// what counts is the lag *now*: a replica that provably has every commit the primary made
/// before an instant (its [`fresh_as_of`](Lag::fresh_as_of)) is at most `now - that instant`
/// stale, and that figure keeps growing while nothing new is learnt (the primary stopped
/// answering, the application was cut off): see [`staleness_at`](Lag::staleness_at).
///
/// ```
/// use std::time::{Duration, Instant};
/// use rwsplit_core::Lag;
/// let lag = Lag::new(Some(4096), Some(Duration::from_millis(30)));
/// assert_eq!((lag.bytes(), lag.time()), (Some(4096), Some(Duration::from_millis(30))));
/// assert_eq!(Lag::unknown(), Lag::default());
///
/// // The monitor's estimate from the primary's positions replaces the time; the server's own
/// // figure stays readable.
/// let estimated = lag.with_estimate(Duration::from_millis(400));
/// assert_eq!(estimated.time(), Some(Duration::from_millis(400)));
/// assert_eq!(estimated.reported_time(), Some(Duration::from_millis(30)));
///
/// // Caught up with the primary's position seen at `t`: fresh as of `t`, and staler by the
/// // time that passes without news.
/// let t = Instant::now();
/// let lag = Lag::zero().with_fresh_as_of(t);
/// assert_eq!(lag.staleness_at(t + Duration::from_millis(700)), Some(Duration::from_millis(700)));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Lag {
    bytes: Option<u64>,
    time: Option<Duration>,
    /// The time the server itself reported, where an estimate replaced it in `time`.
    reported: Option<Duration>,
    fresh: Fresh,
}

/// What is known of a lag's freshness now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
enum Fresh {
    /// Nothing beyond the measured time (a lag built by hand, or the primary's zero).
    #[default]
    AsMeasured,
    /// Every commit made before this instant is there.
    Since(Instant),
    /// No instant can be proven (the replica is behind everything the monitor has seen of the
    /// primary): the measured time is a lower bound, not a bound.
    Unprovable,
}

impl Lag {
    /// A lag.
    #[must_use]
    pub const fn new(bytes: Option<u64>, time: Option<Duration>) -> Self {
        Self { bytes, time, reported: time, fresh: Fresh::AsMeasured }
    }

    /// Unknown in both units.
    #[must_use]
    pub const fn unknown() -> Self {
        Self { bytes: None, time: None, reported: None, fresh: Fresh::AsMeasured }
    }

    /// No lag (the primary, or a replica known to be caught up).
    #[must_use]
    pub const fn zero() -> Self {
        Self {
            bytes: Some(0),
            time: Some(Duration::ZERO),
            reported: Some(Duration::ZERO),
            fresh: Fresh::AsMeasured,
        }
    }

    /// The same lag with `time` estimated otherwise (the monitor's, from the primary's
    /// positions and when it saw them), the server's own figure kept as
    /// [`reported_time`](Lag::reported_time).
    #[must_use]
    pub const fn with_estimate(mut self, time: Duration) -> Self {
        self.time = Some(time);
        self
    }

    /// The same lag, known to hold every commit the primary made before `at` (the monitor sets
    /// it from the primary's positions and when it saw them).
    #[must_use]
    pub const fn with_fresh_as_of(mut self, at: Instant) -> Self {
        self.fresh = Fresh::Since(at);
        self
    }

    /// The same lag, with no instant it can be proven fresh as of: its measured time is only a
    /// lower bound, and a bounded-staleness read does not use it ([`staleness_at`] is `None`).
    ///
    /// [`staleness_at`]: Lag::staleness_at
    #[must_use]
    pub const fn unprovable(mut self) -> Self {
        self.fresh = Fresh::Unprovable;
        self
    }

    /// Bytes of replication stream not yet replayed, if known.
    #[must_use]
    pub const fn bytes(&self) -> Option<u64> {
        self.bytes
    }

    /// How far behind in time, as measured, if known.
    #[must_use]
    pub const fn time(&self) -> Option<Duration> {
        self.time
    }

    /// How far behind in time the server itself reported, if it did (PostgreSQL: since the
    /// last replayed commit was made, while something waits; MariaDB: `Seconds_Behind_Master`):
    /// the [`time`](Lag::time) before an estimate from the primary's positions replaced it.
    /// Unlike that estimate, whose grain is the primary's samples, it does not grow between
    /// samples of a replica a few milliseconds behind.
    #[must_use]
    pub const fn reported_time(&self) -> Option<Duration> {
        self.reported
    }

    /// The instant before which the node provably has every commit of the primary, if known.
    #[must_use]
    pub const fn fresh_as_of(&self) -> Option<Instant> {
        match self.fresh {
            Fresh::Since(at) => Some(at),
            Fresh::AsMeasured | Fresh::Unprovable => None,
        }
    }

    /// How stale the node can be at `now`, at most: `now - fresh_as_of` when that instant is
    /// known (growing while nothing new is learnt); `None` when it is
    /// [unprovable](Lag::unprovable); else (a lag built by hand, the primary's
    /// [`zero`](Lag::zero)) the measured [`time`](Lag::time). The monitor sets one of the first
    /// two for every replica and leaves the measured time alone, for metrics and lag bans.
    #[must_use]
    #[inline]
    pub fn staleness_at(&self, now: Instant) -> Option<Duration> {
        match self.fresh {
            Fresh::Since(at) => Some(now.saturating_duration_since(at)),
            Fresh::Unprovable => None,
            Fresh::AsMeasured => self.time,
        }
    }
}

/// One node as of a snapshot. Built with [`Node::builder`].
///
/// ```
/// use std::time::Duration;
/// use rwsplit_core::{Health, Lag, Node, NodeId, Role};
/// let n = Node::builder(NodeId::new(1), Role::Replica)
///     .name("pg-replica-1")
///     .health(Health::Up)
///     .lag(Lag::new(Some(0), Some(Duration::ZERO)))
///     .zone("eu-west-1a")
///     .tag("analytics")
///     .weight(2)
///     .build();
/// assert_eq!((n.id(), n.role(), n.zone(), n.weight()), (NodeId::new(1), Role::Replica, Some("eu-west-1a"), 2));
/// assert!(n.has_tag("analytics"));
/// ```
#[derive(Clone, Debug)]
pub struct Node {
    id: NodeId,
    name: Box<str>,
    role: Role,
    health: Health,
    position: Option<ReplayPosition>,
    lag: Lag,
    zone: Option<Box<str>>,
    tags: Box<[Box<str>]>,
    weight: u32,
    load: Arc<NodeLoad>,
}

impl Node {
    /// A builder for node `id` with role `role`: healthy, unknown lag and position, weight 1,
    /// a fresh [`NodeLoad`].
    pub fn builder(id: NodeId, role: Role) -> NodeBuilder {
        NodeBuilder {
            node: Node {
                id,
                name: Box::from(""),
                role,
                health: Health::Up,
                position: None,
                lag: Lag::unknown(),
                zone: None,
                tags: Box::new([]),
                weight: 1,
                load: Arc::new(NodeLoad::default()),
            },
        }
    }

    /// A builder starting from this node (same load tracker), to derive the next snapshot.
    pub fn to_builder(&self) -> NodeBuilder {
        NodeBuilder { node: self.clone() }
    }

    /// The id.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The name, for logs (never credentials).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// The health state.
    #[must_use]
    pub fn health(&self) -> Health {
        self.health
    }

    /// Whether it may serve reads: a replica that is not [`Health::Down`] (`Suspect` ones
    /// after the `Up` ones). The one statement of it: every part that asks which nodes a read
    /// could use asks this.
    ///
    /// ```
    /// use rwsplit_core::{Health, Node, NodeId, Role};
    /// let replica = |h| Node::builder(NodeId::new(1), Role::Replica).health(h).build();
    /// assert!(replica(Health::Suspect).serves_reads());
    /// assert!(!replica(Health::Down).serves_reads());
    /// assert!(!Node::builder(NodeId::new(0), Role::Primary).build().serves_reads());
    /// ```
    #[must_use]
    pub fn serves_reads(&self) -> bool {
        self.role == Role::Replica && self.health != Health::Down
    }

    /// The replayed (replica) or written (primary) position, if known.
    #[must_use]
    pub fn position(&self) -> Option<&ReplayPosition> {
        self.position.as_ref()
    }

    /// The replication lag.
    #[must_use]
    pub fn lag(&self) -> Lag {
        self.lag
    }

    /// The zone, if any.
    #[must_use]
    pub fn zone(&self) -> Option<&str> {
        self.zone.as_deref()
    }

    /// The tags.
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.tags.iter().map(|t| &**t)
    }

    /// Whether the node carries `tag`.
    #[must_use]
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| **t == *tag)
    }

    /// The weight for weighted balancing (0: never chosen by weight).
    #[must_use]
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// The live load, shared across snapshots.
    #[must_use]
    pub fn load(&self) -> &Arc<NodeLoad> {
        &self.load
    }
}

/// Builder for [`Node`].
#[derive(Debug)]
#[must_use]
pub struct NodeBuilder {
    node: Node,
}

impl NodeBuilder {
    /// The name for logs.
    pub fn name(mut self, name: impl Into<Box<str>>) -> Self {
        self.node.name = name.into();
        self
    }

    /// The role.
    pub fn role(mut self, role: Role) -> Self {
        self.node.role = role;
        self
    }

    /// The health state.
    pub fn health(mut self, health: Health) -> Self {
        self.node.health = health;
        self
    }

    /// The replayed or written position.
    pub fn position(mut self, position: impl Into<Option<ReplayPosition>>) -> Self {
        self.node.position = position.into();
        self
    }

    /// The replication lag.
    pub fn lag(mut self, lag: Lag) -> Self {
        self.node.lag = lag;
        self
    }

    /// The zone.
    pub fn zone(mut self, zone: impl Into<Box<str>>) -> Self {
        self.node.zone = Some(zone.into());
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<Box<str>>) -> Self {
        let mut tags = std::mem::take(&mut self.node.tags).into_vec();
        tags.push(tag.into());
        self.node.tags = tags.into_boxed_slice();
        self
    }

    /// Replaces every tag with `tags`.
    pub fn tags<I, T>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<Box<str>>,
    {
        self.node.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// The weight.
    pub fn weight(mut self, weight: u32) -> Self {
        self.node.weight = weight;
        self
    }

    /// Shares an existing load tracker (e.g. the one of the previous snapshot).
    pub fn load(mut self, load: Arc<NodeLoad>) -> Self {
        self.node.load = load;
        self
    }

    /// The node.
    #[must_use]
    pub fn build(self) -> Node {
        self.node
    }
}

/// Who the primary is, computed once per snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Primary {
    None,
    One(usize),
    Many(usize),
}

/// An immutable snapshot of the nodes. Built with [`Topology::builder`].
///
/// The monitor builds a new [`Topology`] whenever it learns something and publishes it through
/// a [`SharedTopology`]; readers load the current snapshot without locking (`arc-swap`) and
/// route against it. Live per-request data (requests in flight, latency) is not copied into
/// snapshots: each [`Node`] points at its node's shared [`NodeLoad`].
///
/// ```
/// use rwsplit_core::{Node, NodeId, Role, Topology};
/// let topology = Topology::builder()
///     .node(Node::builder(NodeId::new(0), Role::Primary).name("primary").build())
///     .node(Node::builder(NodeId::new(1), Role::Replica).name("replica-1").build())
///     .build()?;
/// assert_eq!(topology.primary().map(|n| n.name()), Some("primary"));
/// assert_eq!(topology.replicas().count(), 1);
/// let next = topology.to_builder().build()?;
/// assert_eq!(next.generation(), topology.generation() + 1);
/// # Ok::<(), rwsplit_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Topology {
    generation: u64,
    /// Sorted by id.
    nodes: Box<[Node]>,
    /// By an id's index: 1 + the node's position in `nodes`, 0 for none (a lookup by id is an
    /// array read, not a search: a statement looks nodes up several times).
    at: [u8; MAX_NODES],
    primary: Primary,
}

impl Default for Topology {
    /// An empty topology: no primary, no replicas.
    fn default() -> Self {
        Self { generation: 0, nodes: Box::new([]), at: [0; MAX_NODES], primary: Primary::None }
    }
}

impl Topology {
    /// A builder for an empty topology at generation 0.
    pub fn builder() -> TopologyBuilder {
        TopologyBuilder { generation: 0, nodes: Vec::new() }
    }

    /// A builder with this snapshot's nodes (sharing their load trackers), at the next
    /// generation.
    pub fn to_builder(&self) -> TopologyBuilder {
        TopologyBuilder { generation: self.generation.wrapping_add(1), nodes: self.nodes.to_vec() }
    }

    /// The snapshot's generation, incremented by [`Topology::to_builder`].
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Every node, sorted by id.
    #[must_use]
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The node with id `id`: the same index and the same generation (an id of a node that
    /// is gone finds nothing, even when a newer node holds its index).
    #[must_use]
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        let at = usize::from(*self.at.get(id.index())?).checked_sub(1)?;
        self.nodes.get(at).filter(|n| n.id == id)
    }

    /// The primary, if exactly one node claims the role.
    #[must_use]
    pub fn primary(&self) -> Option<&Node> {
        match self.primary {
            Primary::One(i) => self.nodes.get(i),
            _ => None,
        }
    }

    /// How many nodes claim the primary role (more than one is split brain).
    #[must_use]
    pub fn primary_count(&self) -> usize {
        match self.primary {
            Primary::None => 0,
            Primary::One(_) => 1,
            Primary::Many(n) => n,
        }
    }

    pub(crate) fn primary_state(&self) -> Primary {
        self.primary
    }

    /// The replicas, in id order.
    pub fn replicas(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.role == Role::Replica)
    }
}

/// Builder for [`Topology`].
#[derive(Debug)]
#[must_use]
pub struct TopologyBuilder {
    generation: u64,
    nodes: Vec<Node>,
}

impl TopologyBuilder {
    /// The generation number.
    pub fn generation(mut self, generation: u64) -> Self {
        self.generation = generation;
        self
    }

    /// Adds a node, replacing any node with the same id.
    pub fn node(mut self, node: Node) -> Self {
        match self.nodes.iter_mut().find(|n| n.id == node.id) {
            Some(slot) => *slot = node,
            None => self.nodes.push(node),
        }
        self
    }

    /// Removes the node with id `id`, if present.
    pub fn remove(mut self, id: NodeId) -> Self {
        self.nodes.retain(|n| n.id != id);
        self
    }

    /// The snapshot.
    ///
    /// # Errors
    ///
    /// [`Error::NodeIdOutOfRange`] if an index is not below [`MAX_NODES`];
    /// [`Error::DuplicateNodeId`] if two nodes have the same index (whatever their
    /// generations: one index is one node at a time).
    pub fn build(self) -> Result<Topology> {
        let mut nodes = self.nodes;
        nodes.sort_by_key(|n| n.id);
        for pair in nodes.windows(2) {
            if let [a, b] = pair
                && a.id.index() == b.id.index()
            {
                return Err(Error::DuplicateNodeId { id: a.id });
            }
        }
        if let Some(n) = nodes.iter().find(|n| n.id.index() >= MAX_NODES) {
            return Err(Error::NodeIdOutOfRange { id: n.id, max: MAX_NODES });
        }
        let mut primary = Primary::None;
        for (i, n) in nodes.iter().enumerate() {
            if n.role == Role::Primary {
                primary = match primary {
                    Primary::None => Primary::One(i),
                    Primary::One(_) => Primary::Many(2),
                    Primary::Many(k) => Primary::Many(k + 1),
                };
            }
        }
        let mut at = [0u8; MAX_NODES];
        for (i, n) in nodes.iter().enumerate() {
            // Indices are unique and below MAX_NODES (checked above), so at most MAX_NODES
            // positions, each below u8::MAX.
            if let (Some(slot), Ok(pos)) = (at.get_mut(n.id.index()), u8::try_from(i + 1)) {
                *slot = pos;
            }
        }
        Ok(Topology { generation: self.generation, nodes: nodes.into_boxed_slice(), at, primary })
    }
}

/// The current [`Topology`], swapped atomically: readers never lock or wait.
///
/// ```
/// use rwsplit_core::{Node, NodeId, Role, SharedTopology, Topology};
/// let shared = SharedTopology::new(Topology::default());
/// assert!(shared.load().primary().is_none());
/// let next = shared.load().to_builder().node(Node::builder(NodeId::new(0), Role::Primary).build()).build()?;
/// shared.store(next);
/// assert_eq!(shared.load().generation(), 1);
/// # Ok::<(), rwsplit_core::Error>(())
/// ```
#[derive(Debug)]
pub struct SharedTopology {
    current: ArcSwap<Topology>,
}

impl Default for SharedTopology {
    fn default() -> Self {
        Self::new(Topology::default())
    }
}

impl SharedTopology {
    /// Starts with `topology`.
    #[must_use]
    pub fn new(topology: Topology) -> Self {
        Self { current: ArcSwap::from_pointee(topology) }
    }

    /// The current snapshot, cheaply (no reference count traffic in the common case). Hold the
    /// guard only briefly; use [`SharedTopology::load_full`] to keep a snapshot across awaits.
    #[must_use]
    pub fn load(&self) -> TopologyGuard {
        TopologyGuard(self.current.load())
    }

    /// The current snapshot as an `Arc`.
    #[must_use]
    pub fn load_full(&self) -> Arc<Topology> {
        self.current.load_full()
    }

    /// Publishes a new snapshot.
    pub fn store(&self, topology: Topology) {
        self.current.store(Arc::new(topology));
    }

    /// Publishes a new snapshot and returns the previous one.
    pub fn swap(&self, topology: Topology) -> Arc<Topology> {
        self.current.swap(Arc::new(topology))
    }
}

/// A loaded snapshot; see [`SharedTopology::load`].
pub struct TopologyGuard(Guard<Arc<Topology>>);

impl Deref for TopologyGuard {
    type Target = Topology;

    fn deref(&self) -> &Topology {
        &self.0
    }
}

impl fmt::Debug for TopologyGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TopologyGuard").field(&**self).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u16, role: Role) -> Node {
        Node::builder(NodeId::new(id), role).build()
    }

    #[test]
    fn builds_sorted_and_finds_nodes() {
        let t = Topology::builder()
            .node(node(3, Role::Replica))
            .node(node(0, Role::Primary))
            .node(node(1, Role::Replica))
            .build()
            .unwrap();
        let ids: Vec<_> = t.nodes().iter().map(|n| n.id().index()).collect();
        assert_eq!(ids, [0, 1, 3]);
        assert_eq!(t.node(NodeId::new(3)).map(Node::role), Some(Role::Replica));
        assert!(t.node(NodeId::new(2)).is_none());
        assert_eq!(t.primary_count(), 1);
        assert_eq!(t.replicas().count(), 2);
    }

    #[test]
    fn rejects_bad_ids() {
        // `TopologyBuilder::node` replaces, so only a hand-made builder can hold duplicates.
        let dup = TopologyBuilder {
            generation: 0,
            nodes: vec![node(1, Role::Replica), node(1, Role::Primary)],
        };
        assert_eq!(dup.build().unwrap_err(), Error::DuplicateNodeId { id: NodeId::new(1) });
        let far = Topology::builder().node(node(32, Role::Replica)).build().unwrap_err();
        assert_eq!(far, Error::NodeIdOutOfRange { id: NodeId::new(32), max: 32 });
    }

    #[test]
    fn lookups_compare_the_generation() {
        let old = NodeId::new(1);
        let new = old.next_generation().unwrap();
        let t = Topology::builder()
            .node(node(0, Role::Primary))
            .node(Node::builder(new, Role::Replica).build())
            .build()
            .unwrap();
        assert_eq!(t.node(new).map(Node::id), Some(new));
        assert!(t.node(old).is_none(), "an id of the index's previous node finds nothing");
        let both = Topology::builder()
            .node(Node::builder(old, Role::Replica).build())
            .node(Node::builder(new, Role::Replica).build())
            .build()
            .unwrap_err();
        assert_eq!(both, Error::DuplicateNodeId { id: old });
        assert_eq!(NodeId::with_generation(4, u16::MAX).next_generation(), None);
        assert_eq!(NodeId::with_generation(4, 2).to_string(), "4.2");
        assert_eq!(format!("{:?}", NodeId::with_generation(4, 2)), "NodeId(4.2)");
        assert_eq!(format!("{:?}", NodeId::new(4)), "NodeId(4)");
    }

    #[test]
    fn node_replaces_same_id_and_remove_drops() {
        let t = Topology::builder()
            .node(node(1, Role::Replica))
            .node(node(1, Role::Primary))
            .node(node(2, Role::Replica))
            .remove(NodeId::new(2))
            .build()
            .unwrap();
        assert_eq!(t.nodes().len(), 1);
        assert_eq!(t.primary().map(Node::id), Some(NodeId::new(1)));
    }

    #[test]
    fn split_brain_and_no_primary() {
        let t = Topology::builder()
            .node(node(0, Role::Primary))
            .node(node(1, Role::Primary))
            .build()
            .unwrap();
        assert!(t.primary().is_none());
        assert_eq!(t.primary_count(), 2);
        let t = Topology::builder().node(node(1, Role::Replica)).build().unwrap();
        assert_eq!(t.primary_count(), 0);
    }

    #[test]
    fn loads_survive_new_snapshots() {
        let t = Topology::builder().node(node(1, Role::Replica)).build().unwrap();
        let next = t
            .to_builder()
            .node(t.node(NodeId::new(1)).unwrap().to_builder().health(Health::Down).build())
            .build()
            .unwrap();
        let (a, b) = (t.node(NodeId::new(1)).unwrap(), next.node(NodeId::new(1)).unwrap());
        assert!(Arc::ptr_eq(a.load(), b.load()));
        assert_eq!(b.health(), Health::Down);
        assert_eq!(next.generation(), 1);
    }

    #[test]
    fn shared_topology_swaps() {
        let shared = SharedTopology::default();
        let old = shared.swap(Topology::builder().generation(7).build().unwrap());
        assert_eq!(old.generation(), 0);
        assert_eq!(shared.load_full().generation(), 7);
        assert!(format!("{:?}", shared.load()).contains("generation: 7"));
    }
}
