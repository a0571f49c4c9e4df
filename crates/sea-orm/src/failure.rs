//! Which errors make a read safe and useful to retry on another node.

use sea_orm::DbErr;

/// How a failed statement failed, for the retry decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The node could not be reached or the connection broke: try another node and mark this
    /// one suspect.
    Connection,
    /// A replica refused the statement without running it: a write it may not do (PostgreSQL
    /// 25006, MySQL/MariaDB 1290/1792) or a recovery conflict (PostgreSQL 40001 on a standby).
    /// Try the next node; this node is healthy.
    ReplicaRefused,
    /// Anything else (syntax, constraint, …): the caller gets it unchanged.
    Other,
}

/// Classifies `err` as it came back from a node. `on_replica` says whether that node was a
/// replica: a serialization failure on the primary is the caller's business, not ours.
pub(crate) fn classify(err: &DbErr, on_replica: bool) -> Failure {
    match err {
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
    use sea_orm::sqlx::Error as E;
    match e {
        E::Io(_)
        | E::Tls(_)
        | E::Protocol(_)
        | E::PoolTimedOut
        | E::PoolClosed
        | E::WorkerCrashed => Failure::Connection,
        E::Database(db) if on_replica => {
            let code = db.code();
            let refused =
                matches!(code.as_deref(), Some("25006" | "40001")) || mysql_read_only(db.as_ref());
            if refused { Failure::ReplicaRefused } else { Failure::Other }
        }
        _ => Failure::Other,
    }
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
fn mysql_read_only(db: &dyn sea_orm::sqlx::error::DatabaseError) -> bool {
    #[cfg(feature = "mysql")]
    if let Some(my) = db.try_downcast_ref::<sea_orm::sqlx::mysql::MySqlDatabaseError>() {
        // ER_OPTION_PREVENTS_STATEMENT (--read-only), ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
        return matches!(my.number(), 1290 | 1792);
    }
    let _ = db;
    false
}
