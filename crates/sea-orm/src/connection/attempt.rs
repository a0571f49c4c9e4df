//! The executor: the I/O steps a plan asks for before it is made
//! ([`planned`]: waiting for the scope's position captures, reading the
//! primary's position), and the one attempt loop: every statement, stream and `BEGIN` runs
//! through [`attempt`], which tries a [`Plan`]'s candidates in order.
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
//!   given up because the monitor sees another primary runs once more, there; one whose
//!   connection to the primary broke first waits for the monitor's verdict, then runs once
//!   more where it says ([`after_lost`]).
//! - Every outcome is reported once: a node failure to the monitor, back-pressure to the
//!   node's counters (never to its health), successes to the balancer's latency estimate.
//!
//! What one attempt does is a [`Work`]: a query, an `execute`, a stream, a `BEGIN`.

use std::fmt;
use std::future::Future;

use futures_util::future::Either;
use std::time::Instant;

use rwsplit_core::{Access, NodeId, RouteReason};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, ExecResult, QueryResult,
    Statement, StreamTrait, TransactionOptions, TransactionTrait,
};

use super::counters::Count;
use super::ctx::{Ctx, Scope};
use super::inner::Inner;
use super::nodes::Node;
use super::plan::{Done, Io, Planned};
use super::record::{self, Attempt, Record};
use crate::classified::Learned;
use crate::hooks::{self, Call};
use crate::position;
use crate::product::Waited;
use crate::route::{Plan, Why};
use crate::send::failure::{self, Failure};
use crate::send::sending::{self, End, Standing, Taken};
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
    /// One attempt as a read on `pool` (a replica, or the primary): as [`run`](Self::run),
    /// unless its effect comes later than the attempt (a stream's first row is read ahead, so
    /// that a replica's refusal or failure is the attempt's, not the caller's).
    fn read<'a>(
        &'a mut self,
        pool: &'a DatabaseConnection,
        last: bool,
    ) -> impl Future<Output = Result<Self::Output, DbErr>> + Send + 'a {
        self.run(pool, last)
    }
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
    /// It has a [`direct`](Self::direct) form.
    const DIRECT: bool = false;
    /// Its statement straight on the node's sqlx pool, as SeaORM's driver runs it (a read,
    /// when nothing listens to SeaORM's instrumentation: [`sending::Direct::quiet`]); the
    /// statement stays its own, for another attempt. Called only if [`DIRECT`](Self::DIRECT).
    fn direct<'a>(
        &'a self,
        pool: sending::Direct<'a>,
    ) -> impl Future<Output = Result<Self::Output, DbErr>> + Send + 'a {
        let _ = pool;
        std::future::ready(Err(failure::internal("no direct form")))
    }
    /// The SeaORM `DatabaseConnection` method its [`send`](Self::send) stands for, for SeaORM's
    /// hooks ([`hooks`]); `None` with `send`.
    fn call(&self) -> Option<Call<'_>> {
        None
    }
    /// It may be hedged: a read whose whole answer comes back at once (not a stream, which
    /// hands rows over as they come), so two attempts may run side by side
    /// ([`shared`](Self::shared)) and the first answer wins.
    const HEDGE: bool = false;
    /// A read attempt that leaves the work as it is (its statement cloned), so another may run
    /// beside it. Called only if [`HEDGE`](Self::HEDGE).
    fn shared<'a>(
        &'a self,
        pool: &'a DatabaseConnection,
    ) -> impl Future<Output = Result<Self::Output, DbErr>> + Send + 'a {
        let _ = pool;
        std::future::ready(Err(failure::internal("no shared form")))
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
    fn call(&self) -> Option<Call<'_>> {
        Some(Call::QueryOne(&self.0))
    }
    type Output = Option<QueryResult>;
    const DIRECT: bool = true;
    fn direct<'a>(
        &'a self,
        pool: sending::Direct<'a>,
    ) -> impl Future<Output = Result<Self::Output, DbErr>> + Send + 'a {
        pool.query_one(&self.0)
    }
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
    const HEDGE: bool = true;
    fn shared<'a>(
        &'a self,
        pool: &'a DatabaseConnection,
    ) -> impl Future<Output = Result<Self::Output, DbErr>> + Send + 'a {
        pool.query_one_raw(self.0.clone())
    }
}

impl Work for QueryAll {
    fn call(&self) -> Option<Call<'_>> {
        Some(Call::QueryAll(&self.0))
    }
    type Output = Vec<QueryResult>;
    const DIRECT: bool = true;
    fn direct<'a>(
        &'a self,
        pool: sending::Direct<'a>,
    ) -> impl Future<Output = Result<Self::Output, DbErr>> + Send + 'a {
        pool.query_all(&self.0)
    }
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
    const HEDGE: bool = true;
    fn shared<'a>(
        &'a self,
        pool: &'a DatabaseConnection,
    ) -> impl Future<Output = Result<Self::Output, DbErr>> + Send + 'a {
        pool.query_all_raw(self.0.clone())
    }
}

impl Work for Execute {
    fn call(&self) -> Option<Call<'_>> {
        Some(Call::Execute(&self.0))
    }
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
    fn call(&self) -> Option<Call<'_>> {
        Some(Call::Unprepared(self.0))
    }
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
    type Output = crate::RoutedStream;
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
        // A write: not read ahead, it runs when the caller reads it (and so stays inert until
        // the attempt returns).
        let stmt = statement(&mut self.0, last);
        async move { pool.stream_raw(stmt).await.map(crate::RoutedStream::unread) }
    }
    fn read<'a>(
        &'a mut self,
        pool: &'a DatabaseConnection,
        last: bool,
    ) -> impl Future<Output = Result<Self::Output, DbErr>> + Send + 'a {
        let stmt = statement(&mut self.0, last);
        async move { crate::RoutedStream::read_ahead(pool.stream_raw(stmt).await?).await }
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

/// Whether `e` says the monitor sees no single primary (none, or two): a topology about to
/// settle in a switchover.
fn unsettled(e: &DbErr) -> bool {
    matches!(
        crate::routing_error(e),
        Some(crate::RoutingError::NoPrimary { .. } | crate::RoutingError::SplitBrain { .. })
    )
}

