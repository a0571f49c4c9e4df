//! The connection under [`RoutedConnection`]: the handles the application holds and their
//! public methods (`facade`; the constructors, which name the configuration, are
//! `crate::config`'s), what runs a statement on them, assembling them, and the monitor they
//! start.
//!
//! **Owns**: the shared state ([`Inner`], whose fields are peers, each owning its state), the
//! executor (a plan's I/O steps and the one attempt loop), the statement and transaction
//! paths, SeaORM's traits for every routed handle, the public handles ([`RoutedConnection`],
//! [`Session`](session::Session), [`RoutedStream`](stream::RoutedStream),
//! [`Stats`](stats::Stats)), assembling a connection, and the topology task that adds and
//! removes nodes at run time (`discover`).
//!
//! **Offers**: [`RoutedConnection`] and the handles above, `assemble` and what the builder
//! runs at start once it is assembled (`first_answers`, `warn_pending`), the statement and
//! transaction entry points (`statements`, `transactions`) for the handles.
//!
//! **May call**: `routing/` (plans), `nodes/` (the registry, pools, probes, positions),
//! `consistency/`, `observe/`, `send/`, `product/`, the error modules. Never `config/` or
//! `advanced`, which stand above it: the builder assembles a connection through `assemble`.
//!
//! Its modules are layered; each builds only on those listed before it (the tidy test
//! `connection_modules_are_layered` checks it):
//!
//! 1. `stream` — a streamed query's rows, [`RoutedStream`](stream::RoutedStream);
//! 2. `inner` — the shared state: [`RoutedConnection`] over [`Inner`], whose fields are the
//!    peers the statement path works with (registry, routing view, planner, read-your-writes,
//!    counters, metric hooks, hedging; the parts a step holds visible to this folder), and over
//!    `crate::nodes::members`' `Members` (membership and the monitor); the operations that
//!    compose them (among them what read-your-writes is handed beside the views it asks
//!    through), and what the watchdog asks of the connection (`Watched`, implemented over them);
//! 3. `stats` — a snapshot of where statements went, for operators and tests;
//! 4. `record` — one attempt's outcome, reported once: to the monitor, the node's counters,
//!    the balancer, the metrics and the scope;
//! 5. `attempt` — the executor: a plan's I/O steps, then the one attempt loop for every
//!    statement, stream and `BEGIN`, composed of layers each a file in `attempt/` (candidates
//!    and the retry budget, catch-up wait, a read bounded or hedged, a write in two steps, a
//!    failure's verdict, the span), over the policies in `crate::send`;
//! 6. `statements` — the one statement path: classify, plan, attempt, what a read saw;
//! 7. `transactions` — `begin` and the closure forms, and what a commit records;
//! 8. `traits` — SeaORM's traits for every routed handle, and the ways out to the primary;
//! 9. `session` — [`Session`](session::Session), a read-your-writes scope the application
//!    holds, and [`Routed`](session::Routed), one call's settings;
//! 10. `mod` (this module) — assembling the connection, starting its monitor, watchdog and
//!     gauge sampler, the start's wait for first answers, checking a node's server when it
//!     first answers, adding and removing nodes at run time;
//! 11. `discover` — nodes from a topology source, applied through this module's
//!     `add_node`/`remove_node`;
//! 12. `facade` — [`RoutedConnection`]'s public methods, each reaching the part of `Inner` (or
//!     the module) its concern is in.

mod attempt;
pub(crate) mod discover;
mod facade;
mod inner;
mod record;
pub(crate) mod session;
pub(crate) mod statements;
pub(crate) mod stats;
pub(crate) mod stream;
mod traits;
pub(crate) mod transactions;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rwsplit_core::{
    Classifier, HealthPolicy, Node as CoreNode, NodeId, Role, RouterConfig, Topology,
};
use rwsplit_monitor::Monitor;

use crate::nodes::members::Members;
use crate::nodes::registry::NodeTable;
use crate::nodes::{Node, NodeRef, Nodes};
use crate::routing::Policy;
use crate::routing::plan::Planner;
pub(crate) use inner::Inner;
pub use inner::RoutedConnection;
/// For tests elsewhere that call a `RoutedConnection`'s statement path directly.
#[cfg(test)]
pub(crate) use traits::Handle;
pub(crate) use traits::lend_primary;

