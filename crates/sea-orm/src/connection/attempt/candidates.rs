//! Which of a plan's candidates an attempt goes to next: the plan's order, within retry's
//! budget (`crate::retry`: a write, one; a read, `read_retries` more), past nodes removed since the plan was
//! made and replicas that have stopped answering (before the monitor's verdict); and, when
//! none was left, why each was passed over.

use std::time::Instant;

use rwsplit_core::{NodeId, RouteReason};
use sea_orm::DbErr;

use crate::cluster::{Plan, Why};
use crate::connection::inner::Inner;
use crate::nodes::registry::{Node, NodeRef};
use crate::observe::counters::Count;
use crate::send::failure;

/// The candidates tried: the plan's `k`-th, for `k` from `skip` (past a catch-up wait's node
/// that did not catch up) up to `end` (indices rather than an iterator: a read's future
/// carries less).
pub(super) struct Candidates {
    k: usize,
    end: usize,
    skip: usize,
}

impl Candidates {
    /// The first candidate and `budget` more (a write: none; a read: its retries), from the
    /// `skip`-th.
    pub(super) fn new(budget: usize, skip: usize) -> Self {
        Candidates { k: skip, end: skip + budget + 1, skip }
    }

    /// The next candidate to try, its node, and whether it is the last; `None` when the
    /// budget or the plan's candidates are spent. `primary`: the plan's snapshot's; `write`:
    /// the plan's access.
    #[inline]
    pub(super) fn pick(
        &mut self,
        inner: &Inner,
        plan: &Plan,
        (primary, write): (NodeId, bool),
        now: Instant,
    ) -> Option<(NodeId, NodeRef, bool)> {
        while self.k < self.end
            && let Some(id) = plan.candidate(self.k)
        {
            self.k += 1;
            let last = self.k == self.end || plan.candidate(self.k).is_none();
            // A node removed since the plan was made (its index empty, or another
            // generation's).
            let Some(node) = inner.nodes.hold(id) else {
                continue;
            };
            // A replica that has stopped answering: the plan's next node first (it stays in
            // the plan as the read's last resort if it is last).
            if !write && id != primary && !last && passed_over(inner, plan, id, &node, now) {
                continue;
            }
            return Some((id, node, last));
        }
        None
    }

    /// The plan's node after the one [`pick`](Self::pick) gave last, if any (where a read
    /// may be hedged).
    pub(super) fn following(&self, plan: &Plan) -> Option<NodeId> {
        plan.candidate(self.k)
    }

    /// The error when every candidate was passed over (a catch-up wait that timed out on the
    /// only one, nodes removed, stalled).
    pub(super) fn none_left(&self, inner: &Inner, plan: &Plan) -> DbErr {
        failure::no_node_left(skipped(inner, plan, self.skip, self.end))
    }
}

/// Whether replica `node` (`id`), not the read's last resort, is passed over because it has
/// stopped answering (its pace says stalled), unless the read asked for it by name; counted.
fn passed_over(inner: &Inner, plan: &Plan, id: NodeId, node: &Node, now: Instant) -> bool {
    if plan.reason() == Why::Router(RouteReason::NodeRequested)
        || !node.passed_over(plan.in_flight(id), now)
    {
        return false;
    }
    inner.counters.bump(Count::StalledSkips);
    true
}

/// Why each of `plan`'s candidates up to the `end`-th was skipped, when all were: the first
/// `skip` by a catch-up wait that did not see the session's writes there (or found the node
/// removed), the others removed since the plan was made, or stalled (passed over for the
/// next).
fn skipped(
    inner: &Inner,
    plan: &Plan,
    skip: usize,
    end: usize,
) -> Vec<crate::routing_error::NodeOut> {
    use crate::routing_error::OutReason;
    let waited = plan.wait().map_or(std::time::Duration::ZERO, |(_, max)| max);
    (0..end)
        .map_while(|k| plan.candidate(k))
        .enumerate()
        .map(|(k, id)| {
            let why = if !inner.nodes.has(id) {
                OutReason::Removed
            } else if k < skip {
                OutReason::NotCaughtUp { waited }
            } else {
                OutReason::Stalled
            };
            let name = plan.name(id).map_or_else(|| format!("node {id}"), str::to_owned);
            crate::routing_error::NodeOut::new(name, why)
        })
        .collect()
}
