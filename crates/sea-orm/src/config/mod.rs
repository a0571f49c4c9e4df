//! [`RoutedConfig`]: the whole [`RoutedConnectionBuilder`] as data, for serde (TOML, YAML, JSON
//! through the `config` crate or figment) and for the environment ([`RoutedConfig::from_env`]).
//!
//! Every field maps onto a builder or [`Replica`] setting; nothing is accepted and ignored.
//! Unknown fields are errors (`deny_unknown_fields`), so a typo is caught where it is made.
//! Durations are written in human form (`"250ms"`, `"5s"`, `"1m 30s"`, parsed by `humantime`)
//! or as a number of seconds (`0.25`, `5`). The `[router]`, `[monitor]` and `[health]`
//! sections read into the types the builder takes ([`RouterConfig`], [`MonitorConfig`],
//! [`HealthPolicy`]), their values checked as they are read (`health.ban_max: is shorter than
//! health.ban_base`). After deserialising, [`RoutedConfig::into_builder`] checks what needs
//! the whole configuration (pools, URLs, a replica's weight or zone against the router) and
//! names the field and node of the first problem (`replicas[1].pool.max_connections: …`);
//! errors and `Debug` never show a password.
//!
//! Nodes can also come from a topology source at run time ([`TopologyConfig`]: a Patroni
//! cluster's REST API, or a DNS name whose addresses are the replicas), as with
//! [`RoutedConnectionBuilder::topology`].

// Inside the crate (this module's docs are public, so this note is not one of them): the
// `config/` folder owns every way a connection is configured and built: the builder and its
// `connect()` (`builder.rs`), the serde form (this file, `sections.rs`) and the environment
// (`env.rs`). It offers `RoutedConnectionBuilder`, `RoutedConfig` and their checks. It may call
// every floor below it: `connection/` (`assemble` and the start-up checks), `routing/` (the
// policy), `nodes/` (pools, probes, replicas), `observe/` (redaction), `send/`, `product/` and
// the error modules. Only `advanced` and the crate root stand above it. `RoutedConnection`'s
// constructors are here (the rest of its methods are `connection/facade.rs`'s): they name the
// builder and `RoutedConfig`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use rwsplit_core::{Consistency, HealthPolicy, RouterConfig};
use rwsplit_monitor::{DnsSource, MonitorConfig, PatroniSource, ReplicationAddress, SourceError};
use sea_orm::{ConnectOptions, DatabaseConnection};
use serde::Deserialize;

use crate::connection::RoutedConnection;
use crate::error::{Error, Result};
use crate::nodes::replica::Replica;
use crate::observe::redact::{NodeUrl, node_name_redacted, redact_unparsed};
use crate::product::Pooling;
use crate::routing::Policy;
use builder::RoutedConnectionBuilder;

pub(crate) mod builder;
mod env;
mod sections;
#[cfg(test)]
mod tests;

/// Making a [`RoutedConnection`]: the builder, connections built elsewhere, the environment. Its
/// other methods are `connection/facade.rs`'s; these name the builder and [`RoutedConfig`],
/// which stand above `connection/`.
impl RoutedConnection {
    /// A builder; see [`RoutedConnectionBuilder`].
    pub fn builder() -> RoutedConnectionBuilder {
        RoutedConnectionBuilder::default()
    }

    /// Wraps connections you built yourself (or `MockDatabase` connections in tests). Replica
    /// sessions are used as given: make them read-only yourself if their servers are writable.
    pub fn from_connections(
        primary: DatabaseConnection,
        replicas: Vec<DatabaseConnection>,
    ) -> Result<RoutedConnection> {
        builder::from_connections(primary, replicas, Policy::default())
    }

    /// [`from_connections`](Self::from_connections) with a policy of the test's own.
    #[cfg(test)]
    pub(crate) fn from_connections_with(
        primary: DatabaseConnection,
        replicas: Vec<DatabaseConnection>,
        policy: Policy,
    ) -> Result<RoutedConnection> {
        builder::from_connections(primary, replicas, policy)
    }

