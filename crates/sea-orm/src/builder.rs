//! Building a [`RoutedConnection`]: from URLs or `ConnectOptions`, from existing connections,
//! or from the environment.

use std::time::Duration;

use rwsplit_core::{Classifier, HealthPolicy, RouterConfig};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend};

use crate::connection::{Node, Policy, RoutedConnection};
use crate::error::{Error, Result};
use crate::probe::{GivenNode, NodeConnector};
use crate::redact::node_name;

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
#[derive(Debug, Default)]
#[must_use]
pub struct RoutedConnectionBuilder {
    primary: Option<ConnectOptions>,
    replicas: Vec<ConnectOptions>,
    pub(crate) policy: Policy,
    classifier: Classifier,
    router: RouterConfig,
    health: HealthPolicy,
}

impl RoutedConnectionBuilder {
    /// The primary: a URL or SeaORM `ConnectOptions`. Writes, transactions and reads that must
    /// see recent writes go here.
    pub fn primary(mut self, options: impl Into<ConnectOptions>) -> Self {
        self.primary = Some(options.into());
        self
    }

    /// Adds a replica: a URL or SeaORM `ConnectOptions`. Its sessions are made read-only (see
    /// the crate docs), so a misrouted write fails loudly instead of diverging the replica.
    pub fn replica(mut self, options: impl Into<ConnectOptions>) -> Self {
        self.replicas.push(options.into());
        self
    }

    /// Adds several replicas.
    pub fn replicas<I, O>(mut self, options: I) -> Self
    where
        I: IntoIterator<Item = O>,
        O: Into<ConnectOptions>,
    {
        self.replicas.extend(options.into_iter().map(Into::into));
        self
    }

    /// Read-your-writes by replication position (default on): after each write the primary's
    /// position is recorded in the writer's scope (its tokio task, or a [`Session`](crate::Session)),
    /// and later reads in that scope go only to replicas the monitor has seen replay it, else
    /// to the primary. It costs one round trip to the primary per write (see the crate docs).
    /// Off: reads ignore the caller's own writes (a [`Session`](crate::Session) given a token
    /// still uses it).
    pub fn read_your_writes(mut self, on: bool) -> Self {
        self.policy.read_your_writes = on;
        self
    }

    /// When no replica is known to have a read-your-writes read's token, wait up to `max` for
    /// the closest one to replay it (PostgreSQL: polling `pg_last_wal_replay_lsn()`; MariaDB:
    /// `MASTER_GTID_WAIT`) before reading from the primary. Default: no wait, the primary at
    /// once. Per call: [`RoutedConnection::wait_for_replica`] and
    /// [`RoutedConnection::primary_if_behind`].
    pub fn wait_for_replica(mut self, max: Duration) -> Self {
        self.policy.wait_for_replica = Some(max).filter(|d| !d.is_zero());
        self
    }

    /// Whether `begin_with_config(_, Some(AccessMode::ReadOnly))` may run on a replica (default
    /// true). SERIALIZABLE read-only transactions stay on a PostgreSQL primary either way: hot
    /// standbys refuse them.
    pub fn read_only_transactions_on_replicas(mut self, allow: bool) -> Self {
        // The router decides (rule 2 of rwsplit_core's routing order); a later `.router(..)`
        // replaces this setting with the new config's own.
        self.router = self.router.read_only_transactions_on_replicas(allow);
        self
    }

    /// How many other nodes a failed read is retried on (default 2). Only reads outside
    /// transactions that failed to reach their node, or that a replica refused without running,
    /// are retried; writes never are.
    pub fn read_retries(mut self, retries: u8) -> Self {
        self.policy.read_retries = retries;
        self
    }

    /// The statement classifier, e.g. with extra side-effecting functions:
    /// `Classifier::default().with_write_functions(["audit_log"])`.
    pub fn classifier(mut self, classifier: Classifier) -> Self {
        self.classifier = classifier;
        self
    }

    /// The consistency every read gets by default (default `Consistency::Eventual`). E.g.
    /// `Consistency::BoundedStaleness(Staleness::time(Duration::from_secs(1)))` reads only from
    /// replicas the monitor has measured to be at most 1 s behind (unknown lag excludes a
    /// replica), else from the primary.
    pub fn consistency(mut self, consistency: rwsplit_core::Consistency) -> Self {
        self.policy.consistency = consistency;
        self
    }

    /// The router: balancer (round robin by default), rules, lag limits. See
    /// `rwsplit_core::RouterConfig`.
    pub fn router(mut self, config: RouterConfig) -> Self {
        self.router = config;
        self
    }