use crate::cluster::Routing;
use crate::nodes::probe::{NodeConnector, ProbeFrom, ProbeSettings};
use crate::nodes::replica::Placement;
use crate::product::Product;

/// A connection over `primary` and `replicas` (opened by the builder, or given as they are)
/// and the parts the builder configured: its node registry, routing and watchdog, and its
/// monitor (`acquire_monitor`: shared if `shareable`) with the gauge sampler.
// One argument per part the builder configured; a parameter struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub(crate) fn assemble(
    primary: Node,
    replicas: Vec<(Node, Placement)>,
    product: Product,
    policy: Policy,
    classifier: Classifier,
    router: RouterConfig,
    health: HealthPolicy,
    probing: ProbeSettings,
    shareable: bool,
) -> RoutedConnection {
    // The ids `NodeTable::new` gives them: 0 the primary, then the replicas in order. Their
    // placements go to the monitor's state (its snapshot), not into the nodes.
    let (replicas, placements): (Vec<Node>, Vec<Placement>) = replicas.into_iter().unzip();
    let primary_placement = Placement::default();
    let given = || {
        std::iter::once((&primary, &primary_placement))
            .chain(replicas.iter().zip(&placements))
            .zip(0..)
            .map(|((n, p), i)| (NodeId::new(i), n, p))
    };
    let mut topology = Topology::builder();
    for (id, n, placement) in given() {
        let role = if id == NodeId::new(0) { Role::Primary } else { Role::Replica };
        topology = topology.node(core_node(id, role, n, placement));
    }
    // Node ids are 0..n at generation 0 (n ≤ MAX_NODES is checked by the builder of the
    // connection), so building cannot fail; an empty topology would route nothing.
    let topology = topology.build().unwrap_or_default();
    let sources: Option<Sources> = given()
        .map(|(id, n, placement)| n.probe_from().map(|p| (id, p.clone(), placement.clone())))
        .collect();
    let learned = learned_shapes(product, &primary);
    let framed = replicas.iter().any(|n| matches!(n.probe_from(), Some(ProbeFrom::Framed(_))));
    let table = Arc::new(NodeTable::new(primary, replicas));
    let acquired = sources.and_then(|sources| {
        acquire_monitor(product, &policy, health, &table, sources, probing, shareable, &topology)
    });
    // The monitor's state, shared by the two parts that wrap it, each its own operations: the
    // live view (`Routing`: snapshots, standings, wants) and the registry (`Nodes`: which
    // nodes there are).
    let state = match &acquired {
        Some(a) => a.state(),
        None => Arc::new(rwsplit_monitor::TopologyState::new(topology, health)),
    };
    let monitored = acquired.is_some();
    let linger = policy.monitor.position_linger_value();
    let routing = Routing::new(Arc::clone(&state), router, monitored, linger);
    let nodes = Nodes::new(state, table);
    let classified =
        crate::routing::classified::Classified::new(classifier, product.dialect(), learned);
    let hedged = policy.hedged_reads;
    let probe_interval = policy.monitor.probe_interval_value();
    let policy = Arc::new(policy);
    let planner = Planner::new(Arc::clone(&policy), product, framed);
    let parts = inner::Parts {
        nodes: nodes.clone(),
        routing,
        planner,
        policy,
        product,
        classified,
        monitored,
    };
    let inner = Inner::new(parts, |weak, hedging| {
        if hedged {
            hedging.start_watchdog(weak.clone());
        }
    });
    let weak = Arc::downgrade(&inner);
    let monitor = acquired.map(|a| a.listen(on_probe(&weak)));
    let members = Arc::new(Members::new(nodes, monitor));
    if monitored {
        spawn_sampler(weak, Arc::downgrade(&members), probe_interval);
    }
    // What the probes so far saw (the monitor may have been running for a while, or have
    // probed before this connection could listen).
    members.replay_probes();
    RoutedConnection { inner, members }
}

