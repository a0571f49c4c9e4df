//! The primary's recent positions and when it held them, so that a replica's time lag can be
//! estimated from positions alone: see [`History`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rwsplit_core::{CausalToken, NodeId, ReplayPosition};

/// How many positions a [`History`] keeps. Older entries are merged, not dropped, so the
/// history always reaches back to its first sample, with a resolution that coarsens with age.
pub(crate) const CAPACITY: usize = 64;

/// One position the primary held: first and last seen.
#[derive(Debug, Clone)]
struct Entry {
    /// The position, as a token: "has a replica replayed all of it" is then
    /// [`CausalToken::is_satisfied_by`], allocation-free.
    position: CausalToken,
    first: Instant,
    last: Instant,
}

/// The primary's positions over time, newest last, at most [`CAPACITY`] entries.
///
/// A replica that has replayed position `R` has everything the primary had written when it was
/// last seen at a position `R` covers; what it misses was written after that. So
/// `now - (last time the primary was seen at or before R)` bounds from above how old the oldest
/// write the replica misses can be, and that is its time lag for bounded-staleness reads — from
/// positions alone, whatever the server says of its own delay (MariaDB's
/// `Seconds_Behind_Master` stays 0 on a replica whose link was cut silently, until
/// `slave_net_timeout`). Samples are taken when the probe *sent* its query, the earliest instant
/// the primary can have held what it answered, so the estimate errs on the late side by at
/// most one sampling interval (the position feed's, 20 ms by default).
///
/// When full, the two adjacent entries whose merge loses the least relative to their age are
/// merged into one (the later position, the earlier first sighting): an estimate can only grow
/// from a merge, never shrink, and old entries cover longer spans than recent ones (about
/// logarithmic in age). A replica behind everything kept is at least as late as the first
/// sighting of the oldest entry (a lower bound: the caller takes the larger of this and what the
/// server reports).
#[derive(Debug, Default)]
pub(crate) struct History {
    /// The node the samples are of: a new primary starts a new history.
    node: Option<NodeId>,
    entries: VecDeque<Entry>,
}

impl History {
    /// The node whose positions these are.
    pub(crate) fn node(&self) -> Option<NodeId> {
        self.node
    }

    /// Number of entries kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The primary `node` was at `position` at `at`. A sample older than the newest one is
    /// ignored (a slow probe answering late); a position on another history than the newest
    /// (another system, a new timeline) or a new node starts the history over.
    pub(crate) fn record(&mut self, node: NodeId, position: &ReplayPosition, at: Instant) {
        if self.node != Some(node) {
            self.node = Some(node);
            self.entries.clear();
        }
        if let Some(newest) = self.entries.back_mut() {
            if at < newest.last {
                return;
            }
            if newest.position.position() == position {
                newest.last = at;
                return;
            }
            // Comparable at all (same system and timeline, for PostgreSQL)?
            if CausalToken::new(position.clone()).shortfall(newest.position.position()).is_none() {
                self.entries.clear();
            }
        }
        self.entries.push_back(Entry {
            position: CausalToken::new(position.clone()),
            first: at,
            last: at,
        });
        if self.entries.len() > CAPACITY {
            self.merge_one(at);
        }
    }

    /// Merges the adjacent pair (never the newest entry) whose combined span is smallest
    /// relative to its age.
    fn merge_one(&mut self, now: Instant) {
        let n = self.entries.len();
        let mut best: Option<(usize, u128, u128)> = None;
        for i in 0..n.saturating_sub(2) {
            let (Some(a), Some(b)) = (self.entries.get(i), self.entries.get(i + 1)) else {
                break;
            };
            let span = b.last.saturating_duration_since(a.first).as_nanos();
            let age = now.saturating_duration_since(b.last).as_nanos().saturating_add(1);
            // span / age < best_span / best_age, without division.
            let better =
                best.is_none_or(|(_, s, g)| span.saturating_mul(g) < s.saturating_mul(age));
            if better {
                best = Some((i, span, age));
            }
        }
        let Some((i, _, _)) = best else { return };
        if let Some(a) = self.entries.remove(i)
            && let Some(b) = self.entries.get_mut(i)
        {
            b.first = a.first;
        }
    }

    /// The newest position of primary `node` kept, and when it was last seen there. `None` if
    /// the history is another node's or empty.
    pub(crate) fn newest(&self, node: NodeId) -> Option<(&ReplayPosition, Instant)> {
        if self.node != Some(node) {
            return None;
        }
        self.entries.back().map(|e| (e.position.position(), e.last))
    }

