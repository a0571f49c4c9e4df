//! Read-your-writes scopes: where the causal token of a write is kept until a read needs it.
//!
//! - Each tokio task has one automatically ([`TaskScopes`]): a task that writes and then reads
//!   sees its write (an HTTP/1 connection's requests share a task; so do SeaORM's
//!   insert-then-reread on MySQL).
//! - A [`Session`](crate::Session) carries one explicitly, across tasks, and can be exported as
//!   a string and resumed in another process.
//!
//! A scope holds the token (the primary's position at or past the scope's last write), the
//! number of position reads still under way after writes (reads meanwhile go to the primary),
//! and a *pending* flag: a write committed whose position is not known yet (a transaction begun with
//! `begin()` commits through SeaORM's own `DatabaseTransaction`, which the adapter does not
//! see, or the capture after a write failed). A read in a pending scope asks the primary for its
//! position first (which is at or past the commit by then), or reads from the primary if it
//! cannot.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use rwsplit_core::{CausalToken, NodeId};
use tokio::task::Id;

/// Where a scope last read (monotonic reads): everything the scope has read so far is at most
/// what `node` had replayed (or, the primary, written) at `at`. Each read replaces it, which
/// is sound because a read only goes where that bound already holds (see
/// [`Slot::seen`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    /// The node of the latest read.
    pub(crate) node: NodeId,
    /// When that read had ended; `None` while it may still be reading (a stream, a read-only
    /// transaction begun with `begin()`): no sample can bound it yet.
    pub(crate) at: Option<Instant>,
}

/// A scope's state.
#[derive(Debug, Clone, Default)]
pub(crate) struct Slot {
    pub(crate) token: Option<CausalToken>,
    pub(crate) pending: bool,
    /// Position reads after writes still under way.
    pub(crate) inflight: u32,
    /// When the scope last changed (tokens, pending, in-flight count): scopes are swept by age.
    pub(crate) touched: Option<Instant>,
    /// Bumped each time the scope is marked pending, so that a position read only clears what
    /// was pending when it was taken (see [`Slot::settle_pending`]).
    pub(crate) pending_epoch: u64,
    /// A token from outside (a session resumed from text) further ahead than the primary's
    /// last known position: held apart until the next read reads the primary's current
    /// position and lowers it to that ([`Slot::settle`]).
    pub(crate) external: Option<CausalToken>,
    /// The scope's latest read, for monotonic reads. Its bound is the node's position in the
    /// first monitor sample sent after `at`; until there is one, the scope's next read goes
    /// to that node (a replica's replay only moves forward) or the primary (at or past every
    /// replica), and either way the new read's own `Seen` bounds everything read before.
    pub(crate) seen: Option<Seen>,
}

impl Slot {
    pub(crate) fn record(&mut self, token: &CausalToken) {
        match &mut self.token {
            Some(t) => t.merge(token),
            None => self.token = Some(token.clone()),
        }
        self.touched = Some(Instant::now());
    }

    /// A write committed whose position is not known yet.
    pub(crate) fn mark_pending(&mut self) {
        self.pending = true;
        self.pending_epoch = self.pending_epoch.wrapping_add(1);
        self.touched = Some(Instant::now());
    }

    /// A position read taken while the scope's epoch was `epoch` has landed: it covers every
    /// write pending then, but not one marked pending since (a transaction begun after the
    /// read was sent commits later, unseen), which stays pending.
    pub(crate) fn settle_pending(&mut self, epoch: u64) {
        if self.pending_epoch == epoch {
            self.pending = false;
        }
    }

    /// The write pending alone since epoch `epoch`, acknowledged by the primary `primary` at
    /// `acked`, is left to the primary's samples instead of a position read: the scope's last
    /// read becomes a read on the primary at `acked` (or at its own end, if later), whose
    /// floor — the primary's position in its first sample sent after that — holds the write
    /// and everything the scope read (the primary is at or past every replica at any instant),
    /// and the scope is no longer pending. Until that sample is known the scope's reads stay
    /// on the primary ([`Seen`]). Nothing changes (`false`) once the scope is pending for more
    /// than that write (writes it cannot see may commit later), or while its last read may
    /// still be reading (no instant bounds it yet).
    pub(crate) fn leave_to_primary(&mut self, primary: NodeId, acked: Instant, epoch: u64) -> bool {
        if !self.pending || self.pending_epoch != epoch || self.inflight > 0 {
            return false;
        }
        let at = match self.seen {
            None => acked,
            Some(Seen { at: Some(at), .. }) => at.max(acked),
            Some(Seen { at: None, .. }) => return false,
        };
        self.pending = false;
        self.seen = Some(Seen { node: primary, at: Some(at) });
        self.touched = Some(Instant::now());
        true
    }

