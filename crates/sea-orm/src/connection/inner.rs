//! The connection's shared state: [`RoutedConnection`], a facade over `Arc<Inner>`, and what
//! [`Inner`] holds — the node registry ([`Nodes`], its own component in `nodes`), the routing
//! policy, the read-your-writes scopes, counters — with the per-call [`Ctx`] and the
//! task-locals of scopes and sessions. `Inner`'s methods live with the concern they serve (the
//! list in `connection/mod.rs`); here are only those that find the primary's node.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rwsplit_core::{Consistency, Dialect, NodeId, Target};
use sea_orm::{DatabaseConnection, DbBackend};

pub(crate) use crate::causal::Scope;
use crate::causal::{ScopeStore, Shared};
use crate::route::Routing;

use super::nodes::{NodeRef, Nodes};

/// Routing policy switches.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// Track each write's replication position so later reads in its scope see it.
    pub(crate) read_your_writes: bool,
    /// How long a read-your-writes read may wait for a replica to catch up before it goes to
    /// the primary (`None`: go to the primary at once).
    pub(crate) wait_for_replica: Option<Duration>,
    pub(crate) read_retries: u8,
    pub(crate) monitor: rwsplit_monitor::MonitorConfig,
    pub(crate) consistency: Consistency,
    pub(crate) timeouts: crate::deadline::Timeouts,
    pub(crate) failover: Option<rwsplit_monitor::AutoFailover>,
    pub(crate) on_replica_refusal: crate::OnReplicaRefusal,
    /// Whether a read on a replica still unanswered after its node's hedge delay is sent to
    /// another node of its plan too ([`crate::pace`]).
    pub(crate) hedged_reads: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            read_your_writes: true,
            wait_for_replica: Some(DEFAULT_WAIT_FOR_REPLICA),
            read_retries: 2,
            monitor: rwsplit_monitor::MonitorConfig::default(),
            consistency: Consistency::Session,
            timeouts: crate::deadline::Timeouts::default(),
            failover: None,
            on_replica_refusal: crate::OnReplicaRefusal::Primary,
            hedged_reads: true,
        }
    }
}

/// How long a read-your-writes read waits, by default, for a replica to replay the caller's
/// writes before it goes to the primary. Replicas at their usual lag replay a write within a
/// millisecond or two, so a read right after a write finds one in time and the primary is
/// spared; a replica the monitor knows to be further behind than this is not waited on.
pub(crate) const DEFAULT_WAIT_FOR_REPLICA: Duration = Duration::from_millis(10);

/// A token that could never be satisfied (another history) is dropped from a task's scope
/// after this long without a write.
pub(crate) const FOREIGN_TOKEN_TTL: Duration = Duration::from_secs(60);

pub(crate) struct Inner {
    /// The registry, by id: node 0 is the configured primary, nodes 1.. the configured
    /// replicas, then any added by a topology source (at the index the monitor gave them).
    pub(crate) nodes: Arc<Nodes>,
    pub(crate) backend: DbBackend,
    /// The product seam: its SQL, error codes and session setup.
    pub(crate) product: crate::product::Product,
    /// `db.system.name`.
    pub(crate) system: &'static str,
    pub(crate) dialect: Dialect,
    /// The classifier, behind a cache of the texts it has seen.
    pub(crate) classified: crate::classified::Classified,
    pub(crate) policy: Policy,
    pub(crate) routing: Routing,
    /// Its own counters, for [`Stats`](crate::Stats): retries, read-your-writes, hedging.
    pub(crate) counters: super::counters::Counters,
    /// The read-your-writes scopes of its tasks, and the position reads after writes.
    pub(crate) scopes: ScopeStore,
    /// Hedges left to spend ([`crate::pace::HedgeBudget`]).
    pub(crate) hedge_budget: crate::pace::HedgeBudget,
    /// Looks for nodes silent past their hedge delay while reads are in flight.
    pub(crate) watchdog: Arc<crate::watchdog::Watchdog>,
    /// The monitor's probe loops (`None` outside a tokio runtime: health then moves only on
    /// the failures statements see), shared with the process's other connections to the same
    /// nodes (`crate::shared`). The last connection's drop stops them.
    pub(crate) monitor: Option<crate::shared::MonitorHandle>,
    /// The task following a topology source, if one was given (stopped with the connection).
    pub(crate) discovery: Mutex<Option<AbortOnDrop>>,
    /// The metric callback every node's hooked pools report to.
    pub(crate) hooks: Arc<crate::hooks::Hooks>,
    /// Itself, for the work a statement leaves running after it returns (a write's position
    /// capture): that work stops mattering once the connection is gone.
    pub(crate) me: std::sync::Weak<Inner>,
}

/// How one call is routed beyond its SQL: whose read-your-writes scope it uses, and per-call
/// consistency and catch-up settings.
#[derive(Clone, Copy, Default)]
pub(crate) struct Ctx<'a> {
    /// An explicit session; `None`: the ambient session (`Session::scope`) or the task's scope.
    pub(crate) session: Option<&'a Arc<Shared>>,
    pub(crate) consistency: Option<&'a Consistency>,
    /// `Some(None)`: go to the primary at once; `Some(Some(d))`: wait up to `d`.
    pub(crate) wait: Option<Option<Duration>>,
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
        let primary = self.inner.routing.primary_id();
        let nodes: Vec<(NodeId, NodeRef)> = self.inner.nodes.iter().collect();
        let name = |i: &NodeId| nodes.iter().find(|(j, _)| j == i).map(|(_, n)| n.name());
        let replicas: Vec<&str> =
            nodes.iter().filter(|(i, _)| Some(*i) != primary).map(|(_, n)| n.name()).collect();
        f.debug_struct("RoutedConnection")
            .field("backend", &self.inner.backend)
            .field("primary", &primary.as_ref().and_then(name))
            .field("replicas", &replicas)
            .finish_non_exhaustive()
    }
}

tokio::task_local! {
    /// The target of [`RoutedConnection::scope`].
    pub(crate) static SCOPE: Target;
    /// The ambient session of [`Session::scope`](crate::Session::scope).
    pub(crate) static SESSION: Arc<Shared>;
}

impl Inner {
    /// The id of the node that has the primary role now (the configured one until a
    /// promotion is seen).
    pub(crate) fn primary_index(&self) -> NodeId {
        self.routing.primary_id().unwrap_or(NodeId::new(0))
    }

    /// The primary's node (the configured one until a promotion is seen); if it is not there
    /// (removed by a topology source), the first node there is.
    pub(crate) fn primary_node(&self) -> NodeRef {
        match self.nodes.get(self.primary_index()) {
            Some(n) => n,
            None => self.any_node(),
        }
    }

    /// The first node there is (the adapter never removes its last one).
    pub(crate) fn any_node(&self) -> NodeRef {
        self.nodes.any()
    }

    /// The primary's connection as the user gets it (reporting to the metric callback once one
    /// is set; no scope is touched), borrowed for the connection's life (see [`Nodes::keep`]).
    pub(crate) fn primary_conn(&self) -> &DatabaseConnection {
        self.nodes.keep(&self.primary_node()).user_writer()
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
