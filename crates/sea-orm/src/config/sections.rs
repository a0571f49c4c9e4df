//! The sections of a configuration as a file or the environment writes them, read into the
//! types the builder takes: `[router]` into [`RouterConfig`], `[monitor]` into
//! [`MonitorConfig`], `[health]` into [`HealthPolicy`], and `[policy]`'s `consistency` with its
//! bound into one [`Consistency`]. Each file form here is private: it is how serde (and
//! [`env`](super::env)) spell a section, checked once, and only the setters it calls are
//! recorded, so a section merges with what code gives the builder later (see
//! [`RoutedConnectionBuilder::router`](crate::RoutedConnectionBuilder::router)).

use std::time::Duration;

use rwsplit_core::{
    BALANCERS, Balancer, Consistency, HealthPolicy, LevelNameError, PrimaryReads, RouterConfig,
    Staleness, ZonePreference,
};
use rwsplit_monitor::MonitorConfig;
use serde::{Deserialize, Deserializer};

use super::{PolicyConfig, clip, de_duration, invalid};
use crate::error::Result;

/// `[router]`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RouterFile {
    /// How reads are spread over replicas (default `round_robin`).
    #[serde(default)]
    pub(super) balancer: Option<BalancerName>,
    /// Prefer replicas in this zone ([`ZonePreference`] around the balancer).
    pub(super) prefer_zone: Option<String>,
    /// `never`, `fallback` or `include`.
    #[serde(default, deserialize_with = "de_primary_reads")]
    pub(super) primary_reads: Option<PrimaryReads>,
    /// Tags whose replicas serve only reads routed to them.
    #[serde(default)]
    pub(super) dedicated_tags: Vec<String>,
    /// Whether read-only transactions may run on replicas.
    pub(super) read_only_transactions_on_replicas: Option<bool>,
    /// The lag in time past which a replica gets no reads.
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) max_replica_lag: Option<Duration>,
    /// … or in bytes.
    pub(super) max_replica_lag_bytes: Option<u64>,
}

impl RouterFile {
    /// The router this section describes; only what it sets is set.
    pub(super) fn into_config(self) -> Result<RouterConfig> {
        let mut rc = RouterConfig::default();
        if let Some(zone) = &self.prefer_zone
            && zone.trim().is_empty()
        {
            return Err(invalid("router.prefer_zone", "is empty"));
        }
        let balancer = self.balancer.map(BalancerName::build);
        match (self.prefer_zone, balancer) {
            (Some(zone), b) => {
                let inner = b.unwrap_or_else(|| BalancerName::ROUND_ROBIN.build());
                rc = rc.balancer(ZonePreference::new(zone, inner));
            }
            (None, Some(b)) => rc = rc.balancer(b),
            (None, None) => {}
        }
        if let Some(p) = self.primary_reads {
            rc = rc.primary_reads(p);
        }
        for (i, tag) in self.dedicated_tags.into_iter().enumerate() {
            if tag.trim().is_empty() {
                return Err(invalid(format!("router.dedicated_tags[{i}]"), "is empty"));
            }
            rc = rc.dedicated_tag(tag);
        }
        if let Some(allow) = self.read_only_transactions_on_replicas {
            rc = rc.read_only_transactions_on_replicas(allow);
        }
        if let Some(bound) = staleness(self.max_replica_lag, self.max_replica_lag_bytes) {
            rc = rc.max_replica_lag(bound);
        }
        Ok(rc)
    }
}

/// A balancer, by the name a file or the environment gives it: its index in
/// [`BALANCERS`], core's one list of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct BalancerName(usize);

impl BalancerName {
    /// Round robin, the default inside a zone preference.
    const ROUND_ROBIN: BalancerName = BalancerName(0);

    fn build(self) -> Box<dyn Balancer> {
        let (_, make) = BALANCERS.get(self.0).unwrap_or(&BALANCERS[0]);
        make()
    }

