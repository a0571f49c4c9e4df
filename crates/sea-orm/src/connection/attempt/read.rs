//! One read attempt on a node: its boxed forms ([`rare`]: not sent to a primary the monitor
//! has marked down, which is rare; hedgeable on the plan's next node, `hedge.rs`, which is
//! most replica reads while hedging is on), else the plain one ([`bounded`]: by time and the
//! monitor, `crate::send::watch`; straight on the sqlx pool when nothing listens to SeaORM's
//! layer): a read on the primary, the plan's last node, or with hedging off.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use futures_util::future::Either;
use rwsplit_core::NodeId;

use super::hedge::{self, Hedged};
use super::work::Work;
use crate::cluster::Plan;
use crate::cluster::Routing;
use crate::nodes::registry::Node;
use crate::send::deadline::Timeouts;
use crate::send::sending::Attempt;
use crate::send::sending::{self, Standing};
use crate::send::watch::{self, Standings};

/// Where and when a read attempt runs.
#[derive(Clone, Copy)]
pub(super) struct At<'a> {
    pub(super) id: NodeId,
    pub(super) node: &'a Node,
    /// The node is the plan's snapshot's primary.
    pub(super) on_primary: bool,
    /// No candidate of the plan follows.
    pub(super) last: bool,
    /// Attempts made before this plan's.
    pub(super) earlier: usize,
    pub(super) started: Instant,
    /// The caller's deadline.
    pub(super) deadline: Option<Instant>,
}

/// A read attempt's boxed forms, so that the plain one's future does not carry them: not
/// sent, to a primary the monitor has marked down (rare: its pool would be waited on for the
/// acquire timeout, connecting to a dead server being retried until then: the read moves on,
/// or fails at once saying why); hedgeable on `following`, the plan's node after this one
/// (most replica reads while hedging is on; the hedge itself is rare). `None`: the form
/// without either, [`bounded`].
pub(super) fn rare<'a, W: Work>(
    parts: hedge::Parts<'a>,
    plan: &'a Plan,
    work: &'a W,
    at: At<'a>,
    following: Option<NodeId>,
) -> Option<Pin<Box<impl Future<Output = Hedged<W::Output>> + 'a>>> {
    let At { id, node, on_primary, started, deadline, .. } = at;
    if on_primary && parts.routing.standing(id) == Standing::Down {
        let down = Attempt::GivenUp(crate::send::deadline::already_down(node.name()));
        return Some(Box::pin(Either::Left(std::future::ready(Hedged::First(Err(down))))));
    }
    let hedgeable = W::HEDGE && !on_primary && parts.planner.policy().hedged_reads;
    let other = following.filter(|_| hedgeable)?;
    let read = hedge::hedgeable(parts, plan, work, (id, node), other, (started, deadline));
    Some(Box::pin(Either::Right(read)))
}

/// A read attempt's common form: bounded on its node (`crate::send::watch`), straight on the sqlx pool
/// when nothing listens to SeaORM's layer. Not an `async fn`: the loop awaits the bounded
/// future itself, as when it held it inline.
pub(super) fn bounded<'a, W: Work>(
    (routing, timeouts): (&'a Routing, &Timeouts),
    work: &'a mut W,
    at: At<'a>,
) -> impl Future<Output = Result<W::Output, Attempt>> + 'a {
    let At { id, node, on_primary, last, earlier, started, deadline } = at;
    // A read on the primary may run once more on a new primary: it keeps its statement.
    let on_replica = !on_primary;
    let limit = crate::send::deadline::attempt_limit(on_replica, timeouts, deadline, started);
    let pool = if W::WRITER { node.user_writer() } else { node.user_conn() };
    // Straight on the sqlx pool when nothing listens to SeaORM's layer: no clone of the
    // statement for a retry, no second boxed future.
    let direct = if W::DIRECT && node.reads_direct() { sending::direct(pool) } else { None };
    let run = match direct {
        // Boxed, as SeaORM boxes its own: sqlx's futures are kilobytes, and a read's future
        // is moved whole into SeaORM's `async_trait` box.
        Some(d) => Either::Left(Box::pin(work.direct(d))),
        // A read on a replica keeps it too: the replica may refuse it as a write, and then
        // it runs on the primary.
        None => Either::Right(work.read(pool, last && earlier > 0)),
    };
    watch::bounded(routing, id, on_replica, node.name(), limit, run)
}