/// Answers from the primary and one replica before the first statement, and the replicas'
/// servers checked meanwhile on their read pools: the application's start waits for them up
/// to three probe timeouts (`start`, a little over), not for every replica (a frozen one
/// answers nothing and refuses nothing) nor the monitor's whole connect patience. A
/// replica's check not done by then is done when the replica first answers a probe. Returns
/// the nodes that have not answered, and the checks' outcome.
pub(crate) async fn first_answers(
    conn: &RoutedConnection,
    start: Duration,
) -> (Vec<NodeId>, crate::error::Result<()>) {
    let mut checks = std::pin::pin!(conn.inner.nodes.check_servers(NodeId::new(0), start));
    let probes = conn.members.first_answers(start.saturating_add(Duration::from_millis(100)));
    let mut probes = std::pin::pin!(probes);
    let mut checked = None;
    let unanswered = loop {
        tokio::select! {
            unanswered = &mut probes => break unanswered,
            c = &mut checks, if checked.is_none() => checked = Some(c),
        }
    };
    let checked = match checked {
        Some(c) => c,
        None => tokio::time::timeout(CHECK_GRACE, checks).await.unwrap_or(Ok(())),
    };
    (unanswered, checked)
}

/// Warns of the replicas among `unanswered` held out of rotation: a replica that answered
/// the application's server check, or refused the monitor for lack of room (busy, not gone),
/// vouches for itself; one that answered nothing is held.
pub(crate) fn warn_pending(conn: &RoutedConnection, unanswered: Vec<NodeId>) {
    let vouched = |id: NodeId| {
        conn.inner.routing.busy_probes(id) > 0
            || conn.inner.nodes.hold(id).is_some_and(|n| n.server().is_some())
    };
    let pending: Vec<String> = unanswered
        .into_iter()
        .filter(|&id| !vouched(id) && conn.inner.routing.hold_until_answered(id))
        .filter_map(|id| conn.inner.nodes.name_of(id))
        .collect();
    if !pending.is_empty() {
        tracing::warn!(target: "rwsplit", replicas = %pending.join(", "), "replicas pending: they have not answered the monitor yet (down, unreachable or frozen); out of rotation until their first probe answers");
    }
}

/// How long the start waits for a replica's server check once the probes it waits for have
/// answered: a replica that answers checks in milliseconds.
const CHECK_GRACE: Duration = Duration::from_millis(200);

/// Node `n`'s entry in the first topology (or when it is added), with its `placement`.
pub(crate) fn core_node(
    id: rwsplit_core::NodeId,
    role: Role,
    n: &Node,
    placement: &Placement,
) -> CoreNode {
    let mut b = CoreNode::builder(id, role).name(n.name()).weight(placement.weight);
    if let Some(zone) = &placement.zone {
        b = b.zone(zone.clone());
    }
    for tag in &placement.tags {
        b = b.tag(tag.clone());
    }
    b.build()
}

/// The table of shapes learned from replicas' refusals for this connection's database:
/// shared with the process's other connections whose configured primary is the same
/// `host:port/database` (see [`classified`](crate::routing::classified)); its own when the primary was
/// given as a pool, with no address.
fn learned_shapes(
    product: Product,
    primary: &Node,
) -> Arc<crate::routing::classified::LearnedShapes> {
    let database = Some(primary)
        .filter(|n| matches!(n.probe_from(), Some(ProbeFrom::Options(_) | ProbeFrom::Framed(_))))
        .map(|n| n.name());
    crate::routing::classified::LearnedShapes::of(product.dialect(), database)
}

/// Where the monitor opens each configured node's connections from, with its placement.
type Sources = Vec<(NodeId, ProbeFrom, Placement)>;