/// How a hedged read ended ([`hedgeable`]).
enum Hedged<T> {
    /// The first attempt's outcome (no hedge, or the hedge failed or lost).
    First(Result<T, Attempt>),
    /// The hedge answered first.
    By(T, Hedge),
}

/// The node a hedged read's answer came from.
struct Hedge {
    id: NodeId,
    node: crate::connection::NodeRef,
    guard: Option<rwsplit_core::InFlight>,
    started: Instant,
}

/// A read of `work` on `node` that leaves `work` as it is: straight on the sqlx pool where the
/// node's reads may be ([`sending::direct`]), else through SeaORM's connection. Boxed where it
/// is made, as the read path boxes its own: sqlx's futures are kilobytes, and every future
/// that holds one unboxed is copied whole each time it moves (into the attempt, into its box).
fn read_shared<'a, W: Work>(
    work: &'a W,
    node: &'a Node,
) -> std::pin::Pin<Box<dyn Future<Output = Result<W::Output, DbErr>> + Send + 'a>> {
    let pool = node.user_conn();
    let direct = if W::DIRECT && node.reads_direct() { sending::direct(pool) } else { None };
    match direct {
        Some(d) => Box::pin(work.direct(d)),
        None => Box::pin(work.shared(pool)),
    }
}

/// How long past a catch-up wait's `max` a server that waits itself is given to answer.
const WAIT_GRACE: std::time::Duration = std::time::Duration::from_millis(25);

/// How a plan's attempts ended without a result.
enum Stop {
    /// The caller gets this error.
    Fail(DbErr),
    /// A write that was not sent, or a read given up, on node `.1`, which is not the primary any
    /// more: it may be tried once on the new primary (else the caller gets this error).
    Unsent(DbErr, NodeId),
    /// A read a replica refused because it writes, to be run once on the primary as a write
    /// ([`OnReplicaRefusal::Primary`](crate::OnReplicaRefusal::Primary)); its shape is learned.
    /// The error is the caller's if it cannot be.
    Refused(DbErr),
    /// A read whose connection to the primary `.1` broke, or could not be made, before the
    /// monitor knew of anything wrong there: it may run once more where the monitor's verdict
    /// says ([`after_lost`]), else the caller gets this error.
    Lost(DbErr, NodeId),
}

impl Stop {
    /// The caller's error: a second attempt hands back no further one.
    fn into_error(self) -> DbErr {
        match self {
            Stop::Fail(e) | Stop::Unsent(e, _) | Stop::Refused(e) | Stop::Lost(e, _) => e,
        }
    }
}

/// The span one statement runs in (see [`crate::telemetry`]): its node, route
/// reason and attempt number are recorded by [`attempt`].
pub(super) fn statement_span(
    inner: &Inner,
    operation: &'static str,
    ctx: &Ctx<'_>,
) -> tracing::Span {
    if !traced() {
        // No subscriber listens at INFO: not even a disabled span is built (one atomic load;
        // `info_span!` would also consult the `log` bridge every time).
        return tracing::Span::none();
    }
    let level = ctx.consistency.unwrap_or(&inner.policy().consistency);
    tracing::info_span!(
        target: "rwsplit",
        "rwsplit.statement",
        db.system.name = inner.system(),
        db.operation.name = operation,
        server.address = tracing::field::Empty,
        server.port = tracing::field::Empty,
        rwsplit.route.reason = tracing::field::Empty,
        rwsplit.consistency = telemetry::consistency_name(level),
        rwsplit.node.role = tracing::field::Empty,
        rwsplit.attempt = tracing::field::Empty,
    )
}

