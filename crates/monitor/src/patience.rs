//! How long a node's probes are waited for: the configured timeout, stretched while the node
//! has been answering slowly.
//!
//! A probe timeout says "this node did not answer in time", and the state machine counts it as
//! a failure. That is right for a node that was answering in milliseconds and stops (frozen,
//! cut off): it is caught at the configured timeout. It is wrong for a node that
//! answers every query, only slowly, because the machine it or the application runs on is
//! saturated (hundreds of application processes on two cores, a throttled container): with a fixed
//! timeout, every probe slower than it is a failure, the node is marked suspect and down while
//! it serves, and the probes' reconnects add load to a server already short of it. Load is not
//! failure.
//!
//! So each node's loop remembers how slowly it has answered lately ([`Patience`]): the slowest
//! answer seen, probe or position-feed read (a probe answered after its probe stopped waiting
//! counts when it comes), decaying by half every [`HALF_LIFE`]. A probe waits
//! [`STRETCH`] times that, never less than the configured timeout and never more than
//! [`MonitorConfig::max_timeout_value`]. A node that answers in 2 ms waits the configured
//! timeout; one that has been answering in 1.5 s waits 4.5 s, and if it then stops answering it
//! is caught at that (the figure is bounded: a slow node is watched less tightly than a fast
//! one, and never less than the maximum). The answers measure the round trip from the
//! application's side, so a process that is itself starved of CPU (its timers and sockets
//! served late) sees its nodes slow, and is patient with them, for the same reason.

use std::time::Duration;

use tokio::time::Instant;

use crate::probe::MonitorConfig;

/// How many times its slowest recent answer a node's probe is waited for.
pub(crate) const STRETCH: u32 = 3;

/// How fast a slow answer is forgotten: its weight halves every this long.
pub(crate) const HALF_LIFE: Duration = Duration::from_secs(10);

/// One node's recent answer times (see the module docs). Starts with none: the configured
/// timeout.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Patience {
    /// The slowest recent answer, as of `at`.
    slowest: Duration,
    at: Option<Instant>,
}

impl Patience {
    /// The node answered a query in `took`, at `now`.
    pub(crate) fn answered(&mut self, took: Duration, now: Instant) {
        self.slowest = self.slowest_at(now).max(took);
        self.at = Some(now);
    }

    /// The slowest recent answer as of `now`, decayed since it was recorded.
    fn slowest_at(&self, now: Instant) -> Duration {
        let Some(at) = self.at else { return Duration::ZERO };
        let halvings = now.saturating_duration_since(at).as_secs_f64() / HALF_LIFE.as_secs_f64();
        self.slowest.mul_f64(0.5_f64.powf(halvings))
    }

    /// How long a probe of the node is waited for now: [`STRETCH`] times its slowest recent
    /// answer, at least the configured timeout, at most the configured maximum.
    pub(crate) fn timeout(&self, config: &MonitorConfig, now: Instant) -> Duration {
        let base = config.probe_timeout_value();
        let max = config.max_probe_timeout_value();
        self.slowest_at(now).saturating_mul(STRETCH).clamp(base, max.max(base))
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn config() -> MonitorConfig {
        MonitorConfig::default().probe_timeout(MS(1_000)).max_probe_timeout(MS(10_000))
    }

    /// (answer times, at ms from the start; when asked, ms from the start; the timeout).
    #[rstest]
    #[case::none_yet(&[], 0, 1_000)]
    #[case::fast_answers_keep_the_configured_timeout(&[(2, 0), (3, 500), (2, 1_000)], 1_000, 1_000)]
    #[case::slow_answers_stretch_it(&[(1_500, 0)], 0, 4_500)]
    #[case::the_slowest_counts_not_the_last(&[(1_500, 0), (5, 100)], 100, 4_469)]
    #[case::a_ramp_keeps_ahead(&[(200, 0), (400, 500), (800, 1_000)], 1_000, 2_400)]
    #[case::forgotten_by_half_every_ten_seconds(&[(1_500, 0)], 10_000, 2_250)]
    #[case::and_back_to_the_configured_timeout(&[(1_500, 0)], 30_000, 1_000)]
    #[case::never_past_the_maximum(&[(60_000, 0)], 0, 10_000)]
    fn the_timeout_follows_the_slowest_recent_answer(
        #[case] answers: &[(u64, u64)],
        #[case] asked: u64,
        #[case] expect_ms: u64,
    ) {
        let start = Instant::now();
        let mut p = Patience::default();
        for &(took, at) in answers {
            p.answered(MS(took), start + MS(at));
        }
        let got = p.timeout(&config(), start + MS(asked));
        let diff = got.abs_diff(MS(expect_ms));
        assert!(diff <= MS(2), "{got:?}, expected {expect_ms} ms");
    }

    #[test]
    fn a_maximum_below_the_timeout_means_no_stretch() {
        let start = Instant::now();
        let mut p = Patience::default();
        p.answered(MS(1_500), start);
        let config = MonitorConfig::default().probe_timeout(MS(1_000)).max_probe_timeout(MS(500));
        assert_eq!(p.timeout(&config, start), MS(1_000));
    }
}
