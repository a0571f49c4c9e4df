//! The probe loops: one task per node, on the monitor's own connections.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rwsplit_core::{Health, NodeId, ReplayPosition, Role};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::connector::{Connector, Purpose, open};
use crate::failover::{self, AutoFailover, Failover};
use crate::patience::Patience;
use crate::probe::{Flavor, MonitorConfig, Observation, ProbeConn, ProbeError};
use crate::product::{Product, with_product};
use crate::state::TopologyState;

/// Called after every full probe of a node, with the node and what the probe saw (`None`: it
/// failed). The adapter keeps per-node facts (a PostgreSQL system id) and sweeps its
/// read-your-writes scopes here.
pub type OnProbe = Arc<dyn Fn(NodeId, Option<&Observation>) + Send + Sync>;

/// The monitor of one cluster: a probe loop per node on connections of its own, feeding a
/// [`TopologyState`]; optional automatic failover. Dropping it stops the loops.
///
/// Each loop, every [`interval`](MonitorConfig::probe_interval) plus jitter: opens its node's
/// connection if it has none, runs a full probe on it (connecting and probing bounded together
/// by the probe timeout), and hands the result to the state at once, so a hung node never
/// delays what the others report. A probe that fails drops its connection (a timed-out one may
/// be stuck behind a frozen server) and the next probe opens a new one. A connect the probe
/// stopped waiting for goes on for the next probe (up to the connect timeout), so a server
/// slow to accept finishes the handshake it began rather than being asked for a new one. Between full probes,
/// while a reader wants fresher positions than the probes give
/// ([`TopologyState::want_positions`]), a replica's replay position, and the primary's written
/// position, are read every [`position_interval`](MonitorConfig::position_interval); idle, the
/// full probe is all a node pays (one statement per interval). After a failed probe of the
/// primary, [`AutoFailover`] (if configured) may promote a replica.
pub struct Monitor {
    state: Arc<TopologyState>,
    /// Each node's loop, by id.
    tasks: std::sync::Mutex<BTreeMap<NodeId, JoinHandle<()>>>,
    /// How many loops [`Monitor::start`] started (what [`Monitor::first_round`] waits for).
    initial: usize,
    /// Starts the loop of one node (the connector and product are erased here).
    spawn: Box<dyn Fn(NodeId) -> JoinHandle<()> + Send + Sync>,
    failover: Arc<Failover>,
    first_round: Arc<Round>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("state", &self.state)
            .field("loops", &self.running())
            .field("failover", &self.failover)
            .finish_non_exhaustive()
    }
}

/// Counts nodes that have finished their first probe.
#[derive(Debug, Default)]
struct Round {
    done: AtomicUsize,
    notify: Notify,
}

/// What every loop of one monitor shares.
pub(crate) struct Shared<K: Connector> {
    state: Arc<TopologyState>,
    connector: K,
    config: MonitorConfig,
    failover: Arc<Failover>,
    on_probe: Option<OnProbe>,
    first_round: Arc<Round>,
}

impl<K: Connector> failover::Cluster for Shared<K> {
    type Connector = K;

    fn state(&self) -> &TopologyState {
        &self.state
    }

    fn connector(&self) -> &K {
        &self.connector
    }

    fn config(&self) -> &MonitorConfig {
        &self.config
    }

    fn failover(&self) -> &Failover {
        &self.failover
    }
}

impl Monitor {
    /// Starts one probe loop per node of `state` on the current tokio runtime (it panics
    /// outside one, like `tokio::spawn`; the adapter checks first). Nodes added later get
    /// theirs from [`start_node`](Self::start_node).
    pub fn start<K: Connector>(
        state: Arc<TopologyState>,
        connector: K,
        flavor: Flavor,
        config: MonitorConfig,
        failover: Option<AutoFailover>,
        on_probe: Option<OnProbe>,
    ) -> Monitor {
        let failover = Arc::new(Failover::new(failover));
        let first_round = Arc::new(Round::default());
        let shared = Arc::new(Shared {
            state: Arc::clone(&state),
            connector,
            config,
            failover: Arc::clone(&failover),
            on_probe,
            first_round: Arc::clone(&first_round),
        });
        let spawn = Box::new(move |node: NodeId| {
            let shared = Arc::clone(&shared);
            with_product!(flavor, P => tokio::spawn(node_loop::<P, K>(shared, node)))
        });
        let ids = state.ids();
        let tasks: BTreeMap<NodeId, JoinHandle<()>> =
            ids.iter().map(|&node| (node, spawn(node))).collect();
        Monitor {
            state,
            tasks: std::sync::Mutex::new(tasks),
            initial: ids.len(),
            spawn,
            failover,
            first_round,
        }
    }

