//! The one attempt loop: every statement, stream and `BEGIN` runs through
//! [`RoutedConnection::attempt`], which tries a [`Plan`]'s candidates in order.
//!
//! - A write runs on the primary, unbounded (an attempt abandoned mid-flight may still
//!   commit), and only if the monitor has not marked the primary down; its success records the
//!   write in the caller's read-your-writes scope. It runs in two steps
//!   ([`sending`]): taking a connection, given up as soon as the monitor says
//!   the node is not the primary any more, then sending the statement, given up only when the
//!   monitor marks the node down ("outcome unknown"). A write known not to have been sent (its
//!   first step failed or was given up) to a node that is no longer the primary is tried once
//!   more, on the new primary; a write that may have been sent never is.
//! - A read may wait for its first candidate to catch up, is bounded (the caller's deadline,
//!   the replica read timeout, the monitor marking the replica down), and moves on to the next
//!   candidate when the failure makes that safe, up to the retry budget. A read on the primary
//!   given up because the monitor sees another primary runs once more, there.
//! - Every outcome is reported once: a node failure to the monitor, back-pressure to the
//!   node's counters (never to its health), successes to the balancer's latency estimate.
//!
//! What one attempt does is a [`Work`]: a query, an `execute`, a stream, a `BEGIN`.

use std::fmt;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Instant;

use rwsplit_core::Access;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, ExecResult, QueryResult,
    QueryStream, Statement, StreamTrait, TransactionOptions, TransactionTrait,
};

use super::inner::{Ctx, Node, RoutedConnection, Scope, bump};
use crate::failure::{self, Failure};
use crate::position::{self, Waited};
use crate::route::Plan;
use crate::sending::{self, End, Standing, Taken};
use crate::telemetry::{self, Ryw};

/// What a write's success means for the caller's read-your-writes scope.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Wrote {
    /// Read the primary's position and record it (the write is done).
    Capture,
    /// The writes happen later, out of the router's sight (a streamed `RETURNING`, a
    /// transaction committed through SeaORM's own handle): the scope's position is pending.
    Unseen,
    /// Nothing yet: the caller records the outcome itself (a transaction's commit).
    Later,
}

/// One thing to run on a node, tried along a plan's candidates.
pub(super) trait Work: Send {
    /// What a successful attempt returns.
    type Output: Send;
    /// Runs on the node's writable pool whatever the plan's access (`execute`: no read-only
    /// session).
    const WRITER: bool = false;
    /// What a write's success means for the scope.
    fn wrote(&self) -> Wrote {
        Wrote::Capture
    }
    /// Nothing it does can have an effect on the server until its attempt returns (a `BEGIN`:
    /// the transaction's statements come later; a stream: its statement runs when it is read).
    /// A write attempt given up before then was not sent.
    const INERT: bool = false;
    /// The SQL, for the debug event (`BEGIN` for a transaction).
    fn sql(&self) -> &str;
    /// One attempt on `pool`; `last`: no candidate follows (the work may move into it).
    fn run<'a>(
        &'a mut self,
        pool: &'a DatabaseConnection,
        last: bool,
    ) -> impl Future<Output = Result<Self::Output, DbErr>> + Send + 'a;
    /// Its statement, on a connection already taken from the node's pool (a write's second
    /// step, see [`sending`]); the statement moves into it (a write once sent
    /// is never tried again). `None`: it is not one statement (the [`INERT`](Self::INERT)
    /// work).
    fn send<'a>(
        &'a mut self,
        conn: &'a mut Taken,
    ) -> Option<impl Future<Output = Result<Self::Output, DbErr>> + Send + 'a> {
        let _ = conn;
        None::<std::future::Ready<Result<Self::Output, DbErr>>>
    }
}

/// The statement for one attempt: a clone while another attempt may follow, else the original.
fn statement(stmt: &mut Statement, last: bool) -> Statement {
    if last {
        let empty = Statement { sql: String::new(), values: None, db_backend: stmt.db_backend };
        std::mem::replace(stmt, empty)
    } else {
        stmt.clone()
    }
}

