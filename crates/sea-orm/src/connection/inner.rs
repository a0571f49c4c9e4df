//! The connection's shared state: [`RoutedConnection`], a facade over `Arc<Inner>`, and
//! [`Inner`], whose private fields are its components — the node registry ([`Nodes`]), the
//! [`Planner`] (policy, classifier, routing state), read-your-writes ([`Causality`]), the
//! counters, the hedge budget, the watchdog, the monitor's handle and the metric hooks. Other
//! modules reach a component through its accessor here and use the component's own methods;
//! none sees a field. `Inner` has no inherent methods but these, and is what read-your-writes
//! asks of the connection ([`Cluster`]): the layers above it (`connection/mod.rs` lists them)
//! are functions over `&Inner`.

use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use rwsplit_core::{CausalToken, NodeId};
use rwsplit_monitor::TopologyState;
use sea_orm::{DatabaseConnection, DbBackend, DbErr};

use crate::consistency::{Capture, Causality, Cluster, Seen};
use crate::hooks::Hooks;
use crate::product::Product;
use crate::route::Routing;
use crate::send::pace::HedgeBudget;
use crate::send::watchdog::Watchdog;
use crate::shared::MonitorHandle;

use super::counters::{Count, Counters};
use super::ctx::Policy;
use super::nodes::{NodeRef, Nodes};
use super::plan::{Around, Planner};

pub(crate) struct Inner {
    /// The registry, by the monitor's state's ids: node 0 is the configured primary, nodes
    /// 1.. the configured replicas, then any added by a topology source (at the index the
    /// state gave them).
    nodes: Nodes,
    /// Where statements go: the policy, the classifier, the routing state, and the product
    /// whose SQL it reads.
    planner: Planner,
    /// Its own counters, for [`Stats`](crate::Stats): retries, read-your-writes, hedging.
    counters: Counters,
    /// Read-your-writes: its tasks' scopes, and the position reads after writes.
    causality: Causality,
    /// Hedges left to spend ([`crate::send::pace::HedgeBudget`]).
    hedge_budget: HedgeBudget,
    /// Looks for nodes silent past their hedge delay while reads are in flight.
    watchdog: Arc<Watchdog>,
    /// The monitor's probe loops (`None` outside a tokio runtime: health then moves only on
    /// the failures statements see), shared with the process's other connections to the same
    /// nodes (`crate::shared`). The last connection's drop stops them.
    monitor: Option<MonitorHandle>,
    /// The task following a topology source, if one was given (stopped with the connection).
    discovery: Mutex<Option<AbortOnDrop>>,
    /// The metric callback every node's hooked pools report to.
    hooks: Arc<Hooks>,
    /// Itself, for the work a statement leaves running after it returns (a write's position
    /// capture): that work stops mattering once the connection is gone.
    me: Weak<Inner>,
}

/// A drop-in replacement for SeaORM's `DatabaseConnection` that sends reads to replicas and
/// everything else to the primary.
///
/// It implements `ConnectionTrait`, `StreamTrait`, `TransactionTrait` (with
/// `Transaction = DatabaseTransaction`) and `IntoDatabaseExecutor`, so code generic over those
/// traits, and SeaORM's own entity, loader, paginator, stream and migration APIs, take
/// `&RoutedConnection` unchanged. Cloning is cheap (one `Arc`).
///
/// How each statement is routed:
/// - its SQL is classified (the method it arrives through says nothing: SeaORM sends
///   `INSERT … RETURNING` through `query_one`); anything not provably a read is a write;
/// - writes, `execute*`, `begin`/`transaction` and locking reads go to the primary;
/// - reads go to a healthy replica — after the caller's own writes, one that has replayed them
///   (see [`Session`](crate::Session)) — unless the consistency level, a
///   [scope](RoutedConnection::scope) or a `/*rwsplit:primary*/` hint says otherwise, or no
///   replica is in rotation;
/// - a read that cannot reach its replica is retried on the next candidate (the primary last).
#[derive(Clone)]
pub struct RoutedConnection {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for RoutedConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let primary = self.inner.routing().primary_id();
        let nodes: Vec<(NodeId, NodeRef)> = self.inner.nodes().iter().collect();
        let name = |i: &NodeId| nodes.iter().find(|(j, _)| j == i).map(|(_, n)| n.name());
        let replicas: Vec<&str> =
            nodes.iter().filter(|(i, _)| Some(*i) != primary).map(|(_, n)| n.name()).collect();
        f.debug_struct("RoutedConnection")
            .field("backend", &self.inner.backend())
            .field("primary", &primary.as_ref().and_then(name))
            .field("replicas", &replicas)
            .finish_non_exhaustive()
    }
}

