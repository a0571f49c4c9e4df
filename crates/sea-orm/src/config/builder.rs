//! Building a [`RoutedConnection`]: from URLs or `ConnectOptions` (the builder, its checks and
//! `connect()`), or from existing connections; and splitting the environment's list of replica
//! URLs.

use std::time::Duration;

use rwsplit_core::{Classifier, HealthPolicy, NodeId, RouterConfig};
use rwsplit_monitor::{AutoFailover, InvalidReplicationAddress, ReplicationAddress};
use sea_orm::{ConnectOptions, DatabaseConnection, DbErr};

use crate::connection::RoutedConnection;
use crate::error::{Error, Result};
use crate::nodes::Node;
use crate::nodes::probe::{GivenNode, ProbeFrom, ProbeSettings};
use crate::nodes::replica::Placement;
use crate::nodes::replica::Replica;
use crate::observe::redact::NodeUrl;
use crate::product::{Product, Unchecked};
use crate::routing::Policy;
use crate::send::deadline::{Acquire, cap};

/// Configures a [`RoutedConnection`].
///
/// ```no_run
/// # async fn demo() -> Result<(), rwsplit_sea_orm::Error> {
/// use std::time::Duration;
/// use rwsplit_sea_orm::RoutedConnection;
///
/// let db = RoutedConnection::builder()
///     .primary("postgres://app@db-primary/app")
///     .replica("postgres://app@db-replica-1/app")
///     .replica("postgres://app@db-replica-2/app")
///     .wait_for_replica(Duration::from_millis(20))
///     .connect()
///     .await?;
/// # drop(db);
/// # Ok(()) }
/// ```
///
/// Its `Debug` output names each node by its redacted URL (`postgres://***@host:port/db`),
/// never a password.
#[derive(Default)]
#[must_use]
pub struct RoutedConnectionBuilder {
    primary: Option<ConnectOptions>,
    /// Where the replicas replicate the primary from, if not its URL's host and port.
    primary_replication_address: Option<String>,
    pub(super) replicas: Vec<Replica>,
    pub(crate) policy: Policy,
    classifier: Classifier,
    pub(super) router: RouterConfig,
    health: HealthPolicy,
    /// Where more nodes come from at run time, if anywhere.
    pub(crate) discovery: Option<crate::connection::discover::Discovery>,
    pub(super) topology_interval: Option<Duration>,
    /// Explicit choices a whole-struct setter ([`router`](Self::router),
    /// [`monitor`](Self::monitor)) must not undo: applied over it at `connect()`, whatever the
    /// order the setters were called in.
    read_only_transactions_on_replicas: Option<bool>,
    probe_interval: Option<Duration>,
    /// The setters called, by name: what [`inert_settings`] reads.
    pub(crate) given: std::collections::BTreeSet<&'static str>,
}

impl std::fmt::Debug for RoutedConnectionBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // SeaORM's `ConnectOptions` Debug prints the URL with its password: never use it.
        let url = |o: &ConnectOptions| crate::observe::redact::node_name_redacted(o.get_url());
        f.debug_struct("RoutedConnectionBuilder")
            .field("primary", &self.primary.as_ref().map(url))
            .field(
                "primary_replication_address",
                &self
                    .primary_replication_address
                    .as_deref()
                    .map(crate::observe::redact::address_redacted),
            )
            .field("replicas", &self.replicas)
            .field("policy", &self.policy)
            .field("router", &self.router)
            .field("health", &self.health)
            .field("discovery", &self.discovery)
            .field("topology_interval", &self.topology_interval)
            .field("read_only_transactions_on_replicas", &self.read_only_transactions_on_replicas)
            .field("probe_interval", &self.probe_interval)
            .finish_non_exhaustive()
    }
}

// Every setter is here, so the builder reads in one place; what a setter configures is done
// where that behaviour lives (time limits: `deadline`; topology sources: `discover`; automatic
// failover: rwsplit-monitor's `AutoFailover`; the rest: `connection/`).
impl RoutedConnectionBuilder {
    /// The primary: a URL or SeaORM `ConnectOptions`. Writes, transactions and reads that must
    /// see recent writes go here.
    pub fn primary(mut self, options: impl Into<ConnectOptions>) -> Self {
        self.primary = Some(options.into());
        self
    }

    /// Where the replicas replicate the primary from, `host:port`, when that is not its URL's
    /// host and port; see [`Replica::replication_address`]. Used by
    /// [`AutoFailover`](crate::advanced::AutoFailover) if this node is promoted again after a failover.
    pub fn primary_replication_address(mut self, address: impl Into<String>) -> Self {
        self.primary_replication_address = Some(address.into());
        self.given.insert("primary_replication_address");
        self
    }

    /// Adds a replica: a URL, SeaORM `ConnectOptions`, or a [`Replica`] with a weight, zone or
    /// tags for the router. Its sessions are made read-only (see the crate docs), so a write
    /// hidden in a function or view is refused there instead of diverging the replica (and then
    /// runs on the primary: [`on_replica_refusal`](Self::on_replica_refusal)).
    pub fn replica(mut self, replica: impl Into<Replica>) -> Self {
        self.replicas.push(replica.into());
        self
    }

    /// Adds several replicas.
    pub fn replicas<I, O>(mut self, options: I) -> Self
    where
        I: IntoIterator<Item = O>,
        O: Into<Replica>,
    {
        self.replicas.extend(options.into_iter().map(Into::into));
        self
    }

    /// Read-your-writes by replication position (default on): after each write the primary's
    /// position is recorded in the writer's scope (its tokio task, or a [`Session`](crate::Session)),
    /// and later reads in that scope go only to replicas the monitor has seen replay it, else
    /// to the primary. It costs one round trip to the primary per write (see the crate docs).
    /// With it come monotonic reads at `Consistency::Session` (see
    /// [`consistency`](Self::consistency)). Off: reads ignore the caller's own writes
    /// and earlier reads (a [`Session`](crate::Session) given a token still uses it).
    pub fn read_your_writes(mut self, on: bool) -> Self {
        self.policy.read_your_writes = on;
        self.given.insert("read_your_writes");
        self
    }

    /// When no replica is known to have a read-your-writes read's token, wait up to `max` for
    /// the closest one to replay it, in the server (PostgreSQL: its `pg_last_wal_replay_lsn()`
    /// looked at every tenth of a millisecond in one statement; MariaDB: `MASTER_GTID_WAIT`), before
    /// reading from the primary. A replica the monitor measures further behind than `max` is
    /// not waited on. Default: 10 ms (replicas at their usual lag replay a write in a
    /// millisecond or two, so reads right after a write stay off the primary).
    /// `Duration::ZERO`: no wait, the primary at once. Per call:
    /// [`RoutedConnection::wait_for_replica`] and [`RoutedConnection::primary_if_behind`].
    pub fn wait_for_replica(mut self, max: Duration) -> Self {
        self.policy.wait_for_replica = Some(max).filter(|d| !d.is_zero());
        self.given.insert("wait_for_replica");
        self
    }

    /// Whether a read on a replica still unanswered after its node's hedge delay (eight times
    /// its recent average answer time, between 25 and 150 ms) is sent to the next node of its
    /// plan as well — one that satisfies the same consistency — the first answer winning
    /// (default true). Hedges are rationed to about 2 % of reads; never for writes, reads in a
    /// transaction, or streams. A replica that left a read unanswered that long is passed over
    /// by later reads until it answers again (or its probe does), so a frozen replica costs a
    /// read tens of milliseconds instead of the pool's acquire timeout. Counted in
    /// [`Stats::hedges`](crate::Stats::hedges).
    pub fn hedged_reads(mut self, on: bool) -> Self {
        self.policy.hedged_reads = on;
        self.given.insert("hedged_reads");
        self
    }

    /// Whether `begin_with_config(_, Some(AccessMode::ReadOnly))` may run on a replica (default
    /// true). SERIALIZABLE read-only transactions stay on a PostgreSQL primary either way: hot
    /// standbys refuse them. Wins over the [`RouterConfig`]'s own setting, whether
    /// [`router`](Self::router) is called before or after.
    pub fn read_only_transactions_on_replicas(mut self, allow: bool) -> Self {
        // The router decides (rule 2 of rwsplit_core's routing order): applied to it at
        // `connect()`, so that `.router(..)` in either order keeps this choice.
        self.read_only_transactions_on_replicas = Some(allow);
        self.given.insert("read_only_transactions_on_replicas");
        self
    }