    /// Connects from the environment: `DATABASE_URL` is the primary and
    /// `DATABASE_REPLICA_URLS` an optional list of replica URLs separated by commas, semicolons
    /// or whitespace; `DATABASE_*`, `DATABASE_PRIMARY_*`, `DATABASE_REPLICA_*`,
    /// `DATABASE_REPLICA_<n>_*` and `RWSPLIT_*` variables set pools, replica placement and
    /// policy ([`RoutedConfig::from_env`](crate::RoutedConfig::from_env); the README's
    /// *Configuration* table lists them all). A separator splits the URL list only where the
    /// next URL begins (`scheme://`), so a comma inside a password (`postgres://app:a,b@r1/app`)
    /// stays part of it; a password holding `,postgres://` or the like must percent-encode its
    /// comma (`%2C`), and `#`, `/`, `?`, `%` in a password are percent-encoded as in any URL.
    pub async fn from_env() -> Result<RoutedConnection> {
        RoutedConfig::from_env()?.connect().await
    }
}

/// A [`RoutedConnection`]'s whole configuration, deserialisable with serde.
///
/// ```
/// use rwsplit_sea_orm::RoutedConfig;
///
/// let config: RoutedConfig = toml::from_str(r#"
///     primary = { url = "postgres://app:secret@db-1:5432/app", pool = { max_connections = 20 } }
///
///     [[replicas]]
///     url = "postgres://app:secret@db-2:5432/app"
///     zone = "eu-west-1a"
///     weight = 3
///
///     [[replicas]]
///     url = "postgres://app:secret@pgbouncer-3:6432/app"
///     zone = "eu-west-1b"
///     tags = ["analytics"]
///     pooling = "transaction"          # behind PgBouncer in transaction pooling
///     pool = { max_connections = 5 }
///
///     [pool]                           # every node, unless the node says otherwise
///     acquire_timeout = "2s"
///     idle_timeout = "10m"
///
///     [router]
///     balancer = "weighted_round_robin"
///     prefer_zone = "eu-west-1a"
///     max_replica_lag = "30s"
///
///     [policy]
///     wait_for_replica = "20ms"
///     read_retries = 1
///     replica_read_timeout = "5s"
///
///     [monitor]
///     probe_interval = "250ms"
///
///     [health]
///     failure_threshold = 5
///
///     [topology]                       # more nodes at run time: follow the Patroni cluster
///     patroni = ["http://10.0.0.1:8008", "http://10.0.0.2:8008"]
///     interval = "2s"
/// "#).unwrap();
/// assert_eq!(config.replicas[0].weight, 3);
/// let builder = config.into_builder().unwrap(); // checked; `.connect().await` connects
/// # drop(builder);
/// ```
///
/// The same from JSON (or YAML, or the environment through the `config` crate or figment:
/// anything serde reads):
///
/// ```
/// use rwsplit_sea_orm::RoutedConfig;
///
/// let config: RoutedConfig = serde_json::from_str(r#"{
///     "primary": { "url": "postgres://app@db-1/app" },
///     "replicas": [{ "url": "postgres://app@db-2/app", "weight": 2 }],
///     "router": { "balancer": "weighted_round_robin" },
///     "monitor": { "probe_interval": 0.25 },
///     "health": { "failure_threshold": 5 }
/// }"#).unwrap();
/// // Each section is the type the builder takes: the same value in code or in a file.
/// assert_eq!(config.monitor.probe_interval_value(), std::time::Duration::from_millis(250));
/// assert_eq!(config.health.failure_threshold_value(), 5);
/// assert!(config.router.balancer_value().uses_weights());
/// // A typo is an error, not a silently ignored setting.
/// let typo = serde_json::from_str::<RoutedConfig>(r#"{ "primary": { "url": "postgres://db-1/app", "max_conections": 5 } }"#);
/// assert!(typo.unwrap_err().to_string().contains("unknown field `max_conections`"));
/// ```
///
/// With the `config` crate, `Config::builder().add_source(File::with_name("db"))
/// .add_source(Environment::with_prefix("APP").separator("__")).build()?.try_deserialize::<RoutedConfig>()`;
/// with figment, `Figment::from(Toml::file("db.toml")).merge(Env::prefixed("APP_").split("__"))
/// .extract::<RoutedConfig>()`. Without either, [`RoutedConfig::from_env`] reads a fixed set
/// of variables (see the README's *Configuration* table).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RoutedConfig {
    /// The primary.
    pub primary: NodeConfig,
    /// The replicas, in order (`replicas[0]` is "replica 1" in errors and logs).
    #[serde(default)]
    pub replicas: Vec<ReplicaConfig>,
    /// Pool settings for every node; a node's own `pool` overrides them field by field. Its
    /// `acquire_timeout` (else its `connect_timeout`) is the builder's
    /// [`acquire_timeout`](RoutedConnectionBuilder::acquire_timeout): code that calls that
    /// after [`into_builder`](Self::into_builder) replaces it, and a node whose own `pool` sets
    /// either timeout keeps its own.
    #[serde(default)]
    pub pool: PoolConfig,
    /// The router: balancer, zone preference, primary reads, dedicated tags, lag limit. In a
    /// file, `[router]`: `balancer` by name (`round_robin` (default), `weighted_round_robin`,
    /// `random`, `least_outstanding`, `power_of_two_ewma`, `lowest_lag`), `prefer_zone`,
    /// `primary_reads` (`never`, `fallback`, `include`), `dedicated_tags`,
    /// `read_only_transactions_on_replicas`, `max_replica_lag` and/or
    /// `max_replica_lag_bytes`: each one of [`RouterConfig`]'s setters.
    #[serde(default, deserialize_with = "sections::router")]
    pub router: RouterConfig,
    /// Read-your-writes, consistency, retries, time limits.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// The monitor's probing. In a file, `[monitor]`: `probe_interval`, `probe_timeout`,
    /// `max_probe_timeout`, `probe_jitter`, `position_interval`, `position_linger`,
    /// `idle_probe_interval`, each one of [`MonitorConfig`]'s setters.
    #[serde(default, deserialize_with = "sections::monitor")]
    pub monitor: MonitorConfig,
    /// When a node is taken out of rotation and let back. In a file, `[health]`:
    /// `failure_threshold`, `recovery_threshold`, `ban_base`, `ban_max`, each one of
    /// [`HealthPolicy`]'s setters.
    #[serde(default, deserialize_with = "sections::health")]
    pub health: HealthPolicy,
    /// Where more nodes come from at run time, if anywhere (default: nowhere, only the nodes
    /// above).
    #[serde(default)]
    pub topology: TopologyConfig,
}

