//! [`RoutedConnection`] and its SeaORM trait implementations.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rwsplit_core::{
    Access, CatchUp, CausalToken, Classification, Classifier, Consistency, Dialect, HealthPolicy,
    RouteContext, RouteReason, RouterConfig, Target, Transaction,
};
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DatabaseExecutor, DatabaseTransaction,
    DbBackend, DbErr, ExecResult, IntoDatabaseExecutor, IsolationLevel, QueryResult, QueryStream,
    Statement, StreamTrait, TransactionError, TransactionOptions, TransactionTrait,
};

use rwsplit_core::{Node as CoreNode, Role, Topology};
use rwsplit_monitor::{Flavor, Monitor};

use crate::causal::{Shared, Slot, TaskScopes};
use crate::failure::{self, Failure};
use crate::position::{self, Waited};
use crate::probe::NodeConnector;
use crate::route::node_id;
use crate::route::{Plan, Routing};

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
/// How often a read waiting on a replica checks whether the monitor has marked it down.
const DOWN_CHECK: Duration = Duration::from_millis(50);

pub(crate) const FOREIGN_TOKEN_TTL: Duration = Duration::from_secs(60);

/// One database server as the adapter sees it.
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
}

impl Node {
    pub(crate) fn new(name: String, conn: DatabaseConnection) -> Node {
        Node::with_writer(name, conn.clone(), conn)
    }

    pub(crate) fn with_writer(
        name: String,
        conn: DatabaseConnection,
        writer: DatabaseConnection,
    ) -> Node {
        Node {
            name,
            conn,
            writer,
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            pool_timeouts: AtomicU64::new(0),
            system_id: AtomicU64::new(0),
            placement: crate::replica::Placement::default(),
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

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// How one call is routed beyond its SQL: whose read-your-writes scope it uses, and per-call
/// consistency and catch-up settings.
#[derive(Clone, Copy, Default)]
pub(crate) struct Ctx<'a> {
    /// An explicit session; `None`: the ambient session (`Session::scope`) or the task's scope.
    pub(crate) session: Option<&'a std::sync::Arc<Shared>>,
    pub(crate) consistency: Option<&'a Consistency>,
    /// `Some(None)`: go to the primary at once; `Some(Some(d))`: wait up to `d`.
    pub(crate) wait: Option<Option<Duration>>,
}

/// The scope a call's writes are recorded in and its reads consult.
pub(crate) enum Scope {
    Task,
    Session(std::sync::Arc<Shared>),
}

/// A scope named from outside its task: the task's id (`None`: code outside any task), or
/// the session.
enum Key {
    Task(Option<tokio::task::Id>),
    Session(std::sync::Arc<Shared>),
}

/// What a read needs from the primary's history.
enum Need {
    Nothing,
    Token(CausalToken),
    /// The scope wrote but its position is unknown and could not be read: the primary.
    Primary,
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
    static SCOPE: Target;
    pub(crate) static SESSION: std::sync::Arc<Shared>;
}

impl RoutedConnection {
    // One argument per part the builder configured; a parameter struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        primary: Node,
        replicas: Vec<Node>,
        backend: DbBackend,
        policy: Policy,
        classifier: Classifier,
        router: RouterConfig,
        health: HealthPolicy,
        connector: NodeConnector,
    ) -> RoutedConnection {
        let dialect = match backend {
            DbBackend::MySql => Dialect::MySql,
            DbBackend::Sqlite => Dialect::Sqlite,
            _ => Dialect::Postgres,
        };
        let mut nodes = Vec::with_capacity(replicas.len() + 1);
        nodes.push(primary);
        nodes.extend(replicas);
        let mut topology = Topology::builder();
        for (i, n) in nodes.iter().enumerate() {
            let role = if i == 0 { Role::Primary } else { Role::Replica };
            let mut b = CoreNode::builder(node_id(i), role)
                .name(n.name.as_str())
                .weight(n.placement.weight);
            if let Some(zone) = &n.placement.zone {
                b = b.zone(zone.clone());
            }
            for tag in &n.placement.tags {
                b = b.tag(tag.clone());
            }
            topology = topology.node(b.build());
        }
        // Node ids are the indices 0..n (n ≤ MAX_NODES is checked by the builder of the
        // connection), so building cannot fail; an empty topology would route nothing.
        let routing = Routing::new(topology.build().unwrap_or_default(), router, health);
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<Inner>| {
            let monitor = start_monitor(weak, backend, &policy, routing.state(), connector);
            Inner {
                nodes,
                backend,
                dialect,
                classifier,
                tasks: TaskScopes::default(),
                policy,
                routing,
                retries: AtomicU64::new(0),
                counters: Counters::default(),
                monitor,
            }
        });
        RoutedConnection { inner }
    }

    /// Waits until the monitor has probed every node once (at most `max`), so the first reads
    /// already know every replica's role and position. Returns the nodes whose first probe was
    /// refused (nothing accepts its connections; one that was only slow, or answered with an
    /// error, starts Suspect as usual instead of banned).
    pub(crate) async fn first_probes(&self, max: Duration) -> Vec<usize> {
        let Some(m) = &self.inner.monitor else { return Vec::new() };
        m.first_round(max).await;
        (0..self.inner.nodes.len()).filter(|&i| m.state().refused(i)).collect()
    }

    /// The database backend (the same on every node). Inherent, so `db.get_database_backend()`
    /// is not ambiguous between SeaORM's `ConnectionTrait` and `StreamTrait`.
    pub fn get_database_backend(&self) -> DbBackend {
        self.inner.backend
    }

    /// The primary's own connection: every call on it runs on the primary, unrouted. Use it for
    /// migrations (`Migrator::up(db.primary(), None)`), schema changes and code typed to
    /// `&DatabaseConnection`.
    ///
    /// Writes made through it are not seen by the router, so handing it out makes the caller's
    /// read-your-writes scope conservative, as `begin()` does: its next read first asks the
    /// primary for its position (at or past anything written through this connection by then),
    /// or reads from the primary.
    pub fn primary(&self) -> &DatabaseConnection {
        self.escaped();
        self.primary_conn()
    }

