//! Which errors make a read safe and useful to retry on another node, and which count against
//! the node's health: only failures that are the node's (I/O, TLS, protocol, PostgreSQL class 08
//! and 57P01–57P03, MySQL 1053 server shutdown). A pool with no free connection in time is the
//! application's own back-pressure: reported as such, counted in stats, never held against the
//! node (its health is the monitor's, probed on connections of its own).

use sea_orm::DbErr;

/// How a failed statement failed, for the retry decision.
///
/// Connection-class: the node could not be reached, the connection broke, the pool timed out or
/// was closed, the statement deadline passed, or the server said it is shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The node could not be reached or the connection broke: try another node and mark this
    /// one suspect.
    Connection,
    /// No connection of the node's pool came free within the acquire timeout: the application
    /// is saturating its own pool. Try another node for a read; the node is not marked.
    Backpressure,
    /// The adapter gave the attempt up (the caller's deadline or the replica read timeout
    /// passed, or the monitor marked the node down while the read waited). Try another node for
    /// a read; the monitor, not this statement, judges the node.
    GivenUp,
    /// A replica cancelled the read in a recovery conflict (PostgreSQL 40001 on a standby:
    /// replay needed to remove rows the query could still see). Try the next node; this node
    /// is healthy.
    ReplicaRefused,
    /// A replica has no such table (PostgreSQL 42P01, MySQL 1146): a temporary table the
    /// caller's session created on the primary, or a schema change the replica has not replayed
    /// yet. The read moves on (the primary last); the node is healthy.
    NotOnReplica,
    /// A replica refused a statement classified as a read because it writes or locks: it is
    /// read-only (PostgreSQL 25006, MySQL/MariaDB 1290/1792). The classifier was wrong, and
    /// the statement is **not** retried on the primary: it fails with an error saying so, and
    /// is logged at error level (see [`misrouted`]).
    ReadOnly,
    /// Anything else (syntax, constraint, …): the caller gets it unchanged.
    Other,
}

/// Classifies `err` as it came back from a node. `on_replica` says whether that node was a
/// replica: a serialization failure on the primary is the caller's business, not ours.
pub(crate) fn classify(err: &DbErr, on_replica: bool) -> Failure {
    match err {
        DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout) => Failure::Backpressure,
        DbErr::ConnectionAcquire(_) => Failure::Connection,
        #[cfg(any(feature = "postgres", feature = "mysql"))]
        DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e))
        | DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
        | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)) => sqlx_failure(e, on_replica),
        DbErr::Conn(_) => Failure::Connection,
        _ => Failure::Other,
    }
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
fn sqlx_failure(e: &sea_orm::sqlx::Error, on_replica: bool) -> Failure {
    use crate::product::ServerError;
    use sea_orm::sqlx::Error as E;
    match e {
        E::PoolTimedOut => Failure::Backpressure,
        E::Io(_) | E::Tls(_) | E::Protocol(_) | E::PoolClosed | E::WorkerCrashed => {
            Failure::Connection
        }
        // What the server's code means is the product's (`crate::product::server_error`).
        E::Database(db) => match (crate::product::server_error(db.as_ref()), on_replica) {
            // The server is going away or refused the session: the node failed, not the
            // statement.
            (Some(ServerError::GoingAway), _) => Failure::Connection,
            (Some(ServerError::ReadOnly), true) => Failure::ReadOnly,
            (Some(ServerError::Conflict), true) => Failure::ReplicaRefused,
            (Some(ServerError::NoSuchTable), true) => Failure::NotOnReplica,
            _ => Failure::Other,
        },
        _ => Failure::Other,
    }
}

impl Failure {
    /// Whether a read that failed so may be tried again on another node.
    pub(crate) fn retryable(self) -> bool {
        !matches!(self, Failure::Other | Failure::ReadOnly)
    }
}

/// The error for a statement classified as a read that replica `node` refused as a write.
///
/// Why fail rather than re-run it on the primary as a write: the statement reached a replica
/// because the classifier judged it a read, which it is not; re-running it elsewhere would
/// hide the classification bug (the next such statement goes to a replica again, one wasted
/// round trip each time, and a bug report never comes), and a statement refused only at its
/// first write may already have had effects on the replica's session that a second run on
/// the primary would repeat (an advisory lock taken by an earlier function call, a
/// `set_config`, anything a user-defined function does outside the database). The old
/// behaviour — the read-retry path sending it to the primary — ran the write there counted as
/// a read with no read-your-writes position recorded, so the caller's next read could miss it.
/// Failing loudly is the conservative choice: the caller routes the statement explicitly
/// (`/*rwsplit:primary*/`, `Classifier::with_write_functions`, `db.primary()`), and the log
/// line makes the bug visible.
pub(crate) fn misrouted(err: &DbErr, node: &str) -> DbErr {
    tracing::error!(
        target: "rwsplit",
        node = %node,
        error = %err,
        "a statement classified as a read was refused by a read-only replica: it writes or locks, \
         so this is a classification bug; it was not retried on the primary"
    );
    DbErr::Query(sea_orm::RuntimeErr::Internal(format!(
        "rwsplit: the replica {node} refused a statement classified as a read because it writes \
         or locks (read-only): a classification bug, so it was not retried on the primary; \
         route it to the primary (`/*rwsplit:primary*/`, `Classifier::with_write_functions`, \
         `db.primary()`) and please report it: {err}"
    )))
}