/// The plan `planner` makes, after the I/O steps it asks for first, done here one at a
/// time (each noted in the [`Done`] it plans with next). Most plans ask for none.
///
/// A read (`read`) that cannot be planned because the monitor sees no primary or two (a
/// switchover's moment between the old primary going and the promoted one being seen) is
/// planned again as each new topology is published, until the caller's deadline or the
/// time the monitor takes to reach a verdict on a primary: the topology settles and the
/// read goes where it now can, instead of failing.
pub(super) async fn planned(
    inner: &Inner,
    scope: &Scope,
    read: bool,
    mut planner: impl FnMut(Done, Instant) -> Result<Planned, DbErr>,
) -> Result<Plan, DbErr> {
    let mut done = Done::default();
    loop {
        let now = Instant::now();
        note_use(inner, now);
        match planner(done, now).map(|p| taken(inner, p, now)) {
            Ok(Ok(plan)) => return Ok(plan),
            // Boxed: most reads do no I/O before their attempts.
            Ok(Err(io)) => Box::pin(io_step(inner, io, scope, &mut done)).await,
            Err(e) if read && inner.monitor().is_some() && unsettled(&e) => {
                return Box::pin(settled_plan(inner, scope, e, done, planner)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// What the executor takes of a planner's answer: a plan, its effects applied once (it is the
/// one that runs), or the I/O step to do first, its wants sent before it (the step may wait on
/// them).
fn taken(inner: &Inner, planned: Planned, now: Instant) -> Result<Plan, Io> {
    // The monitor's state if one runs (else nothing is asked), and how long it is asked for.
    let monitor = inner.monitor().map(|_| &**inner.routing().state());
    let linger = inner.policy().monitor.position_linger_value();
    match planned {
        Planned::Ready(plan, effects) => {
            effects.apply(inner.counters(), monitor, linger, now);
            Ok(plan)
        }
        Planned::Io(io, effects) => {
            effects.want(monitor, linger, now);
            Err(io)
        }
    }
}

/// Tells the monitor the cluster is in use: it probes at its usual interval, not the idle
/// one ([`MonitorConfig::idle_probe_interval`](rwsplit_monitor::MonitorConfig::idle_probe_interval)).
/// One atomic load while statements come less than 50 ms apart.
fn note_use(inner: &Inner, now: Instant) {
    if inner.monitor().is_some() {
        inner.routing().state().used(now);
    }
}

/// [`planned`] once the topology had no single primary (`first` says how):
/// planned again at each published topology, until it settles or time is up (then `first`,
/// or the latest such error).
async fn settled_plan(
    inner: &Inner,
    scope: &Scope,
    first: DbErr,
    mut done: Done,
    mut planner: impl FnMut(Done, Instant) -> Result<Planned, DbErr>,
) -> Result<Plan, DbErr> {
    let m = &inner.policy().monitor;
    let verdict =
        m.probe_interval_value().saturating_add(m.probe_timeout_value()).saturating_mul(3);
    let mut until = tokio::time::Instant::now() + crate::send::deadline::cap(verdict);
    if let Some(d) = crate::send::deadline::current() {
        until = until.min(tokio::time::Instant::from_std(d));
    }
    let state = inner.routing().state();
    let mut last = first;
    tracing::debug!(target: "rwsplit", error = %last, "no single primary: waiting for the topology to settle");
    loop {
        // Made before planning again: a topology published in between still wakes it.
        let published = state.published();
        let mut published = std::pin::pin!(published);
        published.as_mut().enable();
        let now = Instant::now();
        match planner(done, now).map(|p| taken(inner, p, now)) {
            Ok(Ok(plan)) => return Ok(plan),
            Ok(Err(io)) => {
                io_step(inner, io, scope, &mut done).await;
                continue;
            }
            Err(e) if unsettled(&e) => last = e,
            Err(e) => return Err(e),
        }
        if tokio::time::timeout_at(until, published).await.is_err() {
            return Err(last);
        }
    }
}

/// Does one of a plan's I/O steps and notes what it found in `done`.
async fn io_step(inner: &Inner, io: Io, scope: &Scope, done: &mut Done) {
    match io {
        Io::Settle(max) => {
            inner.causality().settled(scope, max).await;
            done.settled = true;
        }
        Io::Floor(max) => {
            inner.causality().await_floor(inner, scope, max).await;
            done.floored = true;
        }
        Io::PrimaryFloor { at } => {
            inner.causality().floor_on_primary(inner, scope, at).await;
            done.floored = true;
        }
        Io::Capture { epoch, at } => {
            done.captured = Some(inner.causality().settle(inner, scope, at, epoch).await);
        }
    }
}

/// Runs `work` along `plan` (see the module docs); returns its output and the node that
/// served it.
// Not `async fn`s, here and below: an `async fn` keeps its arguments twice in its future
// (as captured and as bound), and every byte of a read's future is copied into the box
// SeaORM's `async_trait` makes of it (see ARCHITECTURE, *The read path's cost*).
#[expect(clippy::manual_async_fn, reason = "an async fn keeps its arguments twice in its future")]
pub(super) fn attempt<'a, W: Work>(
    inner: &'a Inner,
    plan: &'a Plan,
    work: &'a mut W,
    scope: &'a Scope,
) -> impl Future<Output = Result<(W::Output, NodeId), DbErr>> + 'a {
    async move {
        let (unsent, old) = match attempt_plan(inner, plan, work, scope, 0).await {
            Ok(done) => return Ok(done),
            Err(Stop::Fail(e)) => return Err(e),
            Err(Stop::Unsent(e, id)) => (e, id),
            // Boxed: rare, and a read's future need not carry a write's state.
            Err(Stop::Refused(e)) => return Box::pin(refused(inner, e, work, scope)).await,
            Err(Stop::Lost(e, old)) => {
                let Some(retry) = Box::pin(after_lost(inner, old, plan.access())).await else {
                    return Err(e);
                };
                tracing::info!(target: "rwsplit", error = %e, "the primary's connection broke under a read: once more, where the monitor says");
                let again = Box::pin(attempt_plan(inner, &retry, work, scope, 1));
                return again.await.map_err(Stop::into_error);
            }
        };
        // A write that was never sent, or a read, to a node that is not the primary any more:
        // once more, on the primary the monitor sees now (if there is none, or it is still that
        // node, the caller hears why the first attempt ended).
        let retry = match inner.planner().plan_on_primary(plan.access(), Why::MovedToNewPrimary) {
            Ok(retry) if retry.first() != old => retry,
            _ => return Err(unsent),
        };
        tracing::info!(target: "rwsplit", error = %unsent, "trying once more, on the new primary");
        // Boxed: rare, and a read's future need not carry a second loop's state.
        Box::pin(attempt_plan(inner, &retry, work, scope, 1)).await.map_err(Stop::into_error)
    }
}

/// A read on the primary `old` lost its connection before the monitor knew of anything
/// wrong there: the server closed or reset it (a switchover's fast shutdown ends every
/// backend), or refused a new one. The read is safe to run again, and is worth running
/// again only once the monitor has a verdict: waits for one, and returns where the read
/// runs once more — on the new primary, once the monitor names one; on `old`, once it has
/// answered the monitor since as the primary (the connection broke, not the server). `None`
/// (the caller gets the read's error) when neither happened within the wait: the time the
/// monitor takes to mark a primary down at three failed probes (three intervals and probe
/// timeouts; 4.5 s at the defaults), or the caller's deadline if sooner. A primary marked
/// down meanwhile does not end it: a switchover's old primary is marked down before the new
/// one is seen. Waits on the monitor's snapshots, never by polling.
async fn after_lost(inner: &Inner, old: NodeId, access: Access) -> Option<Plan> {
    let lost = Instant::now();
    let m = &inner.policy().monitor;
    let verdict =
        m.probe_interval_value().saturating_add(m.probe_timeout_value()).saturating_mul(3);
    let mut until =
        tokio::time::Instant::from_std(crate::send::deadline::saturating_after(lost, verdict));
    if let Some(d) = crate::send::deadline::current() {
        until = until.min(tokio::time::Instant::from_std(d));
    }
    let state = inner.routing().state();
    // One sample of `old`'s written position read after the loss: an answer says the
    // server is there and still the primary.
    state.want_sample(old, lost, until.into_std());
    loop {
        // Registered before the look: a snapshot published in between still wakes it.
        let published = state.published();
        let mut published = std::pin::pin!(published);
        published.as_mut().enable();
        match inner.planner().plan_on_primary(access, Why::MovedToNewPrimary) {
            Ok(retry) if retry.first() != old => return Some(retry),
            Ok(retry)
                if state.sampled_since(old, lost)
                    && inner.routing().standing(old) == Standing::Primary =>
            {
                return Some(retry.with_reason(Why::RerunOnPrimary));
            }
            _ => {}
        }
        // Marked down meanwhile, with no other primary named yet: a switchover marks the
        // old primary down before the new one is seen, so the wait goes on to its end.
        tokio::time::timeout_at(until, published).await.ok()?;
    }
}

/// A read a replica refused because it writes ([`Stop::Refused`]): once on the primary, as
/// a write (its position recorded for the scope's read-your-writes), within the caller's
/// deadline. Nothing durable happened on the replica (see [`OnReplicaRefusal`]).
///
/// [`OnReplicaRefusal`]: crate::OnReplicaRefusal
async fn refused<W: Work>(
    inner: &Inner,
    refusal: DbErr,
    work: &mut W,
    scope: &Scope,
) -> Result<(W::Output, NodeId), DbErr> {
    if crate::send::deadline::current().is_some_and(|d| Instant::now() >= d) {
        return Err(refusal);
    }
    let Ok(retry) = inner.planner().plan_on_primary(Access::Write, Why::RefusedByReplica) else {
        return Err(refusal);
    };
    attempt_plan(inner, &retry, work, scope, 1).await.map_err(Stop::into_error)
}

/// [`attempt`] along one plan; `earlier`: attempts already made (a write's
/// second plan may not hand back [`Stop::Unsent`]).
#[expect(clippy::manual_async_fn, reason = "an async fn keeps its arguments twice in its future")]
fn attempt_plan<'a, W: Work>(
    inner: &'a Inner,
    plan: &'a Plan,
    work: &'a mut W,
    scope: &'a Scope,
    earlier: usize,
) -> impl Future<Output = Result<(W::Output, NodeId), Stop>> + 'a {
    async move {
        let write = plan.access() == Access::Write;
        if write {
            check_writable(inner, plan).map_err(Stop::Fail)?;
        }
        // A catch-up wait is I/O few reads do: boxed, so the others do not carry its state.
        let skip = match plan.wait() {
            Some(_) => usize::from(!Box::pin(catch_up(inner, plan)).await),
            None => 0,
        };
        let budget = if write { 0 } else { usize::from(inner.policy().read_retries) };
        // The candidates tried: the plan's `k`-th, for `k` from `skip` up to `end` (indices
        // rather than an iterator: a read's future carries less).
        let (mut k, end) = (skip, skip + budget + 1);
        let deadline = crate::send::deadline::current();
        // The statement's span (a disabled one when nothing listens), fetched where it is used
        // rather than held across the attempts' awaits: a read's future stays smaller.
        let traced = traced();
        let span = tracing::Span::current;
        if traced {
            let span = span();
            if !span.is_disabled() {
                span.record("rwsplit.route.reason", plan.reason().code());
            }
        }
        // The primary of the plan's snapshot: the candidates are the plan's. The live
        // topology is read too: by each attempt's watch (its node going down or replaced),
        // before sending on a primary marked down, to tell a deposed primary after an
        // unsent attempt, by `check_writable`, and by `after_lost`.
        let primary = plan.snapshot_primary().unwrap_or(NodeId::new(0));
        // The clock is read when the plan is made and once after each attempt: the first
        // attempt starts at the plan's reading (after a catch-up wait, a fresh one).
        let mut now = if skip > 0 || plan.wait().is_some() { Instant::now() } else { plan.made() };
        // Boxed: most reads never fail, and their future need not carry an error's room.
        let mut last_err: Option<Box<DbErr>> = None;
        let mut tried = earlier;
        while k < end
            && let Some(id) = plan.candidate(k)
        {
            k += 1;
            let last = k == end || plan.candidate(k).is_none();
            // A node removed since the plan was made (its index empty, or another
            // generation's).
            let Some(node) = inner.nodes().get(id) else {
                continue;
            };
            let on_primary = id == primary;
            // A replica that has stopped answering, before the monitor's verdict: the plan's
            // next node first (it stays in the plan as the read's last resort if it is last).
            if !write
                && !on_primary
                && !last
                && plan.reason() != Why::Router(rwsplit_core::RouteReason::NodeRequested)
                && node.pace().stalled(plan.in_flight(id), now)
            {
                inner.counters().bump(Count::StalledSkips);
                telemetry::passover(node.labels());
                tracing::debug!(target: "rwsplit", node = %node.name(), "node stalled: trying the plan's next one");
                continue;
            }
            tried += 1;
            if traced {
                let span = span();
                if !span.is_disabled() {
                    span.record("server.address", &*node.labels().address);
                    span.record("server.port", &*node.labels().port);
                    span.record("rwsplit.node.role", telemetry::role_name(on_primary));
                    span.record("rwsplit.attempt", tried);
                }
            }
            tracing::debug!(target: "rwsplit", node = %node.name(), reason = %plan.reason(), write, sql = %SqlHead(work.sql()), "route");
            let guard = plan.start(id, now);
            let pool = if write || W::WRITER { node.user_writer() } else { node.user_conn() };
            let started = now;
            // Reads are bounded (a hung replica keeps its port open). Writes are not cut short
            // by time (one abandoned mid-flight may still commit): see `watched_write`.
            let mut held = None;
            let result = if write {
                // Boxed: a read's future does not carry the write path's state (it would be
                // moved, whole, into the box SeaORM's `async_trait` makes of every statement).
                // The write's position is read on its own connection (see `after_write`).
                let hold = matches!(work.wrote(), Wrote::Capture)
                    && inner.causality().tracks_writes(inner, scope);
                let written = watched_write(inner, id, &node, pool, &mut *work, earlier == 0, hold);
                Box::pin(written).await.map(|(out, conn)| {
                    held = conn;
                    out
                })
            } else if on_primary && inner.routing().standing(id) == Standing::Down {
                // Not sent: the monitor has the primary marked down. Its pool would be
                // waited on for the acquire timeout (connecting to a dead server is retried
                // until then); the read moves on, or fails at once saying why.
                Err(Attempt::GivenUp(crate::send::deadline::already_down(node.name())))
            } else if let Some(other) =
                plan.candidate(k).filter(|_| W::HEDGE && !on_primary && inner.policy().hedged_reads)
            {
                // A read that may be hedged on the plan's next node (boxed, as a read's
                // sqlx future is: see `read_shared`).
                inner.hedge_budget().earn();
                let read = hedgeable(inner, plan, &*work, (id, &node), other, (started, deadline));
                let hedged = Box::pin(read).await;
                match hedged {
                    Hedged::By(out, hedge) => {
                        // Counted by `send_hedge`, with the first attempt dropped ([`lost`])
                        // if it was still running.
                        let served = Record {
                            conn: inner,
                            node: &hedge.node,
                            id: hedge.id,
                            statement: metrics(inner, plan, &*work),
                            reason: plan.reason(),
                            on_primary: hedge.id == primary,
                            write: false,
                            guard: hedge.guard,
                            started: hedge.started,
                        };
                        served.succeeded(Instant::now());
                        return Ok((out, hedge.id));
                    }
                    Hedged::First(r) => r,
                }
            } else {
                // A read on the primary may run once more on a new primary: it keeps its
                // statement.
                let on_replica = id != primary;
                let timeouts = &inner.policy().timeouts;
                let limit =
                    crate::send::deadline::attempt_limit(on_replica, timeouts, deadline, started);
                // Straight on the sqlx pool when nothing listens to SeaORM's layer: no
                // clone of the statement for a retry, no second boxed future.
                let direct =
                    if W::DIRECT && node.reads_direct() { sending::direct(pool) } else { None };
                let run = match direct {
                    // Boxed, as SeaORM boxes its own: sqlx's futures are kilobytes, and a
                    // read's future is moved whole into SeaORM's `async_trait` box.
                    Some(d) => Either::Left(Box::pin(work.direct(d))),
                    // A read on a replica keeps it too: the replica may refuse it as a write,
                    // and then it runs on the primary.
                    None => Either::Right(work.read(pool, last && earlier > 0)),
                };
                bounded(inner, id, on_replica, node.name(), limit, run).await
            };
            now = Instant::now();
            let record = Record {
                conn: inner,
                node: &node,
                id,
                statement: metrics(inner, plan, &*work),
                reason: plan.reason(),
                on_primary,
                write,
                guard,
                started,
            };
            match result {
                Ok(out) => {
                    record.succeeded(now);
                    if write {
                        match work.wrote() {
                            Wrote::Capture => {
                                let after = inner.causality().after_write(inner, id, scope, held);
                                Box::pin(after).await;
                            }
                            Wrote::Unseen => inner.causality().mark_unseen_writes(inner, scope),
                            Wrote::Later => {}
                        }
                    }
                    return Ok((out, id));
                }
                Err(e) => {
                    let unsent = e.unsent();
                    let (e, failure) = record.failed(e, now, scope);
                    if unsent {
                        // A write never sent, or a read given up on a primary that is one no
                        // more: safe to try again, and worth it only on another primary.
                        let e = failure::unsent(e, failure, node.name(), tried);
                        let deposed = inner.routing().standing(id) != Standing::Primary;
                        if !(deposed && earlier == 0) {
                            return Err(Stop::Fail(e));
                        }
                        // Counted here, where it is known to move (once, to a new primary).
                        record::retried(inner, &node, write);
                        return Err(Stop::Unsent(e, id));
                    }
                    if failure == Failure::ReadOnly && !write {
                        return Err(refusal(inner, e, &node, plan, work.sql()));
                    }
                    let out_of_time = deadline.is_some_and(|d| now >= d);
                    if failure == Failure::Connection
                        && on_primary
                        && !write
                        && last
                        && earlier == 0
                        && !out_of_time
                        && inner.monitor().is_some()
                        && !failure::pool_closed(&e)
                    {
                        // The primary was the read's last resort: once more after the
                        // monitor's verdict (see `after_lost`), not an error at once.
                        let e = failure::named(e, failure, node.name(), write, tried);
                        return Err(Stop::Lost(e, id));
                    }
                    if write || !failure.retryable() || last || out_of_time {
                        return Err(Stop::Fail(failure::named(
                            e,
                            failure,
                            node.name(),
                            write,
                            tried,
                        )));
                    }
                    tracing::info!(target: "rwsplit", node = %node.name(), error = %e, "read failed, retrying on the next node");
                    record::retried(inner, &node, false);
                    last_err =
                        Some(Box::new(failure::named(e, failure, node.name(), write, tried)));
                }
            }
        }
        // Every candidate was skipped (a catch-up wait that timed out on the only one).
        Err(Stop::Fail(match last_err {
            Some(e) => *e,
            None => failure::no_node_left(skipped(inner, plan, skip, end)),
        }))
    }
}

/// Why each of `plan`'s candidates up to the `end`-th was skipped, when all were: the first
/// `skip` by a catch-up wait that did not see the session's writes there (or found the node
/// removed), the others removed since the plan was made, or stalled (passed over for the
/// next).
fn skipped(inner: &Inner, plan: &Plan, skip: usize, end: usize) -> Vec<crate::NodeOut> {
    use crate::OutReason;
    let waited = plan.wait().map_or(std::time::Duration::ZERO, |(_, max)| max);
    (0..end)
        .map_while(|k| plan.candidate(k))
        .enumerate()
        .map(|(k, id)| {
            let why = if inner.nodes().get(id).is_none() {
                OutReason::Removed
            } else if k < skip {
                OutReason::NotCaughtUp { waited }
            } else {
                OutReason::Stalled
            };
            let name = plan.name(id).map_or_else(|| format!("node {id}"), str::to_owned);
            crate::NodeOut::new(name, why)
        })
        .collect()
}

/// A read on replica `first` (`.0`, its node `.1`) that may be hedged on `other`: it waits
/// on its node, bounded as any read, and on the watchdog's word that the node has gone
/// silent past its hedge delay (no timer of its own); then [`send_hedge`].
/// `times`: when the attempt started, and the caller's deadline.
async fn hedgeable<W: Work>(
    inner: &Inner,
    plan: &Plan,
    work: &W,
    first: (NodeId, &Node),
    other: NodeId,
    times: (Instant, Option<Instant>),
) -> Hedged<W::Output> {
    let (id, node) = first;
    let (started, deadline) = times;
    let begun = node.pace().begin(started);
    inner.watchdog().ensure();
    let timeouts = &inner.policy().timeouts;
    let limit = crate::send::deadline::attempt_limit(true, timeouts, deadline, started);
    let first = bounded(inner, id, true, node.name(), limit, read_shared(work, node));
    let mut first = std::pin::pin!(first);
    // The attempt's watch wakes it when the watchdog nudges the node (no waiter of its
    // own): then, if the node was found silent since this read began, it is hedged.
    let answered = std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(r) = first.as_mut().poll(cx) {
            return std::task::Poll::Ready(Some(r));
        }
        if node.pace().overdue_since(begun.at()) {
            return std::task::Poll::Ready(None);
        }
        std::task::Poll::Pending
    })
    .await;
    match answered {
        Some(r) => Hedged::First(r),
        None => send_hedge(inner, plan, work, first.as_mut(), node, other).await,
    }
}