    /// The primary's connection, for the adapter's own use (no scope is touched).
    pub(crate) fn primary_conn(&self) -> &DatabaseConnection {
        &self.inner.nodes[self.primary_index()].writer
    }

    /// The primary's connection left the router's sight: the caller's scope becomes pending.
    fn escaped(&self) {
        let scope = self.scope_of(&Ctx::default());
        if self.tracks_writes(&scope) {
            self.scope_update(&scope, Slot::mark_pending);
        }
    }

    /// The primary's sqlx pool (as [`DatabaseConnection::get_postgres_connection_pool`], which
    /// panics on another backend). Like [`primary`](RoutedConnection::primary), it makes the
    /// caller's read-your-writes scope conservative.
    #[cfg(feature = "postgres")]
    pub fn get_postgres_connection_pool(&self) -> &sea_orm::sqlx::PgPool {
        self.primary().get_postgres_connection_pool()
    }

    /// The primary's sqlx pool (as [`DatabaseConnection::get_mysql_connection_pool`], which
    /// panics on another backend). Like [`primary`](RoutedConnection::primary), it makes the
    /// caller's read-your-writes scope conservative.
    #[cfg(feature = "mysql")]
    pub fn get_mysql_connection_pool(&self) -> &sea_orm::sqlx::MySqlPool {
        self.primary().get_mysql_connection_pool()
    }

    /// The node that has the primary role now (the configured one until a promotion is seen).
    fn primary_index(&self) -> usize {
        self.inner.routing.primary_index().unwrap_or(0)
    }

    /// A replica's own connection, chosen as a read would be (healthy, by the balancer), for
    /// calls that must not reach the primary; the primary's when no replica is in rotation.
    /// Its sessions are read-only, so writes through it fail.
    pub fn replica(&self) -> &DatabaseConnection {
        let ctx = RouteContext::for_access(Access::Read, std::time::Instant::now())
            .with_target(Target::Replica);
        let index = self.inner.routing.plan(&ctx).map_or(self.primary_index(), |p| p.first());
        &self.inner.nodes[index].conn
    }

    /// Runs `fut` with every statement this connection routes inside it sent to `target`
    /// (reads included; writes always go to the primary). The scope follows the task, not the
    /// connection value.
    ///
    /// ```no_run
    /// # async fn demo(db: rwsplit_sea_orm::RoutedConnection) -> Result<(), sea_orm::DbErr> {
    /// use rwsplit_sea_orm::{RoutedConnection, Target};
    /// RoutedConnection::scope(Target::Primary, async {
    ///     // every read here sees the primary
    ///     db.ping().await
    /// })
    /// .await
    /// # }
    /// ```
    pub async fn scope<F: Future>(target: Target, fut: F) -> F::Output {
        SCOPE.scope(target, fut).await
    }

