//! [`Causality`]: a connection's read-your-writes and monotonic reads as one component. It
//! owns the tasks' scopes ([`TaskScopes`]; a session's own state is the session's, [`Shared`],
//! reached through [`Scope::Session`]), the position reads after writes (shared among
//! the writes each covers, [`Coalesce`]), the notification of one landing, and the settings
//! that say what it tracks. What it needs of the rest of the connection it asks of the part
//! that owns it, handed to each operation that needs it: the monitor's samples ([`Samples`],
//! the live view of the cluster's), the nodes' names and position reads on their writable
//! pools ([`Writers`]); and, after a write, the task its position read is left to, as a
//! closure the caller makes.
//!
//! A scope is the calling task's, or a [`Session`](crate::Session) (explicit or ambient).
//! After a write its position is pending: the scope reads it on its own task when it needs it
//! (its next read, or its token), one round trip with no hand-off between tasks, or not at all
//! while no replica could serve a read within the wait. If the scope has not after
//! [`LEFT_TO_THE_SCOPE`], a task of its own leaves the write to the primary's samples, with
//! no statement (without a monitor, it reads the position; while that read is in flight the
//! scope's reads wait for it or go to the primary). A capture clears only what was pending
//! before the write committed ([`Slot::settle_pending`]), so a `begin()` or an escaped
//! primary connection in between keeps the scope conservative.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rwsplit_core::{CausalToken, NodeId};
use sea_orm::{DbErr, TransactionError};

use super::causal::{Scope, Seen, Settled, Shared, Slot, TaskScopes};
use super::coalesce::Coalesce;

/// The monitor's position samples, as read-your-writes asks for and reads them: the live
/// view of the cluster's (`Routing`, the adapter's one owner of the monitor's state,
/// implements it). Asked only while a monitor runs.
pub(crate) trait Samples: Sync {
    /// Asks the monitor for one sample of `node`'s position sent after `after`, until `until`.
    fn want_sample(&self, node: NodeId, after: Instant, until: Instant);

    /// Asks the monitor for `node`'s next samples from `after` to serve as floors (what a read
    /// there saw), until `until`.
    fn want_floor(&self, node: NodeId, after: Instant, until: Instant);

    /// Asks the monitor to sample the replicas' positions until each has replayed `token`,
    /// or `until`.
    fn want_replayed(&self, token: &CausalToken, until: Instant);

    /// Completes at the monitor's next position sample (counted from when it is called: make
    /// it before the look it guards).
    fn sampled(&self) -> tokio::sync::futures::Notified<'_>;

    /// A bound of what the read `seen` saw, from the monitor's samples, if one is known.
    fn known_floor(&self, seen: &Seen) -> Option<CausalToken>;

    /// The primary's id: the routing state's, else the one the connection last knew.
    fn primary(&self) -> NodeId;
}

/// The connection's nodes, as read-your-writes reads positions on their writable pools: how
/// many there are, their names, one position read (implemented over the node registry).
pub(crate) trait Writers: Sync {
    /// How many nodes the connection has now.
    fn node_count(&self) -> usize;

    /// The name of node `node` (`host:port/db`), if the connection has it.
    fn name_of(&self, node: NodeId) -> Option<String>;

    /// One read of the primary's position on a connection of `node`'s writable pool, for
    /// `purpose` (counted for [`Stats`](crate::Stats) as its purpose says); an error names the
    /// node.
    fn read_position(
        &self,
        node: NodeId,
        purpose: Purpose,
    ) -> impl Future<Output = Result<CausalToken, DbErr>> + Send;
}

/// Why the primary's position is read ([`Writers::read_position`]): a write's cost, or a
/// read's, as [`Stats`](crate::Stats) counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A write's position (its token), read where its scope waits for it.
    Write,
    /// A write's position, read in a task of its own, which gives the connection back to the
    /// pool before it ends (no caller waits).
    WriteInBackground,
    /// A bound of what a read on the primary saw (the scope's floor): the scope's next read,
    /// or its exported token, may then use a replica at or past it.
    Floor,
}

/// A connection's read-your-writes: its scopes, the position reads after writes, and what
/// it tracks. Its operations take the views ([`Samples`], [`Writers`]) they need.
pub(crate) struct Causality {
    /// The scopes of the connection's tasks.
    tasks: TaskScopes,
    /// The position reads after writes, shared among the writes they cover.
    captures: Coalesce,
    /// Notified when a position read lands (see [`Landing`]).
    landed: tokio::sync::Notify,
    /// Whether writes' positions are tracked at all (the builder's `read_your_writes`).
    on: bool,
    /// Whether a monitor runs: it samples positions when asked (else nothing is asked of it).
    monitored: bool,
    /// How long the monitor's feeds run after a position is wanted.
    linger: Duration,
    /// The monitor's probe timeout: the longest a read waits for a sample.
    probe_timeout: Duration,
}

