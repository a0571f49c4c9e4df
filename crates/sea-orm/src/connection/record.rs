//! The recorder: what one attempt's outcome tells the rest of the router, reported once. A
//! [`Record`] is made after an attempt returns and is consumed by exactly one of
//! [`succeeded`](Record::succeeded) or [`failed`](Record::failed), so no outcome is reported
//! twice or forgotten:
//!
//! - the monitor: a failure of the node itself counts against its health; a success clears a
//!   pending failure count (back-pressure is never held against a node);
//! - the node's counters (`Stats`): reads, writes, failures, pool timeouts;
//! - hedging: the node's pace learns an answer's time, or that the attempt no longer waits;
//! - the balancer: a completed round trip feeds the node's latency estimate, when the balancer
//!   reads one; any attempt ends its in-flight count;
//! - the metrics: the attempt's duration, labelled with its node, role, reason and failure.
//!
//! What an outcome means for the plan — try the next candidate, move to a new primary, fail —
//! and for the caller's read-your-writes scope (a write that may have committed out of sight)
//! is the executor's ([`attempt`](super::attempt)) to decide from what `failed` returns.

use std::time::Instant;

use rwsplit_core::{InFlight, NodeId};
use sea_orm::DbErr;

use crate::cluster::Routing;
use crate::hedge::hedging::Hedging;
use crate::nodes::registry::Node;
use crate::observe::telemetry;
use crate::send::failure::{self, Failure};
use crate::send::sending;
use crate::send::sending::Attempt;

/// One attempt's outcome, to report (see the module docs).
pub(super) struct Record<'a> {
    /// The live view the outcome is reported to (the monitor, the balancer's estimate).
    routing: &'a Routing,
    /// Hedging, whose pace of the node learns the outcome.
    hedging: &'a Hedging,
    pub(super) node: &'a Node,
    pub(super) id: NodeId,
    /// The statement's system and `db.operation.name`, for the metrics.
    pub(super) statement: telemetry::Statement,
    /// The plan's reason.
    pub(super) reason: crate::cluster::Why,
    pub(super) on_primary: bool,
    pub(super) write: bool,
    /// The attempt's in-flight count in the plan's snapshot, if the node is in it.
    pub(super) guard: Option<InFlight>,
    pub(super) started: Instant,
}

impl<'r> Record<'r> {
    /// The record of one of `plan`'s attempts at statement `sql` on `node` (`id`; the plan's
    /// primary or not; a write or not), started at `started`, to report once to `routing`,
    /// `hedging` and the metrics (`system`: the `db.system.name` label).
    pub(super) fn new(
        (routing, hedging, system): (&'r Routing, &'r Hedging, &'static str),
        plan: &crate::cluster::Plan,
        sql: &str,
        (node, id, on_primary, write): (&'r Node, NodeId, bool, bool),
        (started, guard): (Instant, Option<InFlight>),
    ) -> Self {
        let operation = plan.operation().unwrap_or_else(|| telemetry::operation_name(sql));
        let statement = telemetry::Statement { system, operation };
        let reason = plan.reason();
        Record { routing, hedging, node, id, statement, reason, on_primary, write, guard, started }
    }

    /// The attempt succeeded; `now` is when it returned.
    pub(super) fn succeeded(mut self, now: Instant) {
        let guard = self.guard.take();
        self.observe(now, None);
        self.hedging.statement_answered(self.id, self.started, now);
        self.node.answered(self.write);
        self.routing.answered(self.id, guard, now);
    }

    /// The attempt failed as `attempt` says; `now` is when it returned. Returns the error the
    /// caller may get and how it failed, for the executor's decision.
    pub(super) fn failed(self, attempt: Attempt, now: Instant) -> (DbErr, Failure) {
        self.hedging.statement_ended(self.id, now);
        let (e, failure) = match attempt {
            Attempt::Failed(e) | Attempt::Unsent(e) => {
                // No connection is the pool's back-pressure, or the node's failure (refused).
                let failure = note_failure(self.routing, self.node, self.id, &e);
                (e, failure)
            }
            // Given up: the monitor judges the node, not this attempt.
            Attempt::GivenUp(e) => (e, Failure::GivenUp),
            Attempt::Deposed(s) => {
                (sending::deposed(self.node.name(), s, self.write), Failure::GivenUp)
            }
        };
        self.observe(now, Some(failure));
        (e, failure)
    }

    /// The attempt's duration, to the metrics.
    fn observe(&self, now: Instant, failure: Option<Failure>) {
        self.statement.attempt_done(
            self.node.labels(),
            self.node.durations(),
            self.on_primary,
            self.reason.code(),
            self.write,
            now.saturating_duration_since(self.started),
            failure,
        );
    }
}

/// Classifies a failure `err` on node `id` (for the retry's verdict too) and reports it: only a
/// failure of the node itself counts against its health. Back-pressure (the pool had no free
/// connection in time) is counted in the node's stats and never held against it.
pub(super) fn note_failure(routing: &Routing, node: &Node, id: NodeId, err: &DbErr) -> Failure {
    let failure = failure::classify(err, id != routing.primary_index());
    match failure {
        Failure::Connection => {
            node.count_failure();
            routing.record_failure(id);
        }
        Failure::Backpressure => {
            node.count_pool_timeout();
            tracing::warn!(target: "rwsplit", node = %node.name(), "no free connection in the pool within the acquire timeout (back-pressure; the node is not marked)");
        }
        Failure::GivenUp
        | Failure::ReplicaRefused
        | Failure::NotOnReplica
        | Failure::ReadOnly
        | Failure::Other => {}
    }
    failure
}
