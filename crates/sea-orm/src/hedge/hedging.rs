//! [`Hedging`]: hedging's state on a connection, the part the attempt step holds for it: the
//! hedge ration and the hedging counts (for
//! [`Stats::hedges`](crate::Stats::hedges)); and the race as the connection runs it
//! ([`Hedging::race`]: counted, its end reported, the loser dropped).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};

use super::race::{Raced, race};
use crate::observe::telemetry;

/// A connection's hedging: hedges left to spend (each read that may be hedged earns
/// [`Hedging::SHARE`] of one, up to [`Hedging::BURST`] hedges, so hedges stay within a few
/// percent of reads however slow a node gets), and what hedging did. The watchdog over reads
/// in flight is the connection's own part beside it
/// ([`Watchdog`](crate::hedge::watchdog::Watchdog)).
#[derive(Debug)]
pub(crate) struct Hedging {
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

    /// A read that may be hedged was made: it earns its share of a hedge.
    #[inline]
    pub(crate) fn earn(&self) {
        // One load while the budget is full, the usual case.
        if self.credit.load(Ordering::Relaxed) < Self::BURST * 1000 {
            self.credit.fetch_add(Self::SHARE, Ordering::Relaxed);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hedges_stay_within_their_share_of_reads() {
        let hedging = Hedging::default();
        let mut hedges = 0;
        for _ in 0..10_000 {
            hedging.earn();
            hedges += u32::from(hedging.spend());
        }
        // The burst, then one hedge per 50 reads.
        assert!((200..=212).contains(&hedges), "{hedges}");
    }
}