/// A scope named from outside its task: the task's id (`None`: code outside any task), or
/// the session.
enum Key {
    Task(Option<tokio::task::Id>),
    Session(Arc<Shared>),
}

/// A write left to a task of its own ([`Causality::finish`]), for when the scope has not read
/// its position by then.
pub(crate) struct Capture {
    node: NodeId,
    key: Key,
    /// The scope's pending epoch the write left: a later one (writes the router cannot see,
    /// such as a transaction still open on SeaORM's own handle) is not this task's to settle.
    epoch: u64,
    /// When the primary had acknowledged the write (its commit is in every later position).
    acked: Instant,
}

/// How long after a write its position read is left to the write's own scope: the scope's
/// next read, or its token (a web request's response), reads it on the caller's task, with no
/// hand-off between tasks. Past this, a task of its own leaves the write to the primary's
/// samples ([`Causality::finish`]).
const LEFT_TO_THE_SCOPE: Duration = Duration::from_millis(10);

/// How a read-write transaction ended, as far as its writes go.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It committed.
    Committed,
    /// The commit failed on the connection: it may or may not have happened.
    Unknown,
    /// It rolled back.
    RolledBack,
}

impl Outcome {
    /// How the transaction that returned `r` ended.
    pub(crate) fn of<T, E>(r: &Result<T, TransactionError<E>>) -> Outcome {
        match r {
            Ok(_) => Outcome::Committed,
            Err(TransactionError::Connection(_)) => Outcome::Unknown,
            Err(TransactionError::Transaction(_)) => Outcome::RolledBack,
        }
    }
}

/// A statement that ran, as monotonic reads see it ([`Causality::saw`]).
#[derive(Clone, Copy)]
pub(crate) struct Ran {
    /// The node it ran on.
    pub(crate) node: NodeId,
    /// It was a read at a level that keeps monotonic reads (`Consistency::Session`), its plan's
    /// snapshot holding more than one node.
    pub(crate) monotonic_read: bool,
    /// Its result is in (else it may still be reading: a stream, a read-only transaction).
    pub(crate) ended: bool,
    /// `node` was the primary of its plan's snapshot.
    pub(crate) on_primary: bool,
}

/// How a scope's last read is carried in its exported token ([`Export::of`]).
#[derive(Debug)]
pub(crate) enum Export {
    /// A position at or past what it saw.
    Floor(CausalToken),
    /// The name of the replica it was on.
    Node(String),
    /// The position of this primary, to be read there.
    Primary(NodeId),
}

impl Export {
    /// A bound of what a scope's last read `seen` saw, for its exported token, without I/O:
    /// the monitor's sample if there is one; else, for a read that ended, its node by name (a
    /// replica's replay and a primary's writes only move forward, so whatever the node holds
    /// when the token is used bounds the read; a primary read that way is bounded by its
    /// position when the resumed scope next reads, only if that read needs it); else (a read
    /// still under way: a stream, a read-only transaction) the primary, whose position the
    /// caller reads there.
    pub(crate) fn of(samples: &impl Samples, writers: &impl Writers, seen: &Seen) -> Export {
        if let Some(t) = samples.known_floor(seen) {
            return Export::Floor(t);
        }
        if seen.at.is_some()
            && let Some(name) = writers.name_of(seen.node)
        {
            return Export::Node(name);
        }
        Export::Primary(samples.primary())
    }
}

impl Causality {
    /// Tracking writes' positions if `on`; asking a monitor for samples if one runs
    /// (`monitored`), its feeds for `linger`; a read waits for a sample at most
    /// `probe_timeout`.
    pub(crate) fn new(
        on: bool,
        monitored: bool,
        linger: Duration,
        probe_timeout: Duration,
    ) -> Causality {
        Causality {
            tasks: TaskScopes::default(),
            captures: Coalesce::default(),
            landed: tokio::sync::Notify::new(),
            on,
            monitored,
            linger,
            probe_timeout,
        }
    }

    /// `scope`'s state.
    pub(crate) fn slot(&self, scope: &Scope) -> Slot {
        match scope {
            Scope::Task => self.tasks.get(),
            Scope::Session(s) => s.get(),
        }
    }

