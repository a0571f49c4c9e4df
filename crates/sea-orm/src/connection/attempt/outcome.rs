//! A failed attempt: reported once (`record`), then the verdict on it (`crate::send::retry`)
//! turned into what the loop does next — the next candidate, or how the plan's attempts end
//! ([`Stop`]) — and a replica's refusal of a read that writes learned, counted and logged.

use std::time::Instant;

use rwsplit_core::{InFlight, NodeId, RouteReason};
use sea_orm::DbErr;

use super::span::metrics;
use super::work::Work;
use crate::connection::inner::Inner;
use crate::connection::record::{self, Record};
use crate::nodes::registry::Node;
use crate::observe::counters::Count;
use crate::observe::telemetry;
use crate::routing::classified::Learned;
use crate::routing::ctx::Scope;
use crate::routing::route::{Plan, Why};
use crate::send::failure::{self, Failure};
use crate::send::refusal;
use crate::send::retry::{self, Failed, Verdict};
use crate::send::sending::Attempt;
use crate::send::sending::Standing;

/// How a plan's attempts ended without a result.
pub(super) enum Stop {
    /// The caller gets this error.
    Fail(DbErr),
    /// A write that was not sent, or a read given up, on node `.1`, which is not the primary any
    /// more: it may be tried once on the new primary (else the caller gets this error).
    Unsent(DbErr, NodeId),
    /// A read a replica refused because it writes, to be run once on the primary as a write
    /// ([`OnReplicaRefusal::Primary`](crate::OnReplicaRefusal::Primary)); its shape is learned.
    /// The error is the caller's if it cannot be.
    Refused(DbErr),
    /// A read whose connection to the primary `.1` broke, or could not be made, before the
    /// monitor knew of anything wrong there: it may run once more where the monitor's verdict
    /// says (`rerun::after_lost`), else the caller gets this error.
    Lost(DbErr, NodeId),
}

impl Stop {
    /// The caller's error: a second attempt hands back no further one.
    pub(super) fn into_error(self) -> DbErr {
        match self {
            Stop::Fail(e) | Stop::Unsent(e, _) | Stop::Refused(e) | Stop::Lost(e, _) => e,
        }
    }
}

/// The record of one of `plan`'s attempts at `work` on `node` (`id`; the plan's primary or
/// not; a write or not), started at `started`, to report once.
pub(super) fn record<'r>(
    inner: &'r Inner,
    plan: &Plan,
    work: &impl Work,
    (node, id, on_primary, write): (&'r Node, NodeId, bool, bool),
    (started, guard): (Instant, Option<InFlight>),
) -> Record<'r> {
    let statement = metrics(inner, plan, work);
    let reason = plan.reason();
    Record { conn: inner, node, id, statement, reason, on_primary, write, guard, started }
}

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

/// A failed attempt, reported once ([`Record::failed`]), then the verdict on it
/// ([`retry::verdict`]): `Ok`, the error the read keeps while it moves to the plan's next
/// candidate; `Err`, how the plan's attempts end.
pub(super) fn failed(
    inner: &Inner,
    record: Record<'_>,
    attempt: Attempt,
    at: Tried,
    (plan, sql, scope): (&Plan, &str, &Scope),
) -> Result<DbErr, Stop> {
    let (node, id, write, on_primary) = (record.node, record.id, record.write, record.on_primary);
    let unsent = attempt.unsent();
    let (e, failure) = record.failed(attempt, at.now, scope);
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
    let (name, tried) = (node.name(), at.tried);
    match retry::verdict(&facts) {
        Verdict::Retry => {
            tracing::info!(target: "rwsplit", node = %name, error = %e, "read failed, retrying on the next node");
            record::retried(inner, node, false);
            Ok(failure::named(e, failure, name, write, tried))
        }
        Verdict::Fail => Err(Stop::Fail(failure::named(e, failure, name, write, tried))),
        Verdict::FailUnsent => Err(Stop::Fail(failure::unsent(e, failure, name, tried))),
        Verdict::NewPrimary => {
            let e = failure::unsent(e, failure, name, tried);
            // Counted here, where it is known to move (once, to a new primary).
            record::retried(inner, node, write);
            Err(Stop::Unsent(e, id))
        }
        Verdict::Refused => Err(refusal(inner, e, node, plan, sql)),
        Verdict::WaitForMonitor => {
            // The primary was the read's last resort: once more after the monitor's verdict
            // (see `rerun::after_lost`), not an error at once.
            Err(Stop::Lost(failure::named(e, failure, name, write, tried), id))
        }
    }
}

/// A replica refused a read because it writes: its shape is learned (a write from now
/// on), the refusal counted, a new shape logged once at WARN; then what
/// [`OnReplicaRefusal`](crate::OnReplicaRefusal) says, unless the read was sent to the
/// replica on purpose (then it fails: [`refusal::reruns`]).
fn refusal(inner: &Inner, e: DbErr, node: &Node, plan: &Plan, sql: &str) -> Stop {
    let learned = inner.planner.learn_refused(sql);
    let on_purpose = matches!(
        plan.reason(),
        Why::Router(RouteReason::ReplicaRequested | RouteReason::NodeRequested)
    );
    let rerun = refusal::reruns(on_purpose, inner.planner.policy().on_replica_refusal);
    inner.counters.bump(Count::ReplicaRefusals);
    telemetry::replica_refusal(node.labels(), rerun);
    let first_full = inner.planner.first_full(&learned);
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
