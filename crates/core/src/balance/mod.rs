//! Choosing among eligible nodes: the [`Balancer`] trait and its policies.

mod least_outstanding;
mod lowest_lag;
mod peak_ewma;
mod random;
mod rng;
mod round_robin;
mod weighted;
mod zone;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

pub use least_outstanding::LeastOutstanding;
pub use lowest_lag::LowestLag;
pub use peak_ewma::PowerOfTwoEwma;
pub use random::Random;
pub use round_robin::RoundRobin;
pub use weighted::WeightedRoundRobin;
pub use zone::ZonePreference;

use crate::node_id::MAX_NODES;
use crate::topology::Node;

/// How [`BALANCERS`] makes a balancer: a fresh one with its defaults.
pub type MakeBalancer = fn() -> Box<dyn Balancer>;

/// The balancers a configuration can name, by the name files and `RWSPLIT_BALANCER` give them
/// (matched in any case), each with how to make one: adding a balancer is its module and a line
/// here. [`ZonePreference`] wraps one of these and is set by its own key (`prefer_zone`).
pub const BALANCERS: &[(&str, MakeBalancer)] = &[
    ("round_robin", || Box::new(RoundRobin::default())),
    ("weighted_round_robin", || Box::new(WeightedRoundRobin::default())),
    ("random", || Box::new(Random::default())),
    ("least_outstanding", || Box::new(LeastOutstanding::default())),
    ("power_of_two_ewma", || Box::new(PowerOfTwoEwma::default())),
    ("lowest_lag", || Box::new(LowestLag::default())),
];

/// A load-balancing policy over candidate nodes.
///
/// The router filters the topology down to the nodes a statement may use, then asks the
/// balancer to [order](Balancer::order) them: the first is the target, the rest the fallbacks
/// in order. Balancers read only the snapshot and the nodes' shared [`NodeLoad`]s, never lock,
/// never allocate, and keep their own state in atomics.
///
/// | policy | chooses | source |
/// | --- | --- | --- |
/// | [`RoundRobin`] | each in turn | classic; pgcat, PgDog `round_robin` |
/// | [`WeightedRoundRobin`] | in proportion to weight, smoothly interleaved | nginx smooth weighted round robin |
/// | [`Random`] | uniformly at random, seedable | pgcat/PgDog `random` |
/// | [`LeastOutstanding`] | fewest requests in flight | Envoy least request, pgcat `loc`, MaxScale `least_current_operations` |
/// | [`PowerOfTwoEwma`] | the better of two random nodes by peak-EWMA latency × load | tower `p2c` + `peak_ewma`, Finagle |
/// | [`LowestLag`] | least replication lag | MaxScale `least_behind_master`, Pgpool `prefer_lower_delay_standby` |
/// | [`ZonePreference`] | a wrapper: local-zone nodes first, others as fallback | Envoy zone-aware routing |
///
/// [`NodeLoad`]: crate::NodeLoad
///
/// Implement [`Balancer::pick`]; override [`Balancer::order`] to choose the fallback order
/// too (by default the pick comes first, followed by the candidates after it, wrapping
/// around). Both must not allocate, lock or panic: they run on every routed statement.
///
/// ```
/// use std::time::Instant;
/// use rwsplit_core::{Balancer, Node};
///
/// /// Always the heaviest node.
/// #[derive(Debug)]
/// struct Heaviest;
///
/// impl Balancer for Heaviest {
///     fn pick(&self, candidates: &[&Node], _now: Instant) -> Option<usize> {
///         (0..candidates.len()).max_by_key(|&i| candidates[i].weight())
///     }
/// }
///
/// use rwsplit_core::{NodeId, Role};
/// let a = Node::builder(NodeId::new(1), Role::Replica).weight(1).build();
/// let b = Node::builder(NodeId::new(2), Role::Replica).weight(5).build();
/// let mut c = [&a, &b];
/// Heaviest.order(&mut c, Instant::now());
/// assert_eq!(c[0].id(), NodeId::new(2));
/// ```
pub trait Balancer: Send + Sync + fmt::Debug {
    /// The index of the chosen candidate, or `None` if there is none to choose.
    fn pick(&self, candidates: &[&Node], now: Instant) -> Option<usize>;

    /// Orders `candidates` in place: the choice first, then the fallbacks in order.
    fn order(&self, candidates: &mut [&Node], now: Instant) {
        if let Some(i) = self.pick(candidates, now)
            && i < candidates.len()
        {
            candidates.rotate_left(i);
        }
    }

    /// Whether it reads the nodes' latency estimates ([`NodeLoad::peak_ewma`](crate::NodeLoad::peak_ewma)).
    /// When none of a router's balancers does, statements need not feed them (a sample costs
    /// an `exp` per statement). The default, `true`, is always correct.
    fn uses_latency(&self) -> bool {
        true
    }