    /// Changes `scope`'s state.
    fn update<R>(&self, scope: &Scope, f: impl FnOnce(&mut Slot) -> R) -> R {
        match scope {
            Scope::Task => self.tasks.update(f),
            Scope::Session(s) => s.update(f),
        }
    }

    /// How many tasks hold a scope.
    pub(crate) fn tracked_tasks(&self) -> usize {
        self.tasks.len()
    }

    /// Drops the tasks' scopes no longer needed ([`TaskScopes::sweep`]).
    pub(crate) fn sweep(
        &self,
        now: Instant,
        stale_after: Duration,
        settled: impl Fn(&CausalToken) -> Settled,
        floor: impl Fn(&Seen) -> Option<CausalToken>,
    ) {
        self.tasks.sweep(now, stale_after, settled, floor);
    }

    /// The newest position a read after a write brought back ([`Coalesce::newest`]).
    pub(crate) fn newest_position(&self) -> Option<CausalToken> {
        self.captures.newest()
    }

    /// Whether writes in `scope` record their position: read-your-writes is on and some read
    /// could go elsewhere than the primary (there are replicas), or the scope is a session,
    /// whose token may be exported.
    pub(crate) fn tracks_writes(&self, writers: &impl Writers, scope: &Scope) -> bool {
        self.on && (writers.node_count() > 1 || matches!(scope, Scope::Session(_)))
    }

    /// A statement ran in `scope` (monotonic reads): a read kept monotonic becomes the
    /// scope's last read, ended now if its result is in, else still reading (a stream, a
    /// read-only transaction). Writes record their position instead ([`after_write`](Self::after_write)).
    pub(crate) fn saw(&self, samples: &impl Samples, scope: &Scope, ran: Ran) {
        if !(ran.monotonic_read && self.on) {
            return;
        }
        let at = ran.ended.then(Instant::now);
        self.update(scope, |s| s.saw(ran.node, at));
        // A read on the primary: its floor is the primary's next sample, and the scope's
        // next read can use a replica once one has it. Asked now, as the read ends, the
        // sample is usually there by then (reads asking meanwhile share one sample; the feed
        // reads at most every quarter interval and its backoff). A next read that comes
        // first, by a caller that waits, reads the primary's position itself
        // (`Io::PrimaryFloor`); a later position than the sample's, which replicas reach
        // later, so the sample is still asked for.
        if ran.ended && ran.on_primary && self.monitored {
            let now = Instant::now();
            let until = now.checked_add(self.linger).unwrap_or(now);
            samples.want_floor(ran.node, now, until);
        }
    }

    /// Asks the monitor for one position sample of `node` sent from now on (for at most the
    /// linger): a floor that sample bounds.
    fn want_sample(&self, samples: &impl Samples, node: NodeId) {
        if !self.monitored {
            return;
        }
        let now = Instant::now();
        let until = now.checked_add(self.linger).unwrap_or(now);
        samples.want_sample(node, now, until);
    }

    /// Waits, up to `max` and the probe timeout, for a position sample that bounds what
    /// `scope`'s last read saw (its floor), if it has one: woken by each sample, no polling.
    pub(crate) async fn await_floor(&self, samples: &impl Samples, scope: &Scope, max: Duration) {
        let Some(seen) = self.slot(scope).seen else { return };
        let max = max.min(self.probe_timeout);
        let deadline = tokio::time::Instant::now() + crate::send::deadline::cap(max);
        // The node's next sample, at its next feed turn rather than its next full probe.
        self.want_sample(samples, seen.node);
        loop {
            // Made before the look: a sample landing in between still wakes it.
            let next = samples.sampled();
            if samples.known_floor(&seen).is_some() {
                return;
            }
            if tokio::time::timeout_at(deadline, next).await.is_err() {
                return;
            }
        }
    }

    /// Reads the primary's position on `at` and records it in `scope`: it bounds every read
    /// of the scope that had ended when it was sent.
    pub(crate) async fn floor_on_primary(
        &self,
        samples: &impl Samples,
        writers: &impl Writers,
        scope: &Scope,
        at: NodeId,
    ) {
        let sent = Instant::now();
        if let Ok(t) = self.capture(samples, writers, at, Purpose::Floor).await {
            self.update(scope, |s| {
                s.record(&t);
                s.covers_reads_before(sent);
            });
        }
    }

