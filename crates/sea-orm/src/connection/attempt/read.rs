//! One read attempt on a node, whole: its plain form ([`bounded`]: by time and the monitor,
//! `crate::send::watch`; straight on the sqlx pool when nothing listens to SeaORM's layer), and
//! its boxed forms ([`rare`]): not sent to a primary the monitor has marked down, which is rare,
//! or hedgeable on the plan's next node ([`hedgeable`]), which is most replica reads while
//! hedging is on. The plain form is a read on the primary, the plan's last node, or with
//! hedging off.
//!
//! A hedged read is started when the watchdog finds the first node silent past its hedge delay
//! and the hedge ration allows. The ration, the watchdog, the race, who wins, the loser dropped
//! and the counts are `crate::hedge`'s ([`Hedging`]); here what needs the connection's other
//! parts ([`Parts`], what this step holds): the nodes held, the reads bounded, a won hedge
//! recorded.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use futures_util::future::Either;
use rwsplit_core::NodeId;
use sea_orm::DbErr;

use super::work::Work;
use crate::cluster::Plan;
use crate::cluster::Routing;
use crate::connection::record::Record;
use crate::hedge::hedging::Hedging;
use crate::hedge::race::Raced;
use crate::nodes::registry::{Node, Nodes};
use crate::routing::ctx::Policy;
use crate::send::deadline::Timeouts;
use crate::send::sending::{Attempt, Standing};
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
    parts: Parts<'a>,
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
    let policy = parts.policy;
    let may_hedge = W::HEDGE && !on_primary && policy.hedged_reads;
    let other = following.filter(|_| may_hedge)?;
    let times = (started, deadline, &policy.timeouts);
    let read = hedgeable(parts, plan, work, (id, node), other, times);
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
    // Straight on the sqlx pool when nothing listens to SeaORM's layer: no clone of the
    // statement for a retry, no second boxed future.
    let direct = if W::DIRECT { node.direct(W::WRITER) } else { None };
    let run = match direct {
        // Boxed, as SeaORM boxes its own: sqlx's futures are kilobytes, and a read's future
        // is moved whole into SeaORM's `async_trait` box.
        Some(d) => Either::Left(Box::pin(work.direct(d))),
        // A read on a replica keeps it too: the replica may refuse it as a write, and then
        // it runs on the primary.
        None => {
            let pool = if W::WRITER { node.user_writer() } else { node.user_conn() };
            Either::Right(work.read(pool, last && earlier > 0))
        }
    };
    watch::bounded(routing, id, on_replica, node.name(), limit, run)
}

/// What a hedgeable read works with: hedging (the ration, the watchdog, the race), the live
/// view its attempts are watched by and recorded to, the registry its hedge's node is held
/// from, the policy (whether reads are hedged, their timeouts), and the metrics' system name.
#[derive(Clone, Copy)]
pub(super) struct Parts<'a> {
    pub(super) hedging: &'a Hedging,
    pub(super) routing: &'a Routing,
    pub(super) nodes: &'a Nodes,
    pub(super) policy: &'a Policy,
    pub(super) system_name: &'static str,
}

/// How a hedged read ended ([`hedgeable`]).
pub(super) enum Hedged<T> {
    /// The first attempt's outcome (no hedge, or the hedge failed or lost).
    First(Result<T, Attempt>),
    /// The hedge answered first.
    By(T, Hedge),
}

/// The node a hedged read's answer came from.
pub(super) struct Hedge {
    id: NodeId,
    node: crate::nodes::NodeRef,
    guard: Option<rwsplit_core::InFlight>,
    started: Instant,
}

/// A read of `work` on `node` that leaves `work` as it is: straight on the sqlx pool where the
/// node's reads may be ([`Node::direct`]), else through SeaORM's connection. Boxed where it
/// is made, as the read path boxes its own: sqlx's futures are kilobytes, and every future
/// that holds one unboxed is copied whole each time it moves (into the attempt, into its box).
fn read_shared<'a, W: Work>(
    work: &'a W,
    node: &'a Node,
) -> std::pin::Pin<Box<dyn Future<Output = Result<W::Output, DbErr>> + Send + 'a>> {
    let direct = if W::DIRECT { node.direct(false) } else { None };
    match direct {
        Some(d) => Box::pin(work.direct(d)),
        None => Box::pin(work.shared(node.user_conn())),
    }
}