/// The primary's URL and pool.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct NodeConfig {
    /// Its database URL (`postgres://…`, `mysql://…`).
    pub url: String,
    /// Its pool, over [`RoutedConfig::pool`].
    #[serde(default)]
    pub pool: PoolConfig,
}

/// A replica: URL, placement for the router, pooling mode and pool.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ReplicaConfig {
    /// Its database URL.
    pub url: String,
    /// Its share for the weighted balancer (default 1); see [`Replica::weight`].
    #[serde(default = "one")]
    pub weight: u32,
    /// Its zone; see [`Replica::zone`] and [`ZonePreference`](crate::advanced::ZonePreference).
    #[serde(default)]
    pub zone: Option<String>,
    /// Its tags; see [`Replica::tag`] and [`RouterConfig::dedicated_tag`].
    #[serde(default)]
    pub tags: Vec<String>,
    /// `direct` (default), `session` or `transaction`: what pools connections in front of it
    /// (PgBouncer's pool mode); see [`Pooling`].
    #[serde(default, deserialize_with = "de_pooling")]
    pub pooling: Pooling,
    /// Where the other nodes replicate from it (`host:port`), if not its URL's host and port;
    /// see [`Replica::replication_address`].
    #[serde(default)]
    pub replication_address: Option<String>,
    /// Its pool, over [`RoutedConfig::pool`].
    #[serde(default)]
    pub pool: PoolConfig,
}

fn one() -> u32 {
    1
}

impl fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeConfig")
            .field("url", &node_name_redacted(&self.url))
            .field("pool", &self.pool)
            .finish()
    }
}

impl fmt::Debug for ReplicaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicaConfig")
            .field("url", &node_name_redacted(&self.url))
            .field("weight", &self.weight)
            .field("zone", &self.zone)
            .field("tags", &self.tags)
            .field("pooling", &self.pooling)
            .field(
                "replication_address",
                &self.replication_address.as_deref().map(crate::observe::redact::address_redacted),
            )
            .field("pool", &self.pool)
            .finish()
    }
}

