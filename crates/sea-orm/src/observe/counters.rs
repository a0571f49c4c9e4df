//! The connection's own counters ([`Counters`], for [`Stats`](crate::Stats)), and what a
//! plan's decision asks of them and of the monitor ([`Effects`]): the planner returns its
//! effects as data, and the executor applies them once, for the plan the statement runs (the
//! counters here, [`Effects::count`]; the wants through the live view of the cluster,
//! `crate::cluster`'s `Routing::want`, an I/O step's before it). The nodes' own counts are the
//! recorder's (`connection/record.rs`).

use rwsplit_core::{CausalToken, NodeId};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::observe::telemetry;

/// What a plan's decision means beyond where the statement goes ([`crate::routing::plan`]):
/// counters to move and positions to want from the monitor. The planner returns them; the
/// executor applies them ([`count`](Effects::count) and the live view's `want` for the plan it
/// runs, the wants alone before an I/O step).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Effects {
    /// Where a read that had to see a write went.
    pub(crate) ryw: Option<telemetry::Ryw>,
    /// Its token is from another history than the primary's (`Stats::foreign_tokens`).
    pub(crate) foreign_token: bool,
    /// It was kept on the node of its scope's last read, or sent to the primary, before a
    /// sample bounded that read (`Stats::last_node_reads`).
    pub(crate) monotonic_stay: bool,
    /// The monitor's position feed should run (a bounded-staleness read).
    pub(crate) want_positions: bool,
    /// This node's next sample, then the replicas' positions until each has it (monotonic
    /// reads).
    pub(crate) want_floor: Option<NodeId>,
    /// The replicas' positions until each is seen at or past this token.
    pub(crate) want_replayed: Option<CausalToken>,
}

impl Effects {
    /// Moves the counters (and their metrics) of the plan the statement runs, once.
    pub(crate) fn count(self, counters: &Counters) {
        if !(self.ryw.is_some() || self.foreign_token || self.monotonic_stay) {
            // Most plans: nothing to count.
            return;
        }
        if let Some(outcome) = self.ryw {
            counters.read_your_writes(outcome);
        }
        if self.foreign_token {
            counters.bump(Count::ForeignTokens);
        }
        if self.monotonic_stay {
            counters.bump(Count::MonotonicStays);
        }
    }
}

/// What the connection counts of its own decisions, for [`Stats`](crate::Stats) (the nodes'
/// own counts are the nodes'): moved by [`bump`](Counters::bump), read by
/// [`get`](Counters::get).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    counts: [AtomicU64; Count::ALL.len()],
}

/// One of the connection's [`Counters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Count {
    /// Positions read from the primary after writes.
    Captures,
    /// Positions read from the primary to bound a read there (a scope's floor).
    FloorReads,
    /// Position reads that failed.
    CaptureFailures,
    /// Reads that had to see a write, served by a replica that had it.
    TokenReadsOnReplicas,
    /// Reads that had to see a write, served by the primary.
    TokenReadsOnPrimary,
    /// Catch-up waits on a replica.
    Waits,
    /// Catch-up waits that ended without the replica catching up.
    WaitTimeouts,
    /// Reads whose token was from another history than the primary's.
    ForeignTokens,
    /// Reads kept on the node of their scope's last read (or sent to the primary): monotonic
    /// reads, before a sample bounded that read.
    MonotonicStays,
    /// Statements classified as reads that a replica refused because they write.
    ReplicaRefusals,
    /// Read attempts that passed over a stalled node for the plan's next one.
    StalledSkips,
    /// Microseconds the successful position reads took, summed ([`Count::Captures`] of them).
    CaptureMicros,
}

impl Count {
    /// Every counter, in the order of their slots.
    const ALL: [Count; 12] = [
        Count::Captures,
        Count::FloorReads,
        Count::CaptureFailures,
        Count::TokenReadsOnReplicas,
        Count::TokenReadsOnPrimary,
        Count::Waits,
        Count::WaitTimeouts,
        Count::ForeignTokens,
        Count::MonotonicStays,
        Count::ReplicaRefusals,
        Count::StalledSkips,
        Count::CaptureMicros,
    ];
}

impl Counters {
    /// One more of `count`.
    #[inline]
    pub(crate) fn bump(&self, count: Count) {
        self.counts[count as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// `n` more of `count`.
    #[inline]
    pub(crate) fn add(&self, count: Count, n: u64) {
        self.counts[count as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// How many of `count` so far.
    pub(crate) fn get(&self, count: Count) -> u64 {
        self.counts[count as usize].load(Ordering::Relaxed)
    }

    /// Where a read that had to see a write went: counted here and in the metrics.
    pub(crate) fn read_your_writes(&self, outcome: telemetry::Ryw) {
        self.bump(match outcome {
            telemetry::Ryw::Replica | telemetry::Ryw::Waited => Count::TokenReadsOnReplicas,
            telemetry::Ryw::Primary => Count::TokenReadsOnPrimary,
        });
        telemetry::read_your_writes(outcome);
    }
}