    /// A read on `node` ended at `at` (`None`: may still be reading).
    pub(crate) fn saw(&mut self, node: NodeId, at: Option<Instant>) {
        self.seen = Some(Seen { node, at });
        // `touched` is the task scopes' to set (sessions are never swept).
    }

    /// The primary's position, read by a query sent at `sent`, was just recorded: it is at or
    /// past everything any node had replayed by then, so it bounds a last read that had ended
    /// by `sent`, whose [`Seen`] is no longer needed (the next read need not stay on its node).
    /// A read that ended later, or may still be reading, keeps its `Seen`.
    pub(crate) fn covers_reads_before(&mut self, sent: Instant) {
        if self.seen.is_some_and(|s| s.at.is_some_and(|at| at <= sent)) {
            self.seen = None;
        }
    }

    /// Holds a token from outside until it is checked against the primary's position.
    pub(crate) fn hold(&mut self, token: &CausalToken) {
        match &mut self.external {
            Some(t) => t.merge(token),
            None => self.external = Some(token.clone()),
        }
        self.touched = Some(Instant::now());
    }

    /// With `primary`, the primary's position read just now (while the scope's pending epoch
    /// was `epoch`): a held token is lowered to it (a token from the future becomes "now") and
    /// recorded; a pending scope records it and is settled as far as that read covers.
    pub(crate) fn settle(&mut self, primary: &CausalToken, epoch: u64) {
        if let Some(mut external) = self.external.take() {
            external.clamp_to(primary.position());
            self.record(&external);
        }
        if self.pending {
            self.record(primary);
            self.settle_pending(epoch);
        }
    }

    /// The token with any held one merged in, as it came.
    pub(crate) fn with_external(&self) -> Option<CausalToken> {
        match (&self.token, &self.external) {
            (Some(t), Some(e)) => Some(t.clone().merged(e)),
            (t, e) => t.clone().or_else(|| e.clone()),
        }
    }

    fn is_empty(&self) -> bool {
        self.token.is_none()
            && self.external.is_none()
            && !self.pending
            && self.inflight == 0
            && self.seen.is_none()
    }
}

/// One token holder behind a lock: a session's, or the state of code outside any task.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    slot: Mutex<Slot>,
    /// Set before the first change and never cleared: until then the slot is known empty
    /// without taking the lock (a session or a program that only reads).
    used: AtomicBool,
}

