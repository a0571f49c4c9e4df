//! Smooth weighted round robin, as in nginx (`ngx_http_upstream_round_robin.c`, 2012).
//!
//! Each node keeps a current weight. On each pick every candidate's current weight grows by its
//! configured weight, the candidate with the largest current weight is chosen, and its current
//! weight drops by the sum of the weights. Over `Σw` picks each node is chosen in proportion to
//! its weight, interleaved as evenly as possible (weights 5, 1, 1 give `a a b a c a a`, not
//! `a a a a a b c`). PgDog's `weighted_round_robin` uses the same algorithm.
//!
//! Current weights live in atomics indexed by node id, so concurrent picks never lock; under
//! contention the interleaving is approximate but the proportions hold. Nodes of weight 0 are
//! never chosen while another candidate has weight; if all have weight 0, plain round robin.

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicUsize, Ordering};
use std::time::Instant;

use super::Balancer;
use crate::node_id::MAX_NODES;
use crate::topology::Node;

/// Weighted round robin (nginx's smooth variant). Fallbacks: the candidates that follow.
///
/// # Algorithm
///
/// Smooth weighted round robin, as in nginx (`ngx_http_upstream_round_robin.c`, 2012).
///
/// Each node keeps a current weight. On each pick every candidate's current weight grows by its
/// configured weight, the candidate with the largest current weight is chosen, and its current
/// weight drops by the sum of the weights. Over `Σw` picks each node is chosen in proportion to
/// its weight, interleaved as evenly as possible (weights 5, 1, 1 give `a a b a c a a`, not
/// `a a a a a b c`). PgDog's `weighted_round_robin` uses the same algorithm.
///
/// Current weights live in atomics indexed by node id, so concurrent picks never lock; under
/// contention the interleaving is approximate but the proportions hold. Nodes of weight 0 are
/// never chosen while another candidate has weight; if all have weight 0, plain round robin.
/// A node that takes over an index (a later generation of the id) starts from no credit, not
/// from what the index's earlier node left.
///
/// ```
/// use std::time::Instant;
/// use rwsplit_core::{Balancer, Node, NodeId, Role, WeightedRoundRobin};
/// let a = Node::builder(NodeId::new(1), Role::Replica).weight(5).build();
/// let b = Node::builder(NodeId::new(2), Role::Replica).weight(1).build();
/// let c = Node::builder(NodeId::new(3), Role::Replica).weight(1).build();
/// let wrr = WeightedRoundRobin::default();
/// let picks: String = (0..7).map(|_| ["a", "b", "c"][wrr.pick(&[&a, &b, &c], Instant::now()).unwrap_or(0)]).collect();
/// assert_eq!(picks, "aabacaa");
/// ```
#[derive(Debug)]
pub struct WeightedRoundRobin {
    current: [AtomicI64; MAX_NODES],
    /// Whose credit `current[i]` is: the generation of the id at index `i`, plus one (0: none
    /// yet).
    owner: [AtomicU32; MAX_NODES],
    rr: AtomicUsize,
}

impl Default for WeightedRoundRobin {
    fn default() -> Self {
        Self {
            current: [const { AtomicI64::new(0) }; MAX_NODES],
            owner: [const { AtomicU32::new(0) }; MAX_NODES],
            rr: AtomicUsize::new(0),
        }
    }
}

impl WeightedRoundRobin {
    /// The current-weight slot of `node`, emptied first if an earlier node at its index left
    /// credit in it.
    fn slot(&self, node: &Node) -> Option<&AtomicI64> {
        let (slot, owner) =
            (self.current.get(node.id().index())?, self.owner.get(node.id().index())?);
        let me = u32::from(node.id().generation()) + 1;
        if owner.load(Ordering::Relaxed) != me {
            owner.store(me, Ordering::Relaxed);
            slot.store(0, Ordering::Relaxed);
        }
        Some(slot)
    }
}

impl Balancer for WeightedRoundRobin {
    fn uses_weights(&self) -> bool {
        true
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
        let total: i64 = candidates.iter().map(|n| i64::from(n.weight())).sum();
        if total == 0 {
            return Some(self.rr.fetch_add(1, Ordering::Relaxed) % candidates.len());
        }
        let mut best: Option<(usize, i64)> = None;
        for (i, n) in candidates.iter().enumerate() {
            let Some(slot) = self.slot(n) else { continue };
            let w = i64::from(n.weight());
            let cur = slot.fetch_add(w, Ordering::Relaxed).saturating_add(w);
            if w > 0 && best.is_none_or(|(_, b)| cur > b) {
                best = Some((i, cur));
            }
        }
        let (i, _) = best?;
        if let Some(slot) = candidates.get(i).and_then(|n| self.current.get(n.id().index())) {
            slot.fetch_sub(total, Ordering::Relaxed);
        }
        Some(i)
    }
}