    /// When a replica leaves rotation and comes back: failure and recovery thresholds, ban
    /// back-off (default 3 failures, 2 successes, 5 s doubling up to 5 min).
    pub fn health_policy(mut self, policy: HealthPolicy) -> Self {
        self.health = policy;
        self
    }

    /// How often the monitor probes every node (default 500 ms); see
    /// [`RoutedConnectionBuilder::monitor`].
    pub fn probe_interval(mut self, interval: Duration) -> Self {
        self.policy.monitor = self.policy.monitor.interval(interval);
        self
    }

    /// The monitor's interval, probe timeout and jitter (default 500 ms, 1 s, 50 ms).
    pub fn monitor(mut self, config: rwsplit_monitor::MonitorConfig) -> Self {
        self.policy.monitor = config;
        self
    }

    /// Connects: the primary eagerly (an unreachable primary is an error), each replica lazily.
    /// Then the monitor probes every node once on connections of its own (bounded by the probe
    /// timeout), so the first statements already know every node's role and replay position; a
    /// replica that does not answer starts out of rotation, with a warning, and is probed
    /// again later.
    pub async fn connect(self) -> Result<RoutedConnection> {
        let mut primary_opts = self.primary.ok_or(Error::NoPrimary)?;
        let primary_name = node_name(primary_opts.get_url());
        let backend = backend_of("primary", primary_opts.get_url())?;
        if self.replicas.len() + 1 > rwsplit_core::MAX_NODES {
            return Err(Error::TooManyNodes {
                nodes: self.replicas.len() + 1,
                max: rwsplit_core::MAX_NODES,
            });
        }
        // The monitor opens its own connections from each node's options as given.
        let mut monitor_opts = vec![primary_opts.clone()];
        with_acquire_timeout(&mut primary_opts, self.policy.timeouts.acquire);
        let primary = Database::connect(primary_opts)
            .await
            .map_err(|source| Error::PrimaryUnreachable { node: primary_name.clone(), source })?;
        let mut replicas = Vec::with_capacity(self.replicas.len());
        for (i, mut opts) in self.replicas.into_iter().enumerate() {
            let label = format!("replica {}", i + 1);
            let name = node_name(opts.get_url());
            let found = backend_of(&label, opts.get_url())?;
            if found != backend {
                return Err(Error::BackendMismatch { node: name, expected: backend, found });
            }
            monitor_opts.push(opts.clone());
            opts.connect_lazy(true);
            with_acquire_timeout(&mut opts, self.policy.timeouts.acquire);
            // A writable pool too, lazy: it opens connections only if this node is promoted.
            let writer = Database::connect(opts.clone()).await.map_err(|e| Error::InvalidUrl {
                node: label.clone(),
                url: name.clone(),
                reason: e.to_string(),
            })?;
            make_read_only(&mut opts, backend);
            let conn = Database::connect(opts).await.map_err(|e| Error::InvalidUrl {
                node: label,
                url: name.clone(),
                reason: e.to_string(),
            })?;
            replicas.push(Node::with_writer(name, conn, writer));
        }
        let probe_timeout = self.policy.monitor.timeout_value();
        let connector = NodeConnector::Options {
            nodes: monitor_opts,
            admin: self.policy.failover.as_ref().and_then(|f| {
                f.admin_credentials_value().map(|(u, p)| (u.to_owned(), p.to_owned()))
            }),
            timeout: probe_timeout,
        };
        let conn = RoutedConnection::new(
            Node::new(primary_name, primary),
            replicas,
            backend,
            self.policy,
            self.classifier,
            self.router,
            self.health,
            connector,
        );
        // One probe of every node before the first statement. A little over the probe timeout:
        // connecting and probing share it.
        let unanswered = conn.first_probes(probe_timeout + Duration::from_millis(100)).await;
        for id in unanswered.into_iter().filter(|&id| id != 0) {
            tracing::warn!(target: "rwsplit", replica = %conn.inner.nodes[id].name, "replica unreachable at start: starting without it, will keep trying");
            conn.ban(id);
        }
        Ok(conn)
    }
}

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
        RoutedConnection::from_connections_with(primary, replicas, Policy::default())
    }

    pub(crate) fn from_connections_with(
        primary: DatabaseConnection,
        replicas: Vec<DatabaseConnection>,
        policy: Policy,
    ) -> Result<RoutedConnection> {
        let backend = primary.get_database_backend();
        let policy_timeout = policy.monitor.timeout_value();
        // The monitor's own connections come from each pool's options; connections that are no
        // sqlx pool (mocks) have none, and then there is no monitor.
        let given: Option<Vec<GivenNode>> =
            std::iter::once(&primary).chain(&replicas).map(GivenNode::of).collect();
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
            nodes.push(Node::new(format!("replica {}", i + 1), r));
        }
        if nodes.len() + 1 > rwsplit_core::MAX_NODES {
            return Err(Error::TooManyNodes {
                nodes: nodes.len() + 1,
                max: rwsplit_core::MAX_NODES,
            });
        }
        Ok(RoutedConnection::new(
            Node::new("primary".to_owned(), primary),
            nodes,
            backend,
            policy,
            Classifier::default(),
            RouterConfig::default(),
            HealthPolicy::default(),
            given.map_or(NodeConnector::None, |nodes| NodeConnector::Given {
                nodes,
                timeout: policy_timeout,
            }),
        ))
    }

    /// Connects from the environment: `DATABASE_URL` is the primary and
    /// `DATABASE_REPLICA_URLS` an optional comma-separated list of replicas.
    pub async fn from_env() -> Result<RoutedConnection> {
        let primary = std::env::var("DATABASE_URL")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .ok_or(Error::MissingEnv { name: "DATABASE_URL" })?;
        let replicas = std::env::var("DATABASE_REPLICA_URLS").unwrap_or_default();
        RoutedConnection::builder()
            .primary(primary.trim().to_owned())
            .replicas(split_urls(&replicas))
            .connect()
            .await
    }
}