/// A read waiting on replica `node` whose node the watchdog found silent past its hedge
/// delay: if the budget allows ([`HedgeBudget`](crate::send::pace::HedgeBudget)), the same read
/// goes to `other` (the plan's next node, which satisfies the same consistency) as well,
/// and the first answer wins; the other attempt is dropped ([`lost`]). Either attempt failing
/// leaves the other to finish. Each attempt is bounded as [`bounded`] bounds it.
async fn send_hedge<W: Work, F>(
    inner: &Inner,
    plan: &Plan,
    work: &W,
    mut first: std::pin::Pin<&mut F>,
    node: &Node,
    other: NodeId,
) -> Hedged<W::Output>
where
    F: Future<Output = Result<W::Output, Attempt>>,
{
    let Some(hedge_node) = inner.nodes().get(other) else {
        return Hedged::First(first.await);
    };
    if !inner.hedge_budget().spend() {
        return Hedged::First(first.await);
    }
    inner.counters().bump(Count::Hedges);
    // Counted once when it ends, however it ends (`abandoned` if dropped before).
    let mut ended = HedgeEnd { node: node.labels(), outcome: "abandoned" };
    let now = Instant::now();
    tracing::info!(target: "rwsplit", node = %node.name(), hedge = %hedge_node.name(), after = ?node.pace().hedge_delay(), "read unanswered: hedged on another node");
    let on_replica = plan.snapshot_primary() != Some(other);
    let timeouts = &inner.policy().timeouts;
    let limit = crate::send::deadline::attempt_limit(
        on_replica,
        timeouts,
        crate::send::deadline::current(),
        now,
    );
    let guard = plan.start(other, now);
    let by = |out| {
        let hedge = Hedge { id: other, node: hedge_node.clone(), guard, started: now };
        Hedged::By(out, hedge)
    };
    // The hedge's attempt lives in this block: when the first answers first, it is dropped
    // (its connection closed) here. `dropped`: the node whose attempt is dropped still
    // running (the hedge's here, or the first's, by the caller, once this returns).
    let (hedged, dropped) = {
        let second = read_shared(work, &hedge_node);
        let second = bounded(inner, other, on_replica, hedge_node.name(), limit, second);
        let mut second = std::pin::pin!(second);
        tokio::select! {
            r = &mut first => match r {
                Ok(out) => (Hedged::First(Ok(out)), true),
                Err(e) => match second.await {
                    Ok(out) => (by(out), false),
                    Err(_) => (Hedged::First(Err(e)), false),
                },
            },
            r = &mut second => match r {
                Ok(out) => (by(out), true),
                Err(_) => (Hedged::First(first.await), false),
            },
        }
    };
    ended.outcome = match &hedged {
        Hedged::By(..) => {
            inner.counters().bump(Count::HedgesWon);
            "hedge"
        }
        Hedged::First(Ok(_)) => "first",
        Hedged::First(Err(_)) => "failed",
    };
    if dropped {
        lost(inner);
    }
    hedged
}

