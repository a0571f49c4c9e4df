//! Hedging's state on a connection, the parts the attempt step holds for it: [`Hedging`], each
//! node's pace (how fast it answers: when a read on it is hedged, and whether it is stalled),
//! the hedge ration and the hedging counts (for [`Stats::hedges`](crate::Stats::hedges)), and
//! the race as the connection runs it ([`Hedging::race`]: counted, its end reported, the loser
//! dropped); and [`Watchdog`], the one task per connection that wakes the reads waiting on a
//! silent node.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use rwsplit_core::{MAX_NODES, NodeId};

use super::pace::{Begun, Look, Pace};
use super::race::{Raced, race};
use crate::observe::telemetry;

/// A connection's hedging: each node's pace, hedges left to spend (each read that may be
/// hedged earns [`Hedging::SHARE`] of one, up to [`Hedging::BURST`] hedges, so hedges stay
/// within a few percent of reads however slow a node gets), what hedging did, and the
/// [`Watchdog`] over the reads in flight.
#[derive(Debug)]
pub(crate) struct Hedging {
    /// Each node's pace, shared with the watchdog's task, which looks at them.
    paces: Arc<Paces>,
    /// Looks for nodes silent past their hedge delay while hedgeable reads are in flight.
    watchdog: Arc<Watchdog>,
    /// Hedges left, in thousandths of a hedge.
    credit: AtomicU64,
    /// Reads hedged.
    sent: AtomicU64,
    /// Hedged reads the second node answered.
    won: AtomicU64,
    /// Losing attempts of hedged reads, dropped while still running.
    lost: AtomicU64,
}

impl Default for Hedging {
    fn default() -> Self {
        Hedging {
            paces: Arc::default(),
            watchdog: Arc::default(),
            credit: AtomicU64::new(Self::BURST * 1000),
            sent: AtomicU64::new(0),
            won: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        }
    }
}

impl Hedging {
    /// What one read earns, in thousandths of a hedge: 2 % of reads.
    pub(crate) const SHARE: u64 = 20;
    /// The most hedges saved up.
    pub(crate) const BURST: u64 = 10;

    /// Starts the watchdog over the paces, waking reads through `watched`, a connection's
    /// shared state (which may still be being built: it is asked only once a read wakes the
    /// watchdog); it ends when the connection is dropped.
    pub(crate) fn start_watchdog<W: Watched>(&self, watched: Weak<W>) {
        Watchdog::spawn(Arc::clone(&self.watchdog), Arc::clone(&self.paces), watched);
    }

    /// A read that may be hedged began on node `id` at `started`: it waits on the node until
    /// the returned [`Begun`] is dropped, which says whether the node went silent meanwhile
    /// ([`Pace::begin`](super::pace::Pace::begin)). It earns its share of a hedge, and the
    /// watchdog looks from now on (one load each while the budget is full and the watchdog
    /// awake, the usual case).
    #[inline]
    pub(crate) fn read_began(&self, id: NodeId, started: Instant) -> Begun<'_> {
        if self.credit.load(Ordering::Relaxed) < Self::BURST * 1000 {
            self.credit.fetch_add(Self::SHARE, Ordering::Relaxed);
        }
        self.watchdog.ensure();
        self.paces.of(id).begin(started)
    }

    /// A statement on node `id`, started at `started`, got its answer at `now`: the node's
    /// pace learns the answer time, and the reads still waiting on it wait from now.
    #[inline]
    pub(crate) fn statement_answered(&self, id: NodeId, started: Instant, now: Instant) {
        self.paces.of(id).answered(started, now);
    }

    /// A statement on node `id` ended at `now` with no answer to count (an error, or given
    /// up): it no longer waits.
    pub(crate) fn statement_ended(&self, id: NodeId, now: Instant) {
        self.paces.of(id).ended(now);
    }

    /// The monitor's probe of node `id` answered at `now`, in `took`: until its statements
    /// have answered, the probe's time stands for their average.
    pub(crate) fn probe_answered(&self, id: NodeId, now: Instant, took: Duration) {
        self.paces.of(id).probed(now, took);
    }

    /// Whether reads should try the plan's other nodes before node `id`, at `now`, with
    /// `in_flight` statements on it: it has stopped answering
    /// ([`Pace::stalled`](super::pace::Pace::stalled)).
    #[inline]
    pub(crate) fn node_stalled(&self, id: NodeId, in_flight: u32, now: Instant) -> bool {
        self.paces.of(id).stalled(in_flight, now)
    }

    /// How long a read on node `id` waits before it is hedged.
    pub(crate) fn delay_of(&self, id: NodeId) -> Duration {
        self.paces.of(id).hedge_delay()
    }

    /// Spends one hedge if there is one.
    #[inline]
    pub(crate) fn spend(&self) -> bool {
        self.credit
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| c.checked_sub(1000))
            .is_ok()
    }

    /// Reads hedged (`Hedges::sent`).
    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Hedged reads the second node answered (`Hedges::won`).
    pub(crate) fn won(&self) -> u64 {
        self.won.load(Ordering::Relaxed)
    }

    /// Losing attempts dropped while still running (`Hedges::lost`).
    pub(crate) fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// A hedge spent ([`spend`](Self::spend)) on a read waiting on the node labelled `node`:
    /// `first` and `second` raced ([`race`]), the hedged read counted, its end reported once
    /// ([`telemetry::HEDGE_OUTCOMES`]), and a loser still running when the race ended dropped
    /// and counted ([`Hedging::lost`]).
    pub(crate) async fn race<T, E, E2, F, G>(
        &self,
        first: Pin<&mut F>,
        second: G,
        node: &telemetry::NodeLabels,
    ) -> Raced<T, E>
    where
        F: Future<Output = Result<T, E>>,
        G: Future<Output = Result<T, E2>>,
    {
        self.sent.fetch_add(1, Ordering::Relaxed);
        // Counted once when it ends, however it ends (`abandoned` if dropped before).
        let mut ended = HedgeEnd { node, outcome: "abandoned" };
        // The hedge's attempt lives in the race: when the first answers first, it is dropped
        // (its connection closed) there. `dropped`: the node whose attempt is dropped was
        // still running (the hedge's, or the first's, by the caller, once this returns).
        let (raced, dropped) = race(first, second).await;
        ended.outcome = match &raced {
            Raced::Second(_) => {
                self.won.fetch_add(1, Ordering::Relaxed);
                "hedge"
            }
            Raced::First(Ok(_)) => "first",
            Raced::First(Err(_)) => "failed",
        };
        if dropped {
            self.dropped_loser();
        }
        raced
    }

    /// A hedged read's losing attempt, dropped, counted (`Hedges::lost`; the metric counts
    /// the hedged read once, by how it ended: `HedgeEnd`). Nothing is sent to end its
    /// statement: a read run straight on the node's pool closes its connection when dropped
    /// ([`crate::send::sending`]), and a PostgreSQL server ends the statement of a session
    /// whose client has gone by itself (`client_connection_check_interval`, set on rwsplit's
    /// replica sessions: [`crate::product::Pooling`]); on MariaDB the statement runs to its
    /// end. Looking the statement up to cancel it could reach another client's session (the
    /// same text, the same user), and rwsplit acts only on sessions it opened.
    fn dropped_loser(&self) {
        self.lost.fetch_add(1, Ordering::Relaxed);
    }
}