    /// The balancer named `s` (any case), or an error listing the names.
    pub(super) fn parse(s: &str) -> Result<BalancerName, String> {
        let found = BALANCERS.iter().position(|(name, _)| name.eq_ignore_ascii_case(s.trim()));
        found.map(BalancerName).ok_or_else(|| {
            let names: Vec<&str> = BALANCERS.iter().map(|(name, _)| *name).collect();
            format!("unknown balancer `{}` (expected one of {})", clip(s), names.join(", "))
        })
    }
}

impl TryFrom<String> for BalancerName {
    type Error = String;

    fn try_from(s: String) -> Result<BalancerName, String> {
        BalancerName::parse(&s)
    }
}

/// `[monitor]`, as written (`position_interval = 0` turns the position feed off, as
/// [`MonitorConfig::position_interval`] does).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MonitorFile {
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) probe_interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) probe_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) max_probe_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) probe_jitter: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) position_interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) position_linger: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) idle_probe_interval: Option<Duration>,
}

impl MonitorFile {
    /// The monitor's settings this section describes; only what it sets is set.
    pub(super) fn into_config(self) -> Result<MonitorConfig> {
        for (name, d) in [
            ("monitor.probe_interval", self.probe_interval),
            ("monitor.probe_timeout", self.probe_timeout),
            ("monitor.max_probe_timeout", self.max_probe_timeout),
        ] {
            if d == Some(Duration::ZERO) {
                return Err(invalid(name, "must be more than zero"));
            }
        }
        let mut mc = MonitorConfig::default();
        let setters: [(Option<Duration>, Setter); 7] = [
            (self.probe_interval, MonitorConfig::probe_interval),
            (self.probe_timeout, MonitorConfig::probe_timeout),
            (self.max_probe_timeout, MonitorConfig::max_probe_timeout),
            (self.probe_jitter, MonitorConfig::probe_jitter),
            (self.position_interval, MonitorConfig::position_interval),
            (self.position_linger, MonitorConfig::position_linger),
            (self.idle_probe_interval, MonitorConfig::idle_probe_interval),
        ];
        for (value, set) in setters {
            if let Some(d) = value {
                mc = set(mc, d);
            }
        }
        Ok(mc)
    }
}

/// One of [`MonitorConfig`]'s duration setters.
type Setter = fn(MonitorConfig, Duration) -> MonitorConfig;

/// `[health]`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HealthFile {
    pub(super) failure_threshold: Option<u32>,
    pub(super) recovery_threshold: Option<u32>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) ban_base: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) ban_max: Option<Duration>,
}

impl HealthFile {
    /// The health policy this section describes; only what it sets is set.
    pub(super) fn into_policy(self) -> Result<HealthPolicy> {
        for (name, n) in [
            ("health.failure_threshold", self.failure_threshold),
            ("health.recovery_threshold", self.recovery_threshold),
        ] {
            if n == Some(0) {
                return Err(invalid(name, "must be at least 1"));
            }
        }
        if self.ban_base == Some(Duration::ZERO) {
            return Err(invalid("health.ban_base", "must be more than zero"));
        }
        if let (Some(base), Some(max)) = (self.ban_base, self.ban_max)
            && max < base
        {
            return Err(invalid("health.ban_max", "is shorter than health.ban_base"));
        }
        let mut p = HealthPolicy::default();
        if let Some(n) = self.failure_threshold {
            p = p.failure_threshold(n);
        }
        if let Some(n) = self.recovery_threshold {
            p = p.recovery_threshold(n);
        }
        if let Some(d) = self.ban_base {
            p = p.ban_base(d);
        }
        if let Some(d) = self.ban_max {
            p = p.ban_max(d);
        }
        Ok(p)
    }
}

/// `[policy]`, as written: [`PolicyConfig`] with the consistency by name and its bound beside
/// it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PolicyFile {
    pub(super) read_your_writes: Option<bool>,
    pub(super) hedged_reads: Option<bool>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) wait_for_replica: Option<Duration>,
    #[serde(default)]
    pub(super) consistency: Option<String>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) staleness: Option<Duration>,
    pub(super) staleness_bytes: Option<u64>,
    pub(super) read_retries: Option<u8>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) replica_read_timeout: Option<Duration>,
    pub(super) on_replica_refusal: Option<crate::send::refusal::OnReplicaRefusal>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) connect_wait: Option<Duration>,
}