/// A hedged read's end, counted once: when it is dropped, with the outcome it reached
/// ([`telemetry::HEDGE_OUTCOMES`]; still `abandoned` if the caller dropped the read first).
struct HedgeEnd<'a> {
    node: &'a telemetry::NodeLabels,
    outcome: &'static str,
}

impl Drop for HedgeEnd<'_> {
    fn drop(&mut self) {
        telemetry::hedge(self.node, self.outcome);
    }
}

/// A hedged read's losing attempt, dropped, counted (`Hedges::lost`; the metric counts the
/// hedged read once, by how it ended: `HedgeEnd`). Nothing is sent to end its
/// statement: a read run straight on the node's pool closes its connection when dropped
/// ([`crate::send::sending`]), and a PostgreSQL server ends the statement of a session whose client
/// has gone by itself (`client_connection_check_interval`, set on rwsplit's replica sessions:
/// [`crate::product::Pooling`]); on MariaDB the statement runs to its end. Looking the
/// statement up to cancel it could reach another client's session (the same text, the same
/// user), and rwsplit acts only on sessions it opened.
fn lost(inner: &Inner) {
    inner.counters().bump(Count::HedgesLost);
}

/// A replica refused a read because it writes: its shape is learned (a write from now
/// on), the refusal counted, a new shape logged once at WARN; then what
/// [`OnReplicaRefusal`](crate::OnReplicaRefusal) says, unless the read was sent to the
/// replica on purpose (then it fails).
fn refusal(inner: &Inner, e: DbErr, node: &Node, plan: &Plan, sql: &str) -> Stop {
    let learned = inner.classified().learn(sql);
    let on_purpose = matches!(
        plan.reason(),
        Why::Router(RouteReason::ReplicaRequested | RouteReason::NodeRequested)
    );
    let rerun =
        !on_purpose && inner.policy().on_replica_refusal == crate::OnReplicaRefusal::Primary;
    inner.counters().bump(Count::ReplicaRefusals);
    telemetry::replica_refusal(node.labels(), rerun);
    let then = if rerun { "it runs once on the primary" } else { "it fails" };
    match &learned {
        Learned::New(shape) => tracing::warn!(
            target: "rwsplit",
            node = %node.name(),
            statement = %shape,
            "a replica refused a statement classified as a read because it writes (a \
             function or view the SQL does not show); {then}, and statements of this shape \
             go to the primary from now on"
        ),
        Learned::Full(shape) if inner.classified().first_full(&learned) => tracing::warn!(
            target: "rwsplit",
            node = %node.name(),
            statement = %shape,
            max = crate::classified::MAX_LEARNED,
            "a replica refused a statement classified as a read; {then}; the database's \
             table of learned shapes is full, so neither this shape nor any new one is \
             learned: each is refused on every call (logged once)"
        ),
        Learned::Full(shape) => tracing::debug!(
            target: "rwsplit",
            node = %node.name(),
            statement = %shape,
            "a replica refused a statement classified as a read; {then}; the table of \
             learned shapes is full, so it is not learned"
        ),
        Learned::Known(_) | Learned::NoShape => tracing::debug!(
            target: "rwsplit",
            node = %node.name(),
            "a replica refused a statement classified as a read; {then}"
        ),
    }
    let e = failure::misrouted(e, node.name(), learned.shape());
    if rerun { Stop::Refused(e) } else { Stop::Fail(e) }
}

