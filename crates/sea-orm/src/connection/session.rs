//! [`Session`]: a read-your-writes scope you hold and pass around; [`Routed`]: one call's
//! consistency and catch-up settings.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rwsplit_core::{CausalToken, Consistency};
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, ExecResult, IsolationLevel,
    QueryResult, Statement, StreamTrait, TransactionError, TransactionOptions, TransactionTrait,
};

use crate::connection::inner::RoutedConnection;
use crate::connection::traits::{Handle, routed_connection, routed_transactions};
use crate::consistency::{Export, Purpose, SessionToken, Shared, Slot};
use crate::routing::{Ctx, SESSION};

/// A read-your-writes scope that is not tied to a task: reads through it see every write made
/// through it (and every token it was given), wherever they ran.
///
/// Use it directly as a SeaORM connection (`Post::find().all(&session)`), run a block with it
/// as the ambient scope ([`Session::scope`]: every call on the `RoutedConnection` inside uses
/// it), and carry it to another task or process as a string ([`Session::token`],
/// [`RoutedConnection::session_from`]) — an HTTP cookie or header, a job payload. Cloning
/// shares the scope.
///
/// ```no_run
/// # async fn demo(db: rwsplit_sea_orm::RoutedConnection) -> Result<(), Box<dyn std::error::Error>> {
/// use sea_orm::{ConnectionTrait, Statement};
///
/// let session = db.session();
/// session.execute_unprepared("UPDATE accounts SET plan = 'pro' WHERE id = 7").await?;
/// // Carried elsewhere as text (say, in a job payload)…
/// let text = session.token().await?.map(|t| t.to_string()).unwrap_or_default();
/// // …a read there sees the update: on a replica that has replayed it, else the primary.
/// let there = db.session_from(&text)?;
/// let sql = Statement::from_string(db.get_database_backend(), "SELECT plan FROM accounts WHERE id = 7");
/// there.query_one_raw(sql).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Session {
    db: RoutedConnection,
    state: Arc<Shared>,
    /// This handle's consistency level ([`Session::with_consistency`]); `None`: the
    /// connection's.
    consistency: Option<Consistency>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slot = self.state.get();
        f.debug_struct("Session")
            .field("token", &slot.token.as_ref().map(ToString::to_string))
            .field("pending", &slot.pending)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A new, empty session on `db` ([`RoutedConnection::session`]).
    pub(crate) fn new(db: RoutedConnection) -> Session {
        Session { db, state: Arc::new(Shared::default()), consistency: None }
    }

    /// The session's token ([`SessionToken`]): the primary's position at or past every write
    /// made through it, merged with every token it was given, and the replica its last read
    /// was on (a session resumed from it never reads an older state than that read saw:
    /// writes-follow-reads, monotonic reads). `None` before any write or read. Export it with
    /// `to_string()`; resume it with [`RoutedConnection::session_from`].
    ///
    /// Waits only for the position of a write made through it, read from the primary right
    /// after the write committed (and, if a transaction begun with `begin()` committed through
    /// it, reads the primary's position first). A session that only read costs nothing here:
    /// no wait, no query.
    pub async fn token(&self) -> Result<Option<SessionToken>, DbErr> {
        resolve(&self.db, &crate::consistency::Scope::Session(Arc::clone(&self.state))).await
    }

    /// The caller's read-your-writes scope as a session ([`RoutedConnection::current_session`]):
    /// the ambient session if the caller runs inside [`Session::scope`] (shared: what either
    /// side writes, the other sees), else a new session that starts from the calling task's own
    /// scope (a copy: its writes and its last read). A write of the task whose position is
    /// still being read is carried as pending: the session's next read reads the primary's
    /// position first.
    pub(crate) fn current(db: &RoutedConnection) -> Session {
        if let Ok(state) = SESSION.try_with(Arc::clone) {
            return Session { db: db.clone(), state, consistency: None };
        }
        let mut slot = db.inner.causality.slot(&crate::consistency::Scope::Task);
        let session = Session::new(db.clone());
        if slot.token.is_none()
            && slot.external.is_none()
            && slot.seen.is_none()
            && !slot.pending
            && slot.inflight == 0
        {
            return session;
        }
        if slot.inflight > 0 {
            // Those position reads land in the task's scope, not this copy.
            slot.inflight = 0;
            slot.mark_pending();
        }
        session.state.update(|s| *s = slot);
        session
    }

    /// Whether the session carries a write position: a write made through it, or a token it
    /// was resumed from or given ([`Session::observe`]). A session that has only read carries
    /// none; what it would export ([`Session::token`]) only bounds what it read. A web layer
    /// uses this to leave a client that sent no token and wrote nothing without a cookie.
    pub fn has_writes(&self) -> bool {
        let s = self.state.get();
        s.token.is_some() || s.external.is_some() || s.pending || s.inflight > 0
    }

    /// Folds an exported token into the session: its position as [`Session::observe`] does,
    /// and its last read node as the node of the session's last read.
    pub(crate) fn resume(&self, token: &SessionToken) {
        if let Some(position) = token.position() {
            self.observe(position);
        }
        if let Some(name) = token.read_on() {
            match self.db.inner.nodes.id_of(name) {
                // What that read saw is at most what the node has replayed by now.
                Some(id) => {
                    let now = std::time::Instant::now();
                    self.state.update(|s| s.saw(id, Some(now)));
                }
                // Not a node of this connection's: bounded by the primary's position, which
                // the next read reads first.
                None => self.state.update(Slot::mark_pending),
            }
        }
    }

    /// Folds a token from elsewhere into the session (the later position of the two, per
    /// history; a token from a newer history replaces an older one).
    ///
    /// A token from outside is not trusted to be from the past: one further ahead than the
    /// primary's position the monitor last saw, and than the one this connection last read
    /// after a write (forged, or minted a moment ago elsewhere) is held
    /// apart until the session's next read, which reads the primary's current position and
    /// lowers the token to it (`CausalToken::clamp_to`): a token from the future is treated
    /// as "now" instead of sending every read to the primary after a full catch-up wait.
    pub fn observe(&self, token: &CausalToken) {
        // The primary's position as the monitor last saw it, or as this connection last read it
        // after a write (newer while writes come: a token this process issued is at or below it).
        let inner = &self.db.inner;
        let sampled = inner.routing.primary_position();
        let verified = sampled.is_some_and(|p| token.is_satisfied_by(&p))
            || inner
                .causality
                .newest_position()
                .is_some_and(|p| token.is_satisfied_by(p.position()));
        self.state.update(|s| if verified { s.record(token) } else { s.hold(token) });
    }

    /// Runs `fut` with this session as the ambient scope: every call on the
    /// [`RoutedConnection`] inside it, in this task, reads and records through the session.
    /// This is how a tower layer or middleware gives a request handler that takes `&db` the
    /// client's token.
    pub async fn scope<F: Future>(&self, fut: F) -> F::Output {
        SESSION.scope(Arc::clone(&self.state), fut).await
    }

    /// The connection the session runs on.
    pub fn connection(&self) -> &RoutedConnection {
        &self.db
    }

    /// This session handle with `consistency` as its reads' level instead of the
    /// connection's; the scope (writes, reads, token) stays shared with the other handles.
    /// `Consistency::Eventual` turns monotonic reads off for this handle: its reads still see
    /// the session's writes, but a later one may see an older state than an earlier one.
    ///
    /// ```no_run
    /// # async fn demo(db: rwsplit_sea_orm::RoutedConnection) -> Result<(), sea_orm::DbErr> {
    /// use rwsplit_sea_orm::Consistency;
    /// use sea_orm::{ConnectionTrait, Statement};
    ///
    /// let relaxed = db.session().with_consistency(Consistency::Eventual);
    /// let sql = Statement::from_string(db.get_database_backend(), "SELECT count(*) FROM posts");
    /// relaxed.query_one_raw(sql).await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with_consistency(mut self, consistency: Consistency) -> Session {
        self.consistency = Some(consistency);
        self
    }

    /// A view of the session whose reads use `consistency`.
    pub fn consistent(&self, consistency: Consistency) -> Routed<'_> {
        Routed {
            db: &self.db,
            session: Some(&self.state),
            consistency: Some(consistency),
            wait: None,
        }
    }

    /// A view of the session whose reads may wait up to `max` for a replica to catch up (see
    /// [`RoutedConnection::wait_for_replica`]).
    pub fn wait_for_replica(&self, max: Duration) -> Routed<'_> {
        Routed {
            db: &self.db,
            session: Some(&self.state),
            consistency: self.consistency.clone(),
            wait: Some(Some(max)),
        }
    }
}