    /// What a statement classified as a read does when a replica refuses it because it writes
    /// (a user function or view that writes, which the SQL text cannot show): by default
    /// ([`OnReplicaRefusal::Primary`](crate::OnReplicaRefusal::Primary)) it runs once on the primary and returns that result, and
    /// statements of its shape go to the primary from then on; with
    /// [`OnReplicaRefusal::Fail`](crate::OnReplicaRefusal::Fail) the caller gets [`RoutingError::ReplicaRefused`](crate::RoutingError::ReplicaRefused)
    /// naming the statement, for functions with effects outside the database. See
    /// [`OnReplicaRefusal`](crate::OnReplicaRefusal).
    pub fn on_replica_refusal(mut self, then: crate::send::refusal::OnReplicaRefusal) -> Self {
        self.policy.on_replica_refusal = then;
        self.given.insert("on_replica_refusal");
        self
    }

    /// How many other nodes a failed read is retried on (default 2). Only reads outside
    /// transactions that failed to reach their node, or that a replica refused without running,
    /// are retried; writes never are.
    pub fn read_retries(mut self, retries: u8) -> Self {
        self.policy.read_retries = retries;
        self.given.insert("read_retries");
        self
    }

    /// The most one read may wait for a replica, connection acquisition included (default
    /// `None`: no fixed limit). Without one, a read on a hung replica (a SIGSTOPped server keeps
    /// its TCP port open) is given up once the monitor marks the replica down, and retried on the
    /// next candidate; a slow read on a healthy replica runs to completion. With one, a replica
    /// that does not answer in time has the read given up there (nothing counted against it: the
    /// monitor judges health) and the
    /// read retried on the next candidate — so set it above your longest legitimate replica
    /// read. The primary, as a read's last candidate, is bounded only by the caller's
    /// [deadline](RoutedConnection::deadline).
    pub fn replica_read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.policy.timeouts.replica_read = timeout;
        self.given.insert("replica_read_timeout");
        self
    }

    /// How long `connect()` keeps trying to reach the primary while it refuses connections,
    /// its name does not resolve or it does not answer (default 5 s). The first failure is
    /// logged at once (target `rwsplit`, with its cause), and so is a primary silent for a
    /// second; when the wait runs out, `connect()` returns [`Error::PrimaryUnreachable`]
    /// naming the cause. A primary that answers and refuses (the login, the database, TLS)
    /// fails at once. Set it longer for an application that may start before its database
    /// (a container started beside it). Replicas are never waited for: one that cannot be
    /// reached starts out of rotation and joins when it answers. Durations beyond 30 years are
    /// capped to 30 years.
    pub fn connect_wait(mut self, wait: Duration) -> Self {
        self.policy.timeouts.connect_wait = cap(wait);
        self
    }

    /// How long a statement may wait for a pooled connection, connecting included, on every
    /// pool. Unset, a pool that writes (the primary's, and a replica's writer once it is
    /// promoted) waits as plain SeaORM's does, sqlx's 30 s — a statement there has nowhere
    /// else to go, and one that plain SeaORM would have waited for does not fail sooner — and a
    /// replica's read-only pool 5 s, after which the read moves on to its next candidate (the
    /// primary last). Set, every pool waits this long. A node's `ConnectOptions` with its own
    /// `acquire_timeout` or `connect_timeout` keep theirs. A file's `[pool] acquire_timeout`
    /// (`DATABASE_ACQUIRE_TIMEOUT`) is this setting: called after
    /// [`into_builder`](crate::RoutedConfig::into_builder), this replaces it. A write waiting
    /// for a connection to an unreachable primary is given up as soon as the monitor sees that
    /// node replaced (a
    /// replica now, another node promoted) or marks it down — it was never sent, so it is tried
    /// once on the new primary — and otherwise fails after at most this long, unsent. A
    /// shorter timeout is therefore not needed to follow a switchover; it only bounds how long
    /// a statement waits on a pool the application itself saturates.
    /// Durations beyond 30 years are capped to 30 years.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        let timeout = cap(timeout);
        self.policy.timeouts.acquire = Acquire { write: timeout, read: timeout };
        self
    }

    /// The statement classifier, e.g. with extra side-effecting functions:
    /// `Classifier::default().with_write_functions(["audit_log"])`.
    pub fn classifier(mut self, classifier: Classifier) -> Self {
        self.classifier = classifier;
        self
    }

    /// The consistency every read gets by default (default `Consistency::Session`: every
    /// scope — its task, or a [`Session`](crate::Session) — sees its own writes and never an
    /// older state than it has read; `docs/CONSISTENCY.md`). `Consistency::Eventual` keeps
    /// read-your-writes only: a later read may see an older state than an earlier one.
    /// `Consistency::BoundedStaleness(Staleness::time(Duration::from_secs(1)))` reads only from
    /// replicas provably at most 1 s behind (unknown lag excludes a replica), else from the
    /// primary.
    pub fn consistency(mut self, consistency: rwsplit_core::Consistency) -> Self {
        self.policy.consistency = consistency;
        self.given.insert("consistency");
        self
    }

    /// The router: balancer (round robin by default), rules, lag limits; see
    /// [`RouterConfig`](crate::advanced::RouterConfig).
    ///
    /// **Merges, never drops.** Each setting `config` was given (its balancer, primary reads,
    /// read-only transactions, lag limit) replaces the builder's; the settings it was not given
    /// keep what an earlier `.router(..)` or the file's `[router]` section
    /// ([`RoutedConfig::into_builder`](crate::RoutedConfig::into_builder)) set; its rules run
    /// after the ones already there and its dedicated tags are added
    /// ([`RouterConfig::merge`](crate::advanced::RouterConfig::merge)). So adding rules to a
    /// file's router is `config.into_builder()?.router(RouterConfig::default().rule(..))`. A
    /// zone preference (a file's `prefer_zone`) is a setting of its own: a balancer given
    /// here without one chooses inside it; one with its own
    /// ([`ZonePreference`](crate::advanced::ZonePreference)) replaces it.
    /// The builder's own
    /// [`read_only_transactions_on_replicas`](Self::read_only_transactions_on_replicas), if
    /// called, wins over any `RouterConfig`'s in either order.
    pub fn router(mut self, config: RouterConfig) -> Self {
        self.router = std::mem::take(&mut self.router).merge(config);
        self.given.insert("router");
        self
    }

    /// When a replica leaves rotation and comes back: failure and recovery thresholds, ban
    /// back-off (default 3 failures, 2 successes, bans of 5 s; a node that flaps is banned twice as
    /// long each time, up to 5 min).
    ///
    /// **Merges, never drops:** each setting `policy` was given replaces the builder's, the
    /// others keep what an earlier `.health_policy(..)` or the file's `[health]` section set
    /// ([`HealthPolicy::merge`](crate::advanced::HealthPolicy::merge)).
    pub fn health_policy(mut self, policy: HealthPolicy) -> Self {
        self.health = self.health.merge(policy);
        self
    }

    /// How often the monitor probes every node (default 500 ms). Wins over the interval of a
    /// [`monitor`](Self::monitor) config, whether that is set before or after.
    pub fn probe_interval(mut self, interval: Duration) -> Self {
        self.probe_interval = Some(interval);
        self
    }

    /// Where nodes come from at run time, besides the URLs given: a Patroni cluster's REST API
    /// ([`PatroniSource`](crate::advanced::PatroniSource)), a DNS name that resolves to the replicas
    /// ([`DnsSource`](crate::advanced::DnsSource)), or a [`TopologySource`](crate::advanced::TopologySource) of your
    /// own, polled every [`topology_interval`](Self::topology_interval) (default 1 s).
    ///
    /// Each member's URL is the primary's with host and port replaced (user, password,
    /// database, parameters and pool settings kept). A member that appears gets a read-only
    /// pool, a lazy writable one and probes, and takes statements once the monitor's own probe
    /// sees it healthy and caught up (the source's roles and lag are advisory: the monitor
    /// decides); one that disappears gets no new statement at once, and its pools close once
    /// what runs on it has finished. A node the source never listed (the primary, for a DNS
    /// source of replicas) stays. A member tagged `noloadbalance` never serves reads (writes
    /// follow the primary role). `connect()` waits up to 5 s for the source's first answer.
    ///
    /// With a Patroni source, [`auto_failover`](Self::auto_failover) is refused
    /// ([`Error::FailoverWithHaManager`]): Patroni promotes, rwsplit follows.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use rwsplit_sea_orm::advanced::PatroniSource;
    /// use rwsplit_sea_orm::RoutedConnection;
    ///
    /// let db = RoutedConnection::builder()
    ///     .primary("postgres://app:secret@10.0.0.1:5432/app")
    ///     .topology(PatroniSource::new(["http://10.0.0.1:8008", "http://10.0.0.2:8008"])?)
    ///     .connect()
    ///     .await?;
    /// # drop(db);
    /// # Ok(()) }
    /// ```
    pub fn topology<S: rwsplit_monitor::TopologySource>(mut self, source: S) -> Self {
        self.discovery = Some(crate::connection::discover::Discovery::new(source));
        self
    }

    /// How often the [topology source](Self::topology) is polled (default 1 s).
    pub fn topology_interval(mut self, every: Duration) -> Self {
        self.topology_interval = Some(every);
        self.given.insert("topology_interval");
        self
    }

    /// The monitor's interval, probe timeout and jitter (default 500 ms, 1 s, 50 ms), and its
    /// position feed.
    ///
    /// **Merges, never drops:** each setting `config` was given replaces the builder's, the
    /// others keep what an earlier `.monitor(..)` or the file's `[monitor]` section set
    /// ([`MonitorConfig::merge`](crate::advanced::MonitorConfig::merge)). The builder's own
    /// [`probe_interval`](Self::probe_interval), if called, wins over any config's interval in
    /// either order.
    pub fn monitor(mut self, config: rwsplit_monitor::MonitorConfig) -> Self {
        self.policy.monitor = self.policy.monitor.merge(config);
        self
    }

    /// Turns on automatic promotion (off by default). Read [`AutoFailover`]'s risks first: an
    /// external HA manager is the better choice wherever there is one.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), rwsplit_sea_orm::Error> {
    /// use rwsplit_sea_orm::advanced::AutoFailover;
    /// use rwsplit_sea_orm::RoutedConnection;
    ///
    /// let db = RoutedConnection::builder()
    ///    .primary("mysql://app@db-1:3306/shop")
    ///    .replica("mysql://app@db-2:3306/shop")
    ///    // Promote after 5 failed probes; promotion and re-pointing need an admin account.
    ///    .auto_failover(AutoFailover::default().after_failures(5).admin_credentials("root", ""))
    ///    .connect()
    ///    .await?;
    /// # drop(db);
    /// # Ok(()) }
    /// ```
    pub fn auto_failover(mut self, config: AutoFailover) -> Self {
        self.policy.failover = Some(config);
        self.given.insert("auto_failover");
        self
    }

    /// Connects: the primary eagerly (an unreachable primary is an error), each replica lazily.
    /// Then the monitor probes every node once on connections of its own (bounded by the probe
    /// timeout), so the first statements already know every node's role and replay position; a
    /// replica that does not answer starts out of rotation, with a warning, and is probed
    /// again later.
    ///
    /// Before any connection is made, every URL is checked: the node count
    /// ([`Error::TooManyNodes`]), each URL's syntax and scheme ([`Error::InvalidUrl`]), one
    /// database for all ([`Error::BackendMismatch`]) and no node twice
    /// ([`Error::DuplicateNode`]).
    pub async fn connect(self) -> Result<RoutedConnection> {
        let this = self.resolve();
        for inert in inert_settings(&this) {
            tracing::warn!(target: "rwsplit", setting = inert.setting, with = %inert.with, "{inert}");
        }
        this.connect_resolved().await
    }

    /// The explicit choices applied over the whole-struct settings they belong to (see the
    /// fields' docs): the configuration `connect()` uses.
    pub(super) fn resolve(mut self) -> Self {
        if let Some(allow) = self.read_only_transactions_on_replicas {
            self.router = self.router.read_only_transactions_on_replicas(allow);
        }
        if let Some(every) = self.probe_interval {
            self.policy.monitor = self.policy.monitor.probe_interval(every);
        }
        self
    }

    /// `connect()` on the resolved configuration: the settings checked, the nodes' URLs
    /// checked, the primary opened and its server checked, the replicas' pools made, the
    /// connection assembled, its first answers awaited, and a topology source followed.
    async fn connect_resolved(mut self) -> Result<RoutedConnection> {
        let primary_opts = self.primary.take().ok_or(Error::PrimaryNotConfigured)?;
        self = self.check_nodes()?;
        let urls = node_urls(&primary_opts, &self.replicas)?;
        // Checked whether or not failover is on: a bad address is a configuration error.
        let given = std::iter::once(self.primary_replication_address.as_deref())
            .chain(self.replicas.iter().map(|r| r.replication_address.as_deref()));
        let addresses = replication_addresses(given, &urls)?;
        if self.policy.failover.is_some() {
            let servers = urls.len();
            tracing::warn!(target: "rwsplit", servers, majority = servers / 2 + 1, "automatic failover is on: it promotes only with every replica answering and its lock held on a majority of the servers, the lost primary among them (so a primary with one replica never fails over), and does not stop a deposed PostgreSQL primary from taking other clients' writes; read the guide's high-availability chapter for what it can lose under your replication mode");
        }
        self.policy.failover = self.policy.failover.take().map(|failover| {
            addresses.into_iter().fold(failover, |f, (i, a)| f.replication_address(i, a))
        });
        let template = primary_opts.clone();
        // The ids the configured nodes get (`NodeTable::new`): 0 the primary, then the replicas.
        let configured: Vec<(NodeId, NodeUrl)> =
            urls.iter().zip(0..).map(|((_, u), i)| (NodeId::new(i), u.clone())).collect();
        let acquire = self.policy.timeouts.acquire;
        let wait = self.policy.timeouts.connect_wait;
        let (primary, product, checks_clients) =
            open_primary(primary_opts, &urls[0].1, acquire, wait).await?;
        let replicas = std::mem::take(&mut self.replicas);
        let replicas =
            open_replicas(replicas, &urls[1..], product, acquire, checks_clients).await?;
        let (probing, start) = probing(&self.policy);
        let conn = crate::connection::assemble(
            primary,
            replicas,
            product,
            self.policy,
            self.classifier,
            self.router,
            self.health,
            probing,
            // A connection that follows a topology source changes its own node registry: it
            // owns its monitor.
            self.discovery.is_none(),
        );
        let (unanswered, replicas_checked) = crate::connection::first_answers(&conn, start).await;
        replicas_checked?;
        if let Some(mut discovery) = self.discovery {
            if let Some(every) = self.topology_interval {
                discovery = discovery.interval(every);
            }
            let template = crate::connection::discover::Template::new(
                template,
                configured,
                product,
                acquire,
                checks_clients,
            );
            discovery.start(&conn, template).await;
        }
        crate::connection::warn_pending(&conn, unanswered);
        Ok(conn)
    }

    /// The acquire timeout of each pool `connect()` would open from this builder: the
    /// primary's, then each replica's writer's and read pool's. The pools are made lazy:
    /// nothing connects.
    #[cfg(all(test, feature = "postgres"))]
    pub(crate) async fn acquire_timeouts(self) -> Vec<Duration> {
        let of = |db: &DatabaseConnection| {
            db.get_postgres_connection_pool().options().get_acquire_timeout()
        };
        let b = self.resolve();
        let acquire = b.policy.timeouts.acquire;
        let mut primary = b.primary.expect("a primary");
        primary.connect_lazy(true);
        let primary = crate::nodes::pools::open_primary(primary, acquire).await.unwrap();
        let mut out = vec![of(&primary)];
        for r in b.replicas {
            let node = crate::nodes::pools::open_replica(
                String::new(),
                r.options,
                Product::POSTGRES,
                acquire,
                r.pooling,
                false,
            )
            .await
            .unwrap();
            out.extend([of(node.user_writer()), of(node.user_conn())]);
        }
        out
    }

    /// The settings about the nodes that cannot go together, checked before any connects;
    /// a topology source's `noloadbalance` members made dedicated.
    fn check_nodes(mut self) -> Result<Self> {
        if let Some(d) = &self.discovery
            && let Some(manager) = d.ha_manager()
            && self.policy.failover.is_some()
        {
            return Err(Error::FailoverWithHaManager { manager });
        }
        if self.policy.failover.is_some()
            && let Some((i, r)) = self
                .replicas
                .iter()
                .enumerate()
                .find(|(_, r)| r.pooling != crate::product::Pooling::Direct)
        {
            return Err(Error::FailoverThroughPooler {
                node: format!("replica {}", i + 1),
                pooling: r.pooling.as_str(),
            });
        }
        if self.discovery.is_some() {
            // Members a source reports with Patroni's `noloadbalance` tag never serve reads.
            self.router = self.router.dedicated_tag(crate::connection::discover::NO_LOAD_BALANCE);
        }
        if self.replicas.len() + 1 > rwsplit_core::MAX_NODES {
            return Err(Error::TooManyNodes {
                nodes: self.replicas.len() + 1,
                max: rwsplit_core::MAX_NODES,
            });
        }
        Ok(self)
    }
}

