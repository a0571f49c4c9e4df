//! The connection's data: [`RoutedConnection`] and what it holds — one [`Node`] per server,
//! the routing policy, the read-your-writes scopes, counters — and the small per-call types
//! ([`Ctx`], [`Scope`]). No behaviour beyond accessors: every module of the connection builds
//! on this one.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rwsplit_core::{Classifier, Consistency, Dialect, Target};
use sea_orm::{DatabaseConnection, DbBackend};

use crate::causal::{Shared, TaskScopes};
use crate::route::Routing;
use crate::telemetry::{NodeLabels, Ryw};

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
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            read_your_writes: true,
            wait_for_replica: None,
            read_retries: 2,
            monitor: rwsplit_monitor::MonitorConfig::default(),
            consistency: Consistency::Eventual,
            timeouts: crate::deadline::Timeouts::default(),
            failover: None,
        }
    }
}

/// A token that could never be satisfied (another history) is dropped from a task's scope
/// after this long without a write.
pub(crate) const FOREIGN_TOKEN_TTL: Duration = Duration::from_secs(60);

/// One database server as the adapter sees it: its pools, its counters and its placement. Its
/// health, role and lag are the monitor's ([`Routing`]), under the same index.
pub(crate) struct Node {
    /// `host:port/db`, never credentials.
    pub(crate) name: String,
    /// The pool reads use; read-only sessions on a configured replica.
    pub(crate) conn: DatabaseConnection,
    /// The pool writes use: the same pool on the configured primary; on a replica a lazy,
    /// writable pool that opens connections only if the node is promoted and takes writes.
    pub(crate) writer: DatabaseConnection,
    pub(crate) reads: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) failures: AtomicU64,
    /// Statements that found no free connection in the node's pool in time (back-pressure:
    /// never counted against the node's health).
    pub(crate) pool_timeouts: AtomicU64,
    /// PostgreSQL system identifier, for tokens (0: not known yet).
    pub(crate) system_id: AtomicU64,
    /// Weight, zone and tags, for the router's balancers and rules.
    pub(crate) placement: crate::replica::Placement,
    /// Its metric labels.
    pub(crate) labels: NodeLabels,
    /// Whether reads and writes share one pool (`conn` is `writer`).
    pub(crate) one_pool: bool,
    /// When it last answered a probe.
    pub(crate) last_seen: Mutex<Option<Instant>>,
}

impl Node {
    pub(crate) fn new(name: String, conn: DatabaseConnection) -> Node {
        let mut node = Node::with_writer(name, conn.clone(), conn);
        node.one_pool = true;
        node
    }

    pub(crate) fn with_writer(
        name: String,
        conn: DatabaseConnection,
        writer: DatabaseConnection,
    ) -> Node {
        Node {
            labels: NodeLabels::of(&name),
            name,
            conn,
            writer,
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            pool_timeouts: AtomicU64::new(0),
            system_id: AtomicU64::new(0),
            placement: crate::replica::Placement::default(),
            last_seen: Mutex::new(None),
            one_pool: false,
        }
    }

    /// The node with its weight, zone and tags.
    pub(crate) fn placed(mut self, placement: crate::replica::Placement) -> Node {
        self.placement = placement;
        self
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node").field("name", &self.name).finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    /// Node 0 is the configured primary, nodes 1.. the replicas.
    pub(crate) nodes: Vec<Node>,
    pub(crate) backend: DbBackend,
    /// `db.system.name`.
    pub(crate) system: &'static str,
    pub(crate) dialect: Dialect,
    pub(crate) classifier: Classifier,
    pub(crate) policy: Policy,
    pub(crate) tasks: TaskScopes,
    pub(crate) routing: Routing,
    pub(crate) retries: AtomicU64,
    pub(crate) counters: Counters,
    /// The monitor's probe loops (`None` outside a tokio runtime: health then moves only on
    /// the failures statements see). Dropped with the connection, which stops them.
    pub(crate) monitor: Option<rwsplit_monitor::Monitor>,
}

/// Read-your-writes counters, for [`Stats`](crate::Stats).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) captures: AtomicU64,
    pub(crate) capture_failures: AtomicU64,
    pub(crate) token_reads_on_replicas: AtomicU64,
    pub(crate) token_reads_on_primary: AtomicU64,
    pub(crate) waits: AtomicU64,
    pub(crate) wait_timeouts: AtomicU64,
    pub(crate) foreign_tokens: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    /// Where a read that had to see a write went: counted here and in the metrics.
    pub(crate) fn read_your_writes(&self, outcome: Ryw) {
        match outcome {
            Ryw::Replica | Ryw::Waited => bump(&self.token_reads_on_replicas),
            Ryw::Primary => bump(&self.token_reads_on_primary),
        }
        crate::telemetry::read_your_writes(outcome);
    }
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

/// The scope a call's writes are recorded in and its reads consult.
pub(crate) enum Scope {
    Task,
    Session(Arc<Shared>),
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
        let names: Vec<&str> = self.inner.nodes.iter().map(|n| n.name.as_str()).collect();
        f.debug_struct("RoutedConnection")
            .field("backend", &self.inner.backend)
            .field("primary", &names[0])
            .field("replicas", &&names[1..])
            .finish_non_exhaustive()
    }
}

tokio::task_local! {
    /// The target of [`RoutedConnection::scope`].
    pub(crate) static SCOPE: Target;
    /// The ambient session of [`Session::scope`](crate::Session::scope).
    pub(crate) static SESSION: Arc<Shared>;
}

impl RoutedConnection {
    /// The node that has the primary role now (the configured one until a promotion is seen).
    pub(crate) fn primary_index(&self) -> usize {
        self.inner.routing.primary_index().unwrap_or(0)
    }

    /// The primary's connection, for the adapter's own use (no scope is touched).
    pub(crate) fn primary_conn(&self) -> &DatabaseConnection {
        &self.inner.nodes[self.primary_index()].writer
    }
}