    /// Reads the primary's position on `at` and settles `scope` with it ([`Slot::settle`]),
    /// as far as its pending epoch was `epoch`. Whether the position could be read.
    pub(crate) async fn settle(
        &self,
        samples: &impl Samples,
        writers: &impl Writers,
        scope: &Scope,
        at: NodeId,
        epoch: u64,
    ) -> bool {
        let captured = self.own_capture(samples, writers, scope, at).await;
        if let Ok(t) = &captured {
            self.update(scope, |s| s.settle(t, epoch));
        }
        captured.is_ok()
    }

    /// Writes the router cannot see may now happen in `scope` (the primary's connection was
    /// handed out, a transaction is committed through SeaORM's own handle): its position
    /// becomes pending, so its next read first asks the primary, or reads there.
    pub(crate) fn mark_unseen_writes(&self, writers: &impl Writers, scope: &Scope) {
        if self.tracks_writes(writers, scope) {
            self.update(scope, Slot::mark_pending);
        }
    }

    /// The part of `scope`'s token its writes (and the tokens it was given) make, from `slot`,
    /// its state: a pending or in-flight write's position is read from the primary now and
    /// settled in the scope.
    pub(crate) async fn written(
        &self,
        samples: &impl Samples,
        writers: &impl Writers,
        scope: &Scope,
        slot: Slot,
    ) -> Result<Option<CausalToken>, DbErr> {
        if !slot.pending && slot.inflight == 0 {
            // A token held from outside is passed on as it came (its reader lowers it if need be).
            return Ok(slot.with_external());
        }
        let epoch = slot.pending_epoch;
        let fresh = self.own_capture(samples, writers, scope, samples.primary()).await?;
        self.update(scope, |s| s.settle(&fresh, epoch));
        let mut mine = slot;
        mine.mark_pending();
        let epoch = mine.pending_epoch;
        mine.settle(&fresh, epoch);
        Ok(mine.token)
    }

    /// [`capture`](Self::capture) for `scope` itself (its read, its token), counted in its reads
    /// in flight while it runs: the task a write's position is left to then sends none of its
    /// own, and the scope's other reads wait for this one.
    async fn own_capture(
        &self,
        samples: &impl Samples,
        writers: &impl Writers,
        scope: &Scope,
        node: NodeId,
    ) -> Result<CausalToken, DbErr> {
        self.update(scope, |s| s.inflight += 1);
        let _capturing = Capturing { causality: self, scope };
        self.capture(samples, writers, node, Purpose::Write).await
    }

    /// The primary's position now, from `node`'s writable pool, read for `purpose` — or taken
    /// from a read sent after this call began, shared with other writes and reads
    /// ([`Coalesce`]; the one read is counted as its sender's purpose).
    pub(crate) async fn capture(
        &self,
        samples: &impl Samples,
        writers: &impl Writers,
        node: NodeId,
        purpose: Purpose,
    ) -> Result<CausalToken, DbErr> {
        let now = || self.capture_now(samples, writers, node, purpose);
        self.captures.position(node, now).await
    }

    /// One position read of `node` for `purpose`.
    async fn capture_now(
        &self,
        samples: &impl Samples,
        writers: &impl Writers,
        node: NodeId,
        purpose: Purpose,
    ) -> Result<CausalToken, DbErr> {
        let token = writers.read_position(node, purpose).await?;
        // The scope will read soon: the replicas' feeds run until each has the write (and
        // no longer), so that read finds one known to have it.
        if self.monitored
            && let Some(until) = Instant::now().checked_add(self.linger)
        {
            samples.want_replayed(&token, until);
        }
        Ok(token)
    }

    /// A write committed on `node`: its scope's position becomes pending, and the scope
    /// reads it when it next needs it, on its own task — its next read (unless no replica
    /// could serve that read within the wait: it goes to the primary and the position stays
    /// pending), or its exported token (a web request's response) — one round trip and no
    /// hand-off between tasks. If the scope has not read it within [`LEFT_TO_THE_SCOPE`], a
    /// task of its own leaves it to the primary's samples (`background`: given the
    /// [`Capture`], it runs [`finish`](Self::finish) there; `None` where it cannot — outside
    /// a runtime, or once the connection is being dropped — and the position is then read
    /// here, at once). The
    /// write has succeeded whatever happens here; a position read that fails leaves the scope
    /// pending (its next read asks again, or goes to the primary).
    pub(crate) async fn after_write<B: FnOnce(Capture)>(
        &self,
        samples: &impl Samples,
        writers: &impl Writers,
        node: NodeId,
        scope: &Scope,
        background: impl FnOnce() -> Option<B>,
    ) {
        if !self.tracks_writes(writers, scope) {
            return;
        }
        let key = match scope {
            Scope::Task => Key::Task(tokio::task::try_id()),
            Scope::Session(s) => Key::Session(Arc::clone(s)),
        };
        let acked = Instant::now();
        let epoch = self.key_update(&key, |s| {
            s.mark_pending();
            s.pending_epoch
        });
        match background() {
            Some(spawn) => spawn(Capture { node, key, epoch, acked }),
            // Boxed: rare (outside a runtime), and every write's future need not carry a
            // position read's state.
            None => Box::pin(self.read_pending(samples, writers, node, &key, epoch, false)).await,
        }
    }