/// The metrics of one of `plan`'s attempts at `work`.
fn metrics(inner: &Inner, plan: &Plan, work: &impl Work) -> telemetry::Statement {
    let operation = plan.operation().unwrap_or_else(|| telemetry::operation_name(work.sql()));
    telemetry::Statement { system: inner.system(), operation }
}

/// Before a read with a catch-up wait: waits on the first candidate; `true` if it caught
/// up (read there), `false` if not (skip it: the primary is next).
async fn catch_up(inner: &Inner, plan: &Plan) -> bool {
    let Some((token, max)) = plan.wait() else { return true };
    let id = plan.first();
    let Some(node) = inner.nodes().get(id) else { return false };
    inner.counters().bump(Count::Waits);
    match replayed(inner, &node, token, max).await {
        Ok(Waited::CaughtUp) => {
            // Proof for the next reads with this token (or an older one), in any scope.
            inner.routing().learn(id, token);
            inner.counters().read_your_writes(Ryw::Waited);
            true
        }
        Ok(Waited::TimedOut) => {
            inner.counters().bump(Count::WaitTimeouts);
            inner.counters().read_your_writes(Ryw::Primary);
            tracing::debug!(target: "rwsplit", node = %node.name(), ?max, "replica did not catch up in time: reading from the primary");
            false
        }
        Err(e) => {
            inner.counters().bump(Count::WaitTimeouts);
            inner.counters().read_your_writes(Ryw::Primary);
            record::note_failure(inner, &node, id, &e);
            false
        }
    }
}