/// A connection's pace of each node, by the node's slot ([`NodeId::index`]). A slot's pace is
/// the node's of the generation it last saw: a node added in a removed node's slot starts
/// afresh ([`Paces::of`]).
#[derive(Debug)]
struct Paces {
    slots: [Slot; MAX_NODES],
}

/// One slot of [`Paces`]: the node (its generation, plus one; 0: none yet) and its pace.
#[derive(Debug, Default)]
struct Slot {
    generation: AtomicU32,
    pace: Pace,
}

impl Default for Paces {
    fn default() -> Self {
        Paces { slots: std::array::from_fn(|_| Slot::default()) }
    }
}

impl Paces {
    /// Node `id`'s pace. The first look at a slot's new generation starts its pace afresh
    /// ([`Pace::renew`]; reads still waiting on the old node keep their count). Should a read
    /// on a removed node outlive its removal, its slot starts afresh again when it ends: a
    /// pace then knows less, and a hedge waits the longest delay, nothing worse.
    #[inline]
    fn of(&self, id: NodeId) -> &Pace {
        let slot = &self.slots[id.index() % MAX_NODES];
        let generation = u32::from(id.generation()) + 1;
        if slot.generation.load(Ordering::Relaxed) != generation
            && slot.generation.swap(generation, Ordering::Relaxed) != generation
        {
            slot.pace.renew();
        }
        &slot.pace
    }

    /// Calls `each` with every node that has had a pace (its slot's last generation) and what
    /// a look at it at `now` found ([`Pace::look`]).
    fn look_each(&self, now: Instant, mut each: impl FnMut(NodeId, Look)) {
        for (i, slot) in self.slots.iter().enumerate() {
            let Some(generation) = slot.generation.load(Ordering::Relaxed).checked_sub(1) else {
                continue;
            };
            let (Ok(index), Ok(generation)) = (u16::try_from(i), u16::try_from(generation)) else {
                continue;
            };
            each(NodeId::with_generation(index, generation), slot.pace.look(now));
        }
    }
}

/// A hedged read's end, counted once: when it is dropped, with the outcome it reached
/// ([`telemetry::HEDGE_OUTCOMES`]; still `abandoned` if the caller dropped the read first).
struct HedgeEnd<'a> {
    node: &'a telemetry::NodeLabels,
    outcome: &'static str,
}

impl Drop for HedgeEnd<'_> {
    fn drop(&mut self) {
        telemetry::hedge(self.node, self.outcome);
    }
}

// The watchdog: one task per connection that wakes when reads waiting on a node will have
// waited that node's hedge delay (`Pace::due`), and wakes those reads if the node has answered
// none of them since (`Pace::check`), so that they are hedged. One interval timer for the
// whole connection, made once, re-aimed at the next such moment, and parked while no read
// waits: a read registers no timer of its own (a statement's cost is counted in instructions
// and timers), a node that answers promptly wakes it about once per hedge delay, and an idle
// application wakes nothing.