    /// A write's [`Capture`] the scope has not read after [`LEFT_TO_THE_SCOPE`]: if the scope
    /// is still pending for that write alone (its own read or token has not read it, and
    /// nothing since has marked it pending again) and someone still holds it (a session
    /// dropped with its request, its token answered, needs nothing).
    ///
    /// While a monitor samples positions and the write's node is still the primary
    /// (`still_primary`), no statement: the write is left to the primary's samples
    /// ([`Slot::leave_to_primary`]), as a read on the primary at its acknowledgement. A scope
    /// that never reads again (a request's task that ended, a writer that only writes) costs
    /// the primary nothing more; its next read, if it comes, finds the write bounded by a
    /// sample of the primary taken since, or reads the position first on its own task (or
    /// reads on the primary while no replica could serve it).
    ///
    /// Without a monitor (nothing samples), or for a write on a node that is no longer the
    /// primary, the position is read here, counted in the scope's reads in flight meanwhile:
    /// its reads and token wait for it rather than send another.
    pub(crate) async fn finish(
        &self,
        samples: &impl Samples,
        writers: &impl Writers,
        capture: Capture,
        still_primary: impl FnOnce(NodeId) -> bool,
    ) {
        tokio::time::sleep(LEFT_TO_THE_SCOPE).await;
        let Capture { node, key, epoch: left, acked } = capture;
        if let Key::Session(s) = &key
            && Arc::strong_count(s) == 1
        {
            return;
        }
        if self.monitored && still_primary(node) {
            // Unless the scope is pending for more than this write, reads it itself, or may
            // still be reading: its next read reads the position then.
            self.key_update(&key, |s| s.leave_to_primary(node, acked, left));
            return;
        }
        // Not while the scope reads it itself, nor once the scope is pending for more than
        // this write: writes the router cannot see (a transaction committed through SeaORM's
        // own handle, perhaps still open) would be settled by a position read before they
        // commit. The scope's next read reads it then.
        let Some(epoch) = self.key_update(&key, |s| {
            (s.pending && s.inflight == 0 && s.pending_epoch == left).then(|| {
                s.inflight += 1;
                s.pending_epoch
            })
        }) else {
            return;
        };
        // Boxed: rare, and the task's future, which every write's spawn copies, need not
        // carry a position read's state.
        Box::pin(self.read_pending(samples, writers, node, &key, epoch, true)).await;
    }

    /// Reads the primary's position on `node` and records it in the scope of `key`, settling
    /// what was pending as of `epoch` (a write marked pending since stays pending); `counted`:
    /// the read was counted in the scope's reads in flight, by the task a write's position is
    /// left to (so it reads in the background).
    async fn read_pending(
        &self,
        samples: &impl Samples,
        writers: &impl Writers,
        node: NodeId,
        key: &Key,
        epoch: u64,
        counted: bool,
    ) {
        let sent = Instant::now();
        let purpose = if counted { Purpose::WriteInBackground } else { Purpose::Write };
        let result = self.capture(samples, writers, node, purpose).await;
        // Whatever the outcome, the reads waiting for this scope's positions to land look again.
        let _landed = Landing(&self.landed);
        let done = |s: &mut Slot| {
            if counted {
                s.inflight = s.inflight.saturating_sub(1);
            }
        };
        match result {
            Ok(token) => self.key_update(key, |s| {
                s.record(&token);
                s.covers_reads_before(sent);
                s.settle_pending(epoch);
                done(s);
            }),
            Err(e) => {
                tracing::warn!(target: "rwsplit", node = %writers.name_of(node).unwrap_or_default(), error = %e, "could not read the primary's position after a write; the next read in this scope goes to the primary");
                self.key_update(key, |s| {
                    s.mark_pending();
                    done(s);
                });
            }
        }
    }

    fn key_update<R>(&self, key: &Key, f: impl FnOnce(&mut Slot) -> R) -> R {
        match key {
            Key::Task(id) => self.tasks.update_task(*id, f),
            Key::Session(s) => s.update(f),
        }
    }

