//! One write attempt: on the primary, in two steps (`sending`), SeaORM's hooks called
//! around them; refused at once when the monitor has the primary marked down; and what its
//! success means for the scope.

use std::future::Future;
use std::pin::Pin;

use rwsplit_core::NodeId;
use sea_orm::{DatabaseConnection, DbErr};

use super::work::{Work, Wrote};
use crate::cluster::{Plan, Routing};
use crate::connection::inner::Inner;
use crate::nodes::registry::{Node, Nodes};
use crate::observe::hooks::{self, Hooks};
use crate::product::Product;
use crate::routing::ctx::Scope;
use crate::send::failure;
use crate::send::sending::Attempt;
use crate::send::sending::{self, End, Taken};
use crate::send::watch::Standings;

/// How a write attempt ended.
type Written<T> = Result<T, Attempt>;

/// What a write attempt works with: the live view that watches it (the primary's standing),
/// the metric hooks it calls as SeaORM would, the product whose two steps it runs.
pub(super) type Parts<'a> = (&'a Routing, &'a Hooks, Product);

/// A write on the primary `id`, in two steps ([`sending`]): taking a
/// connection from `pool`, given up (not sent) as soon as the monitor says the node is not
/// the primary any more — a replica now, another node promoted, or marked down — instead of
/// waiting out the pool's acquire timeout while its port refuses; then sending the
/// statement, waited for until it ends or the monitor marks the node down (its probes fail
/// on connections of their own: a frozen server, a cut network). Then the write is given up
/// with an error saying its outcome is unknown, instead of waiting for the kernel to give
/// up the connection (about 15 minutes); it is never tried again. A slow write on a primary
/// that answers its probes is never cut short. `keep`: another attempt may follow, so an
/// [`INERT`](Work::INERT) work keeps its statement.
///
/// A write sent in two steps passes SeaORM's `DatabaseConnection` by, so its hooks are
/// called here as SeaORM would ([`hooks`]): the metric callback, and with this crate's
/// features SeaORM's `debug-print` line and `tracing-spans` span (if the node's
/// `record_stmt_in_spans`).
async fn watched_write<W: Work>(
    (routing, hooks, product): Parts<'_>,
    id: NodeId,
    node: &Node,
    pool: &DatabaseConnection,
    work: &mut W,
    keep: bool,
) -> Written<W::Output> {
    let standing = || routing.standing(id);
    let changed = || routing.changed(id);
    // Each step's future is boxed where it is made (sqlx's and SeaORM's are kilobytes): the
    // write's own future then stays small, and is not copied whole each time it moves (into
    // its box, into the two steps' race).
    let end = if W::INERT {
        // Nothing is written before it returns: all of it is the first step.
        let run = Box::pin(work.run(pool, !keep));
        let sent = |out| std::future::ready(Ok(out));
        sending::in_steps(run, sent, standing, changed).await
    } else if sending::can_take(pool) {
        sent_with_hooks(routing, hooks, product, (id, node), pool, work).await
    } else {
        // A pool the adapter cannot take a connection from (a mock, a proxy): one step, as
        // SeaORM runs it; the first step only asks the monitor once.
        let ready = std::future::ready(Ok(()));
        let run = move |()| Box::pin(async move { work.run(pool, true).await });
        sending::in_steps(ready, run, standing, changed).await
    };
    end.map_err(|e| match e {
        End::Unsent(e) => Attempt::Unsent(e),
        End::Deposed(s) => Attempt::Deposed(s),
        End::Failed(e) => Attempt::Failed(e),
        End::Unknown => Attempt::GivenUp(crate::send::deadline::write_outcome_unknown(node.name())),
    })
}

