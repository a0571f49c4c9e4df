//! Nodes from a topology source ([`RoutedConnectionBuilder::topology`](crate::RoutedConnectionBuilder::topology)): the monitor's
//! [`watch`](rwsplit_monitor::watch) polls the source, and a task of the connection's applies
//! each member set: a new member gets its pools and probes and enters rotation once healthy
//! and caught up (the monitor's own probes judge roles and lag; the source's view is advisory),
//! a member that leaves drains and goes, and a member's `noloadbalance` tag keeps reads off it.
//!
//! A member's URL is the primary's with host and port replaced: user, password, database and
//! parameters are the primary's, and so are the pool settings.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rwsplit_core::NodeId;
use rwsplit_monitor::{Member, MemberSet, PatroniSource, SourceWatch, TopologySource};
use sea_orm::ConnectOptions;

use crate::connection::{Inner, RoutedConnection};
use crate::nodes::members::AbortOnDrop;
use crate::nodes::replica::Placement;
use crate::observe::redact::NodeUrl;
use crate::product::Unchecked;

/// The tag a member with Patroni's `noloadbalance` carries in the topology: a dedicated tag no
/// rule sends reads to, so it gets none (writes follow the primary role whatever its tags).
pub(crate) const NO_LOAD_BALANCE: &str = "noloadbalance";

/// How long `connect()` waits for the source's first answer before going on with the nodes it
/// was given (the members then arrive with the next answer).
const FIRST_ANSWER: Duration = Duration::from_secs(5);

type StartWatch = Box<dyn FnOnce(Duration) -> SourceWatch + Send>;

/// A topology source, as the builder keeps it until `connect()`.
pub(crate) struct Discovery {
    start: StartWatch,
    interval: Duration,
    /// The HA manager behind the source, if one promotes nodes (Patroni).
    manager: Option<&'static str>,
}

impl fmt::Debug for Discovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discovery")
            .field("interval", &self.interval)
            .field("manager", &self.manager)
            .finish_non_exhaustive()
    }
}

impl Discovery {
    pub(crate) fn new<S: TopologySource>(source: S) -> Discovery {
        let manager = (std::any::TypeId::of::<S>() == std::any::TypeId::of::<PatroniSource>())
            .then_some("Patroni");
        Discovery {
            start: Box::new(move |every| rwsplit_monitor::watch(source, every)),
            interval: Duration::from_secs(1),
            manager,
        }
    }

    pub(crate) fn interval(mut self, every: Duration) -> Discovery {
        self.interval = every;
        self
    }

    /// The HA manager that promotes nodes of this source's cluster, if any.
    pub(crate) fn ha_manager(&self) -> Option<&'static str> {
        self.manager
    }

    /// Starts watching the source for `db`, applies its first answer (waiting at most
    /// [`FIRST_ANSWER`]), then follows it on a task that ends with the connection.
    pub(crate) async fn start(self, db: &RoutedConnection, template: Template) {
        let watch = (self.start)(self.interval);
        let mut rx = watch.subscribe();
        let mut applier = Applier { template, known: Vec::new(), refused: Vec::new() };
        // The nodes the builder was given, so a member at the same address is not added twice.
        for (id, name) in db.inner.nodes.names() {
            if let Some((_, url)) = applier.template.configured.iter().find(|(i, _)| *i == id) {
                applier.known.push(Known { id, url: url.clone(), listed: false });
            } else {
                tracing::debug!(target: "rwsplit", node = %name, "node without a URL");
            }
        }
        let first = tokio::time::timeout(FIRST_ANSWER, async {
            rx.wait_for(|s| s.version() > 0).await.map(|s| s.clone())
        })
        .await;
        match first {
            Ok(Ok(set)) => applier.apply(db, &set).await,
            _ => {
                tracing::warn!(target: "rwsplit", "the topology source has not answered yet: starting with the configured nodes")
            }
        }
        let weak: Weak<Inner> = Arc::downgrade(&db.inner);
        let members = Arc::downgrade(&db.members);
        let task = tokio::spawn(async move {
            let _watch = watch;
            while rx.changed().await.is_ok() {
                let set = rx.borrow_and_update().clone();
                let (Some(inner), Some(members)) = (weak.upgrade(), members.upgrade()) else {
                    return;
                };
                let db = RoutedConnection { inner, members };
                applier.apply(&db, &set).await;
            }
        });
        db.members.follow_topology(AbortOnDrop::new(task));
    }
}

