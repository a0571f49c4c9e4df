//! The per-node health state machine.

use std::time::{Duration, Instant};

use crate::role::Role;

/// A node's health.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Health {
    /// Healthy: routable.
    #[default]
    Up,
    /// Recent failures or a passive warning: routable, after every `Up` replica.
    Suspect,
    /// Failed repeatedly: not routable (the primary excepted).
    Down,
}

/// Thresholds and ban durations for [`HealthTracker`].
///
/// ```
/// use std::time::Duration;
/// use rwsplit_core::HealthPolicy;
/// let p = HealthPolicy::default().failure_threshold(5).ban_base(Duration::from_secs(2));
/// assert_eq!((p.failure_threshold_value(), p.recovery_threshold_value()), (5, 2));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct HealthPolicy {
    failure_threshold: u32,
    recovery_threshold: u32,
    ban_base: Duration,
    ban_max: Duration,
    /// Which settings a setter gave ([`HealthPolicy::merge`]): bit 0 failures, 1 recoveries,
    /// 2 the first ban, 3 the longest.
    set: u8,
}

impl Default for HealthPolicy {
    /// 3 consecutive failures ban; 2 consecutive successes readmit; bans of 5 s, doubling up to
    /// 5 min each time a readmitted node fails again within that long (a node that stays down
    /// is banned 5 s at a time, so it is readmitted within about 5 s of recovering).
    fn default() -> Self {
        Self {
            failure_threshold: 3,
            recovery_threshold: 2,
            ban_base: Duration::from_secs(5),
            ban_max: Duration::from_secs(300),
            set: 0,
        }
    }
}

impl HealthPolicy {
    /// Consecutive failures that take a node `Down` (at least 1).
    #[must_use]
    pub fn failure_threshold(mut self, n: u32) -> Self {
        self.failure_threshold = n.max(1);
        self.set |= 1;
        self
    }

    /// Consecutive successes that bring a node back `Up` (at least 1).
    #[must_use]
    pub fn recovery_threshold(mut self, n: u32) -> Self {
        self.recovery_threshold = n.max(1);
        self.set |= 2;
        self
    }

    /// The first ban's duration.
    #[must_use]
    pub fn ban_base(mut self, d: Duration) -> Self {
        self.ban_base = d;
        self.set |= 4;
        self
    }

    /// The longest ban.
    #[must_use]
    pub fn ban_max(mut self, d: Duration) -> Self {
        self.ban_max = d;
        self.set |= 8;
        self
    }

    /// `later` over this policy: each setting `later` was given replaces this one's, the
    /// others keep this one's (a file's thresholds, then a ban set in code: both kept).
    ///
    /// ```
    /// use rwsplit_core::HealthPolicy;
    /// let p = HealthPolicy::default().failure_threshold(5).merge(HealthPolicy::default().recovery_threshold(4));
    /// assert_eq!((p.failure_threshold_value(), p.recovery_threshold_value()), (5, 4));
    /// ```
    #[must_use]
    pub fn merge(mut self, later: HealthPolicy) -> Self {
        let given = |bit: u8| later.set & bit != 0;
        if given(1) {
            self.failure_threshold = later.failure_threshold;
        }
        if given(2) {
            self.recovery_threshold = later.recovery_threshold;
        }
        if given(4) {
            self.ban_base = later.ban_base;
        }
        if given(8) {
            self.ban_max = later.ban_max;
        }
        self.set |= later.set;
        self
    }

    /// The failure threshold.
    #[must_use]
    pub fn failure_threshold_value(&self) -> u32 {
        self.failure_threshold
    }

    /// The recovery threshold.
    #[must_use]
    pub fn recovery_threshold_value(&self) -> u32 {
        self.recovery_threshold
    }

    /// The ban for the `n`th consecutive ban (1-based): `ban_base × 2^(n-1)`, at most `ban_max`.
    #[must_use]
    pub fn ban_for(&self, n: u32) -> Duration {
        let shift = n.saturating_sub(1).min(31);
        self.ban_base.saturating_mul(1u32 << shift).min(self.ban_max.max(self.ban_base))
    }
}