    /// A position of primary `node` sampled at or after `at`, the earliest kept: at or past
    /// everything it had written at `at` (positions only grow), and the tightest such bound
    /// kept. `None` if the history is another node's or has no sample that late.
    pub(crate) fn since(&self, node: NodeId, at: Instant) -> Option<&ReplayPosition> {
        if self.node != Some(node) {
            return None;
        }
        self.entries.iter().find(|e| e.last >= at).map(|e| e.position.position())
    }

    /// How far behind a replica that has replayed `replayed` is, at `now`: zero if it has the
    /// newest position; else the time since the primary was last seen at a position it has;
    /// else (behind everything kept) at least the time since the oldest entry was first seen.
    /// `None` with no samples, or when `replayed` is on another history.
    pub(crate) fn lag(&self, replayed: &ReplayPosition, now: Instant) -> Option<Duration> {
        let newest = self.entries.back()?;
        newest.position.shortfall(replayed)?;
        if newest.position.is_satisfied_by(replayed) {
            return Some(Duration::ZERO);
        }
        let since = match self.entries.iter().rev().find(|e| e.position.is_satisfied_by(replayed)) {
            Some(e) => e.last,
            None => self.entries.front().map_or(newest.first, |e| e.first),
        };
        Some(now.saturating_duration_since(since))
    }
}

impl History {
    /// The instant before which a replica that has replayed `replayed` provably has every
    /// commit of the primary: the last time the primary was seen at a position it covers (a
    /// sample is taken when its query was sent, so everything committed before then is at or
    /// below what it answered). `None`: no samples, another history, or behind everything kept
    /// (how stale is then unknown: the oldest sighting only says "at least").
    pub(crate) fn fresh_as_of(&self, replayed: &ReplayPosition) -> Option<Instant> {
        let newest = self.entries.back()?;
        newest.position.shortfall(replayed)?;
        self.entries.iter().rev().find(|e| e.position.is_satisfied_by(replayed)).map(|e| e.last)
    }
}

#[cfg(test)]
mod tests {
    use rwsplit_core::{Lsn, MariaDbPosition, PgPosition};

    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn pg(lsn: u64) -> ReplayPosition {
        ReplayPosition::Postgres(PgPosition::new(7, 1, Lsn::new(lsn)))
    }

    fn maria(text: &str) -> ReplayPosition {
        ReplayPosition::MariaDb(text.parse::<MariaDbPosition>().unwrap())
    }

    #[test]
    fn lag_is_the_time_since_the_primary_was_last_where_the_replica_is() {
        let t0 = Instant::now();
        let mut h = History::default();
        assert_eq!(h.lag(&pg(100), t0), None, "no samples, no estimate");
        // The primary sits at 100 for a second (idle), then writes every 20 ms.
        h.record(NodeId::new(0), &pg(100), t0);
        h.record(NodeId::new(0), &pg(100), t0 + MS(1_000));
        for i in 1..=10 {
            h.record(NodeId::new(0), &pg(100 + i), t0 + MS(1_000 + 20 * i));
        }
        let now = t0 + MS(1_210);
        assert_eq!(h.lag(&pg(110), now), Some(Duration::ZERO), "has the newest");
        assert_eq!(h.lag(&pg(200), now), Some(Duration::ZERO), "ahead of the sample");
        // Has 105, written by 1 100 ms: misses what came after.
        assert_eq!(h.lag(&pg(105), now), Some(MS(110)));
        assert_eq!(h.lag(&pg(106), now), Some(MS(90)));
        // At 100: the idle second does not count, only the time since 100 was left.
        assert_eq!(h.lag(&pg(100), now), Some(MS(210)));
        // Behind everything kept: at least since the oldest was first seen.
        assert_eq!(h.lag(&pg(50), now), Some(MS(1_210)));
        // Another timeline: no estimate.
        let other = ReplayPosition::Postgres(PgPosition::new(7, 2, Lsn::new(105)));
        assert_eq!(h.lag(&other, now), None);
    }

    #[test]
    fn a_silently_cut_mariadb_replica_grows_late_with_the_primary_writing() {
        let t0 = Instant::now();
        let mut h = History::default();
        for i in 0..60_u64 {
            h.record(NodeId::new(0), &maria(&format!("0-1-{}", 10 + i)), t0 + MS(20 * i));
        }
        // The replica stopped at 0-1-50 (sampled at 800 ms); the primary went on.
        let replica = maria("0-1-50");
        assert_eq!(h.lag(&replica, t0 + MS(2_000)), Some(MS(1_200)));
        assert_eq!(h.lag(&replica, t0 + MS(3_000)), Some(MS(2_200)));
        // A second domain the replica lacks: not caught up.
        h.record(NodeId::new(0), &maria("0-1-69,1-1-1"), t0 + MS(1_200));
        assert_eq!(h.lag(&maria("0-1-69"), t0 + MS(1_210)), Some(MS(30)));
    }

