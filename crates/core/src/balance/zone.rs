//! Zone preference: a filter in front of another balancer.
//!
//! Candidates in the local zone come first and the inner balancer chooses among them; the other
//! zones follow, in their given order, as fallbacks. If no candidate is local, the inner
//! balancer chooses among all. This is the simple form of Envoy's zone-aware routing (which also
//! spills over by capacity): stay in the zone while it can serve, never fail because of it.

use std::time::Instant;

use super::Balancer;
use crate::node_id::MAX_NODES;
use crate::topology::Node;

/// Prefers candidates in one zone, delegating the choice to an inner balancer.
///
/// # Algorithm
///
/// Zone preference: a filter in front of another balancer.
///
/// Candidates in the local zone come first and the inner balancer chooses among them; the other
/// zones follow, in their given order, as fallbacks. If no candidate is local, the inner
/// balancer chooses among all. This is the simple form of Envoy's zone-aware routing (which also
/// spills over by capacity): stay in the zone while it can serve, never fail because of it.
///
/// ```
/// use std::time::Instant;
/// use rwsplit_core::{Balancer, Node, NodeId, Role, RoundRobin, ZonePreference};
/// let far = Node::builder(NodeId::new(1), Role::Replica).zone("b").build();
/// let near = Node::builder(NodeId::new(2), Role::Replica).zone("a").build();
/// let zoned = ZonePreference::new("a", RoundRobin::default());
/// let mut c = [&far, &near];
/// zoned.order(&mut c, Instant::now());
/// assert_eq!(c.map(|n| n.id().index()), [2, 1]);
/// ```
#[derive(Debug)]
pub struct ZonePreference<B> {
    zone: Box<str>,
    inner: B,
}

impl<B: Balancer> ZonePreference<B> {
    /// Prefers `zone`, choosing with `inner`.
    #[must_use]
    pub fn new(zone: impl Into<Box<str>>, inner: B) -> Self {
        Self { zone: zone.into(), inner }
    }

    /// The preferred zone.
    #[must_use]
    pub fn zone(&self) -> &str {
        &self.zone
    }

    #[inline]
    fn is_local(&self, n: &Node) -> bool {
        // Zone names are short: an inline byte comparison beats a `memcmp` call.
        n.zone().is_some_and(|z| {
            z.len() == self.zone.len() && z.bytes().zip(self.zone.bytes()).all(|(a, b)| a == b)
        })
    }

    /// Moves local candidates to the front, keeping relative order; returns how many.
    fn partition(&self, candidates: &mut [&Node]) -> usize {
        super::partition(candidates, |c| self.is_local(c))
    }
}

impl<B: Balancer> Balancer for ZonePreference<B> {
    fn uses_latency(&self) -> bool {
        self.inner.uses_latency()
    }

    fn uses_weights(&self) -> bool {
        self.inner.uses_weights()
    }

    fn uses_zones(&self) -> bool {
        true
    }

    fn preferred_zone(&self) -> Option<&str> {
        Some(&self.zone)
    }

    fn pick(&self, candidates: &[&Node], now: Instant) -> Option<usize> {
        let first = *candidates.first()?;
        let mut local = [first; MAX_NODES];
        let mut index = [0usize; MAX_NODES];
        let mut k = 0;
        for (i, c) in candidates.iter().enumerate() {
            if self.is_local(c) && k < MAX_NODES {
                local[k] = c;
                index[k] = i;
                k += 1;
            }
        }
        if k == 0 {
            return self.inner.pick(candidates, now);
        }
        let j = self.inner.pick(local.get(..k)?, now)?;
        index.get(j).copied()
    }

    fn order(&self, candidates: &mut [&Node], now: Instant) {
        let k = self.partition(candidates);
        match candidates.get_mut(..k) {
            Some(local) if k > 0 => self.inner.order(local, now),
            _ => self.inner.order(candidates, now),
        }
    }
}
