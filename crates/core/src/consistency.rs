//! How fresh a read must be.

use std::time::{Duration, Instant};

use crate::token::CausalToken;
use crate::topology::Lag;

/// The freshness a read needs, chosen per call or per scope.
///
/// The vocabulary follows mysqlnd_ms's `EVENTUAL`/`SESSION`/`STRONG` quality-of-service levels
/// and Cosmos DB's session and bounded-staleness levels. The session guarantees (read-your-writes,
/// monotonic reads, writes-follow-reads) are kept by the caller's scope in the adapter
/// (`rwsplit-sea-orm`), which turns them into [`ReadYourWrites`](Self::ReadYourWrites) tokens
/// and node choices before asking the router; to the router alone, [`Session`](Self::Session)
/// is [`Eventual`](Self::Eventual).
///
/// ```
/// use std::time::Duration;
/// use rwsplit_core::{Consistency, Staleness};
/// let c = Consistency::BoundedStaleness(Staleness::time(Duration::from_secs(2)).and_bytes(16 << 20));
/// assert!(matches!(c, Consistency::BoundedStaleness(_)));
/// assert_eq!(Consistency::default(), Consistency::Session);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Consistency {
    /// The default: any healthy replica that keeps the caller's session guarantees — it has
    /// replayed the caller's writes (read-your-writes) and everything the caller has already
    /// read (monotonic reads) — else the primary. See the adapter's `docs/CONSISTENCY.md`.
    #[default]
    Session,
    /// Any healthy replica will do. The adapter still applies read-your-writes for the
    /// caller's own writes (if on), but not monotonic reads: a later read may see an older
    /// state than an earlier one did.
    Eventual,
    /// Only replicas provably within the bound when the read is routed
    /// ([`Staleness::allows_at`]); unknown lag excludes a replica. A replica proves its
    /// freshness as of the monitor's last sighting of the primary, so a bound shorter than the
    /// position feed's interval (20 ms by default) is rarely met, and a zero bound never: such
    /// reads go to the primary.
    BoundedStaleness(Staleness),
    /// Only replicas known to have replayed past the token; else the primary (or a wait,
    /// see [`CatchUp`](crate::CatchUp)).
    ReadYourWrites(CausalToken),
    /// The primary only.
    Strong,
}

impl Consistency {
    /// The levels a configuration can name ([`Consistency::named`]); a
    /// [`ReadYourWrites`](Self::ReadYourWrites) level is made from a write's token, not named.
    pub const NAMES: [&'static str; 4] = ["session", "eventual", "bounded_staleness", "strong"];

    /// The level's name, as configuration, metrics and traces spell it (`session`, `eventual`,
    /// `bounded_staleness`, `read_your_writes`, `strong`).
    ///
    /// ```
    /// use rwsplit_core::Consistency;
    /// assert_eq!(Consistency::Eventual.name(), "eventual");
    /// ```
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Consistency::Session => "session",
            Consistency::Eventual => "eventual",
            Consistency::BoundedStaleness(_) => "bounded_staleness",
            Consistency::ReadYourWrites(_) => "read_your_writes",
            Consistency::Strong => "strong",
        }
    }

    /// The level a configuration names (one of [`NAMES`](Self::NAMES), any case), with the
    /// staleness bound written beside it: `bounded_staleness` needs one, and no other level
    /// takes one.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rwsplit_core::{Consistency, LevelNameError, Staleness};
    /// let bound = Staleness::time(Duration::from_secs(2));
    /// assert_eq!(Consistency::named("Strong", None), Ok(Consistency::Strong));
    /// assert_eq!(
    ///     Consistency::named("bounded_staleness", Some(bound)),
    ///     Ok(Consistency::BoundedStaleness(bound))
    /// );
    /// assert_eq!(Consistency::named("session", Some(bound)), Err(LevelNameError::TakesNoBound("session")));
    /// ```
    pub fn named(name: &str, bound: Option<Staleness>) -> Result<Consistency, LevelNameError> {
        let level = match name.trim().to_ascii_lowercase().as_str() {
            "session" => Consistency::Session,
            "eventual" => Consistency::Eventual,
            "strong" => Consistency::Strong,
            "bounded_staleness" => {
                let bound = bound.ok_or(LevelNameError::NeedsBound("bounded_staleness"))?;
                return Ok(Consistency::BoundedStaleness(bound));
            }
            _ => return Err(LevelNameError::Unknown(name.chars().take(40).collect())),
        };
        match bound {
            Some(_) => Err(LevelNameError::TakesNoBound(level.name())),
            None => Ok(level),
        }
    }
}

