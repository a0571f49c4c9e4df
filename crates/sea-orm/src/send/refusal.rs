//! A replica's refusal of a read that writes (a user function or view the SQL does not
//! show): what the setting says ([`OnReplicaRefusal`]), whether this read runs once on the
//! primary ([`reruns`]), and the error when it does not ([`misrouted`]). Learning the shape
//! and the rerun itself are the attempt loop's.

use sea_orm::DbErr;

use crate::routing_error::{self, RoutingError};

/// What a statement classified as a read does when a replica refuses it because it would
/// write ([`RoutedConnectionBuilder::on_replica_refusal`](crate::RoutedConnectionBuilder::on_replica_refusal)).
///
/// A statement's text cannot show what a user function or view does: `SELECT bump(1)` reads
/// as far as the classifier can tell, and a hot standby or read-only replica refuses it when
/// it writes (PostgreSQL 25006 and the recovery refusals; MariaDB 1290/1792). A refused
/// statement did nothing durable there: the replica's session is read-only, outside any
/// explicit transaction the statement is its own, and its first write is what was refused.
/// Either way the statement's shape (its text without values, [`rwsplit_core::shape`]) is
/// learned, so statements of that shape go to the primary from then on; each refusal is
/// counted ([`Stats::replica_refusals`](crate::Stats::replica_refusals), the
/// `rwsplit.replica_refusals` metric) and each new shape is logged once at WARN, the shape
/// naming the function or view but no value.
///
/// A statement routed to a replica on purpose
/// ([`RoutedConnection::scope`](crate::RoutedConnection::scope) with `Target::Replica` or
/// `Target::Node(..)`, a `/*rwsplit:replica*/` hint) is never moved: its refusal is the
/// caller's [`RoutingError::ReplicaRefused`] in both modes. One sent through `db.replica()`,
/// which rwsplit does not route, gets the server's error as it is.
///
/// ```
/// use rwsplit_sea_orm::{OnReplicaRefusal, RoutedConnection};
/// let builder = RoutedConnection::builder()
///     .primary("postgres://app@db1/app")
///     .on_replica_refusal(OnReplicaRefusal::Fail);
/// # drop(builder);
/// ```
///
/// In a config file `on_replica_refusal = "fail"` under `[policy]`; in the environment
/// `RWSPLIT_ON_REPLICA_REFUSAL=fail` (`primary`, the default, or `fail`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OnReplicaRefusal {
    /// Run it once on the primary, within the same deadline, as a write (its position is
    /// recorded for the caller's read-your-writes), and return that result. The default.
    #[default]
    Primary,
    /// Fail with [`RoutingError::ReplicaRefused`], naming the statement's shape. For
    /// applications whose functions have effects outside the database: a function that calls
    /// out over the network (an extension, `dblink`, a `COPY … TO PROGRAM`) before its first
    /// write would have made that call on the replica, and would make it again on the primary;
    /// so would one that takes a session-level lock (`pg_advisory_lock`, `GET_LOCK`) before
    /// its first write, which then stays held on the replica's pooled session.
    Fail,
}

/// The error for a statement classified as a read that replica `node` refused as a write, and
/// that is not run on the primary ([`OnReplicaRefusal::Fail`], or routed to the replica on
/// purpose). `statement`: its shape, which names the function or view and holds no value.
pub(crate) fn misrouted(err: DbErr, node: &str, statement: Option<&str>) -> DbErr {
    let sqlstate = routing_error::sqlstate(&err);
    let statement = statement.map(str::to_owned);
    RoutingError::ReplicaRefused { node: node.to_owned(), sqlstate, statement, source: err }.into()
}

/// Whether a read a replica refused runs once on the primary: only if the setting says so,
/// and never when it was sent to a replica on purpose (`on_purpose`: then it fails).
pub(crate) fn reruns(on_purpose: bool, setting: OnReplicaRefusal) -> bool {
    !on_purpose && setting == OnReplicaRefusal::Primary
}

#[cfg(test)]
mod tests {
    use super::{OnReplicaRefusal, reruns};

    #[test]
    fn a_refused_read_reruns_only_if_asked_and_not_sent_on_purpose() {
        assert!(reruns(false, OnReplicaRefusal::Primary));
        assert!(!reruns(true, OnReplicaRefusal::Primary));
        assert!(!reruns(false, OnReplicaRefusal::Fail));
        assert!(!reruns(true, OnReplicaRefusal::Fail));
    }
}