    /// Pings the primary.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.primary_conn().ping().await
    }

    /// Closes every node's pool.
    pub async fn close(self) -> Result<(), DbErr> {
        self.close_by_ref().await
    }

    /// Closes every node's pool, by reference.
    pub async fn close_by_ref(&self) -> Result<(), DbErr> {
        let mut first_err = None;
        for n in &self.inner.nodes {
            if let Err(e) = n.conn.close_by_ref().await {
                first_err.get_or_insert(e);
            }
            if let Err(e) = n.writer.close_by_ref().await {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// SeaORM's schema builder for this backend.
    pub fn get_schema_builder(&self) -> sea_orm::SchemaBuilder {
        self.primary_conn().get_schema_builder()
    }

    /// Runs `callback` in a transaction on the primary (the async-closure form of
    /// [`TransactionTrait::transaction`]).
    pub async fn transaction_async<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> AsyncFnOnce(&'c DatabaseTransaction) -> Result<T, E> + Send,
        T: Send,
        E: fmt::Display + fmt::Debug + Send,
    {
        let scope = self.scope_of(&Ctx::default());
        let plan = self
            .plan_ctx(&RouteContext::for_access(Access::Write, Instant::now()))
            .map_err(TransactionError::Connection)?
            .with_reason("transaction");
        self.check_writable(plan.first()).map_err(TransactionError::Connection)?;
        let r = self.inner.nodes[plan.first()].writer.transaction_async(callback).await;
        self.after_transaction(plan.first(), &scope, Outcome::of(&r)).await;
        r
    }

    /// Runs `callback` in a transaction with the given isolation level and access mode; a
    /// read-only one may run on a replica (see [`TransactionTrait::begin_with_config`]).
    pub async fn transaction_with_config_async<F, T, E>(
        &self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<T, TransactionError<E>>
    where
        F: for<'c> AsyncFnOnce(&'c DatabaseTransaction) -> Result<T, E> + Send,
        T: Send,
        E: fmt::Display + fmt::Debug + Send,
    {
        let ctx = Ctx::default();
        let (txn, node) = self
            .begin_in(isolation_level, access_mode, TransactionOptions::default(), &ctx, false)
            .await
            .map_err(TransactionError::Connection)?;
        let result = callback(&txn).await;
        self.end_transaction(txn, result, node, &ctx).await
    }

    /// Commits on `Ok`, rolls back on `Err`; a committed transaction on the primary records its
    /// position in the caller's scope (its commit is when the writes became visible).
    pub(crate) async fn end_transaction<T, E>(
        &self,
        txn: DatabaseTransaction,
        result: Result<T, E>,
        node: Option<usize>,
        ctx: &Ctx<'_>,
    ) -> Result<T, TransactionError<E>> {
        let r = match result {
            Ok(v) => txn.commit().await.map(|()| v).map_err(TransactionError::Connection),
            Err(e) => {
                txn.rollback().await.map_err(TransactionError::Connection)?;
                Err(TransactionError::Transaction(e))
            }
        };
        if let Some(node) = node {
            self.after_transaction(node, &self.scope_of(ctx), Outcome::of(&r)).await;
        }
        r
    }

    /// After a read-write transaction on `node`: committed → record the position; a commit
    /// that failed on the connection may or may not have happened → the position is pending
    /// (the next read asks the primary, or reads there); rolled back → nothing.
    async fn after_transaction(&self, node: usize, scope: &Scope, outcome: Outcome) {
        match outcome {
            Outcome::Committed => self.after_write(node, scope).await,
            Outcome::Unknown => {
                if self.tracks_writes(scope) {
                    self.scope_update(scope, Slot::mark_pending);
                }
            }
            Outcome::RolledBack => {}
        }
    }

    /// Statement counts per node and routing totals, for operators and tests.
    pub fn stats(&self) -> crate::Stats {
        crate::stats::snapshot(self)
    }

    /// Takes `node` out of rotation at once (it was unreachable at start).
    pub(crate) fn ban(&self, node: usize) {
        self.inner.routing.ban(node);
    }

    fn classify<'s>(&self, sql: &'s str) -> Classification<'s> {
        self.inner.classifier.explain(sql, self.inner.dialect)
    }

    fn plan_ctx(&self, ctx: &RouteContext<'_>) -> Result<Plan, DbErr> {
        self.inner.routing.plan(ctx)
    }

    // ---- read-your-writes scopes ----

    /// The scope of a call: its explicit session, else the ambient one, else the task's.
    pub(crate) fn scope_of(&self, ctx: &Ctx<'_>) -> Scope {
        match ctx.session {
            Some(s) => Scope::Session(std::sync::Arc::clone(s)),
            None => SESSION
                .try_with(|s| Scope::Session(std::sync::Arc::clone(s)))
                .unwrap_or(Scope::Task),
        }
    }

    fn scope_get(&self, scope: &Scope) -> Slot {
        match scope {
            Scope::Task => self.inner.tasks.get(),
            Scope::Session(s) => s.get(),
        }
    }

    fn scope_update(&self, scope: &Scope, f: impl FnOnce(&mut Slot)) {
        match scope {
            Scope::Task => self.inner.tasks.update(f),
            Scope::Session(s) => s.update(f),
        }
    }

    /// Whether writes in `scope` record their position: read-your-writes is on and some read
    /// could go elsewhere than the primary (there are replicas), or the scope is a session,
    /// whose token may be exported.
    fn tracks_writes(&self, scope: &Scope) -> bool {
        self.inner.policy.read_your_writes
            && (self.inner.nodes.len() > 1 || matches!(scope, Scope::Session(_)))
    }

    /// The primary's position now, from `node`'s writable pool.
    pub(crate) async fn capture_on(&self, node: usize) -> Result<CausalToken, DbErr> {
        let n = &self.inner.nodes[node];
        let cached = n.system_id.load(Ordering::Relaxed);
        match position::capture(&n.writer, cached).await {
            Ok((token, system_id)) => {
                n.system_id.store(system_id, Ordering::Relaxed);
                bump(&self.inner.counters.captures);
                Ok(token)
            }
            Err(e) => {
                bump(&self.inner.counters.capture_failures);
                Err(e)
            }
        }
    }

    /// A write committed on `node`: the primary's position is read off the request path, in a
    /// task of its own, and recorded in the scope when it arrives; meanwhile the scope counts
    /// it in flight and its reads go to the primary (a replica could not have the write yet
    /// anyway). The write has succeeded whatever happens here; if the position cannot be read,
    /// the scope is marked pending instead (its next read asks again, or goes to the primary).
    async fn after_write(&self, node: usize, scope: &Scope) {
        if !self.tracks_writes(scope) {
            return;
        }
        let key = match scope {
            Scope::Task => Key::Task(tokio::task::try_id()),
            Scope::Session(s) => Key::Session(std::sync::Arc::clone(s)),
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            let epoch = self.key_update(&key, |s| s.pending_epoch);
            self.finish_capture(node, None, &key, epoch).await;
            return;
        };
        let epoch = self.key_update(&key, |s| {
            s.inflight += 1;
            s.pending_epoch
        });
        let db = self.clone();
        runtime.spawn(async move {
            db.finish_capture(node, Some(()), &key, epoch).await;
        });
    }

    /// Reads the position after a write and records it under `key`; `counted`: the capture was
    /// counted in flight; `epoch`: the scope's pending epoch when the write committed (the read
    /// clears only what was pending then).
    async fn finish_capture(&self, node: usize, counted: Option<()>, key: &Key, epoch: u64) {
        let result = self.capture_on(node).await;
        let done = |s: &mut Slot| {
            if counted.is_some() {
                s.inflight = s.inflight.saturating_sub(1);
            }
        };
        match result {
            Ok(token) => self.key_update(key, |s| {
                s.record(&token);
                s.settle_pending(epoch);
                done(s);
            }),
            Err(e) => {
                tracing::warn!(target: "rwsplit", node = %self.inner.nodes[node].name, error = %e, "could not read the primary's position after a write; the next read in this scope goes to the primary");
                self.key_update(key, |s| {
                    s.mark_pending();
                    done(s);
                });
            }
        }
    }

    fn key_update<R>(&self, key: &Key, f: impl FnOnce(&mut Slot) -> R) -> R {
        match key {
            Key::Task(id) => self.inner.tasks.update_task(*id, f),
            Key::Session(s) => s.update(f),
        }
    }

    /// What a read in `scope` needs: nothing, a token, or the primary (position unknown).
    async fn read_need(
        &self,
        scope: &Scope,
        explicit: Option<&CausalToken>,
        wait: Option<Duration>,
    ) -> Need {
        let mut slot = self.scope_get(scope);
        if slot.inflight > 0 {
            // A write's position is on its way. A caller who would rather wait for a replica
            // waits for it first; otherwise no replica can have that write yet: the primary.
            let Some(max) = wait else { return Need::Primary };
            slot = self.settled_slot(scope, max).await;
            if slot.inflight > 0 {
                return Need::Primary;
            }
        }
        let mut token = slot.with_external();
        // A token held from outside is lowered to the primary's position, unless the primary
        // is down or does not answer: then it is used as it came.
        let verify = slot.external.is_some()
            && self.inner.routing.health(self.primary_index()) != rwsplit_core::Health::Down;
        if slot.pending || verify {
            let epoch = slot.pending_epoch;
            match self.capture_on(self.primary_index()).await {
                Ok(t) => {
                    self.scope_update(scope, |s| s.settle(&t, epoch));
                    let mut mine = slot;
                    mine.settle(&t, epoch);
                    token = mine.token;
                }
                Err(_) if !slot.pending => {}
                Err(_) => return Need::Primary,
            }
        }
        match (token, explicit) {
            (Some(t), Some(e)) => Need::Token(t.merged(e)),
            (Some(t), None) => Need::Token(t),
            (None, Some(e)) => Need::Token(e.clone()),
            (None, None) => Need::Nothing,
        }
    }

    /// The scope's state once its position reads in flight have landed, waiting up to `max`.
    pub(crate) async fn settled_slot(&self, scope: &Scope, max: Duration) -> Slot {
        let deadline = crate::deadline::after(max);
        let mut slot = self.scope_get(scope);
        while slot.inflight > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
            slot = self.scope_get(scope);
        }
        slot
    }

    /// The catch-up wait a read may do: the call's, else the connection's default.
    fn wait_of(&self, ctx: &Ctx<'_>) -> Option<Duration> {
        ctx.wait.unwrap_or(self.inner.policy.wait_for_replica).filter(|d| !d.is_zero())
    }

    /// Where a statement goes: classified, then the explicit scope, the consistency level with
    /// the caller's read-your-writes token, and the router.
    async fn plan(&self, sql: &str, ctx: &Ctx<'_>, scope: &Scope) -> Result<Plan, DbErr> {
        let c = self.classify(sql);
        let now = Instant::now();
        let mut rc = RouteContext::new(&c, now).with_statement(sql, self.inner.dialect);
        let target = SCOPE.try_with(|t| *t).ok();
        if let Some(target) = target {
            rc = rc.with_target(target);
        }
        let level = ctx.consistency.unwrap_or(&self.inner.policy.consistency);
        let explicit_token = match level {
            Consistency::ReadYourWrites(t) => Some(t),
            _ => None,
        };
        let overridden = target.is_some() || c.hint().is_some();
        if c.access() == Access::Write
            || overridden
            || matches!(level, Consistency::Strong)
            || (!self.inner.policy.read_your_writes && explicit_token.is_none())
            || (self.inner.nodes.len() == 1 && explicit_token.is_none())
        {
            return self.plan_ctx(&rc.with_consistency(level));
        }
        match self.read_need(scope, explicit_token, self.wait_of(ctx)).await {
            Need::Nothing => self.plan_ctx(&rc.with_consistency(level)),
            Need::Primary => {
                bump(&self.inner.counters.token_reads_on_primary);
                let plan = self.plan_ctx(&rc.with_target(Target::Primary))?;
                Ok(plan.with_reason("read right after a write"))
            }
            Need::Token(token) => self.plan_with_token(rc, level, token, ctx),
        }
    }

    /// A read-your-writes read: replicas known to have replayed `token`, or (if the caller
    /// waits) the closest one, or the primary. A bounded-staleness level still applies its bound
    /// to the replicas that qualify.
    fn plan_with_token(
        &self,
        rc: RouteContext<'_>,
        level: &Consistency,
        token: CausalToken,
        ctx: &Ctx<'_>,
    ) -> Result<Plan, DbErr> {
        let wait = self.wait_of(ctx);
        if self.inner.routing.foreign(&token) {
            bump(&self.inner.counters.token_reads_on_primary);
            bump(&self.inner.counters.foreign_tokens);
            tracing::info!(target: "rwsplit", token = %token, "read-your-writes token is from another history than the primary's (a failover?): no replica can prove it has the write; reading from the primary");
            let plan = self.plan_ctx(&rc.with_target(Target::Primary))?;
            return Ok(plan.with_reason("token from another history"));
        }
        let catch_up = if wait.is_some() { CatchUp::Wait } else { CatchUp::Primary };
        let ryw = Consistency::ReadYourWrites(token);
        let mut plan = self.plan_ctx(&rc.with_consistency(&ryw).with_catch_up(catch_up))?;
        let Consistency::ReadYourWrites(token) = ryw else { return Ok(plan) };
        if let Consistency::BoundedStaleness(bound) = level {
            plan = self.inner.routing.exclude_lagging(plan, bound);
        }
        match plan.route_reason() {
            RouteReason::AwaitCatchUp => {
                if let Some(max) = wait {
                    plan = plan.with_wait(token, max);
                }
            }
            RouteReason::NotCaughtUp => bump(&self.inner.counters.token_reads_on_primary),
            _ if plan.on_primary() => bump(&self.inner.counters.token_reads_on_primary),
            _ => bump(&self.inner.counters.token_reads_on_replicas),
        }
        Ok(plan)
    }

    /// Before a read with a catch-up wait: waits on the first candidate; `true` if it caught
    /// up (read there), `false` if not (skip it: the primary is next).
    async fn catch_up(&self, plan: &Plan) -> bool {
        let Some((token, max)) = plan.wait() else { return true };
        let id = plan.first();
        let node = &self.inner.nodes[id];
        bump(&self.inner.counters.waits);
        match position::wait_for(&node.conn, token, max).await {
            Ok(Waited::CaughtUp) => {
                bump(&self.inner.counters.token_reads_on_replicas);
                true
            }
            Ok(Waited::TimedOut) => {
                bump(&self.inner.counters.wait_timeouts);
                bump(&self.inner.counters.token_reads_on_primary);
                tracing::debug!(target: "rwsplit", node = %node.name, ?max, "replica did not catch up in time: reading from the primary");
                false
            }
            Err(e) => {
                bump(&self.inner.counters.wait_timeouts);
                bump(&self.inner.counters.token_reads_on_primary);
                self.note_failure(id, &e);
                false
            }
        }
    }

    /// Runs `call` along `plan`: the first candidate, then (for reads, when the failure makes
    /// it safe) the next ones, up to the retry budget. Writes run once, on the primary, and
    /// record their position in `scope`.
    async fn run(
        &self,
        stmt: Statement,
        plan: Plan,
        call: Call,
        scope: &Scope,
    ) -> Result<Out, DbErr> {
        let write = plan.access() == Access::Write;
        if write {
            self.check_writable(plan.first())?;
        }
        let skip = usize::from(!self.catch_up(&plan).await);
        let budget = if write { 0 } else { usize::from(self.inner.policy.read_retries) };
        let mut candidates = plan.iter().skip(skip).take(budget + 1).peekable();
        let mut stmt = Some(stmt);
        let mut last_err = None;
        let deadline = crate::deadline::current();
        let mut tried = 0;
        while let Some(id) = candidates.next() {
            let last = candidates.peek().is_none();
            tried += 1;
            let s = match (&stmt, last) {
                (Some(_), true) => stmt.take(),
                (Some(s), false) => Some(s.clone()),
                (None, _) => None,
            };
            let Some(s) = s else { break };
            let node = &self.inner.nodes[id];
            tracing::debug!(target: "rwsplit", node = %node.name, reason = plan.reason(), write, sql = %SqlHead(&s.sql), "route");
            let guard = self.inner.routing.start(id);
            let pool = if write || call == Call::Exec { &node.writer } else { &node.conn };
            let attempt = async {
                match call {
                    Call::One => pool.query_one_raw(s).await.map(Out::One),
                    Call::All => pool.query_all_raw(s).await.map(Out::All),
                    Call::Exec => pool.execute_raw(s).await.map(Out::Exec),
                }
            };
            // Reads are bounded (a hung replica keeps its port open); writes never are: one
            // abandoned mid-flight may still commit.
            let result = if write {
                attempt.await.map_err(Attempt::Failed)
            } else {
                self.bounded(id, deadline, attempt).await
            };
            // A completed round trip feeds the node's latency estimate (peak-EWMA balancing);
            // a failed one only ends its in-flight count.
            if let (Some(g), Ok(_)) = (guard, &result) {
                g.finish(Instant::now());
            }
            match result {
                Ok(out) => {
                    self.note_success(id, write);
                    if write {
                        self.after_write(id, scope).await;
                    }
                    return Ok(out);
                }
                Err(e) => {
                    let (e, failure) = self.note_attempt(id, e);
                    let out_of_time = deadline.is_some_and(|d| Instant::now() >= d);
                    if write || !failure.retryable() || last || out_of_time {
                        return Err(failure::named(e, failure, &node.name, write, tried));
                    }
                    tracing::info!(target: "rwsplit", node = %node.name, error = %e, "read failed, retrying on the next node");
                    self.inner.retries.fetch_add(1, Ordering::Relaxed);
                    last_err = Some(e);
                }
            }
        }
        Err(last_err
            .unwrap_or_else(|| DbErr::Custom("rwsplit: no node to run the statement on".into())))
    }

    async fn stream_plan(
        &self,
        stmt: Statement,
        plan: Plan,
        scope: &Scope,
    ) -> Result<QueryStream, DbErr> {
        let write = plan.access() == Access::Write;
        if write {
            self.check_writable(plan.first())?;
        }
        let skip = usize::from(!self.catch_up(&plan).await);
        let budget = if write { 0 } else { usize::from(self.inner.policy.read_retries) };
        let mut candidates = plan.iter().skip(skip).take(budget + 1).peekable();
        let mut last_err = None;
        let deadline = crate::deadline::current();
        let mut tried = 0;
        while let Some(id) = candidates.next() {
            let last = candidates.peek().is_none();
            let node = &self.inner.nodes[id];
            tracing::debug!(target: "rwsplit", node = %node.name, reason = plan.reason(), write, sql = %SqlHead(&stmt.sql), "route stream");
            let pool = if write { &node.writer } else { &node.conn };
            let open = pool.stream_raw(stmt.clone());
            let opened = if write {
                open.await.map_err(Attempt::Failed)
            } else {
                self.bounded(id, deadline, open).await
            };
            tried += 1;
            match opened {
                Ok(s) => {
                    self.note_success(id, write);
                    if write {
                        // A streamed write (`INSERT … RETURNING` streamed) has run by the time
                        // its stream exists only in part; its position is taken on the next
                        // read.
                        if self.tracks_writes(scope) {
                            self.scope_update(scope, Slot::mark_pending);
                        }
                    }
                    return Ok(s);
                }
                Err(e) => {
                    let (e, failure) = self.note_attempt(id, e);
                    let out_of_time = deadline.is_some_and(|d| Instant::now() >= d);
                    if write || !failure.retryable() || last || out_of_time {
                        return Err(failure::named(e, failure, &node.name, write, tried));
                    }
                    self.inner.retries.fetch_add(1, Ordering::Relaxed);
                    last_err = Some(e);
                }
            }
        }
        Err(last_err
            .unwrap_or_else(|| DbErr::Custom("rwsplit: no node to run the statement on".into())))
    }

    /// One read attempt on node `id`, bounded: by the replica statement deadline if one is
    /// set, by what is left of the caller's own deadline, and — on a replica — by the monitor:
    /// once it marks the node down (a hung server keeps its port open, so its probes time out),
    /// the attempt is given up and the read moves on. A slow read on a healthy replica is not
    /// cut short.
    async fn bounded<T>(
        &self,
        id: usize,
        deadline: Option<Instant>,
        attempt: impl Future<Output = Result<T, DbErr>>,
    ) -> Result<T, Attempt> {
        let name = &self.inner.nodes[id].name;
        let on_replica = id != self.primary_index();
        let timeouts = &self.inner.policy.timeouts;
        let limit = crate::deadline::attempt_limit(on_replica, timeouts, deadline, Instant::now());
        let limited = async {
            match limit {
                None => attempt.await.map_err(Attempt::Failed),
                Some(limit) => match tokio::time::timeout(limit, attempt).await {
                    Ok(r) => r.map_err(Attempt::Failed),
                    Err(_) => Err(Attempt::GivenUp(crate::deadline::timed_out(name, limit))),
                },
            }
        };
        if !on_replica {
            return limited.await;
        }
        let marked_down = async {
            loop {
                tokio::time::sleep(DOWN_CHECK).await;
                if self.inner.routing.health(id) == rwsplit_core::Health::Down {
                    return;
                }
            }
        };
        tokio::select! {
            r = limited => r,
            () = marked_down => Err(Attempt::GivenUp(crate::deadline::marked_down(name))),
        }
    }

    /// Writes fail fast, naming the node, when the monitor has marked the primary down: waiting
    /// for a pool's acquire timeout would only hang the caller, and nothing is ever retried
    /// elsewhere.
    fn check_writable(&self, node: usize) -> Result<(), DbErr> {
        if self.inner.routing.health(node) == rwsplit_core::Health::Down {
            let name = &self.inner.nodes[node].name;
            return Err(DbErr::Conn(sea_orm::RuntimeErr::Internal(format!(
                "rwsplit: the primary {name} is unreachable (marked down by the monitor); the \
                 write was not sent"
            ))));
        }
        Ok(())
    }

    /// Counts a statement `node` served and clears a pending failure count.
    fn note_success(&self, id: usize, write: bool) {
        self.inner.routing.record_success(id);
        let node = &self.inner.nodes[id];
        let counter = if write { &node.writes } else { &node.reads };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Classifies a failure on node `id` for the retry decision; only a failure of the node
    /// itself counts against its health. Back-pressure (the pool had no free connection in
    /// time) is counted in the node's stats and never held against it.
    fn note_failure(&self, id: usize, err: &DbErr) -> Failure {
        let failure = failure::classify(err, id != self.primary_index());
        let node = &self.inner.nodes[id];
        match failure {
            Failure::Connection => {
                node.failures.fetch_add(1, Ordering::Relaxed);
                self.inner.routing.record_failure(id);
            }
            Failure::Backpressure => {
                node.pool_timeouts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target: "rwsplit", node = %node.name, "no free connection in the pool within the acquire timeout (back-pressure; the node is not marked)");
            }
            Failure::GivenUp
            | Failure::ReplicaRefused
            | Failure::NotOnReplica
            | Failure::ReadOnly
            | Failure::Other => {}
        }
        failure
    }

    /// [`note_failure`](Self::note_failure) for an attempt's outcome: an attempt the adapter
    /// gave up is judged by the monitor, not here.
    fn note_attempt(&self, id: usize, attempt: Attempt) -> (DbErr, Failure) {
        match attempt {
            Attempt::Failed(e) => {
                let failure = self.note_failure(id, &e);
                (e, failure)
            }
            Attempt::GivenUp(e) => (e, Failure::GivenUp),
        }
    }

    /// Where a transaction with this configuration begins: a read-only one (not SERIALIZABLE on
    /// PostgreSQL) may use a replica that has the caller's writes, everything else uses the
    /// primary.
    async fn plan_transaction(
        &self,
        isolation: Option<IsolationLevel>,
        access: Option<AccessMode>,
        ctx: &Ctx<'_>,
        scope: &Scope,
    ) -> Result<Plan, DbErr> {
        let now = Instant::now();
        let read_only = access == Some(AccessMode::ReadOnly);
        let serializable_pg = isolation == Some(IsolationLevel::Serializable)
            && self.inner.backend == DbBackend::Postgres;
        if !read_only || serializable_pg {
            let ctx = RouteContext::for_access(Access::Write, now)
                .with_transaction(Transaction::ReadWrite);
            return Ok(self.plan_ctx(&ctx)?.with_reason("transaction"));
        }
        let mut rc =
            RouteContext::for_access(Access::Read, now).with_transaction(Transaction::ReadOnly);
        let level = ctx.consistency.unwrap_or(&self.inner.policy.consistency);
        if let Ok(target) = SCOPE.try_with(|t| *t) {
            return self.plan_ctx(&rc.with_target(target));
        }
        if matches!(level, Consistency::Strong) || !self.inner.policy.read_your_writes {
            return self.plan_ctx(&rc.with_consistency(level));
        }
        let explicit = match level {
            Consistency::ReadYourWrites(t) => Some(t),
            _ => None,
        };
        match self.read_need(scope, explicit, None).await {
            Need::Nothing => self.plan_ctx(&rc.with_consistency(level)),
            Need::Primary => self.plan_ctx(&rc.with_target(Target::Primary)),
            Need::Token(token) => {
                // No catch-up wait for a transaction: it goes where the token is satisfied.
                rc = rc.with_catch_up(CatchUp::Primary);
                let no_wait = Ctx { wait: Some(None), ..*ctx };
                self.plan_with_token(rc, level, token, &no_wait)
            }
        }
    }

    /// Begins a transaction as configured; returns it and, for a read-write one, the node (its
    /// commit is a write to record). `pending`: the caller commits it through SeaORM's own
    /// `DatabaseTransaction`, unseen, so the scope's position becomes pending at once.
    pub(crate) async fn begin_in(
        &self,
        isolation: Option<IsolationLevel>,
        access: Option<AccessMode>,
        mut options: TransactionOptions,
        ctx: &Ctx<'_>,
        pending: bool,
    ) -> Result<(DatabaseTransaction, Option<usize>), DbErr> {
        options.isolation_level = isolation;
        options.access_mode = access;
        let scope = self.scope_of(ctx);
        let plan = self.plan_transaction(isolation, access, ctx, &scope).await?;
        let writes = plan.access() == Access::Write;
        if writes {
            self.check_writable(plan.first())?;
        }
        let on_primary = plan.on_primary();
        let budget = if on_primary { 0 } else { usize::from(self.inner.policy.read_retries) };
        let mut candidates = plan.iter().take(budget + 1).peekable();
        let mut last_err = None;
        while let Some(id) = candidates.next() {
            let last = candidates.peek().is_none();
            let node = &self.inner.nodes[id];
            tracing::debug!(target: "rwsplit", node = %node.name, reason = plan.reason(), "route transaction");
            let pool = if writes { &node.writer } else { &node.conn };
            match pool.begin_with_options(options).await {
                Ok(t) => {
                    if writes && pending && self.tracks_writes(&scope) {
                        self.scope_update(&scope, Slot::mark_pending);
                    }
                    return Ok((t, writes.then_some(id)));
                }
                Err(e) => {
                    let failure = self.note_failure(id, &e);
                    if on_primary || failure == Failure::Other || last {
                        return Err(failure::named(e, failure, &node.name, writes, 1));
                    }
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| DbErr::Custom("rwsplit: no node to begin on".into())))
    }

    // ---- the statement paths every routed handle shares ----

    pub(crate) async fn execute_in(
        &self,
        stmt: Statement,
        ctx: &Ctx<'_>,
    ) -> Result<ExecResult, DbErr> {
        // `execute` returns no rows: it always runs on the primary, whatever the SQL.
        let access = self.classify(&stmt.sql).access();
        let rc = RouteContext::for_access(access, Instant::now()).with_target(Target::Primary);
        let plan = self.plan_ctx(&rc)?.with_reason("execute");
        let scope = self.scope_of(ctx);
        match self.run(stmt, plan, Call::Exec, &scope).await? {
            Out::Exec(r) => Ok(r),
            _ => unexpected(),
        }
    }

    pub(crate) async fn execute_unprepared_in(
        &self,
        sql: &str,
        ctx: &Ctx<'_>,
    ) -> Result<ExecResult, DbErr> {
        // Raw SQL with no rows to return: never worth a replica, and often DDL or SET.
        let rc = RouteContext::for_access(Access::Write, Instant::now());
        let target = self.plan_ctx(&rc)?.first();
        self.check_writable(target)?;
        let node = &self.inner.nodes[target];
        let write = self.classify(sql).access() == Access::Write;
        tracing::debug!(target: "rwsplit", node = %node.name, reason = "execute_unprepared", write, sql = %SqlHead(sql), "route");
        match node.writer.execute_unprepared(sql).await {
            Ok(r) => {
                self.note_success(target, write);
                if write {
                    self.after_write(target, &self.scope_of(ctx)).await;
                }
                Ok(r)
            }
            Err(e) => {
                let failure = self.note_failure(target, &e);
                Err(failure::named(e, failure, &node.name, true, 1))
            }
        }
    }

    /// A statement that returns rows: planned in the call's scope, then run.
    async fn query_in(&self, stmt: Statement, ctx: &Ctx<'_>, call: Call) -> Result<Out, DbErr> {
        let scope = self.scope_of(ctx);
        let plan = self.plan(&stmt.sql, ctx, &scope).await?;
        self.run(stmt, plan, call, &scope).await
    }

    pub(crate) async fn query_one_in(
        &self,
        stmt: Statement,
        ctx: &Ctx<'_>,
    ) -> Result<Option<QueryResult>, DbErr> {
        match self.query_in(stmt, ctx, Call::One).await? {
            Out::One(r) => Ok(r),
            _ => unexpected(),
        }
    }

    pub(crate) async fn query_all_in(
        &self,
        stmt: Statement,
        ctx: &Ctx<'_>,
    ) -> Result<Vec<QueryResult>, DbErr> {
        match self.query_in(stmt, ctx, Call::All).await? {
            Out::All(r) => Ok(r),
            _ => unexpected(),
        }
    }

    pub(crate) async fn stream_in(
        &self,
        stmt: Statement,
        ctx: &Ctx<'_>,
    ) -> Result<QueryStream, DbErr> {
        let scope = self.scope_of(ctx);
        let plan = self.plan(&stmt.sql, ctx, &scope).await?;
        self.stream_plan(stmt, plan, &scope).await
    }

    /// The closure form of a read-write transaction: on the primary, its position recorded
    /// after the commit.
    pub(crate) async fn transaction_in<F, T, E>(
        &self,
        callback: F,
        ctx: &Ctx<'_>,
    ) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c DatabaseTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: fmt::Display + fmt::Debug + Send,
    {
        let scope = self.scope_of(ctx);
        let plan = self
            .plan_transaction(None, None, ctx, &scope)
            .await
            .map_err(TransactionError::Connection)?;
        self.check_writable(plan.first()).map_err(TransactionError::Connection)?;
        let node = &self.inner.nodes[plan.first()];
        tracing::debug!(target: "rwsplit", node = %node.name, reason = "transaction", "route transaction");
        let r = node.writer.transaction(callback).await;
        self.after_transaction(plan.first(), &scope, Outcome::of(&r)).await;
        r
    }
}

/// Starts the monitor on the current tokio runtime. Without one (a connection built outside a
/// runtime) there is no monitor: health then moves only on the failures statements see.
///
/// After each probe the monitor tells this connection what it saw: a PostgreSQL node's system
/// id is kept for tokens, and read-your-writes scopes whose token every replica has replayed
/// are swept. The callback holds only a weak reference, so the connection's drop (which drops
/// the monitor and stops its loops) is never held up by it.
fn start_monitor(
    weak: &std::sync::Weak<Inner>,
    backend: DbBackend,
    policy: &Policy,
    state: &Arc<rwsplit_monitor::TopologyState>,
    connector: NodeConnector,
) -> Option<Monitor> {
    tokio::runtime::Handle::try_current().ok()?;
    if matches!(connector, NodeConnector::None) {
        return None;
    }
    let flavor = match backend {
        DbBackend::Postgres => Flavor::Postgres,
        DbBackend::MySql => Flavor::MariaDb,
        _ => return None,
    };
    let weak = weak.clone();
    let on_probe: rwsplit_monitor::OnProbe = Arc::new(move |node, seen| {
        let Some(inner) = weak.upgrade() else { return };
        if let Some(rwsplit_core::ReplayPosition::Postgres(p)) = seen.and_then(|o| o.position())
            && let Some(n) = inner.nodes.get(node)
        {
            n.system_id.store(p.system_id(), Ordering::Relaxed);
        }
        inner.tasks.sweep(Instant::now(), FOREIGN_TOKEN_TTL, |t| inner.routing.settled(t));
    });
    Some(Monitor::start(
        Arc::clone(state),
        connector,
        flavor,
        policy.monitor,
        policy.failover.clone(),
        Some(on_probe),
    ))
}

/// Why one attempt on a node failed.
enum Attempt {
    /// The node (or the driver) returned an error.
    Failed(DbErr),
    /// The adapter gave it up: a deadline passed, or the monitor marked the node down.
    GivenUp(DbErr),
}

/// How a read-write transaction ended, as far as its writes go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Committed,
    /// The commit failed on the connection: it may or may not have happened.
    Unknown,
    RolledBack,
}

