//! [`RoutedConnection`] and its SeaORM trait implementations.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rwsplit_core::{
    Access, Classification, Classifier, Dialect, HealthPolicy, RouteContext, RouterConfig, Target,
    Transaction,
};
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DatabaseExecutor, DatabaseTransaction,
    DbBackend, DbErr, ExecResult, IntoDatabaseExecutor, IsolationLevel, QueryResult, QueryStream,
    Statement, StreamTrait, TransactionError, TransactionOptions, TransactionTrait,
};

use crate::failure::{self, Failure};
use crate::route::{Plan, Routing};
use crate::sticky::Sticky;

/// Routing policy switches.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) sticky_window: Duration,
    pub(crate) read_retries: u8,
    pub(crate) monitor: rwsplit_monitor::MonitorConfig,
    pub(crate) consistency: rwsplit_core::Consistency,
    pub(crate) timeouts: crate::deadline::Timeouts,
    pub(crate) failover: Option<crate::failover::AutoFailover>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            sticky_window: Duration::from_secs(2),
            read_retries: 2,
            monitor: rwsplit_monitor::MonitorConfig::default(),
            consistency: rwsplit_core::Consistency::Eventual,
            timeouts: crate::deadline::Timeouts::default(),
            failover: None,
        }
    }
}

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
        }
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
    pub(crate) sticky: Sticky,
    pub(crate) routing: Routing,
    pub(crate) retries: AtomicU64,
    pub(crate) failover: crate::failover::Failover,
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
/// - reads go to a healthy replica, unless the task wrote within the sticky window, a
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
        failover: crate::failover::Failover,
    ) -> RoutedConnection {
        let dialect = match backend {
            DbBackend::MySql => Dialect::MySql,
            DbBackend::Sqlite => Dialect::Sqlite,
            _ => Dialect::Postgres,
        };
        let mut nodes = Vec::with_capacity(replicas.len() + 1);
        nodes.push(primary);
        nodes.extend(replicas);
        let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        let routing = Routing::new(&names, router, health);
        let conn = RoutedConnection {
            inner: Arc::new(Inner {
                nodes,
                backend,
                dialect,
                classifier,
                sticky: Sticky::new(policy.sticky_window),
                policy,
                routing,
                retries: AtomicU64::new(0),
                failover,
            }),
        };
        conn.spawn_prober();
        conn
    }

    /// The monitor: one probe loop per node (see `prober`), publishing each result as it
    /// arrives and starting an automatic failover when one is configured.
    fn spawn_prober(&self) {
        crate::prober::spawn(self);
    }

    /// The database backend (the same on every node). Inherent, so `db.get_database_backend()`
    /// is not ambiguous between SeaORM's `ConnectionTrait` and `StreamTrait`.
    pub fn get_database_backend(&self) -> DbBackend {
        self.inner.backend
    }

    /// The primary's own connection: every call on it runs on the primary, unrouted. Use it for
    /// migrations (`Migrator::up(db.primary(), None)`), schema changes and code typed to
    /// `&DatabaseConnection`.
    pub fn primary(&self) -> &DatabaseConnection {
        &self.inner.nodes[self.primary_index()].writer
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
        self.primary().ping().await
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
        self.primary().get_schema_builder()
    }

    /// Runs `callback` in a transaction on the primary (the async-closure form of
    /// [`TransactionTrait::transaction`]).
    pub async fn transaction_async<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> AsyncFnOnce(&'c DatabaseTransaction) -> Result<T, E> + Send,
        T: Send,
        E: fmt::Display + fmt::Debug + Send,
    {
        let plan = self
            .plan_ctx(&RouteContext::for_access(Access::Write, std::time::Instant::now()))
            .map_err(TransactionError::Connection)?
            .with_reason("transaction");
        self.check_writable(plan.first()).map_err(TransactionError::Connection)?;
        self.inner.sticky.mark();
        let r = self.inner.nodes[plan.first()].writer.transaction_async(callback).await;
        self.inner.sticky.mark();
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
        let txn = self
            .begin_with_config(isolation_level, access_mode)
            .await
            .map_err(TransactionError::Connection)?;
        let result = callback(&txn).await;
        self.end_transaction(txn, result, access_mode).await
    }

    /// Commits on `Ok`, rolls back on `Err`; a committed read-write transaction starts the
    /// task's sticky window (its commit is when the writes became visible on the primary).
    async fn end_transaction<T, E>(
        &self,
        txn: DatabaseTransaction,
        result: Result<T, E>,
        access_mode: Option<AccessMode>,
    ) -> Result<T, TransactionError<E>> {
        match result {
            Ok(v) => {
                txn.commit().await.map_err(TransactionError::Connection)?;
                if access_mode != Some(AccessMode::ReadOnly) {
                    self.inner.sticky.mark();
                }
                Ok(v)
            }
            Err(e) => {
                txn.rollback().await.map_err(TransactionError::Connection)?;
                Err(TransactionError::Transaction(e))
            }
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

    /// Where a statement goes: classified, then the scope, the sticky window and the router.
    fn plan(&self, sql: &str) -> Result<Plan, DbErr> {
        let c = self.classify(sql);
        let now = std::time::Instant::now();
        let mut ctx = RouteContext::new(&c, now)
            .with_statement(sql, self.inner.dialect)
            .with_consistency(&self.inner.policy.consistency);
        let scoped = SCOPE.try_with(|t| *t).ok();
        if let Some(target) = scoped {
            ctx = ctx.with_target(target);
        }
        let sticky = c.access() == Access::Read
            && scoped.is_none()
            && c.hint().is_none()
            && self.inner.sticky.is_sticky();
        if sticky {
            let plan = self.plan_ctx(&ctx.with_target(Target::Primary))?;
            return Ok(plan.with_reason("read after write in this task"));
        }
        self.plan_ctx(&ctx)
    }

    /// Runs `call` along `plan`: the first candidate, then (for reads, when the failure makes
    /// it safe) the next ones, up to the retry budget. Writes run once, on the primary.
    async fn run(&self, stmt: Statement, plan: Plan, call: Call) -> Result<Out, DbErr> {
        let write = plan.access() == Access::Write;
        if write {
            self.check_writable(plan.first())?;
            self.inner.sticky.mark();
        }
        let budget = if write { 0 } else { usize::from(self.inner.policy.read_retries) };
        let mut candidates = plan.iter().take(budget + 1).peekable();
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
            let limit = if write {
                None
            } else {
                let on_replica = id != self.primary_index();
                let now = std::time::Instant::now();
                crate::deadline::attempt_limit(
                    on_replica,
                    &self.inner.policy.timeouts,
                    deadline,
                    now,
                )
            };
            let result = match limit {
                None => attempt.await,
                Some(limit) => tokio::time::timeout(limit, attempt)
                    .await
                    .unwrap_or_else(|_| Err(crate::deadline::timed_out(&node.name, limit))),
            };
            // A completed round trip feeds the node's latency estimate (peak-EWMA balancing);
            // a failed one only ends its in-flight count.
            if let (Some(g), Ok(_)) = (guard, &result) {
                g.finish(std::time::Instant::now());
            }
            match result {
                Ok(out) => {
                    self.note_success(id, write);
                    if write {
                        self.inner.sticky.mark();
                    }
                    return Ok(out);
                }
                Err(e) => {
                    let failure = self.note_failure(id, &e);
                    let out_of_time = deadline.is_some_and(|d| std::time::Instant::now() >= d);
                    if write || failure == Failure::Other || last || out_of_time {
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

    async fn stream_plan(&self, stmt: Statement, plan: Plan) -> Result<QueryStream, DbErr> {
        let write = plan.access() == Access::Write;
        if write {
            self.check_writable(plan.first())?;
            self.inner.sticky.mark();
        }
        let budget = if write { 0 } else { usize::from(self.inner.policy.read_retries) };
        let mut candidates = plan.iter().take(budget + 1).peekable();
        let mut last_err = None;
        let deadline = crate::deadline::current();
        let mut tried = 0;
        while let Some(id) = candidates.next() {
            let last = candidates.peek().is_none();
            let node = &self.inner.nodes[id];
            tracing::debug!(target: "rwsplit", node = %node.name, reason = plan.reason(), write, sql = %SqlHead(&stmt.sql), "route stream");
            let pool = if write { &node.writer } else { &node.conn };
            let limit = if write {
                None
            } else {
                let on_replica = id != self.primary_index();
                let now = std::time::Instant::now();
                crate::deadline::attempt_limit(
                    on_replica,
                    &self.inner.policy.timeouts,
                    deadline,
                    now,
                )
            };
            let opened = match limit {
                None => pool.stream_raw(stmt.clone()).await,
                Some(limit) => tokio::time::timeout(limit, pool.stream_raw(stmt.clone()))
                    .await
                    .unwrap_or_else(|_| Err(crate::deadline::timed_out(&node.name, limit))),
            };
            tried += 1;
            match opened {
                Ok(s) => {
                    self.note_success(id, write);
                    return Ok(s);
                }
                Err(e) => {
                    let failure = self.note_failure(id, &e);
                    let out_of_time = deadline.is_some_and(|d| std::time::Instant::now() >= d);
                    if write || failure == Failure::Other || last || out_of_time {
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

    /// Writes fail fast, naming the node, when the monitor has marked the primary down: waiting
    /// for a pool's acquire timeout would only hang the caller, and nothing is ever retried
    /// elsewhere.
    fn check_writable(&self, node: usize) -> Result<(), DbErr> {
        if self.inner.routing.health(node) == rwsplit_core::Health::Down {
            let name = &self.inner.nodes[node].name;
            return Err(DbErr::Custom(format!(
                "rwsplit: the primary {name} is unreachable (marked down); the write was not sent"
            )));
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

    /// Classifies a failure on node `id` for the retry decision; a connection-level one counts
    /// against the node's health.
    fn note_failure(&self, id: usize, err: &DbErr) -> Failure {
        let failure = failure::classify(err, id != self.primary_index());
        if failure == Failure::Connection {
            self.inner.nodes[id].failures.fetch_add(1, Ordering::Relaxed);
            self.inner.routing.record_failure(id);
        }
        failure
    }

    /// Where a transaction with this configuration begins: a read-only one (not SERIALIZABLE on
    /// PostgreSQL) may use a replica, everything else uses the primary.
    fn plan_transaction(
        &self,
        isolation: Option<IsolationLevel>,
        access: Option<AccessMode>,
    ) -> Result<Plan, DbErr> {
        let now = std::time::Instant::now();
        let read_only = access == Some(AccessMode::ReadOnly);
        let serializable_pg = isolation == Some(IsolationLevel::Serializable)
            && self.inner.backend == DbBackend::Postgres;
        if !read_only || serializable_pg {
            let ctx = RouteContext::for_access(Access::Write, now)
                .with_transaction(Transaction::ReadWrite);
            return Ok(self.plan_ctx(&ctx)?.with_reason("transaction"));
        }
        let mut ctx =
            RouteContext::for_access(Access::Read, now).with_transaction(Transaction::ReadOnly);
        let scoped = SCOPE.try_with(|t| *t).ok();
        if let Some(target) = scoped {
            ctx = ctx.with_target(target);
        } else if self.inner.sticky.is_sticky() {
            let plan = self.plan_ctx(&ctx.with_target(Target::Primary))?;
            return Ok(plan.with_reason("read after write in this task"));
        }
        self.plan_ctx(&ctx)
    }

    async fn begin_on(
        &self,
        plan: Plan,
        options: TransactionOptions,
    ) -> Result<DatabaseTransaction, DbErr> {
        let on_primary = plan.on_primary();
        if plan.access() == Access::Write {
            self.check_writable(plan.first())?;
        }
        if on_primary {
            self.inner.sticky.mark();
        }
        let budget = if on_primary { 0 } else { usize::from(self.inner.policy.read_retries) };
        let mut candidates = plan.iter().take(budget + 1).peekable();
        let mut last_err = None;
        while let Some(id) = candidates.next() {
            let last = candidates.peek().is_none();
            let node = &self.inner.nodes[id];
            tracing::debug!(target: "rwsplit", node = %node.name, reason = plan.reason(), "route transaction");
            let pool = if plan.access() == Access::Write { &node.writer } else { &node.conn };
            match pool.begin_with_options(options).await {
                Ok(t) => return Ok(t),
                Err(e) => {
                    let failure = self.note_failure(id, &e);
                    if on_primary || failure == Failure::Other || last {
                        return Err(failure::named(
                            e,
                            failure,
                            &node.name,
                            plan.access() == Access::Write,
                            1,
                        ));
                    }
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| DbErr::Custom("rwsplit: no node to begin on".into())))
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

#[async_trait::async_trait]
impl ConnectionTrait for RoutedConnection {
    fn get_database_backend(&self) -> DbBackend {
        self.inner.backend
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        // `execute` returns no rows: it always runs on the primary, whatever the SQL.
        let access = self.classify(&stmt.sql).access();
        let ctx = RouteContext::for_access(access, std::time::Instant::now())
            .with_target(Target::Primary);
        let plan = self.plan_ctx(&ctx)?.with_reason("execute");
        match self.run(stmt, plan, Call::Exec).await? {
            Out::Exec(r) => Ok(r),
            _ => unexpected(),
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        // Raw SQL with no rows to return: never worth a replica, and often DDL or SET.
        let ctx = RouteContext::for_access(Access::Write, std::time::Instant::now());
        let target = self.plan_ctx(&ctx)?.first();
        self.check_writable(target)?;
        let node = &self.inner.nodes[target];
        let write = self.classify(sql).access() == Access::Write;
        if write {
            self.inner.sticky.mark();
        }
        tracing::debug!(target: "rwsplit", node = %node.name, reason = "execute_unprepared", write, sql = %SqlHead(sql), "route");
        let r = match node.writer.execute_unprepared(sql).await {
            Ok(r) => {
                self.note_success(target, write);
                Ok(r)
            }
            Err(e) => {
                let failure = self.note_failure(target, &e);
                Err(failure::named(e, failure, &node.name, true, 1))
            }
        };
        if write {
            self.inner.sticky.mark();
        }
        r
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let plan = self.plan(&stmt.sql)?;
        match self.run(stmt, plan, Call::One).await? {
            Out::One(r) => Ok(r),
            _ => unexpected(),
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let plan = self.plan(&stmt.sql)?;
        match self.run(stmt, plan, Call::All).await? {
            Out::All(r) => Ok(r),
            _ => unexpected(),
        }
    }

    fn support_returning(&self) -> bool {
        self.primary().support_returning()
    }
}

impl StreamTrait for RoutedConnection {
    type Stream<'a> = QueryStream;

    fn get_database_backend(&self) -> DbBackend {
        self.inner.backend
    }

    fn stream_raw<'a>(
        &'a self,
        stmt: Statement,
    ) -> Pin<Box<dyn Future<Output = Result<Self::Stream<'a>, DbErr>> + 'a + Send>> {
        Box::pin(async move {
            let plan = self.plan(&stmt.sql)?;
            self.stream_plan(stmt, plan).await
        })
    }
}

#[async_trait::async_trait]
impl TransactionTrait for RoutedConnection {
    type Transaction = DatabaseTransaction;

    async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        let plan = self.plan_transaction(None, None)?;
        self.begin_on(plan, TransactionOptions::default()).await
    }

    async fn begin_with_config(
        &self,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<DatabaseTransaction, DbErr> {
        let plan = self.plan_transaction(isolation_level, access_mode)?;
        let options = TransactionOptions { isolation_level, access_mode, ..Default::default() };
        self.begin_on(plan, options).await
    }

    async fn begin_with_options(
        &self,
        options: TransactionOptions,
    ) -> Result<DatabaseTransaction, DbErr> {
        let plan = self.plan_transaction(options.isolation_level, options.access_mode)?;
        self.begin_on(plan, options).await
    }

    async fn transaction<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c DatabaseTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: fmt::Display + fmt::Debug + Send,
    {
        let plan = self.plan_transaction(None, None).map_err(TransactionError::Connection)?;
        self.check_writable(plan.first()).map_err(TransactionError::Connection)?;
        let node = &self.inner.nodes[plan.first()];
        self.inner.sticky.mark();
        tracing::debug!(target: "rwsplit", node = %node.name, reason = "transaction", "route transaction");
        let r = node.writer.transaction(callback).await;
        self.inner.sticky.mark();
        r
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
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: fmt::Display + fmt::Debug + Send,
    {
        let txn = self
            .begin_with_config(isolation_level, access_mode)
            .await
            .map_err(TransactionError::Connection)?;
        let result = callback(&txn).await;
        self.end_transaction(txn, result, access_mode).await
    }
}

/// Migrations and other APIs that take a `DatabaseExecutor` get the primary.
impl<'c> IntoDatabaseExecutor<'c> for &'c RoutedConnection {
    fn into_database_executor(self) -> DatabaseExecutor<'c> {
        DatabaseExecutor::Connection(self.primary())
    }
}
