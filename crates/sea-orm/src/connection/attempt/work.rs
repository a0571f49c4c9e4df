//! What one attempt runs: a [`Work`] (a query, an `execute`, a stream, a `BEGIN`), the forms
//! it can run in (on SeaORM's connection, straight on the sqlx pool, in a write's second
//! step, side by side with a hedge), and what its success means for the scope ([`Wrote`]).

use std::future::Future;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, ExecResult, QueryResult,
    Statement, StreamTrait, TransactionOptions, TransactionTrait,
};

use crate::observe::hooks::Call;
use crate::send::failure;
use crate::send::sending::{self, Taken};

/// What a write's success means for the caller's read-your-writes scope.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(in crate::connection) enum Wrote {
    /// Read the primary's position and record it (the write is done).
    Capture,
    /// The writes happen later, out of the router's sight (a streamed `RETURNING`, a
    /// transaction committed through SeaORM's own handle): the scope's position is pending.
    Unseen,
    /// Nothing yet: the caller records the outcome itself (a transaction's commit).
    Later,
}

/// One thing to run on a node, tried along a plan's candidates.
pub(in crate::connection) trait Work: Send {
    /// What a successful attempt returns.
    type Output: Send;
    /// Runs on the node's writable pool whatever the plan's access (`execute`: no read-only
    /// session).
    const WRITER: bool = false;
    /// Planned on the primary, for this reason, whatever its SQL (`execute*`: no rows come
    /// back, so a replica is never worth it); `None`: planned from its SQL, scope and
    /// consistency (what returns rows).
    const ON_PRIMARY: Option<crate::cluster::Why> = None;
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
    /// hooks ([`hooks`](crate::observe::hooks)); `None` with `send`.
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
pub(in crate::connection) struct QueryOne(pub(in crate::connection) Statement);
/// `query_all`.
pub(in crate::connection) struct QueryAll(pub(in crate::connection) Statement);
/// `execute`.
pub(in crate::connection) struct Execute(pub(in crate::connection) Statement);
/// `execute_unprepared`.
pub(in crate::connection) struct Unprepared<'s>(pub(in crate::connection) &'s str);
/// `stream`.
pub(in crate::connection) struct Stream(pub(in crate::connection) Statement);
/// `BEGIN`. `unseen`: the caller commits through SeaORM's own handle, out of sight.
pub(in crate::connection) struct Begin {
    pub(in crate::connection) options: TransactionOptions,
    pub(in crate::connection) unseen: bool,
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
    // `execute` returns no rows: it always runs on the primary, whatever the SQL.
    const ON_PRIMARY: Option<crate::cluster::Why> = Some(crate::cluster::Why::Execute);
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
    // Raw SQL with no rows to return: never worth a replica, and often DDL or SET. What is
    // not provably a read is a write (recorded in the scope; never retried).
    const ON_PRIMARY: Option<crate::cluster::Why> = Some(crate::cluster::Why::ExecuteUnprepared);
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
    type Output = crate::connection::stream::RoutedStream;
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
        async move { pool.stream_raw(stmt).await.map(crate::connection::stream::RoutedStream::unread) }
    }
    fn read<'a>(
        &'a mut self,
        pool: &'a DatabaseConnection,
        last: bool,
    ) -> impl Future<Output = Result<Self::Output, DbErr>> + Send + 'a {
        let stmt = statement(&mut self.0, last);
        async move {
            crate::connection::stream::RoutedStream::read_ahead(pool.stream_raw(stmt).await?).await
        }
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
