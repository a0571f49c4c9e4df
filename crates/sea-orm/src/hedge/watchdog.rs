//! [`Watchdog`]: one task per connection that wakes when reads waiting on a node will have
//! waited that node's hedge delay ([`Pace::due`](crate::hedge::pace::Pace::due)), and wakes those
//! reads if the node has answered none of them since ([`Pace::check`](crate::hedge::pace::Pace::check)),
//! so that they are hedged.
//!
//! One interval timer for the whole connection, made once, re-aimed at the next such moment,
//! and parked while no read waits: a read registers no timer of its own (a statement's cost is
//! counted in instructions and timers), a node that answers promptly wakes it about once per
//! hedge delay, and an idle application wakes nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use rwsplit_core::NodeId;

use crate::hedge::pace::Look;

/// The longest the watchdog sleeps between looks while reads wait, and the least.
const LONGEST: Duration = Duration::from_millis(100);
const SHORTEST: Duration = Duration::from_millis(2);
/// How many looks in a row with no read waiting before it parks.
const IDLE_LOOKS: u32 = 2;

/// What the watchdog looks at: the nodes reads may be waiting on, each looked at by its own
/// pace ([`Pace::look`](crate::hedge::pace::Pace::look)), and a way to wake the reads waiting on one. The connection's shared
/// state is one; the watchdog holds it weakly, so the connection's drop ends the task.
pub(crate) trait Watched: Send + Sync + 'static {
    /// Calls `each` with every node reads can be on and what a look at it at `now` found.
    fn look_each(&self, now: Instant, each: impl FnMut(NodeId, Look));

    /// Wakes the reads waiting on node `id`: their attempts look at it again.
    fn wake_reads_on(&self, id: NodeId);
}

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

    /// Starts `dog`, the watchdog of `watched`, a connection's shared state (which may still be
    /// being built: it is looked at only once a read wakes the watchdog); it ends when the
    /// connection is dropped.
    pub(crate) fn spawn<W: Watched>(dog: Arc<Watchdog>, watched: Weak<W>) {
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
                        let Some(watched) = watched.upgrade() else { return };
                        look(&*watched, Instant::now())
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
fn look(watched: &impl Watched, now: Instant) -> Option<Instant> {
    let mut next: Option<Instant> = None;
    watched.look_each(now, |id, look| match look {
        Look::Idle => {}
        // The reads waiting on it look again (their attempts watch the node).
        Look::Silent => watched.wake_reads_on(id),
        Look::DueAt(due) => next = Some(next.map_or(due, |n| n.min(due))),
    });
    next
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::hedge::pace::Pace;

    /// Nodes and their paces, and the nodes whose reads were woken.
    #[derive(Default)]
    struct Fake {
        paces: Vec<(NodeId, Pace)>,
        woken: Mutex<Vec<NodeId>>,
    }

    impl Watched for Fake {
        fn look_each(&self, now: Instant, mut each: impl FnMut(NodeId, Look)) {
            for (id, pace) in &self.paces {
                each(*id, pace.look(now));
            }
        }

        fn wake_reads_on(&self, id: NodeId) {
            self.woken.lock().unwrap().push(id);
        }
    }

    /// A look wakes the reads of a node silent past its hedge delay, and says when the reads
    /// waiting on another will have waited theirs; an idle node is neither.
    #[test]
    fn a_look_wakes_the_silent_and_says_when_to_look_again() {
        let fake = Fake {
            paces: (0..3).map(|i| (NodeId::new(i), Pace::default())).collect(),
            ..Fake::default()
        };
        let now = Instant::now() + Duration::from_secs(1);
        let _silent = fake.paces[0].1.begin(now - Duration::from_secs(1));
        let _waiting = fake.paces[1].1.begin(now);
        let next = look(&fake, now);
        assert_eq!(*fake.woken.lock().unwrap(), [NodeId::new(0)]);
        assert_eq!(next, fake.paces[1].1.due());
        assert!(next.is_some_and(|at| at > now), "{next:?}");
    }
}
