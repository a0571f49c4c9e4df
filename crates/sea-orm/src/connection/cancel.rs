//! Cancelling a hedged read's losing attempt on its server.
//!
//! When the hedge of a read answers first, the attempt it beat is dropped: its connection is
//! closed rather than returned to the pool (for a read straight on the sqlx pool, as reads run
//! unless SeaORM's hooks listen: [`crate::sending`]), but the server goes on running the
//! statement until it ends (a frozen replica, once thawed; a slow one, for as long as the
//! statement takes). [`losing`] then asks that server to cancel it
//! ([`Product::cancel`](crate::product::Product::cancel): `pg_cancel_backend` of the one
//! matching backend on PostgreSQL, `KILL QUERY ID` of the one matching execution on MariaDB),
//! and likewise when the first attempt answers and the hedge loses.
//!
//! It is fire-and-forget and bounded: a task of its own, given up after [`CANCEL_WITHIN`]
//! (the node may be frozen, and then nothing it is sent is read until it thaws), at most one
//! per node at a time (a frozen node's reads all lose at once: the others are not cancelled),
//! each counted ([`Hedges::cancelled`](crate::Hedges::cancelled),
//! [`Hedges::not_cancelled`](crate::Hedges::not_cancelled) and
//! `rwsplit_hedged_reads_total{outcome=cancelled|not_cancelled}`). Only statements on replicas
//! are cancelled: on a primary the same text could be a write (a shape learned as one), and a
//! write is never cut short.

use std::time::{Duration, Instant};

use super::counters::Count;
use super::inner::Inner;
use super::nodes::NodeRef;

/// The longest a cancel is waited for: connecting, finding the statement, cancelling it.
pub(crate) const CANCEL_WITHIN: Duration = Duration::from_secs(1);

/// Cancels the statement `sql` that a read began on replica `node` at `started` and then
/// abandoned, on a task of its own (see the module docs); counted on `inner`.
pub(crate) fn losing(inner: &Inner, node: NodeRef, sql: &str, started: Instant) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    // A node the monitor has marked down reads nothing it is sent (frozen) or has no
    // statement left to cancel (gone): nothing is sent.
    let cancelling =
        if inner.routing().standing(node.id()).is_down() { None } else { node.try_begin_cancel() };
    let Some(cancelling) = cancelling else {
        // Marked down, or one cancel at a time per node: this one is let go.
        counted(inner, &node, false);
        return;
    };
    let (me, product, sql) = (inner.me().clone(), inner.product(), sql.to_owned());
    runtime.spawn(async move {
        let ran = started.elapsed().saturating_add(SLACK);
        let asked = Instant::now();
        let cancel = product.cancel(node.conn(), &sql, ran);
        let cancelled = match tokio::time::timeout(CANCEL_WITHIN, cancel).await {
            Ok(Ok(cancelled)) => {
                // The node answered: it is busy, not silent, and reads need not pass it over
                // until its next probe (a hedge that won left it no answer of its own).
                node.pace().probed(Instant::now(), asked.elapsed());
                cancelled
            }
            Ok(Err(e)) => {
                tracing::debug!(target: "rwsplit", node = %node.name(), error = %e, "a hedged read's losing attempt could not be cancelled");
                false
            }
            Err(_) => {
                tracing::debug!(target: "rwsplit", node = %node.name(), within = ?CANCEL_WITHIN, "a hedged read's losing attempt could not be cancelled in time");
                false
            }
        };
        // The node's next cancel may start.
        drop(cancelling);
        if let Some(inner) = me.upgrade() {
            counted(&inner, &node, cancelled);
        }
    });
}

/// How much longer than the read's own wait the statement may have run on the server by the
/// time the cancel looks for it (the cancel's connection and round trip).
const SLACK: Duration = Duration::from_millis(100);

fn counted(inner: &Inner, node: &NodeRef, cancelled: bool) {
    if cancelled {
        inner.counters().bump(Count::HedgesCancelled);
        crate::telemetry::hedge(node.labels(), "cancelled");
    } else {
        inner.counters().bump(Count::HedgesNotCancelled);
        crate::telemetry::hedge(node.labels(), "not_cancelled");
    }
}