impl Shared {
    pub(crate) fn get(&self) -> Slot {
        if !self.used.load(Ordering::Acquire) {
            return Slot::default();
        }
        self.slot.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut Slot) -> R) -> R {
        self.used.store(true, Ordering::Release);
        f(&mut self.slot.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The scope a call's writes are recorded in and its reads consult: its task's, or a
/// session's.
pub(crate) enum Scope {
    Task,
    Session(Arc<Shared>),
}

/// The automatic per-task scopes.
#[derive(Debug, Default)]
pub(crate) struct TaskScopes {
    /// foldhash: a task id is one word, and std's SipHash of it costs more than the lookup.
    tasks: DashMap<Id, Slot, foldhash::fast::RandomState>,
    /// At least the number of entries in `tasks`: raised before one is inserted, lowered after
    /// one is removed. At zero no task holds a scope and a read skips the lookup; a task that
    /// inserted its own entry raised it first, so its own later reads never skip.
    held: AtomicUsize,
    /// Code outside any tokio task (a `block_on` body) shares one scope.
    untasked: Shared,
}

impl TaskScopes {
    /// The current task's scope. Allocation-free when the task has no token (the common case
    /// for reads).
    pub(crate) fn get(&self) -> Slot {
        match tokio::task::try_id() {
            // One shard's lookup, or none while no task holds a scope (`is_empty` would lock
            // every shard, 4 per core).
            Some(_) if self.held.load(Ordering::Acquire) == 0 => Slot::default(),
            Some(id) => self.tasks.get(&id).map(|s| s.clone()).unwrap_or_default(),
            None => self.untasked.get(),
        }
    }

    /// Changes the current task's scope.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut Slot) -> R) -> R {
        self.update_task(tokio::task::try_id(), f)
    }

    /// Changes task `id`'s scope (`None`: the scope of code outside any task).
    pub(crate) fn update_task<R>(&self, id: Option<Id>, f: impl FnOnce(&mut Slot) -> R) -> R {
        match id {
            Some(id) => {
                let mut slot = match self.tasks.entry(id) {
                    dashmap::Entry::Occupied(e) => e.into_ref(),
                    dashmap::Entry::Vacant(e) => {
                        self.held.fetch_add(1, Ordering::AcqRel);
                        e.insert(Slot::default())
                    }
                };
                let r = f(&mut slot);
                slot.touched = Some(Instant::now());
                let empty = slot.is_empty();
                drop(slot);
                if empty && self.tasks.remove(&id).is_some() {
                    self.held.fetch_sub(1, Ordering::AcqRel);
                }
                r
            }
            None => self.untasked.update(f),
        }
    }

    /// Drops the scopes whose token is no longer needed: `settled` says a token is satisfied by
    /// every replica (every read would see the write anyway); and every scope untouched for
    /// `stale_after`, whatever its state — a token that can never be satisfied (from before a
    /// failover), one no replica has proved (a replica is down: its position is unknown), a
    /// pending one (the primary was unreachable). Tasks end without telling anyone, so this is
    /// how their scopes go away, and by age alone memory stays bounded (the tasks that wrote
    /// within `stale_after`) while a replica is down. A task still alive that reads more than
    /// `stale_after` after its last write no longer waits for that write.
    ///
    /// A scope's last read (`seen`) is kept until its bound is known (`floor`) and every
    /// replica has replayed it: any node would serve a later read monotonically then.
    pub(crate) fn sweep(
        &self,
        now: Instant,
        stale_after: Duration,
        settled: impl Fn(&CausalToken) -> Settled,
        floor: impl Fn(&Seen) -> Option<CausalToken>,
    ) {
        if self.tasks.is_empty() {
            return;
        }
        let mut removed = 0;
        self.tasks.retain(|_, slot| {
            let recent = slot.touched.is_some_and(|t| now.duration_since(t) < stale_after);
            let needed = |t: &CausalToken| settled(t) != Settled::Everywhere;
            let keep = recent
                && (slot.pending
                    || slot.inflight > 0
                    || slot.token.as_ref().is_some_and(needed)
                    || slot.seen.as_ref().is_some_and(|s| floor(s).as_ref().is_none_or(needed)));
            removed += usize::from(!keep);
            keep
        });
        self.held.fetch_sub(removed, Ordering::AcqRel);
    }

    /// How many tasks hold a scope.
    pub(crate) fn len(&self) -> usize {
        self.tasks.len()
    }
}

/// Where a token stands against the current topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Every replica has replayed it.
    Everywhere,
    /// Some replica has not, or its position is unknown.
    NotYet,
    /// It is on another history than the primary's: no node will ever satisfy it.
    Never,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn token(text: &str) -> CausalToken {
        text.parse().unwrap()
    }

    #[tokio::test]
    async fn a_token_belongs_to_its_task() {
        // (The test body itself runs outside any task, in the untasked scope.)
        let scopes = Arc::new(TaskScopes::default());
        assert!(scopes.get().token.is_none());
        scopes.update(|s| s.record(&token("mariadb:1:0-1-5")));
        assert_eq!(scopes.get().token, Some(token("mariadb:1:0-1-5")));
        let other = Arc::clone(&scopes);
        let seen = tokio::spawn(async move { other.get().token }).await.unwrap();
        assert_eq!(seen, None, "another task does not inherit this task's token");
    }

    #[tokio::test]
    async fn tokens_merge_to_the_maximum() {
        let scopes = TaskScopes::default();
        scopes.update(|s| s.record(&token("mariadb:1:0-1-9")));
        scopes.update(|s| s.record(&token("mariadb:1:0-1-5.1-1-2")));
        assert_eq!(scopes.get().token, Some(token("mariadb:1:0-1-9.1-1-2")));
    }

    #[test]
    fn a_position_read_clears_only_what_was_pending_when_it_was_taken() {
        let mut slot = Slot::default();
        // A write's position read is sent (epoch 0), then `begin()` marks the scope pending.
        let sent_at = slot.pending_epoch;
        slot.mark_pending();
        // The read lands: it predates the transaction, whose commit it cannot cover.
        slot.record(&token("pg:1:7:1:0-100"));
        slot.settle_pending(sent_at);
        assert!(slot.pending, "the transaction's commit is still unknown");
        // A read taken after the mark clears it.
        let now = slot.pending_epoch;
        slot.settle_pending(now);
        assert!(!slot.pending);
    }

    /// A write after a read (writes-follow-reads within the scope): the primary's position
    /// read after the write bounds the earlier read, which need not pin the next read to its
    /// node; a read that ended after the position was asked for, or a stream still reading,
    /// stays pinned.
    #[rstest::rstest]
    #[case::ended_before(Some(false), false)]
    #[case::ended_at_the_same_instant(None, false)]
    #[case::ended_after(Some(true), true)]
    fn a_later_primary_position_covers_an_earlier_read(
        #[case] ended_after: Option<bool>,
        #[case] kept: bool,
    ) {
        let sent = Instant::now() + Duration::from_secs(1);
        let at = match ended_after {
            Some(false) => sent - Duration::from_millis(1),
            None => sent,
            Some(true) => sent + Duration::from_millis(1),
        };
        let mut slot = Slot::default();
        slot.saw(NodeId::new(1), Some(at));
        slot.record(&token("pg:1:7:1:0-100"));
        slot.covers_reads_before(sent);
        assert_eq!(slot.seen.is_some(), kept, "{:?}", slot.seen);
    }

    /// A stream may still be reading: a later position does not bound it.
    #[test]
    fn a_read_still_under_way_stays_pinned() {
        let mut slot = Slot::default();
        slot.saw(NodeId::new(1), None);
        slot.covers_reads_before(Instant::now() + Duration::from_secs(1));
        assert!(slot.seen.is_some());
    }

    /// The count that lets reads skip the lookup never falls below the scopes held: a task
    /// reads its own token whatever other tasks' scopes come and go, and the count is back to
    /// zero once none is held.
    #[tokio::test]
    async fn the_held_count_covers_every_scope() {
        let scopes = Arc::new(TaskScopes::default());
        let (a, b) = (Arc::clone(&scopes), Arc::clone(&scopes));
        tokio::spawn(async move {
            a.update(|s| s.record(&token("mariadb:1:0-1-5")));
            // Another task's scope, made and emptied meanwhile.
            let b2 = Arc::clone(&b);
            tokio::spawn(async move { b2.update(|_| {}) }).await.unwrap();
            assert_eq!(a.get().token, Some(token("mariadb:1:0-1-5")));
            assert_eq!(a.held.load(Ordering::Acquire), 1);
        })
        .await
        .unwrap();
        assert_eq!(scopes.len(), 1);
        scopes.sweep(Instant::now(), Duration::ZERO, |_| Settled::NotYet, |_| None);
        assert_eq!((scopes.len(), scopes.held.load(Ordering::Acquire)), (0, 0));
    }

    #[test]
    fn code_outside_tasks_shares_one_scope() {
        let scopes = TaskScopes::default();
        scopes.update(Slot::mark_pending);
        assert!(scopes.get().pending);
        assert_eq!(scopes.len(), 0, "not stored per task");
    }

    #[rstest::rstest]
    #[case::satisfied_everywhere(Settled::Everywhere, false, Duration::ZERO, false)]
    #[case::not_yet_recent(Settled::NotYet, false, Duration::from_secs(60), true)]
    // A replica down (its position unknown) does not keep a stale scope forever.
    #[case::not_yet_but_stale(Settled::NotYet, false, Duration::ZERO, false)]
    #[case::pending_but_stale(Settled::NotYet, true, Duration::ZERO, false)]
    #[case::never_but_recent(Settled::Never, false, Duration::from_secs(60), true)]
    #[case::never_and_stale(Settled::Never, false, Duration::ZERO, false)]
    #[case::pending_is_kept(Settled::Everywhere, true, Duration::from_secs(60), true)]
    #[tokio::test]
    async fn sweeping_keeps_only_tokens_still_needed(
        #[case] settled: Settled,
        #[case] pending: bool,
        #[case] stale_after: Duration,
        #[case] kept: bool,
    ) {
        let scopes = Arc::new(TaskScopes::default());
        let s = Arc::clone(&scopes);
        tokio::spawn(async move {
            s.update(|slot| {
                slot.record(&token("pg:1:7:1:0-100"));
                slot.pending = pending;
            });
        })
        .await
        .unwrap();
        assert_eq!(scopes.len(), 1);
        let later = Instant::now() + Duration::from_millis(1);
        scopes.sweep(later, stale_after, |_| settled, |_| None);
        assert_eq!(scopes.len() == 1, kept);
    }

    #[tokio::test]
    async fn an_emptied_scope_is_removed() {
        let scopes = Arc::new(TaskScopes::default());
        let s = Arc::clone(&scopes);
        tokio::spawn(async move {
            s.update(Slot::mark_pending);
            assert_eq!(s.len(), 1);
            s.update(|slot| slot.pending = false);
            assert_eq!(s.len(), 0);
        })
        .await
        .unwrap();
    }
}
