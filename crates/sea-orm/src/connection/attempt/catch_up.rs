//! The catch-up wait: before a read with one, its first candidate is waited on, in the
//! server, until it has replayed the scope's position or the wait's `max` passed.

use std::future::Future;
use std::pin::Pin;

use sea_orm::DbErr;

use crate::cluster::Plan;
use crate::cluster::Routing;
use crate::connection::record;
use crate::nodes::position;
use crate::nodes::registry::{Node, Nodes};
use crate::observe::counters::Count;
use crate::observe::counters::Counters;
use crate::observe::telemetry::Ryw;
use crate::product::Waited;

/// How long past a catch-up wait's `max` a server that waits itself is given to answer.
const WAIT_GRACE: std::time::Duration = std::time::Duration::from_millis(25);

/// How many of the plan's first candidates its catch-up wait passes over: one if it did not
/// catch up, else none. Called only for a plan with a wait ([`Plan::wait`]); the wait is I/O
/// few reads do: boxed, so that the others' futures do not carry its state.
pub(super) fn skip<'a>(
    parts: Parts<'a>,
    plan: &'a Plan,
) -> Pin<Box<impl Future<Output = usize> + 'a>> {
    Box::pin(async move { usize::from(!catch_up(parts, plan).await) })
}

/// What the wait works with: the node it waits on (`Nodes`), the counts it moves (`Counters`),
/// and the live view it reports to (`Routing`: a proof learned, a failure seen).
pub(super) type Parts<'a> = (&'a Nodes, &'a Counters, &'a Routing);

/// Before a read with a catch-up wait: waits on the first candidate; `true` if it caught
/// up (read there), `false` if not (skip it: the primary is next).
async fn catch_up((nodes, counters, routing): Parts<'_>, plan: &Plan) -> bool {
    let Some((token, max)) = plan.wait() else { return true };
    let id = plan.first();
    let Some(node) = nodes.hold(id) else { return false };
    counters.bump(Count::Waits);
    match replayed(&node, token, max).await {
        Ok(Waited::CaughtUp) => {
            // Proof for the next reads with this token (or an older one), in any scope.
            routing.learn(id, token);
            counters.read_your_writes(Ryw::Waited);
            true
        }
        Ok(Waited::TimedOut) => {
            counters.bump(Count::WaitTimeouts);
            counters.read_your_writes(Ryw::Primary);
            tracing::debug!(target: "rwsplit", node = %node.name(), ?max, "replica did not catch up in time: reading from the primary");
            false
        }
        Err(e) => {
            counters.bump(Count::WaitTimeouts);
            counters.read_your_writes(Ryw::Primary);
            record::note_failure(routing, &node, id, &e);
            false
        }
    }
}

/// Waits up to `max` for `node` to have replayed `token`, in the server (one round trip:
/// [`position::wait_for`]). Bounded as a whole, connection included: a replica that died and
/// is not marked down yet would otherwise hold the read for the pool's acquire timeout (5 s)
/// rather than the wait's `max`; the server is given a moment past `max` to answer. The
/// token's history check (system, timeline) is the router's.
async fn replayed(
    node: &Node,
    token: &rwsplit_core::CausalToken,
    max: std::time::Duration,
) -> Result<Waited, DbErr> {
    let limit = tokio::time::Instant::now() + crate::send::deadline::cap(max) + WAIT_GRACE;
    // The plain pool: the wait is the adapter's own, not reported as the user's.
    match tokio::time::timeout_at(limit, position::wait_for(node.conn(), token, max)).await {
        Ok(looked) => looked.map_err(|e| crate::routing_error::read_on(e, node.name())),
        Err(_) => Ok(Waited::TimedOut),
    }
}