/// A node's connection pool (SeaORM `ConnectOptions`). Every field is optional: unset means the
/// node-level default, then [`RoutedConfig::pool`], then SeaORM's/sqlx's default (the adapter's
/// own acquire timeout: 30 s on a pool that writes, as sqlx's, 5 s on a replica's read-only
/// pool). The two timeouts are one setting, the pool's acquire timeout (`acquire_timeout`
/// wins when both are set at one level): a node that sets either keeps it over
/// [`RoutedConfig::pool`]'s.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PoolConfig {
    /// The most connections the pool opens (at least 1).
    pub max_connections: Option<u32>,
    /// The connections it keeps open (at most `max_connections`).
    pub min_connections: Option<u32>,
    /// SeaORM's `connect_timeout`, which SeaORM 2.0 hands to sqlx as the pool's acquire
    /// timeout (`acquire_timeout`, when set too, wins): how long a statement waits for a
    /// connection, not how long opening one may take. How long `connect()` waits for the
    /// primary is [`PolicyConfig::connect_wait`].
    #[serde(default, deserialize_with = "de_duration")]
    pub connect_timeout: Option<Duration>,
    /// How long a statement may wait for a pooled connection, connecting included.
    #[serde(default, deserialize_with = "de_duration")]
    pub acquire_timeout: Option<Duration>,
    /// How long an unused connection stays open.
    #[serde(default, deserialize_with = "de_duration")]
    pub idle_timeout: Option<Duration>,
    /// How long any connection lives at most.
    #[serde(default, deserialize_with = "de_duration")]
    pub max_lifetime: Option<Duration>,
    /// Whether an idle connection is pinged before use (sqlx's default: yes).
    pub test_before_acquire: Option<bool>,
}

impl PoolConfig {
    /// This pool over `base`: each field set here wins.
    fn over(&self, base: &PoolConfig) -> PoolConfig {
        PoolConfig {
            max_connections: self.max_connections.or(base.max_connections),
            min_connections: self.min_connections.or(base.min_connections),
            connect_timeout: self.connect_timeout.or(base.connect_timeout),
            acquire_timeout: self.acquire_timeout.or(base.acquire_timeout),
            idle_timeout: self.idle_timeout.or(base.idle_timeout),
            max_lifetime: self.max_lifetime.or(base.max_lifetime),
            test_before_acquire: self.test_before_acquire.or(base.test_before_acquire),
        }
    }

    /// Checks ranges; `at` is the field path of this pool (`replicas[1].pool`).
    fn check(&self, at: &str) -> Result<()> {
        if self.max_connections == Some(0) {
            return Err(invalid(format!("{at}.max_connections"), "must be at least 1"));
        }
        if let (Some(min), Some(max)) = (self.min_connections, self.max_connections)
            && min > max
        {
            return Err(invalid(
                format!("{at}.min_connections"),
                format!("{min} is more than max_connections ({max})"),
            ));
        }
        for (name, d) in [
            ("connect_timeout", self.connect_timeout),
            ("acquire_timeout", self.acquire_timeout),
            ("max_lifetime", self.max_lifetime),
        ] {
            if d == Some(Duration::ZERO) {
                return Err(invalid(format!("{at}.{name}"), "must be more than zero"));
            }
        }
        Ok(())
    }

    /// `options` with this pool's settings.
    fn apply(&self, mut options: ConnectOptions) -> ConnectOptions {
        if let Some(n) = self.max_connections {
            options.max_connections(n);
        }
        if let Some(n) = self.min_connections {
            options.min_connections(n);
        }
        if let Some(d) = self.connect_timeout {
            options.connect_timeout(crate::send::deadline::cap(d));
        }
        if let Some(d) = self.acquire_timeout {
            options.acquire_timeout(crate::send::deadline::cap(d));
        }
        if let Some(d) = self.idle_timeout {
            options.idle_timeout(crate::send::deadline::cap(d));
        }
        if let Some(d) = self.max_lifetime {
            options.max_lifetime(crate::send::deadline::cap(d));
        }
        if let Some(on) = self.test_before_acquire {
            options.test_before_acquire(on);
        }
        options
    }
}

