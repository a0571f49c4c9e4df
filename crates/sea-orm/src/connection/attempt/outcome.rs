//! A failed attempt: reported once (`record`), then judged by retry (`crate::retry`, the part
//! this step holds): the next candidate, or how the plan's attempts end ([`Stop`]); a
//! replica's refusal of a read that writes learned, counted and logged.

use std::time::Instant;

use rwsplit_core::RouteReason;
use sea_orm::DbErr;

use crate::cluster::{Plan, Why};
use crate::connection::inner::Inner;
use crate::connection::record::Record;
use crate::nodes::registry::Node;
use crate::observe::counters::Count;
use crate::observe::telemetry;
use crate::retry::retrying::Stop;
use crate::retry::verdict::Failed;
use crate::routing::classified::Learned;
use crate::routing::ctx::Scope;
use crate::send::failure::{self, Failure};
use crate::send::refusal;
use crate::send::sending::Attempt;
use crate::send::sending::Standing;
use crate::send::watch::Standings;

/// Where and when an attempt failed, as the loop knows it.
pub(super) struct Tried {
    /// When the attempt returned.
    pub(super) now: Instant,
    /// No candidate of the plan follows.
    pub(super) last: bool,
    /// Attempts made before this plan's.
    pub(super) earlier: usize,
    /// Attempts made so far, this one included.
    pub(super) tried: usize,
    /// The caller's deadline.
    pub(super) deadline: Option<Instant>,
}

/// A failed attempt, reported once ([`Record::failed`]), then judged
/// ([`Retrying::judge`](crate::retry::retrying::Retrying::judge)): `Ok`, the error the read
/// keeps while it moves to the plan's next candidate; `Err`, how the plan's attempts end.
pub(super) fn failed(
    inner: &Inner,
    record: Record<'_>,
    attempt: Attempt,
    at: Tried,
    (plan, sql, scope): (&Plan, &str, &Scope),
) -> Result<DbErr, Stop> {
    let (node, id, write, on_primary) = (record.node, record.id, record.write, record.on_primary);
    let unsent = attempt.unsent();
    let (e, failure) = record.failed(attempt, at.now);
    if write && !unsent && matches!(failure, Failure::Connection | Failure::GivenUp) {
        // Sent, then the connection broke or was given up: the write may have committed.
        // The scope's next read asks the primary, or reads there.
        inner.causality.mark_unseen_writes(&inner.writable(), scope);
    }
    let facts = Failed {
        failure,
        unsent,
        deposed: unsent && inner.routing.standing(id) != Standing::Primary,
        write,
        on_primary,
        last: at.last,
        first_plan: at.earlier == 0,
        out_of_time: at.deadline.is_some_and(|d| at.now >= d),
        monitored: inner.monitored(),
        pool_closed: failure == Failure::Connection && failure::pool_closed(&e),
    };
    inner.retry.judge(&facts, e, (node, id), at.tried, |e| refusal(inner, e, node, plan, sql))
}

/// A replica refused a read because it writes: its shape is learned (a write from now
/// on), the refusal counted, a new shape logged once at WARN; then what
/// [`OnReplicaRefusal`](crate::OnReplicaRefusal) says, unless the read was sent to the
/// replica on purpose (then it fails: [`refusal::reruns`]).
fn refusal(inner: &Inner, e: DbErr, node: &Node, plan: &Plan, sql: &str) -> Stop {
    let learned = inner.classified.learn(sql);
    let on_purpose = matches!(
        plan.reason(),
        Why::Router(RouteReason::ReplicaRequested | RouteReason::NodeRequested)
    );
    let rerun = refusal::reruns(on_purpose, inner.policy.on_replica_refusal);
    inner.counters.bump(Count::ReplicaRefusals);
    telemetry::replica_refusal(node.labels(), rerun);
    let first_full = inner.classified.first_full(&learned);
    log_refusal(node.name(), &learned, first_full, rerun);
    let e = refusal::misrouted(e, node.name(), learned.shape());
    if rerun { Stop::Refused(e) } else { Stop::Fail(e) }
}

/// The log line of a refusal on `node`: a new shape, or the first the full table could not
/// take, at WARN; the others at DEBUG.
fn log_refusal(node: &str, learned: &Learned, first_full: bool, rerun: bool) {
    let then = if rerun { "it runs once on the primary" } else { "it fails" };
    match learned {
        Learned::New(shape) => tracing::warn!(
            target: "rwsplit",
            node = %node,
            statement = %shape,
            "a replica refused a statement classified as a read because it writes (a \
             function or view the SQL does not show); {then}, and statements of this shape \
             go to the primary from now on"
        ),
        Learned::Full(shape) if first_full => tracing::warn!(
            target: "rwsplit",
            node = %node,
            statement = %shape,
            max = crate::routing::classified::MAX_LEARNED,
            "a replica refused a statement classified as a read; {then}; the database's \
             table of learned shapes is full, so neither this shape nor any new one is \
             learned: each is refused on every call (logged once)"
        ),
        Learned::Full(shape) => tracing::debug!(
            target: "rwsplit",
            node = %node,
            statement = %shape,
            "a replica refused a statement classified as a read; {then}; the table of \
             learned shapes is full, so it is not learned"
        ),
        Learned::Known(_) | Learned::NoShape => tracing::debug!(
            target: "rwsplit",
            node = %node,
            "a replica refused a statement classified as a read; {then}"
        ),
    }
}
