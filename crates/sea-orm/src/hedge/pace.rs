//! [`Pace`]: how fast a node has been answering, for hedged reads and for steering reads off a
//! node that has stopped answering before the monitor marks it down (a connection's pace of
//! each node is [`Hedging`](crate::hedge::hedging::Hedging)'s).
//!
//! A frozen server (a hung VM, a blackholed network, a stopped process) answers nothing and
//! refuses nothing, so every wait on it runs to a timeout; the monitor marks it down only after
//! its probes time out (a second or two). Meanwhile:
//!
//! - once a node has had reads waiting and answered none of them for its
//!   [hedge delay](Pace::hedge_delay) — a multiple of its recent answer time, between a floor
//!   and a cap — the reads waiting on it are sent to another node of their plans as well, and
//!   the first answer wins (rationed: [`Hedging`](crate::hedge::hedging::Hedging)). The watchdog of [`Hedging`](crate::hedge::hedging::Hedging) wakes
//!   when a waiting read is due, marks the node overdue ([`Pace::check`]) and wakes the reads
//!   through their attempts' watch on the node: no read registers a timer or a waiter of its
//!   own;
//! - a node is [stalled](Pace::stalled) once its reads were hedged, until it answers anything
//!   again (a statement or the monitor's probe) or for [`PASSED_OVER`], or while reads have
//!   waited on it unanswered for [`STALLED_AFTER`]: reads try the plan's other nodes first. A node that answers slowly
//!   but answers — busy, not dead — is never stalled, and nothing here marks a node down: that
//!   stays the monitor's verdict.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The shortest hedge delay: below it a hedge would race ordinary reads' tails.
pub(crate) const HEDGE_FLOOR: Duration = Duration::from_millis(25);
/// The longest hedge delay, whatever the node's usual pace.
pub(crate) const HEDGE_CAP: Duration = Duration::from_millis(150);
/// How many times a node's average answer time a read waits before it is hedged.
const HEDGE_FACTOR: u32 = 8;
/// A node with reads in flight that has answered nothing for this long (or twice its hedge
/// delay, if longer) is stalled.
pub(crate) const STALLED_AFTER: Duration = Duration::from_millis(100);
/// How long a node whose reads were hedged is passed over, unless it answers first: then a
/// read tries it again (and is hedged again if it is still silent). By then the monitor has
/// usually marked a frozen node down.
pub(crate) const PASSED_OVER: Duration = Duration::from_secs(1);

/// One node's answers.
#[derive(Debug, Default)]
pub(crate) struct Pace {
    /// When it last answered a statement or a probe ([`stamp`]; 0: never).
    answered: AtomicU64,
    /// When a read on it was last hedged for want of an answer ([`stamp`]; 0: never).
    overdue: AtomicU64,
    /// Its statements' average answer time, in microseconds (an exponentially weighted average
    /// over about the last 16; 0: none yet).
    average_us: AtomicU64,
    /// When the first read still waiting began, among those begun since its last answer
    /// ([`stamp`]; 0: none waiting since). An answer while other reads still wait restarts it
    /// at the answer: they have waited unanswered since then.
    waiting: AtomicU64,
    /// Reads begun ([`begin`](Pace::begin)) whose [`Begun`] is alive: still waiting.
    pending: AtomicU32,
}

/// A read waiting on a node, from [`Pace::begin`] until dropped: while any is alive, an answer
/// to another statement does not end the node's wait ([`Pace::answered`]).
#[derive(Debug)]
pub(crate) struct Begun<'a> {
    pace: &'a Pace,
    at: u64,
}

impl Begun<'_> {
    /// Whether its node was found silent (its reads unanswered past its hedge delay) since
    /// this read began.
    pub(crate) fn overdue(&self) -> bool {
        self.pace.overdue.load(Ordering::Relaxed) >= self.at
    }

    /// Polls `first`, this read's attempt, until it answers (`Some`), or until its node went
    /// silent since the read began (`None`: hedge it). No timer of its own: the attempt's
    /// watch wakes it when the watchdog nudges the node.
    pub(crate) async fn until_overdue<F: std::future::Future>(
        &self,
        mut first: std::pin::Pin<&mut F>,
    ) -> Option<F::Output> {
        use std::task::Poll;
        std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = first.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            if self.overdue() {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await
    }
}