impl Outcome {
    fn of<T, E>(r: &Result<T, TransactionError<E>>) -> Outcome {
        match r {
            Ok(_) => Outcome::Committed,
            Err(TransactionError::Connection(_)) => Outcome::Unknown,
            Err(TransactionError::Transaction(_)) => Outcome::RolledBack,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    One,
    All,
    Exec,
}

enum Out {
    One(Option<QueryResult>),
    All(Vec<QueryResult>),
    Exec(ExecResult),
}

/// The start of a statement, for debug events: enough to recognise it, bounded in size. The SQL
/// text carries bound parameters as placeholders, not values.
struct SqlHead<'a>(&'a str);

impl fmt::Display for SqlHead<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 80;
        let s = self.0.trim();
        if s.len() <= MAX {
            return f.write_str(s);
        }
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        write!(f, "{}…", &s[..end])
    }
}

fn unexpected<T>() -> Result<T, DbErr> {
    Err(DbErr::Custom("rwsplit: internal error: unexpected result kind".into()))
}

/// A handle SeaORM can run statements on through the router: the connection itself, a
/// [`Session`](crate::Session), or a per-call view ([`Routed`](crate::Routed)).
pub(crate) trait Handle {
    fn db(&self) -> &RoutedConnection;
    fn ctx(&self) -> Ctx<'_>;
}

