//! The executor: a plan's attempts. Every statement, stream and `BEGIN` runs through
//! [`attempt`], which tries a [`Plan`]'s candidates in order (the plan and the I/O steps it
//! asks for first are the statement path's, `statements.rs`). Its layers, read top-down, each
//! a file:
//!
//! - [`attempt`] (here): the plan's attempts, then once more elsewhere when they say so —
//!   on the new primary for a write that was never sent (or a read given up on a deposed
//!   primary), on the primary for a read a replica refused because it writes
//!   ([`refused`]), where the monitor's verdict says for a read whose connection to the
//!   primary broke — where to is retry's (`crate::retry`);
//! - [`attempt_plan`] (here): the loop over one plan's candidates; each policy it composes
//!   is a file: which candidate next, within the budget, and stalled nodes passed over
//!   (retry's `Candidates`), the catch-up wait (`catch_up.rs`), one read (`read.rs`: bounded
//!   by time and the monitor, `crate::send::watch`; hedged, over `crate::hedge`), one write
//!   (`write.rs`: in two steps), what a failure means (`outcome.rs`, judged by
//!   `crate::retry`, the part it holds, and `crate::send::refusal`); the span recorded at its
//!   boundary (`crate::observe::telemetry`);
//! - what one attempt runs: a [`Work`] (`work.rs`).
//!
//! - A write runs on the primary, unbounded (an attempt abandoned mid-flight may still
//!   commit), and only if the monitor has not marked the primary down; its success records the
//!   write in the caller's read-your-writes scope. A write known not to have been sent to a
//!   node that is no longer the primary is tried once more, on the new primary; a write that
//!   may have been sent never is.
//! - A read may wait for its first candidate to catch up, is bounded (the caller's deadline,
//!   the replica read timeout, the monitor marking the replica down), and moves on to the next
//!   candidate when the failure makes that safe, up to the retry budget.
//! - Every outcome is reported once (`record`): a node failure to the monitor, back-pressure
//!   to the node's counters (never to its health), successes to the balancer's estimate.

mod catch_up;
mod outcome;
mod read;
mod work;
mod write;

use std::future::Future;
use std::time::Instant;

use rwsplit_core::{Access, NodeId};
use sea_orm::DbErr;

use self::outcome::Tried;
use self::read::Hedged;
pub(super) use self::work::{Begin, Execute, QueryAll, QueryOne, Stream, Unprepared, Work};
use super::inner::Inner;
use super::record::Record;
use crate::cluster::{Plan, Why};
use crate::nodes::registry::Node;
use crate::observe::telemetry;
use crate::retry::retrying::{Candidates, Picked, Stop};
use crate::routing::ctx::Scope;

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
                let lost = inner.retry.after_lost(&inner.routing, old, plan.access());
                let Some(retry) = Box::pin(lost).await else {
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
        let Some(retry) = inner.retry.on_new_primary(&inner.routing, plan.access(), old) else {
            return Err(unsent);
        };
        tracing::info!(target: "rwsplit", error = %unsent, "trying once more, on the new primary");
        // Boxed: rare, and a read's future need not carry a second loop's state.
        Box::pin(attempt_plan(inner, &retry, work, scope, 1)).await.map_err(Stop::into_error)
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
    let Ok(retry) = inner.routing.plan_on_primary(Access::Write, Why::RefusedByReplica) else {
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
            write::check_writable(&inner.nodes, plan).map_err(Stop::Fail)?;
        }
        let (waits, waited) = ((&inner.nodes, &inner.counters, &inner.routing), plan.wait());
        let skip = if waited.is_some() { catch_up::skip(waits, plan).await } else { 0 };
        let mut run = Run::new(inner, plan, (write, waited.is_some()), skip, earlier);
        let parts = (&inner.nodes, &inner.counters, &inner.hedging);
        while let Some(picked) = run.candidates.pick(parts, plan, (run.primary, write), run.now) {
            let Picked { id, node, last, following } = picked;
            run.tried += 1;
            let (on_primary, started, guard) =
                (id == run.primary, run.now, plan.start(id, run.now));
            run.seen(&node, on_primary, plan, work.sql());
            let result = if write {
                write::attempt(write_parts(inner), (id, &node), &mut *work, earlier == 0).await
            } else {
                let deadline = run.deadline;
                let at = read::At { id, node: &node, on_primary, last, earlier, started, deadline };
                if let Some(rare) = read::rare(hedge_parts(inner), plan, &*work, at, following) {
                    let won = |(out, h)| Ok(read::won(hedge_parts(inner), plan, &*work, out, h));
                    match rare.await {
                        Hedged::By(out, h) => return won((out, h)),
                        Hedged::First(r) => r,
                    }
                } else {
                    read::bounded((&inner.routing, timeouts(inner)), &mut *work, at).await
                }
            };
            run.now = Instant::now();
            let on = (&*node, id, on_primary, write);
            let to = (&inner.routing, &inner.hedging, inner.system_name);
            let record = Record::new(to, plan, work.sql(), on, (started, guard));
            match result {
                Ok(out) => {
                    record.succeeded(run.now);
                    if write && let Some(after) = write::wrote(inner, work.wrote(), id, scope) {
                        after.await;
                    }
                    return Ok((out, id));
                }
                Err(e) => {
                    let at = run.tried_at(last, earlier);
                    let e = outcome::failed(inner, record, e, at, (plan, work.sql(), scope))?;
                    run.last_err = Some(Box::new(e));
                }
            }
        }
        // Every candidate was passed over (a catch-up wait that timed out on the only one).
        Err(Stop::Fail(run.none_left(inner, plan)))
    }
}