/// The health state machine of one node: `Up` → `Suspect` → `Down` (banned), with
/// exponential backoff on repeated bans and readmission only after consecutive successes.
///
/// The shape follows pgcat's and PgDog's bans (ban on failure, primary never banned, a passing
/// check before readmission) and Envoy's outlier detection (ejection time grows with each
/// consecutive ejection: `base × 2^(n-1)`, capped).
///
/// ```text
///            failure (< threshold)           failures ≥ failure_threshold
///   Up ───────────────────────────▶ Suspect ─────────────────────────────▶ Down (banned)
///    ▲  ◀─────────────────────────────┘                                     │
///    │     recovery_threshold successes                                    │ ban expires, then
///    └──────────────────────────────────────────────────────────────────────┘ recovery_threshold
///                                                                             successes
/// ```
///
/// Failures are consecutive: a success resets the count. While a node is `Down`, successes
/// count towards readmission but it stays out until its ban has expired *and*
/// `recovery_threshold` consecutive successes were seen; a failure after the ban expired bans it
/// again for twice as long (up to `ban_max`). The backoff resets once the node has stayed `Up`
/// for `ban_max`. A primary's tracker goes through the same states, so its health is reported,
/// but it is never banned and the router never excludes it.
///
/// The tracker is plain data driven by explicit instants: the owner (typically the monitor,
/// behind its own lock) feeds it probe results and passive signals and publishes
/// [`Health`] in the next [`Topology`](crate::Topology).
///
/// ```
/// use std::time::{Duration, Instant};
/// use rwsplit_core::{Health, HealthPolicy, HealthTracker, Role};
///
/// let policy = HealthPolicy::default().failure_threshold(2).recovery_threshold(1).ban_base(Duration::from_secs(10));
/// let mut h = HealthTracker::new(Role::Replica, policy);
/// let t0 = Instant::now();
/// assert_eq!(h.record_failure(t0), Health::Suspect);
/// assert_eq!(h.record_failure(t0), Health::Down);
/// assert!(h.is_banned(t0 + Duration::from_secs(9)));
/// assert_eq!(h.record_success(t0 + Duration::from_secs(5)), Health::Down); // still banned
/// assert!(h.probe_due(t0 + Duration::from_secs(10)));
/// assert_eq!(h.record_success(t0 + Duration::from_secs(10)), Health::Up);
/// ```
#[derive(Clone, Debug)]
pub struct HealthTracker {
    policy: HealthPolicy,
    role: Role,
    health: Health,
    failures: u32,
    successes: u32,
    /// Consecutive bans, for the backoff.
    bans: u32,
    banned_until: Option<Instant>,
    up_since: Option<Instant>,
}

impl HealthTracker {
    /// A tracker for a node of `role`, starting `Up`.
    #[must_use]
    pub fn new(role: Role, policy: HealthPolicy) -> Self {
        Self {
            policy,
            role,
            health: Health::Up,
            failures: 0,
            successes: 0,
            bans: 0,
            banned_until: None,
            up_since: None,
        }
    }

    /// The current state.
    #[must_use]
    pub fn health(&self) -> Health {
        self.health
    }

    /// The policy.
    #[must_use]
    pub fn policy(&self) -> &HealthPolicy {
        &self.policy
    }

    /// Changes the role (after a promotion or demotion). A node becoming primary is unbanned.
    pub fn set_role(&mut self, role: Role) {
        self.role = role;
        if role == Role::Primary {
            self.banned_until = None;
        }
    }

    /// When the current ban ends, if banned.
    #[must_use]
    pub fn banned_until(&self) -> Option<Instant> {
        self.banned_until
    }

    /// Whether the node is banned at `now`. The primary never is.
    #[must_use]
    pub fn is_banned(&self, now: Instant) -> bool {
        self.banned_until.is_some_and(|until| now < until)
    }

