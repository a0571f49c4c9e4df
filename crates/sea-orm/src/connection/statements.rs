//! The statement path every routed handle shares, one for every kind of statement: classify,
//! plan ([`planned`](super::attempt::planned), or the primary for `execute*`), run the plan
//! ([`attempt`](super::attempt::attempt)), and note what a read saw (monotonic reads).

use futures_util::future::Either;
use sea_orm::DbErr;

use super::attempt::Work;
use super::inner::Inner;
use crate::routing::ctx::Ctx;

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
    let span = super::attempt::statement_span(&inner.planner, kind.operation, &ctx);
    async move {
        let scope = ctx.scope();
        let plan = match W::ON_PRIMARY {
            Some(why) => {
                let access = kind.classification.access();
                inner.routing.plan_on_primary(access, why)?.with_operation(kind.operation)
            }
            None => {
                let ask = super::attempt::Ask::Statement(work.sql(), kind);
                super::attempt::planned(inner, (&ctx, &scope), kind.reads(), ask).await?
            }
        };
        let (out, node) = super::attempt::attempt(inner, &plan, &mut work, &scope).await?;
        if W::ON_PRIMARY.is_none() {
            // A read whose effect comes after its attempt (a stream: its rows are still to
            // come) is bounded only by a later read.
            let ran = plan.ran(node, ctx.keeps_monotonic(inner.planner.policy()), !W::INERT);
            inner.causality.saw(&inner.routing, &scope, ran);
        }
        Ok(out)
    }
    .in_span(span)
}
