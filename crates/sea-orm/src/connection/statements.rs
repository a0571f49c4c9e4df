//! The statement path every routed handle shares, one for every kind of statement: classify,
//! plan ([`planned`], or the primary for `execute*`), run the plan
//! ([`attempt`](super::attempt::attempt)), and note what a read saw (monotonic reads).
//!
//! Before the attempts come the I/O steps a plan asks for ([`planned`]: waiting for the scope's
//! position captures, reading the primary's position — read-your-writes' steps, each done by
//! `Causality` with the views it asks through), the plan's effects applied once, and a read
//! planned again while a switchover leaves no single primary ([`settled_plan`]).

use std::time::Instant;

use futures_util::future::Either;
use sea_orm::{AccessMode, DbErr, IsolationLevel};

use super::attempt::Work;
use super::inner::Inner;
use crate::cluster::{Plan, Routing};
use crate::consistency::Causality;
use crate::nodes::position::Writable;
use crate::observe::counters::Counters;
use crate::routing::classified::Entry;
use crate::routing::ctx::{Ctx, Scope};
use crate::routing::plan::{Around, Done, Input, Io, Planned};
use crate::send::deadline;

/// Runs a statement's future in its span — unless nothing listens (the span is disabled), and
/// then without the wrapper, which would otherwise enter and leave a span on every poll.
trait InSpan: std::future::Future + Sized {
    fn in_span(self, span: tracing::Span) -> Either<Self, tracing::instrument::Instrumented<Self>> {
        if span.is_disabled() {
            Either::Left(self)
        } else {
            Either::Right(tracing::Instrument::instrument(self, span))
        }
    }
}

impl<F: std::future::Future> InSpan for F {}

/// The one statement path (see the module docs), in the statement's span: `work` (a
/// [`QueryOne`](super::attempt::QueryOne), an [`Execute`](super::attempt::Execute), …) is
/// planned on the primary if its kind says so ([`Work::ON_PRIMARY`]), else from its SQL.
pub(super) fn statement_in<'a, W: Work + Sync + 'a>(
    inner: &'a Inner,
    mut work: W,
    ctx: Ctx<'a>,
) -> impl std::future::Future<Output = Result<W::Output, DbErr>> + Send + 'a {
    let kind = inner.classified.get(work.sql());
    let span = statement_span(inner, kind.operation, &ctx);
    async move {
        let scope = ctx.scope();
        let plan = match W::ON_PRIMARY {
            Some(why) => {
                let access = kind.classification.access();
                inner.routing.plan_on_primary(access, why)?.with_operation(kind.operation)
            }
            None => {
                let ask = Ask::Statement(work.sql(), kind);
                planned(inner, (&ctx, &scope), kind.reads(), ask).await?
            }
        };
        let (out, node) = super::attempt::attempt(inner, &plan, &mut work, &scope).await?;
        if W::ON_PRIMARY.is_none() {
            // A read whose effect comes after its attempt (a stream: its rows are still to
            // come) is bounded only by a later read.
            let ran = plan.ran(node, ctx.keeps_monotonic(&inner.policy), !W::INERT);
            inner.causality.saw(&inner.routing, &scope, ran);
        }
        Ok(out)
    }
    .in_span(span)
}

/// The span a statement of `operation` by a call with `ctx` runs in
/// ([`telemetry::statement_span`](crate::observe::telemetry::statement_span)): its system and
/// consistency level's names, asked only if a subscriber listens.
pub(super) fn statement_span(
    inner: &Inner,
    operation: &'static str,
    ctx: &Ctx<'_>,
) -> tracing::Span {
    let named = || {
        let level = ctx.consistency.unwrap_or(&inner.policy.consistency);
        (inner.system_name, level.name())
    };
    crate::observe::telemetry::statement_span(operation, named)
}

/// Whether `e` says the monitor sees no single primary (none, or two): a topology about to
/// settle in a switchover.
fn unsettled(e: &DbErr) -> bool {
    matches!(
        crate::routing_error::routing_error(e),
        Some(
            crate::routing_error::RoutingError::NoPrimary { .. }
                | crate::routing_error::RoutingError::SplitBrain { .. }
        )
    )
}

/// What is planned: a statement (its SQL and classification), or a transaction's `BEGIN` (its
/// isolation level and access mode).
#[derive(Clone, Copy)]
pub(super) enum Ask<'s> {
    Statement(&'s str, Entry),
    Begin(Option<IsolationLevel>, Option<AccessMode>),
}

