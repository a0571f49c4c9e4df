//! Transactions: planned (a read-only one may use a replica that has the caller's writes), begun
//! through the one [`attempt`](super::attempt::attempt) loop, and ended so that a committed
//! read-write transaction records its position in the caller's scope. The closure forms begin,
//! run the callback, and commit or roll back exactly as SeaORM's own do.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use rwsplit_core::Access;
use sea_orm::{
    AccessMode, DatabaseTransaction, DbErr, IsolationLevel, TransactionError, TransactionOptions,
};

use tracing::Instrument;

use super::attempt::Begin;
use super::inner::Inner;
use crate::consistency::Outcome;
use crate::routing::ctx::Ctx;

/// Begins a transaction as configured; returns it and, for a read-write one, the node (its
/// commit is a write to record). `unseen`: the caller commits it through SeaORM's own
/// `DatabaseTransaction`, out of the router's sight, so the scope's position becomes
/// pending at once.
pub(crate) async fn begin_in(
    inner: &Inner,
    isolation: Option<IsolationLevel>,
    access: Option<AccessMode>,
    mut options: TransactionOptions,
    ctx: &Ctx<'_>,
    unseen: bool,
) -> Result<(DatabaseTransaction, Option<rwsplit_core::NodeId>), DbErr> {
    options.isolation_level = isolation;
    options.access_mode = access;
    let span = super::statements::statement_span(inner, "BEGIN", ctx);
    async move {
        let scope = ctx.scope();
        let read_only = access == Some(AccessMode::ReadOnly);
        let ask = super::statements::Ask::Begin(isolation, access);
        let plan = super::statements::planned(inner, (ctx, &scope), read_only, ask).await?;
        let writes = plan.access() == Access::Write;
        let (txn, node) =
            super::attempt::attempt(inner, &plan, &mut Begin { options, unseen }, &scope).await?;
        // A read-only transaction reads until it ends, unseen: bounded by a later read.
        let ran = plan.ran(node, ctx.keeps_monotonic(&inner.policy), false);
        inner.causality.saw(&inner.routing, &scope, ran);
        Ok((txn, writes.then_some(node)))
    }
    .instrument(span)
    .await
}

/// Commits on `Ok`, rolls back on `Err`; a committed transaction on the primary records its
/// position in the caller's scope (its commit is when the writes became visible).
pub(crate) async fn end_transaction<T, E>(
    inner: &Inner,
    txn: DatabaseTransaction,
    result: Result<T, E>,
    node: Option<rwsplit_core::NodeId>,
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
        let outcome = Outcome::of(&r);
        let (scope, writable) = (ctx.scope(), inner.writable());
        let spawn = || inner.background();
        let ended = inner.causality.after_transaction(
            &inner.routing,
            &writable,
            node,
            &scope,
            outcome,
            spawn,
        );
        ended.await;
    }
    r
}

/// The closure form of [`TransactionTrait::transaction_with_config`]: begin, run, end.
///
/// [`TransactionTrait::transaction_with_config`]: sea_orm::TransactionTrait::transaction_with_config
pub(crate) async fn transaction_in<F, T, E>(
    inner: &Inner,
    callback: F,
    isolation: Option<IsolationLevel>,
    access: Option<AccessMode>,
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
    let options = TransactionOptions::default();
    let (txn, node) = begin_in(inner, isolation, access, options, ctx, false)
        .await
        .map_err(TransactionError::Connection)?;
    let result = callback(&txn).await;
    end_transaction(inner, txn, result, node, ctx).await
}