    /// Starts the probe loop (and position feed) of `node`, a node added to the state at run
    /// time ([`TopologyState::add_node`]); a loop it already had is stopped first. Its first
    /// probe runs at once.
    pub fn start_node(&self, node: NodeId) {
        let mut tasks = self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(old) = tasks.insert(node, (self.spawn)(node)) {
            old.abort();
        }
    }

    /// Stops the probe loop and position feed of `node` (removed from the state). Returns
    /// whether it had one.
    pub fn stop_node(&self, node: NodeId) -> bool {
        let mut tasks = self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        tasks.remove(&node).map(|t| t.abort()).is_some()
    }

    /// The ids of the nodes whose probe loop runs, in order.
    pub fn running(&self) -> Vec<NodeId> {
        let tasks = self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        tasks.keys().copied().collect()
    }

    /// The state the loops feed.
    pub fn state(&self) -> &Arc<TopologyState> {
        &self.state
    }

    /// Waits until every node has been probed once, or `max` has passed. Returns whether every
    /// node was. The loops probe at once when they start, so after this the snapshot has every
    /// reachable node's role and position (a read that must see a write can use a replica from
    /// the first statement on).
    pub async fn first_round(&self, max: Duration) -> bool {
        let all = self.initial;
        let wait = async {
            loop {
                let notified = self.first_round.notify.notified();
                if self.first_round.done.load(Ordering::Acquire) >= all {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(max, wait).await.is_ok()
    }

    /// Promotions this monitor carried out.
    pub fn promotions(&self) -> u64 {
        self.failover.promotions()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let tasks = self.tasks.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        for t in tasks.values() {
            t.abort();
        }
    }
}

/// A connection being opened for a node's probes, on a task of its own. It outlives a probe
/// that stopped waiting for it: a server slow to accept connections (a fleet of instances
/// connecting at once, a server short of CPU) completes the handshake it has begun for the
/// next probe, instead of having it abandoned half-way and begun again each round, a new
/// backend forked and authenticated every time, which keeps a busy server from ever catching
/// up. The probe that stops waiting still fails (a node that was answering and froze or went
/// away is detected within one probe timeout); the opening is
/// given up after [`MonitorConfig::connect_timeout_value`] (10 s at the defaults) in all, so a
/// connect stuck on a lost SYN is begun afresh, and is aborted when dropped (the node's loop
/// stopped). A node's first probe waits for its opening that long: nothing has been learnt of
/// the node yet, and a fleet starting at once is exactly when servers are slow to accept (a
/// node frozen before the application started is then seen failed that much later). A node's
/// first opening goes on twice that in all
/// ([`MonitorConfig::first_connect_timeout_value`]), for the probes after the first.
struct Opening<C>(JoinHandle<Result<C, ProbeError>>, Instant);

impl<C> Drop for Opening<C> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A probe query that outlasted its probe's timeout, left running on a task of its own with
/// the connection and the memo it was asked on. Under saturation (hundreds of processes on a
/// few cores) a server answers late, not never; dropping the connection would make the next
/// probe have the saturated server fork and authenticate a new backend, with one probe timeout
/// for both, each round worse than the last. So the next probe waits for this answer first (the
/// probe timeout, as any probe): an answer that comes while it waits is that probe's result
/// (the node answered within its timeout) and the connection is kept; one that never comes
/// fails each probe, so a frozen node is still detected within one probe timeout. The query
/// is given up after
/// [`MonitorConfig::connect_timeout_value`] (10 s at the defaults) from when it was sent, the
/// connection closed and the next probe connects afresh; aborted when dropped.
///
/// A feed read still unanswered when the next full probe is due is handed on the same way
/// ([`Asking::Feed`]): dropping a driver's query half-way leaves its connection's protocol state to
/// the driver's recovery, and one such connection, reused, can make sqlx-mysql 0.9 panic decoding
/// the next probe's answer (a column definition cut short), which would end the node's loop and so
/// its monitoring. The next probe waits for that read first (the probe timeout), then asks on the
/// connection afresh; its answer decides nothing (the probe's own does), except that one that comes
/// while the probe waits is the node answering within the probe's timeout: the probe's own query is
/// then waited for a whole timeout from that answer.
enum Asking<C, M> {
    /// A probe query's answer.
    Probe(Task<Answer<C, M>>),
    /// A feed read's.
    Feed(Task<FeedRead<C>>),
}

/// A query handed on to the next probe, on a task of its own: aborted when dropped (the node's
/// loop stopped).
struct Task<T>(JoinHandle<T>);

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A query on the probe connection, polled in the node's loop with a driver's panic caught: the
/// probe (or the feed) fails, the connection is dropped with the query and the next probe opens
/// a new one, instead of the panic ending the node's loop and so its monitoring. Polled in the
/// loop rather than on a task of its own: a task's wake-up is one more scheduling delay on
/// every answer, which on a saturated machine held feed answers back (fewer reads on replicas in
/// the fleet benchmark). Owned and boxed, so that one still unanswered when its probe gives up
/// moves onto a task of its own ([`Asking`]) without being dropped half-way.
struct Caught<F>(std::pin::Pin<Box<F>>);

/// [`Caught`]'s query panicked.
#[derive(Debug)]
struct Panicked;

/// [`Panicked`], as the probe's error.
const PANICKED: &str = "the database driver panicked answering the probe (a driver bug)";

impl<F: Future> Future for Caught<F> {
    type Output = Result<F::Output, Panicked>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let query = self.0.as_mut();
        // Not polled again after a panic: `Ready` ends the caller's wait, and it drops this.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| query.poll(cx))) {
            Ok(std::task::Poll::Ready(out)) => std::task::Poll::Ready(Ok(out)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(_) => std::task::Poll::Ready(Err(Panicked)),
        }
    }
}

/// What a feed read left: the connection (none once it failed or was given up), the position
/// read, how long it took and when it came.
type FeedRead<C> = (Option<C>, Result<Option<ReplayPosition>, ProbeError>, Duration, Instant);

/// What a probe query left: the connection (none once it failed or was given up), the memo,
/// the result and when it came.
type Answer<C, M> = (Option<C>, M, Result<Observation, ProbeError>, Instant);

/// One probe query on `conn`, owning it so that it can outlive the probe that sent it
/// ([`Asking`]); given up after `patience`.
async fn ask<P: Product, C: ProbeConn + 'static>(
    conn: C,
    mut memo: P::Memo,
    patience: Duration,
) -> Answer<C, P::Memo> {
    let started = Instant::now();
    let result = match tokio::time::timeout(patience, P::probe(&conn, &mut memo, started)).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::Timeout { after: patience }),
    };
    let kept = result.is_ok().then_some(conn);
    (kept, memo, result, Instant::now())
}

