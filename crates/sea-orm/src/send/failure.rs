//! How an attempt failed ([`Failure`]), read once from its error and used by the recorder (only
//! a failure of the node itself counts against its health: I/O, TLS, protocol, PostgreSQL
//! class 08 and 57P01–57P03, MySQL 1053 server shutdown), the metrics, retry's verdict
//! (`crate::retry`) and the error the caller gets ([`named`], [`unsent`]). A pool with no free
//! connection in time is the application's own back-pressure: reported as such, counted in
//! stats, never held against the node (its health is the monitor's, probed on connections of
//! its own).

use sea_orm::DbErr;

use super::refusal::misrouted;
use crate::routing_error::{self, DownReason, NotSentReason, RoutingError, UnknownReason};

/// How a failed statement failed.
///
/// Connection-class: the node could not be reached, the connection broke, the pool timed out or
/// was closed, the statement deadline passed, or the server said it is shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The node could not be reached or the connection broke: try another node and mark this
    /// one suspect.
    Connection,
    /// No connection of the node's pool came free within the acquire timeout (the application
    /// is saturating its own pool), or the server refused a new one for lack of room (its
    /// connection limit: PostgreSQL 53300, which sqlx's pool retries until that timeout;
    /// MariaDB 1040/1203/1226). Try another node for a read; the node is not marked.
    Backpressure,
    /// The adapter gave the attempt up (the caller's deadline or the replica read timeout
    /// passed, or the monitor marked the node down while the read waited). Try another node for
    /// a read; the monitor, not this statement, judges the node.
    GivenUp,
    /// A replica cancelled the read: a recovery conflict (PostgreSQL 40001 on a standby:
    /// replay needed to remove rows the query could still see), or a cancel (PostgreSQL 57014,
    /// MariaDB 1317: an operator's, or one aimed at a hedged read's losing attempt). Try the
    /// next node; this node is healthy.
    ReplicaRefused,
    /// A replica has no such table (PostgreSQL 42P01, MySQL 1146): a temporary table the
    /// caller's session created on the primary, or a schema change the replica has not replayed
    /// yet. The read moves on (the primary last); the node is healthy.
    NotOnReplica,
    /// A replica refused a statement classified as a read because it writes or locks: it is
    /// read-only or in recovery (PostgreSQL 25006 and the recovery refusals, MySQL/MariaDB
    /// 1290/1792). Nothing durable happened there; what follows is [`OnReplicaRefusal`](super::refusal::OnReplicaRefusal)'s:
    /// once on the primary, as a write, or the caller's error ([`misrouted`]). Never another
    /// replica.
    ReadOnly,
    /// Anything else (syntax, constraint, …): the caller gets it unchanged.
    Other,
}

/// Classifies `err` as it came back from a node. `on_replica` says whether that node was a
/// replica: a serialization failure on the primary is the caller's business, not ours.
pub(crate) fn classify(err: &DbErr, on_replica: bool) -> Failure {
    // The adapter's own error (a position wait's, a step given up): as the adapter judged it.
    if let Some(e) = routing_error::routing_error(err) {
        return of_routing_error(e);
    }
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

/// The failure class the attempt loop gives the adapter's own error `e`, should it see it
/// again: how the adapter itself judged it.
fn of_routing_error(e: &RoutingError) -> Failure {
    match e {
        RoutingError::WriteNotSent { reason: NotSentReason::NoConnection, .. }
        | RoutingError::WriteOutcomeUnknown { reason: UnknownReason::ConnectionBroke, .. }
        | RoutingError::NodeDown { reason: DownReason::Unreachable, .. } => Failure::Connection,
        RoutingError::Backpressure { .. } => Failure::Backpressure,
        RoutingError::RecoveryConflict { .. } => Failure::ReplicaRefused,
        RoutingError::ReplicaRefused { .. } => Failure::ReadOnly,
        RoutingError::WriteNotSent { .. }
        | RoutingError::WriteOutcomeUnknown { .. }
        | RoutingError::NodeDown { .. }
        | RoutingError::TimedOut { .. }
        | RoutingError::NoPrimary { .. }
        | RoutingError::SplitBrain { .. }
        | RoutingError::Unroutable { .. }
        | RoutingError::NoNodeLeft { .. }
        | RoutingError::NodeRemoved { .. } => Failure::GivenUp,
        RoutingError::PositionUnreadable { .. }
        | RoutingError::PositionUnsupported { .. }
        | RoutingError::Internal { .. } => Failure::Other,
    }
}

/// Whether `err` says the pool itself was closed (the application closed the connection): a
/// [`Failure::Connection`] that no verdict of the monitor's will mend.
pub(crate) fn pool_closed(err: &DbErr) -> bool {
    match err {
        #[cfg(any(feature = "postgres", feature = "mysql"))]
        DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e))
        | DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
        | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)) => {
            matches!(e.as_ref(), sea_orm::sqlx::Error::PoolClosed)
        }
        DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::ConnectionClosed) => true,
        _ => false,
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
            // No room for another connection: the server is busy, not failed.
            (Some(ServerError::TooManyConnections), _) => Failure::Backpressure,
            (Some(ServerError::ReadOnly), true) => Failure::ReadOnly,
            (Some(ServerError::Conflict | ServerError::Cancelled), true) => Failure::ReplicaRefused,
            (Some(ServerError::NoSuchTable), true) => Failure::NotOnReplica,
            _ => Failure::Other,
        },
        _ => Failure::Other,
    }
}

