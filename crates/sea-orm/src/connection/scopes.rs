//! Read-your-writes scopes: which scope a call uses, recording a write's position in it (read
//! off the request path), and what a transaction's end means for it.
//!
//! A scope is the calling task's, or a [`Session`](crate::Session) (explicit or ambient). After
//! a write its position is read from the primary in a task of its own; while that read is in
//! flight the scope's reads go to the primary. A capture clears only what was pending before
//! the write committed ([`Slot::settle_pending`]), so a `begin()` or an escaped primary
//! connection in between keeps the scope conservative.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rwsplit_core::{CausalToken, NodeId};
use sea_orm::{DbErr, TransactionError};

use super::counters::{Count, Effects};
use super::ctx::monotonic;
use super::ctx::{Ctx, SESSION, Scope};
use super::inner::Inner;
use crate::consistency::{Seen, Slot};
use crate::position;
use crate::sending::Taken;

/// A scope named from outside its task: the task's id (`None`: code outside any task), or
/// the session.
enum Key {
    Task(Option<tokio::task::Id>),
    Session(Arc<crate::consistency::Shared>),
}

/// How a read-write transaction ended, as far as its writes go.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Committed,
    /// The commit failed on the connection: it may or may not have happened.
    Unknown,
    RolledBack,
}

impl Outcome {
    pub(super) fn of<T, E>(r: &Result<T, TransactionError<E>>) -> Outcome {
        match r {
            Ok(_) => Outcome::Committed,
            Err(TransactionError::Connection(_)) => Outcome::Unknown,
            Err(TransactionError::Transaction(_)) => Outcome::RolledBack,
        }
    }
}

/// The scope of a call: its explicit session, else the ambient one, else the task's.
pub(crate) fn scope_of(_inner: &Inner, ctx: &Ctx<'_>) -> Scope {
    match ctx.session {
        Some(s) => Scope::Session(Arc::clone(s)),
        None => SESSION.try_with(|s| Scope::Session(Arc::clone(s))).unwrap_or(Scope::Task),
    }
}

pub(super) fn scope_get(inner: &Inner, scope: &Scope) -> Slot {
    inner.scopes().get(scope)
}

pub(crate) fn scope_update(inner: &Inner, scope: &Scope, f: impl FnOnce(&mut Slot)) {
    inner.scopes().update(scope, f);
}

/// Whether writes in `scope` record their position: read-your-writes is on and some read
/// could go elsewhere than the primary (there are replicas), or the scope is a session,
/// whose token may be exported.
pub(super) fn tracks_writes(inner: &Inner, scope: &Scope) -> bool {
    inner.policy().read_your_writes
        && (inner.nodes().count() > 1 || matches!(scope, Scope::Session(_)))
}

/// Whether reads through `ctx` keep monotonic reads: read-your-writes is on, there are
/// replicas, and the call's level is `Consistency::Session`.
fn tracks_reads(inner: &Inner, ctx: &Ctx<'_>) -> bool {
    inner.policy().read_your_writes
        && inner.nodes().count() > 1
        && monotonic(ctx.consistency.unwrap_or(&inner.policy().consistency))
}

/// A statement planned as `plan` ran on `node` in `scope` (monotonic reads): a read
/// becomes the scope's last read, ended now if `ended` (its result is in), else still
/// reading (a stream, a read-only transaction). Writes record their position instead.
pub(super) fn saw(
    inner: &Inner,
    scope: &Scope,
    ctx: &Ctx<'_>,
    plan: &crate::route::Plan,
    node: rwsplit_core::NodeId,
    ended: bool,
) {
    if plan.access() == rwsplit_core::Access::Read && tracks_reads(inner, ctx) {
        let at = ended.then(std::time::Instant::now);
        scope_update(inner, scope, |s| s.saw(node, at));
        // A read on the primary: its floor is the primary's next sample, and the scope's
        // next read can use a replica once one has it. Asked now, as the read ends, the
        // sample is usually there by then (reads asking meanwhile share one sample; the feed
        // reads at most every quarter interval and its backoff). A next read that comes
        // first, by a caller that waits, reads the primary's position itself
        // (`Io::PrimaryFloor`); a later position than the sample's, which replicas reach
        // later, so the sample is still asked for.
        if ended && plan.snapshot_primary() == Some(node) {
            let floor = Effects { want_floor: Some(node), ..Effects::default() };
            want(inner, &floor, Instant::now());
        }
    }
}

/// Asks the monitor for one position sample of `node` sent from now on (for at most the
/// configured linger): a floor that sample bounds.
pub(super) fn want_sample(inner: &Inner, node: NodeId) {
    if inner.monitor().is_none() {
        return;
    }
    let now = Instant::now();
    let linger = inner.policy().monitor.position_linger_value();
    inner.routing().state().want_sample(node, now, now.checked_add(linger).unwrap_or(now));
}