/// Waits up to `max` for `node` to have replayed `token`, in the server (one round trip:
/// [`position::wait_for`]). Bounded as a whole, connection included: a replica that died and
/// is not marked down yet would otherwise hold the read for the pool's acquire timeout (5 s)
/// rather than the wait's `max`; the server is given a moment past `max` to answer. The
/// token's history check (system, timeline) is the router's.
async fn replayed(
    _inner: &Inner,
    node: &Node,
    token: &rwsplit_core::CausalToken,
    max: std::time::Duration,
) -> Result<Waited, DbErr> {
    let limit = tokio::time::Instant::now() + crate::send::deadline::cap(max) + WAIT_GRACE;
    // The plain pool: the wait is the adapter's own, not reported as the user's.
    match tokio::time::timeout_at(limit, position::wait_for(node.conn(), token, max)).await {
        Ok(looked) => looked.map_err(|e| crate::routing_error::read_on(e, node.name())),
        Err(_) => Ok(Waited::TimedOut),
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
#[expect(clippy::manual_async_fn, reason = "an async fn keeps its arguments twice in its future")]
fn bounded<'a, T: 'a>(
    inner: &'a Inner,
    id: NodeId,
    on_replica: bool,
    name: &'a str,
    limit: Option<(std::time::Duration, crate::TimeLimit)>,
    attempt: impl Future<Output = Result<T, DbErr>> + 'a,
) -> impl Future<Output = Result<T, Attempt>> + 'a {
    async move {
        use std::task::Poll;
        // A timer only for a read with a limit (boxed: most reads have none, and their future
        // should not carry one).
        let mut timer = limit.map(|(l, _)| Box::pin(tokio::time::sleep(l)));
        // A replica: given up once marked down. The primary: once it is not the up primary
        // any more (replaced: the read runs once more on the new one; marked down: it fails
        // at once, typed, instead of waiting for a pool or a server that will not answer).
        let watched: fn(Standing) -> bool =
            if on_replica { Standing::is_down } else { Standing::serves_no_more };
        let mut attempt = std::pin::pin!(attempt);
        let routing = &inner.routing();
        let changed = std::pin::pin!(routing.changed(id));
        let mut watch = Watch { routing, node: id, done: watched, changed, seen: None };
        // The read first: an answer that is there wins over a limit reached at the same time.
        std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = attempt.as_mut().poll(cx) {
                return Poll::Ready(r.map_err(Attempt::Failed));
            }
            if let (Some(t), Some(l)) = (timer.as_mut(), limit)
                && t.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(Err(Attempt::GivenUp(crate::send::deadline::timed_out(
                    name, l,
                ))));
            }
            if watch.fired(cx) {
                return Poll::Ready(Err(if on_replica {
                    Attempt::GivenUp(crate::send::deadline::marked_down(name))
                } else {
                    // As it stands now (back up already: as marked down, which it was).
                    match routing.standing(id) {
                        Standing::Primary => Attempt::Deposed(Standing::Down),
                        s => Attempt::Deposed(s),
                    }
                }));
            }
            Poll::Pending
        })
        .await
    }
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
/// [`INERT`](Work::INERT) work keeps its statement. `hold`: the write's position will be
/// read, so the connection it was sent on is returned with its output (when the adapter
/// took one), for that read ([`after_write`](crate::consistency::Causality::after_write)).
///
/// A write sent in two steps passes SeaORM's `DatabaseConnection` by, so its hooks are
/// called here as SeaORM would ([`hooks`]): the metric callback, and with this crate's
/// features SeaORM's `debug-print` line and `tracing-spans` span (if the node's
/// `record_stmt_in_spans`).
async fn watched_write<W: Work>(
    inner: &Inner,
    id: NodeId,
    node: &Node,
    pool: &DatabaseConnection,
    work: &mut W,
    keep: bool,
    hold: bool,
) -> Result<(W::Output, Option<Taken>), Attempt> {
    let (name, record_stmt) = (node.name(), node.record_stmt());
    let standing = || inner.routing().standing(id);
    let changed = || inner.routing().changed(id);
    let end = if W::INERT {
        // Nothing is written before it returns: all of it is the first step.
        let run = work.run(pool, !keep);
        let sent = |out| std::future::ready(Ok((out, None)));
        sending::in_steps(run, sent, standing, changed).await
    } else if sending::can_take(pool) {
        let product = inner.product();
        let (mut timing, span) = match work.call() {
            Some(call) => {
                let span = hooks::seaorm_span(&call, product, record_stmt);
                hooks::in_scope(span.as_ref(), || hooks::debug_print(&call, product));
                (inner.hooks().timing(&call), span)
            }
            None => (None, None),
        };
        let hooks = &inner.hooks();
        let send = |mut conn: Taken| async move {
            if let Some(t) = timing.as_mut() {
                t.start();
            }
            let sent = match work.send(&mut conn) {
                Some(sending) => sending.await,
                // Only inert work (above) is not one statement.
                None => Err(failure::internal("nothing to send")),
            };
            hooks.finish(timing, sent.is_err());
            sent.map(|out| (out, hold.then_some(conn)))
        };
        let end = sending::in_steps(sending::take(pool), send, standing, changed);
        let end = hooks::in_span_of(span.as_ref(), end).await;
        #[cfg(feature = "tracing-spans")]
        if let Some(span) = &span {
            let deposed;
            let error = match &end {
                Ok(_) => None,
                Err(End::Unsent(e) | End::Failed(e)) => Some(e),
                Err(End::Deposed(s)) => {
                    deposed = sending::deposed(name, *s, true);
                    Some(&deposed)
                }
                Err(End::Unknown) => {
                    deposed = crate::send::deadline::write_outcome_unknown(name);
                    Some(&deposed)
                }
            };
            hooks::record(span, error);
        }
        end
    } else {
        // A pool the adapter cannot take a connection from (a mock, a proxy): one step, as
        // SeaORM runs it; the first step only asks the monitor once.
        let ready = std::future::ready(Ok(()));
        let run = move |()| async move { work.run(pool, true).await.map(|out| (out, None)) };
        sending::in_steps(ready, run, standing, changed).await
    };
    end.map_err(|e| match e {
        End::Unsent(e) => Attempt::Unsent(e),
        End::Deposed(s) => Attempt::Deposed(s),
        End::Failed(e) => Attempt::Failed(e),
        End::Unknown => Attempt::GivenUp(crate::send::deadline::write_outcome_unknown(name)),
    })
}