/// The configured nodes' URLs, labelled (`primary`, `replica 1`, …), checked: parsed, one
/// backend, no node twice.
fn node_urls(primary: &ConnectOptions, replicas: &[Replica]) -> Result<Vec<(String, NodeUrl)>> {
    let primary_url = NodeUrl::parse("primary", primary.get_url())?;
    let backend = primary_url.backend();
    let mut urls: Vec<(String, NodeUrl)> = vec![("primary".to_owned(), primary_url)];
    for (i, r) in replicas.iter().enumerate() {
        let label = format!("replica {}", i + 1);
        let url = NodeUrl::parse(&label, r.options.get_url())?;
        if url.backend() != backend {
            return Err(Error::BackendMismatch {
                node: url.name().to_owned(),
                expected: backend,
                found: url.backend(),
            });
        }
        if let Some((first, seen)) = urls.iter().find(|(_, u)| u.same_node(&url)) {
            return Err(Error::DuplicateNode {
                first: first.clone(),
                first_url: seen.redacted().to_owned(),
                second: label,
                second_url: url.redacted().to_owned(),
            });
        }
        urls.push((label, url));
    }
    Ok(urls)
}

/// The primary's node, opened from `opts` at `url`, and what its server is: checked against
/// the version policy (MySQL, or a version too old for the SQL rwsplit runs, is refused here).
/// The product seam (its SQL, session set-up and error codes) is the one of the product the
/// server said it is, chosen once. Also whether the server checks for clients gone
/// (replicas stream the primary's WAL: its version, on its platform).
async fn open_primary(
    opts: ConnectOptions,
    url: &NodeUrl,
    acquire: Acquire,
    wait: Duration,
) -> Result<(Node, Product, bool)> {
    let name = url.name().to_owned();
    // The monitor opens its own connections from each node's options as given.
    let probe = ProbeFrom::Options(opts.clone());
    let record_stmt = opts.get_record_stmt_in_spans();
    let unreachable = |name: String, source, gave_up_after| Error::PrimaryUnreachable {
        node: name,
        source: url.scrub_err(source),
        gave_up_after,
    };
    // A wrong address fails within `wait`, its cause logged at the first failure, before the
    // pool (whose connect retries a refused connection in silence until its acquire timeout).
    crate::nodes::probe::first_contact(&opts, &name, wait)
        .await
        .map_err(|(source, gave_up_after)| unreachable(name.clone(), source, gave_up_after))?;
    let pool = crate::nodes::pools::open_primary(opts, acquire)
        .await
        .map_err(|source| unreachable(name.clone(), source, None))?;
    let (product, server) = match crate::product::check(&pool, &name).await {
        Ok(checked) => checked,
        Err(Unchecked::Refused(refused)) => return Err(refused.into()),
        Err(Unchecked::Unreachable(source)) => return Err(unreachable(name, source, None)),
    };
    let checks_clients = server.checks_clients();
    let node = Node::new(name, pool)
        .owned()
        .checked(Some(server))
        .recording(record_stmt)
        .probed_from(Some(probe));
    Ok((node, product, checks_clients))
}