/// The error the caller gets for a statement that failed on `node` after `tried` attempts.
///
/// An error the database raised while running the statement (`Failure::Other`: a constraint, a
/// syntax error, a serialization failure on the primary; `Failure::NotOnReplica`: no such
/// table) reaches the caller unchanged, so code matching on SeaORM's error variants and
/// SQLSTATEs keeps working. A failure of the node itself (unreachable, connection broken,
/// timed out, refused by a replica, no free connection) becomes a [`RoutingError`] naming the
/// node, because which server failed matters and the driver's error does not say; for a
/// write, one that broke after it was sent is [`RoutingError::WriteOutcomeUnknown`].
pub(crate) fn named(err: DbErr, failure: Failure, node: &str, write: bool, tried: usize) -> DbErr {
    let node = node.to_owned();
    match failure {
        Failure::Other | Failure::NotOnReplica => err,
        Failure::ReadOnly => misrouted(err, &node, None),
        // Already the adapter's own error (outcome unknown, not sent, timed out, marked down):
        // a read's counts the nodes tried before it.
        Failure::GivenUp if write => err,
        Failure::GivenUp => routing_error::with_attempts(err, tried),
        Failure::Backpressure => {
            let access =
                if write { rwsplit_core::Access::Write } else { rwsplit_core::Access::Read };
            RoutingError::Backpressure { node, access, attempts: tried, source: err }.into()
        }
        Failure::Connection if write => RoutingError::WriteOutcomeUnknown {
            node,
            reason: UnknownReason::ConnectionBroke,
            source: Some(err),
        }
        .into(),
        Failure::Connection => RoutingError::NodeDown {
            node,
            attempts: tried,
            reason: DownReason::Unreachable,
            source: Some(err),
        }
        .into(),
        Failure::ReplicaRefused => {
            RoutingError::RecoveryConflict { node, attempts: tried, source: err }.into()
        }
    }
}

/// The error the caller gets for a write that was not sent to `node` (see
/// [`sending`](crate::send::sending)): the node stopped being the primary while it waited (already
/// the adapter's error), the pool had no connection in time, or none could be opened.
pub(crate) fn unsent(err: DbErr, failure: Failure, node: &str, tried: usize) -> DbErr {
    match failure {
        Failure::Connection => RoutingError::WriteNotSent {
            node: node.to_owned(),
            reason: NotSentReason::NoConnection,
            source: Some(err),
        }
        .into(),
        Failure::GivenUp | Failure::Backpressure => named(err, failure, node, true, tried),
        _ => err,
    }
}

/// The error a write fails with when the monitor has marked the primary `node` down before it
/// was sent.
pub(crate) fn primary_down(node: &str) -> DbErr {
    RoutingError::WriteNotSent {
        node: node.to_owned(),
        reason: NotSentReason::PrimaryDown,
        source: None,
    }
    .into()
}

/// The error for a plan whose every candidate was skipped: `nodes`, each with why.
pub(crate) fn no_node_left(nodes: Vec<routing_error::NodeOut>) -> DbErr {
    RoutingError::NoNodeLeft { nodes }.into()
}

