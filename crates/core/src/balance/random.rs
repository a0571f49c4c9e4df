//! Uniform random choice with an injectable seed.
//!
//! The generator is SplitMix64 in an atomic, so picks are lock-free and a seeded balancer
//! replays the same sequence in a single-threaded test. pgcat and PgDog default to random.

use std::time::Instant;

use super::rng::SplitMix64;
use super::{Balancer, below};
use crate::topology::Node;

/// Uniformly random. Fallbacks: the candidates that follow the pick, wrapping.
///
/// # Algorithm
///
/// Uniform random choice with an injectable seed.
///
/// The generator is SplitMix64 in an atomic, so picks are lock-free and a seeded balancer
/// replays the same sequence in a single-threaded test. pgcat and PgDog default to random.
///
/// ```
/// use std::time::Instant;
/// use rwsplit_core::{Balancer, Node, NodeId, Random, Role};
/// let nodes: Vec<Node> = (1..=3).map(|i| Node::builder(NodeId::new(i), Role::Replica).build()).collect();
/// let c: Vec<&Node> = nodes.iter().collect();
/// let (a, b) = (Random::with_seed(42), Random::with_seed(42));
/// let now = Instant::now();
/// assert_eq!((0..8).map(|_| a.pick(&c, now)).collect::<Vec<_>>(), (0..8).map(|_| b.pick(&c, now)).collect::<Vec<_>>());
/// ```
#[derive(Debug)]
pub struct Random {
    rng: SplitMix64,
}

impl Default for Random {
    /// Seeded from the process's random hasher keys.
    fn default() -> Self {
        Self { rng: SplitMix64::from_entropy() }
    }
}

impl Random {
    /// A generator with a fixed seed, for reproducible tests.
    #[must_use]
    pub const fn with_seed(seed: u64) -> Self {
        Self { rng: SplitMix64::new(seed) }
    }
}

impl Balancer for Random {
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
        Some(below(self.rng.next_u64(), candidates.len()))
    }
}