/// A node's probe connection and what is under way on it: at most one of an opening connect
/// ([`Opening`]), a query an earlier probe left running ([`Asking`]), or an idle connection.
struct Link<C, M> {
    conn: Option<C>,
    memo: M,
    opening: Option<Opening<C>>,
    asking: Option<Asking<C, M>>,
    /// What the last probe waited for when it ended: `"connect"` (a connection being opened),
    /// `"feed"` (the answer to a position-feed read sent before the probe began and handed to
    /// it) or `"answer"` (a probe query's). The `probe failed` event carries it, so an operator
    /// (and the fleet benchmark) can tell a server slow to accept connections from one slow to
    /// answer, and a probe held up by the feed's read from one held up by its own query.
    waited: &'static str,
}

impl<C, M: Default> Default for Link<C, M> {
    fn default() -> Self {
        Self { conn: None, memo: M::default(), opening: None, asking: None, waited: ANSWER }
    }
}

/// [`Link::waited`]: a connection being opened.
const CONNECT: &str = "connect";
/// [`Link::waited`]: a probe query's answer.
const ANSWER: &str = "answer";
/// [`Link::waited`]: the answer to a feed read handed to the probe ([`Asking::Feed`]).
const FEED: &str = "feed";

/// How long a probe of a node with `pace` waits from `at`: the configured timeout, stretched
/// while the node has been answering slowly (see `patience`); and how long a query or connect
/// is given up after, the connect timeout or three of that timeout if that is longer.
fn waits(pace: &Patience, config: &MonitorConfig, at: Instant) -> (Duration, Duration) {
    let timeout = pace.timeout(config, at);
    (timeout, config.connect_timeout_value().max(timeout.saturating_mul(3)))
}