/// The connection's monitor, on the current tokio runtime: the one already running for the
/// same nodes and settings if `shareable` and there is one (see `crate::nodes::shared`), else a new
/// one. Without a runtime (a connection built outside one) there is no monitor: health then
/// moves only on the failures statements see; nor when a node has nothing to open a
/// connection from (a `MockDatabase`: no `sources`).
// One argument per part the monitor is made of; a parameter struct would only rename them.
#[allow(clippy::too_many_arguments)]
fn acquire_monitor(
    product: Product,
    policy: &Policy,
    health: HealthPolicy,
    table: &Arc<NodeTable>,
    sources: Sources,
    probing: ProbeSettings,
    shareable: bool,
    topology: &Topology,
) -> Option<crate::nodes::shared::Acquired> {
    tokio::runtime::Handle::try_current().ok()?;
    let flavor = product.replicated()?;
    let key = if shareable {
        crate::nodes::shared::Key::of(
            flavor,
            sources.iter().map(|(_, p, placement)| (p, placement)),
            policy.monitor,
            health,
            policy.failover.as_ref(),
        )
    } else {
        None
    };
    // A shared monitor holds copies of the nodes' options, never this connection's pools.
    let connector = if key.is_some() {
        NodeConnector::fixed(sources.into_iter().map(|(id, p, _)| (id, p)).collect(), probing)
    } else {
        let table: Arc<NodeTable> = Arc::clone(table);
        NodeConnector::new(table, probing)
    };
    let (config, failover) = (policy.monitor, policy.failover.clone());
    Some(crate::nodes::shared::acquire(
        key,
        || Arc::new(rwsplit_monitor::TopologyState::new(topology.clone(), health)),
        |state, on_probe| {
            Monitor::start(state, connector, flavor, config, failover, Some(on_probe))
        },
    ))
}

/// What the connection does after each probe of its monitor: a PostgreSQL node's system id is
/// kept for tokens, the node is seen and hedging's pace of it learns the probe's time, and
/// read-your-writes scopes whose token every replica has replayed are
/// swept. It holds only a weak reference, so the connection's drop is never held up by it.
fn on_probe(weak: &std::sync::Weak<Inner>) -> rwsplit_monitor::OnProbe {
    let weak = weak.clone();
    Arc::new(move |node, seen| {
        let Some(inner) = weak.upgrade() else { return };
        if let Some(n) = inner.nodes.hold(node)
            && let Some(seen) = seen
        {
            if let Some(system_id) = crate::product::system_id(seen) {
                n.set_system_id(system_id);
            }
            let now = Instant::now();
            n.answered_probe(now);
            inner.hedging.probe_answered(node, now, seen.latency());
            check_server(&weak, node, &n);
        }
        inner.sweep(Instant::now());
    })
}

/// Checks the server of node `id` (`n`), which just answered a probe, against the version
/// policy if that was never done (it was unreachable at connect, or a topology source added
/// it), off the probe's path. A server the policy refuses is fenced: out of rotation and never
/// primary, with an error logged; one that could not be asked is checked on a later probe.
fn check_server(weak: &std::sync::Weak<Inner>, id: NodeId, n: &NodeRef) {
    // The check holds the node: a removal waits for it.
    let Some(check) = n.try_begin_check() else { return };
    let weak = weak.clone();
    tokio::spawn(async move {
        let checked = crate::product::check(check.node().conn(), check.node().name()).await;
        match checked {
            Ok((_, server)) => check.passed(server),
            Err(crate::product::Unchecked::Refused(refused)) => {
                let error = crate::error::Error::from(refused);
                // Still there (not removed meanwhile; a node that took its index since has
                // another id).
                if let Some(inner) = weak.upgrade()
                    && inner.nodes.has(id)
                {
                    inner.routing.fence_unsupported(id);
                }
                tracing::error!(target: "rwsplit", node = %check.node().name(), %error, "node refused and fenced: its server is not one rwsplit supports");
                // Checked once, refused for good: no later probe checks it again.
                check.refused();
            }
            // Ending the check (dropping it) lets a later probe try again.
            Err(crate::product::Unchecked::Unreachable(_)) => {}
        }
    });
}