/// What a member's node is made from: the primary's options and URL, and the connection's
/// product.
pub(crate) struct Template {
    options: ConnectOptions,
    url: String,
    product: crate::product::Product,
    acquire: crate::send::deadline::Acquire,
    /// The primary's server ends a gone client's statement when told to, and so do members
    /// (streaming replicas run its version on its platform): [`crate::Server::checks_clients`].
    checks_clients: bool,
    /// The configured nodes' URLs, with their ids.
    configured: Vec<(NodeId, NodeUrl)>,
}

impl Template {
    pub(crate) fn new(
        options: ConnectOptions,
        configured: Vec<(NodeId, NodeUrl)>,
        product: crate::product::Product,
        acquire: crate::send::deadline::Acquire,
        checks_clients: bool,
    ) -> Template {
        let url = options.get_url().to_owned();
        Template { options, url, product, acquire, checks_clients, configured }
    }

    /// `member`'s URL: the primary's with host and port replaced.
    fn url_of(&self, member: &Member) -> Option<String> {
        let mut url = url::Url::parse(self.url.trim()).ok()?;
        let host = if member.host.contains(':') && !member.host.starts_with('[') {
            format!("[{}]", member.host)
        } else {
            member.host.clone()
        };
        url.set_host(Some(&host)).ok()?;
        url.set_port(Some(member.port)).ok()?;
        Some(url.to_string())
    }

    /// The primary's pool settings on `url`.
    fn options_for(&self, url: String) -> ConnectOptions {
        let o = &self.options;
        let mut opts = ConnectOptions::new(url);
        if let Some(v) = o.get_max_connections() {
            opts.max_connections(v);
        }
        if let Some(v) = o.get_min_connections() {
            opts.min_connections(v);
        }
        if let Some(v) = o.get_connect_timeout() {
            opts.connect_timeout(v);
        }
        if let Some(v) = o.get_acquire_timeout() {
            opts.acquire_timeout(v);
        }
        if let Some(v) = o.get_idle_timeout() {
            opts.idle_timeout(v);
        }
        if let Some(v) = o.get_max_lifetime() {
            opts.max_lifetime(v);
        }
        opts.sqlx_logging(o.get_sqlx_logging());
        opts
    }
}

/// A node the applier knows: configured, or added for a member.
struct Known {
    id: NodeId,
    url: NodeUrl,
    /// Whether the source has listed it (only those leave when the source stops listing them:
    /// a DNS source never lists the primary, which stays).
    listed: bool,
}

struct Applier {
    template: Template,
    known: Vec<Known>,
    /// Members whose server the version policy refused (logged once, never added).
    refused: Vec<NodeUrl>,
}

impl Applier {
    /// Makes the nodes follow `set`'s members (the whole set, so skipped versions lose
    /// nothing). A set that only reports an error changes nothing.
    async fn apply(&mut self, db: &RoutedConnection, set: &MemberSet) {
        if set.members().is_empty() {
            return;
        }
        let mut present = Vec::with_capacity(set.members().len());
        for member in set.members() {
            let Some((url, parsed)) = self.member_url(member) else { continue };
            let id = match self.known.iter_mut().find(|k| k.url.same_node(&parsed)) {
                Some(k) => {
                    k.listed = true;
                    db.inner.nodes.retag(k.id, NO_LOAD_BALANCE, member.tags.noloadbalance);
                    k.id
                }
                None if self.refused.iter().any(|r| r.same_node(&parsed)) => continue,
                None => {
                    let tags: &[&str] =
                        if member.tags.noloadbalance { &[NO_LOAD_BALANCE] } else { &[] };
                    match self.add(db, url, parsed, tags).await {
                        Some(id) => id,
                        None => continue,
                    }
                }
            };
            present.push(id);
        }
        let gone: Vec<NodeId> = self
            .known
            .iter()
            .filter(|k| k.listed && !present.contains(&k.id))
            .map(|k| k.id)
            .collect();
        for id in gone {
            if crate::connection::remove_node(db, id) {
                self.known.retain(|k| k.id != id);
            }
        }
    }