/// From when an application's answer shows a node the monitor has not reached yet alive, as of
/// `now`: one connect timeout back (see `node_loop`).
fn queued_since(now: Instant, config: &MonitorConfig) -> std::time::Instant {
    now.checked_sub(config.connect_timeout_value()).unwrap_or(now).into_std()
}

/// One full probe of `node` on its dedicated connection: first the answer to a query an
/// earlier probe left running ([`Asking`]) if there is one, then a connection opened if there
/// is none (continuing an [`Opening`] an earlier probe began), then the query. A query that
/// fails drops the connection; one that times out is left running for the next probe.
/// Everything shares one probe timeout, except on a node's first probe (`first`), which waits
/// for its connection and its first answer as long as a connect may take
/// ([`MonitorConfig::connect_timeout_value`]): a new backend's first statement is part of its
/// setup (catalog caches loaded, the control file read for the server's identity), and on a
/// server that a whole fleet is connecting to at once it waits behind theirs.
async fn probe_node<P: Product, K: Connector>(
    shared: &Arc<Shared<K>>,
    link: &mut Link<K::Conn, P::Memo>,
    node: NodeId,
    first: bool,
    pace: &mut Patience,
    learn: bool,
) -> Result<Observation, ProbeError> {
    let began = Instant::now();
    let (timeout, patience) = waits(pace, &shared.config, began);
    let mut probing = Probing { began, timeout, patience, first, learn };
    link.waited = ANSWER;
    if let Some(done) =
        collect_pending::<P, K::Conn>(link, &mut probing, &shared.config, pace).await
    {
        return done;
    }
    if link.conn.is_none() {
        connect::<P, K>(shared, link, node, &probing, pace).await?;
    }
    ask_now::<P, K::Conn>(link, &probing, pace).await
}

/// One probe's clock: when it began (or the instant a feed read handed to it was answered) and
/// how long it waits ([`waits`]), whether it is the node's first, and whether answers teach
/// the node's pace.
struct Probing {
    began: Instant,
    timeout: Duration,
    patience: Duration,
    first: bool,
    learn: bool,
}

/// The answer to a query an earlier probe or the feed left running ([`Asking`]), if there is
/// one: `Some` ends the probe with it (answered while this probe waited, or not within its
/// timeout); `None` goes on to ask afresh (answered before this probe began, or a feed read
/// answered meanwhile, from whose answer the probe's own query is waited for a whole timeout).
async fn collect_pending<P: Product, C: ProbeConn + 'static>(
    link: &mut Link<C, P::Memo>,
    probing: &mut Probing,
    config: &MonitorConfig,
    pace: &mut Patience,
) -> Option<Result<Observation, ProbeError>> {
    let timeout = probing.timeout;
    match link.asking.as_mut() {
        None => None,
        Some(Asking::Probe(pending)) => {
            let Ok(joined) = tokio::time::timeout(timeout, &mut pending.0).await else {
                // Still unanswered: this probe fails as any would; the query goes on.
                return Some(Err(ProbeError::Timeout { after: timeout }));
            };
            link.asking = None;
            // The task ends by returning, or by a driver's panic (tokio catches it on a task).
            let (conn, memo, result, answered) = match joined {
                Ok(joined) => joined,
                Err(e) => return Some(Err(ProbeError::unreachable(e))),
            };
            link.conn = conn;
            link.memo = memo;
            if let (Ok(seen), true) = (&result, probing.learn) {
                // A late answer says how slow the node is: the next probes wait for that.
                pace.answered(seen.latency(), answered);
            }
            // Answered while this probe waited: the node answered within its timeout.
            // Answered before it began: ask afresh (or reconnect, if it failed).
            (answered >= probing.began).then_some(result)
        }
        Some(Asking::Feed(pending)) => {
            link.waited = FEED;
            let Ok(joined) = tokio::time::timeout(timeout, &mut pending.0).await else {
                return Some(Err(ProbeError::Timeout { after: timeout }));
            };
            link.asking = None;
            link.waited = ANSWER;
            // Answered or not, the probe asks afresh (or reconnects: the read failed, or the
            // driver panicked).
            if let Ok((conn, read, took, answered)) = joined {
                link.conn = conn;
                if let (Ok(_), true) = (&read, probing.learn) {
                    // A late answer says how slow the node is: the next probes wait for that.
                    pace.answered(took, answered);
                }
                if read.is_ok() && answered >= probing.began {
                    // Answered while this probe waited: the node answered within the probe's
                    // timeout, and the probe's own query is waited for a whole one from then
                    // (not what the read left of it), so a stall shorter than the timeout
                    // fails no probe. A node that freezes after this answer is caught a
                    // timeout after it.
                    probing.began = answered;
                    (probing.timeout, probing.patience) = waits(pace, config, answered);
                }
            }
            None
        }
    }
}