/// The longest the watchdog sleeps between looks while reads wait, and the least.
const LONGEST: Duration = Duration::from_millis(100);
const SHORTEST: Duration = Duration::from_millis(2);
/// How many looks in a row with no read waiting before it parks.
const IDLE_LOOKS: u32 = 2;

/// How the watchdog wakes the reads waiting on a node it found silent (it looks at the nodes'
/// paces itself). The connection's shared state is one; the watchdog holds it weakly, so the
/// connection's drop ends the task.
pub(crate) trait Watched: Send + Sync + 'static {
    /// Wakes the reads waiting on node `id`: their attempts look at it again.
    fn wake_reads_on(&self, id: NodeId);
}

/// Whether the watchdog is looking, and how a read wakes it.
#[derive(Debug, Default)]
struct Watchdog {
    awake: AtomicBool,
    wake: tokio::sync::Notify,
}

impl Watchdog {
    /// A read is about to wait on a replica: the watchdog looks from now on (one load while it
    /// is awake).
    fn ensure(&self) {
        if !self.awake.load(Ordering::Relaxed) && !self.awake.swap(true, Ordering::AcqRel) {
            self.wake.notify_one();
        }
    }

    /// Starts `dog`, the watchdog over `paces` waking reads through `watched`
    /// ([`Hedging::start_watchdog`]).
    fn spawn<W: Watched>(dog: Arc<Watchdog>, paces: Arc<Paces>, watched: Weak<W>) {
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
                        look(&paces, &*watched, Instant::now())
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

/// One look at every node's pace at `now`: the reads waiting past their node's hedge delay
/// are woken through `watched`; the next moment a read will have waited its node's hedge
/// delay, if any waits.
fn look(paces: &Paces, watched: &impl Watched, now: Instant) -> Option<Instant> {
    let mut next: Option<Instant> = None;
    paces.look_each(now, |id, look| match look {
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

    #[test]
    fn hedges_stay_within_their_share_of_reads() {
        let hedging = Hedging::default();
        let mut hedges = 0;
        let started = Instant::now();
        for _ in 0..10_000 {
            drop(hedging.read_began(NodeId::new(1), started));
            hedges += u32::from(hedging.spend());
        }
        // The burst, then one hedge per 50 reads.
        assert!((200..=212).contains(&hedges), "{hedges}");
    }

    /// The nodes whose reads were woken.
    #[derive(Default)]
    struct Fake {
        woken: Mutex<Vec<NodeId>>,
    }

    impl Watched for Fake {
        fn wake_reads_on(&self, id: NodeId) {
            self.woken.lock().unwrap().push(id);
        }
    }

    /// A look wakes the reads of a node silent past its hedge delay, and says when the reads
    /// waiting on another will have waited theirs; an idle node is neither.
    #[test]
    fn a_look_wakes_the_silent_and_says_when_to_look_again() {
        let (fake, hedging) = (Fake::default(), Hedging::default());
        let now = Instant::now() + Duration::from_secs(1);
        let ids: Vec<NodeId> = (0..3).map(NodeId::new).collect();
        let _silent = hedging.read_began(ids[0], now - Duration::from_secs(1));
        let _waiting = hedging.read_began(ids[1], now);
        hedging.statement_answered(ids[2], now, now);
        let next = look(&hedging.paces, &fake, now);
        assert_eq!(*fake.woken.lock().unwrap(), [ids[0]]);
        // When the waiting read will have waited its node's delay (its start kept to the µs).
        let due = now + hedging.delay_of(ids[1]);
        let near = |at: Instant| at.max(due) - at.min(due) < Duration::from_millis(1);
        assert!(next.is_some_and(near), "{next:?} against {due:?}");
        assert!(next.is_some_and(|at| at > now), "{next:?}");
    }

    /// A node added in a removed node's slot starts with a pace of its own: the old node's
    /// answer times and its being overdue are not its.
    #[test]
    fn a_node_in_a_reused_slot_starts_with_a_fresh_pace() {
        let hedging = Hedging::default();
        let old = NodeId::with_generation(1, 0);
        let now = Instant::now() + Duration::from_secs(5);
        for i in 0..32 {
            let at = now + Duration::from_millis(i);
            hedging.statement_answered(old, at, at + Duration::from_micros(100));
        }
        let begun = hedging.read_began(old, now);
        let _ = look(&hedging.paces, &Fake::default(), now + Duration::from_secs(1));
        assert!(begun.overdue(), "the old node went silent");
        assert!(hedging.node_stalled(old, 1, now + Duration::from_secs(1)));
        let new = old.next_generation().expect("a next generation");
        assert!(!hedging.node_stalled(new, 1, now + Duration::from_secs(1)), "the old node's");
        assert_eq!(hedging.delay_of(new), crate::hedge::pace::HEDGE_CAP, "nothing known yet");
        drop(begun);
    }
}