    /// `member`'s URL, and parsed; `None` (logged) if it makes none that is usable.
    fn member_url(&self, member: &Member) -> Option<(String, NodeUrl)> {
        let Some(url) = self.template.url_of(member) else {
            tracing::warn!(target: "rwsplit", member = %member.name, address = %member.address(), "a member's address makes no URL; ignored");
            return None;
        };
        match NodeUrl::parse(&format!("member {}", member.name), &url) {
            Ok(parsed) => Some((url, parsed)),
            Err(e) => {
                tracing::warn!(target: "rwsplit", error = %e, "a member's URL is not usable; ignored");
                None
            }
        }
    }

    /// A new member at `url` (`parsed`) added as a node with `tags`: its pools made, its
    /// server checked against the version policy (one that does not answer yet is checked
    /// when it first answers a probe); `None` (logged) if it could not be.
    async fn add(
        &mut self,
        db: &RoutedConnection,
        url: String,
        parsed: NodeUrl,
        tags: &[&str],
    ) -> Option<NodeId> {
        let name = parsed.name().to_owned();
        let opts = self.template.options_for(url);
        let probe = opts.clone();
        let t = &self.template;
        // Members are PostgreSQL servers reached directly (no pooler in front).
        let direct = crate::product::Pooling::Direct;
        let open = crate::nodes::pools::open_replica(
            name,
            opts,
            t.product,
            t.acquire,
            direct,
            t.checks_clients,
        );
        let mut node = match open.await {
            Ok(n) => n,
            Err(e) => {
                let e = parsed.scrub(&e.to_string());
                tracing::warn!(target: "rwsplit", node = %parsed.name(), error = %e, "could not make pools for a new member");
                return None;
            }
        };
        // What it runs, against the version policy, before it gets an id.
        let check = crate::product::check(node.conn(), parsed.name());
        match tokio::time::timeout(t.acquire.read, check).await {
            Ok(Ok((_, server))) => node = node.checked(Some(server)),
            Ok(Err(Unchecked::Refused(refused))) => {
                let error = crate::error::Error::from(refused);
                tracing::error!(target: "rwsplit", node = %parsed.name(), %error, "a member's server is not one rwsplit supports: not added");
                self.refused.push(parsed);
                return None;
            }
            Ok(Err(Unchecked::Unreachable(_))) | Err(_) => {}
        }
        let placement = Placement {
            tags: tags.iter().map(|t| Box::from(*t)).collect(),
            ..Placement::default()
        };
        let Some(id) = crate::connection::add_node(db, node, Some(probe), placement) else {
            tracing::error!(target: "rwsplit", node = %parsed.name(), "no free node index for a new member: not added");
            return None;
        };
        self.known.push(Known { id, url: parsed, listed: true });
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rwsplit_monitor::{AutoFailover, MemberRole, PatroniSource};

    use crate::tests::pg_probe;
    use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, MockDatabase, Statement, Value};

    use super::*;
    use crate::nodes::Node;
    use crate::routing::Policy;
    use crate::{Error, RoutedConnection};

    fn answering() -> DatabaseConnection {
        let row = std::collections::BTreeMap::from([("id", Value::Int(Some(1)))]);
        MockDatabase::new(DbBackend::Postgres)
            .append_query_results((0..16).map(|_| vec![row.clone()]))
            .into_connection()
    }

    fn log_len(c: &DatabaseConnection) -> usize {
        c.clone().into_transaction_log().len()
    }

    fn select() -> Statement {
        Statement::from_string(DbBackend::Postgres, "SELECT id FROM t")
    }