/// Opens the probe connection of `node` (continuing an [`Opening`] an earlier probe began),
/// waiting what is left of the probe's timeout, or the connect patience on a node's first
/// probe; a connect not done by then goes on for the next probe.
async fn connect<P: Product, K: Connector>(
    shared: &Arc<Shared<K>>,
    link: &mut Link<K::Conn, P::Memo>,
    node: NodeId,
    probing: &Probing,
    pace: &mut Patience,
) -> Result<(), ProbeError> {
    let Probing { began, timeout, patience, first, learn } = *probing;
    link.waited = CONNECT;
    // A node's first connect goes on past the first probe's patience, for the probes after it
    // (see `MonitorConfig::first_connect_timeout_value`).
    let bound =
        if first { shared.config.first_connect_timeout_value().max(patience) } else { patience };
    let pending = link.opening.get_or_insert_with(|| {
        let shared = Arc::clone(shared);
        Opening(
            tokio::spawn(async move { open(&shared.connector, node, Purpose::Probe, bound).await }),
            Instant::now(),
        )
    });
    let wait = if first { patience } else { timeout.saturating_sub(began.elapsed()) };
    let Ok(opened) = tokio::time::timeout(wait, &mut pending.0).await else {
        // The connect goes on for the next probe.
        return Err(ProbeError::Timeout { after: if first { patience } else { timeout } });
    };
    let since = link.opening.take().map(|o| o.1);
    // The task ends only by returning: it is aborted only with `opening`, and a connector that
    // panics is a bug reported as an unreachable node rather than a dead loop.
    let opened = opened.map_err(ProbeError::unreachable)?;
    link.conn = Some(opened?);
    link.waited = ANSWER;
    if let (Some(since), true) = (since, learn) {
        // A connect is an answer too: a server slow to accept is slow, and waited for so.
        let now = Instant::now();
        pace.answered(now.saturating_duration_since(since), now);
    }
    // A new connection may be to a restarted server: remember nothing of the old one.
    link.memo = P::Memo::default();
    Ok(())
}

/// The probe's own query on the link's connection; one that outlasts the probe is left running
/// for the next probe ([`Asking::Probe`]).
async fn ask_now<P: Product, C: ProbeConn + 'static>(
    link: &mut Link<C, P::Memo>,
    probing: &Probing,
    pace: &mut Patience,
) -> Result<Observation, ProbeError> {
    let Probing { began, timeout, patience, first, learn } = *probing;
    let Some(conn) = link.conn.take() else { return Err(ProbeError::Timeout { after: timeout }) };
    // A first probe's connect and first answer share the connect patience, and the answer has
    // at least the probe timeout however long the connect took.
    let (timeout, left) = if first {
        (patience, patience.saturating_sub(began.elapsed()).max(timeout))
    } else {
        (timeout, timeout.saturating_sub(began.elapsed()))
    };
    let memo = std::mem::take(&mut link.memo);
    let mut asked = Caught(Box::pin(ask::<P, C>(conn, memo, patience)));
    match tokio::time::timeout(left, &mut asked).await {
        Ok(joined) => {
            // A driver that panicked: the connection is gone with its query.
            let (conn, memo, result, answered) =
                joined.map_err(|Panicked| ProbeError::unreachable(PANICKED))?;
            link.conn = conn;
            link.memo = memo;
            if let (Ok(seen), true) = (&result, learn) {
                pace.answered(seen.latency(), answered);
            }
            result
        }
        Err(_) => {
            // Left running for the next probe.
            link.asking = Some(Asking::Probe(Task(tokio::spawn(asked.0))));
            Err(ProbeError::Timeout { after: timeout })
        }
    }
}

