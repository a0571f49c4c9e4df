//! [`Retrying`]: retry's state on a connection, the one part the attempt step holds for it: the
//! budget (how many other candidates a read may move on to), how long a read that lost the
//! primary's connection may wait for the monitor's verdict, and the count of retries (for
//! [`Stats::retries`](crate::Stats::retries)); and what follows a failed attempt as the
//! connection runs it ([`Retrying::judge`]: the verdict, the error named, the retry counted),
//! with where a statement goes once more ([`Retrying::on_new_primary`],
//! [`Retrying::after_lost`]); and which of a plan's candidates an attempt goes to next
//! ([`Candidates`], from [`Retrying::candidates`]).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rwsplit_core::{Access, NodeId, RouteReason};
use sea_orm::DbErr;

use super::rerun;
use super::verdict::{Failed, Verdict, verdict};
use crate::cluster::{Plan, Routing, Why};
use crate::hedge::hedging::Hedging;
use crate::nodes::registry::{Node, NodeRef, Nodes};
use crate::observe::counters::{Count, Counters};
use crate::observe::telemetry;
use crate::send::failure;

/// A connection's retry policy and what it did.
#[derive(Debug)]
pub(crate) struct Retrying {
    /// How many other candidates a read may move on to after a failure (`read_retries`).
    read_retries: u8,
    /// How long a read that lost the primary's connection waits for the monitor's verdict
    /// (three probe intervals and timeouts: the time the monitor takes to mark a node down).
    verdict_wait: Duration,
    /// Statements moved on to another attempt (the next candidate, or a new primary).
    retries: AtomicU64,
}

/// How a plan's attempts ended without a result.
pub(crate) enum Stop {
    /// The caller gets this error.
    Fail(DbErr),
    /// A write that was not sent, or a read given up, on node `.1`, which is not the primary any
    /// more: it may be tried once on the new primary ([`Retrying::on_new_primary`]; else the
    /// caller gets this error).
    Unsent(DbErr, NodeId),
    /// A read a replica refused because it writes, to be run once on the primary as a write
    /// ([`OnReplicaRefusal::Primary`](crate::OnReplicaRefusal::Primary)); its shape is learned.
    /// The error is the caller's if it cannot be.
    Refused(DbErr),
    /// A read whose connection to the primary `.1` broke, or could not be made, before the
    /// monitor knew of anything wrong there: it may run once more where the monitor's verdict
    /// says ([`Retrying::after_lost`]), else the caller gets this error.
    Lost(DbErr, NodeId),
}

impl Stop {
    /// The caller's error: a second attempt hands back no further one.
    pub(crate) fn into_error(self) -> DbErr {
        match self {
            Stop::Fail(e) | Stop::Unsent(e, _) | Stop::Refused(e) | Stop::Lost(e, _) => e,
        }
    }
}

impl Retrying {
    /// A read moves on to at most `read_retries` other candidates; one that lost the primary's
    /// connection waits at most `verdict_wait` for the monitor's verdict.
    pub(crate) fn new(read_retries: u8, verdict_wait: Duration) -> Retrying {
        Retrying { read_retries, verdict_wait, retries: AtomicU64::new(0) }
    }

    /// The candidates a plan's attempts go through from its `skip`-th (past a catch-up wait's
    /// node that did not catch up): the first, and as many more as a read may move on to
    /// (`read_retries`; a write, none).
    #[inline]
    pub(crate) fn candidates(&self, write: bool, skip: usize) -> Candidates {
        Candidates::new(if write { 0 } else { usize::from(self.read_retries) }, skip)
    }

    /// Statements moved on to another attempt so far.
    pub(crate) fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// The failed attempt `facts` on `node` (`id`), which ended with `e` after `tried`
    /// attempts: the verdict on it ([`verdict`]), the error named for the caller, and the
    /// retry counted where the statement is known to move. `Ok`: the error a read keeps while
    /// it moves to the plan's next candidate; `Err`: how the plan's attempts end. A replica's
    /// refusal of a read that writes is the refusal policy's, `refused`.
    pub(crate) fn judge(
        &self,
        facts: &Failed,
        e: DbErr,
        (node, id): (&Node, NodeId),
        tried: usize,
        refused: impl FnOnce(DbErr) -> Stop,
    ) -> Result<DbErr, Stop> {
        let (name, failure, write) = (node.name(), facts.failure, facts.write);
        match verdict(facts) {
            Verdict::Retry => {
                tracing::info!(target: "rwsplit", node = %name, error = %e, "read failed, retrying on the next node");
                self.retried(node, false);
                Ok(failure::named(e, failure, name, write, tried))
            }
            Verdict::Fail => Err(Stop::Fail(failure::named(e, failure, name, write, tried))),
            Verdict::FailUnsent => Err(Stop::Fail(failure::unsent(e, failure, name, tried))),
            Verdict::NewPrimary => {
                let e = failure::unsent(e, failure, name, tried);
                // Counted here, where it is known to move (once, to a new primary).
                self.retried(node, write);
                Err(Stop::Unsent(e, id))
            }
            Verdict::Refused => Err(refused(e)),
            Verdict::WaitForMonitor => {
                // The primary was the read's last resort: once more after the monitor's
                // verdict (`after_lost`), not an error at once.
                Err(Stop::Lost(failure::named(e, failure, name, write, tried), id))
            }
        }
    }

