//! A streamed query's rows: [`RoutedStream`].

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use sea_orm::{DbErr, QueryResult, QueryStream};

/// The rows of a query streamed through a [`RoutedConnection`](crate::RoutedConnection) or a
/// [`Session`](crate::Session) (SeaORM's `StreamTrait::stream_raw`, and so `.stream(&db)` on a
/// `Select`): SeaORM's `QueryStream`, with the first row of a read already fetched.
///
/// A streamed statement runs when its stream is first read, which for SeaORM's own
/// `QueryStream` is after the call that made it has returned. A read's first row is fetched
/// before the stream is handed out, so that what goes wrong at the start is the router's to
/// handle like any read's failure: a replica that refuses it because it writes (a user
/// function or view the text does not show) has it run once on the primary instead (see
/// [`OnReplicaRefusal`](crate::OnReplicaRefusal)), and a replica that fails or is too slow has
/// it tried on the next node, within the read's deadline. An error later in the stream is the
/// caller's, as with SeaORM. A streamed write (an `INSERT … RETURNING` streamed) is not read
/// ahead: it runs when the caller reads it, on the primary.
///
/// ```
/// use futures_util::TryStreamExt;
/// use rwsplit_sea_orm::RoutedConnection;
/// use sea_orm::{DbBackend, MockDatabase, Statement, StreamTrait};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rows = [[("n", sea_orm::Value::from(1_i32))].into_iter().collect::<std::collections::BTreeMap<_, _>>()];
/// let mock = MockDatabase::new(DbBackend::Postgres).append_query_results([rows]).into_connection();
/// let db = RoutedConnection::from_connections(mock, vec![])?;
/// let sql = Statement::from_string(DbBackend::Postgres, "SELECT 1 AS n");
/// let all: Vec<_> = db.stream_raw(sql).await?.try_collect().await?;
/// assert_eq!(all.len(), 1);
/// # Ok(()) }
/// ```
pub struct RoutedStream {
    first: First,
    rest: QueryStream,
}

/// What was fetched of a stream before it was handed out.
enum First {
    /// Nothing: the stream is read from its start.
    Unread,
    /// Its first item, not yet handed to the caller.
    Row(QueryResult),
    /// It had no row: it is over.
    End,
}

impl RoutedStream {
    /// A stream nothing was fetched from.
    pub(crate) fn unread(rest: QueryStream) -> RoutedStream {
        RoutedStream { first: First::Unread, rest }
    }

    /// Fetches `rest`'s first item: an error is the attempt's (the stream is dropped).
    pub(crate) async fn read_ahead(mut rest: QueryStream) -> Result<RoutedStream, DbErr> {
        use futures_util::StreamExt;
        let first = match rest.next().await {
            Some(Ok(row)) => First::Row(row),
            Some(Err(e)) => return Err(e),
            None => First::End,
        };
        Ok(RoutedStream { first, rest })
    }
}

impl std::fmt::Debug for RoutedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let first = match self.first {
            First::Unread => "unread",
            First::Row(_) => "first row fetched",
            First::End => "ended",
        };
        f.debug_struct("RoutedStream").field("first", &first).finish_non_exhaustive()
    }
}

impl Stream for RoutedStream {
    type Item = Result<QueryResult, DbErr>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match std::mem::replace(&mut this.first, First::Unread) {
            First::Row(row) => Poll::Ready(Some(Ok(row))),
            First::End => {
                // Not polled again once it ended: stays ended.
                this.first = First::End;
                Poll::Ready(None)
            }
            First::Unread => Pin::new(&mut this.rest).poll_next(cx),
        }
    }
}