/// Read-your-writes, the default consistency, retries and time limits: the builder's policy
/// setters as data. In a file, `consistency` is a name (`session`, `eventual`, `strong`,
/// `bounded_staleness`) and the bound of `bounded_staleness` is written beside it:
///
/// ```toml
/// [policy]
/// consistency = "bounded_staleness"
/// staleness = "500ms"          # and/or staleness_bytes = 1048576
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "sections::PolicyFile")]
#[non_exhaustive]
pub struct PolicyConfig {
    /// Track each write's position so later reads in its scope see it (default true).
    pub read_your_writes: Option<bool>,
    /// Hedge a replica read still unanswered after its node's hedge delay on another node
    /// (default true; see the builder's `hedged_reads`).
    pub hedged_reads: Option<bool>,
    /// How long a read-your-writes read may wait for a replica to catch up before it goes to
    /// the primary (default `10ms`; `0ms`: the primary at once).
    pub wait_for_replica: Option<Duration>,
    /// The default consistency (default [`Consistency::Session`]; see
    /// [`RoutedConnectionBuilder::consistency`]).
    pub consistency: Option<Consistency>,
    /// How many other nodes a failed read is retried on (default 2).
    pub read_retries: Option<u8>,
    /// The most one read may wait for a replica (default: none).
    pub replica_read_timeout: Option<Duration>,
    /// What a read a replica refuses because it writes does: `primary` (default: run once on
    /// the primary) or `fail` ([`OnReplicaRefusal`](crate::OnReplicaRefusal)).
    pub on_replica_refusal: Option<crate::send::refusal::OnReplicaRefusal>,
    /// How long `connect()` keeps trying to reach the primary (default `5s`; see
    /// [`RoutedConnectionBuilder::connect_wait`]).
    pub connect_wait: Option<Duration>,
}

/// Where nodes come from at run time ([`RoutedConnectionBuilder::topology`]): the members of a
/// Patroni cluster ([`PatroniSource`]), or the addresses a DNS name resolves to, each a replica
/// ([`DnsSource`]). At most one of `patroni` and `dns`; with neither, the configuration's nodes
/// are all there is.
///
/// ```toml
/// [topology]
/// patroni = ["http://10.0.0.1:8008", "http://10.0.0.2:8008"]   # REST endpoints, asked in order
/// timeout = "2s"                                               # per request (default 2 s)
/// interval = "1s"                                              # between polls (default 1 s)
/// ```
///
/// or `dns = "replicas.internal:5432"`. Each member's URL is the primary's with host and port
/// replaced (see [`RoutedConnectionBuilder::topology`]). A Patroni source cannot be combined
/// with [`auto_failover`](RoutedConnectionBuilder::auto_failover): Patroni promotes, and
/// `connect()` refuses the pair with [`Error::FailoverWithHaManager`] before connecting
/// anything.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TopologyConfig {
    /// Patroni REST API endpoints, `http://host:port` (without a port, 8008; a path such as
    /// `…/patroni` is ignored), asked in order for `GET /cluster`. `https` and credentials in
    /// the URL are refused: `GET /cluster` needs none.
    pub patroni: Option<Vec<String>>,
    /// A DNS name and port, `host:port` (`[v6]:port` for an address), re-resolved on each
    /// poll; each address it resolves to is one replica.
    pub dns: Option<String>,
    /// The time one Patroni request or one DNS resolution may take (default 2 s).
    #[serde(default, deserialize_with = "de_duration")]
    pub timeout: Option<Duration>,
    /// The time between polls of the source (default 1 s).
    #[serde(default, deserialize_with = "de_duration")]
    pub interval: Option<Duration>,
}

impl fmt::Debug for TopologyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Credentials are refused in endpoints, but `Debug` runs before `validate()` does.
        let patroni = self
            .patroni
            .as_ref()
            .map(|eps| eps.iter().map(|e| redact_unparsed(e)).collect::<Vec<_>>());
        let dns =
            self.dns.as_ref().map(|d| if d.contains('@') { redact_unparsed(d) } else { d.clone() });
        f.debug_struct("TopologyConfig")
            .field("patroni", &patroni)
            .field("dns", &dns)
            .field("timeout", &self.timeout)
            .field("interval", &self.interval)
            .finish()
    }
}

impl TopologyConfig {
    /// Whether a source is configured.
    fn is_set(&self) -> bool {
        self.patroni.is_some() || self.dns.is_some()
    }