    /// The scope's state once its position reads in flight have landed, waiting up to `max`:
    /// woken as each capture lands (no polling), bounded by one timer.
    pub(crate) async fn settled(&self, scope: &Scope, max: Duration) -> Slot {
        let deadline = tokio::time::Instant::now() + crate::send::deadline::cap(max);
        loop {
            // Made before the look: a capture landing in between still wakes it.
            let landed = self.landed.notified();
            let slot = self.slot(scope);
            if slot.inflight == 0 {
                return slot;
            }
            if tokio::time::timeout_at(deadline, landed).await.is_err() {
                return self.slot(scope);
            }
        }
    }

    /// After a read-write transaction on `node`: committed → record the position (as
    /// [`after_write`](Self::after_write)); a commit that failed on the connection may or
    /// may not have happened → the position is pending (the next read asks the primary, or
    /// reads there); rolled back → nothing. `background`: as `after_write`'s.
    pub(crate) async fn after_transaction<B: FnOnce(Capture)>(
        &self,
        samples: &impl Samples,
        writers: &impl Writers,
        node: NodeId,
        scope: &Scope,
        outcome: Outcome,
        background: impl FnOnce() -> Option<B>,
    ) {
        match outcome {
            Outcome::Committed => {
                self.after_write(samples, writers, node, scope, background).await;
            }
            Outcome::Unknown => self.mark_unseen_writes(writers, scope),
            Outcome::RolledBack => {}
        }
    }
}

/// A scope's own position read under way ([`Causality::own_capture`]): counted in its reads in
/// flight until it ends, however it ends (a caller that gives up included).
struct Capturing<'a> {
    causality: &'a Causality,
    scope: &'a Scope,
}

impl Drop for Capturing<'_> {
    fn drop(&mut self) {
        self.causality.update(self.scope, |s| s.inflight = s.inflight.saturating_sub(1));
        self.causality.landed.notify_waiters();
    }
}