    /// Whether it reads the nodes' weights ([`Node::weight`](crate::Node::weight)). Builders use it
    /// to warn about weights nothing reads. The default, `true`, is always correct.
    fn uses_weights(&self) -> bool {
        true
    }

    /// Whether it reads the nodes' zones ([`Node::zone`](crate::Node::zone)). Builders use it to
    /// warn about zones nothing reads. The default, `true`, is always correct.
    fn uses_zones(&self) -> bool {
        true
    }

    /// The zone it prefers, if it prefers one ([`ZonePreference`]).
    /// Builders use it to warn about a preferred zone no replica is in. The default: none.
    fn preferred_zone(&self) -> Option<&str> {
        None
    }
}

impl<B: Balancer + ?Sized> Balancer for Box<B> {
    fn pick(&self, candidates: &[&Node], now: Instant) -> Option<usize> {
        (**self).pick(candidates, now)
    }

    fn order(&self, candidates: &mut [&Node], now: Instant) {
        (**self).order(candidates, now);
    }

    fn uses_latency(&self) -> bool {
        (**self).uses_latency()
    }

    fn uses_weights(&self) -> bool {
        (**self).uses_weights()
    }

    fn uses_zones(&self) -> bool {
        (**self).uses_zones()
    }

    fn preferred_zone(&self) -> Option<&str> {
        (**self).preferred_zone()
    }
}

impl<B: Balancer + ?Sized> Balancer for Arc<B> {
    fn pick(&self, candidates: &[&Node], now: Instant) -> Option<usize> {
        (**self).pick(candidates, now)
    }

    fn order(&self, candidates: &mut [&Node], now: Instant) {
        (**self).order(candidates, now);
    }

    fn uses_latency(&self) -> bool {
        (**self).uses_latency()
    }

    fn uses_weights(&self) -> bool {
        (**self).uses_weights()
    }

    fn uses_zones(&self) -> bool {
        (**self).uses_zones()
    }

    fn preferred_zone(&self) -> Option<&str> {
        (**self).preferred_zone()
    }
}

/// Stable insertion sort of `candidates` by `key`. Allocation-free; keys are computed on the
/// fly (they are cheap field or atomic reads), and the sort terminates and cannot panic even if
/// a key changes while it runs (in-flight counts do).
pub(crate) fn sort_by_key<K: Ord>(candidates: &mut [&Node], key: impl Fn(&Node) -> K) {
    for i in 1..candidates.len() {
        let mut j = i;
        while j > 0 {
            let (Some(a), Some(b)) = (candidates.get(j - 1), candidates.get(j)) else { break };
            if key(a) <= key(b) {
                break;
            }
            candidates.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// Stable partition: candidates matching `keep` first, in order; returns how many. Adjacent
/// swaps rather than `rotate` (a `memmove` call): the slices are a handful of pointers.
pub(crate) fn partition(candidates: &mut [&Node], keep: impl Fn(&Node) -> bool) -> usize {
    let Some(&first) = candidates.first() else { return 0 };
    if candidates.len() > MAX_NODES {
        return partition_by_swaps(candidates, keep);
    }
    // Kept candidates are compacted in place (a write never overtakes the read); the others
    // wait in a stack buffer and are appended after them.
    let mut others = [first; MAX_NODES];
    let (mut k, mut r) = (0usize, 0usize);
    for i in 0..candidates.len() {
        let Some(&c) = candidates.get(i) else { break };
        if keep(c) {
            if let Some(slot) = candidates.get_mut(k) {
                *slot = c;
            }
            k += 1;
        } else {
            if let Some(slot) = others.get_mut(r) {
                *slot = c;
            }
            r += 1;
        }
    }
    if let Some(tail) = candidates.get_mut(k..) {
        for (slot, c) in tail.iter_mut().zip(others.iter()) {
            *slot = c;
        }
    }
    k
}

/// [`partition`] for lists longer than the stack buffer.
fn partition_by_swaps(candidates: &mut [&Node], keep: impl Fn(&Node) -> bool) -> usize {
    let mut k = 0;
    for i in 0..candidates.len() {
        if candidates.get(i).is_some_and(|c| keep(c)) {
            let mut j = i;
            while j > k {
                candidates.swap(j - 1, j);
                j -= 1;
            }
            k += 1;
        }
    }
    k
}

/// An unbiased index below `n` from 64 random bits (Lemire's multiply-shift).
#[inline]
pub(crate) fn below(bits: u64, n: usize) -> usize {
    let n = n as u64;
    // The high half of a 128-bit product is below `n`, so it fits.
    usize::try_from((u128::from(bits) * u128::from(n)) >> 64).unwrap_or(0)
}
