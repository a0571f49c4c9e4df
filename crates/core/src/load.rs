//! Live per-node load: requests in flight and a peak-EWMA latency estimate.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Live load of one node, shared across topology snapshots.
///
/// The estimate follows Finagle's and tower's peak EWMA (`tower::load::peak_ewma`): a new
/// round-trip time above the estimate replaces it at once (react to trouble immediately),
/// one below it is blended in with weight `1 - e^(-Δt/τ)`, and when read the estimate decays
/// towards zero with the same time constant, so an idle node that once was slow gets tried
/// again. τ defaults to 10 s, as in tower and Finagle.
///
/// A [`NodeLoad`] is shared (`Arc`) by every [`Topology`](crate::Topology) snapshot that holds
/// the node, so publishing a new snapshot does not reset it. Updates are lock-free atomics;
/// concurrent updates may lose an EWMA sample, which only makes the estimate a little older.
///
/// ```
/// use std::sync::Arc;
/// use std::time::{Duration, Instant};
/// use rwsplit_core::NodeLoad;
///
/// let load = Arc::new(NodeLoad::default());
/// let t0 = Instant::now();
/// let guard = load.start(t0);
/// assert_eq!(load.in_flight(), 1);
/// guard.finish(t0 + Duration::from_millis(4));
/// assert_eq!(load.in_flight(), 0);
/// assert_eq!(load.peak_ewma(t0 + Duration::from_millis(4)), Some(Duration::from_millis(4)));
/// ```
#[derive(Debug)]
pub struct NodeLoad {
    in_flight: AtomicU32,
    /// The estimate in nanoseconds, as `f64` bits; `u64::MAX` means none yet.
    ewma_bits: AtomicU64,
    /// When the estimate was last updated, in nanoseconds since `epoch`.
    stamp: AtomicU64,
    /// The first time passed in; all stamps are relative to it.
    epoch: OnceLock<Instant>,
    /// τ in nanoseconds.
    tau: f64,
}

const NONE: u64 = u64::MAX;

impl Default for NodeLoad {
    fn default() -> Self {
        Self::with_decay(Duration::from_secs(10))
    }
}

impl NodeLoad {
    /// A load tracker whose latency estimate decays with time constant `tau` (at least 1 ms).
    #[must_use]
    pub fn with_decay(tau: Duration) -> Self {
        let tau = tau.max(Duration::from_millis(1));
        Self {
            in_flight: AtomicU32::new(0),
            ewma_bits: AtomicU64::new(NONE),
            stamp: AtomicU64::new(0),
            epoch: OnceLock::new(),
            tau: tau.as_nanos() as f64,
        }
    }

    /// Requests currently in flight on the node.
    #[must_use]
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Marks a request as started at `now`; the guard marks it finished when dropped, and
    /// records its latency if finished with [`InFlight::finish`]. Cloning the `Arc` does not
    /// allocate.
    #[must_use = "the request counts as in flight only while the guard lives"]
    pub fn start(self: &Arc<Self>, now: Instant) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight { load: Arc::clone(self), started: now }
    }

    fn nanos_since_epoch(&self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_init(|| now);
        nanos_between(epoch, now)
    }

    /// Feeds a measured round-trip time observed at `now` (requests, or the monitor's probes).
    pub fn record_latency(&self, rtt: Duration, now: Instant) {
        let t = self.nanos_since_epoch(now);
        let rtt = rtt.as_nanos() as f64;
        let prev_stamp = self.stamp.swap(t, Ordering::Relaxed);
        let _ = self.ewma_bits.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
            let next = if bits == NONE {
                rtt
            } else {
                let cost = f64::from_bits(bits);
                if rtt > cost {
                    rtt
                } else {
                    let elapsed = t.saturating_sub(prev_stamp) as f64;
                    let decay = decay(elapsed / self.tau);
                    cost * decay + rtt * (1.0 - decay)
                }
            };
            Some(next.to_bits())
        });
    }

    /// The latency estimate decayed to `now`, or `None` before any sample.
    #[must_use]
    pub fn peak_ewma(&self, now: Instant) -> Option<Duration> {
        let ns = self.peak_ewma_nanos(now)?;
        Duration::try_from_secs_f64(ns / 1e9).ok()
    }

    /// The decayed estimate in nanoseconds (for balancers; no `Duration` rounding).
    pub(crate) fn peak_ewma_nanos(&self, now: Instant) -> Option<f64> {
        let bits = self.ewma_bits.load(Ordering::Relaxed);
        if bits == NONE {
            return None;
        }
        let cost = f64::from_bits(bits);
        let t = match self.epoch.get() {
            Some(epoch) => nanos_between(*epoch, now),
            None => return Some(cost),
        };
        let elapsed = t.saturating_sub(self.stamp.load(Ordering::Relaxed)) as f64;
        Some(cost * decay(elapsed / self.tau))
    }
}

