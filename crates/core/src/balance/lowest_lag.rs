//! Lowest replication lag: the freshest replica.
//!
//! Lag is compared in bytes first (exact when known), then in time; unknown lag sorts last.
//! Equal lags (typically several replicas at zero) are broken by a rotating start, so a caught-up
//! replica set is still balanced. MaxScale calls this `least_behind_master`, Pgpool-II
//! `prefer_lower_delay_standby`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{Balancer, sort_by_key};
use crate::topology::Node;

/// Least lag. Fallbacks: the rest by lag.
///
/// # Algorithm
///
/// Lowest replication lag: the freshest replica.
///
/// Lag is compared in bytes first (exact when known), then in time; unknown lag sorts last.
/// Equal lags (typically several replicas at zero) are broken by a rotating start, so a caught-up
/// replica set is still balanced. MaxScale calls this `least_behind_master`, Pgpool-II
/// `prefer_lower_delay_standby`.
///
/// ```
/// use std::time::Instant;
/// use rwsplit_core::{Balancer, Lag, LowestLag, Node, NodeId, Role};
/// let behind = Node::builder(NodeId::new(1), Role::Replica).lag(Lag::new(Some(1 << 20), None)).build();
/// let fresh = Node::builder(NodeId::new(2), Role::Replica).lag(Lag::new(Some(0), None)).build();
/// let unknown = Node::builder(NodeId::new(3), Role::Replica).build();
/// let mut c = [&unknown, &behind, &fresh];
/// LowestLag::default().order(&mut c, Instant::now());
/// assert_eq!(c.map(|n| n.id().index()), [2, 1, 3]);
/// ```
#[derive(Debug, Default)]
pub struct LowestLag {
    rotate: AtomicUsize,
}

fn key(n: &Node) -> (u64, Duration) {
    let lag = n.lag();
    (lag.bytes().unwrap_or(u64::MAX), lag.time().unwrap_or(Duration::MAX))
}

impl Balancer for LowestLag {
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
        let n = candidates.len();
        if n == 0 {
            return None;
        }
        let start = self.rotate.fetch_add(1, Ordering::Relaxed) % n;
        let mut best: Option<(usize, (u64, Duration))> = None;
        for k in 0..n {
            let i = (start + k) % n;
            let Some(c) = candidates.get(i) else { continue };
            let kk = key(c);
            if best.is_none_or(|(_, b)| kk < b) {
                best = Some((i, kk));
            }
        }
        best.map(|(i, _)| i)
    }

    fn order(&self, candidates: &mut [&Node], _now: Instant) {
        let n = candidates.len();
        if n == 0 {
            return;
        }
        candidates.rotate_left(self.rotate.fetch_add(1, Ordering::Relaxed) % n);
        sort_by_key(candidates, key);
    }
}