/// The replicas' nodes, their options prepared for `product` and their `pooling`, their
/// pools made (nothing connects yet); `urls`, theirs, in order.
async fn open_replicas(
    replicas: Vec<Replica>,
    urls: &[(String, NodeUrl)],
    product: Product,
    acquire: Acquire,
    checks_clients: bool,
) -> Result<Vec<(Node, Placement)>> {
    let mut nodes = Vec::with_capacity(replicas.len());
    for (replica, (label, url)) in replicas.into_iter().zip(urls) {
        let Replica { options: mut opts, placement, pooling, .. } = replica;
        product.prepare_options(&mut opts, pooling);
        let name = url.name().to_owned();
        let invalid = |e: DbErr| Error::InvalidUrl {
            node: label.clone(),
            url: url.redacted().to_owned(),
            reason: url.scrub(&e.to_string()),
        };
        let probe = if pooling == crate::product::Pooling::Transaction {
            ProbeFrom::Framed(product.frame_monitor(opts.clone(), pooling))
        } else {
            ProbeFrom::Options(opts.clone())
        };
        let node = crate::nodes::pools::open_replica(
            name,
            opts,
            product,
            acquire,
            pooling,
            checks_clients,
        )
        .await
        .map_err(invalid)?;
        nodes.push((node.probed_from(Some(probe)), placement));
    }
    Ok(nodes)
}

/// How the monitor probes (`ProbeSettings`), and how long `connect()` waits for first
/// answers. Capped: sqlx adds its timeouts to `Instant`s, which overflow at `Duration::MAX`.
/// The monitor's connects may take longer than one probe (see `connect_timeout_value`), a
/// node's first one longer still (`first_connect_timeout_value`); the monitor bounds each.
fn probing(policy: &Policy) -> (ProbeSettings, Duration) {
    let timeout = cap(policy.monitor.first_connect_timeout_value());
    let start = cap(policy.monitor.probe_timeout_value().saturating_mul(3));
    let admin = policy
        .failover
        .as_ref()
        .and_then(|f| f.admin_credentials_value().map(|(u, p)| (u.to_owned(), p.to_owned())));
    (ProbeSettings { admin, timeout }, start)
}

/// A setting that does nothing in combination with another, which `connect()` logs at `warn`
/// (target `rwsplit`) naming both: kept a warning, not an error, where a per-call choice
/// (`db.consistent(..)`, a `Session` given a token) can still make it count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inert {
    /// The setter that does nothing.
    pub(crate) setting: &'static str,
    /// What makes it do nothing.
    pub(crate) with: &'static str,
    /// Why, and what to do.
    why: &'static str,
}

impl std::fmt::Display for Inert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} does nothing with {}: {}", self.setting, self.with, self.why)
    }
}

/// The settings of `b` (resolved) that do nothing in combination, in a fixed order. Only
/// setters called explicitly count: a default never warns.
pub(crate) fn inert_settings(b: &RoutedConnectionBuilder) -> Vec<Inert> {
    let mut out = Vec::new();
    let no_replicas = b.replicas.is_empty() && b.discovery.is_none();
    inert_by_nodes(b, no_replicas, &mut out);
    inert_placements(b, &mut out);
    if !no_replicas {
        inert_by_consistency(b, &mut out);
    }
    out
}

