//! Power of two random choices over peak-EWMA latency.
//!
//! Two distinct candidates are drawn at random and the one with the lower cost wins, where cost
//! is the node's peak-EWMA round-trip time times one plus its requests in flight. This is
//! tower's `p2c` balancer over its `PeakEwma` load (`tower::balance::p2c`,
//! `tower::load::peak_ewma`), after Finagle; the two-choice idea is Mitzenmacher's ("The Power
//! of Two Choices in Randomized Load Balancing", 2001): nearly the benefit of examining every
//! node, without herding onto whichever node looked best a moment ago. A node with no latency
//! sample yet costs `default_rtt`, so new nodes get traffic.

use std::time::{Duration, Instant};

use super::rng::SplitMix64;
use super::{Balancer, below};
use crate::topology::Node;

/// Power of two choices by peak-EWMA cost. Fallbacks: the other candidates, wrapping.
///
/// # Algorithm
///
/// Power of two random choices over peak-EWMA latency.
///
/// Two distinct candidates are drawn at random and the one with the lower cost wins, where cost
/// is the node's peak-EWMA round-trip time times one plus its requests in flight. This is
/// tower's `p2c` balancer over its `PeakEwma` load (`tower::balance::p2c`,
/// `tower::load::peak_ewma`), after Finagle; the two-choice idea is Mitzenmacher's ("The Power
/// of Two Choices in Randomized Load Balancing", 2001): nearly the benefit of examining every
/// node, without herding onto whichever node looked best a moment ago. A node with no latency
/// sample yet costs `default_rtt`, so new nodes get traffic.
///
/// ```
/// use std::time::{Duration, Instant};
/// use rwsplit_core::{Balancer, Node, NodeId, PowerOfTwoEwma, Role};
/// let now = Instant::now();
/// let slow = Node::builder(NodeId::new(1), Role::Replica).build();
/// let fast = Node::builder(NodeId::new(2), Role::Replica).build();
/// slow.load().record_latency(Duration::from_millis(50), now);
/// fast.load().record_latency(Duration::from_millis(1), now);
/// // With two candidates, both are always drawn: the faster wins.
/// let p2c = PowerOfTwoEwma::with_seed(7);
/// assert!((0..10).all(|_| p2c.pick(&[&slow, &fast], now) == Some(1)));
/// ```
#[derive(Debug)]
pub struct PowerOfTwoEwma {
    rng: SplitMix64,
    default_rtt: Duration,
}

impl Default for PowerOfTwoEwma {
    /// Seeded from entropy; `default_rtt` 1 ms.
    fn default() -> Self {
        Self { rng: SplitMix64::from_entropy(), default_rtt: Duration::from_millis(1) }
    }
}

impl PowerOfTwoEwma {
    /// A balancer with a fixed seed, for reproducible tests.
    #[must_use]
    pub fn with_seed(seed: u64) -> Self {
        Self { rng: SplitMix64::new(seed), ..Self::default() }
    }

    /// The latency assumed for a node with no sample yet.
    #[must_use]
    pub fn default_rtt(mut self, rtt: Duration) -> Self {
        self.default_rtt = rtt;
        self
    }

    fn cost(&self, n: &Node, now: Instant) -> f64 {
        let load = n.load();
        // The default is converted only when needed (a 128-bit to float conversion).
        let rtt = match load.peak_ewma_nanos(now) {
            Some(rtt) => rtt,
            None => self.default_rtt.as_nanos() as f64,
        };
        rtt * (f64::from(load.in_flight()) + 1.0)
    }
}

impl Balancer for PowerOfTwoEwma {
    fn uses_weights(&self) -> bool {
        false
    }

    fn uses_zones(&self) -> bool {
        false
    }

    fn pick(&self, candidates: &[&Node], now: Instant) -> Option<usize> {
        match candidates.len() {
            0 => None,
            1 => Some(0),
            n => {
                // One draw gives both indices: 32 random bits each are plenty for a few nodes.
                let r = self.rng.next_u64();
                let a = below(r << 32, n);
                let mut b = below(r & 0xffff_ffff_0000_0000, n - 1);
                if b >= a {
                    b += 1;
                }
                let (ca, cb) = (candidates.get(a)?, candidates.get(b)?);
                Some(if self.cost(cb, now) < self.cost(ca, now) { b } else { a })
            }
        }
    }
}