    /// A statement moves on from `node` to another attempt: counted once, where it is known to
    /// move.
    fn retried(&self, node: &Node, write: bool) {
        telemetry::retry(node.labels(), write);
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Where a statement of `access` whose plan ended on `old`, no longer the primary
    /// ([`Stop::Unsent`]), runs once more: on the primary `routing` sees now, if there is one
    /// and it is another node.
    pub(crate) fn on_new_primary(
        &self,
        routing: &Routing,
        access: Access,
        old: NodeId,
    ) -> Option<Plan> {
        match routing.plan_on_primary(access, Why::MovedToNewPrimary) {
            Ok(again) if again.first() != old => Some(again),
            _ => None,
        }
    }

    /// Where a read of `access` that lost its connection to the primary `old` runs once more,
    /// once the monitor has a verdict ([`Stop::Lost`]; see `rerun::after_lost`).
    pub(crate) fn after_lost<'a>(
        &self,
        routing: &'a Routing,
        old: NodeId,
        access: Access,
    ) -> impl Future<Output = Option<Plan>> + 'a {
        rerun::after_lost(routing, self.verdict_wait, old, access)
    }
}

// Which candidate an attempt goes to next: the plan's order, within the budget, past nodes
// removed since the plan was made and replicas that have stopped answering (before the
// monitor's verdict); and, when none was left, why each was passed over.

/// The candidates tried: the plan's `k`-th, for `k` from `skip` (past a catch-up wait's node
/// that did not catch up) up to `end` (indices rather than an iterator: a read's future
/// carries less).
pub(crate) struct Candidates {
    k: usize,
    end: usize,
    skip: usize,
}

impl Candidates {
    /// The first candidate and `budget` more, from the `skip`-th.
    fn new(budget: usize, skip: usize) -> Self {
        Candidates { k: skip, end: skip + budget + 1, skip }
    }

    /// The next candidate to try: its id and node, whether it is the last, and the plan's
    /// node after it whatever the budget (where a read may be hedged); `None` when the budget
    /// or the plan's candidates are spent. `primary`: the plan's snapshot's; `write`: the
    /// plan's access. Nodes are held from `nodes`; whether a replica has stopped answering is
    /// `hedging`'s word (its pace); one passed over is counted in `counters`.
    #[inline]
    pub(crate) fn pick(
        &mut self,
        (nodes, counters, hedging): (&Nodes, &Counters, &Hedging),
        plan: &Plan,
        (primary, write): (NodeId, bool),
        now: Instant,
    ) -> Option<Picked> {
        while self.k < self.end
            && let Some(id) = plan.candidate(self.k)
        {
            self.k += 1;
            let following = plan.candidate(self.k);
            let last = self.k == self.end || following.is_none();
            // A node removed since the plan was made (its index empty, or another
            // generation's).
            let Some(node) = nodes.hold(id) else {
                continue;
            };
            // A replica that has stopped answering: the plan's next node first (it stays in
            // the plan as the read's last resort if it is last).
            let others = (counters, hedging);
            if !write && id != primary && !last && passed_over(others, plan, (id, &node), now) {
                continue;
            }
            return Some(Picked { id, node, last, following });
        }
        None
    }

    /// The error when every candidate was passed over (a catch-up wait that timed out on the
    /// only one, nodes removed, stalled).
    pub(crate) fn none_left(&self, nodes: &Nodes, plan: &Plan) -> DbErr {
        failure::no_node_left(skipped(nodes, plan, self.skip, self.end))
    }
}

/// A candidate [`Candidates::pick`] gave.
pub(crate) struct Picked {
    pub(crate) id: NodeId,
    pub(crate) node: NodeRef,
    /// No candidate follows within the budget.
    pub(crate) last: bool,
    /// The plan's node after it, whatever the budget.
    pub(crate) following: Option<NodeId>,
}

/// Whether replica `node` (`id`), not the read's last resort, is passed over because it has
/// stopped answering (`hedging`'s pace of it says stalled), unless the read asked for it by
/// name; counted and reported.
fn passed_over(
    (counters, hedging): (&Counters, &Hedging),
    plan: &Plan,
    (id, node): (NodeId, &Node),
    now: Instant,
) -> bool {
    if plan.reason() == Why::Router(RouteReason::NodeRequested)
        || !hedging.node_stalled(id, plan.in_flight(id), now)
    {
        return false;
    }
    node.passed_over();
    counters.bump(Count::StalledSkips);
    true
}

/// Why each of `plan`'s candidates up to the `end`-th was skipped, when all were: the first
/// `skip` by a catch-up wait that did not see the session's writes there (or found the node
/// removed), the others removed since the plan was made, or stalled (passed over for the
/// next).
fn skipped(
    nodes: &Nodes,
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
            let why = if !nodes.has(id) {
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