    /// Whether the node is `Down` and its ban has expired: time to probe it for readmission.
    #[must_use]
    pub fn probe_due(&self, now: Instant) -> bool {
        self.health == Health::Down && !self.is_banned(now)
    }

    /// A successful request or probe at `now`.
    pub fn record_success(&mut self, now: Instant) -> Health {
        self.failures = 0;
        self.successes = self.successes.saturating_add(1);
        match self.health {
            Health::Up => {}
            Health::Suspect | Health::Down => {
                if self.successes >= self.policy.recovery_threshold && !self.is_banned(now) {
                    self.health = Health::Up;
                    self.banned_until = None;
                    self.up_since = Some(now);
                }
            }
        }
        self.health
    }

    /// A failed request or probe at `now` (connection refused, timeout, …).
    pub fn record_failure(&mut self, now: Instant) -> Health {
        self.successes = 0;
        self.failures = self.failures.saturating_add(1);
        match self.health {
            Health::Up | Health::Suspect => {
                if self.failures >= self.policy.failure_threshold {
                    self.ban(now);
                } else {
                    self.health = Health::Suspect;
                }
            }
            Health::Down => {
                if !self.is_banned(now) {
                    // Failed its readmission probe: still down, banned again as long. Only a
                    // node that came back and failed again (flapping) is banned longer, so a
                    // long outage does not delay readmission once it ends.
                    self.reban(now);
                }
            }
        }
        self.health
    }

    /// A passive warning seen at `now` (a recovery conflict, a slow response): `Up` becomes
    /// `Suspect` and readmission needs `recovery_threshold` successes again, but the failure
    /// count towards a ban does not grow. Report connection errors with
    /// [`HealthTracker::record_failure`] instead.
    pub fn mark_suspect(&mut self, now: Instant) -> Health {
        let _ = now;
        self.successes = 0;
        if self.health == Health::Up {
            self.health = Health::Suspect;
        }
        self.health
    }

    /// The same ban again, from `now`.
    fn reban(&mut self, now: Instant) {
        self.banned_until = match self.role {
            Role::Primary => None,
            Role::Replica => now.checked_add(self.policy.ban_for(self.bans.max(1))),
        };
    }

