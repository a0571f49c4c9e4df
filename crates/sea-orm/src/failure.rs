//! Which errors make a read safe and useful to retry on another node.

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
        // The server is going away or refused the session (PostgreSQL class 08 connection
        // exceptions and 57P01-57P03 admin/crash shutdown, cannot connect now; MySQL 1053
        // server shutdown): the node failed, not the statement.
        E::Database(db) if node_going_away(db.as_ref()) => Failure::Connection,
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
fn node_going_away(db: &dyn sea_orm::sqlx::error::DatabaseError) -> bool {
    #[cfg(feature = "mysql")]
    if let Some(my) = db.try_downcast_ref::<sea_orm::sqlx::mysql::MySqlDatabaseError>() {
        // ER_SERVER_SHUTDOWN
        return my.number() == 1053;
    }
    let code = db.code();
    let code = code.as_deref().unwrap_or("");
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
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
    if failure == Failure::Other {
        return err;
    }
    let text = if write {
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

#[cfg(test)]
mod tests {
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
}