async fn node_loop<P: Product, K: Connector>(shared: Arc<Shared<K>>, node: NodeId) {
    let config = shared.config;
    let mut link = Link::<K::Conn, P::Memo>::default();
    // Nodes start their jitter sequences apart, so they do not probe in lockstep.
    let mut round = (node.index() as u64).wrapping_mul(0x9E37_79B9);
    let mut first = true;
    // Whether the last probe was an early one (see below): at most one per scheduled round.
    let mut early = false;
    // How slowly the node has answered lately: how long its probes are waited for.
    let mut pace = Patience::default();
    // Whether the node has answered one of the monitor's probes yet (see below).
    let mut reached = false;
    loop {
        let began = Instant::now();
        // A node marked down is judged afresh: what it answered before says nothing of it now,
        // and an answer that comes while it is down (a query sent before it froze, answered
        // when it thawed) measured the freeze, not the node's pace.
        let down = shared.state.health(node) == Health::Down;
        if down {
            pace = Patience::default();
        }
        let mut result =
            probe_node::<P, K>(&shared, &mut link, node, first, &mut pace, !down).await;
        let now = Instant::now();
        if let Err(ProbeError::Timeout { after }) = result
            && served_while_waiting(&shared.state, node, began, now, reached, &config)
        {
            result = Err(ProbeError::Outpaced { after });
        }
        reached |= result.is_ok();
        let failures = shared.state.observe(node, &result, now.into_std());
        if let Err(error) = &result
            && failures > 0
        {
            log_failed_probe(&shared.state, node, error, failures, link.waited);
        }
        if let Some(f) = &shared.on_probe {
            f(node, result.as_ref().ok());
        }
        if first {
            first = false;
            shared.first_round.done.fetch_add(1, Ordering::AcqRel);
            shared.first_round.notify.notify_waiters();
        }
        if failures > 0 {
            failover::after_failed_probe::<P, Shared<K>>(&shared, node, failures);
        } else if let Ok(seen) = &result {
            failover::after_answer::<P, Shared<K>>(&shared, node, seen);
        }
        let next = Turn {
            state: &shared.state,
            busy: saturating_after(now, config.pause(round)),
            idle: saturating_after(now, config.idle_pause(round)),
            idle_after: config.idle_probe_interval_value(),
        };
        round = round.wrapping_add(1);
        let mut fed = FeedEnd::Schedule;
        if let (Ok(obs), true) = (&result, link.conn.is_some()) {
            let every = config.position_interval_value();
            let probed = now.checked_sub(obs.latency()).unwrap_or(now);
            let patience = config.connect_timeout_value();
            let mut feed = Feed {
                state: &shared.state,
                link: &mut link,
                node,
                last: obs,
                every,
                patience,
                pace: &mut pace,
            };
            fed = feed.until::<P>(probed, &next).await;
        }
        // A feed read that failed or found the role changed (the server went away, a
        // promotion) is news the next full probe should read now, not at its turn: a stopped
        // primary is seen gone, and a promoted replica seen primary, within one feed interval
        // rather than one probe interval (while both claim the role, nothing can be written
        // and no bounded read proven). Once per round, so a node whose feed keeps
        // failing is still probed only at the usual pace.
        if fed == FeedEnd::Changed && !early {
            early = true;
            continue;
        }
        early = false;
        next.wait().await;
    }
}

/// Whether a probe of `node` that began at `began` and timed out at `now` found a node slow,
/// not dead: it answered the application while the probe waited. Or the monitor has not
/// `reached` it yet (its first connection still waiting to be accepted, or that connection's
/// first answer, the new backend's setup) and it answered the application within a connect
/// timeout: on a server a whole fleet is connecting to, the postmaster accepts one connection
/// after another (it held hundreds unaccepted in the fleet benchmark), and the monitor's waits
/// in line behind the application's, whose statements show the server at work. A node that
/// stops answering everyone fails a connect timeout after its last answer, at most; once it
/// has answered a probe, only the probe's own wait counts.
fn served_while_waiting(
    state: &TopologyState,
    node: NodeId,
    began: Instant,
    now: Instant,
    reached: bool,
    config: &MonitorConfig,
) -> bool {
    state.served_since(node, began.into_std())
        || (!reached && state.served_since(node, queued_since(now, config)))
}