    #[test]
    fn the_history_stays_bounded_and_merging_only_ever_overestimates() {
        let t0 = Instant::now();
        let mut h = History::default();
        let mut exact = Vec::new();
        for i in 0..5_000_u64 {
            let at = t0 + MS(20 * i);
            h.record(NodeId::new(0), &pg(i), at);
            exact.push(at);
        }
        assert_eq!(h.len(), CAPACITY);
        let now = t0 + MS(20 * 5_000);
        assert_eq!(h.lag(&pg(4_999), now), Some(Duration::ZERO), "the newest stays exact");
        for r in [4_998_u64, 4_990, 4_900, 4_000, 2_500, 10, 0] {
            let truth = now.duration_since(exact[usize::try_from(r).unwrap()]);
            let got = h.lag(&pg(r), now).unwrap();
            assert!(got >= truth, "r={r}: {got:?} < {truth:?}");
            // Recent positions stay exact to the sample, old ones within a share of their age.
            let slack = truth / 4 + MS(20);
            assert!(got <= truth + slack, "r={r}: {got:?} vs {truth:?}");
        }
        // Behind the first sample: at least the whole history.
        h.record(NodeId::new(0), &pg(10_000), now);
        assert!(h.lag(&pg(0), now).unwrap() >= MS(20 * 4_999));
    }

    #[test]
    fn a_new_primary_or_history_starts_over_and_late_samples_are_ignored() {
        let t0 = Instant::now();
        let mut h = History::default();
        h.record(NodeId::new(0), &pg(100), t0);
        h.record(NodeId::new(0), &pg(200), t0 + MS(100));
        h.record(NodeId::new(0), &pg(150), t0 + MS(50));
        assert_eq!(h.len(), 2, "a sample older than the newest is ignored");
        h.record(NodeId::new(2), &pg(300), t0 + MS(200));
        assert_eq!((h.node(), h.len()), (Some(NodeId::new(2)), 1));
        let promoted = ReplayPosition::Postgres(PgPosition::new(7, 2, Lsn::new(310)));
        h.record(NodeId::new(2), &promoted, t0 + MS(300));
        assert_eq!(h.len(), 1, "a new timeline starts over");
        assert_eq!(h.lag(&promoted, t0 + MS(400)), Some(Duration::ZERO));
    }

    /// What bounded-staleness reads count from. Sightings are when the query was sent,
    /// so a replica that has a position has every commit made before its last sighting.
    #[test]
    fn a_replica_is_fresh_as_of_the_last_sighting_of_a_position_it_covers() {
        let t = Instant::now();
        let mut h = History::default();
        let p = NodeId::new(0);
        assert_eq!(h.fresh_as_of(&pg(1)), None, "no samples");
        h.record(p, &pg(100), t);
        h.record(p, &pg(100), t + MS(20));
        h.record(p, &pg(200), t + MS(40));
        h.record(p, &pg(200), t + MS(60));
        assert_eq!(h.fresh_as_of(&pg(200)), Some(t + MS(60)), "the newest: its last sighting");
        assert_eq!(h.fresh_as_of(&pg(250)), Some(t + MS(60)), "ahead of the newest");
        assert_eq!(h.fresh_as_of(&pg(150)), Some(t + MS(20)), "between two positions");
        assert_eq!(h.fresh_as_of(&pg(99)), None, "behind everything kept: unprovable");
        let new_timeline = ReplayPosition::Postgres(PgPosition::new(7, 2, Lsn::new(300)));
        assert_eq!(h.fresh_as_of(&new_timeline), None, "another history proves nothing");
        assert_eq!(h.fresh_as_of(&maria("0-1-5")), None, "another product neither");
    }

    /// A primary's position since an instant is the earliest sample taken at or after it: a
    /// bound of what a read that ended then saw, that replicas can reach (the newest position
    /// would ask them to be as fresh as the primary now).
    #[test]
    fn the_position_since_an_instant_is_the_first_sample_after_it() {
        let t = Instant::now();
        let mut h = History::default();
        let n = NodeId::new(0);
        h.record(n, &pg(100), t);
        h.record(n, &pg(100), t + MS(20));
        h.record(n, &pg(200), t + MS(40));
        h.record(n, &pg(300), t + MS(60));
        assert_eq!(h.since(n, t + MS(10)), Some(&pg(100)), "seen at 100 until 20 ms");
        assert_eq!(h.since(n, t + MS(30)), Some(&pg(200)));
        assert_eq!(h.since(n, t + MS(60)), Some(&pg(300)));
        assert_eq!(h.since(n, t + MS(61)), None, "no sample that late yet");
        assert_eq!(h.since(NodeId::new(1), t), None, "another node's history");
    }
}
