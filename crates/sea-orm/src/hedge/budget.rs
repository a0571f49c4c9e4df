//! [`HedgeBudget`]: the hedge ration, so that hedges stay within a few percent of reads
//! however slow a node gets.

use std::sync::atomic::{AtomicU64, Ordering};

/// Hedges left to spend: each read earns [`HedgeBudget::SHARE`] of one, up to
/// [`HedgeBudget::BURST`] hedges, so hedges stay within a few percent of reads however slow a
/// node gets.
#[derive(Debug)]
pub(crate) struct HedgeBudget {
    /// In thousandths of a hedge.
    credit: AtomicU64,
}

impl Default for HedgeBudget {
    fn default() -> Self {
        HedgeBudget { credit: AtomicU64::new(Self::BURST * 1000) }
    }
}

impl HedgeBudget {
    /// What one read earns, in thousandths of a hedge: 2 % of reads.
    pub(crate) const SHARE: u64 = 20;
    /// The most hedges saved up.
    pub(crate) const BURST: u64 = 10;

    /// A read was made.
    pub(crate) fn earn(&self) {
        // One load while the budget is full, the usual case.
        if self.credit.load(Ordering::Relaxed) < Self::BURST * 1000 {
            self.credit.fetch_add(Self::SHARE, Ordering::Relaxed);
        }
    }

    /// Spends one hedge if there is one.
    pub(crate) fn spend(&self) -> bool {
        self.credit
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| c.checked_sub(1000))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hedges_stay_within_their_share_of_reads() {
        let budget = HedgeBudget::default();
        let mut hedges = 0;
        for _ in 0..10_000 {
            budget.earn();
            hedges += u32::from(budget.spend());
        }
        // The burst, then one hedge per 50 reads.
        assert!((200..=212).contains(&hedges), "{hedges}");
    }
}