/// The error the caller gets for a statement that failed on `node` after `tried` attempts.
///
/// An error the database raised while running the statement (`Failure::Other`: a constraint, a
/// syntax error, a serialization failure on the primary) reaches the caller unchanged, so code
/// matching on SeaORM's error variants and SQLSTATEs keeps working. A failure of the node
/// itself (unreachable, connection broken, timed out, refused by a replica) is wrapped in
/// `DbErr::Conn` naming the node, because which server failed matters and the driver's error
/// does not say; for a write it also says that it was not retried and that, if the connection
/// broke after the statement was sent, it may have been applied.
pub(crate) fn named(err: DbErr, failure: Failure, node: &str, write: bool, tried: usize) -> DbErr {
    if matches!(failure, Failure::Other | Failure::NotOnReplica) {
        return err;
    }
    if failure == Failure::ReadOnly {
        return misrouted(&err, node);
    }
    if failure == Failure::GivenUp && write {
        // Already the adapter's own words, naming the node and saying the outcome is unknown.
        return err;
    }
    let text = if failure == Failure::Backpressure {
        let what = if write { "the write was not sent" } else { "the read was not sent" };
        format!(
            "rwsplit: no free connection in the pool of {node} within the acquire timeout: the \
             application's own pool is exhausted (back-pressure, not a node failure); {what}: {err}"
        )
    } else if write {
        format!(
            "rwsplit: the write to the primary {node} failed: {err}; it was not retried \
             (if the connection broke after the statement was sent, it may have been applied)"
        )
    } else if tried > 1 {
        format!("rwsplit: the read failed on {node}, the last of {tried} nodes tried: {err}")
    } else {
        format!("rwsplit: the read failed on {node}: {err}")
    };
    DbErr::Conn(sea_orm::RuntimeErr::Internal(text))
}

/// The error the caller gets for a write that was not sent to `node` (see
/// [`sending`](crate::sending)): the node stopped being the primary while it waited (already
/// the adapter's words), the pool had no connection in time, or none could be opened.
pub(crate) fn unsent(err: DbErr, failure: Failure, node: &str, tried: usize) -> DbErr {
    match failure {
        Failure::Connection => DbErr::Conn(sea_orm::RuntimeErr::Internal(format!(
            "rwsplit: no connection to the primary {node} could be had: {err}; the write was not \
             sent"
        ))),
        Failure::GivenUp | Failure::Backpressure => named(err, failure, node, true, tried),
        _ => err,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn node_failures_name_the_node_and_database_errors_pass_through() {
        let timeout = || DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout);
        let w = named(timeout(), Failure::Connection, "db1:5432/app", true, 1).to_string();
        assert!(w.contains("db1:5432/app") && w.contains("not retried"), "{w}");
        let r = named(timeout(), Failure::Connection, "db2:5432/app", false, 3).to_string();
        assert!(r.contains("db2:5432/app") && r.contains("3 nodes"), "{r}");
        let other = named(DbErr::RecordNotFound("x".into()), Failure::Other, "db1", true, 1);
        assert!(matches!(other, DbErr::RecordNotFound(_)));
        assert_eq!(
            classify(&named(timeout(), Failure::Connection, "n", false, 1), true),
            Failure::Connection
        );
    }

    #[test]
    fn a_full_pool_is_back_pressure_not_a_node_failure() {
        let timeout = DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout);
        assert_eq!(classify(&timeout, false), Failure::Backpressure);
        assert_eq!(classify(&timeout, true), Failure::Backpressure);
        let sqlx = DbErr::Conn(sea_orm::RuntimeErr::SqlxError(Arc::new(
            sea_orm::sqlx::Error::PoolTimedOut,
        )));
        assert_eq!(classify(&sqlx, false), Failure::Backpressure);
        let w = named(timeout, Failure::Backpressure, "db1:5432/app", true, 1).to_string();
        assert!(w.contains("back-pressure") && w.contains("not sent") && w.contains("db1"), "{w}");
        let io = DbErr::Conn(sea_orm::RuntimeErr::SqlxError(Arc::new(sea_orm::sqlx::Error::Io(
            std::io::Error::other("reset"),
        ))));
        assert_eq!(classify(&io, true), Failure::Connection);
    }
}