/// The parts a write attempt holds.
#[inline]
fn write_parts(inner: &Inner) -> write::Parts<'_> {
    (&inner.routing, &inner.hooks, inner.product)
}

/// The policy's timeouts, which bound a read.
#[inline]
fn timeouts(inner: &Inner) -> &crate::send::deadline::Timeouts {
    &inner.policy.timeouts
}

/// The parts a hedgeable read holds (made where used: a read's future keeps `inner` only).
#[inline]
fn hedge_parts(inner: &Inner) -> read::Parts<'_> {
    let (hedging, routing, nodes, policy) =
        (&inner.hedging, &inner.routing, &inner.nodes, &*inner.policy);
    read::Parts { hedging, routing, nodes, policy, system_name: inner.system_name }
}

/// One plan's attempts as [`attempt_plan`] goes: the candidates left, the clock, the
/// attempts made, the error kept while a read moves on.
struct Run {
    candidates: Candidates,
    /// The caller's deadline.
    deadline: Option<Instant>,
    /// A subscriber may record the statement's span.
    traced: bool,
    /// The primary of the plan's snapshot: the candidates are the plan's. The live topology
    /// is read too: by each attempt's watch (its node going down or replaced), before sending
    /// on a primary marked down, to tell a deposed primary after an unsent attempt, by
    /// `check_writable`, and by `after_lost`.
    primary: NodeId,
    /// The clock, read when the plan is made and once after each attempt: the first attempt
    /// starts at the plan's reading (after a catch-up wait, a fresh one).
    now: Instant,
    /// Attempts made, the statement's earlier ones included.
    tried: usize,
    /// Boxed: most reads never fail, and their future need not carry an error's room.
    last_err: Option<Box<DbErr>>,
}

impl Run {
    /// `plan`'s attempts (a write's, or a read's that `waited` to catch up first) from its
    /// `skip`-th candidate, after `earlier` attempts.
    #[inline]
    fn new(
        inner: &Inner,
        plan: &Plan,
        (write, waited): (bool, bool),
        skip: usize,
        earlier: usize,
    ) -> Self {
        Run {
            candidates: inner.retry.candidates(write, skip),
            deadline: crate::send::deadline::current(),
            traced: telemetry::route_span(|| plan.reason().code()),
            primary: plan.snapshot_primary().unwrap_or(NodeId::new(0)),
            now: if waited { Instant::now() } else { plan.made() },
            tried: earlier,
            last_err: None,
        }
    }

    /// Records the attempt just started on `node` (the plan's primary or not) for `sql` in the
    /// statement's span, if traced, and its debug event.
    #[inline]
    fn seen(&self, node: &Node, on_primary: bool, plan: &Plan, sql: &str) {
        telemetry::attempt_span(self.traced, || telemetry::Attempt {
            labels: node.labels(),
            node: node.name(),
            on_primary,
            tried: self.tried,
            reason: plan.reason(),
            write: plan.access() == Access::Write,
            sql,
        });
    }

    /// Where and when the attempt that just failed ran.
    fn tried_at(&self, last: bool, earlier: usize) -> Tried {
        Tried { now: self.now, last, earlier, tried: self.tried, deadline: self.deadline }
    }

    /// The error when no candidate answered: the last one's, else why each was passed over.
    fn none_left(self, inner: &Inner, plan: &Plan) -> DbErr {
        match self.last_err {
            Some(e) => *e,
            None => self.candidates.none_left(&inner.nodes, plan),
        }
    }
}