/// `query_one`.
pub(super) struct QueryOne(pub(super) Statement);
/// `query_all`.
pub(super) struct QueryAll(pub(super) Statement);
/// `execute`.
pub(super) struct Execute(pub(super) Statement);
/// `execute_unprepared`.
pub(super) struct Unprepared<'s>(pub(super) &'s str);
/// `stream`.
pub(super) struct Stream(pub(super) Statement);
/// `BEGIN`. `unseen`: the caller commits through SeaORM's own handle, out of sight.
pub(super) struct Begin {
    pub(super) options: TransactionOptions,
    pub(super) unseen: bool,
}

impl Work for QueryOne {
    type Output = Option<QueryResult>;
    fn sql(&self) -> &str {
        &self.0.sql
    }
    fn run<'a>(
        &'a mut self,
        pool: &'a DatabaseConnection,
        last: bool,
    ) -> impl Future<Output = Result<Self::Output, DbErr>> + Send + 'a {
        pool.query_one_raw(statement(&mut self.0, last))
    }
    fn send<'a>(
        &'a mut self,
        conn: &'a mut Taken,
    ) -> Option<impl Future<Output = Result<Self::Output, DbErr>> + Send + 'a> {
        Some(conn.query_one(statement(&mut self.0, true)))
    }
}

impl Work for QueryAll {
    type Output = Vec<QueryResult>;
    fn sql(&self) -> &str {
        &self.0.sql
    }
    fn run<'a>(
        &'a mut self,
        pool: &'a DatabaseConnection,
        last: bool,
    ) -> impl Future<Output = Result<Self::Output, DbErr>> + Send + 'a {
        pool.query_all_raw(statement(&mut self.0, last))
    }
    fn send<'a>(
        &'a mut self,
        conn: &'a mut Taken,
    ) -> Option<impl Future<Output = Result<Self::Output, DbErr>> + Send + 'a> {
        Some(conn.query_all(statement(&mut self.0, true)))
    }
}

impl Work for Execute {
    type Output = ExecResult;
    const WRITER: bool = true;
    fn sql(&self) -> &str {
        &self.0.sql
    }
    fn run<'a>(
        &'a mut self,
        pool: &'a DatabaseConnection,
        last: bool,
    ) -> impl Future<Output = Result<Self::Output, DbErr>> + Send + 'a {
        pool.execute_raw(statement(&mut self.0, last))
    }
    fn send<'a>(
        &'a mut self,
        conn: &'a mut Taken,
    ) -> Option<impl Future<Output = Result<Self::Output, DbErr>> + Send + 'a> {
        Some(conn.execute(statement(&mut self.0, true)))
    }
}

impl Work for Unprepared<'_> {
    type Output = ExecResult;
    const WRITER: bool = true;
    fn sql(&self) -> &str {
        self.0
    }
    fn run<'a>(
        &'a mut self,
        pool: &'a DatabaseConnection,
        _last: bool,
    ) -> impl Future<Output = Result<Self::Output, DbErr>> + Send + 'a {
        pool.execute_unprepared(self.0)
    }
    fn send<'a>(
        &'a mut self,
        conn: &'a mut Taken,
    ) -> Option<impl Future<Output = Result<Self::Output, DbErr>> + Send + 'a> {
        Some(conn.execute_unprepared(self.0))
    }
}

impl Work for Stream {
    type Output = QueryStream;
    const INERT: bool = true;
    fn wrote(&self) -> Wrote {
        // A streamed write (`INSERT … RETURNING` streamed) has run only in part when its stream
        // exists; its position is taken on the scope's next read.
        Wrote::Unseen
    }
    fn sql(&self) -> &str {
        &self.0.sql
    }
    fn run<'a>(
        &'a mut self,
        pool: &'a DatabaseConnection,
        last: bool,
    ) -> impl Future<Output = Result<Self::Output, DbErr>> + Send + 'a {
        pool.stream_raw(statement(&mut self.0, last))
    }
}

impl Work for Begin {
    type Output = DatabaseTransaction;
    const INERT: bool = true;
    fn wrote(&self) -> Wrote {
        if self.unseen { Wrote::Unseen } else { Wrote::Later }
    }
    fn sql(&self) -> &str {
        "BEGIN"
    }
    fn run<'a>(
        &'a mut self,
        pool: &'a DatabaseConnection,
        _last: bool,
    ) -> impl Future<Output = Result<Self::Output, DbErr>> + Send + 'a {
        pool.begin_with_options(self.options)
    }
}