impl TryFrom<PolicyFile> for PolicyConfig {
    type Error = crate::error::Error;

    fn try_from(p: PolicyFile) -> Result<PolicyConfig> {
        let bound = staleness(p.staleness, p.staleness_bytes);
        // The level's name and bound are core's to check; the fields are named here.
        let consistency = match p.consistency {
            Some(name) => Some(Consistency::named(&name, bound).map_err(|e| match e {
                LevelNameError::NeedsBound(level) => invalid(
                    "policy.consistency",
                    format!("{level} needs policy.staleness or policy.staleness_bytes"),
                ),
                LevelNameError::TakesNoBound(_) => invalid(
                    staleness_field(&p.staleness),
                    "only means something with policy.consistency = \"bounded_staleness\"",
                ),
                e => invalid("policy.consistency", e.to_string()),
            })?),
            None if bound.is_some() => {
                return Err(invalid(
                    staleness_field(&p.staleness),
                    "only means something with policy.consistency = \"bounded_staleness\"",
                ));
            }
            None => None,
        };
        Ok(PolicyConfig {
            read_your_writes: p.read_your_writes,
            hedged_reads: p.hedged_reads,
            wait_for_replica: p.wait_for_replica,
            consistency,
            read_retries: p.read_retries,
            replica_read_timeout: p.replica_read_timeout,
            on_replica_refusal: p.on_replica_refusal,
            connect_wait: p.connect_wait,
        })
    }
}

/// The field a staleness bound was given in.
fn staleness_field(time: &Option<Duration>) -> &'static str {
    if time.is_some() { "policy.staleness" } else { "policy.staleness_bytes" }
}

/// `[router]` into a [`RouterConfig`] (for `#[serde(deserialize_with)]`).
pub(super) fn router<'de, D: Deserializer<'de>>(d: D) -> Result<RouterConfig, D::Error> {
    use serde::de::Error as _;
    RouterFile::deserialize(d)?.into_config().map_err(D::Error::custom)
}

/// `[monitor]` into a [`MonitorConfig`].
pub(super) fn monitor<'de, D: Deserializer<'de>>(d: D) -> Result<MonitorConfig, D::Error> {
    use serde::de::Error as _;
    MonitorFile::deserialize(d)?.into_config().map_err(D::Error::custom)
}

/// `[health]` into a [`HealthPolicy`].
pub(super) fn health<'de, D: Deserializer<'de>>(d: D) -> Result<HealthPolicy, D::Error> {
    use serde::de::Error as _;
    HealthFile::deserialize(d)?.into_policy().map_err(D::Error::custom)
}

/// A staleness bound from a time and/or a byte bound.
fn staleness(time: Option<Duration>, bytes: Option<u64>) -> Option<Staleness> {
    match (time, bytes) {
        (Some(t), Some(b)) => Some(Staleness::time(t).and_bytes(b)),
        (Some(t), None) => Some(Staleness::time(t)),
        (None, Some(b)) => Some(Staleness::bytes(b)),
        (None, None) => None,
    }
}

fn de_primary_reads<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PrimaryReads>, D::Error> {
    use serde::de::Error as _;
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) => parse_primary_reads(&s).map(Some).map_err(D::Error::custom),
    }
}

/// `never`, `fallback` or `include` (any case).
pub(super) fn parse_primary_reads(s: &str) -> Result<PrimaryReads, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "never" => Ok(PrimaryReads::Never),
        "fallback" => Ok(PrimaryReads::Fallback),
        "include" => Ok(PrimaryReads::Include),
        _ => Err(format!(
            "unknown primary_reads `{}` (expected never, fallback or include)",
            clip(s)
        )),
    }
}