/// The planner's answer for `ask`, by a call with `ctx` in `scope`, given the I/O steps `done`
/// so far, as of `now`: it reads the routing view and read-your-writes.
fn plan(
    inner: &Inner,
    ask: Ask<'_>,
    (ctx, scope): (&Ctx<'_>, &Scope),
    done: Done,
    now: Instant,
) -> Result<Planned, DbErr> {
    let around =
        Around { routing: &inner.routing, causality: &inner.causality, monitored: inner.monitored };
    let input = Input { ctx, scope, around, done, now };
    match ask {
        Ask::Statement(sql, kind) => inner.planner.plan(sql, kind, &input),
        Ask::Begin(isolation, access) => inner.planner.plan_transaction(isolation, access, &input),
    }
}

/// The plan for `ask` (a call with `ctx` in `scope`), after the I/O steps the planner asks for
/// first, done here one at a time (each noted in the [`Done`] it plans with next). Most plans
/// ask for none.
///
/// A read (`read`) that cannot be planned because the monitor sees no primary or two (a
/// switchover's moment between the old primary going and the promoted one being seen) is
/// planned again as each new topology is published, until the caller's deadline or the
/// time the monitor takes to reach a verdict on a primary: the topology settles and the
/// read goes where it now can, instead of failing.
pub(super) async fn planned(
    inner: &Inner,
    (ctx, scope): (&Ctx<'_>, &Scope),
    read: bool,
    ask: Ask<'_>,
) -> Result<Plan, DbErr> {
    let mut done = Done::default();
    loop {
        let now = Instant::now();
        inner.routing.note_use(now);
        match plan(inner, ask, (ctx, scope), done, now)
            .map(|p| taken((&inner.routing, &inner.counters), p, now))
        {
            Ok(Ok(plan)) => return Ok(plan),
            // Boxed: most reads do no I/O before their attempts.
            Ok(Err(io)) => {
                let writable = inner.writable();
                Box::pin(plan_step(
                    &inner.causality,
                    &inner.routing,
                    writable,
                    io,
                    scope,
                    &mut done,
                ))
                .await;
            }
            Err(e) if read && inner.monitored && unsettled(&e) => {
                return Box::pin(settled_plan(inner, (ctx, scope), e, done, ask)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Does one of a plan's I/O steps for `scope` ([`Io`]: all of them read-your-writes') with
/// `causality`, asking `routing` for the monitor's samples and reading positions on
/// `writable`, and notes what it found in `done`, for the next plan.
async fn plan_step(
    causality: &Causality,
    routing: &Routing,
    writable: Writable<'_>,
    io: Io,
    scope: &Scope,
    done: &mut Done,
) {
    match io {
        Io::Settle(max) => {
            causality.settled(scope, max).await;
            done.settled = true;
        }
        Io::Floor(max) => {
            causality.await_floor(routing, scope, max).await;
            done.floored = true;
        }
        Io::PrimaryFloor { at } => {
            causality.floor_on_primary(routing, &writable, scope, at).await;
            done.floored = true;
        }
        Io::Capture { epoch, at } => {
            done.captured = Some(causality.settle(routing, &writable, scope, at, epoch).await);
        }
    }
}

/// What the executor takes of a planner's answer: a plan, its effects applied once (it is the
/// one that runs: its wants to `routing`, its counts to `counters`), or the I/O step to do
/// first, its wants sent before it (the step may wait on them).
fn taken(
    (routing, counters): (&Routing, &Counters),
    planned: Planned,
    now: Instant,
) -> Result<Plan, Io> {
    match planned {
        Planned::Ready(plan, None) => Ok(plan),
        Planned::Ready(plan, Some(effects)) => {
            routing.want(&effects, now);
            effects.count(counters);
            Ok(plan)
        }
        Planned::Io(io, effects) => {
            routing.want(&effects, now);
            Err(io)
        }
    }
}

/// [`planned`] once the topology had no single primary (`first` says how):
/// planned again at each published topology, until it settles or time is up (then `first`,
/// or the latest such error).
async fn settled_plan(
    inner: &Inner,
    (ctx, scope): (&Ctx<'_>, &Scope),
    first: DbErr,
    mut done: Done,
    ask: Ask<'_>,
) -> Result<Plan, DbErr> {
    let verdict = deadline::verdict(&inner.policy.monitor);
    let until = deadline::or_deadline(tokio::time::Instant::now() + deadline::cap(verdict));
    let mut last = first;
    tracing::debug!(target: "rwsplit", error = %last, "no single primary: waiting for the topology to settle");
    loop {
        // Made before planning again: a topology published in between still wakes it.
        let published = inner.routing.published();
        let mut published = std::pin::pin!(published);
        published.as_mut().enable();
        let now = Instant::now();
        match plan(inner, ask, (ctx, scope), done, now)
            .map(|p| taken((&inner.routing, &inner.counters), p, now))
        {
            Ok(Ok(plan)) => return Ok(plan),
            Ok(Err(io)) => {
                let writable = inner.writable();
                plan_step(&inner.causality, &inner.routing, writable, io, scope, &mut done).await;
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
