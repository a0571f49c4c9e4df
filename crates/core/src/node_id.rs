//! How a node is named everywhere: the generational [`NodeId`], and the bound on the nodes that
//! exist at once.

use std::fmt;

/// At most this many nodes in a topology (a primary and 31 replicas): node indices are below
/// it. Fixed so that routing can use small fixed-capacity buffers: no allocation, and a
/// [`Route`](crate::Route) with its fallbacks inline stays small. It bounds the nodes that exist
/// at once (live, joining or draining), never the nodes ever added: an index is reused, under a
/// new generation, once its node is gone.
pub const MAX_NODES: usize = 32;

/// A node's id: an index below [`MAX_NODES`] and a generation.
///
/// Whoever keeps a registry of nodes (the monitor's state, the adapter) hands out the
/// indices, and reuses one only with a higher generation once the node that had it is gone. So
/// an id held by an old plan, log line or metric never names a newer node: every lookup by id
/// ([`Topology::node`](crate::Topology::node), the registries' own) compares the generation, and an old id finds
/// nothing. `Copy`, four bytes.
///
/// Displayed as the index for generation 0 (every node configured at the start) and as
/// `index.generation` after that (`3.1`: the second node to hold index 3); `Debug` is the same
/// inside `NodeId(…)`.
///
/// ```
/// use rwsplit_core::NodeId;
/// let id = NodeId::new(3);
/// assert_eq!((id.index(), id.generation(), id.to_string()), (3, 0, "3".to_owned()));
/// let next = id.next_generation().unwrap();
/// assert_eq!((next.index(), next.generation(), next.to_string()), (3, 1, "3.1".to_owned()));
/// assert_ne!(next, id);
/// assert_eq!(NodeId::with_generation(3, 1), next);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    index: u16,
    generation: u16,
}

impl NodeId {
    /// The id at `index`, generation 0: a node that is the first to hold its index (every
    /// node a connection is configured with). A convenience for
    /// [`with_generation(index, 0)`](Self::with_generation).
    #[must_use]
    pub const fn new(index: u16) -> Self {
        Self { index, generation: 0 }
    }

    /// The id at `index`, generation `generation`.
    #[must_use]
    pub const fn with_generation(index: u16, generation: u16) -> Self {
        Self { index, generation }
    }

    /// The index: unique among the nodes that exist at once, reused after a node is gone.
    #[must_use]
    pub const fn index(self) -> usize {
        self.index as usize
    }

    /// The generation: how many nodes held this index before this one.
    #[must_use]
    pub const fn generation(self) -> u16 {
        self.generation
    }

    /// The id the next node at this index gets; `None` once the generations are used up (a
    /// registry then never reuses the index, rather than let an old id name a new node).
    #[must_use]
    pub const fn next_generation(self) -> Option<Self> {
        match self.generation.checked_add(1) {
            Some(generation) => Some(Self { index: self.index, generation }),
            None => None,
        }
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.generation {
            0 => self.index.fmt(f),
            g => write!(f, "{}.{g}", self.index),
        }
    }
}