    /// Checks the source; `primary` is the primary's URL (a Patroni cluster is PostgreSQL).
    fn check(&self, primary: &str) -> Result<()> {
        match (&self.patroni, &self.dns) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "topology.dns",
                    "cannot be combined with topology.patroni: one topology source per \
                     connection",
                ));
            }
            (Some(endpoints), None) => {
                if endpoints.is_empty() {
                    return Err(invalid(
                        "topology.patroni",
                        "is empty: list at least one REST endpoint (http://host:port)",
                    ));
                }
                for (i, endpoint) in endpoints.iter().enumerate() {
                    if let Err(e) = PatroniSource::new([endpoint]) {
                        return Err(invalid(format!("topology.patroni[{i}]"), source_reason(&e)));
                    }
                }
                if NodeUrl::parse("primary", primary)
                    .is_ok_and(|u| !crate::product::runs_under_patroni(u.backend()))
                {
                    return Err(invalid(
                        "topology.patroni",
                        "Patroni runs PostgreSQL, but primary.url is a MySQL URL",
                    ));
                }
            }
            (None, Some(name)) => check_host_port("topology.dns", name)?,
            (None, None) => {
                for (name, set) in [
                    ("topology.timeout", self.timeout.is_some()),
                    ("topology.interval", self.interval.is_some()),
                ] {
                    if set {
                        return Err(invalid(
                            name,
                            "only means something with topology.patroni or topology.dns",
                        ));
                    }
                }
            }
        }
        for (name, d) in [("topology.timeout", self.timeout), ("topology.interval", self.interval)]
        {
            if d == Some(Duration::ZERO) {
                return Err(invalid(name, "must be more than zero"));
            }
        }
        Ok(())
    }

    /// `builder` following this source (checked by [`TopologyConfig::check`]).
    fn apply(self, mut builder: RoutedConnectionBuilder) -> Result<RoutedConnectionBuilder> {
        let TopologyConfig { patroni, dns, timeout, interval } = self;
        let timeout = timeout.map(crate::send::deadline::cap);
        if let Some(endpoints) = patroni {
            let mut source = PatroniSource::new(&endpoints)
                .map_err(|e| invalid("topology.patroni", source_reason(&e)))?;
            if let Some(t) = timeout {
                source = source.timeout(t);
            }
            builder = builder.topology(source);
        } else if let Some(name) = dns {
            let mut source = DnsSource::new(name.trim());
            if let Some(t) = timeout {
                source = source.timeout(t);
            }
            builder = builder.topology(source);
        }
        if let Some(every) = interval {
            builder = builder.topology_interval(crate::send::deadline::cap(every));
        }
        Ok(builder)
    }
}

/// Why a topology source refused its configuration, without the endpoint (which could hold
/// credentials: those are what is refused).
fn source_reason(e: &SourceError) -> String {
    match e {
        SourceError::InvalidEndpoint { reason, .. } => (*reason).to_owned(),
        _ => "is not a usable endpoint".to_owned(),
    }
}

/// `host:port` (`[v6]:port`), for a DNS source: the grammar of a replication address
/// ([`ReplicationAddress`]). The value is never echoed: a URL pasted here by mistake could hold a
/// password, so URLs are refused before the address is parsed.
fn check_host_port(field: &str, value: &str) -> Result<()> {
    const EXPECTED: &str = "expected host:port (e.g. replicas.internal:5432)";
    let value = value.trim();
    if value.is_empty() {
        return Err(invalid(field, format!("is empty: {EXPECTED}")));
    }
    if value.contains("://") || value.contains(['@', '/', '?', '#']) {
        return Err(invalid(field, format!("{EXPECTED}, not a URL")));
    }
    value
        .parse::<ReplicationAddress>()
        .map(drop)
        .map_err(|e| invalid(field, format!("{EXPECTED}: {}", e.reason())))
}

/// The error of a field: `field: reason`.
fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::InvalidConfig { field: field.into(), reason: reason.into() }
}

impl RoutedConfig {
    /// A configuration of just a primary, to fill in from code.
    pub fn new(primary_url: impl Into<String>) -> RoutedConfig {
        RoutedConfig {
            primary: NodeConfig { url: primary_url.into(), pool: PoolConfig::default() },
            replicas: Vec::new(),
            pool: PoolConfig::default(),
            router: RouterConfig::default(),
            policy: PolicyConfig::default(),
            monitor: MonitorConfig::default(),
            health: HealthPolicy::default(),
            topology: TopologyConfig::default(),
        }
    }