/// The error for a state the adapter's own checks rule out (`what` happened).
pub(crate) fn internal(what: &'static str) -> DbErr {
    RoutingError::Internal { what }.into()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rstest::rstest;
    use rwsplit_core::Access;

    use super::*;

    fn timeout() -> DbErr {
        DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout)
    }

    fn reset() -> DbErr {
        DbErr::Conn(sea_orm::RuntimeErr::SqlxError(Arc::new(sea_orm::sqlx::Error::Io(
            std::io::Error::other("reset"),
        ))))
    }

    /// What `named` makes of each failure class, for a read and a write: the variant, the
    /// node, the attempts, the cause kept as `source`; a database error passes through.
    #[rstest]
    #[case::read_unreachable(Failure::Connection, false, "node_down")]
    #[case::write_broke(Failure::Connection, true, "outcome_unknown")]
    #[case::read_backpressure(Failure::Backpressure, false, "backpressure")]
    #[case::write_backpressure(Failure::Backpressure, true, "backpressure")]
    #[case::recovery_conflict(Failure::ReplicaRefused, false, "recovery_conflict")]
    #[case::statement(Failure::Other, true, "unchanged")]
    #[case::no_such_table(Failure::NotOnReplica, false, "unchanged")]
    fn node_failures_name_the_node_and_database_errors_pass_through(
        #[case] failure: Failure,
        #[case] write: bool,
        #[case] want: &str,
    ) {
        let err = named(reset(), failure, "db2:5432/app", write, 3);
        assert!(matches!(err, DbErr::Conn(_)), "SeaORM's variant stays: {err:?}");
        let got = match routing_error::routing_error(&err) {
            None => "unchanged",
            Some(RoutingError::NodeDown {
                node,
                attempts: 3,
                reason: DownReason::Unreachable,
                source: Some(_),
            }) if node == "db2:5432/app" => "node_down",
            Some(RoutingError::WriteOutcomeUnknown {
                reason: UnknownReason::ConnectionBroke,
                source: Some(_),
                ..
            }) => "outcome_unknown",
            Some(RoutingError::Backpressure { access, attempts: 3, .. })
                if (*access == Access::Write) == write =>
            {
                "backpressure"
            }
            Some(RoutingError::RecoveryConflict { attempts: 3, .. }) => "recovery_conflict",
            Some(other) => panic!("{other:?}"),
        };
        assert_eq!(got, want, "{err}");
        if want != "unchanged" {
            // The text says it all: the adapter, the node, the driver's cause.
            let text = err.to_string();
            assert!(text.contains("rwsplit: ") && text.contains("db2:5432/app"), "{text}");
            assert!(text.contains("reset"), "{text}");
            // Seen again by the attempt loop, it keeps its class.
            assert_eq!(classify(&err, true), failure);
        }
        let other = named(DbErr::RecordNotFound("x".into()), Failure::Other, "db1", true, 1);
        assert!(matches!(other, DbErr::RecordNotFound(_)));
    }

    #[test]
    fn a_full_pool_is_back_pressure_not_a_node_failure() {
        assert_eq!(classify(&timeout(), false), Failure::Backpressure);
        assert_eq!(classify(&timeout(), true), Failure::Backpressure);
        let sqlx = DbErr::Conn(sea_orm::RuntimeErr::SqlxError(Arc::new(
            sea_orm::sqlx::Error::PoolTimedOut,
        )));
        assert_eq!(classify(&sqlx, false), Failure::Backpressure);
        let w = named(timeout(), Failure::Backpressure, "db1:5432/app", true, 1);
        let e = routing_error::routing_error(&w).expect("typed");
        assert!(e.is_backpressure() && e.is_retryable() && !e.outcome_unknown(), "{e:?}");
        assert_eq!(e.node(), Some("db1:5432/app"));
        assert_eq!(classify(&reset(), true), Failure::Connection);
    }

    /// A write that got no connection was not sent: `WriteNotSent` with the pool's error kept;
    /// a write given up (already typed) and back-pressure keep their own errors.
    #[test]
    fn an_unsent_write_says_why() {
        let no_conn = unsent(reset(), Failure::Connection, "db1:5432/app", 1);
        assert!(matches!(
            routing_error::routing_error(&no_conn),
            Some(RoutingError::WriteNotSent {
                reason: NotSentReason::NoConnection,
                source: Some(_),
                ..
            })
        ));
        let down = primary_down("db1:5432/app");
        assert!(matches!(
            routing_error::routing_error(&down),
            Some(RoutingError::WriteNotSent { reason: NotSentReason::PrimaryDown, .. })
        ));
        let given_up = unsent(down.clone(), Failure::GivenUp, "db1:5432/app", 2);
        assert_eq!(given_up.to_string(), down.to_string());
        let full = unsent(timeout(), Failure::Backpressure, "db1:5432/app", 1);
        assert!(routing_error::routing_error(&full).is_some_and(RoutingError::is_backpressure));
    }

    /// A read given up on its node counts the nodes tried before it once the loop knows.
    #[test]
    fn a_read_given_up_counts_the_nodes_tried() {
        let late = crate::send::deadline::timed_out(
            "db3:5432/app",
            (
                std::time::Duration::from_secs(1),
                crate::routing_error::TimeLimit::ReplicaReadTimeout,
            ),
        );
        let named = named(late, Failure::GivenUp, "db3:5432/app", false, 2);
        let e = routing_error::routing_error(&named).expect("typed");
        assert!(matches!(e, RoutingError::TimedOut { attempts: 2, .. }), "{e:?}");
        assert!(e.is_timeout() && e.is_retryable());
        assert!(named.to_string().contains("1s"), "{named}");
    }
}
