//! [`Watchdog`]: one task per connection that wakes when reads waiting on a node will have
//! waited that node's hedge delay ([`Pace::due`](crate::pace::Pace::due)), and wakes those
//! reads if the node has answered none of them since ([`Pace::check`](crate::pace::Pace::check)),
//! so that they are hedged.
//!
//! One interval timer for the whole connection, made once, re-aimed at the next such moment,
//! and parked while no read waits: a read registers no timer of its own (a statement's cost is
//! counted in instructions and timers), a node that answers promptly wakes it about once per
//! hedge delay, and an idle application wakes nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::connection::Inner;

/// The longest the watchdog sleeps between looks while reads wait, and the least.
const LONGEST: Duration = Duration::from_millis(100);
const SHORTEST: Duration = Duration::from_millis(2);
/// How many looks in a row with no read waiting before it parks.
const IDLE_LOOKS: u32 = 2;

/// Whether the watchdog is looking, and how a read wakes it.
#[derive(Debug, Default)]
pub(crate) struct Watchdog {
    awake: AtomicBool,
    wake: tokio::sync::Notify,
}

impl Watchdog {
    /// A read is about to wait on a replica: the watchdog looks from now on (one load while it
    /// is awake).
    pub(crate) fn ensure(&self) {
        if !self.awake.load(Ordering::Relaxed) && !self.awake.swap(true, Ordering::AcqRel) {
            self.wake.notify_one();
        }
    }

    /// Starts `dog`, the watchdog of `inner`'s connection (which may still be being built: it
    /// is looked at only once a read wakes the watchdog); it ends when the connection is
    /// dropped.
    pub(crate) fn spawn(dog: Arc<Watchdog>, inner: Weak<Inner>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(LONGEST);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                // Parked until a read wakes it (a permit stored meanwhile is not lost).
                if !dog.awake.load(Ordering::Acquire) {
                    dog.wake.notified().await;
                }
                let mut idle = 0;
                while idle < IDLE_LOOKS {
                    let next = {
                        let Some(inner) = inner.upgrade() else { return };
                        look(&inner, Instant::now())
                    };
                    idle = if next.is_some() { 0 } else { idle + 1 };
                    let now = Instant::now();
                    let next = next.unwrap_or(now + LONGEST).clamp(now + SHORTEST, now + LONGEST);
                    tick.reset_at(next.into());
                    tick.tick().await;
                }
                dog.awake.store(false, Ordering::Release);
            }
        });
    }
}

/// One look at every node at `now`: the reads waiting past their node's hedge delay are
/// woken; the next moment a read will have waited its node's hedge delay, if any waits.
fn look(inner: &Inner, now: Instant) -> Option<Instant> {
    let mut next: Option<Instant> = None;
    // The snapshot's nodes (those reads can be on), each looked up by id: cheaper than a walk
    // over the registry's every slot.
    let snap = inner.routing().snap();
    for id in snap.topology().nodes().iter().map(rwsplit_core::Node::id) {
        let Some(node) = inner.nodes().get(id) else { continue };
        if let Some(due) = node.pace().due() {
            if due <= now && node.pace().check(now) {
                // The reads waiting on it look again (their attempts watch the node).
                inner.routing().nudge(id);
                continue;
            }
            next = Some(next.map_or(due, |n| n.min(due)));
        }
    }
    next
}