/// Applies a plan's effects, once, for the plan the statement runs ([`Effects::apply`]).
pub(super) fn apply(inner: &Inner, effects: Effects, now: Instant) {
    let linger = inner.policy().monitor.position_linger_value();
    let monitor = inner.monitor().as_ref().map(|_| &**inner.routing().state());
    effects.apply(inner.counters(), monitor, linger, now);
}

/// Asks the monitor for what a plan wants before the I/O step it needs
/// ([`Effects::want`]): the step may wait on it.
pub(super) fn want(inner: &Inner, effects: &Effects, now: Instant) {
    let linger = inner.policy().monitor.position_linger_value();
    let monitor = inner.monitor().as_ref().map(|_| &**inner.routing().state());
    effects.want(monitor, linger, now);
}

/// A bound of what a scope's last read `seen` saw, for its exported token, without I/O:
/// the monitor's sample if there is one ([`Routing::floor`](crate::route::Routing::floor));
/// else, for a read that ended, its node by name (a replica's replay and a primary's
/// writes only move forward, so whatever the node holds when the token is used bounds the
/// read; a primary read that way is bounded by its position when the resumed scope next
/// reads, only if that read needs it); else (a read still under way: a stream, a read-only
/// transaction) the primary, whose position the caller reads there.
pub(crate) fn export_floor(inner: &Inner, seen: &Seen) -> Export {
    use crate::route::Floor;
    if let Floor::Known(t) = inner.routing().floor(seen) {
        return Export::Floor(t);
    }
    if seen.at.is_some()
        && let Some(n) = inner.nodes().get(seen.node)
    {
        return Export::Node(n.name().to_owned());
    }
    Export::Primary(inner.routing().primary_id().unwrap_or_else(|| inner.primary_index()))
}

/// The id of the node named `name` (`host:port/db`), if this connection has one.
pub(crate) fn node_named(inner: &Inner, name: &str) -> Option<NodeId> {
    inner.nodes().iter().find(|(_, n)| n.name() == name).map(|(id, _)| id)
}

/// Waits, up to `max` and the monitor's probe timeout, for a position sample that bounds
/// what the read `seen` saw (its floor): woken by each sample, no polling. Returns the floor
/// if it came in time.
pub(super) async fn await_floor(
    inner: &Inner,
    seen: &Seen,
    max: std::time::Duration,
) -> Option<CausalToken> {
    use crate::route::Floor;
    let max = max.min(inner.policy().monitor.probe_timeout_value());
    let deadline = tokio::time::Instant::now() + crate::deadline::cap(max);
    let state = inner.routing().state();
    // The node's next sample, at its next feed turn rather than its next full probe.
    want_sample(inner, seen.node);
    loop {
        // Made before the look: a sample landing in between still wakes it.
        let next = state.sampled();
        if let Floor::Known(t) = inner.routing().floor(seen) {
            return Some(t);
        }
        if tokio::time::timeout_at(deadline, next).await.is_err() {
            return None;
        }
    }
}

/// Writes the router cannot see may now happen in `scope` (the primary's connection was
/// handed out, a transaction is committed through SeaORM's own handle): its position
/// becomes pending, so its next read first asks the primary, or reads there.
pub(super) fn mark_unseen_writes(inner: &Inner, scope: &Scope) {
    if tracks_writes(inner, scope) {
        scope_update(inner, scope, Slot::mark_pending);
    }
}

/// The primary's position now, from `node`'s writable pool.
pub(crate) async fn capture_on(
    inner: &Inner,
    node: rwsplit_core::NodeId,
) -> Result<CausalToken, DbErr> {
    capture_at(inner, node, None).await
}

/// The primary's position now: read on `taken` (a connection of `node`'s writable pool) if
/// given, else on a connection of that pool's — or taken from a read sent after this call
/// began, shared with other writes ([`Coalesce`](crate::consistency::causal::ScopeStore::captures)).
async fn capture_at(
    inner: &Inner,
    node: rwsplit_core::NodeId,
    taken: Option<&mut Taken>,
) -> Result<CausalToken, DbErr> {
    inner.scopes().captures().position(node, || capture_now(inner, node, taken)).await
}

/// One position read of `node`, on `taken` if given.
async fn capture_now(
    inner: &Inner,
    node: rwsplit_core::NodeId,
    taken: Option<&mut Taken>,
) -> Result<CausalToken, DbErr> {
    let n = inner.nodes().get(node).ok_or_else(|| {
        let name = inner.nodes().removed_name(node);
        DbErr::from(crate::routing_error::RoutingError::node_removed(node, name.as_deref()))
    })?;
    let cached = n.system_id();
    let mut on = match taken {
        Some(t) => position::On::Taken(t),
        None => position::On::Pool(n.writer()),
    };
    match inner.product().capture(&mut on, cached).await {
        Ok((token, system_id)) => {
            n.set_system_id(system_id);
            inner.counters().bump(Count::Captures);
            // The scope will read soon: the replicas' feeds run until each has the write
            // (and no longer), so that read finds one known to have it.
            if inner.monitor().is_some() {
                let linger = inner.policy().monitor.position_linger_value();
                let until = std::time::Instant::now().checked_add(linger);
                if let Some(until) = until {
                    inner.routing().state().want_replayed(&token, until);
                }
            }
            Ok(token)
        }
        Err(e) => {
            inner.counters().bump(Count::CaptureFailures);
            Err(crate::routing_error::read_on(e, n.name()))
        }
    }
}