/// A read on replica `first` (`.0`, its node `.1`) that may be hedged on `other`: it waits
/// on its node, bounded as any read, and on the watchdog's word that the node has gone
/// silent past its hedge delay (no timer of its own); then [`send_hedge`].
/// `times`: when the attempt started, the caller's deadline, the policy's timeouts.
pub(super) async fn hedgeable<W: Work>(
    parts: Parts<'_>,
    plan: &Plan,
    work: &W,
    first: (NodeId, &Node),
    other: NodeId,
    times: (Instant, Option<Instant>, &Timeouts),
) -> Hedged<W::Output> {
    let (id, node) = first;
    let (started, deadline, timeouts) = times;
    let begun = parts.hedging.read_began(id, started);
    let limit = crate::send::deadline::attempt_limit(true, timeouts, deadline, started);
    let first =
        watch::bounded(parts.routing, id, true, node.name(), limit, read_shared(work, node));
    let mut first = std::pin::pin!(first);
    // The attempt's watch wakes it when the watchdog nudges the node (no waiter of its
    // own): then, if the node was found silent since this read began, it is hedged.
    let answered = begun.until_overdue(first.as_mut()).await;
    match answered {
        Some(r) => Hedged::First(r),
        None => send_hedge(parts, plan, work, first.as_mut(), (id, node), other).await,
    }
}

/// A read waiting on replica `node` whose node the watchdog found silent past its hedge
/// delay: if the budget allows ([`Hedging::spend`](crate::hedge::hedging::Hedging::spend)), the
/// same read goes to `other` (the plan's next node, which satisfies the same consistency) as
/// well, and the first answer wins; the other attempt is dropped
/// ([`Hedging::race`](crate::hedge::hedging::Hedging::race)). Either attempt failing
/// leaves the other to finish. Each attempt is bounded as [`watch::bounded`] bounds it.
async fn send_hedge<W: Work, F>(
    parts: Parts<'_>,
    plan: &Plan,
    work: &W,
    first: std::pin::Pin<&mut F>,
    (first_id, node): (NodeId, &Node),
    other: NodeId,
) -> Hedged<W::Output>
where
    F: Future<Output = Result<W::Output, Attempt>>,
{
    let Some(hedge_node) = parts.nodes.hold(other) else {
        return Hedged::First(first.await);
    };
    if !parts.hedging.spend() {
        return Hedged::First(first.await);
    }
    let now = Instant::now();
    tracing::info!(target: "rwsplit", node = %node.name(), hedge = %hedge_node.name(), after = ?parts.hedging.delay_of(first_id), "read unanswered: hedged on another node");
    let on_replica = plan.snapshot_primary() != Some(other);
    let timeouts = &parts.policy.timeouts;
    let limit = crate::send::deadline::attempt_limit(
        on_replica,
        timeouts,
        crate::send::deadline::current(),
        now,
    );
    let guard = plan.start(other, now);
    let second = read_shared(work, &hedge_node);
    let second = watch::bounded(parts.routing, other, on_replica, hedge_node.name(), limit, second);
    match parts.hedging.race(first, second, node.labels()).await {
        Raced::First(r) => Hedged::First(r),
        Raced::Second(out) => {
            let hedge = Hedge { id: other, node: hedge_node.clone(), guard, started: now };
            Hedged::By(out, hedge)
        }
    }
}

/// The hedge answered first: its attempt is the read's, recorded as a success (the first
/// attempt was dropped, and counted, by [`send_hedge`]).
pub(super) fn won<W: Work>(
    parts: Parts<'_>,
    plan: &Plan,
    work: &W,
    out: W::Output,
    hedge: Hedge,
) -> (W::Output, NodeId) {
    let on_primary = plan.snapshot_primary().unwrap_or(NodeId::new(0)) == hedge.id;
    let on = (&*hedge.node, hedge.id, on_primary, false);
    let to = (parts.routing, parts.hedging, parts.system_name);
    let served = Record::new(to, plan, work.sql(), on, (hedge.started, hedge.guard));
    served.succeeded(Instant::now());
    (out, hedge.id)
}