    /// Adds a replica at `url` (weight 1, no zone, no tags, direct), to fill in from code.
    #[must_use]
    pub fn replica(mut self, url: impl Into<String>) -> RoutedConfig {
        self.replicas.push(ReplicaConfig {
            url: url.into(),
            weight: 1,
            zone: None,
            tags: Vec::new(),
            pooling: Pooling::Direct,
            replication_address: None,
            pool: PoolConfig::default(),
        });
        self
    }

    /// Checks everything serde could not and names the first problem's field and node
    /// ([`Error::InvalidConfig`], or [`Error::InvalidUrl`] for a URL); see the module docs.
    pub fn validate(&self) -> Result<()> {
        check_url("primary.url", &self.primary.url)?;
        self.pool.check("pool")?;
        self.primary.pool.check("primary.pool")?;
        self.primary.pool.over(&self.pool).check("primary.pool")?;
        let weighted = self.router.balancer_value().uses_weights();
        for (i, r) in self.replicas.iter().enumerate() {
            let at = format!("replicas[{i}]");
            check_url(&format!("{at}.url"), &r.url)?;
            r.pool.check(&format!("{at}.pool"))?;
            r.pool.over(&self.pool).check(&format!("{at}.pool"))?;
            if r.weight != 1 && !weighted {
                return Err(invalid(
                    format!("{at}.weight"),
                    format!(
                        "{} is ignored: the router's balancer reads no weights; set \
                         router.balancer = \"weighted_round_robin\"",
                        r.weight,
                    ),
                ));
            }
            if r.zone.as_deref().is_some_and(|z| z.trim().is_empty()) {
                return Err(invalid(format!("{at}.zone"), "is empty"));
            }
            if let Some(j) = r.tags.iter().position(|t| t.trim().is_empty()) {
                return Err(invalid(format!("{at}.tags[{j}]"), "is empty"));
            }
        }
        if let Some(zone) = self.router.balancer_value().preferred_zone()
            && !self.replicas.iter().any(|r| r.zone.as_deref() == Some(zone))
        {
            return Err(invalid(
                "router.prefer_zone",
                format!("no replica is in zone `{}`", zone.chars().take(64).collect::<String>()),
            ));
        }
        self.topology.check(&self.primary.url)?;
        Ok(())
    }

    /// Checks the configuration ([`RoutedConfig::validate`]) and turns it into a builder, to
    /// add what data cannot say (rules, a classifier with extra write functions, automatic
    /// failover) before [`connect`](RoutedConnectionBuilder::connect). Nothing the file set is
    /// lost by what is added after: `.router(..)`, `.monitor(..)` and `.health_policy(..)`
    /// merge, replacing only the settings they are given (see
    /// [`RoutedConnectionBuilder::router`]):
    ///
    /// ```
    /// # fn demo(config: rwsplit_sea_orm::RoutedConfig) -> rwsplit_sea_orm::Result<()> {
    /// use rwsplit_sea_orm::advanced::{RouterConfig, TableRule};
    /// let builder = config
    ///     .into_builder()?
    ///     .router(RouterConfig::default().rule(TableRule::only_tagged(["events"], "analytics")));
    /// # drop(builder); Ok(()) }
    /// ```
    pub fn into_builder(self) -> Result<RoutedConnectionBuilder> {
        self.validate()?;
        let RoutedConfig { primary, replicas, pool, router, policy, monitor, health, topology } =
            self;
        // `[pool]`'s acquire timeout (or its `connect_timeout`, which SeaORM hands to sqlx as
        // the same) is every pool's: the builder's `acquire_timeout`, which code called after
        // replaces, and which a node's own timeout wins over. Only the node's own goes into its
        // options.
        let every = PoolConfig { acquire_timeout: None, connect_timeout: None, ..pool.clone() };
        let mut b = RoutedConnectionBuilder::default()
            .primary(primary.pool.over(&every).apply(ConnectOptions::new(primary.url)));
        if let Some(wait) = pool.acquire_timeout.or(pool.connect_timeout) {
            b = b.acquire_timeout(wait);
        }
        for r in replicas {
            let mut replica = Replica::new(r.pool.over(&every).apply(ConnectOptions::new(r.url)))
                .weight(r.weight)
                .pooling(r.pooling);
            if let Some(zone) = r.zone {
                replica = replica.zone(zone);
            }
            for tag in r.tags {
                replica = replica.tag(tag);
            }
            if let Some(address) = r.replication_address {
                replica = replica.replication_address(address);
            }
            b = b.replica(replica);
        }

        b = b.router(router);

        if let Some(on) = policy.hedged_reads {
            b = b.hedged_reads(on);
        }
        if let Some(on) = policy.read_your_writes {
            b = b.read_your_writes(on);
        }
        if let Some(max) = policy.wait_for_replica {
            b = b.wait_for_replica(max);
        }
        if let Some(c) = policy.consistency {
            b = b.consistency(c);
        }
        if let Some(n) = policy.read_retries {
            b = b.read_retries(n);
        }
        if let Some(then) = policy.on_replica_refusal {
            b = b.on_replica_refusal(then);
        }
        if policy.replica_read_timeout.is_some() {
            b = b.replica_read_timeout(policy.replica_read_timeout);
        }
        if let Some(wait) = policy.connect_wait {
            b = b.connect_wait(wait);
        }

        b = b.monitor(monitor).health_policy(health);
        if topology.is_set() {
            b = topology.apply(b)?;
        }
        Ok(b)
    }

