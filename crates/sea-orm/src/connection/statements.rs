//! The statement paths every routed handle shares: plan, then [`attempt`](RoutedConnection::attempt).

use sea_orm::{DbErr, ExecResult, QueryResult, QueryStream, Statement};
use tracing::Instrument;

use super::attempt::{Execute, QueryAll, QueryOne, Stream, Unprepared};
use super::inner::{Ctx, RoutedConnection};

impl RoutedConnection {
    pub(crate) async fn execute_in(
        &self,
        stmt: Statement,
        ctx: &Ctx<'_>,
    ) -> Result<ExecResult, DbErr> {
        let span = self.statement_span(&stmt.sql, ctx);
        async move {
            // `execute` returns no rows: it always runs on the primary, whatever the SQL.
            let access = self.classify(&stmt.sql).access();
            let plan = self.plan_on_primary(access, "execute")?;
            let scope = self.scope_of(ctx);
            Ok(self.attempt(&plan, Execute(stmt), &scope).await?.0)
        }
        .instrument(span)
        .await
    }

    pub(crate) async fn execute_unprepared_in(
        &self,
        sql: &str,
        ctx: &Ctx<'_>,
    ) -> Result<ExecResult, DbErr> {
        let span = self.statement_span(sql, ctx);
        async move {
            // Raw SQL with no rows to return: never worth a replica, and often DDL or SET. What is
            // not provably a read is a write (recorded in the scope; never retried).
            let access = self.classify(sql).access();
            let plan = self.plan_on_primary(access, "execute_unprepared")?;
            let scope = self.scope_of(ctx);
            Ok(self.attempt(&plan, Unprepared(sql), &scope).await?.0)
        }
        .instrument(span)
        .await
    }

    pub(crate) async fn query_one_in(
        &self,
        stmt: Statement,
        ctx: &Ctx<'_>,
    ) -> Result<Option<QueryResult>, DbErr> {
        let span = self.statement_span(&stmt.sql, ctx);
        async move {
            let scope = self.scope_of(ctx);
            let plan = self.plan(&stmt.sql, ctx, &scope).await?;
            Ok(self.attempt(&plan, QueryOne(stmt), &scope).await?.0)
        }
        .instrument(span)
        .await
    }

    pub(crate) async fn query_all_in(
        &self,
        stmt: Statement,
        ctx: &Ctx<'_>,
    ) -> Result<Vec<QueryResult>, DbErr> {
        let span = self.statement_span(&stmt.sql, ctx);
        async move {
            let scope = self.scope_of(ctx);
            let plan = self.plan(&stmt.sql, ctx, &scope).await?;
            Ok(self.attempt(&plan, QueryAll(stmt), &scope).await?.0)
        }
        .instrument(span)
        .await
    }

    pub(crate) async fn stream_in(
        &self,
        stmt: Statement,
        ctx: &Ctx<'_>,
    ) -> Result<QueryStream, DbErr> {
        let span = self.statement_span(&stmt.sql, ctx);
        async move {
            let scope = self.scope_of(ctx);
            let plan = self.plan(&stmt.sql, ctx, &scope).await?;
            Ok(self.attempt(&plan, Stream(stmt), &scope).await?.0)
        }
        .instrument(span)
        .await
    }
}