/// One call's routing settings over a [`RoutedConnection`] or a [`Session`]: a consistency
/// level and whether a read-your-writes read waits for a replica. Made by
/// [`RoutedConnection::consistent`], [`RoutedConnection::wait_for_replica`] and their
/// [`Session`] twins; use it where SeaORM takes a connection.
///
/// ```no_run
/// # async fn demo(db: rwsplit_sea_orm::RoutedConnection) -> Result<(), sea_orm::DbErr> {
/// use std::time::Duration;
/// use rwsplit_sea_orm::{Consistency, Staleness};
/// use sea_orm::{ConnectionTrait, Statement};
///
/// let sql = Statement::from_string(db.get_database_backend(), "SELECT count(*) FROM posts");
/// // Any replica at most 2 s behind, else the primary.
/// let bounded = Consistency::BoundedStaleness(Staleness::time(Duration::from_secs(2)));
/// db.consistent(bounded).query_one_raw(sql.clone()).await?;
/// // The primary.
/// db.consistent(Consistency::Strong).query_one_raw(sql.clone()).await?;
/// // After this task's writes: wait up to 50 ms for a replica before using the primary.
/// db.wait_for_replica(Duration::from_millis(50)).query_one_raw(sql).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Routed<'a> {
    db: &'a RoutedConnection,
    session: Option<&'a Arc<Shared>>,
    consistency: Option<Consistency>,
    wait: Option<Option<Duration>>,
}