/// Why one attempt on a node failed.
enum Attempt {
    /// The node (or the driver) returned an error.
    Failed(DbErr),
    /// The adapter gave it up: a deadline passed, or the monitor marked the node down.
    GivenUp(DbErr),
    /// A write's connection could not be had (the pool timed out or was closed, none could be
    /// opened): the write was not sent.
    Unsent(DbErr),
    /// A write's node stopped being the primary (or was marked down) before the write was
    /// sent; a read's primary stopped being the primary while the read waited on it.
    Deposed(Standing),
}

/// How a plan's attempts ended without a result.
enum Stop {
    /// The caller gets this error.
    Fail(DbErr),
    /// A write that was not sent, or a read given up, on node `.1`, which is not the primary any
    /// more: it may be tried once on the new primary (else the caller gets this error).
    Unsent(DbErr, usize),
}

impl RoutedConnection {
    /// The span one statement runs in (see [`telemetry`](crate::telemetry)): its node, route
    /// reason and attempt number are recorded by [`attempt`](Self::attempt).
    pub(super) fn statement_span(&self, operation: &'static str, ctx: &Ctx<'_>) -> tracing::Span {
        let level = ctx.consistency.unwrap_or(&self.inner.policy.consistency);
        tracing::info_span!(
            target: "rwsplit",
            "rwsplit.statement",
            db.system.name = self.inner.system,
            db.operation.name = operation,
            server.address = tracing::field::Empty,
            server.port = tracing::field::Empty,
            rwsplit.route.reason = tracing::field::Empty,
            rwsplit.consistency = telemetry::consistency_name(level),
            rwsplit.node.role = tracing::field::Empty,
            rwsplit.attempt = tracing::field::Empty,
        )
    }

    /// Runs `work` along `plan` (see the module docs); returns its output and the node that
    /// served it.
    pub(super) async fn attempt<W: Work>(
        &self,
        plan: &Plan,
        mut work: W,
        scope: &Scope,
    ) -> Result<(W::Output, usize), DbErr> {
        let (unsent, old) = match self.attempt_plan(plan, &mut work, scope, 0).await {
            Ok(done) => return Ok(done),
            Err(Stop::Fail(e)) => return Err(e),
            Err(Stop::Unsent(e, id)) => (e, id),
        };
        // A write that was never sent, or a read, to a node that is not the primary any more:
        // once more, on the primary the monitor sees now (if there is none, or it is still that
        // node, the caller hears why the first attempt ended).
        let retry = match self.plan_on_primary(plan.access(), "moved to the new primary") {
            Ok(retry) if retry.first() != old => retry,
            _ => return Err(unsent),
        };
        tracing::info!(target: "rwsplit", error = %unsent, "trying once more, on the new primary");
        // Boxed: rare, and a read's future need not carry a second loop's state.
        match Box::pin(self.attempt_plan(&retry, &mut work, scope, 1)).await {
            Ok(done) => Ok(done),
            Err(Stop::Fail(e) | Stop::Unsent(e, _)) => Err(e),
        }
    }