/// Sets the metric gauges of every node (health, role, lag, pools, in flight) every `every`,
/// until the connection is dropped.
fn spawn_sampler(weak: std::sync::Weak<Inner>, members: std::sync::Weak<Members>, every: Duration) {
    tokio::spawn(async move {
        // The first round one period after the start: the connection is still being built
        // when this task is spawned.
        let every = every.max(Duration::from_millis(100));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (Some(inner), Some(members)) = (weak.upgrade(), members.upgrade()) else { return };
            sample_metrics(&RoutedConnection { inner, members }, Instant::now());
        }
    });
}

/// Adds `node` at run time (a topology source found it): the monitor's state gives it an
/// id (the lowest free index, under that index's next generation) and its snapshot entry
/// (name, and `placement`: weight, zone, tags), and it enters the adapter's table under that
/// id in the same step ([`Nodes::add`]); its probes start at once (from `probe`, its own
/// connect options), and it enters rotation once a probe sees it healthy and caught up (see
/// `TopologyState::add_node`). Returns its id; `None` when every index is taken (logged
/// with the typed [`NoFreeIndex`](rwsplit_monitor::NoFreeIndex)).
pub(crate) fn add_node(
    db: &RoutedConnection,
    node: Node,
    probe: Option<sea_orm::ConnectOptions>,
    placement: Placement,
) -> Option<NodeId> {
    let node = node.probed_from(probe.map(ProbeFrom::Options));
    let name = node.name().to_owned();
    let id = match db.inner.nodes.add(node, |id, n| core_node(id, Role::Replica, n, &placement)) {
        Ok(id) => id,
        Err(error) => {
            tracing::error!(target: "rwsplit", node = %name, %error, "node not added");
            return None;
        }
    };
    // Its pools report to the metric callback, if one is set; `set_metric_callback` hooks
    // the nodes it finds after storing the callback, so a node installed meanwhile is
    // hooked by one or the other (before it takes statements: not before its first probe).
    if let Some(n) = db.inner.nodes.hold(id)
        && db.inner.hooks.is_set()
    {
        n.hook(&db.inner.hooks);
    }
    db.members.start_probing(id);
    tracing::warn!(target: "rwsplit", node = %name, id = %id, "node added: probing it, it takes statements once healthy and caught up");
    Some(id)
}

/// Removes node `id` at run time: it leaves the routing snapshot at once (no new statement
/// goes to it), its probes stop, and once nothing runs on it any more its pools are closed
/// (which waits for open transactions and streams) and its index becomes free (for a newer
/// node, under the next generation). Its metric gauges say "removed" at once and "gone"
/// once it has drained (telemetry's *Removed nodes*). The last node is never removed.
/// Returns whether it was removed.
pub(crate) fn remove_node(db: &RoutedConnection, id: NodeId) -> bool {
    let was_primary = db.inner.routing.node_routing(id).view.is_some_and(|v| v.0 == Role::Primary);
    db.members.remove(id, was_primary)
}

/// One round of the gauges.
pub(crate) fn sample_metrics(db: &RoutedConnection, now: Instant) {
    let inner = &db.inner;
    let topo = inner.routing.live_topology();
    db.inner.nodes.each(|i, n| {
        let view = topo.node(i);
        // Not in the snapshot: joining (sampled as such), or removed a moment ago (its
        // gauges are the removal's, see `Nodes::remove`).
        let joining = view.is_none() && inner.routing.in_monitor(i);
        if view.is_none() && !joining {
            return;
        }
        let lag = view.map_or_else(rwsplit_core::Lag::unknown, |v| v.lag());
        crate::observe::telemetry::sample(
            &crate::observe::telemetry::NodeSample {
                labels: n.labels(),
                health: view.map_or(rwsplit_core::Health::Down, |v| v.health()),
                joining,
                fenced: inner.routing.is_fenced(i),
                role: view.map_or(Role::Replica, |v| v.role()),
                lag_bytes: lag.bytes(),
                lag_time: lag.time(),
                last_seen: n.last_seen(),
                in_flight: view.map_or(0, |v| v.load().in_flight()),
                read_pool: n.separate_read_pool(),
                write_pool: n.writer(),
            },
            now,
        );
    });
    if let Some(promotions) = db.members.promotions() {
        crate::observe::telemetry::promotions(promotions);
    }
}

#[cfg(test)]
mod tests;