/// Why a configuration's name and bound make no level ([`Consistency::named`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LevelNameError {
    /// No level has this name (its first 40 characters).
    #[error("unknown consistency `{0}` (expected session, eventual, bounded_staleness or strong)")]
    Unknown(String),
    /// The level needs a staleness bound, and none was given.
    #[error("{0} needs a staleness bound")]
    NeedsBound(&'static str),
    /// A staleness bound was given for a level that takes none.
    #[error("{0} takes no staleness bound")]
    TakesNoBound(&'static str),
}

/// A staleness bound in time, in bytes of replication lag, or both (then both must hold).
///
/// ```
/// use std::time::Duration;
/// use rwsplit_core::{Lag, Staleness};
/// let bound = Staleness::time(Duration::from_millis(500)).and_bytes(1 << 20);
/// assert!(bound.allows(&Lag::new(Some(10), Some(Duration::from_millis(20)))));
/// assert!(!bound.allows(&Lag::new(Some(10), None))); // unknown time lag
/// assert!(!bound.allows(&Lag::new(Some(2 << 20), Some(Duration::ZERO))));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Staleness {
    max_time: Option<Duration>,
    max_bytes: Option<u64>,
}

impl Staleness {
    /// At most `max` behind in time (`now() - pg_last_xact_replay_timestamp()`,
    /// `Seconds_Behind_Master`, a heartbeat table …).
    #[must_use]
    pub const fn time(max: Duration) -> Self {
        Self { max_time: Some(max), max_bytes: None }
    }

    /// At most `max` bytes of replication stream behind (PostgreSQL WAL bytes).
    #[must_use]
    pub const fn bytes(max: u64) -> Self {
        Self { max_time: None, max_bytes: Some(max) }
    }

    /// Also bound the time lag.
    #[must_use]
    pub const fn and_time(mut self, max: Duration) -> Self {
        self.max_time = Some(max);
        self
    }

    /// Also bound the byte lag.
    #[must_use]
    pub const fn and_bytes(mut self, max: u64) -> Self {
        self.max_bytes = Some(max);
        self
    }

    /// The time bound, if any.
    #[must_use]
    pub const fn max_time(&self) -> Option<Duration> {
        self.max_time
    }

    /// The byte bound, if any.
    #[must_use]
    pub const fn max_bytes(&self) -> Option<u64> {
        self.max_bytes
    }

    /// Whether a replica with `lag` was fresh enough when the lag was measured: every bound set
    /// is known and met. The router asks [`allows_at`](Self::allows_at) instead.
    #[must_use]
    pub fn allows(&self, lag: &Lag) -> bool {
        self.allows_time(lag, lag.time())
    }

    /// Whether a replica with `lag` is fresh enough at `now`: the time bound against
    /// [`Lag::staleness_at`] (which grows while nothing new is learnt of the primary), the
    /// byte bound against the measured bytes; every bound set is known and met.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use rwsplit_core::{Lag, Staleness};
    /// let t = Instant::now();
    /// let caught_up = Lag::zero().with_fresh_as_of(t);
    /// let bound = Staleness::time(Duration::from_millis(500));
    /// assert!(bound.allows_at(&caught_up, t + Duration::from_millis(400)));
    /// // No news of the primary for 600 ms: it may have written since, the replica cannot
    /// // prove it is within 500 ms.
    /// assert!(!bound.allows_at(&caught_up, t + Duration::from_millis(600)));
    /// ```
    #[must_use]
    pub fn allows_at(&self, lag: &Lag, now: Instant) -> bool {
        self.allows_time(lag, lag.staleness_at(now))
    }

