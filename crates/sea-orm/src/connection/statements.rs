//! The statement paths every routed handle shares: plan, then [`attempt`](Inner::attempt).

use futures_util::future::Either;
use sea_orm::{DbErr, ExecResult, QueryResult, Statement};

use super::attempt::{Execute, QueryAll, QueryOne, Stream, Unprepared};
use super::inner::{Ctx, Inner};
use crate::route::Why;

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

impl Inner {
    pub(crate) fn execute_in<'a>(
        &'a self,
        stmt: Statement,
        ctx: Ctx<'a>,
    ) -> impl std::future::Future<Output = Result<ExecResult, DbErr>> + Send + 'a {
        let kind = self.classify(&stmt.sql);
        let span = self.statement_span(kind.operation, &ctx);
        let mut work = Execute(stmt);
        async move {
            // `execute` returns no rows: it always runs on the primary, whatever the SQL.
            let access = kind.classification.access();
            let plan = self.plan_on_primary(access, Why::Execute)?.with_operation(kind.operation);
            let scope = self.scope_of(&ctx);
            Ok(self.attempt(&plan, &mut work, &scope).await?.0)
        }
        .in_span(span)
    }

    pub(crate) fn execute_unprepared_in<'a>(
        &'a self,
        sql: &'a str,
        ctx: Ctx<'a>,
    ) -> impl std::future::Future<Output = Result<ExecResult, DbErr>> + Send + 'a {
        let kind = self.classify(sql);
        let span = self.statement_span(kind.operation, &ctx);
        async move {
            // Raw SQL with no rows to return: never worth a replica, and often DDL or SET. What is
            // not provably a read is a write (recorded in the scope; never retried).
            let access = kind.classification.access();
            let plan = self
                .plan_on_primary(access, Why::ExecuteUnprepared)?
                .with_operation(kind.operation);
            let scope = self.scope_of(&ctx);
            Ok(self.attempt(&plan, &mut Unprepared(sql), &scope).await?.0)
        }
        .in_span(span)
    }

    pub(crate) fn query_one_in<'a>(
        &'a self,
        stmt: Statement,
        ctx: Ctx<'a>,
    ) -> impl std::future::Future<Output = Result<Option<QueryResult>, DbErr>> + Send + 'a {
        let kind = self.classify(&stmt.sql);
        let span = self.statement_span(kind.operation, &ctx);
        let mut work = QueryOne(stmt);
        async move {
            let scope = self.scope_of(&ctx);
            let plan = self
                .planned(&scope, kind.reads(), |done| {
                    self.plan(&work.0.sql, kind, &ctx, &scope, done)
                })
                .await?;
            let (out, node) = self.attempt(&plan, &mut work, &scope).await?;
            self.saw(&scope, &ctx, &plan, node, true);
            Ok(out)
        }
        .in_span(span)
    }

    pub(crate) fn query_all_in<'a>(
        &'a self,
        stmt: Statement,
        ctx: Ctx<'a>,
    ) -> impl std::future::Future<Output = Result<Vec<QueryResult>, DbErr>> + Send + 'a {
        let kind = self.classify(&stmt.sql);
        let span = self.statement_span(kind.operation, &ctx);
        let mut work = QueryAll(stmt);
        async move {
            let scope = self.scope_of(&ctx);
            let plan = self
                .planned(&scope, kind.reads(), |done| {
                    self.plan(&work.0.sql, kind, &ctx, &scope, done)
                })
                .await?;
            let (out, node) = self.attempt(&plan, &mut work, &scope).await?;
            self.saw(&scope, &ctx, &plan, node, true);
            Ok(out)
        }
        .in_span(span)
    }

    pub(crate) fn stream_in<'a>(
        &'a self,
        stmt: Statement,
        ctx: Ctx<'a>,
    ) -> impl std::future::Future<Output = Result<crate::RoutedStream, DbErr>> + Send + 'a {
        let kind = self.classify(&stmt.sql);
        let span = self.statement_span(kind.operation, &ctx);
        let mut work = Stream(stmt);
        async move {
            let scope = self.scope_of(&ctx);
            let plan = self
                .planned(&scope, kind.reads(), |done| {
                    self.plan(&work.0.sql, kind, &ctx, &scope, done)
                })
                .await?;
            let (out, node) = self.attempt(&plan, &mut work, &scope).await?;
            // Its rows are still to come: what it reads is bounded only by a later read.
            self.saw(&scope, &ctx, &plan, node, false);
            Ok(out)
        }
        .in_span(span)
    }
}