/// Logs why `node` is marked suspect, then down: the first failure of a run (`failures` is 1)
/// at WARN (an operator's "why was it banned"), the rest at DEBUG. A timeout carries how long
/// the probe waited (the stretched timeout, as a number a log query or a harness can filter
/// on) and what it waited for (`waited`: a connection, a feed read's answer or a probe
/// query's).
fn log_failed_probe(
    state: &TopologyState,
    node: NodeId,
    error: &ProbeError,
    failures: u32,
    waited: &'static str,
) {
    let name = state.snapshot().node(node).map(|n| n.name().to_owned());
    let name = name.unwrap_or_else(|| node.to_string());
    let timeout_ms = match error {
        ProbeError::Timeout { after } => Some(u64::try_from(after.as_millis()).unwrap_or(u64::MAX)),
        _ => None,
    };
    let waited = timeout_ms.map(|_| waited);
    if failures == 1 {
        tracing::warn!(target: "rwsplit", node = %name, %error, failures, timeout_ms, waited, "probe failed");
    } else {
        tracing::debug!(target: "rwsplit", node = %name, %error, failures, timeout_ms, waited, "probe failed");
    }
}

/// When a node's next full probe is due: `busy` while the cluster is used, `idle` once it has
/// not been for `idle_after` (see [`MonitorConfig::idle_probe_interval`](crate::MonitorConfig::idle_probe_interval)).
struct Turn<'a> {
    state: &'a TopologyState,
    busy: Instant,
    idle: Instant,
    idle_after: Duration,
}

impl Turn<'_> {
    /// The instant the next full probe is due, as of now.
    fn at(&self) -> Instant {
        if self.idle <= self.busy
            || self.state.used_within(Instant::now().into_std(), self.idle_after)
        {
            self.busy
        } else {
            self.idle
        }
    }

    /// Sleeps until the next full probe is due; a use that comes while the cluster was idle
    /// brings it forward to `busy` (at once if that has passed).
    async fn wait(&self) {
        loop {
            // Made before the check: a use in between still wakes it.
            let resumed = self.state.resumed();
            let at = self.at();
            if at == self.busy {
                tokio::time::sleep_until(at).await;
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(at) => return,
                () = resumed => {}
            }
        }
    }
}

/// Why [`Feed::until`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FeedEnd {
    /// The next full probe is due, or the feed is off.
    Schedule,
    /// A read failed or the node answered for another role: the next full probe should run now.
    Changed,
}

/// `now + d`, saturating (`Instant + Duration::MAX` panics): a huge interval means "about
/// never", 30 years on.
fn saturating_after(now: Instant, d: Duration) -> Instant {
    const FOREVER: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);
    now.checked_add(d).or_else(|| now.checked_add(FOREVER)).unwrap_or(now)
}

/// After a feed read answered in `t`, the node's next feed read waits at least this many
/// times `t` from the answer. A node answering in a millisecond or two is read at the
/// position interval; one answering slowly is asked less and less often, each instance's reads
/// taking at most a tenth of the node's time: without the back-off, a fleet whose every
/// instance wants positions reads each node back to back, so a replica that slows for a moment
/// (a burst of writes to replay, its container short of CPU) gets up to one statement per
/// instance at all times, queued in front of every probe, and the probes of the whole fleet
/// time out together (the fleet benchmark shows it). Positions then come from the full probes,
/// and reads that need fresher ones go to the primary, as with the feed off.
pub(crate) const FEED_BACKOFF: u32 = 10;

/// One node's position feed between two full probes.
struct Feed<'a, C, M> {
    state: &'a TopologyState,
    /// The node's probe connection: each read takes it ([`Caught`]) and gives it back, or hands
    /// the read to the next probe ([`Asking::Feed`]).
    link: &'a mut Link<C, M>,
    node: NodeId,
    /// The full probe before: the role the feed reads positions for.
    last: &'a Observation,
    /// The feed's interval (zero: off).
    every: Duration,
    /// How long a read goes on, unanswered, before its connection is given up.
    patience: Duration,
    /// Its reads' answer times count as the probes' do.
    pace: &'a mut Patience,
}