/// Writes fail fast, naming the node, when the monitor has marked the primary down: waiting
/// for a pool's acquire timeout would only hang the caller (a write is tried elsewhere only
/// once the monitor names another primary, and only if it was never sent).
/// Read in the plan's snapshot: made a moment ago, and a primary marked down since is the
/// write's watch's to see.
fn check_writable(inner: &Inner, plan: &Plan) -> Result<(), DbErr> {
    let node = plan.first();
    if plan.marked_down(node) {
        let name = inner.nodes().get(node).map_or_else(String::new, |n| n.name().to_owned());
        return Err(failure::primary_down(&name));
    }
    Ok(())
}

/// A statement's watch on its node's standing: fires once `done` holds for it, checked when the
/// statement first waits and again at each change of the node's role or health the monitor
/// announces — no timer, no polling of the monitor.
///
/// It is polled at every poll of its statement, so it keeps that cheap: its notification
/// future is registered (with the task's waker) on the first poll, and polled again only when
/// the node's announced change count moved or the task's waker is another one; any other poll
/// costs one atomic load and a waker comparison.
struct Watch<'a, 'p> {
    routing: &'a crate::route::Routing,
    node: NodeId,
    done: fn(Standing) -> bool,
    /// Made before the standing is first checked, so a change in between completes it.
    changed: std::pin::Pin<&'p mut tokio::sync::futures::Notified<'a>>,
    /// The change count when the standing was last checked, and the waker registered then
    /// (`None`: not checked yet).
    seen: Option<(u64, std::task::Waker)>,
}

impl Watch<'_, '_> {
    /// Whether `done` holds for the node now (registering `cx`'s waker for the next change).
    fn fired(&mut self, cx: &mut std::task::Context<'_>) -> bool {
        let count = self.routing.wake_ups(self.node);
        if let Some((seen, waker)) = &self.seen
            && *seen == count
            && same_task(waker, cx.waker())
        {
            return false;
        }
        loop {
            // The count before the standing: a change announced after this read moves it again.
            let count = self.routing.wake_ups(self.node);
            if (self.done)(self.routing.standing(self.node)) {
                return true;
            }
            if self.changed.as_mut().poll(cx).is_pending() {
                self.seen = Some((count, cx.waker().clone()));
                return false;
            }
            // Notified: wait for the next change, made before the standing is read again.
            self.changed.set(self.routing.changed(self.node));
        }
    }
}

/// Whether two wakers wake the same task: `will_wake`, or the same data pointer (a clone of
/// tokio's waker may carry another copy of the same vtable, which `will_wake` tells apart).
fn same_task(a: &std::task::Waker, b: &std::task::Waker) -> bool {
    a.will_wake(b) || (!a.data().is_null() && std::ptr::eq(a.data(), b.data()))
}

/// Whether any tracing subscriber may record the statement span (INFO): when none does, the
/// statement paths build no span and record nothing.
#[inline]
pub(super) fn traced() -> bool {
    tracing::Level::INFO <= tracing::level_filters::LevelFilter::current()
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