/// What a connection is made of, handed to [`Inner::new`] by the code that builds it.
pub(crate) struct Parts {
    pub(crate) nodes: Nodes,
    pub(crate) planner: Planner,
    pub(crate) watchdog: Arc<Watchdog>,
}

impl Inner {
    /// The connection's state from its `parts`; `start` is handed the connection's own weak
    /// reference before it exists (for the tasks it starts) and gives back the monitor's
    /// handle, if one runs.
    pub(crate) fn new(
        parts: Parts,
        start: impl FnOnce(&Weak<Inner>) -> Option<MonitorHandle>,
    ) -> Arc<Inner> {
        let Parts { nodes, planner, watchdog } = parts;
        let policy = planner.policy();
        let causality = Causality::new(
            policy.read_your_writes,
            policy.monitor.position_linger_value(),
            policy.monitor.probe_timeout_value(),
        );
        Arc::new_cyclic(|me: &Weak<Inner>| Inner {
            monitor: start(me),
            nodes,
            planner,
            counters: Counters::default(),
            causality,
            hedge_budget: HedgeBudget::default(),
            watchdog,
            discovery: Mutex::new(None),
            hooks: Arc::default(),
            me: me.clone(),
        })
    }

    /// The node registry.
    pub(crate) fn nodes(&self) -> &Nodes {
        &self.nodes
    }

    /// The product seam: its SQL, error codes and session setup (the planner's).
    pub(crate) fn product(&self) -> Product {
        self.planner.product()
    }

    /// The database backend (the same on every node), as SeaORM names it.
    pub(crate) fn backend(&self) -> DbBackend {
        self.product().backend()
    }

    /// `db.system.name`.
    pub(crate) fn system(&self) -> &'static str {
        self.product().system_name()
    }

    /// The planner.
    pub(crate) fn planner(&self) -> &Planner {
        &self.planner
    }

    /// The routing policy the builder set.
    pub(crate) fn policy(&self) -> &Policy {
        self.planner.policy()
    }

    /// The routing state: the monitor's topology and the core router.
    pub(crate) fn routing(&self) -> &Routing {
        self.planner.routing()
    }

    /// What a plan reads of the rest of the connection: read-your-writes, the number of nodes, and
    /// whether a monitor runs.
    pub(super) fn around(&self) -> Around<'_> {
        Around {
            causality: &self.causality,
            nodes: self.nodes.count(),
            monitored: self.monitor.is_some(),
        }
    }

    /// The classifier, behind its cache.
    pub(crate) fn classified(&self) -> &crate::classified::Classified {
        self.planner.classified()
    }

    /// The connection's own counters.
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Read-your-writes: its operations take the connection as their [`Cluster`].
    pub(crate) fn causality(&self) -> &Causality {
        &self.causality
    }

    /// A read was made: it earns its share of a hedge ([`HedgeBudget::earn`]).
    #[inline]
    pub(crate) fn earn_hedge(&self) {
        self.hedge_budget.earn();
    }

    /// Spends one hedge if one is left ([`HedgeBudget::spend`]).
    #[inline]
    pub(crate) fn spend_hedge(&self) -> bool {
        self.hedge_budget.spend()
    }

    /// A read is about to wait on a replica: the watchdog over reads in flight looks from now
    /// on ([`Watchdog::ensure`]).
    #[inline]
    pub(crate) fn watch_reads(&self) {
        self.watchdog.ensure();
    }

    /// The monitor's handle, if a monitor runs.
    pub(crate) fn monitor(&self) -> Option<&MonitorHandle> {
        self.monitor.as_ref()
    }

    /// Keeps `task` (the one following a topology source) for the connection's life: it stops
    /// when the connection is dropped, or when another replaces it.
    pub(crate) fn follow_topology(&self, task: AbortOnDrop) {
        *self.discovery.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(task);
    }

    /// The metric callback's registry.
    pub(crate) fn hooks(&self) -> &Arc<Hooks> {
        &self.hooks
    }

    /// The connection itself, weakly (for work it leaves running).
    pub(crate) fn me(&self) -> &Weak<Inner> {
        &self.me
    }

    /// The id of the node that has the primary role now (the configured one until a
    /// promotion is seen).
    pub(crate) fn primary_index(&self) -> NodeId {
        self.planner.primary_index()
    }

    /// Runs `f` on the primary's node (the configured one until a promotion is seen); if it
    /// is not there (removed by a topology source), on the first node there is.
    pub(crate) fn with_primary<R>(&self, f: impl FnOnce(&super::Node) -> R) -> R {
        self.nodes.with_primary(self.primary_index(), f)
    }

    /// The primary's connection as the user gets it (reporting to the metric callback once one
    /// is set; no scope is touched), borrowed for the connection's life (see [`Nodes::lend`]).
    pub(crate) fn primary_conn(&self) -> &DatabaseConnection {
        let primary = self.primary_index();
        self.nodes.lend(primary, primary, true)
    }

    /// Node `id`'s read connection as the user gets it (the primary's if `id` is not there),
    /// borrowed for the connection's life (see [`Nodes::lend`]).
    pub(crate) fn read_conn(&self, id: NodeId) -> &DatabaseConnection {
        self.nodes.lend(id, self.primary_index(), false)
    }
}