    fn routed(replicas: usize) -> RoutedConnection {
        let policy = Policy { read_your_writes: false, ..Default::default() };
        let replicas = (0..replicas).map(|_| answering()).collect();
        RoutedConnection::from_connections_with(answering(), replicas, policy).unwrap()
    }

    #[tokio::test]
    async fn a_removed_replica_gets_no_new_statement_and_its_index_is_reused_once_drained() {
        let db = routed(2);
        let replica = db.inner.nodes.hold(NodeId::new(1)).unwrap().conn().clone();
        for _ in 0..4 {
            db.query_one_raw(select()).await.unwrap();
        }
        let before = log_len(&replica);
        assert!(before > 0, "the replica took reads while it was there");
        assert!(crate::connection::remove_node(&db, NodeId::new(1)));
        for _ in 0..6 {
            db.query_one_raw(select()).await.unwrap();
        }
        // (Reading the log drains it.)
        assert_eq!(log_len(&replica), 0, "no statement after the removal");
        // Stats, Debug and fencing see the gap.
        let names: Vec<String> = db.stats().nodes().iter().map(|n| n.name().to_owned()).collect();
        assert_eq!(names, ["primary", "replica 2"]);
        assert!(!format!("{db:?}").contains("replica 1"), "{db:?}");
        assert!(matches!(db.fence("replica 1"), Err(Error::UnknownNode { .. })));
        db.fence("replica 2").unwrap();
        db.unfence("replica 2").unwrap();
        // Drained (nothing was in flight): the index is free again for the next node, under
        // its next generation; the old id names nothing.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let id = crate::connection::add_node(
            &db,
            Node::new("replica 3".to_owned(), answering()),
            None,
            Default::default(),
        );
        let reused = NodeId::with_generation(1, 1);
        assert_eq!(id, Some(reused));
        assert!(db.inner.nodes.hold(NodeId::new(1)).is_none(), "the old id finds nothing");
        // Not probed (mocks have no monitor), so it never joined: still no statement there.
        let newcomer = db.inner.nodes.hold(reused).unwrap().conn().clone();
        for _ in 0..6 {
            db.query_one_raw(select()).await.unwrap();
        }
        assert_eq!(log_len(&newcomer), 0, "a node that has not joined gets nothing");
    }

    /// A removed node drains when its last holder lets go, and not before: that holder wakes
    /// the drain (paused time: an hour passes while it is held, and a drain that polled would
    /// have been woken by its timer, not by the holder).
    #[tokio::test(start_paused = true)]
    async fn a_removed_node_drains_when_its_last_holder_lets_go() {
        let db = routed(2);
        let held = db.inner.nodes.hold(NodeId::new(1)).unwrap();
        let also = held.clone();
        assert!(crate::connection::remove_node(&db, NodeId::new(1)));
        assert!(db.inner.nodes.hold(NodeId::new(1)).is_none(), "no new holder once removed");
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let fresh = |name: &str| Node::new(name.to_owned(), answering());
        assert_eq!(
            crate::connection::add_node(&db, fresh("replica 3"), None, Default::default()),
            Some(NodeId::new(3)),
            "index 1 is still draining while held"
        );
        drop(held);
        tokio::task::yield_now().await;
        assert_eq!(
            crate::connection::add_node(&db, fresh("replica 4"), None, Default::default()),
            Some(NodeId::new(4)),
            "one holder left"
        );
        drop(also);
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            crate::connection::add_node(&db, fresh("replica 5"), None, Default::default()),
            Some(NodeId::with_generation(1, 1)),
            "drained as the last holder let go: index 1 is free again"
        );
    }

    /// The `rwsplit_node_state` of the node at `address` after one sampler round (its `state`
    /// whose series is 1).
    fn health_gauge(db: &RoutedConnection, address: &str) -> String {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        metrics::with_local_recorder(&recorder, || {
            crate::connection::sample_metrics(db, std::time::Instant::now());
        });
        let text = recorder.handle().render();
        let series = format!(
            "rwsplit_node_state{{server_address=\"{address}\",server_port=\"5432\",state=\""
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&series)?.strip_suffix("\"} 1"))
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
            .to_owned()
    }

    /// A node added at run time is `joining` in the stats (and `Down`, as nothing is routed to
    /// it) until a probe sees it caught up; then it is `Up` and no longer joining. Time is the
    /// probes' explicit instants.
    #[tokio::test]
    async fn a_node_is_reported_joining_until_it_enters_rotation() {
        use rwsplit_core::Health;
        let db = routed(1);
        let state = Arc::clone(db.inner.routing.state());
        let t = std::time::Instant::now();
        let ms = Duration::from_millis;
        state.observe(NodeId::new(0), &pg_probe(true, "0/64", 0).await, t);
        state.observe(NodeId::new(1), &pg_probe(false, "0/64", 0).await, t);
        let id = crate::connection::add_node(
            &db,
            Node::new("db-3:5432/app".to_owned(), answering()),
            None,
            Default::default(),
        )
        .unwrap();
        let joining = |db: &RoutedConnection| {
            let s = db.stats();
            let n = s.node("db-3:5432/app").expect("listed while joining");
            (n.joining(), n.health())
        };
        assert_eq!(joining(&db), (true, Health::Down));
        assert_eq!(health_gauge(&db, "db-3"), "joining", "the gauge says joining too");
        assert!(
            db.stats().nodes().iter().filter(|n| n.name() != "db-3:5432/app").all(|n| !n.joining())
        );
        // Probed, reachable, but 30 s behind (a fresh standby replaying its base backup).
        state.observe(id, &pg_probe(false, "0/28", 30_000).await, t + ms(100));
        assert_eq!(joining(&db), (true, Health::Down), "a lagging newcomer is still joining");
        // Caught up: it joins.
        state.observe(NodeId::new(0), &pg_probe(true, "0/64", 0).await, t + ms(200));
        state.observe(id, &pg_probe(false, "0/64", 0).await, t + ms(300));
        assert_eq!(joining(&db), (false, Health::Up));
        assert_eq!(health_gauge(&db, "db-3"), "up");
        // Once in rotation, failing probes take it down: down, not joining.
        for i in 0..3 {
            let refused = Err(rwsplit_monitor::ProbeError::unreachable("connection refused"));
            state.observe(id, &refused, t + ms(400 + i));
        }
        assert_eq!(joining(&db), (false, Health::Down));
        assert!(crate::connection::remove_node(&db, id));
        assert!(db.stats().node("db-3:5432/app").is_none(), "a removed node is not listed");
    }

    /// Every gauge series of the node at `address` (`name{labels} value` lines).
    fn series_of(text: &str, address: &str) -> Vec<String> {
        let label = format!("server_address=\"{address}\"");
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains(&label))
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    }

    /// A node at 127.0.0.1:9 with real sqlx pools (7 connections at most) that never connect.
    async fn lazy_node() -> Node {
        let mut opts = ConnectOptions::new("postgres://app:pw@127.0.0.1:9/app");
        opts.max_connections(7);
        crate::nodes::pools::open_replica(
            "127.0.0.1:9/app".to_owned(),
            opts,
            crate::product::Product::POSTGRES,
            crate::send::deadline::Acquire {
                write: Duration::from_secs(1),
                read: Duration::from_secs(1),
            },
            crate::product::Pooling::Direct,
            false,
        )
        .await
        .unwrap()
    }

    /// A member removed and listed again before the old node drained: the new node owns the
    /// series, and the old one's drain does not mark them gone.
    #[tokio::test]
    async fn a_node_back_at_the_same_address_keeps_its_series() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let _local = metrics::set_default_local_recorder(&recorder);
        let db = routed(1);
        let (first, second) = (lazy_node().await, lazy_node().await);
        let id = crate::connection::add_node(&db, first, None, Default::default()).unwrap();
        crate::connection::sample_metrics(&db, std::time::Instant::now());
        assert!(crate::connection::remove_node(&db, id));
        // No await in between: the old node's drain has not run yet.
        let again = crate::connection::add_node(&db, second, None, Default::default()).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_ne!(again, id, "the old node's id was still taken");
        let later = crate::connection::add_node(
            &db,
            Node::new("db-9:5432/app".to_owned(), answering()),
            None,
            Default::default(),
        );
        assert_eq!(later, id.next_generation(), "the old node has drained: its index is free");
        let text = handle.render();
        let max = "db_client_connection_max{server_address=\"127.0.0.1\",server_port=\"9\",db_client_connection_pool_name=\"127.0.0.1:9/app/read\"} 7";
        assert!(text.contains(max), "the drain set the new node's series to gone:\n{text}");
        crate::connection::sample_metrics(&db, std::time::Instant::now());
        let health = "rwsplit_node_state{server_address=\"127.0.0.1\",server_port=\"9\",state=\"joining\"} 1";
        assert!(handle.render().contains(health), "sampled again, as joining");
    }

    /// A removed node's gauges say "removed" at once and "gone" once it has drained (health 4,
    /// lag NaN, in-flight and connections 0), and no sampler round touches them again. The
    /// node has real (lazy, never connected) sqlx pools, so its connection gauges exist.
    #[tokio::test]
    async fn a_removed_nodes_gauges_are_set_to_gone_once_and_left_alone() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let _local = metrics::set_default_local_recorder(&recorder);
        let db = routed(1);
        let state = Arc::clone(db.inner.routing.state());
        let t = std::time::Instant::now();
        state.observe(NodeId::new(0), &pg_probe(true, "0/64", 0).await, t);
        let id =
            crate::connection::add_node(&db, lazy_node().await, None, Default::default()).unwrap();
        state.observe(id, &pg_probe(false, "0/64", 0).await, t + Duration::from_millis(100));
        db.inner.nodes.hold(id).unwrap().answered_probe(std::time::Instant::now());
        crate::connection::sample_metrics(&db, std::time::Instant::now());
        let live = series_of(&handle.render(), "127.0.0.1");
        let has = |lines: &[String], want: &str| lines.iter().any(|l| l == want);
        let node = "{server_address=\"127.0.0.1\",server_port=\"9\"}";
        let state =
            |s: &str| format!("{{server_address=\"127.0.0.1\",server_port=\"9\",state=\"{s}\"}}");
        let pool = |p: &str, state: Option<&str>| {
            let state =
                state.map_or(String::new(), |s| format!(",db_client_connection_state=\"{s}\""));
            format!(
                "{{server_address=\"127.0.0.1\",server_port=\"9\",db_client_connection_pool_name=\"127.0.0.1:9/app/{p}\"{state}}}"
            )
        };
        for want in [
            format!("rwsplit_node_state{} 1", state("up")),
            format!("rwsplit_replica_lag_seconds{node} 0"),
            format!("db_client_connection_max{} 7", pool("read", None)),
            format!("db_client_connection_max{} 7", pool("write", None)),
        ] {
            assert!(has(&live, &want), "missing `{want}` in {live:#?}");
        }

        assert!(crate::connection::remove_node(&db, id));
        let removing = series_of(&handle.render(), "127.0.0.1");
        assert!(
            has(&removing, &format!("rwsplit_node_state{} 1", state("removed"))),
            "{removing:#?}"
        );
        // Drained (nothing ran on it) and its pools closed: every series says gone.
        let started = std::time::Instant::now();
        let gone = loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = series_of(&handle.render(), "127.0.0.1");
            if has(&now, &format!("rwsplit_node_in_flight{node} 0"))
                && has(&now, &format!("db_client_connection_max{} 0", pool("read", None)))
            {
                break now;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "never drained: {now:#?}");
        };
        for want in [
            format!("rwsplit_node_state{} 1", state("removed")),
            format!("rwsplit_node_state{} 0", state("up")),
            format!("rwsplit_node_fenced{node} 0"),
            format!("rwsplit_node_primary{node} 0"),
            format!("rwsplit_node_in_flight{node} 0"),
            format!("rwsplit_node_observation_age_seconds{node} NaN"),
            format!("rwsplit_replica_lag_bytes{node} NaN"),
            format!("rwsplit_replica_lag_seconds{node} NaN"),
            format!("db_client_connection_pending_requests{node} 0"),
            format!("db_client_connection_max{} 0", pool("write", None)),
            format!("db_client_connection_count{} 0", pool("read", Some("idle"))),
            format!("db_client_connection_count{} 0", pool("write", Some("used"))),
        ] {
            assert!(has(&gone, &want), "missing `{want}` in {gone:#?}");
        }
        assert_eq!(gone.len(), live.len(), "no series added or lost: {live:#?} {gone:#?}");
        // The sampler leaves it alone from now on.
        crate::connection::sample_metrics(&db, std::time::Instant::now());
        assert_eq!(series_of(&handle.render(), "127.0.0.1"), gone);
    }

    #[tokio::test]
    async fn the_last_node_is_never_removed() {
        let db = routed(1);
        assert!(crate::connection::remove_node(&db, NodeId::new(0)));
        assert!(!crate::connection::remove_node(&db, NodeId::new(1)), "the last node stays");
        assert_eq!(db.stats().nodes().len(), 1);
        db.query_one_raw(select()).await.expect("the remaining node still serves reads");
    }

    /// The adapter's registry and the monitor's state hand out and know the same ids through
    /// joins, removals, drains and reuse: every node the adapter has is one the monitor
    /// probes, under the same id (index and generation), and the monitor's snapshot names
    /// each by the adapter's name for it.
    #[tokio::test]
    async fn the_adapters_registry_and_the_monitors_state_agree() {
        let db = routed(2);
        let state = Arc::clone(db.inner.routing.state());
        let agree = |db: &RoutedConnection| {
            let adapter: Vec<NodeId> = db.inner.nodes.names().iter().map(|(id, _)| *id).collect();
            assert_eq!(adapter, state.ids(), "the same ids");
            assert_eq!(db.inner.nodes.table_ids(), state.ids(), "a node for each id, no other");
            let topo = state.snapshot();
            db.inner.nodes.each(|id, n| {
                assert_eq!(n.id(), id);
                if let Some(v) = topo.node(id) {
                    assert_eq!(v.name(), n.name(), "{id}");
                }
            });
        };
        agree(&db);
        let a = crate::connection::add_node(
            &db,
            Node::new("db-a:5432/app".to_owned(), answering()),
            None,
            Default::default(),
        )
        .unwrap();
        assert_eq!(a, NodeId::new(3), "an index never used: generation 0");
        agree(&db);
        assert!(crate::connection::remove_node(&db, NodeId::new(1)));
        agree(&db);
        // Not drained yet (no await since the removal): index 1 is skipped.
        let b = crate::connection::add_node(
            &db,
            Node::new("db-b:5432/app".to_owned(), answering()),
            None,
            Default::default(),
        )
        .unwrap();
        assert_eq!(b, NodeId::new(4));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let c = crate::connection::add_node(
            &db,
            Node::new("db-c:5432/app".to_owned(), answering()),
            None,
            Default::default(),
        )
        .unwrap();
        assert_eq!(c, NodeId::with_generation(1, 1), "index 1, drained, under its next generation");
        agree(&db);
        assert!(
            crate::connection::remove_node(&db, c)
                && !crate::connection::remove_node(&db, NodeId::new(1)),
            "the old id removes nothing"
        );
        agree(&db);
        assert_eq!(db.stats().nodes().len(), 4);
    }

    /// Adds and removals racing on several threads, with drains freeing indices for reuse
    /// meanwhile, never leave the membership split: at every instant each id the monitor's
    /// state lists finds its node in the adapter's table (a node enters the table before the
    /// state lists it, and leaves the state before the table), and once the drains are done
    /// the table holds exactly the state's ids.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_adds_and_removals_never_split_the_membership() {
        let db = routed(1);
        let state = Arc::clone(db.inner.routing.state());
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (db, state, done) = (db.clone(), std::sync::Arc::clone(&state), done.clone());
            tokio::task::spawn_blocking(move || {
                let mut looks = 0_u32;
                while !done.load(std::sync::atomic::Ordering::Acquire) || looks == 0 {
                    for id in state.ids() {
                        // A node being removed may have left both meanwhile; one the state
                        // still lists after the look is in the table.
                        let there = db.inner.nodes.hold(id).is_some();
                        assert!(there || !state.contains(id), "{id} listed by the state only");
                    }
                    looks += 1;
                }
            })
        };
        let racers: Vec<_> = (0..3)
            .map(|t| {
                let db = db.clone();
                tokio::spawn(async move {
                    let mut kept = 0;
                    for i in 0..12 {
                        let name = format!("db-{t}-{i}:5432/app");
                        let node = Node::new(name, answering());
                        if let Some(id) =
                            crate::connection::add_node(&db, node, None, Default::default())
                        {
                            assert!(db.inner.nodes.hold(id).is_some(), "added: in the table");
                            if i % 2 == 0 {
                                assert!(crate::connection::remove_node(&db, id));
                            } else {
                                kept += 1;
                            }
                        }
                        tokio::task::yield_now().await;
                    }
                    kept
                })
            })
            .collect();
        let mut kept = 0;
        for racer in racers {
            kept += racer.await.unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Release);
        reader.await.unwrap();
        // The drains of the removed nodes run on the runtime: nothing holds them.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(db.inner.nodes.table_ids(), state.ids(), "the same ids, table and state");
        assert_eq!(db.inner.nodes.count(), state.ids().len());
        assert!(kept > 0, "some adds found a free index");
        assert_eq!(state.len(), 2 + kept, "the configured nodes and the added ones kept");
    }

    #[tokio::test]
    async fn auto_failover_with_a_patroni_source_is_refused_before_connecting() {
        let started = std::time::Instant::now();
        let err = RoutedConnection::builder()
            .primary("postgres://app:hunter2@192.0.2.1:5432/app")
            .topology(PatroniSource::new(["http://192.0.2.1:8008"]).unwrap())
            .auto_failover(AutoFailover::default())
            .connect()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::FailoverWithHaManager { manager: "Patroni" }), "{err}");
        let text = err.to_string();
        assert!(text.contains("never promotes") && !text.contains("hunter2"), "{text}");
        assert!(started.elapsed() < Duration::from_secs(1), "nothing was connected");
    }

    #[rstest::rstest]
    #[case(
        "10.0.0.7",
        6432,
        "postgres://app:p%40ss@10.0.0.7:6432/app?sslmode=disable",
        "10.0.0.7:6432/app"
    )]
    #[case("::1", 5433, "postgres://app:p%40ss@[::1]:5433/app?sslmode=disable", "[::1]:5433/app")]
    #[case(
        "db-3.internal",
        5432,
        "postgres://app:p%40ss@db-3.internal:5432/app?sslmode=disable",
        "db-3.internal:5432/app"
    )]
    fn a_members_url_is_the_primarys_at_its_address(
        #[case] host: &str,
        #[case] port: u16,
        #[case] url: &str,
        #[case] name: &str,
    ) {
        let primary = "postgres://app:p%40ss@primary:5432/app?sslmode=disable";
        let parsed = NodeUrl::parse("primary", primary).unwrap();
        let t = Template::new(
            ConnectOptions::new(primary),
            vec![(NodeId::new(0), parsed)],
            crate::product::Product::POSTGRES,
            crate::send::deadline::Acquire::default(),
            true,
        );
        let member = Member::new("m", host, port, MemberRole::Replica);
        let got = t.url_of(&member).unwrap();
        assert_eq!(got, url);
        let node = NodeUrl::parse("member", &got).unwrap();
        assert_eq!(node.name(), name);
        assert!(!format!("{node:?} {node}").contains("p%40ss"));
    }
}