/// Splits a comma-separated URL list, ignoring blanks.
pub(crate) fn split_urls(list: &str) -> Vec<String> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn backend_of(node: &str, url: &str) -> Result<DbBackend> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("postgres" | "postgresql") => Ok(DbBackend::Postgres),
        Some("mysql" | "mariadb") => Ok(DbBackend::MySql),
        Some("sqlite") => Ok(DbBackend::Sqlite),
        _ => Err(Error::InvalidUrl {
            node: node.to_owned(),
            url: node_name(url),
            reason: "expected a postgres://, mysql:// or sqlite:// URL".to_owned(),
        }),
    }
}

/// Sets the pool's acquire timeout, unless the options already have one of their own.
fn with_acquire_timeout(opts: &mut ConnectOptions, timeout: Duration) {
    if opts.get_acquire_timeout().is_none() && opts.get_connect_timeout().is_none() {
        opts.acquire_timeout(timeout);
    }
}

/// Makes every session of a replica pool read-only, so a write that reaches it fails loudly.
/// PostgreSQL: `default_transaction_read_only=on` as a startup option. MySQL/MariaDB:
/// `SET SESSION TRANSACTION READ ONLY` on every new connection. This replaces any
/// `map_sqlx_postgres_opts` / `map_sqlx_mysql_pool_opts` hook set on the replica's options.
fn make_read_only(opts: &mut ConnectOptions, backend: DbBackend) {
    match backend {
        #[cfg(feature = "postgres")]
        DbBackend::Postgres => {
            opts.map_sqlx_postgres_opts(|o| o.options([("default_transaction_read_only", "on")]));
        }
        #[cfg(feature = "mysql")]
        DbBackend::MySql => {
            opts.map_sqlx_mysql_pool_opts(|o| {
                o.after_connect(|conn, _meta| {
                    Box::pin(async move {
                        use sea_orm::sqlx::Executor;
                        conn.execute("SET SESSION TRANSACTION READ ONLY").await.map(drop)
                    })
                })
            });
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case("", &[])]
    #[case("postgres://a/x", &["postgres://a/x"])]
    #[case(" postgres://a/x , ,postgres://b/x,", &["postgres://a/x", "postgres://b/x"])]
    fn replica_lists_ignore_blanks(#[case] input: &str, #[case] expected: &[&str]) {
        assert_eq!(split_urls(input), expected);
    }

    #[rstest::rstest]
    #[case("postgres://h/db", Some(DbBackend::Postgres))]
    #[case("postgresql://h/db", Some(DbBackend::Postgres))]
    #[case("mysql://h/db", Some(DbBackend::MySql))]
    #[case("MARIADB://h/db", Some(DbBackend::MySql))]
    #[case("sqlite::memory:", None)]
    #[case("oracle://h/db", None)]
    #[case("no scheme", None)]
    fn backends_come_from_the_scheme(#[case] url: &str, #[case] expected: Option<DbBackend>) {
        assert_eq!(backend_of("primary", url).ok(), expected);
    }

    #[tokio::test]
    async fn a_missing_primary_is_named() {
        let err =
            RoutedConnection::builder().replica("postgres://h/db").connect().await.unwrap_err();
        assert!(matches!(err, Error::NoPrimary));
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