    /// [`attempt`](Self::attempt) along one plan; `earlier`: attempts already made (a write's
    /// second plan may not hand back [`Stop::Unsent`]).
    async fn attempt_plan<W: Work>(
        &self,
        plan: &Plan,
        work: &mut W,
        scope: &Scope,
        earlier: usize,
    ) -> Result<(W::Output, usize), Stop> {
        let write = plan.access() == Access::Write;
        if write {
            self.check_writable(plan.first()).map_err(Stop::Fail)?;
        }
        // A catch-up wait is I/O few reads do: boxed, so the others do not carry its state.
        let skip = match plan.wait() {
            Some(_) => usize::from(!Box::pin(self.catch_up(plan)).await),
            None => 0,
        };
        let budget = if write { 0 } else { usize::from(self.inner.policy.read_retries) };
        let mut candidates = plan.iter().skip(skip).take(budget + 1).peekable();
        let deadline = crate::deadline::current();
        // The statement's span (a disabled one when nothing listens), fetched where it is used
        // rather than held across the attempts' awaits: a read's future stays smaller.
        let span = tracing::Span::current;
        {
            let span = span();
            if !span.is_disabled() {
                span.record("rwsplit.route.reason", plan.reason());
            }
        }
        let operation = plan.operation().unwrap_or_else(|| telemetry::operation_name(work.sql()));
        let metrics = || telemetry::Statement { system: self.inner.system, operation };
        // The primary of the plan's snapshot: one plan acts on one topology. (The attempts
        // still watch the live one for a node going down or being replaced.)
        let primary = plan.snapshot_primary().unwrap_or(0);
        // The clock is read when the plan is made and once after each attempt: the first
        // attempt starts at the plan's reading (after a catch-up wait, a fresh one).
        let mut now = if skip > 0 || plan.wait().is_some() { Instant::now() } else { plan.made() };
        // Boxed: most reads never fail, and their future need not carry an error's room.
        let mut last_err: Option<Box<DbErr>> = None;
        let mut tried = earlier;
        while let Some(id) = candidates.next() {
            let last = candidates.peek().is_none();
            // A node removed since the plan was made (its slot empty, or another node's now).
            let Some(node) = self.inner.nodes.get(id).filter(|n| !plan.stale(n)) else {
                continue;
            };
            tried += 1;
            let on_primary = id == primary;
            let span = span();
            if !span.is_disabled() {
                span.record("server.address", &*node.labels.address);
                span.record("server.port", &*node.labels.port);
                span.record("rwsplit.node.role", telemetry::role_name(on_primary));
                span.record("rwsplit.attempt", tried);
            }
            drop(span);
            tracing::debug!(target: "rwsplit", node = %node.name, reason = plan.reason(), write, sql = %SqlHead(work.sql()), "route");
            let guard = plan.start(id, now);
            let pool = if write || W::WRITER { &node.writer } else { &node.conn };
            let started = now;
            // Reads are bounded (a hung replica keeps its port open). Writes are not cut short
            // by time (one abandoned mid-flight may still commit): see `watched_write`.
            let result = if write {
                // Boxed: a read's future does not carry the write path's state (it would be
                // moved, whole, into the box SeaORM's `async_trait` makes of every statement).
                Box::pin(self.watched_write(id, &node.name, pool, &mut *work, earlier == 0)).await
            } else {
                // A read on the primary may run once more on a new primary: it keeps its
                // statement.
                let run = work.run(pool, last && (id != primary || earlier > 0));
                self.bounded(id, id != primary, &node.name, deadline, started, run).await
            };
            // A completed round trip feeds the node's latency estimate (peak-EWMA balancing,
            // when the balancer reads it); a failed one only ends its in-flight count.
            now = Instant::now();
            if let (Some(g), Ok(_)) = (guard, &result)
                && self.inner.routing.feeds_latency()
            {
                g.finish(now);
            }
            let elapsed = now.saturating_duration_since(started);
            match result {
                Ok(out) => {
                    metrics().attempt(
                        &node.labels,
                        &node.durations,
                        on_primary,
                        plan.reason(),
                        write,
                        elapsed,
                        None,
                    );
                    self.note_success(&node, id, write, now);
                    if write {
                        match work.wrote() {
                            Wrote::Capture => Box::pin(self.after_write(id, scope)).await,
                            Wrote::Unseen => self.mark_unseen_writes(scope),
                            Wrote::Later => {}
                        }
                    }
                    return Ok((out, id));
                }
                Err(e) => {
                    let unsent = matches!(e, Attempt::Unsent(_) | Attempt::Deposed(_));
                    let (e, failure) = self.note_attempt(&node, id, e, write);
                    if write && !unsent && matches!(failure, Failure::Connection | Failure::GivenUp)
                    {
                        // Sent, then the connection broke or was given up: the write may have
                        // committed. The scope's next read asks the primary, or reads there.
                        self.mark_unseen_writes(scope);
                    }
                    let f = Some(failure);
                    metrics().attempt(
                        &node.labels,
                        &node.durations,
                        on_primary,
                        plan.reason(),
                        write,
                        elapsed,
                        f,
                    );
                    if unsent {
                        // A write never sent, or a read given up on a primary that is one no
                        // more: safe to try again, and worth it only on another primary.
                        let e = failure::unsent(e, failure, &node.name, tried);
                        let deposed = self.inner.routing.standing(id) != Standing::Primary;
                        if !(deposed && earlier == 0) {
                            return Err(Stop::Fail(e));
                        }
                        // Counted here, where it is known to move (once, to a new primary).
                        telemetry::retry(&node.labels, write);
                        self.inner.retries.fetch_add(1, Ordering::Relaxed);
                        return Err(Stop::Unsent(e, id));
                    }
                    let out_of_time = deadline.is_some_and(|d| now >= d);
                    if write || !failure.retryable() || last || out_of_time {
                        return Err(Stop::Fail(failure::named(
                            e, failure, &node.name, write, tried,
                        )));
                    }
                    tracing::info!(target: "rwsplit", node = %node.name, error = %e, "read failed, retrying on the next node");
                    telemetry::retry(&node.labels, false);
                    self.inner.retries.fetch_add(1, Ordering::Relaxed);
                    last_err = Some(Box::new(failure::named(e, failure, &node.name, write, tried)));
                }
            }
        }
        // Every candidate was skipped (a catch-up wait that timed out on the only one).
        Err(Stop::Fail(last_err.map_or_else(failure::no_node_left, |e| *e)))
    }

