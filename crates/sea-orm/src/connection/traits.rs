//! SeaORM's traits for every routed handle — the connection itself, a
//! [`Session`](crate::Session), a per-call [`Routed`](crate::Routed) view — as thin calls into
//! the statement and transaction paths; and the ways out to the primary's own connection.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DatabaseExecutor, DatabaseTransaction,
    DbBackend, DbErr, ExecResult, IntoDatabaseExecutor, IsolationLevel, QueryResult, Statement,
    StreamTrait, TransactionError, TransactionOptions, TransactionTrait,
};

use super::inner::RoutedConnection;
use crate::routing::ctx::Ctx;

/// A handle SeaORM can run statements on through the router: the connection itself, a
/// [`Session`](crate::Session), or a per-call view ([`Routed`](crate::Routed)).
pub(crate) trait Handle {
    fn db(&self) -> &RoutedConnection;
    fn ctx(&self) -> Ctx<'_>;
}

impl Handle for RoutedConnection {
    fn db(&self) -> &RoutedConnection {
        self
    }
    fn ctx(&self) -> Ctx<'_> {
        Ctx::default()
    }
}

/// `ConnectionTrait` and `StreamTrait` for a [`Handle`].
macro_rules! routed_connection {
    ([$($lt:lifetime)?] $ty:ty) => {
        #[async_trait::async_trait]
        impl<$($lt)?> ConnectionTrait for $ty {
            fn get_database_backend(&self) -> DbBackend {
                self.db().inner.backend
            }

            // Not `async fn`s: each boxes the statement's own future, with no wrapper future
            // around it to poll through.
            fn execute_raw<'life0, 'async_trait>(
                &'life0 self,
                stmt: Statement,
            ) -> Pin<Box<dyn Future<Output = Result<ExecResult, DbErr>> + Send + 'async_trait>>
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(crate::connection::statements::statement_in(&self.db().inner, crate::connection::attempt::Execute(stmt), self.ctx()))
            }

            fn execute_unprepared<'life0, 'life1, 'async_trait>(
                &'life0 self,
                sql: &'life1 str,
            ) -> Pin<Box<dyn Future<Output = Result<ExecResult, DbErr>> + Send + 'async_trait>>
            where
                'life0: 'async_trait,
                'life1: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(crate::connection::statements::statement_in(&self.db().inner, crate::connection::attempt::Unprepared(sql), self.ctx()))
            }

            fn query_one_raw<'life0, 'async_trait>(
                &'life0 self,
                stmt: Statement,
            ) -> Pin<
                Box<dyn Future<Output = Result<Option<QueryResult>, DbErr>> + Send + 'async_trait>,
            >
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(crate::connection::statements::statement_in(&self.db().inner, crate::connection::attempt::QueryOne(stmt), self.ctx()))
            }

            fn query_all_raw<'life0, 'async_trait>(
                &'life0 self,
                stmt: Statement,
            ) -> Pin<
                Box<dyn Future<Output = Result<Vec<QueryResult>, DbErr>> + Send + 'async_trait>,
            >
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(crate::connection::statements::statement_in(&self.db().inner, crate::connection::attempt::QueryAll(stmt), self.ctx()))
            }

            fn support_returning(&self) -> bool {
                self.db().inner.primary_conn().support_returning()
            }
        }

        impl<$($lt)?> StreamTrait for $ty {
            type Stream<'a> = crate::connection::stream::RoutedStream where Self: 'a;

            fn get_database_backend(&self) -> DbBackend {
                self.db().inner.backend
            }

            fn stream_raw<'a>(
                &'a self,
                stmt: Statement,
            ) -> Pin<Box<dyn Future<Output = Result<Self::Stream<'a>, DbErr>> + 'a + Send>> {
                Box::pin(crate::connection::statements::statement_in(&self.db().inner, crate::connection::attempt::Stream(stmt), self.ctx()))
            }
        }
    };
}

/// `TransactionTrait` for a [`Handle`].
macro_rules! routed_transactions {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl TransactionTrait for $ty {
            type Transaction = DatabaseTransaction;

            async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
                let o = TransactionOptions::default();
                Ok(crate::connection::transactions::begin_in(
                    &self.db().inner,
                    None,
                    None,
                    o,
                    &self.ctx(),
                    true,
                )
                .await?
                .0)
            }

            async fn begin_with_config(
                &self,
                isolation_level: Option<IsolationLevel>,
                access_mode: Option<AccessMode>,
            ) -> Result<DatabaseTransaction, DbErr> {
                let o = TransactionOptions::default();
                let ctx = self.ctx();
                Ok(crate::connection::transactions::begin_in(
                    &self.db().inner,
                    isolation_level,
                    access_mode,
                    o,
                    &ctx,
                    true,
                )
                .await?
                .0)
            }

            async fn begin_with_options(
                &self,
                options: TransactionOptions,
            ) -> Result<DatabaseTransaction, DbErr> {
                let (i, a) = (options.isolation_level, options.access_mode);
                Ok(crate::connection::transactions::begin_in(
                    &self.db().inner,
                    i,
                    a,
                    options,
                    &self.ctx(),
                    true,
                )
                .await?
                .0)
            }

            async fn transaction<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
            where
                F: for<'c> FnOnce(
                        &'c DatabaseTransaction,
                    )
                        -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
                    + Send,
                T: Send,
                E: fmt::Display + fmt::Debug + Send,
            {
                crate::connection::transactions::transaction_in(
                    &self.db().inner,
                    callback,
                    None,
                    None,
                    &self.ctx(),
                )
                .await
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
                    )
                        -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
                    + Send,
                T: Send,
                E: fmt::Display + fmt::Debug + Send,
            {
                let ctx = self.ctx();
                crate::connection::transactions::transaction_in(
                    &self.db().inner,
                    callback,
                    isolation_level,
                    access_mode,
                    &ctx,
                )
                .await
            }
        }
    };
}

pub(crate) use {routed_connection, routed_transactions};

routed_connection!([] RoutedConnection);
routed_transactions!(RoutedConnection);

/// The primary's own connection, lent out unrouted ([`RoutedConnection::primary`]): what runs
/// through it is unseen by the router, so the caller's read-your-writes scope is made
/// conservative first, as `begin()` does.
pub(crate) fn lend_primary(db: &RoutedConnection) -> &DatabaseConnection {
    let inner = &db.inner;
    inner.causality.mark_unseen_writes(&inner.writable(), &Ctx::default().scope());
    db.inner.primary_conn()
}

/// Migrations and other APIs that take a `DatabaseExecutor` get the primary. What runs through
/// it escapes the router, so the caller's read-your-writes scope becomes conservative (see
/// [`RoutedConnection::primary`]).
impl<'c> IntoDatabaseExecutor<'c> for &'c RoutedConnection {
    fn into_database_executor(self) -> DatabaseExecutor<'c> {
        DatabaseExecutor::Connection(lend_primary(self))
    }
}

/// `DatabaseExecutor::from(&db)`, as for a `DatabaseConnection`: the primary, with the caller's
/// read-your-writes scope made conservative.
impl<'c> From<&'c RoutedConnection> for DatabaseExecutor<'c> {
    fn from(db: &'c RoutedConnection) -> DatabaseExecutor<'c> {
        db.into_database_executor()
    }
}