    fn ban(&mut self, now: Instant) {
        // The backoff resets after a long enough healthy spell.
        if self.up_since.is_some_and(|t| now.saturating_duration_since(t) >= self.policy.ban_max) {
            self.bans = 0;
        }
        self.bans = self.bans.saturating_add(1);
        self.health = Health::Down;
        self.up_since = None;
        self.banned_until = match self.role {
            Role::Primary => None,
            Role::Replica => now.checked_add(self.policy.ban_for(self.bans)),
        };
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn policy() -> HealthPolicy {
        HealthPolicy::default()
            .failure_threshold(3)
            .recovery_threshold(2)
            .ban_base(S(10))
            .ban_max(S(60))
    }

    /// Steps: `f` failure, `s` success, `m` mark suspect, `+N` advance N seconds.
    #[rstest]
    #[case("", Health::Up)]
    #[case("f", Health::Suspect)]
    #[case("ff", Health::Suspect)]
    #[case("fff", Health::Down)]
    #[case("ffsf", Health::Suspect)]
    #[case("ffsff", Health::Suspect)]
    #[case("fs", Health::Suspect)]
    #[case("fss", Health::Up)]
    #[case("m", Health::Suspect)]
    #[case("mmm", Health::Suspect)]
    #[case("ms", Health::Suspect)]
    #[case("mss", Health::Up)]
    #[case("fffss", Health::Down)]
    #[case("fff+9ss", Health::Down)]
    #[case("fff+10ss", Health::Up)]
    #[case("fff+5s+5s", Health::Up)]
    #[case("fff+10sfs", Health::Down)]
    // A failed readmission probe bans again as long; a long outage does not grow the ban.
    #[case("fff+10f+9ss", Health::Down)]
    #[case("fff+10f+10ss", Health::Up)]
    #[case("fff+10f+10f+10ss", Health::Up)]
    // Flapping (back up, then down again within ban_max) doubles the ban.
    #[case("fff+10ssfff+19ss", Health::Down)]
    #[case("fff+10ssfff+20ss", Health::Up)]
    #[case("fff+10sss", Health::Up)]
    #[case("fff+10ssm", Health::Suspect)]
    fn replica_transitions(#[case] steps: &str, #[case] want: Health) {
        let mut h = HealthTracker::new(Role::Replica, policy());
        let mut now = Instant::now();
        let mut chars = steps.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                'f' => {
                    h.record_failure(now);
                }
                's' => {
                    h.record_success(now);
                }
                'm' => {
                    h.mark_suspect(now);
                }
                '+' => {
                    let mut n = 0u64;
                    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                        n = n * 10 + u64::from(d);
                        chars.next();
                    }
                    now += S(n);
                }
                _ => unreachable!(),
            }
        }
        assert_eq!(h.health(), want, "{steps}");
    }

    #[rstest]
    #[case(1, S(10))]
    #[case(2, S(20))]
    #[case(3, S(40))]
    #[case(4, S(60))]
    #[case(40, S(60))]
    fn backoff(#[case] n: u32, #[case] want: Duration) {
        assert_eq!(policy().ban_for(n), want);
    }

    #[test]
    fn bans_grow_when_a_node_flaps_and_reset_after_a_healthy_spell() {
        let mut h = HealthTracker::new(Role::Replica, policy());
        let t0 = Instant::now();
        for _ in 0..3 {
            h.record_failure(t0);
        }
        assert_eq!(h.banned_until(), Some(t0 + S(10)));
        // Probe fails after expiry: still down, banned as long again (10 s).
        h.record_failure(t0 + S(10));
        assert_eq!(h.banned_until(), Some(t0 + S(20)));
        // Readmitted at 20 s.
        h.record_success(t0 + S(20));
        h.record_success(t0 + S(20));
        assert_eq!(h.health(), Health::Up);
        // Fails soon again (flapping): the backoff grows (20 s).
        for _ in 0..3 {
            h.record_failure(t0 + S(30));
        }
        assert_eq!(h.banned_until(), Some(t0 + S(50)));
        h.record_success(t0 + S(50));
        h.record_success(t0 + S(50));
        // After a minute up, the next ban starts from the base again.
        for _ in 0..3 {
            h.record_failure(t0 + S(110));
        }
        assert_eq!(h.banned_until(), Some(t0 + S(120)));
        assert!(h.probe_due(t0 + S(120)));
        assert!(!h.probe_due(t0 + S(119)));
    }

    #[test]
    fn the_primary_is_never_banned() {
        let mut h = HealthTracker::new(Role::Primary, policy());
        let t0 = Instant::now();
        for _ in 0..10 {
            h.record_failure(t0);
        }
        assert_eq!(h.health(), Health::Down);
        assert_eq!(h.banned_until(), None);
        assert!(!h.is_banned(t0));
        h.record_success(t0);
        assert_eq!(h.record_success(t0), Health::Up);
    }

    #[test]
    fn promotion_lifts_a_ban() {
        let mut h = HealthTracker::new(Role::Replica, policy());
        let t0 = Instant::now();
        for _ in 0..3 {
            h.record_failure(t0);
        }
        assert!(h.is_banned(t0));
        h.set_role(Role::Primary);
        assert!(!h.is_banned(t0));
        assert_eq!(h.policy().failure_threshold_value(), 3);
    }

    #[test]
    fn thresholds_are_at_least_one() {
        let p = HealthPolicy::default().failure_threshold(0).recovery_threshold(0);
        assert_eq!((p.failure_threshold_value(), p.recovery_threshold_value()), (1, 1));
    }
}