/// Held while a position read is under way: whatever its outcome, the reads waiting for a
/// scope's positions to land look again when it is dropped.
struct Landing<'a>(&'a tokio::sync::Notify);

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        self.0.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    const P: NodeId = NodeId::new(0);

    /// A connection's `nodes` nodes, whose position reads answer the number of reads so far
    /// as the LSN, or fail.
    struct Fake {
        nodes: usize,
        fail: bool,
        reads: AtomicU64,
    }

    impl Fake {
        fn new(nodes: usize, fail: bool) -> Fake {
            Fake { nodes, fail, reads: AtomicU64::new(0) }
        }
    }

    impl Writers for Fake {
        fn node_count(&self) -> usize {
            self.nodes
        }

        fn name_of(&self, _: NodeId) -> Option<String> {
            Some("primary:5432/app".to_owned())
        }

        async fn read_position(&self, _: NodeId, _: Purpose) -> Result<CausalToken, DbErr> {
            let n = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
            if self.fail {
                return Err(DbErr::Custom("unreachable".to_owned()));
            }
            Ok(format!("pg:1:7:1:0-{n:X}").parse().unwrap())
        }
    }

    /// No monitor: no sample is ever known, none is notified (the causality under test is
    /// built unmonitored, so none is asked for), and the primary is `P`.
    struct NoSamples(tokio::sync::Notify);

    impl Samples for NoSamples {
        fn want_sample(&self, _: NodeId, _: Instant, _: Instant) {}

        fn want_floor(&self, _: NodeId, _: Instant, _: Instant) {}

        fn want_replayed(&self, _: &CausalToken, _: Instant) {}

        fn sampled(&self) -> tokio::sync::futures::Notified<'_> {
            self.0.notified()
        }

        fn known_floor(&self, _: &Seen) -> Option<CausalToken> {
            None
        }

        fn primary(&self) -> NodeId {
            P
        }
    }

    fn no_samples() -> NoSamples {
        NoSamples(tokio::sync::Notify::new())
    }

    /// No task to run a position read in: it is read in the caller's.
    fn inline() -> Option<fn(Capture)> {
        None
    }

    /// A write on `P` in `scope`, its position read inline.
    async fn write(c: &Causality, pools: &Fake, scope: &Scope) {
        c.after_write(&no_samples(), pools, P, scope, inline).await;
    }

    /// A transaction on `P` in `scope` that ended as `outcome`.
    async fn transaction(c: &Causality, pools: &Fake, scope: &Scope, outcome: Outcome) {
        c.after_transaction(&no_samples(), pools, P, scope, outcome, inline).await;
    }

    fn causality(on: bool) -> Causality {
        Causality::new(on, false, Duration::from_secs(1), Duration::from_secs(1))
    }

    /// With replicas, a write's position is read (here, where no background task can run)
    /// and recorded in its scope; without replicas, or with read-your-writes off, a task's
    /// write is not tracked, while a session's is (its token may be exported).
    #[tokio::test]
    async fn a_tracked_write_records_its_position_in_its_scope() {
        let (c, two) = (causality(true), Fake::new(2, false));
        write(&c, &two, &Scope::Task).await;
        let slot = c.slot(&Scope::Task);
        assert_eq!(slot.token.map(|t| t.to_string()), Some("pg:1:7:1:0-1".to_owned()));
        assert_eq!((slot.pending, slot.inflight), (false, 0));

        let one = Fake::new(1, false);
        let (task, session) = (Scope::Task, Scope::Session(Arc::default()));
        assert!(!c.tracks_writes(&one, &task));
        assert!(c.tracks_writes(&one, &session));
        assert!(!causality(false).tracks_writes(&two, &session));
        write(&causality(false), &two, &task).await;
        assert_eq!(two.reads.load(Ordering::SeqCst), 1, "an untracked write reads nothing");
    }

    /// A write leaves its position to its scope: pending at once, nothing read. Without a
    /// monitor (nothing samples), the task it is left to reads it after [`LEFT_TO_THE_SCOPE`]
    /// only if the scope has not read it meanwhile and someone still holds the session.
    #[tokio::test(start_paused = true)]
    async fn a_write_s_position_is_left_to_its_scope_then_read_once_if_still_wanted() {
        let (c, two) = (causality(true), Fake::new(2, false));
        let reads = || two.reads.load(Ordering::SeqCst);
        let session: Arc<Shared> = Arc::default();
        let scope = Scope::Session(Arc::clone(&session));

        // Nobody read it: the task reads it.
        let mut capture = None;
        c.after_write(&no_samples(), &two, P, &scope, || Some(|k| capture = Some(k))).await;
        let slot = c.slot(&scope);
        assert!(slot.pending && slot.inflight == 0 && slot.token.is_none());
        assert_eq!(reads(), 0, "nothing read on the write's path");
        c.finish(&no_samples(), &two, capture.take().unwrap(), |_| true).await;
        let slot = c.slot(&scope);
        assert!(!slot.pending && slot.inflight == 0 && slot.token.is_some());
        assert_eq!(reads(), 1);

        // The scope read it first (its token, its next read): nothing more.
        c.after_write(&no_samples(), &two, P, &scope, || Some(|k| capture = Some(k))).await;
        let epoch = c.slot(&scope).pending_epoch;
        assert!(c.settle(&no_samples(), &two, &scope, P, epoch).await);
        c.finish(&no_samples(), &two, capture.take().unwrap(), |_| true).await;
        assert_eq!(reads(), 2, "one read for the second write, the scope's own");

        // Marked pending again since by writes the router cannot see (a transaction begun on
        // SeaORM's own handle, perhaps still open): not this task's to settle; the scope's
        // next read reads it, after them.
        c.after_write(&no_samples(), &two, P, &scope, || Some(|k| capture = Some(k))).await;
        c.mark_unseen_writes(&two, &scope);
        c.finish(&no_samples(), &two, capture.take().unwrap(), |_| true).await;
        let slot = c.slot(&scope);
        assert!(slot.pending && slot.inflight == 0, "still pending for the unseen writes");
        assert_eq!(reads(), 2, "no position read before the unseen writes commit");
        let epoch = slot.pending_epoch;
        assert!(c.settle(&no_samples(), &two, &scope, P, epoch).await);
        assert_eq!(reads(), 3);

        // The session is gone (its request answered): nobody needs it.
        c.after_write(&no_samples(), &two, P, &scope, || Some(|k| capture = Some(k))).await;
        drop((scope, session));
        c.finish(&no_samples(), &two, capture.take().unwrap(), |_| true).await;
        assert_eq!(reads(), 3);
    }

    /// While a monitor samples positions, the task a write is left to reads nothing: the
    /// write is left to the primary's samples, as a read on the primary when it was
    /// acknowledged (or at the scope's own later read there), and the scope is no longer
    /// pending. Not while the scope is pending for more than that write, nor for a write on a
    /// node that is not the primary any more (its position is read).
    #[tokio::test(start_paused = true)]
    async fn a_write_the_scope_has_not_read_is_left_to_the_primary_s_samples() {
        let monitored = Causality::new(true, true, Duration::from_secs(1), Duration::from_secs(1));
        let (c, two) = (monitored, Fake::new(2, false));
        let reads = || two.reads.load(Ordering::SeqCst);
        let session: Arc<Shared> = Arc::default();
        let scope = Scope::Session(Arc::clone(&session));
        let still_primary = |node| node == P;

        let mut capture = None;
        let before = Instant::now();
        c.after_write(&no_samples(), &two, P, &scope, || Some(|k| capture = Some(k))).await;
        c.finish(&no_samples(), &two, capture.take().unwrap(), still_primary).await;
        let slot = c.slot(&scope);
        assert_eq!(reads(), 0, "no position read");
        assert!(!slot.pending && slot.token.is_none(), "{slot:?}");
        let seen = slot.seen.expect("the write stands as a read on the primary");
        assert_eq!(seen.node, P);
        assert!(seen.at.is_some_and(|at| at >= before && at <= Instant::now()), "{seen:?}");

        // A read on the primary that ended after the write: bounded from its own end.
        c.after_write(&no_samples(), &two, P, &scope, || Some(|k| capture = Some(k))).await;
        tokio::time::advance(Duration::from_millis(3)).await;
        let read_end = Instant::now();
        c.update(&scope, |s| s.saw(P, Some(read_end)));
        c.finish(&no_samples(), &two, capture.take().unwrap(), still_primary).await;
        assert_eq!(c.slot(&scope).seen.and_then(|s| s.at), Some(read_end));
        assert_eq!(reads(), 0);

        // Pending for writes the router cannot see as well: read as before, once they commit.
        c.after_write(&no_samples(), &two, P, &scope, || Some(|k| capture = Some(k))).await;
        c.mark_unseen_writes(&two, &scope);
        c.finish(&no_samples(), &two, capture.take().unwrap(), still_primary).await;
        assert!(c.slot(&scope).pending, "still pending for the unseen writes");
        let epoch = c.slot(&scope).pending_epoch;
        assert!(c.settle(&no_samples(), &two, &scope, P, epoch).await);

        // A write on a node that is no longer the primary: its position is read.
        let other = NodeId::new(1);
        c.after_write(&no_samples(), &two, other, &scope, || Some(|k| capture = Some(k))).await;
        c.finish(&no_samples(), &two, capture.take().unwrap(), still_primary).await;
        assert!(!c.slot(&scope).pending);
        assert_eq!(reads(), 2, "the settle's and this write's");
        drop(session);
    }

    /// A position read that fails leaves the scope pending (its next read asks the primary);
    /// a later read of the primary's position settles it.
    #[tokio::test]
    async fn a_failed_capture_leaves_the_scope_pending_until_settled() {
        let c = causality(true);
        let scope = Scope::Session(Arc::default());
        write(&c, &Fake::new(2, true), &scope).await;
        let slot = c.slot(&scope);
        assert!(slot.pending && slot.token.is_none());
        assert!(c.settle(&no_samples(), &Fake::new(2, false), &scope, P, slot.pending_epoch).await);
        let slot = c.slot(&scope);
        assert!(!slot.pending && slot.token.is_some());
    }

    /// Writes the router cannot see make a tracked scope pending; a committed transaction
    /// records a position, a rolled back one nothing.
    #[tokio::test]
    async fn unseen_writes_and_transactions_end_as_their_outcome_says() {
        let (c, two) = (causality(true), Fake::new(2, false));
        let scope = Scope::Session(Arc::default());
        c.mark_unseen_writes(&two, &scope);
        assert!(c.slot(&scope).pending);

        let other = Scope::Session(Arc::default());
        transaction(&c, &two, &other, Outcome::RolledBack).await;
        assert!(c.slot(&other).token.is_none() && !c.slot(&other).pending);
        transaction(&c, &two, &other, Outcome::Unknown).await;
        assert!(c.slot(&other).pending);
        transaction(&c, &two, &other, Outcome::Committed).await;
        assert!(c.slot(&other).token.is_some() && !c.slot(&other).pending);
    }

    /// A scope's last read is exported as its node's name when no sample bounds it, or as
    /// the primary while it may still be reading.
    #[test]
    fn a_last_read_is_exported_by_node_or_primary() {
        let two = Fake::new(2, false);
        let ended = Seen { node: NodeId::new(1), at: Some(Instant::now()) };
        assert!(
            matches!(Export::of(&no_samples(), &two, &ended), Export::Node(n) if n == "primary:5432/app")
        );
        let reading = Seen { node: NodeId::new(1), at: None };
        assert!(matches!(Export::of(&no_samples(), &two, &reading), Export::Primary(p) if p == P));
    }
}