    fn allows_time(&self, lag: &Lag, time: Option<Duration>) -> bool {
        let time_ok = match (self.max_time, time) {
            (None, _) => true,
            (Some(max), Some(t)) => t <= max,
            (Some(_), None) => false,
        };
        let bytes_ok = match (self.max_bytes, lag.bytes()) {
            (None, _) => true,
            (Some(max), Some(b)) => b <= max,
            (Some(_), None) => false,
        };
        time_ok && bytes_ok
    }

    /// Whether a *known* lag exceeds a bound; unknown lag does not. Used for the router's
    /// baseline exclusion of badly lagging replicas.
    pub(crate) fn exceeded_by(&self, lag: &Lag) -> bool {
        let time = matches!((self.max_time, lag.time()), (Some(max), Some(t)) if t > max);
        let bytes = matches!((self.max_bytes, lag.bytes()), (Some(max), Some(b)) if b > max);
        time || bytes
    }
}

/// [`Staleness::allows`] with the bounds converted once, for checking many replicas: each unit
/// is compared as one integer, an unknown lag mapping above every bound and an absent bound
/// above every lag.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LagBound {
    max_nanos: u128,
    max_bytes: u128,
}

impl LagBound {
    pub(crate) fn new(s: &Staleness) -> Self {
        Self {
            max_nanos: s.max_time.map_or(u128::MAX, |t| t.as_nanos()),
            max_bytes: s.max_bytes.map_or(u128::MAX, u128::from),
        }
    }