/// [`watched_write`]'s two steps on a connection the adapter takes itself, with SeaORM's
/// hooks called around them as its `DatabaseConnection` would: the metric callback's timing
/// (`metric`), `product`'s debug line and span, the watch on node `id` (`routing`).
async fn sent_with_hooks<W: Work>(
    routing: &Routing,
    metric: &Hooks,
    product: Product,
    (id, node): (NodeId, &Node),
    pool: &DatabaseConnection,
    work: &mut W,
) -> Result<W::Output, End> {
    let (mut timing, span) = match work.call() {
        Some(call) => {
            let span = hooks::seaorm_span(&call, product, node.record_stmt());
            hooks::in_scope(span.as_ref(), || hooks::debug_print(&call, product));
            (metric.timing(&call), span)
        }
        None => (None, None),
    };
    let send = |mut conn: Taken| async move {
        if let Some(t) = timing.as_mut() {
            t.start();
        }
        let sent = match work.send(&mut conn) {
            Some(sending) => sending.await,
            // Only inert work (above) is not one statement.
            None => Err(failure::internal("nothing to send")),
        };
        metric.finish(timing, sent.is_err());
        sent
    };
    let standing = || routing.standing(id);
    let changed = || routing.changed(id);
    let send = move |conn| Box::pin(send(conn));
    let end = sending::in_steps(Box::pin(sending::take(pool)), send, standing, changed);
    let end = hooks::in_span_of(span.as_ref(), end).await;
    #[cfg(feature = "tracing-spans")]
    if let Some(span) = &span {
        record_end(span, &end, node.name());
    }
    end
}

/// Records how a write sent in two steps ended in SeaORM's span.
#[cfg(feature = "tracing-spans")]
fn record_end<T>(span: &tracing::Span, end: &Result<T, End>, name: &str) {
    let deposed;
    let error = match end {
        Ok(_) => None,
        Err(End::Unsent(e) | End::Failed(e)) => Some(e),
        Err(End::Deposed(s)) => {
            deposed = sending::deposed(name, *s, true);
            Some(&deposed)
        }
        Err(End::Unknown) => {
            deposed = crate::send::deadline::write_outcome_unknown(name);
            Some(&deposed)
        }
    };
    hooks::record(span, error);
}

/// Writes fail fast, naming the node, when the monitor has marked the primary down: waiting
/// for a pool's acquire timeout would only hang the caller (a write is tried elsewhere only
/// once the monitor names another primary, and only if it was never sent).
/// Read in the plan's snapshot: made a moment ago, and a primary marked down since is the
/// write's watch's to see.
pub(super) fn check_writable(nodes: &Nodes, plan: &Plan) -> Result<(), DbErr> {
    let node = plan.first();
    if plan.marked_down(node) {
        let name = nodes.name_of(node).unwrap_or_default();
        return Err(failure::primary_down(&name));
    }
    Ok(())
}

/// One write attempt of `work` on the primary `id`: boxed, so that a read's future does not
/// carry the write path's state (it would be moved, whole, into the box SeaORM's
/// `async_trait` makes of every statement). `keep`: another attempt may follow.
pub(super) fn attempt<'a, W: Work>(
    parts: Parts<'a>,
    (id, node): (NodeId, &'a Node),
    work: &'a mut W,
    keep: bool,
) -> Pin<Box<impl Future<Output = Written<W::Output>> + 'a>> {
    Box::pin(watched_write(parts, id, node, node.user_writer(), work, keep))
}

/// What a write's success on `id` means for `scope` ([`Wrote`]): the position capture to
/// await (boxed: a read's future need not carry it), or nothing to wait for.
pub(super) fn wrote<'a>(
    inner: &'a Inner,
    wrote: Wrote,
    id: NodeId,
    scope: &'a Scope,
) -> Option<Pin<Box<impl Future + 'a>>> {
    match wrote {
        Wrote::Capture => Some(Box::pin(async move {
            let spawn = || inner.background();
            let (routing, writable) = (&inner.routing, inner.writable());
            inner.causality.after_write(routing, &writable, id, scope, spawn).await;
        })),
        Wrote::Unseen => {
            inner.causality.mark_unseen_writes(&inner.writable(), scope);
            None
        }
        Wrote::Later => None,
    }
}
