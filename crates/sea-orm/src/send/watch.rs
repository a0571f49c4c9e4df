//! A read attempt's budget: bounded by time (the replica read timeout, the caller's
//! deadline: `deadline`) and by the monitor's word on its node ([`Watch`]: no timer, no
//! polling). What it needs of the routing state is the narrow [`Standings`], which
//! `cluster::Routing` implements.

use std::future::Future;

use rwsplit_core::NodeId;
use sea_orm::DbErr;
use tokio::sync::futures::Notified;

use super::sending::Attempt;
use super::sending::Standing;

/// What a watch asks of the routing state: a node's standing as the monitor sees it now,
/// how many changes of its role or health were announced (and nudges), and the next one.
pub(crate) trait Standings: Sync {
    /// `node`'s standing now.
    fn standing(&self, node: NodeId) -> Standing;
    /// The count of `node`'s announced changes and nudges: a watch polls
    /// [`changed`](Self::changed) again only when it moved.
    fn wake_ups(&self, node: NodeId) -> u64;
    /// Completes at `node`'s next announced change (or nudge).
    fn changed(&self, node: NodeId) -> Notified<'_>;
}

/// One read attempt on node `id` (`routing`: the connection's), bounded: by the replica statement deadline if one is
/// set, by what is left of the caller's own deadline, and by the monitor. On a replica: once
/// it marks the node down (a hung server keeps its port open, so its probes time out), the
/// attempt is given up and the read moves on. On the primary: once it sees the node stop
/// being the primary (a switchover: the old primary's port refuses while it restarts as a
/// replica, and the read would wait out the pool's acquire timeout), the attempt is given up
/// and the read runs once on the new primary; being marked down alone does not end it (the
/// primary is the last resort). A slow read on a healthy node is not cut short.
#[expect(clippy::manual_async_fn, reason = "an async fn keeps its arguments twice in its future")]
pub(crate) fn bounded<'a, T: 'a, R: Standings>(
    routing: &'a R,
    id: NodeId,
    on_replica: bool,
    name: &'a str,
    limit: Option<(std::time::Duration, crate::routing_error::TimeLimit)>,
    attempt: impl Future<Output = Result<T, DbErr>> + 'a,
) -> impl Future<Output = Result<T, Attempt>> + 'a {
    async move {
        use std::task::Poll;
        // A timer only for a read with a limit (boxed: most reads have none, and their future
        // should not carry one).
        let mut timer = limit.map(|(l, _)| Box::pin(tokio::time::sleep(l)));
        // A replica: given up once marked down. The primary: once it is not the up primary
        // any more (replaced: the read runs once more on the new one; marked down: it fails
        // at once, typed, instead of waiting for a pool or a server that will not answer).
        let watched: fn(Standing) -> bool =
            if on_replica { Standing::is_down } else { Standing::serves_no_more };
        let mut attempt = std::pin::pin!(attempt);
        let changed = std::pin::pin!(routing.changed(id));
        let mut watch = Watch { routing, node: id, done: watched, changed, seen: None };
        // The read first: an answer that is there wins over a limit reached at the same time.
        std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = attempt.as_mut().poll(cx) {
                return Poll::Ready(r.map_err(Attempt::Failed));
            }
            if let (Some(t), Some(l)) = (timer.as_mut(), limit)
                && t.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(Err(Attempt::GivenUp(crate::send::deadline::timed_out(
                    name, l,
                ))));
            }
            if watch.fired(cx) {
                return Poll::Ready(Err(if on_replica {
                    Attempt::GivenUp(crate::send::deadline::marked_down(name))
                } else {
                    // As it stands now (back up already: as marked down, which it was).
                    match routing.standing(id) {
                        Standing::Primary => Attempt::Deposed(Standing::Down),
                        s => Attempt::Deposed(s),
                    }
                }));
            }
            Poll::Pending
        })
        .await
    }
}

/// A statement's watch on its node's standing: fires once `done` holds for it, checked when the
/// statement first waits and again at each change of the node's role or health the monitor
/// announces — no timer, no polling of the monitor.
///
/// It is polled at every poll of its statement, so it keeps that cheap: its notification
/// future is registered (with the task's waker) on the first poll, and polled again only when
/// the node's announced change count moved or the task's waker is another one; any other poll
/// costs one atomic load and a waker comparison.
struct Watch<'a, 'p, R> {
    routing: &'a R,
    node: NodeId,
    done: fn(Standing) -> bool,
    /// Made before the standing is first checked, so a change in between completes it.
    changed: std::pin::Pin<&'p mut tokio::sync::futures::Notified<'a>>,
    /// The change count when the standing was last checked, and the waker registered then
    /// (`None`: not checked yet).
    seen: Option<(u64, std::task::Waker)>,
}

impl<R: Standings> Watch<'_, '_, R> {
    /// Whether `done` holds for the node now (registering `cx`'s waker for the next change).
    fn fired(&mut self, cx: &mut std::task::Context<'_>) -> bool {
        let count = self.routing.wake_ups(self.node);
        if let Some((seen, waker)) = &self.seen
            && *seen == count
            && same_task(waker, cx.waker())
        {
            return false;
        }
        loop {
            // The count before the standing: a change announced after this read moves it again.
            let count = self.routing.wake_ups(self.node);
            if (self.done)(self.routing.standing(self.node)) {
                return true;
            }
            if self.changed.as_mut().poll(cx).is_pending() {
                self.seen = Some((count, cx.waker().clone()));
                return false;
            }
            // Notified: wait for the next change, made before the standing is read again.
            self.changed.set(self.routing.changed(self.node));
        }
    }
}

/// Whether two wakers wake the same task: `will_wake`, or the same data pointer (a clone of
/// tokio's waker may carry another copy of the same vtable, which `will_wake` tells apart).
fn same_task(a: &std::task::Waker, b: &std::task::Waker) -> bool {
    a.will_wake(b) || (!a.data().is_null() && std::ptr::eq(a.data(), b.data()))
}