/// Nanoseconds from `epoch` to `now`: 0 if `now` is earlier, `u64::MAX` if they do not fit
/// (the same as converting `as_nanos()`, without 128-bit arithmetic).
#[inline]
fn nanos_between(epoch: Instant, now: Instant) -> u64 {
    let d = now.saturating_duration_since(epoch);
    d.as_secs().saturating_mul(1_000_000_000).saturating_add(u64::from(d.subsec_nanos()))
}

/// `e^(-x)` for `x ≥ 0`. Between requests `x = Δt/τ` is usually tiny (microseconds over
/// seconds), where `1 - x + x²/2` is exact to 2·10⁻⁷ without a call into libm.
#[inline]
fn decay(x: f64) -> f64 {
    if x < 0.01 { 1.0 - x + x * x / 2.0 } else { (-x).exp() }
}

/// A request in flight on a node; see [`NodeLoad::start`].
#[derive(Debug)]
pub struct InFlight {
    load: Arc<NodeLoad>,
    started: Instant,
}

impl InFlight {
    /// When the request started.
    #[must_use]
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Ends the request at `now`, feeding its latency into the estimate. Dropping the guard
    /// without calling this (an error, a cancellation) only ends it.
    pub fn finish(self, now: Instant) {
        self.load.record_latency(now.saturating_duration_since(self.started), now);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.load.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn peaks_jump_up_and_decay_down() {
        let load = NodeLoad::default();
        let t0 = Instant::now();
        assert_eq!(load.peak_ewma(t0), None);
        load.record_latency(MS(10), t0);
        assert_eq!(load.peak_ewma(t0), Some(MS(10)));
        // A peak replaces the estimate at once.
        load.record_latency(MS(50), t0 + MS(1));
        assert_eq!(load.peak_ewma(t0 + MS(1)), Some(MS(50)));
        // A lower sample after τ is weighted 1 - 1/e.
        load.record_latency(MS(10), t0 + MS(1) + Duration::from_secs(10));
        let est = load.peak_ewma_nanos(t0 + MS(1) + Duration::from_secs(10)).unwrap_or_default();
        let want = 50e6 / std::f64::consts::E + 10e6 * (1.0 - 1.0 / std::f64::consts::E);
        assert!((est - want).abs() < 1.0, "{est} vs {want}");
        // Reading later decays towards zero.
        let later = load.peak_ewma_nanos(t0 + Duration::from_secs(1000)).unwrap_or(f64::MAX);
        assert!(later < 1.0);
    }

    #[test]
    fn guards_count_in_flight() {
        let load = Arc::new(NodeLoad::with_decay(Duration::ZERO));
        let t0 = Instant::now();
        let a = load.start(t0);
        let b = load.start(t0);
        assert_eq!(load.in_flight(), 2);
        assert_eq!(a.started(), t0);
        drop(a);
        assert_eq!(load.in_flight(), 1);
        b.finish(t0 + MS(3));
        assert_eq!(load.in_flight(), 0);
        assert_eq!(load.peak_ewma(t0 + MS(3)), Some(MS(3)));
    }

    #[test]
    fn time_going_backwards_is_harmless() {
        let load = NodeLoad::default();
        let t0 = Instant::now() + Duration::from_secs(5);
        load.record_latency(MS(5), t0);
        load.record_latency(MS(1), t0 - Duration::from_secs(1));
        assert!(load.peak_ewma(t0 - Duration::from_secs(2)).is_some());
    }
}