impl<C: ProbeConn + 'static, M> Feed<'_, C, M> {
    /// Runs until the next full probe is due (`turn`). While positions are wanted
    /// ([`TopologyState::want_positions`]), every `every` (the first at once, unless the full
    /// probe sampled at `probed` less than `every` ago), and never sooner than
    /// [`FEED_BACKOFF`] times the last answer's time after it: a replica's replay position or the
    /// primary's written position (the primary's samples date from when the query was sent:
    /// the earliest it can have been there). While nobody wants them, nothing: idle, positions
    /// come with the full probes, and a want that starts wakes the feed at once. Stops at the
    /// first failure, answer for another role or read still unanswered when the next full
    /// probe is due (that probe decides what happened).
    async fn until<P: Product>(&mut self, probed: Instant, turn: &Turn<'_>) -> FeedEnd {
        if self.every.is_zero() {
            return FeedEnd::Schedule;
        }
        let mut last_sent = probed;
        // No read before this: the last answer's time, times `FEED_BACKOFF`, after it (the
        // full probe's first).
        let answered = Instant::now();
        let took = answered.saturating_duration_since(probed);
        let mut rested = saturating_after(answered, took.saturating_mul(FEED_BACKOFF));
        // Whether the last read was for a wanted sample (see below).
        let mut last_sampled = false;
        loop {
            // Made before the check: a want or use that starts in between still wakes it.
            let wanted = self.state.wanted();
            let resumed = self.state.resumed();
            let now = Instant::now();
            let until = turn.at();
            if !self.state.feed_wanted(self.node, now.into_std()) {
                tokio::select! {
                    () = tokio::time::sleep_until(until) => return FeedEnd::Schedule,
                    () = wanted => continue,
                    () = resumed => continue,
                }
            }
            // A wanted sample (one read's floor) comes a quarter interval after the last read
            // at most: the read waiting for it may wait only that long. Not after a read that
            // was itself for a wanted sample: then one interval after it, so a process whose
            // reads hit the node without pause (each asking for a sample as it ends) has it
            // read once per interval, not every quarter. Feeds for a time keep the interval.
            let sampling = self.state.sample_wanted(self.node, now.into_std());
            let gap = if sampling && !last_sampled { self.every / 4 } else { self.every };
            let at = saturating_after(last_sent, gap).max(rested).max(now);
            if at >= until {
                return FeedEnd::Schedule;
            }
            if at > now {
                // A want that comes meanwhile may bring the read forward.
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = wanted => continue,
                }
            }
            // A feed read never delays the next full probe: a node that stops answering here
            // is judged by that probe, on time. Unanswered then, the read is handed to that
            // probe, never dropped half-way (see `Asking::Feed`).
            let Some(conn) = self.link.conn.take() else { return FeedEnd::Changed };
            let sent = Instant::now();
            last_sent = sent;
            last_sampled = sampling;
            let last = self.last.clone();
            let patience = self.patience;
            let mut read = Caught(Box::pin(async move {
                let read = tokio::time::timeout(patience, P::replay_position(&conn, &last)).await;
                let read = read.unwrap_or(Err(ProbeError::Timeout { after: patience }));
                // A connection whose read failed or was given up is not used again.
                let kept = read.is_ok().then_some(conn);
                let answered = Instant::now();
                (kept, read, answered.saturating_duration_since(sent), answered)
            }));
            let (read, took, answered) = match tokio::time::timeout_at(until, &mut read).await {
                Ok(Ok((conn, read, took, answered))) => {
                    self.link.conn = conn;
                    (read, took, answered)
                }
                // The driver panicked: the next probe connects afresh.
                Ok(Err(_)) => return FeedEnd::Changed,
                // Unanswered when the full probe is due: that probe judges the node, on time,
                // after waiting for this read on a task of its own.
                Err(_) => {
                    self.link.asking = Some(Asking::Feed(Task(tokio::spawn(read.0))));
                    return FeedEnd::Schedule;
                }
            };
            match read {
                Ok(Some(position)) => {
                    self.pace.answered(took, answered);
                    rested = saturating_after(answered, took.saturating_mul(FEED_BACKOFF));
                    let at = if self.last.role() == Role::Primary { sent } else { answered };
                    self.state.observe_position_sent(
                        self.node,
                        position,
                        at.into_std(),
                        sent.into_std(),
                    );
                }
                Err(_) | Ok(None) => return FeedEnd::Changed,
            }
        }
    }
}

#[cfg(test)]
mod tests;