/// What does nothing for want of replicas, a topology source, or failover.
fn inert_by_nodes(b: &RoutedConnectionBuilder, no_replicas: bool, out: &mut Vec<Inert>) {
    let given = |s: &str| b.given.contains(s);
    if no_replicas {
        for setting in [
            "wait_for_replica",
            "hedged_reads",
            "read_retries",
            "replica_read_timeout",
            "read_only_transactions_on_replicas",
        ] {
            if given(setting) {
                out.push(Inert {
                    setting,
                    with: "no replicas",
                    why: "every statement runs on the primary; add .replica(..) or .topology(..)",
                });
            }
        }
    }
    if given("topology_interval") && b.discovery.is_none() {
        out.push(Inert {
            setting: "topology_interval",
            with: "no topology source",
            why: "nothing is polled; set .topology(..)",
        });
    }
    let addresses = given("primary_replication_address")
        || b.replicas.iter().any(|r| r.replication_address.is_some());
    if addresses && b.policy.failover.is_none() {
        out.push(Inert {
            setting: "replication_address",
            with: "no auto_failover",
            why: "only automatic failover re-points replicas at a node",
        });
    }
}

/// Replicas' placements a balancer that does not read them ignores.
fn inert_placements(b: &RoutedConnectionBuilder, out: &mut Vec<Inert>) {
    let balancer = b.router.balancer_value();
    if b.replicas.iter().any(|r| r.placement.weight != 1) && !balancer.uses_weights() {
        out.push(Inert {
            setting: "Replica::weight",
            with: "a balancer that reads no weights",
            why: "only WeightedRoundRobin reads them (router.balancer = \"weighted_round_robin\", \
                  or .router(RouterConfig::default().balancer(WeightedRoundRobin::default())))",
        });
    }
    if b.replicas.iter().any(|r| r.placement.zone.is_some()) && !balancer.uses_zones() {
        out.push(Inert {
            setting: "Replica::zone",
            with: "no zone preference",
            why: "only ZonePreference reads zones (router.prefer_zone, or \
                  .balancer(ZonePreference::new(zone, inner)) on the RouterConfig)",
        });
    }
}

/// What the consistency settings make do nothing (with replicas).
fn inert_by_consistency(b: &RoutedConnectionBuilder, out: &mut Vec<Inert>) {
    let given = |s: &str| b.given.contains(s);
    if given("read_your_writes")
        && !b.policy.read_your_writes
        && b.policy.consistency == rwsplit_core::Consistency::Session
    {
        out.push(Inert {
            setting: "read_your_writes(false)",
            with: "consistency(Session)",
            why: "Session's guarantees (a scope sees its own writes, and never an older state \
                  than it read) are off, so reads get no guarantee at all; say \
                  .consistency(Consistency::Eventual) if that is meant",
        });
    }
    if b.policy.consistency == rwsplit_core::Consistency::Strong {
        for setting in ["wait_for_replica", "hedged_reads", "replica_read_timeout"] {
            if given(setting) {
                out.push(Inert {
                    setting,
                    with: "consistency(Strong)",
                    why: "every read goes to the primary, unless a call asks for another level \
                          with db.consistent(..)",
                });
            }
        }
    }
    if b.policy.consistency == rwsplit_core::Consistency::Strong
        && given("read_your_writes")
        && b.policy.read_your_writes
    {
        out.push(Inert {
            setting: "read_your_writes",
            with: "consistency(Strong)",
            why: "every read goes to the primary, yet each write still pays a round trip for its \
                  position, unless a call asks for another level with db.consistent(..)",
        });
    }
    if !b.policy.read_your_writes
        && given("wait_for_replica")
        && b.policy.wait_for_replica.is_some()
        && b.policy.consistency != rwsplit_core::Consistency::Strong
    {
        out.push(Inert {
            setting: "wait_for_replica",
            with: "read_your_writes(false)",
            why: "reads carry no write of their own to wait for; only a Session given a token \
                  waits",
        });
    }
}

/// A connection over connections built elsewhere ([`RoutedConnection::from_connections`]),
/// with `policy`: one backend on every node, at most `MAX_NODES` of them; the monitor probes
/// from each pool's own options (a `MockDatabase` has none, and then there is no monitor) and
/// is never shared.
pub(crate) fn from_connections(
    primary: DatabaseConnection,
    replicas: Vec<DatabaseConnection>,
    policy: Policy,
) -> Result<RoutedConnection> {
    let backend = primary.get_database_backend();
    let policy_timeout = crate::send::deadline::cap(policy.monitor.first_connect_timeout_value());
    // The monitor's own connections come from each pool's options; connections that are no
    // sqlx pool (mocks) have none, and then there is no monitor.
    let given = |c: &DatabaseConnection| GivenNode::of(c).map(ProbeFrom::Given);
    let mut nodes = Vec::with_capacity(replicas.len());
    for (i, r) in replicas.into_iter().enumerate() {
        let found = r.get_database_backend();
        if found != backend {
            return Err(Error::BackendMismatch {
                node: format!("replica {}", i + 1),
                expected: backend,
                found,
            });
        }
        let probe = given(&r);
        nodes.push((
            Node::new(format!("replica {}", i + 1), r).probed_from(probe),
            Placement::default(),
        ));
    }
    if nodes.len() + 1 > rwsplit_core::MAX_NODES {
        return Err(Error::TooManyNodes { nodes: nodes.len() + 1, max: rwsplit_core::MAX_NODES });
    }
    let probe = given(&primary);
    Ok(crate::connection::assemble(
        Node::new("primary".to_owned(), primary).probed_from(probe),
        nodes,
        // Given as they are, their servers not asked: the product by their backend.
        Product::of(backend),
        policy,
        Classifier::default(),
        RouterConfig::default(),
        HealthPolicy::default(),
        ProbeSettings { admin: None, timeout: policy_timeout },
        // Probed from the application's own pools: never shared.
        false,
    ))
}

