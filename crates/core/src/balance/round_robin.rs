//! Round robin: each candidate in turn.
//!
//! A shared atomic counter indexes the candidate list, so the rotation is fair as long as the
//! list is stable; when filters change the list, the rotation simply continues over the new
//! one. This is the classic policy (pgcat, PgDog `round_robin`, Sequelize).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::Balancer;
use crate::topology::Node;

/// Each candidate in turn. Fallbacks: the candidates that follow, wrapping.
///
/// # Algorithm
///
/// Round robin: each candidate in turn.
///
/// A shared atomic counter indexes the candidate list, so the rotation is fair as long as the
/// list is stable; when filters change the list, the rotation simply continues over the new
/// one. This is the classic policy (pgcat, PgDog `round_robin`, Sequelize).
///
/// ```
/// use std::time::Instant;
/// use rwsplit_core::{Balancer, Node, NodeId, Role, RoundRobin};
/// let nodes: Vec<Node> = (1..=3).map(|i| Node::builder(NodeId::new(i), Role::Replica).build()).collect();
/// let c: Vec<&Node> = nodes.iter().collect();
/// let rr = RoundRobin::default();
/// let picks: Vec<_> = (0..4).map(|_| rr.pick(&c, Instant::now())).collect();
/// assert_eq!(picks, [Some(0), Some(1), Some(2), Some(0)]);
/// ```
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    /// A round robin starting at position `start`.
    #[must_use]
    pub fn starting_at(start: usize) -> Self {
        Self { next: AtomicUsize::new(start) }
    }
}

impl Balancer for RoundRobin {
    fn uses_weights(&self) -> bool {
        false
    }

    fn uses_zones(&self) -> bool {
        false
    }

    fn uses_latency(&self) -> bool {
        false
    }

    fn pick(&self, candidates: &[&Node], _now: Instant) -> Option<usize> {
        if candidates.is_empty() {
            return None;
        }
        Some(self.next.fetch_add(1, Ordering::Relaxed) % candidates.len())
    }
}