/// A write committed on `node`: the primary's position is read off the request path, in a
/// task of its own, and recorded in the scope when it arrives; meanwhile the scope counts
/// it in flight and its reads go to the primary (a replica could not have the write yet
/// anyway). The write has succeeded whatever happens here; if the position cannot be read,
/// the scope is marked pending instead (its next read asks again, or goes to the primary).
/// `taken`: the connection the write committed on, read on before it goes back to the pool
/// ([`position::On`]); without it, a connection of the pool's.
pub(super) async fn after_write(
    inner: &Inner,
    node: rwsplit_core::NodeId,
    scope: &Scope,
    taken: Option<Taken>,
) {
    if !tracks_writes(inner, scope) {
        return;
    }
    let key = match scope {
        Scope::Task => Key::Task(tokio::task::try_id()),
        Scope::Session(s) => Key::Session(Arc::clone(s)),
    };
    // Live while a statement of the connection runs (it holds the connection).
    let (Ok(runtime), Some(db)) = (tokio::runtime::Handle::try_current(), inner.me().upgrade())
    else {
        let epoch = key_update(inner, &key, |s| s.pending_epoch);
        finish_capture(inner, node, false, &key, epoch, taken).await;
        return;
    };
    let epoch = key_update(inner, &key, |s| {
        s.inflight += 1;
        s.pending_epoch
    });
    runtime.spawn(async move {
        finish_capture(&db, node, true, &key, epoch, taken).await;
    });
}

/// Reads the position after a write (on `taken`, the write's connection, if given) and
/// records it under `key`; `counted`: the capture was counted in flight; `epoch`: the
/// scope's pending epoch when the write committed (the read clears only what was pending
/// then).
async fn finish_capture(
    inner: &Inner,
    node: rwsplit_core::NodeId,
    counted: bool,
    key: &Key,
    epoch: u64,
    mut taken: Option<Taken>,
) {
    let sent = std::time::Instant::now();
    let result = capture_at(inner, node, taken.as_mut()).await;
    // Given back to the pool (which tests it first) as soon as the position is read.
    drop(taken);
    // Whatever the outcome, the reads waiting for this scope's positions to land look again.
    let _landed = inner.scopes().landing();
    let done = |s: &mut Slot| {
        if counted {
            s.inflight = s.inflight.saturating_sub(1);
        }
    };
    match result {
        Ok(token) => key_update(inner, key, |s| {
            s.record(&token);
            s.covers_reads_before(sent);
            s.settle_pending(epoch);
            done(s);
        }),
        Err(e) => {
            tracing::warn!(target: "rwsplit", node = %inner.nodes().get(node).map_or_else(String::new, |n| n.name().to_owned()), error = %e, "could not read the primary's position after a write; the next read in this scope goes to the primary");
            key_update(inner, key, |s| {
                s.mark_pending();
                done(s);
            });
        }
    }
}

fn key_update<R>(inner: &Inner, key: &Key, f: impl FnOnce(&mut Slot) -> R) -> R {
    match key {
        Key::Task(id) => inner.scopes().update_task(*id, f),
        Key::Session(s) => s.update(f),
    }
}

/// The scope's state once its position reads in flight have landed, waiting up to `max`:
/// woken as each capture lands (no polling), bounded by one timer.
pub(crate) async fn settled_slot(inner: &Inner, scope: &Scope, max: Duration) -> Slot {
    let deadline = tokio::time::Instant::now() + crate::deadline::cap(max);
    loop {
        // Made before the look: a capture landing in between still wakes it.
        let landed = inner.scopes().landed();
        let slot = scope_get(inner, scope);
        if slot.inflight == 0 {
            return slot;
        }
        if tokio::time::timeout_at(deadline, landed).await.is_err() {
            return scope_get(inner, scope);
        }
    }
}

/// After a read-write transaction on `node`: committed → record the position; a commit
/// that failed on the connection may or may not have happened → the position is pending
/// (the next read asks the primary, or reads there); rolled back → nothing.
pub(super) async fn after_transaction(
    inner: &Inner,
    node: rwsplit_core::NodeId,
    scope: &Scope,
    outcome: Outcome,
) {
    match outcome {
        Outcome::Committed => after_write(inner, node, scope, None).await,
        Outcome::Unknown => mark_unseen_writes(inner, scope),
        Outcome::RolledBack => {}
    }
}

/// How a scope's last read is carried in its exported token ([`export_floor`]).
#[derive(Debug)]
pub(crate) enum Export {
    /// A position at or past what it saw.
    Floor(CausalToken),
    /// The name of the replica it was on.
    Node(String),
    /// The position of this primary, to be read there.
    Primary(NodeId),
}