    /// Checks the configuration and connects ([`RoutedConnectionBuilder::connect`]).
    pub async fn connect(self) -> Result<RoutedConnection> {
        self.into_builder()?.connect().await
    }

    /// Reads the configuration from the process environment; see
    /// [`RoutedConnection::from_env`] and the README's *Configuration* table.
    pub fn from_env() -> Result<RoutedConfig> {
        RoutedConfig::from_vars(std::env::vars_os().filter_map(|(k, v)| {
            // Names and values that are not Unicode are none of ours (ours are all ASCII).
            Some((k.into_string().ok()?, v.into_string().ok()?))
        }))
    }

    /// [`RoutedConfig::from_env`] from the given `(name, value)` pairs instead of the process
    /// environment (for tests, or a `.env` file read some other way). Empty values count as
    /// unset.
    pub fn from_vars<I, K, V>(vars: I) -> Result<RoutedConfig>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        env::read(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .filter(|(_, v)| !v.trim().is_empty())
                .collect::<BTreeMap<String, String>>(),
        )
    }
}

/// A URL must parse and be of a driver this build has; the error names the field.
fn check_url(field: &str, url: &str) -> Result<()> {
    NodeUrl::parse(field, url).map(drop)
}

/// A duration: human text (`"250ms"`, `"1m 30s"`) or a number of seconds.
fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Seconds(f64),
    }
    use serde::de::Error as _;
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Text(s)) => parse_duration(&s).map(Some).map_err(D::Error::custom),
        Some(Raw::Seconds(n)) => seconds(n).map(Some).map_err(D::Error::custom),
    }
}

/// Human text (`"250ms"`, `"5s"`, `"1m 30s"`) or a plain number of seconds (`"0.25"`).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<f64>() {
        return seconds(n);
    }
    humantime::parse_duration(s).map_err(|e| {
        format!("`{}` is not a duration ({e}); write e.g. \"250ms\", \"5s\", \"1m 30s\"", clip(s))
    })
}

fn seconds(n: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(n)
        .map_err(|_| format!("{n} is not a duration in seconds (negative or too large)"))
}

/// At most 40 characters of `s`, for error messages about values that are never secrets.
pub(crate) fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

fn de_pooling<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Pooling, D::Error> {
    use serde::de::Error as _;
    String::deserialize(d)?.parse().map_err(D::Error::custom)
}

pub(crate) fn parse_on_replica_refusal(
    s: &str,
) -> Result<crate::send::refusal::OnReplicaRefusal, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "primary" => Ok(crate::send::refusal::OnReplicaRefusal::Primary),
        "fail" => Ok(crate::send::refusal::OnReplicaRefusal::Fail),
        _ => Err(format!("unknown on_replica_refusal `{}` (expected primary or fail)", clip(s))),
    }
}