    /// Before a read with a catch-up wait: waits on the first candidate; `true` if it caught
    /// up (read there), `false` if not (skip it: the primary is next).
    async fn catch_up(&self, plan: &Plan) -> bool {
        let Some((token, max)) = plan.wait() else { return true };
        let id = plan.first();
        let Some(node) = self.inner.nodes.get(id).filter(|n| !plan.stale(n)) else { return false };
        bump(&self.inner.counters.waits);
        match position::wait_for(&node.conn, token, max).await {
            Ok(Waited::CaughtUp) => {
                self.inner.counters.read_your_writes(Ryw::Waited);
                true
            }
            Ok(Waited::TimedOut) => {
                bump(&self.inner.counters.wait_timeouts);
                self.inner.counters.read_your_writes(Ryw::Primary);
                tracing::debug!(target: "rwsplit", node = %node.name, ?max, "replica did not catch up in time: reading from the primary");
                false
            }
            Err(e) => {
                bump(&self.inner.counters.wait_timeouts);
                self.inner.counters.read_your_writes(Ryw::Primary);
                self.note_failure(&node, id, &e);
                false
            }
        }
    }

    /// One read attempt on node `id`, bounded: by the replica statement deadline if one is
    /// set, by what is left of the caller's own deadline, and by the monitor. On a replica: once
    /// it marks the node down (a hung server keeps its port open, so its probes time out), the
    /// attempt is given up and the read moves on. On the primary: once it sees the node stop
    /// being the primary (a switchover: the old primary's port refuses while it restarts as a
    /// replica, and the read would wait out the pool's acquire timeout), the attempt is given up
    /// and the read runs once on the new primary; being marked down alone does not end it (the
    /// primary is the last resort). A slow read on a healthy node is not cut short.
    async fn bounded<T>(
        &self,
        id: usize,
        on_replica: bool,
        name: &str,
        deadline: Option<Instant>,
        now: Instant,
        attempt: impl Future<Output = Result<T, DbErr>>,
    ) -> Result<T, Attempt> {
        use std::task::Poll;
        let timeouts = &self.inner.policy.timeouts;
        let limit = crate::deadline::attempt_limit(on_replica, timeouts, deadline, now);
        // A timer only for a read with a limit (boxed: most reads have none, and their future
        // should not carry one).
        let mut timer = limit.map(|l| Box::pin(tokio::time::sleep(l)));
        let watched: fn(Standing) -> bool =
            if on_replica { Standing::is_down } else { Standing::is_replaced };
        let mut attempt = std::pin::pin!(attempt);
        let mut watch = std::pin::pin!(self.inner.routing.until(id, watched));
        // The read first: an answer that is there wins over a limit reached at the same time.
        std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = attempt.as_mut().poll(cx) {
                return Poll::Ready(r.map_err(Attempt::Failed));
            }
            if let (Some(t), Some(l)) = (timer.as_mut(), limit)
                && t.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(Err(Attempt::GivenUp(crate::deadline::timed_out(name, l))));
            }
            if watch.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(if on_replica {
                    Attempt::GivenUp(crate::deadline::marked_down(name))
                } else {
                    Attempt::Deposed(Standing::NotPrimary)
                }));
            }
            Poll::Pending
        })
        .await
    }

    /// A write on the primary `id`, in two steps ([`sending`]): taking a
    /// connection from `pool`, given up (not sent) as soon as the monitor says the node is not
    /// the primary any more — a replica now, another node promoted, or marked down — instead of
    /// waiting out the pool's acquire timeout while its port refuses; then sending the
    /// statement, waited for until it ends or the monitor marks the node down (its probes fail
    /// on connections of their own: a frozen server, a cut network). Then the write is given up
    /// with an error saying its outcome is unknown, instead of waiting for the kernel to give
    /// up the connection (about 15 minutes); it is never tried again. A slow write on a primary
    /// that answers its probes is never cut short. `keep`: another attempt may follow, so an
    /// [`INERT`](Work::INERT) work keeps its statement.
    async fn watched_write<W: Work>(
        &self,
        id: usize,
        name: &str,
        pool: &DatabaseConnection,
        work: &mut W,
        keep: bool,
    ) -> Result<W::Output, Attempt> {
        let standing = || self.inner.routing.standing(id);
        let changed = || self.inner.routing.changed(id);
        let end = if W::INERT {
            // Nothing is written before it returns: all of it is the first step.
            let run = work.run(pool, !keep);
            sending::in_steps(run, |out| std::future::ready(Ok(out)), standing, changed).await
        } else if sending::can_take(pool) {
            let send = |mut conn: Taken| async move {
                match work.send(&mut conn) {
                    Some(sending) => sending.await,
                    // Only inert work (above) is not one statement.
                    None => Err(failure::internal("nothing to send")),
                }
            };
            sending::in_steps(sending::take(pool), send, standing, changed).await
        } else {
            // A pool the adapter cannot take a connection from (a mock, a proxy): one step, as
            // SeaORM runs it; the first step only asks the monitor once.
            let ready = std::future::ready(Ok(()));
            sending::in_steps(ready, |()| work.run(pool, true), standing, changed).await
        };
        end.map_err(|e| match e {
            End::Unsent(e) => Attempt::Unsent(e),
            End::Deposed(s) => Attempt::Deposed(s),
            End::Failed(e) => Attempt::Failed(e),
            End::Unknown => Attempt::GivenUp(crate::deadline::write_outcome_unknown(name)),
        })
    }

    /// Writes fail fast, naming the node, when the monitor has marked the primary down: waiting
    /// for a pool's acquire timeout would only hang the caller (a write is tried elsewhere only
    /// once the monitor names another primary, and only if it was never sent).
    fn check_writable(&self, node: usize) -> Result<(), DbErr> {
        if self.inner.routing.health(node) == rwsplit_core::Health::Down {
            let name = self.inner.nodes.get(node).map_or_else(String::new, |n| n.name.clone());
            return Err(failure::primary_down(&name));
        }
        Ok(())
    }

    /// Counts a statement `node` served and clears a pending failure count.
    fn note_success(&self, node: &Node, id: usize, write: bool, now: Instant) {
        self.inner.routing.record_success(id, now);
        let counter = if write { &node.writes } else { &node.reads };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Classifies a failure on node `id` for the retry decision; only a failure of the node
    /// itself counts against its health. Back-pressure (the pool had no free connection in
    /// time) is counted in the node's stats and never held against it.
    fn note_failure(&self, node: &Node, id: usize, err: &DbErr) -> Failure {
        let failure = failure::classify(err, id != self.primary_index());
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

    /// [`note_failure`](Self::note_failure) for an attempt's outcome (of a write if `write`):
    /// an attempt the adapter gave up is judged by the monitor, not here.
    fn note_attempt(
        &self,
        node: &Node,
        id: usize,
        attempt: Attempt,
        write: bool,
    ) -> (DbErr, Failure) {
        match attempt {
            Attempt::Failed(e) => {
                let failure = self.note_failure(node, id, &e);
                (e, failure)
            }
            Attempt::GivenUp(e) => (e, Failure::GivenUp),
            // No connection: the pool's back-pressure, or the node's failure (it refused).
            Attempt::Unsent(e) => {
                let failure = self.note_failure(node, id, &e);
                (e, failure)
            }
            Attempt::Deposed(s) => (sending::deposed(&node.name, s, write), Failure::GivenUp),
        }
    }
}

/// The start of a statement, for debug events: enough to recognise it, bounded in size. The SQL
/// text carries bound parameters as placeholders, not values.
pub(super) struct SqlHead<'a>(pub(super) &'a str);

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