/// What a look at a node's waiting reads found ([`Pace::look`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Look {
    /// No read waits on it.
    Idle,
    /// Reads have waited past its hedge delay with no answer: it is marked overdue now, and
    /// the reads waiting on it are to be woken.
    Silent,
    /// Reads wait on it; they will have waited its hedge delay at this moment.
    DueAt(Instant),
}

impl Drop for Begun<'_> {
    fn drop(&mut self) {
        self.pace.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pace {
    /// Forgets what it knew of a node (another node's now), but the reads still waiting.
    pub(crate) fn renew(&self) {
        for stamp in [&self.answered, &self.overdue, &self.average_us, &self.waiting] {
            stamp.store(0, Ordering::Relaxed);
        }
    }

    /// A read on the node began at `now` (its wait is timed from the first one since the
    /// node's last answer); it waits until the returned [`Begun`] is dropped, whose
    /// [`overdue`](Begun::overdue) says whether the node was found silent since.
    pub(crate) fn begin(&self, now: Instant) -> Begun<'_> {
        let at = stamp(now);
        self.pending.fetch_add(1, Ordering::Relaxed);
        if self.waiting.load(Ordering::Relaxed) == 0 {
            let _ = self.waiting.compare_exchange(0, at, Ordering::Relaxed, Ordering::Relaxed);
        }
        Begun { pace: self, at }
    }

    /// The watchdog's look at the node at `now` ([`Look`]): a node whose waiting reads are due
    /// and still unanswered is marked overdue ([`check`](Self::check)).
    pub(crate) fn look(&self, now: Instant) -> Look {
        match self.due() {
            None => Look::Idle,
            Some(due) if due <= now && self.check(now) => Look::Silent,
            Some(due) => Look::DueAt(due),
        }
    }

    /// After an answer or an ending at `now`: reads still waiting have waited since `now`;
    /// none waiting, nothing does.
    fn still_waiting(&self, now: Instant) {
        let waiting = if self.pending.load(Ordering::Relaxed) > 0 { stamp(now) } else { 0 };
        self.waiting.store(waiting, Ordering::Relaxed);
    }

    /// When the reads waiting on the node, if any, will have waited its hedge delay.
    pub(crate) fn due(&self) -> Option<Instant> {
        match self.waiting.load(Ordering::Relaxed) {
            0 => None,
            waiting => Some(instant(waiting) + self.hedge_delay()),
        }
    }

    /// Whether reads have waited on the node, unanswered, for longer than its hedge delay at
    /// `now`; if so the node is marked overdue (the caller wakes the reads waiting on it).
    pub(crate) fn check(&self, now: Instant) -> bool {
        let waiting = self.waiting.load(Ordering::Relaxed);
        let silent =
            waiting != 0 && stamp(now).saturating_sub(waiting) > micros(self.hedge_delay());
        if silent {
            self.overdue(now);
        }
        silent
    }

    /// A statement on the node, started at `started`, got its answer at `now`. (Plain loads
    /// and stores: racing answers may each win, and any of them is a fine estimate.)
    pub(crate) fn answered(&self, started: Instant, now: Instant) {
        self.answered.store(stamp(now), Ordering::Relaxed);
        self.still_waiting(now);
        let took = micros(now.saturating_duration_since(started)).max(1);
        let avg = self.average_us.load(Ordering::Relaxed);
        let avg = if avg == 0 { took } else { avg - avg / 16 + took / 16 };
        self.average_us.store(avg, Ordering::Relaxed);
    }

    /// A statement on the node ended at `now` without an answer to count (an error, or given
    /// up): it no longer waits.
    pub(crate) fn ended(&self, now: Instant) {
        self.still_waiting(now);
    }

    /// The monitor's probe got an answer from the node at `now`, after `took`: until its
    /// statements have answered, the probe's time stands for their average.
    pub(crate) fn probed(&self, now: Instant, took: Duration) {
        self.answered.fetch_max(stamp(now), Ordering::Relaxed);
        let took = micros(took).max(1);
        let _ = self.average_us.compare_exchange(0, took, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// A read on the node went unanswered for its hedge delay, at `now`.
    pub(crate) fn overdue(&self, now: Instant) {
        self.overdue.fetch_max(stamp(now), Ordering::Relaxed);
    }

    /// How long a read on the node waits before it is hedged: [`HEDGE_FACTOR`] times its
    /// average answer time, within [`HEDGE_FLOOR`] and [`HEDGE_CAP`]; the cap while nothing is
    /// known of its pace.
    pub(crate) fn hedge_delay(&self) -> Duration {
        match self.average_us.load(Ordering::Relaxed) {
            0 => HEDGE_CAP,
            avg => Duration::from_micros(avg)
                .saturating_mul(HEDGE_FACTOR)
                .clamp(HEDGE_FLOOR, HEDGE_CAP),
        }
    }

    /// Whether reads should try other nodes first, at `now`, with `in_flight` statements on
    /// this one: reads on it went unanswered for its hedge delay less than [`PASSED_OVER`] ago
    /// and it has answered nothing since, or reads have waited on it, unanswered, for
    /// [`STALLED_AFTER`].
    pub(crate) fn stalled(&self, in_flight: u32, now: Instant) -> bool {
        let answered = self.answered.load(Ordering::Relaxed);
        let overdue = self.overdue.load(Ordering::Relaxed);
        if overdue > answered && stamp(now).saturating_sub(overdue) < micros(PASSED_OVER) {
            return true;
        }
        let waiting = self.waiting.load(Ordering::Relaxed);
        if waiting == 0 || in_flight == 0 {
            return false;
        }
        let after = STALLED_AFTER.max(self.hedge_delay().saturating_mul(2));
        stamp(now).saturating_sub(waiting) > micros(after)
    }
}

/// The instant stamps count from: the first call in this process, less a second.
fn base(now: Instant) -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(|| now.checked_sub(Duration::from_secs(1)).unwrap_or(now))
}

/// `now` as microseconds since [`base`], plus one (0 stays "never").
fn stamp(now: Instant) -> u64 {
    micros(now.saturating_duration_since(base(now))) + 1
}

/// The instant a [`stamp`] stands for.
fn instant(stamp: u64) -> Instant {
    let now = Instant::now();
    base(now) + Duration::from_micros(stamp.saturating_sub(1))
}

fn micros(d: Duration) -> u64 {
    // Not `as_micros`: its 128-bit arithmetic is paid on every read.
    d.as_secs().saturating_mul(1_000_000).saturating_add(u64::from(d.subsec_micros()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[rstest::rstest]
    #[case::fast_node(Duration::from_micros(300), HEDGE_FLOOR)]
    #[case::a_10_ms_node(MS(10), MS(80))]
    #[case::a_slow_node(MS(500), HEDGE_CAP)]
    fn the_hedge_delay_follows_the_nodes_pace_within_bounds(
        #[case] each: Duration,
        #[case] delay: Duration,
    ) {
        let pace = Pace::default();
        let t = Instant::now();
        for i in 0..64 {
            let start = t + MS(i * 1000);
            pace.answered(start, start + each);
        }
        let got = pace.hedge_delay();
        let (lo, hi) = (delay.mul_f64(0.95), delay.mul_f64(1.05));
        assert!(got >= lo && got <= hi, "{got:?} for {each:?}");
    }

    /// Stalled: a hedged read's node until it answers again; a node whose reads have waited
    /// unanswered for a while; never a node that answers, however slowly, nor an idle one.
    #[rstest::rstest]
    #[case::answering(Some(0), Some(40), 3, 50, false)]
    #[case::waited_long_unanswered(Some(0), None, 1, 150, true)]
    #[case::a_read_just_begun_after_idling(Some(10_000), None, 1, 10_050, false)]
    #[case::idle(None, None, 0, 10_000, false)]
    fn stalled_by_waiting(
        #[case] began_ms: Option<u64>,
        #[case] answered_ms: Option<u64>,
        #[case] in_flight: u32,
        #[case] now_ms: u64,
        #[case] expected: bool,
    ) {
        let pace = Pace::default();
        let t = Instant::now();
        // A node that answers its probes in a millisecond: its reads stall after 100 ms.
        pace.probed(t, MS(1));
        if let Some(b) = began_ms {
            pace.begin(t + MS(b));
        }
        if let Some(a) = answered_ms {
            pace.answered(t + MS(a) - MS(1), t + MS(a));
        }
        assert_eq!(pace.stalled(in_flight, t + MS(now_ms)), expected);
    }

    #[rstest::rstest]
    #[case::hedged(Some(30), None, 60, true)]
    #[case::hedged_then_probed(Some(30), Some(50), 60, false)]
    #[case::hedged_long_ago(Some(30), None, 1_100, false)]
    fn stalled_by_a_hedge(
        #[case] overdue_ms: Option<u64>,
        #[case] probed_ms: Option<u64>,
        #[case] now_ms: u64,
        #[case] expected: bool,
    ) {
        let pace = Pace::default();
        let t = Instant::now();
        pace.probed(t, MS(1));
        if let Some(o) = overdue_ms {
            pace.overdue(t + MS(o));
        }
        if let Some(p) = probed_ms {
            pace.probed(t + MS(p), MS(1));
        }
        assert_eq!(pace.stalled(0, t + MS(now_ms)), expected);
    }

    /// Nothing known of a node's pace: the longest delay; a probe's time seeds it.
    #[test]
    fn an_unknown_pace_hedges_late_until_a_probe_or_a_statement_says() {
        let pace = Pace::default();
        assert_eq!(pace.hedge_delay(), HEDGE_CAP);
        pace.probed(Instant::now(), MS(10));
        assert_eq!(pace.hedge_delay(), MS(80));
    }

    /// The watchdog's look: reads waiting past the hedge delay find their node overdue.
    #[test]
    fn a_silent_node_is_overdue_for_the_reads_waiting_on_it() {
        let pace = Pace::default();
        let t = Instant::now();
        pace.probed(t, Duration::from_micros(100));
        let begun = pace.begin(t);
        assert!(!pace.check(t + MS(10)), "within the hedge delay");
        assert!(!begun.overdue());
        assert!(pace.check(t + HEDGE_FLOOR + MS(1)));
        assert!(begun.overdue());
        assert!(!pace.begin(t + HEDGE_FLOOR + MS(5)).overdue(), "a later read");
        assert!(pace.stalled(0, t + HEDGE_FLOOR + MS(2)));
    }

    /// A read that answers just before the node freezes does not end the wait of the reads
    /// still on it: they are timed from that answer, and hedged a hedge delay later. Once none
    /// waits, nothing is due.
    #[test]
    fn an_answer_does_not_end_the_wait_of_reads_still_waiting() {
        let pace = Pace::default();
        let t = Instant::now();
        pace.probed(t, Duration::from_micros(100));
        let early = pace.begin(t);
        let stuck = pace.begin(t + MS(1));
        drop(early);
        pace.answered(t, t + MS(2));
        // Stamps are whole microseconds.
        let (due, want) =
            (pace.due().expect("the stuck read still waits"), t + MS(2) + HEDGE_FLOOR);
        assert!(due.max(want) - due.min(want) < Duration::from_micros(2), "{due:?} {want:?}");
        assert!(pace.check(t + MS(3) + HEDGE_FLOOR));
        assert!(stuck.overdue());
        drop(stuck);
        pace.ended(t + MS(40));
        assert_eq!(pace.due(), None, "nothing waits");
    }
}