    /// The same answer as [`Staleness::allows_at`].
    #[inline(always)]
    pub(crate) fn allows_at(&self, lag: &Lag, now: Instant) -> bool {
        // An unknown time maps to `u128::MAX`: above any set bound (the largest `Duration` has
        // fewer nanoseconds), equal to an absent one. Likewise bytes, with `2^64`.
        let nanos = lag.staleness_at(now).map_or(u128::MAX, |t| t.as_nanos());
        let bytes = lag.bytes().map_or(1 << 64, u128::from);
        (nanos <= self.max_nanos) & (bytes <= self.max_bytes)
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    /// Every name a configuration can give, with and without a bound; each level named reads
    /// back under its own name.
    #[rstest]
    #[case("session", None, Ok(Consistency::Session))]
    #[case(" EVENTUAL ", None, Ok(Consistency::Eventual))]
    #[case("strong", None, Ok(Consistency::Strong))]
    #[case(
        "bounded_staleness",
        Some(Staleness::time(MS(5))),
        Ok(Consistency::BoundedStaleness(Staleness::time(MS(5))))
    )]
    #[case("bounded_staleness", None, Err(LevelNameError::NeedsBound("bounded_staleness")))]
    #[case("strong", Some(Staleness::bytes(1)), Err(LevelNameError::TakesNoBound("strong")))]
    #[case("read_your_writes", None, Err(LevelNameError::Unknown("read_your_writes".into())))]
    #[case("", None, Err(LevelNameError::Unknown(String::new())))]
    fn named(
        #[case] name: &str,
        #[case] bound: Option<Staleness>,
        #[case] want: Result<Consistency, LevelNameError>,
    ) {
        let got = Consistency::named(name, bound);
        assert_eq!(got, want);
        if let Ok(level) = got {
            assert_eq!(level.name(), name.trim().to_ascii_lowercase());
            assert!(Consistency::NAMES.contains(&level.name()));
        }
    }

    /// An unknown name is clipped in the error (untrusted text).
    #[test]
    fn an_unknown_name_is_clipped() {
        let long = "x".repeat(1000);
        let Err(LevelNameError::Unknown(shown)) = Consistency::named(&long, None) else {
            panic!("not unknown")
        };
        assert_eq!(shown.len(), 40);
    }

    #[rstest]
    #[case(Staleness::time(MS(100)), Lag::new(None, Some(MS(100))), true, false)]
    #[case(Staleness::time(MS(100)), Lag::new(None, Some(MS(101))), false, true)]
    #[case(Staleness::time(MS(100)), Lag::new(Some(0), None), false, false)]
    #[case(Staleness::bytes(10), Lag::new(Some(10), None), true, false)]
    #[case(Staleness::bytes(10), Lag::new(Some(11), None), false, true)]
    #[case(Staleness::bytes(10), Lag::unknown(), false, false)]
    #[case(Staleness::bytes(10).and_time(MS(5)), Lag::new(Some(1), Some(MS(5))), true, false)]
    #[case(Staleness::bytes(10).and_time(MS(5)), Lag::new(Some(1), Some(MS(6))), false, true)]
    #[case(Staleness::bytes(10).and_time(MS(5)), Lag::new(Some(1), None), false, false)]
    #[case(Staleness::time(MS(5)).and_bytes(10), Lag::new(Some(11), Some(MS(1))), false, true)]
    fn bounds(
        #[case] s: Staleness,
        #[case] lag: Lag,
        #[case] allows: bool,
        #[case] exceeded: bool,
    ) {
        assert_eq!(s.allows(&lag), allows);
        // A lag without an instant is judged as measured, whenever it is asked.
        let later = Instant::now() + Duration::from_secs(3600);
        assert_eq!(s.allows_at(&lag, later), allows);
        assert_eq!(LagBound::new(&s).allows_at(&lag, later), allows);
        assert_eq!(s.exceeded_by(&lag), exceeded);
    }

    /// A bound on time is a bound on the time since the replica was last proven fresh, judged
    /// when the read is routed, not as of the last measurement. The measured time does not
    /// matter once the instant is known (it says 0 while the primary is gone).
    #[rstest]
    #[case::just_proven(0, 0, true)]
    #[case::within_the_bound(0, 499, true)]
    #[case::at_the_bound(0, 500, true)]
    #[case::no_news_past_the_bound(0, 501, false)]
    #[case::measured_late_but_proven_fresh(300, 100, true)]
    #[case::measured_zero_but_no_news_for_3s(0, 3_000, false)]
    fn a_time_bound_counts_the_time_since_the_replica_was_proven_fresh(
        #[case] measured_ms: u64,
        #[case] since_proven_ms: u64,
        #[case] allowed: bool,
    ) {
        let proven = Instant::now();
        let lag = Lag::new(Some(0), Some(MS(measured_ms))).with_fresh_as_of(proven);
        let now = proven + MS(since_proven_ms);
        let bound = Staleness::time(MS(500));
        assert_eq!(bound.allows_at(&lag, now), allowed);
        assert_eq!(LagBound::new(&bound).allows_at(&lag, now), allowed);
        assert_eq!(lag.staleness_at(now), Some(MS(since_proven_ms)));
    }

    /// The precomputed bound answers exactly like `Staleness::allows`, at the extremes too.
    #[test]
    fn lag_bound_agrees_with_allows() {
        let times = [None, Some(Duration::ZERO), Some(MS(5)), Some(MS(6)), Some(Duration::MAX)];
        let times = times.into_iter().chain([Some(Duration::new(5, 999_999_999))]);
        let bytes = [None, Some(0), Some(10), Some(11), Some(u64::MAX - 1), Some(u64::MAX)];
        let times: Vec<_> = times.collect();
        let mut bounds = vec![Staleness { max_time: None, max_bytes: None }];
        for &t in &times {
            for &b in &bytes {
                bounds.push(Staleness { max_time: t, max_bytes: b });
            }
        }
        let now = Instant::now() + Duration::from_secs(1);
        for s in &bounds {
            let fast = LagBound::new(s);
            for &t in &times {
                for &b in &bytes {
                    let lag = Lag::new(b, t);
                    assert_eq!(fast.allows_at(&lag, now), s.allows(&lag), "{s:?} {lag:?}");
                    // Fresh as of an instant: judged by the time since it.
                    let aged = Lag::new(b, Some(Duration::ZERO)).with_fresh_as_of(now - MS(5));
                    let want = s.allows(&Lag::new(b, Some(MS(5))));
                    assert_eq!(fast.allows_at(&aged, now), want, "{s:?} {aged:?}");
                    assert_eq!(s.allows_at(&aged, now), want, "{s:?} {aged:?}");
                }
            }
        }
    }
}
