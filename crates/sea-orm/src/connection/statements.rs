//! The statement path every routed handle shares, one for every kind of statement: classify,
//! plan ([`planned`](super::attempt::planned), or the primary for `execute*`), run the plan
//! ([`attempt`](super::attempt::attempt)), and note what a read saw (monotonic reads).

use futures_util::future::Either;
use sea_orm::{DbErr, ExecResult, QueryResult, Statement};

use super::attempt::{Execute, QueryAll, QueryOne, Stream, Unprepared, Work};
use super::inner::Inner;
use crate::cluster::Why;
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

pub(crate) fn execute_in<'a>(
    inner: &'a Inner,
    stmt: Statement,
    ctx: Ctx<'a>,
) -> impl std::future::Future<Output = Result<ExecResult, DbErr>> + Send + 'a {
    // `execute` returns no rows: it always runs on the primary, whatever the SQL.
    statement_in(inner, Execute(stmt), ctx, Path::Primary(Why::Execute))
}

pub(crate) fn execute_unprepared_in<'a>(
    inner: &'a Inner,
    sql: &'a str,
    ctx: Ctx<'a>,
) -> impl std::future::Future<Output = Result<ExecResult, DbErr>> + Send + 'a {
    // Raw SQL with no rows to return: never worth a replica, and often DDL or SET. What is
    // not provably a read is a write (recorded in the scope; never retried).
    statement_in(inner, Unprepared(sql), ctx, Path::Primary(Why::ExecuteUnprepared))
}

pub(crate) fn query_one_in<'a>(
    inner: &'a Inner,
    stmt: Statement,
    ctx: Ctx<'a>,
) -> impl std::future::Future<Output = Result<Option<QueryResult>, DbErr>> + Send + 'a {
    statement_in(inner, QueryOne(stmt), ctx, Path::Planned)
}

pub(crate) fn query_all_in<'a>(
    inner: &'a Inner,
    stmt: Statement,
    ctx: Ctx<'a>,
) -> impl std::future::Future<Output = Result<Vec<QueryResult>, DbErr>> + Send + 'a {
    statement_in(inner, QueryAll(stmt), ctx, Path::Planned)
}

pub(crate) fn stream_in<'a>(
    inner: &'a Inner,
    stmt: Statement,
    ctx: Ctx<'a>,
) -> impl std::future::Future<Output = Result<crate::connection::stream::RoutedStream, DbErr>> + Send + 'a
{
    statement_in(inner, Stream(stmt), ctx, Path::Planned)
}

/// The one statement path (see the module docs), in the statement's span.
fn statement_in<'a, W: Work + Sync + 'a>(
    inner: &'a Inner,
    mut work: W,
    ctx: Ctx<'a>,
    path: Path,
) -> impl std::future::Future<Output = Result<W::Output, DbErr>> + Send + 'a {
    let kind = inner.classified.get(work.sql());
    let span = super::attempt::statement_span(inner, kind.operation, &ctx);
    async move {
        let scope = ctx.scope();
        let plan = match path {
            Path::Primary(why) => {
                let access = kind.classification.access();
                inner.routing.plan_on_primary(access, why)?.with_operation(kind.operation)
            }
            Path::Planned => {
                let sql = work.sql();
                let planner = |done, now| inner.plan(sql, kind, &ctx, &scope, done, now);
                super::attempt::planned(inner, &scope, kind.reads(), planner).await?
            }
        };
        let (out, node) = super::attempt::attempt(inner, &plan, &mut work, &scope).await?;
        if let Path::Planned = path {
            // A read whose effect comes after its attempt (a stream: its rows are still to
            // come) is bounded only by a later read.
            let ran = plan.ran(node, ctx.keeps_monotonic(inner.planner.policy()), !W::INERT);
            inner.causality.saw(&inner.routing, &scope, ran);
        }
        Ok(out)
    }
    .in_span(span)
}

/// How a statement is planned.
#[derive(Clone, Copy)]
enum Path {
    /// By the planner, from its SQL, scope and consistency (what returns rows).
    Planned,
    /// On the primary, for this reason (`execute*`: no rows come back, so a replica is never
    /// worth it).
    Primary(Why),
}