/// Splits a list of URLs (see [`RoutedConnection::from_env`]): at a comma, semicolon or
/// whitespace that is followed, after any further separators, by the start of a URL
/// (`scheme://`); separators anywhere else belong to the URL. Blanks are ignored.
pub(crate) fn split_urls(list: &str) -> Vec<String> {
    let is_sep = |c: char| c == ',' || c == ';' || c.is_whitespace();
    let mut urls = Vec::new();
    let mut start = 0;
    for (i, c) in list.char_indices() {
        if is_sep(c) && starts_url(list[i..].trim_start_matches(is_sep)) {
            urls.push(&list[start..i]);
            start = i + c.len_utf8();
        }
    }
    urls.push(&list[start..]);
    urls.into_iter()
        .map(|u| u.trim_matches(is_sep))
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether `s` begins with `scheme://` (a letter, then letters, digits, `+`, `-`, `.`).
fn starts_url(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once("://") else { return false };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// The replication addresses given, checked, by node id (the ids the configured nodes get:
/// 0 the primary, then the replicas in order; `urls` names them for errors).
fn replication_addresses<'a>(
    given: impl Iterator<Item = Option<&'a str>>,
    urls: &[(String, NodeUrl)],
) -> Result<Vec<(NodeId, ReplicationAddress)>> {
    let mut addresses = Vec::new();
    for ((address, (label, url)), i) in given.zip(urls).zip(0..) {
        let Some(address) = address else { continue };
        let parsed = address.parse().map_err(|e: InvalidReplicationAddress| Error::InvalidUrl {
            node: label.clone(),
            url: url.redacted().to_owned(),
            // Not `e`'s text: the address is quoted redacted (a URL given by mistake may hold
            // a password).
            reason: format!(
                "replication address `{}` is not host:port: {}",
                crate::observe::redact::address_redacted(address),
                e.reason()
            ),
        })?;
        addresses.push((NodeId::new(i), parsed));
    }
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::DbBackend;

    #[rstest::rstest]
    #[case("", &[])]
    #[case("postgres://a/x", &["postgres://a/x"])]
    #[case(" postgres://a/x , ,postgres://b/x,", &["postgres://a/x", "postgres://b/x"])]
    #[case("postgres://a/x;postgres://b/x", &["postgres://a/x", "postgres://b/x"])]
    #[case("postgres://a/x\n  postgres://b/x", &["postgres://a/x", "postgres://b/x"])]
    // A comma in a password is not a separator: no URL starts after it.
    #[case(
        "postgres://u:p,ss@a/x,postgres://u:p,,w@b/x",
        &["postgres://u:p,ss@a/x", "postgres://u:p,,w@b/x"]
    )]
    #[case("mysql://u:a,b;c d@h/x", &["mysql://u:a,b;c d@h/x"])]
    fn replica_lists_split_only_where_a_url_starts(#[case] input: &str, #[case] expected: &[&str]) {
        assert_eq!(split_urls(input), expected);
    }

    #[rstest::rstest]
    #[case("postgres://h/db", Some(DbBackend::Postgres))]
    #[case("postgresql://h/db", Some(DbBackend::Postgres))]
    #[case("mysql://h/db", Some(DbBackend::MySql))]
    #[case("MYSQL://h/db", Some(DbBackend::MySql))]
    // SeaORM has no driver for these: refused here, not failed later as "unreachable".
    #[case("mariadb://h/db", None)]
    #[case("sqlite::memory:", None)]
    #[case("oracle://h/db", None)]
    #[case("postgres://h:70000/db", None)]
    #[case("no scheme", None)]
    fn backends_come_from_the_scheme(#[case] url: &str, #[case] expected: Option<DbBackend>) {
        assert_eq!(NodeUrl::parse("primary", url).ok().map(|u| u.backend()), expected);
    }

    #[tokio::test]
    async fn unusable_urls_are_invalid_not_unreachable() {
        for url in ["mariadb://app:pw@127.0.0.1:1/db", "postgres://app:pw@127.0.0.1:port/db"] {
            let err = RoutedConnection::builder().primary(url).connect().await.unwrap_err();
            assert!(matches!(err, Error::InvalidUrl { .. }), "{url}: {err}");
            assert!(!err.to_string().contains("pw"), "{err}");
        }
    }

    #[tokio::test]
    async fn the_node_count_is_checked_before_any_connection() {
        // Port 1 on a blackhole address would take a connect timeout per node if pinged.
        let replicas = (0..40).map(|i| format!("postgres://u:pw@192.0.2.1:{}/db", 1000 + i));
        let started = std::time::Instant::now();
        let err = RoutedConnection::builder()
            .primary("postgres://u:pw@192.0.2.1:999/db")
            .replicas(replicas)
            .connect()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::TooManyNodes { nodes: 41, max: 32 }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[rstest::rstest]
    #[case("postgres://a:x@db1:5432/app", "postgres://b:y@DB1/app", "primary")]
    #[case("postgres://db0/app", "postgres://u:one@db1/app?sslmode=require", "replica 1")]
    #[tokio::test]
    async fn duplicate_nodes_are_refused_naming_both(
        #[case] first: &str,
        #[case] second: &str,
        #[case] first_label: &str,
    ) {
        let err = RoutedConnection::builder()
            .primary(first)
            .replica("postgres://u:one@db1/app")
            .replica(second)
            .connect()
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::DuplicateNode { .. }), "{text}");
        assert!(text.contains(first_label) && text.contains("replica"), "{text}");
        for secret in ["one", ":x", ":y"] {
            assert!(!text.contains(secret), "{text}");
        }
    }

    /// A replication address that is not `host:port` is refused before anything connects,
    /// naming the node; good ones go to the failover by node index.
    #[tokio::test]
    async fn replication_addresses_are_checked_and_kept_by_node() {
        let err = RoutedConnection::builder()
            .primary("postgres://app:hunter2@db-1:5432/app")
            .replica(
                Replica::new("postgres://app:hunter2@db-2:5432/app").replication_address("db 2"),
            )
            .connect()
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::InvalidUrl { .. }), "{text}");
        assert!(text.contains("replica 1") && text.contains("`db 2`"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");

        let urls: Vec<(String, NodeUrl)> =
            ["postgres://p:1/app", "postgres://r1:2/app", "postgres://r2:3/app"]
                .iter()
                .map(|u| ("node".to_owned(), NodeUrl::parse("node", u).unwrap()))
                .collect();
        let given = [Some("pg-1:5432"), None, Some("[fd00::3]:5432")];
        let found = replication_addresses(given.into_iter(), &urls).unwrap();
        let found: Vec<(usize, String)> =
            found.into_iter().map(|(i, a)| (i.index(), a.to_string())).collect();
        assert_eq!(found, [(0, "pg-1:5432".to_owned()), (2, "[fd00::3]:5432".to_owned())]);
    }

    /// `DATABASE_REPLICA_URLS` with passwords holding `,` as is and everything else encoded:
    /// one URL per replica, each naming its node without the password.
    #[test]
    fn replica_lists_with_nasty_passwords_split_per_url() {
        use crate::observe::redact::tests::{NASTY, assert_no_secret, encode};
        let pw =
            |raw: &str| if raw.contains(['#', '/', '?', '%']) { encode(raw) } else { raw.into() };
        let urls: Vec<String> = NASTY
            .iter()
            .enumerate()
            .map(|(i, raw)| format!("postgres://app:{}@r{i}:5432/app", pw(raw)))
            .collect();
        let list = urls.join(",");
        let split = split_urls(&list);
        assert_eq!(split, urls);
        for (i, (url, raw)) in split.iter().zip(NASTY).enumerate() {
            let node = NodeUrl::parse("replica", url).unwrap();
            assert_eq!(node.name(), format!("r{i}:5432/app"));
            assert_no_secret(&format!("{node} {node:?}"), raw);
        }
    }

    #[test]
    fn the_builders_debug_never_shows_a_password() {
        for raw in crate::observe::redact::tests::NASTY {
            let enc = crate::observe::redact::tests::encode(raw);
            let b = RoutedConnection::builder()
                .primary(format!("postgres://app:{enc}@p/app"))
                .replica(format!("postgres://app:{raw}@r1/app"))
                .replica(format!("postgres://app:{enc}@r2/app?password={enc}"));
            let shown = format!("{b:?} {b:#?}");
            crate::observe::redact::tests::assert_no_secret(&shown, raw);
            assert!(shown.contains("p/app") && shown.contains("r2/app"), "{shown}");
        }
    }

    type B = RoutedConnectionBuilder;
    type Setter = fn(B) -> B;

    /// Every pair of setters that touch the same thing, applied in both orders, gives the same
    /// configuration: an explicit choice is never undone by a later whole-struct setter.
    #[rstest::rstest]
    #[case::router_and_its_transactions(
        |b: B| b.router(RouterConfig::default().read_only_transactions_on_replicas(true)),
        |b: B| b.read_only_transactions_on_replicas(false)
    )]
    #[case::monitor_and_its_interval(
        |b: B| b.monitor(rwsplit_monitor::MonitorConfig::default().probe_interval(Duration::from_secs(9))),
        |b: B| b.probe_interval(Duration::from_secs(2))
    )]
    #[case::consistency_and_wait(
        |b: B| b.consistency(rwsplit_core::Consistency::Eventual),
        |b: B| b.wait_for_replica(Duration::from_millis(50))
    )]
    #[case::wait_and_read_your_writes(
        |b: B| b.wait_for_replica(Duration::ZERO),
        |b: B| b.read_your_writes(false)
    )]
    #[case::timeouts(
        |b: B| b.acquire_timeout(Duration::from_secs(1)),
        |b: B| b.replica_read_timeout(Some(Duration::from_secs(3)))
    )]
    #[case::hedging_and_retries(|b: B| b.hedged_reads(false), |b: B| b.read_retries(0))]
    #[case::health_and_monitor(
        |b: B| b.health_policy(HealthPolicy::default().failure_threshold(7)),
        |b: B| b.monitor(rwsplit_monitor::MonitorConfig::default().probe_timeout(Duration::from_secs(4)))
    )]
    #[case::failover_and_addresses(
        |b: B| b.auto_failover(rwsplit_monitor::AutoFailover::default().after_failures(4)),
        |b: B| b.primary_replication_address("pg-1:5432")
    )]
    #[case::topology_and_interval(
        |b: B| b.topology(rwsplit_monitor::DnsSource::new("replicas.internal:5432")),
        |b: B| b.topology_interval(Duration::from_secs(3))
    )]
    fn setters_compose_in_either_order(#[case] first: Setter, #[case] second: Setter) {
        let base = || RoutedConnection::builder().primary("postgres://p/app");
        let one = second(first(base())).resolve();
        let other = first(second(base())).resolve();
        assert_eq!(format!("{one:?}"), format!("{other:?}"));
        // And the explicit choice is the one kept.
        let both = format!("{one:?}");
        assert!(!both.contains("interval: 9s"), "{both}");
    }

    /// The file's sections, as `RoutedConfig::into_builder` gives them.
    fn from_file() -> B {
        let config: crate::config::RoutedConfig = toml::from_str(
            r#"
            primary = { url = "postgres://p/app" }
            [router]
            balancer = "lowest_lag"
            max_replica_lag = "30s"
            [monitor]
            probe_interval = "7s"
            probe_timeout = "4s"
            [health]
            failure_threshold = 6
            "#,
        )
        .unwrap();
        config.into_builder().unwrap()
    }

    fn plain() -> B {
        RoutedConnection::builder().primary("postgres://p/app")
    }

    /// What a builder resolves to: its router, monitor and health policy.
    fn resolved(b: B) -> String {
        let b = b.resolve();
        format!("{:?} {:?} {:?}", b.router, b.policy.monitor, b.health)
    }

    /// Every pair of a whole-struct setter (`router`, `monitor`, `health_policy`) with its field
    /// setter or with another whole-struct setter, in both orders, after a plain builder and
    /// after `RoutedConfig::into_builder`: both orders resolve alike, and every setting any of
    /// them gave is there (the later whole-struct setter replaces only what it sets).
    #[rstest::rstest]
    #[case::router_and_its_transactions(
        plain,
        |b: B| b.router(RouterConfig::default().balancer(rwsplit_core::LeastOutstanding::default())),
        |b: B| b.read_only_transactions_on_replicas(false),
        &["LeastOutstanding", "read_only_transactions_on_replicas: false"]
    )]
    #[case::router_transactions_and_the_field(
        plain,
        |b: B| b.router(RouterConfig::default().read_only_transactions_on_replicas(true)),
        |b: B| b.read_only_transactions_on_replicas(false),
        &["read_only_transactions_on_replicas: false"]
    )]
    #[case::router_and_router(
        plain,
        |b: B| b.router(RouterConfig::default().balancer(rwsplit_core::LeastOutstanding::default())),
        |b: B| b.router(RouterConfig::default().rule(rwsplit_core::TableRule::only_tagged(["events"], "analytics"))),
        &["LeastOutstanding", "analytics"]
    )]
    #[case::monitor_and_its_interval(
        plain,
        |b: B| b.monitor(rwsplit_monitor::MonitorConfig::default().probe_timeout(Duration::from_secs(4))),
        |b: B| b.probe_interval(Duration::from_secs(2)),
        &["timeout: 4s", " interval: 2s"]
    )]
    #[case::monitor_interval_and_the_field(
        plain,
        |b: B| b.monitor(rwsplit_monitor::MonitorConfig::default().probe_interval(Duration::from_secs(9))),
        |b: B| b.probe_interval(Duration::from_secs(2)),
        &[" interval: 2s"]
    )]
    #[case::monitor_and_monitor(
        plain,
        |b: B| b.monitor(rwsplit_monitor::MonitorConfig::default().probe_timeout(Duration::from_secs(4))),
        |b: B| b.monitor(rwsplit_monitor::MonitorConfig::default().position_linger(Duration::from_secs(3))),
        &["timeout: 4s", "position_linger: 3s"]
    )]
    #[case::health_and_health(
        plain,
        |b: B| b.health_policy(HealthPolicy::default().failure_threshold(7)),
        |b: B| b.health_policy(HealthPolicy::default().ban_base(Duration::from_secs(9))),
        &["failure_threshold: 7", "ban_base: 9s"]
    )]
    #[case::file_router_rules_and_transactions(
        from_file,
        |b: B| b.router(RouterConfig::default().rule(rwsplit_core::TableRule::only_tagged(["events"], "analytics"))),
        |b: B| b.read_only_transactions_on_replicas(false),
        &["LowestLag", "30s", "analytics", "read_only_transactions_on_replicas: false"]
    )]
    #[case::file_router_balancer_and_rules(
        from_file,
        |b: B| b.router(RouterConfig::default().balancer(rwsplit_core::RoundRobin::default())),
        |b: B| b.router(RouterConfig::default().rule(rwsplit_core::TableRule::only_tagged(["events"], "analytics"))),
        &["RoundRobin", "30s", "analytics"]
    )]
    #[case::file_monitor_and_the_interval(
        from_file,
        |b: B| b.monitor(rwsplit_monitor::MonitorConfig::default().position_linger(Duration::from_secs(3))),
        |b: B| b.probe_interval(Duration::from_secs(2)),
        &["timeout: 4s", "position_linger: 3s", " interval: 2s"]
    )]
    #[case::file_monitor_and_health(
        from_file,
        |b: B| b.health_policy(HealthPolicy::default().ban_base(Duration::from_secs(9))),
        |b: B| b.monitor(rwsplit_monitor::MonitorConfig::default().position_linger(Duration::from_secs(3))),
        &["failure_threshold: 6", "ban_base: 9s", " interval: 7s", "timeout: 4s", "position_linger: 3s", "LowestLag"]
    )]
    fn whole_struct_setters_lose_nothing(
        #[case] start: fn() -> B,
        #[case] first: Setter,
        #[case] second: Setter,
        #[case] kept: &[&str],
    ) {
        let one = resolved(second(first(start())));
        let other = resolved(first(second(start())));
        assert_eq!(one, other, "the order changed the result");
        for k in kept {
            assert!(one.contains(k), "{k} lost: {one}");
        }
        assert!(!one.contains(" interval: 9s"), "the field setter lost: {one}");
    }

    /// A file with replicas in two zones that prefers zone `a`.
    fn zoned_file() -> B {
        let config: crate::config::RoutedConfig = toml::from_str(
            r#"
            primary = { url = "postgres://p/app" }
            replicas = [
                { url = "postgres://r1/app", zone = "a" },
                { url = "postgres://r2/app", zone = "b" },
            ]
            [router]
            prefer_zone = "a"
            "#,
        )
        .unwrap();
        config.into_builder().unwrap()
    }

    /// A file's `prefer_zone` and a balancer given in code: the code's balancer chooses inside
    /// the file's zone preference, as `balancer` beside `prefer_zone` in the file would (issue
    /// 66: the preference was dropped, and the warning then asked for the `router.prefer_zone`
    /// the file had set). A balancer with a zone preference of its own replaces the file's.
    #[rstest::rstest]
    #[case::a_balancer(
        |b: B| b.router(RouterConfig::default().balancer(rwsplit_core::LeastOutstanding::default())),
        "a",
        "LeastOutstanding"
    )]
    #[case::rules_only(
        |b: B| b.router(RouterConfig::default().rule(rwsplit_core::TableRule::only_tagged(["events"], "analytics"))),
        "a",
        "RoundRobin"
    )]
    #[case::two_balancers(
        |b: B| b
            .router(RouterConfig::default().balancer(rwsplit_core::Random::default()))
            .router(RouterConfig::default().balancer(rwsplit_core::LowestLag::default())),
        "a",
        "LowestLag"
    )]
    #[case::a_zone_of_its_own(
        |b: B| b.router(RouterConfig::default().balancer(rwsplit_core::ZonePreference::new(
            "b",
            rwsplit_core::LeastOutstanding::default(),
        ))),
        "b",
        "LeastOutstanding"
    )]
    fn a_files_zone_preference_keeps_a_balancer_given_in_code(
        #[case] code: Setter,
        #[case] zone: &str,
        #[case] inner: &str,
    ) {
        let b = code(zoned_file()).resolve();
        assert_eq!(b.router.balancer_value().preferred_zone(), Some(zone));
        let shown = format!("{:?}", b.router);
        assert!(shown.contains(inner) && shown.matches("ZonePreference").count() == 1, "{shown}");
        let warnings: Vec<String> = inert_settings(&b).iter().map(ToString::to_string).collect();
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn the_explicit_choice_wins_over_the_whole_struct() {
        let b = RoutedConnection::builder()
            .read_only_transactions_on_replicas(false)
            .router(RouterConfig::default())
            .probe_interval(Duration::from_secs(2))
            .monitor(rwsplit_monitor::MonitorConfig::default())
            .resolve();
        assert_eq!(b.policy.monitor.probe_interval_value(), Duration::from_secs(2));
        assert!(format!("{:?}", b.router).contains("read_only_transactions_on_replicas: false"));
        let b = RoutedConnection::builder()
            .replica("postgres://r1/app")
            .replicas(["postgres://r2/app", "postgres://r3/app"])
            .replica("postgres://r4/app");
        assert_eq!(b.replicas.len(), 4, "replicas(..) adds, never replaces");
    }

    fn inert(b: RoutedConnectionBuilder) -> Vec<(&'static str, &'static str)> {
        inert_settings(&b.resolve()).into_iter().map(|i| (i.setting, i.with)).collect()
    }

    #[rstest::rstest]
    #[case::defaults(|b: B| b, &[])]
    #[case::hedging_without_replicas(
        |b: B| b.hedged_reads(true).read_retries(1),
        &[("hedged_reads", "no replicas"), ("read_retries", "no replicas")]
    )]
    #[case::interval_without_source(
        |b: B| b.replica("postgres://r/app").topology_interval(Duration::from_secs(2)),
        &[("topology_interval", "no topology source")]
    )]
    #[case::address_without_failover(
        |b: B| b.replica(Replica::new("postgres://r/app").replication_address("r:5432")),
        &[("replication_address", "no auto_failover")]
    )]
    #[case::address_with_failover(
        |b: B| b
            .replica("postgres://r/app")
            .primary_replication_address("p:5432")
            .auto_failover(rwsplit_monitor::AutoFailover::default()),
        &[]
    )]
    #[case::wait_with_strong(
        |b: B| b
            .replica("postgres://r/app")
            .consistency(rwsplit_core::Consistency::Strong)
            .wait_for_replica(Duration::from_millis(30))
            .hedged_reads(false),
        &[("wait_for_replica", "consistency(Strong)"), ("hedged_reads", "consistency(Strong)")]
    )]
    #[case::read_your_writes_with_strong(
        |b: B| b
            .replica("postgres://r/app")
            .read_your_writes(true)
            .consistency(rwsplit_core::Consistency::Strong),
        &[("read_your_writes", "consistency(Strong)")]
    )]
    #[case::wait_without_read_your_writes(
        |b: B| b
            .replica("postgres://r/app")
            .consistency(rwsplit_core::Consistency::Eventual)
            .wait_for_replica(Duration::from_millis(30))
            .read_your_writes(false),
        &[("wait_for_replica", "read_your_writes(false)")]
    )]
    #[case::no_wait_without_read_your_writes(
        |b: B| b
            .replica("postgres://r/app")
            .consistency(rwsplit_core::Consistency::Eventual)
            .wait_for_replica(Duration::ZERO)
            .read_your_writes(false),
        &[]
    )]
    #[case::no_read_your_writes_with_session(
        |b: B| b.replica("postgres://r/app").read_your_writes(false),
        &[("read_your_writes(false)", "consistency(Session)")]
    )]
    #[case::weight_without_weighted_balancer(
        |b: B| b.replica(Replica::new("postgres://r/app").weight(3)),
        &[("Replica::weight", "a balancer that reads no weights")]
    )]
    #[case::weight_with_weighted_balancer(
        |b: B| b
            .replica(Replica::new("postgres://r/app").weight(3))
            .router(RouterConfig::default().balancer(rwsplit_core::WeightedRoundRobin::default())),
        &[]
    )]
    #[case::zone_without_preference(
        |b: B| b.replica(Replica::new("postgres://r/app").zone("a")),
        &[("Replica::zone", "no zone preference")]
    )]
    #[case::zone_with_preference(
        |b: B| b
            .replica(Replica::new("postgres://r/app").zone("a").weight(2))
            .router(RouterConfig::default().balancer(rwsplit_core::ZonePreference::new(
                "a",
                rwsplit_core::WeightedRoundRobin::default(),
            ))),
        &[]
    )]
    fn settings_that_do_nothing_together_are_named(
        #[case] setup: Setter,
        #[case] expected: &[(&str, &str)],
    ) {
        let found = inert(setup(RoutedConnection::builder().primary("postgres://p/app")));
        assert_eq!(found, expected);
    }

    /// `connect()` logs each inert setting at `warn`, target `rwsplit`, naming both settings,
    /// before it connects anything (the primary here refuses connections at once).
    #[rstest::rstest]
    #[case::weight(
        |b: B| b.replica(Replica::new("postgres://r:1/app").weight(3)),
        "Replica::weight does nothing with a balancer that reads no weights"
    )]
    #[case::zone(
        |b: B| b.replica(Replica::new("postgres://r:1/app").zone("eu-west-1a")),
        "Replica::zone does nothing with no zone preference"
    )]
    #[case::read_your_writes_off(
        |b: B| b.replica("postgres://r:1/app").read_your_writes(false),
        "read_your_writes(false) does nothing with consistency(Session)"
    )]
    #[case::wait_with_strong(
        |b: B| b
            .replica("postgres://r:1/app")
            .consistency(rwsplit_core::Consistency::Strong)
            .wait_for_replica(Duration::from_millis(30)),
        "wait_for_replica does nothing with consistency(Strong)"
    )]
    #[case::read_your_writes_with_strong(
        |b: B| b
            .replica("postgres://r:1/app")
            .read_your_writes(true)
            .consistency(rwsplit_core::Consistency::Strong),
        "read_your_writes does nothing with consistency(Strong)"
    )]
    #[case::wait_without_read_your_writes(
        |b: B| b
            .replica("postgres://r:1/app")
            .consistency(rwsplit_core::Consistency::Eventual)
            .wait_for_replica(Duration::from_millis(30))
            .read_your_writes(false),
        "wait_for_replica does nothing with read_your_writes(false)"
    )]
    #[case::retries_without_replicas(
        |b: B| b.read_retries(1),
        "read_retries does nothing with no replicas"
    )]
    #[case::interval_without_source(
        |b: B| b.topology_interval(Duration::from_secs(2)),
        "topology_interval does nothing with no topology source"
    )]
    #[case::address_without_failover(
        |b: B| b.primary_replication_address("p:5432"),
        "replication_address does nothing with no auto_failover"
    )]
    fn connect_warns_about_each_inert_setting(#[case] setup: Setter, #[case] expected: &str) {
        let (subscriber, logs) = crate::tests_hardening::capture(tracing::Level::WARN);
        tracing::subscriber::with_default(subscriber, || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            // Refused at once, and not waited for: the warning is logged before connecting.
            let b = setup(RoutedConnection::builder().primary("postgres://u@127.0.0.1:1/app"))
                .acquire_timeout(Duration::from_millis(200))
                .connect_wait(Duration::from_millis(200));
            rt.block_on(b.connect()).unwrap_err();
        });
        let logs = logs.text();
        let warning =
            logs.lines().find(|l| l.contains(expected)).unwrap_or_else(|| panic!("{logs}"));
        assert!(warning.contains("WARN") && warning.contains("rwsplit:"), "{warning}");
    }

    #[test]
    fn an_inert_setting_reads_as_one_sentence() {
        let b = RoutedConnection::builder()
            .primary("postgres://p/app")
            .topology_interval(Duration::from_secs(1));
        let text = inert_settings(&b).remove(0).to_string();
        assert_eq!(
            text,
            "topology_interval does nothing with no topology source: nothing is polled; set .topology(..)"
        );
    }

    #[tokio::test]
    async fn a_missing_primary_is_named() {
        let err =
            RoutedConnection::builder().replica("postgres://h/db").connect().await.unwrap_err();
        assert!(matches!(err, Error::PrimaryNotConfigured));
        assert!(err.to_string().contains("no primary configured"));
    }

    #[tokio::test]
    async fn a_bad_url_names_the_node_but_not_the_password() {
        let err = RoutedConnection::builder()
            .primary("oracle://user:hunter2@h:1/db")
            .connect()
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("primary") && text.contains("h:1/db"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