impl fmt::Debug for Routed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Routed")
            .field("session", &self.session.is_some())
            .field("consistency", &self.consistency)
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

impl<'a> Routed<'a> {
    /// A view of `db` with the connection's own settings, for the methods below to change
    /// ([`RoutedConnection::consistent`] and its siblings).
    pub(crate) fn new(db: &'a RoutedConnection) -> Routed<'a> {
        Routed { db, session: None, consistency: None, wait: None }
    }

    /// Uses `consistency` for these reads.
    #[must_use]
    pub fn consistent(mut self, consistency: Consistency) -> Self {
        self.consistency = Some(consistency);
        self
    }

    /// Read-your-writes reads may wait up to `max` for a replica.
    #[must_use]
    pub fn wait_for_replica(mut self, max: Duration) -> Self {
        self.wait = Some(Some(max));
        self
    }

    /// Read-your-writes reads go to the primary at once when no replica has the writes.
    #[must_use]
    pub fn primary_if_behind(mut self) -> Self {
        self.wait = Some(None);
        self
    }
}

impl Handle for Session {
    fn db(&self) -> &RoutedConnection {
        &self.db
    }
    fn ctx(&self) -> Ctx<'_> {
        Ctx { session: Some(&self.state), consistency: self.consistency.as_ref(), wait: None }
    }
}

impl Handle for Routed<'_> {
    fn db(&self) -> &RoutedConnection {
        self.db
    }
    fn ctx(&self) -> Ctx<'_> {
        Ctx { session: self.session, consistency: self.consistency.as_ref(), wait: self.wait }
    }
}

routed_connection!([] Session);
routed_transactions!(Session);
routed_connection!(['r] Routed<'r>);

/// A scope's token, reading a pending position from the primary first.
pub(crate) async fn resolve(
    db: &RoutedConnection,
    scope: &crate::consistency::Scope,
) -> Result<Option<SessionToken>, DbErr> {
    // A write's position read is under way: wait for it (a few round trips at most); if it
    // takes longer than the monitor's probe timeout, read a fresh position instead.
    let max = db.inner.policy.monitor.probe_timeout_value();
    let inner = &db.inner;
    let slot: Slot = inner.causality.settled(scope, max).await;
    let kind = db.inner.product.tokens_checked_as();
    // A write whose position was left unread (no replica could use it): the primary, by
    // name, bounds it and everything the scope read — "at most what the primary holds by
    // now" — without a query; the resumed scope reads the position when a replica could use
    // it, or reads on the primary.
    if slot.pending && slot.inflight == 0 && slot.external.is_none() && db.inner.out_of_reach() {
        let primary = db.inner.routing.primary_index();
        if let Some(name) = db.inner.nodes.name_of(primary) {
            return Ok(Some(SessionToken::with_read_on(kind, slot.token, &name)));
        }
    }
    let seen = slot.seen;
    let writable = inner.writable();
    let token = inner.causality.written(&inner.routing, &writable, scope, slot).await?;
    // Writes-follow-reads: what the scope has read travels with it, without a wait or a query
    // where its node can stand for it.
    let Some(seen) = seen else { return Ok(token.map(SessionToken::from_position)) };
    Ok(Some(match Export::of(&inner.routing, &writable, &seen) {
        Export::Floor(floor) => {
            SessionToken::from_position(token.map_or_else(|| floor.clone(), |t| t.merged(&floor)))
        }
        Export::Node(name) => SessionToken::with_read_on(kind, token, &name),
        Export::Primary(at) => {
            // A read on the primary (or a node no longer a replica), not bounded by a sample
            // yet: the primary's position now bounds it.
            let floor =
                inner.causality.capture(&inner.routing, &writable, at, Purpose::Floor).await?;
            SessionToken::from_position(token.map_or_else(|| floor.clone(), |t| t.merged(&floor)))
        }
    }))
}

/// At most 64 characters of untrusted text, for an error message; credentials redacted (a URL
/// given where a token or node name was expected may hold a password).
pub(crate) fn snippet(text: &str) -> String {
    let text = &crate::observe::redact::address_redacted(text);
    match text.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}
