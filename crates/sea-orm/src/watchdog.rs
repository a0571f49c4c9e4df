//! [`Watchdog`]: one task per connection that looks at its nodes every [`TICK`] while reads
//! are in flight, and wakes the reads waiting on a node that has been silent past its hedge
//! delay ([`Pace::check`](crate::pace::Pace::check)), so that they are hedged.
//!
//! One interval timer for the whole connection, made once and parked while no read is in
//! flight: a read registers no timer of its own (a statement's cost is counted in instructions
//! and timers), and an idle application wakes nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::connection::Inner;

/// How often the watchdog looks while reads are in flight.
pub(crate) const TICK: Duration = Duration::from_millis(5);
/// How many looks in a row with nothing in flight before it parks.
const IDLE_LOOKS: u32 = 40;

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
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                // Parked until a read wakes it (a permit stored meanwhile is not lost).
                if !dog.awake.load(Ordering::Acquire) {
                    dog.wake.notified().await;
                }
                tick.reset();
                let mut idle = 0;
                while idle < IDLE_LOOKS {
                    tick.tick().await;
                    let Some(inner) = inner.upgrade() else { return };
                    idle = if look(&inner, Instant::now()) { 0 } else { idle + 1 };
                }
                dog.awake.store(false, Ordering::Release);
            }
        });
    }
}

/// One look at every node at `now`; whether any read was in flight.
fn look(inner: &Inner, now: Instant) -> bool {
    let snap = inner.routing.snap();
    let mut busy = false;
    for (id, node) in inner.nodes.iter() {
        let in_flight = snap.topology().node(id).map_or(0, |n| n.load().in_flight());
        if in_flight > 0 {
            busy = true;
            node.pace.check(now);
        }
    }
    busy
}