impl Cluster for Inner {
    fn node_count(&self) -> usize {
        self.nodes.count()
    }

    fn topology_state(&self) -> &TopologyState {
        self.routing().state()
    }

    fn monitored(&self) -> bool {
        self.monitor.is_some()
    }

    fn floor(&self, seen: &Seen) -> Option<CausalToken> {
        match self.routing().floor(seen) {
            crate::route::Floor::Known(t) => Some(t),
            crate::route::Floor::Unknown(_) => None,
        }
    }

    fn primary(&self) -> NodeId {
        self.routing().primary_id().unwrap_or_else(|| self.primary_index())
    }

    fn name_of(&self, node: NodeId) -> Option<String> {
        self.nodes.get(node).map(|n| n.name().to_owned())
    }

    async fn read_position<'a>(
        &'a self,
        node: NodeId,
        taken: Option<&'a mut crate::send::sending::Taken>,
    ) -> Result<CausalToken, DbErr> {
        let n = self.nodes.get(node).ok_or_else(|| {
            let name = self.nodes.removed_name(node);
            DbErr::from(crate::routing_error::RoutingError::node_removed(node, name.as_deref()))
        })?;
        let cached = n.system_id();
        let mut on = match taken {
            Some(t) => crate::position::On::Taken(t),
            None => crate::position::On::Pool(n.writer()),
        };
        match self.product().capture(&mut on, cached).await {
            Ok((token, system_id)) => {
                n.set_system_id(system_id);
                self.counters.bump(Count::Captures);
                Ok(token)
            }
            Err(e) => {
                self.counters.bump(Count::CaptureFailures);
                Err(crate::routing_error::read_on(e, n.name()))
            }
        }
    }

    fn background(&self) -> Option<impl FnOnce(Capture)> {
        // Live while a statement of the connection runs (it holds the connection).
        let (Ok(runtime), Some(db)) = (tokio::runtime::Handle::try_current(), self.me.upgrade())
        else {
            return None;
        };
        Some(move |capture| {
            runtime.spawn(async move {
                db.causality.finish(&*db, capture).await;
            });
        })
    }
}

/// A background task of the connection's (topology discovery) that stops when the connection
/// is dropped.
pub(crate) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl AbortOnDrop {
    pub(crate) fn new(task: tokio::task::JoinHandle<()>) -> AbortOnDrop {
        AbortOnDrop(task)
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl fmt::Debug for AbortOnDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AbortOnDrop")
    }
}
