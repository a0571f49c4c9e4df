//! What the readers ask of the monitor, kept apart from what the monitor knows of the nodes:
//! positions wanted until when, a write position wanted on the replicas, and when the cluster
//! was last used. The position feeds and the probe loops wait on it; the adapter writes it
//! ([`TopologyState::want_positions`](super::TopologyState::want_positions),
//! [`TopologyState::used`](super::TopologyState::used), …).
//!
//! Instants are stored in atomics as *marks*: nanoseconds after the state's creation, plus one
//! (0: never).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rwsplit_core::CausalToken;

use super::lock;

/// Uses closer together than this are one use to [`Demand::used`]: one atomic load while
/// statements keep coming.
const USE_GRAIN: Duration = Duration::from_millis(50);

/// The readers' demand on the monitor (see the module docs).
#[derive(Debug)]
pub(super) struct Demand {
    /// The origin of the marks.
    base: Instant,
    /// Until when readers want positions fresher than the full probes give (the position feed
    /// runs), as a mark (0: never asked).
    wanted: AtomicU64,
    /// Notified when a want starts while none was running ([`wanted`](Self::wanted)), or a
    /// replica's or a node's sample is newly wanted.
    wanting: tokio::sync::Notify,
    /// The newest write position readers will want a replica known to have
    /// ([`want_replayed_until`](Self::want_replayed_until)).
    wanted_token: Mutex<Option<CausalToken>>,
    /// Until when `wanted_token` is wanted, as a mark.
    token_until: AtomicU64,
    /// When the cluster was last used ([`used`](Self::used)), as a mark (its creation counts
    /// as a use).
    last_use: AtomicU64,
    /// Notified when a use comes after a pause ([`resumed`](Self::resumed)).
    resuming: tokio::sync::Notify,
}

impl Demand {
    /// No demand yet; used at its creation, now.
    pub(super) fn new() -> Demand {
        Demand {
            base: Instant::now(),
            wanted: AtomicU64::new(0),
            wanting: tokio::sync::Notify::new(),
            wanted_token: Mutex::new(None),
            token_until: AtomicU64::new(0),
            last_use: AtomicU64::new(1),
            resuming: tokio::sync::Notify::new(),
        }
    }

    /// The origin of the marks (tests place their instants after it).
    #[cfg(test)]
    pub(super) fn base(&self) -> Instant {
        self.base
    }

    /// `at` as a mark (an instant before the base is the base).
    pub(super) fn mark(&self, at: Instant) -> u64 {
        let nanos = u64::try_from(at.saturating_duration_since(self.base).as_nanos())
            .unwrap_or(u64::MAX - 1);
        nanos + 1
    }

    /// Whether the instant `stored` (a mark; 0: never) is at or after `at`.
    pub(super) fn at_or_after(&self, stored: u64, at: Instant) -> bool {
        let Some(nanos) = at.checked_duration_since(self.base) else { return stored > 0 };
        stored > 0 && u128::from(stored - 1) >= nanos.as_nanos()
    }

    /// Positions are wanted from `now` until `until`; one atomic load when the want already
    /// runs long enough.
    pub(super) fn want_positions(&self, now: Instant, until: Instant) {
        let until = self.mark(until);
        // Most asks come while a want runs with time to spare: one load, no write.
        let before = self.wanted.load(Ordering::Acquire);
        if before >= until {
            return;
        }
        let before = self.wanted.fetch_max(until, Ordering::AcqRel);
        if before <= self.mark(now) {
            // It had lapsed (or never ran): the feeds wait for this.
            self.wanting.notify_waiters();
        }
    }

    /// Whether positions are wanted at `now`.
    pub(super) fn positions_wanted_at(&self, now: Instant) -> bool {
        self.wanted.load(Ordering::Acquire) > self.mark(now)
    }

    /// `token` is wanted on the replicas until the mark `until` (tokens merge: the newest per
    /// history); the feeds are woken if it is new or wanted longer.
    pub(super) fn want_replayed_until(&self, token: &CausalToken, until: u64) {
        let grew = {
            let mut wanted = lock(&self.wanted_token);
            let merged = match wanted.as_ref() {
                Some(t) => t.clone().merged(token),
                None => token.clone(),
            };
            let grew = wanted.as_ref() != Some(&merged);
            *wanted = Some(merged);
            grew
        };
        let before = self.token_until.fetch_max(until, Ordering::AcqRel);
        // A new position, or a longer want: the replicas that had the last token, and the
        // idle feeds, wait for this one. The same token again within its want: nothing.
        if grew || before < until {
            self.wanting.notify_waiters();
        }
    }

    /// `f` of the write position wanted on the replicas at `now`; `None` if none is.
    pub(super) fn with_wanted_token<R>(
        &self,
        now: Instant,
        f: impl FnOnce(&CausalToken) -> R,
    ) -> Option<R> {
        if self.token_until.load(Ordering::Acquire) <= self.mark(now) {
            return None;
        }
        lock(&self.wanted_token).as_ref().map(f)
    }

    /// Wakes the feeds waiting for demand (a node's sample is newly wanted).
    pub(super) fn wake_feeds(&self) {
        self.wanting.notify_waiters();
    }

    /// A future that completes when demand starts while none ran; counts from when it is
    /// made.
    pub(super) fn wanted(&self) -> tokio::sync::futures::Notified<'_> {
        self.wanting.notified()
    }

    /// The cluster is used at `now`; one atomic load while uses come less than 50 ms apart.
    pub(super) fn used(&self, now: Instant) {
        let mark = self.mark(now);
        let grain = u64::try_from(USE_GRAIN.as_nanos()).unwrap_or(u64::MAX);
        let before = self.last_use.load(Ordering::Acquire);
        if before.saturating_add(grain) >= mark {
            return;
        }
        self.last_use.fetch_max(mark, Ordering::AcqRel);
        self.resuming.notify_waiters();
    }

    /// Whether the cluster was used within `within` before `now`.
    pub(super) fn used_within(&self, now: Instant, within: Duration) -> bool {
        let since = self.mark(now).saturating_sub(self.last_use.load(Ordering::Acquire));
        u128::from(since) <= within.as_nanos()
    }

    /// A future that completes at the next use after a pause; counts from when it is made.
    pub(super) fn resumed(&self) -> tokio::sync::futures::Notified<'_> {
        self.resuming.notified()
    }
}
