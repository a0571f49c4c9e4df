//! [`Learned`]: replay positions the adapter saw replicas reach on its own connections (a
//! catch-up wait that ended caught up), between two of the monitor's samples.
//!
//! The monitor samples a replica's position every position-feed interval (20 ms) at best; a
//! session that writes every few milliseconds is never known to be caught up from those alone.
//! A catch-up wait that ends caught up proves, at that moment, that the replica has replayed
//! the token it waited for; replay only moves forward, so later reads with that token (or an
//! older one) may go to that replica without waiting again. The proof is kept for
//! [`Learned::TTL`] only, and used only while the monitor shows the node as a replica that is
//! not down (a replica that crashed and restarted may come back behind what it had replayed).

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use rwsplit_core::{CausalToken, NodeId};

/// What each node was seen to have replayed, and when.
#[derive(Debug, Default)]
pub(crate) struct Learned {
    by_node: RwLock<HashMap<NodeId, (CausalToken, Instant)>>,
}

impl Learned {
    /// How long a proof is used: long enough to cover the monitor's next samples, short enough
    /// that a replica restarted meanwhile is seen down by the monitor first.
    pub(crate) const TTL: Duration = Duration::from_millis(500);

    /// `node` was seen, at `now`, to have replayed `token`.
    pub(crate) fn learn(&self, node: NodeId, token: &CausalToken, now: Instant) {
        let mut map = self.by_node.write().unwrap_or_else(PoisonError::into_inner);
        match map.get_mut(&node) {
            // The newer proof of the same history replaces the older; the maximum is kept.
            Some((had, at)) if now.duration_since(*at) < Self::TTL => {
                had.merge(token);
                *at = now;
            }
            _ => {
                map.insert(node, (token.clone(), now));
            }
        }
    }

    /// Whether `node` was seen within [`Learned::TTL`] of `now` to have replayed `token`.
    pub(crate) fn has(&self, node: NodeId, token: &CausalToken, now: Instant) -> bool {
        let map = self.by_node.read().unwrap_or_else(PoisonError::into_inner);
        map.get(&node).is_some_and(|(had, at)| {
            now.saturating_duration_since(*at) < Self::TTL && token.is_satisfied_by(had.position())
        })
    }

    /// Whether anything is known at all (a read skips the lookups while nothing is).
    pub(crate) fn is_empty(&self) -> bool {
        self.by_node.read().unwrap_or_else(PoisonError::into_inner).is_empty()
    }

    /// Forgets proofs older than [`Learned::TTL`] (the sweeper calls it).
    pub(crate) fn sweep(&self, now: Instant) {
        let mut map = self.by_node.write().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, (_, at)| now.saturating_duration_since(*at) < Self::TTL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(text: &str) -> CausalToken {
        text.parse().unwrap()
    }

    const N1: NodeId = NodeId::new(1);
    const N2: NodeId = NodeId::new(2);

    #[rstest::rstest]
    #[case::the_same_token(N1, "pg:1:7:1:0-100", 0, true)]
    #[case::an_older_token(N1, "pg:1:7:1:0-50", 0, true)]
    #[case::a_newer_token(N1, "pg:1:7:1:0-101", 0, false)]
    #[case::another_node(N2, "pg:1:7:1:0-100", 0, false)]
    #[case::another_timeline(N1, "pg:1:7:2:0-10", 0, false)]
    #[case::just_before_it_expires(N1, "pg:1:7:1:0-100", 499, true)]
    #[case::expired(N1, "pg:1:7:1:0-100", 500, false)]
    fn a_proof_covers_older_tokens_of_its_node_for_a_while(
        #[case] node: NodeId,
        #[case] asked: &str,
        #[case] later_ms: u64,
        #[case] proven: bool,
    ) {
        let learned = Learned::default();
        let t0 = Instant::now();
        learned.learn(N1, &token("pg:1:7:1:0-100"), t0);
        let at = t0 + Duration::from_millis(later_ms);
        assert_eq!(learned.has(node, &token(asked), at), proven);
    }

    #[test]
    fn proofs_merge_to_the_maximum_and_expire() {
        let learned = Learned::default();
        let t0 = Instant::now();
        learned.learn(N1, &token("pg:1:7:1:0-200"), t0);
        learned.learn(N1, &token("pg:1:7:1:0-100"), t0 + Duration::from_millis(10));
        assert!(learned.has(N1, &token("pg:1:7:1:0-200"), t0 + Duration::from_millis(20)));
        learned.sweep(t0 + Duration::from_secs(1));
        assert!(learned.is_empty());
    }
}