impl Handle for RoutedConnection {
    fn db(&self) -> &RoutedConnection {
        self
    }
    fn ctx(&self) -> Ctx<'_> {
        Ctx::default()
    }
}

/// `ConnectionTrait` and `StreamTrait` for a [`Handle`].
macro_rules! routed_connection {
    ([$($lt:lifetime)?] $ty:ty) => {
        #[async_trait::async_trait]
        impl<$($lt)?> ConnectionTrait for $ty {
            fn get_database_backend(&self) -> DbBackend {
                self.db().inner.backend
            }

            async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
                self.db().execute_in(stmt, &self.ctx()).await
            }

            async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
                self.db().execute_unprepared_in(sql, &self.ctx()).await
            }

            async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
                self.db().query_one_in(stmt, &self.ctx()).await
            }

            async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
                self.db().query_all_in(stmt, &self.ctx()).await
            }

            fn support_returning(&self) -> bool {
                self.db().primary_conn().support_returning()
            }
        }

        impl<$($lt)?> StreamTrait for $ty {
            type Stream<'a> = QueryStream where Self: 'a;

            fn get_database_backend(&self) -> DbBackend {
                self.db().inner.backend
            }

            fn stream_raw<'a>(
                &'a self,
                stmt: Statement,
            ) -> Pin<Box<dyn Future<Output = Result<Self::Stream<'a>, DbErr>> + 'a + Send>> {
                Box::pin(async move { self.db().stream_in(stmt, &self.ctx()).await })
            }
        }
    };
}

/// `TransactionTrait` for a [`Handle`].
macro_rules! routed_transactions {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl TransactionTrait for $ty {
            type Transaction = DatabaseTransaction;

            async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
                let o = TransactionOptions::default();
                Ok(self.db().begin_in(None, None, o, &self.ctx(), true).await?.0)
            }

            async fn begin_with_config(
                &self,
                isolation_level: Option<IsolationLevel>,
                access_mode: Option<AccessMode>,
            ) -> Result<DatabaseTransaction, DbErr> {
                let o = TransactionOptions::default();
                let ctx = self.ctx();
                Ok(self.db().begin_in(isolation_level, access_mode, o, &ctx, true).await?.0)
            }

            async fn begin_with_options(
                &self,
                options: TransactionOptions,
            ) -> Result<DatabaseTransaction, DbErr> {
                let (i, a) = (options.isolation_level, options.access_mode);
                Ok(self.db().begin_in(i, a, options, &self.ctx(), true).await?.0)
            }

            async fn transaction<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
            where
                F: for<'c> FnOnce(
                        &'c DatabaseTransaction,
                    )
                        -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
                    + Send,
                T: Send,
                E: fmt::Display + fmt::Debug + Send,
            {
                self.db().transaction_in(callback, &self.ctx()).await
            }

            async fn transaction_with_config<F, T, E>(
                &self,
                callback: F,
                isolation_level: Option<IsolationLevel>,
                access_mode: Option<AccessMode>,
            ) -> Result<T, TransactionError<E>>
            where
                F: for<'c> FnOnce(
                        &'c DatabaseTransaction,
                    )
                        -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
                    + Send,
                T: Send,
                E: fmt::Display + fmt::Debug + Send,
            {
                let ctx = self.ctx();
                let o = TransactionOptions::default();
                let (txn, node) = self
                    .db()
                    .begin_in(isolation_level, access_mode, o, &ctx, false)
                    .await
                    .map_err(TransactionError::Connection)?;
                let result = callback(&txn).await;
                self.db().end_transaction(txn, result, node, &ctx).await
            }
        }
    };
}

pub(crate) use {routed_connection, routed_transactions};

routed_connection!([] RoutedConnection);
routed_transactions!(RoutedConnection);

/// Migrations and other APIs that take a `DatabaseExecutor` get the primary. What runs through
/// it escapes the router, so the caller's read-your-writes scope becomes conservative (see
/// [`RoutedConnection::primary`]).
impl<'c> IntoDatabaseExecutor<'c> for &'c RoutedConnection {
    fn into_database_executor(self) -> DatabaseExecutor<'c> {
        DatabaseExecutor::Connection(self.primary())
    }
}

/// `DatabaseExecutor::from(&db)`, as for a `DatabaseConnection`: the primary, with the caller's
/// read-your-writes scope made conservative.
impl<'c> From<&'c RoutedConnection> for DatabaseExecutor<'c> {
    fn from(db: &'c RoutedConnection) -> DatabaseExecutor<'c> {
        db.into_database_executor()
    }
}
