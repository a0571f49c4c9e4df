//! The node registry, a component with private state: [`Node`] (one server as the adapter
//! sees it: its pools and counters), [`NodeRef`] (a node held while something runs on
//! it), [`Nodes`] (which nodes there are, the monitor's state's alone, with the adapter's own
//! part of each beside it) and [`NodeTable`], that part: a lock-free table of generational
//! slots (a lookup compares the generation) with the arena of nodes lent out as
//! `&DatabaseConnection` and the drain of a removed node, whose pools close once its last
//! [`NodeRef`] is dropped.
//!
//! Every field is private to this file: callers use the methods, which say what they do (count
//! a read, note an answer, start a server check) rather than reach into atomics (how fast a
//! node answers is hedging's: `crate::hedge`). The tidy test
//! `component_fields_are_private` keeps it so. The one part handed out is a lease, listed in
//! tidy's `LEASES`: a node held while something runs on it ([`NodeRef`], from
//! [`Nodes::hold`]), which a removal's drain waits for. Membership is the registry's
//! operations: [`Nodes::add`], and [`Nodes::remove`], which also drains the node.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use rwsplit_core::{MAX_NODES, NodeId};
use rwsplit_monitor::{NoFreeIndex, TopologyState};
use sea_orm::DatabaseConnection;

use crate::nodes::probe::ProbeFrom;
use crate::observe::telemetry::{Durations, NodeLabels};

/// One database server as the adapter sees it: its id, its pools, its counters and where the
/// monitor opens its own connections from (its weight, zone and tags are in the monitor's
/// snapshot). Its health, role and lag are the monitor's
/// ([`Routing`](crate::cluster::Routing)), under the same [`NodeId`].
pub(crate) struct Node {
    /// Its id, the state's: set when it enters [`NodeTable`] (the monitor's state hands out
    /// ids at run time).
    id: NodeId,
    /// `host:port/db`, never credentials.
    name: String,
    /// The pool reads use; read-only sessions on a configured replica.
    conn: DatabaseConnection,
    /// The pool writes use: the same pool on the configured primary; on a replica a lazy,
    /// writable pool that opens connections only if the node is promoted and takes writes.
    writer: DatabaseConnection,
    /// What statements did on it, for [`Stats`](crate::Stats).
    counts: Counts,
    /// PostgreSQL system identifier, for tokens (0: not known yet).
    system_id: AtomicU64,
    /// Its metric labels.
    labels: NodeLabels,
    /// Its statement-duration handles, by label set.
    durations: Durations,
    /// Whether reads and writes share one pool (`conn` is `writer`).
    one_pool: bool,
    /// When it last answered a probe.
    last_seen: Mutex<Option<Instant>>,
    /// Where the monitor opens its own connections to it from (`None`: it cannot, and a
    /// connection made of such nodes runs no monitor).
    probe: Option<ProbeFrom>,
    /// Its index in [`NodeTable`]'s arena once a reference to it was handed out.
    kept: OnceLock<usize>,
    /// What its server is, once checked against the version policy
    /// ([`check`](crate::product::check)): at connect, or when it first
    /// answers a probe.
    server: OnceLock<crate::product::Server>,
    /// A check of its server is under way, or refused it for good ([`ServerCheck`]).
    checking: AtomicBool,
    /// Its pools again, reporting to the connection's metric callback: made once one is set
    /// ([`Node::hook`]). The user's statements run on these; the adapter's own (position
    /// captures, catch-up waits, server checks) on `conn` and `writer`, unreported.
    hooked: OnceLock<Hooked>,
    /// Its pools were made by the adapter (the builder, a topology source), so no SeaORM metric
    /// callback of the user's is on them: its reads may skip SeaORM's `DatabaseConnection`
    /// ([`crate::send::sending::direct`]). Pools given to `from_connections` may carry one.
    owned: bool,
    /// Who holds it, and the wake-up of its drain once removed.
    holds: Holds,
    /// Whether SeaORM's spans record the statement's text (its options'
    /// `record_stmt_in_spans`; SeaORM's default, `true`, for pools given as they are).
    record_stmt: bool,
}

/// A node's pools, with a SeaORM metric callback forwarding to the connection's [`Hooks`].
///
/// [`Hooks`]: crate::observe::hooks::Hooks
struct Hooked {
    conn: DatabaseConnection,
    writer: DatabaseConnection,
}

impl Node {
    /// A node whose reads and writes share the pool `conn`.
    pub(crate) fn new(name: String, conn: DatabaseConnection) -> Node {
        let mut node = Node::with_writer(name, conn.clone(), conn);
        node.one_pool = true;
        node
    }

    /// A node reading on `conn` and writing on `writer`.
    pub(crate) fn with_writer(
        name: String,
        conn: DatabaseConnection,
        writer: DatabaseConnection,
    ) -> Node {
        Node {
            id: NodeId::new(0),
            labels: NodeLabels::of(&name),
            durations: Durations::default(),
            name,
            conn,
            writer,
            counts: Counts::default(),
            system_id: AtomicU64::new(0),
            last_seen: Mutex::new(None),
            one_pool: false,
            probe: None,
            kept: OnceLock::new(),
            server: OnceLock::new(),
            checking: AtomicBool::new(false),
            hooked: OnceLock::new(),
            owned: false,
            holds: Holds::default(),
            record_stmt: true,
        }
    }

    /// The node with pools the adapter made itself (see its `owned` field).
    pub(crate) fn owned(mut self) -> Node {
        self.owned = true;
        self
    }

    /// The node with SeaORM's `record_stmt_in_spans` from its options.
    pub(crate) fn recording(mut self, record_stmt: bool) -> Node {
        self.record_stmt = record_stmt;
        self
    }

    /// The node with what its server was found to be.
    pub(crate) fn checked(self, server: Option<crate::product::Server>) -> Node {
        if let Some(server) = server {
            let _ = self.server.set(server);
        }
        self
    }

    /// The node with where the monitor opens its connections from.
    pub(crate) fn probed_from(mut self, probe: Option<ProbeFrom>) -> Node {
        self.probe = probe;
        self
    }

    /// Its id in the registry (generation included).
    #[cfg(test)]
    pub(crate) fn id(&self) -> NodeId {
        self.id
    }

    /// `host:port/db`, never credentials.
    #[inline]
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The pool the adapter's own reads run on (catch-up waits, server checks):
    /// never reported to the metric callback.
    #[inline]
    pub(crate) fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// The pool the adapter's own writes run on (position captures, pings): never reported
    /// to the metric callback.
    #[inline]
    pub(crate) fn writer(&self) -> &DatabaseConnection {
        &self.writer
    }

    /// Its read pool when that is not its write pool (for the pool gauges, which count a
    /// shared pool once).
    pub(crate) fn separate_read_pool(&self) -> Option<&DatabaseConnection> {
        (!self.one_pool).then_some(&self.conn)
    }

    /// The pool the user's reads run on: `conn`, reporting to the metric callback once one is
    /// set.
    #[inline]
    pub(crate) fn user_conn(&self) -> &DatabaseConnection {
        self.hooked.get().map_or(&self.conn, |h| &h.conn)
    }

    /// The pool the user's writes run on: `writer`, reporting to the metric callback once one
    /// is set.
    #[inline]
    pub(crate) fn user_writer(&self) -> &DatabaseConnection {
        self.hooked.get().map_or(&self.writer, |h| &h.writer)
    }

    /// Makes its pools report to `hooks` from now on (once; later calls change nothing).
    pub(crate) fn hook(&self, hooks: &Arc<crate::observe::hooks::Hooks>) {
        self.hooked.get_or_init(|| {
            let conn = hooks.hooked(&self.conn);
            let writer = if self.one_pool { conn.clone() } else { hooks.hooked(&self.writer) };
            Hooked { conn, writer }
        });
    }

    /// Whether its pools report to the metric callback.
    #[inline]
    pub(crate) fn is_hooked(&self) -> bool {
        self.hooked.get().is_some()
    }

    /// Whether its reads may go straight to its sqlx pool: pools the adapter made, and nothing
    /// listening to SeaORM's instrumentation ([`crate::send::sending::Direct::quiet`]).
    #[inline]
    fn reads_direct(&self) -> bool {
        self.owned && crate::send::sending::Direct::quiet(self.is_hooked())
    }

    /// Its pool (the writer's, or the reads') straight on sqlx, if its reads may go there
    /// ([`Node::reads_direct`]; then nothing is hooked to its pools, and the pool is its own).
    #[inline]
    pub(crate) fn direct(&self, writer: bool) -> Option<crate::send::sending::Direct<'_>> {
        if !self.reads_direct() {
            return None;
        }
        crate::send::sending::direct(if writer { &self.writer } else { &self.conn })
    }

    /// Whether SeaORM's spans for its statements record their text.
    #[inline]
    pub(crate) fn record_stmt(&self) -> bool {
        self.record_stmt
    }

    /// Its metric labels.
    #[inline]
    pub(crate) fn labels(&self) -> &NodeLabels {
        &self.labels
    }

    /// Its statement-duration handles.
    #[inline]
    pub(crate) fn durations(&self) -> &Durations {
        &self.durations
    }

    /// A statement on it got its answer: it counts a success, as a `write` or a read.
    #[inline]
    pub(crate) fn answered(&self, write: bool) {
        let counts = &self.counts;
        let counter = if write { &counts.writes } else { &counts.reads };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A read passes it over for the plan's next node: reported (its metric, a debug line).
    pub(crate) fn passed_over(&self) {
        crate::observe::telemetry::passover(&self.labels);
        tracing::debug!(target: "rwsplit", node = %self.name(), "node stalled: trying the plan's next one");
    }

    /// Where the monitor opens its own connections to it from, if it can.
    pub(crate) fn probe_from(&self) -> Option<&ProbeFrom> {
        self.probe.as_ref()
    }

    /// What its server is, once checked.
    pub(crate) fn server(&self) -> Option<&crate::product::Server> {
        self.server.get()
    }

    /// Records what its server was found to be; the first finding stands.
    pub(crate) fn set_server(&self, server: crate::product::Server) {
        let _ = self.server.set(server);
    }

    /// Its PostgreSQL system identifier, for tokens (0: not known yet).
    pub(crate) fn system_id(&self) -> u64 {
        self.system_id.load(Ordering::Relaxed)
    }

    /// Records its PostgreSQL system identifier (from a probe or a position capture).
    pub(crate) fn set_system_id(&self, system_id: u64) {
        self.system_id.store(system_id, Ordering::Relaxed);
    }

    /// It answered a probe at `now`.
    pub(crate) fn answered_probe(&self, now: Instant) {
        *self.last_seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(now);
    }

    /// When it last answered a probe.
    pub(crate) fn last_seen(&self) -> Option<Instant> {
        *self.last_seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An attempt on it failed because of the node (its connection).
    pub(crate) fn count_failure(&self) {
        self.counts.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A statement found no free connection in its pool in time.
    pub(crate) fn count_pool_timeout(&self) {
        self.counts.pool_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Statements that succeeded on it as reads.
    pub(crate) fn reads(&self) -> u64 {
        self.counts.reads.load(Ordering::Relaxed)
    }

    /// Statements that succeeded on it as writes.
    pub(crate) fn writes(&self) -> u64 {
        self.counts.writes.load(Ordering::Relaxed)
    }

    /// Attempts that failed because of the node.
    pub(crate) fn failures(&self) -> u64 {
        self.counts.failures.load(Ordering::Relaxed)
    }

    /// Statements that found no free connection in its pool in time.
    pub(crate) fn pool_timeouts(&self) -> u64 {
        self.counts.pool_timeouts.load(Ordering::Relaxed)
    }

    /// Once it is out of the registry: returns when nothing holds it any more. Woken by its
    /// last holder letting go ([`NodeRef`]'s `Drop`), never by polling.
    pub(crate) async fn drained(&self) {
        self.holds.drained().await;
    }
}

/// A node's statement counters ([`Node::answered`] and the like).
#[derive(Default)]
struct Counts {
    /// Statements that succeeded on it as reads.
    reads: AtomicU64,
    /// Statements that succeeded on it as writes.
    writes: AtomicU64,
    /// Attempts that failed because of the node (its connection), not the statement.
    failures: AtomicU64,
    /// Statements that found no free connection in the node's pool in time (back-pressure:
    /// never counted against the node's health).
    pool_timeouts: AtomicU64,
}

/// Who holds a node ([`NodeRef`]s), and the drain of a removed one: the last holder to let go
/// of a removed node wakes it.
#[derive(Default)]
struct Holds {
    /// How many [`NodeRef`]s hold it: statements running on it, sampler rounds, server checks.
    holders: AtomicUsize,
    /// It was taken out of the registry ([`Nodes::remove`]): no new holder.
    removed: AtomicBool,
    /// The last holder of a removed node let go ([`Holds::drained`] waits for it).
    released: tokio::sync::Notify,
}

impl Holds {
    /// One more holder; whether the node is still there (not removed). Counted first: either
    /// the drain sees this holder, or this sees the removal.
    #[inline]
    fn take(&self) -> bool {
        self.holders.fetch_add(1, Ordering::SeqCst);
        !self.removed.load(Ordering::SeqCst)
    }

    /// A holder let go: the last one of a removed node wakes its drain.
    #[inline]
    fn let_go(&self) {
        if self.holders.fetch_sub(1, Ordering::SeqCst) == 1 && self.removed.load(Ordering::SeqCst) {
            self.released.notify_one();
        }
    }

    /// Marks the node removed and returns once nothing holds it.
    async fn drained(&self) {
        self.removed.store(true, Ordering::SeqCst);
        // `notify_one` keeps a permit when nobody waits yet, so a release between the check and
        // the wait is not lost.
        while self.holders.load(Ordering::SeqCst) != 0 {
            self.released.notified().await;
        }
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A node held while something runs on it: a statement's attempt, a sampler round, a server
/// check. Counting holders is how a removal knows the node has drained: a holder of a removed
/// node that lets go last wakes its drain ([`Node::drained`]). The arena of lent-out nodes
/// ([`Nodes::lend`]) is not a holder: a removed node's pools close even if it was lent out.
pub(crate) struct NodeRef(Arc<Node>);

impl NodeRef {
    /// `node`, held; `None` if it was removed meanwhile (its drain may have found it idle).
    #[inline]
    fn hold(node: Arc<Node>) -> Option<NodeRef> {
        let there = node.holds.take();
        let held = NodeRef(node);
        there.then_some(held)
    }

    /// `node`, held even if it was removed.
    fn counted(node: Arc<Node>) -> NodeRef {
        node.holds.take();
        NodeRef(node)
    }

    /// Starts a check of its server against the version policy, unless its server is known
    /// or a check is under way (or refused it for good): at most one at a time per node. The
    /// check holds the node until it ends.
    pub(crate) fn try_begin_check(&self) -> Option<ServerCheck> {
        if self.server.get().is_some() || self.checking.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(ServerCheck { node: self.clone(), refused: false })
    }
}

impl Clone for NodeRef {
    fn clone(&self) -> NodeRef {
        NodeRef::counted(Arc::clone(&self.0))
    }
}

impl std::ops::Deref for NodeRef {
    type Target = Node;

    #[inline]
    fn deref(&self) -> &Node {
        &self.0
    }
}

impl Drop for NodeRef {
    #[inline]
    fn drop(&mut self) {
        self.0.holds.let_go();
    }
}

impl fmt::Debug for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A check of a node's server under way ([`NodeRef::try_begin_check`]). Dropped, it ends: a
/// later probe may start another, unless it [`refused`](ServerCheck::refused) the server.
pub(crate) struct ServerCheck {
    node: NodeRef,
    refused: bool,
}

impl ServerCheck {
    /// The node being checked.
    pub(crate) fn node(&self) -> &Node {
        &self.node
    }

    /// The server passed: recorded as the node's.
    pub(crate) fn passed(self, server: crate::product::Server) {
        self.node.set_server(server);
    }

    /// The version policy refused the server: the node is never checked again.
    pub(crate) fn refused(mut self) {
        self.refused = true;
    }
}

impl Drop for ServerCheck {
    fn drop(&mut self) {
        if !self.refused {
            self.node.checking.store(false, Ordering::Release);
        }
    }
}

/// The connection's nodes, one registry: which nodes there are is the monitor's
/// [`TopologyState`]'s alone — their ids (index and generation), how many, their order, their
/// names and placement (in its snapshot), which are joining, removed or draining — and beside
/// it a [`NodeTable`] holds the adapter's own part of each (its [`Node`]: pools, counters,
/// pace, server check) under the state's ids.
///
/// Membership changes in one operation each, so the two cannot disagree: [`Nodes::add`] puts
/// the node's part in the table inside [`TopologyState::add_node`], under the state's
/// publishing lock with the id the state chose (an index the state gives out is free, and so
/// is its slot in the table: nothing to undo); [`Nodes::remove`] takes it out of the state,
/// then out of its slot (the index stays the state's, draining, until [`Node::drained`] lets
/// [`TopologyState::release`] free it, so no add can take it in between).
///
/// A state shared by several connections (`crate::nodes::shared`) holds their common static nodes;
/// each connection has its own table (its own pools), and only a connection with its own
/// state (one following a topology source) adds or removes nodes.
#[derive(Clone)]
pub(crate) struct Nodes {
    /// The only authority on which nodes there are.
    state: Arc<TopologyState>,
    /// The adapter's own part of each node, by the state's ids.
    table: Arc<NodeTable>,
}

impl Nodes {
    /// The registry over `state` with `table`, which holds a node for each id of `state`.
    pub(crate) fn new(state: Arc<TopologyState>, table: Arc<NodeTable>) -> Nodes {
        Nodes { state, table }
    }

    /// Holds node `id` for something that runs on it (a statement's attempt, a check), if it is
    /// there (its id names the node that has its index now): one lock-free load, for every
    /// statement. A lease, as a pool lends a connection: a removal's drain waits until every
    /// hold is let go ([`NodeRef`]). The lookup is [`NodeTable::get`]'s, done here: every
    /// statement holds its node, in one step.
    #[inline]
    pub(crate) fn hold(&self, id: NodeId) -> Option<NodeRef> {
        let node = self.table.slots.get(id.index()).and_then(ArcSwapOption::load_full)?;
        if node.id != id {
            return None;
        }
        NodeRef::hold(node)
    }

    /// Whether node `id` is there (not removed, its index not reused).
    pub(crate) fn has(&self, id: NodeId) -> bool {
        self.table.get(id).is_some()
    }

    /// The name (`host:port/db`) of node `id`, if it is there.
    pub(crate) fn name_of(&self, id: NodeId) -> Option<String> {
        self.table.get(id).map(|n| n.name().to_owned())
    }

    /// Every node's id and name, in index order.
    pub(crate) fn names(&self) -> Vec<(NodeId, String)> {
        self.iter().map(|(id, n)| (id, n.name().to_owned())).collect()
    }

    /// Calls `f` with every node there is and its id, in index order, each held meanwhile; with
    /// the configured primary (id 0), kept since the start, while there is none (the adapter
    /// never removes its last node, but the state may be between a removal and an add).
    pub(crate) fn each(&self, mut f: impl FnMut(NodeId, &Node)) {
        let mut any = false;
        for (id, n) in self.iter() {
            any = true;
            f(id, &n);
        }
        if !any {
            f(NodeId::new(0), self.table.first_kept());
        }
    }

    /// Closes every node's pools, reads' and writes'; the first error, after trying them all.
    pub(crate) async fn close(&self) -> Result<(), sea_orm::DbErr> {
        let mut first_err = None;
        let nodes: Vec<NodeRef> = self.iter().map(|(_, n)| n).collect();
        for n in nodes {
            for pool in [n.conn(), n.writer()] {
                if let Err(e) = pool.close_by_ref().await {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Checks the servers of every node but `primary` against the version policy, side by
    /// side, each for at most `max`: a server that passes is recorded as the node's; the first
    /// one refused is the error; one that does not answer in time is left unchecked (checked
    /// when it first answers a probe).
    pub(crate) async fn check_servers(
        &self,
        primary: NodeId,
        max: Duration,
    ) -> Result<(), crate::error::Error> {
        let nodes: Vec<NodeRef> =
            self.iter().filter(|&(i, _)| i != primary).map(|(_, n)| n).collect();
        let checks = nodes
            .iter()
            .map(|n| tokio::time::timeout(max, crate::product::check(n.conn(), n.name())));
        for (n, checked) in nodes.iter().zip(futures_util::future::join_all(checks).await) {
            match checked {
                Ok(Ok((_, server))) => n.set_server(server),
                Ok(Err(crate::product::Unchecked::Refused(refused))) => return Err(refused.into()),
                Ok(Err(crate::product::Unchecked::Unreachable(_))) | Err(_) => {}
            }
        }
        Ok(())
    }

    /// How many nodes there are (the state's count: one atomic load).
    #[inline]
    pub(crate) fn count(&self) -> usize {
        self.state.len()
    }

    /// Every node there is with its id, in the state's order (index order), held.
    fn iter(&self) -> impl Iterator<Item = (NodeId, NodeRef)> + '_ {
        self.state.ids().into_iter().filter_map(|id| self.table.get(id).map(|n| (id, n)))
    }

    /// The id of the node named `name` (`host:port/db`), if there is one.
    pub(crate) fn id_of(&self, name: &str) -> Option<NodeId> {
        self.iter().find(|(_, n)| n.name() == name).map(|(id, _)| id)
    }

    /// The first node there is; the configured primary, kept since the start, while there is
    /// none (the adapter never removes its last node).
    fn any(&self) -> NodeRef {
        match self.iter().next() {
            Some((_, n)) => n,
            None => NodeRef::counted(Arc::clone(self.table.first_kept())),
        }
    }

    /// The node `id`, else `primary`, else the first there is: the node a connection is lent
    /// from.
    fn lendable(&self, id: NodeId, primary: NodeId) -> NodeRef {
        match self.hold(id).or_else(|| self.hold(primary)) {
            Some(n) => n,
            None => self.any(),
        }
    }

    /// The user's pool of node `id` (else `primary`'s, else the first node's) — its write pool
    /// if `write`, else its read pool — borrowed for as long as the connection lives: the node
    /// is kept in the table's arena (see [`NodeTable`]).
    pub(crate) fn lend(&self, id: NodeId, primary: NodeId, write: bool) -> &DatabaseConnection {
        let node = self.table.keep(&self.lendable(id, primary).0);
        if write { node.user_writer() } else { node.user_conn() }
    }

    /// Runs `f` on node `primary`, or the first node there is if it is not there (removed by a
    /// topology source).
    pub(crate) fn with_primary<R>(&self, primary: NodeId, f: impl FnOnce(&Node) -> R) -> R {
        f(&self.lendable(primary, primary))
    }

    /// Pings node `primary`'s write pool (the first node's if it is not there), holding the
    /// node meanwhile (a removal's drain waits for it).
    pub(crate) async fn ping(&self, primary: NodeId) -> Result<(), sea_orm::DbErr> {
        let node = self.lendable(primary, primary);
        node.writer().ping().await
    }

    /// Makes every node's pools report to `hooks`, the configured primary lent out since the
    /// start included (if it left its slot).
    pub(crate) fn hook(&self, hooks: &Arc<crate::observe::hooks::Hooks>) {
        for (_, n) in self.iter() {
            n.hook(hooks);
        }
        self.table.first_kept().hook(hooks);
    }

    /// Adds `node`: the state gives it an id (the lowest free index, under its next
    /// generation) and its snapshot entry, made by `entry` from that id and the node; the node
    /// takes that id's slot in the table in the same step, under the state's publishing lock.
    ///
    /// # Errors
    ///
    /// [`NoFreeIndex`] when every index is taken (the node is dropped).
    pub(crate) fn add(
        &self,
        mut node: Node,
        entry: impl FnOnce(NodeId, &Node) -> rwsplit_core::Node,
    ) -> Result<NodeId, NoFreeIndex> {
        let table = &self.table;
        self.state.add_node(|id| {
            node.id = id;
            let entry = entry(id, &node);
            table.put(node);
            entry
        })
    }

    /// Removes node `id` (`was_primary`: it had the primary role), returning whether it was
    /// there: out of the state (and its snapshot) at once, so no new statement goes to it, then
    /// out of its slot, its name kept for errors about it. Its gauges say "removed" at once.
    /// Then, on a task, it drains: once nothing holds it any more ([`Node::drained`]) its
    /// index is released for a newer node, its pools are closed (which waits for open
    /// transactions and streams) and its gauges say "gone" (telemetry's *Removed nodes*),
    /// unless a node at the same address was added meanwhile and owns those series now.
    pub(crate) fn remove(&self, id: NodeId, was_primary: bool) -> bool {
        if !self.state.remove_node(id) {
            return false;
        }
        let Some(node) = self.table.take(id) else { return false };
        // Out of its slot, so the gauge sampler no longer sees it.
        crate::observe::telemetry::removing(node.labels());
        tracing::warn!(target: "rwsplit", node = %node.name(), id = %id, "node removed: draining");
        let (state, table) = (Arc::clone(&self.state), Arc::downgrade(&self.table));
        let drain = async move {
            // Statements, sampler rounds and server checks hold their node while they run on
            // it (`NodeRef`); the last to let go wakes this. Once idle, no sampler round can
            // set its gauges any more, and the monitor counts nothing in flight on it (an
            // attempt lets go of its in-flight count before its node).
            node.drained().await;
            if !state.release(id) {
                tracing::warn!(target: "rwsplit", node = %node.name(), id = %id, "a drained node still has statements in flight in the monitor's count: its index stays taken");
            }
            for pool in [node.conn(), node.writer()] {
                if let Err(e) = pool.close_by_ref().await {
                    tracing::debug!(target: "rwsplit", node = %node.name(), error = %e, "closing a removed node's pool");
                }
            }
            // A node at the same address added again meanwhile owns these series now.
            let back = table.upgrade().is_some_and(|table| {
                Nodes { state, table }.iter().any(|(_, n)| n.labels().same_series(node.labels()))
            });
            if !back {
                crate::observe::telemetry::removed(&crate::observe::telemetry::RemovedNode {
                    labels: node.labels(),
                    was_primary,
                    observed: node.last_seen().is_some(),
                    read_pool: node.separate_read_pool(),
                    write_pool: node.writer(),
                });
            }
            tracing::info!(target: "rwsplit", node = %node.name(), id = %id, "removed node drained, pools closed");
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(drain);
            }
            Err(_) => {
                tracing::warn!(target: "rwsplit", id = %id, "no runtime: the removed node's index stays taken")
            }
        }
        true
    }

    /// Node `id` has the tag `tag` (alone) if `on`, else no tag, when that changes whether it
    /// has `tag` (a topology source saw it change); a node not in the snapshot yet (joining)
    /// keeps the tags it was added with.
    pub(crate) fn retag(&self, id: NodeId, tag: &str, on: bool) {
        let had = self.state.snapshot().node(id).map(|n| n.has_tag(tag));
        if had.is_some_and(|h| h != on) {
            let tags: &[&str] = if on { &[tag] } else { &[] };
            self.state.set_tags(id, tags);
        }
    }

    /// The ids the table holds a node for, in index order (for tests: they are the state's,
    /// once removals have taken their nodes out).
    #[cfg(test)]
    pub(crate) fn table_ids(&self) -> Vec<NodeId> {
        self.table.slots.iter().filter_map(|s| s.load().as_ref().map(|n| n.id)).collect()
    }

    /// The name of node `id` if it was removed and is the last node removed from its index
    /// (`None`: it is there, or an older removal at that index).
    pub(crate) fn removed_name(&self, id: NodeId) -> Option<String> {
        self.table.removed_name(id)
    }
}

/// The adapter's own part of each node ([`Nodes`]): one slot per index ([`MAX_NODES`]), each
/// empty or holding the [`Node`] whose id (the state's) is at that index. A lookup compares
/// the whole id, so an id of a removed node (a plan made before its index was reused) finds
/// nothing: the node is gone.
///
/// Loading a slot is lock-free (`arc-swap`) and clones one `Arc`: a statement holds its node
/// ([`NodeRef`]) while it runs on it, which is how a removal knows it has drained.
///
/// SeaORM hands out `&DatabaseConnection` borrowed from the connection
/// (`IntoDatabaseExecutor`, `RoutedConnection::primary`), so a node lent out that way is kept
/// in an append-only arena for the connection's life ([`Nodes::lend`]): at most
/// [`KEPT_MAX`] nodes, each a few kilobytes with its pools closed once removed.
pub(crate) struct NodeTable {
    /// One slot per index, each empty or holding the node whose id has that index.
    slots: Box<[ArcSwapOption<Node>]>,
    /// The nodes lent out as `&DatabaseConnection`, in chunks made as they fill.
    arena: Box<[OnceLock<Chunk>]>,
    /// The arena's next free index; held while a node is kept.
    arena_next: Mutex<usize>,
    /// Per index, the id and name of the last node taken out of it ([`NodeTable::take`]): an
    /// error about a removed node names it by address ([`Nodes::removed_name`]); the state
    /// forgets a removed node's name.
    gone: Box<[Mutex<Option<Gone>>]>,
}

/// A node taken out of the registry: its id and name.
type Gone = (NodeId, Box<str>);

/// One chunk of the arena of lent-out nodes, filled in order.
type Chunk = Box<[OnceLock<Arc<Node>>]>;

/// Nodes per chunk of the arena of lent-out nodes.
const KEPT_CHUNK: usize = 64;
/// At most this many distinct nodes are ever lent out as `&DatabaseConnection`; past it the
/// first one kept is lent again (with a warning).
const KEPT_MAX: usize = KEPT_CHUNK * 64;

impl crate::nodes::probe::ProbeSources for NodeTable {
    fn count(&self) -> usize {
        self.slots.iter().filter(|s| s.load().is_some()).count()
    }

    fn probe_from(&self, id: NodeId) -> Option<ProbeFrom> {
        self.get(id).and_then(|n| n.probe.clone())
    }
}

impl NodeTable {
    /// Slots holding `primary` at id 0 and `replicas` at ids 1.. in order (generation 0: the
    /// first nodes at their indices, as in the first topology). The primary is kept in the
    /// arena at once: it is what is lent when nothing else can be.
    pub(crate) fn new(mut primary: Node, replicas: Vec<Node>) -> NodeTable {
        primary.id = NodeId::new(0);
        let primary = Arc::new(primary);
        let replicas = replicas.into_iter().zip(1..).map(|(mut n, i)| {
            n.id = NodeId::new(i);
            Arc::new(n)
        });
        let mut given = std::iter::once(Arc::clone(&primary)).chain(replicas);
        let table = NodeTable {
            slots: (0..MAX_NODES).map(|_| ArcSwapOption::new(given.next())).collect(),
            arena: (0..KEPT_MAX / KEPT_CHUNK).map(|_| OnceLock::new()).collect(),
            arena_next: Mutex::new(0),
            gone: (0..MAX_NODES).map(|_| Mutex::new(None)).collect(),
        };
        table.keep(&primary);
        table
    }

    /// The node `id`, if it is there: its index's slot holds a node of that generation (the
    /// lookup [`Nodes::hold`] does too).
    #[inline]
    fn get(&self, id: NodeId) -> Option<NodeRef> {
        let node = self.slots.get(id.index()).and_then(ArcSwapOption::load_full)?;
        if node.id != id {
            return None;
        }
        NodeRef::hold(node)
    }

    /// Puts `node` in the slot of its id's index: called only inside the state's `add_node`,
    /// for an index the state found free, whose slot its removal emptied.
    fn put(&self, node: Node) {
        if let Some(slot) = self.slots.get(node.id.index()) {
            slot.store(Some(Arc::new(node)));
        }
    }

    /// Takes node `id` out of its slot, returning it (`None`: it is not there).
    fn take(&self, id: NodeId) -> Option<Arc<Node>> {
        let slot = self.slots.get(id.index())?;
        let current = slot.load_full().filter(|n| n.id == id);
        let node = Arc::clone(current.as_ref()?);
        // Only that node: a slot that changed in between is left alone.
        let prev = slot.compare_and_swap(&current, None::<Arc<Node>>);
        let taken = prev.as_ref().is_some_and(|p| Arc::ptr_eq(p, &node));
        if taken && let Some(gone) = self.gone.get(id.index()) {
            *gone.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some((id, node.name.as_str().into()));
        }
        taken.then_some(node)
    }

    fn removed_name(&self, id: NodeId) -> Option<String> {
        let gone = self.gone.get(id.index())?;
        let gone = gone.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        gone.as_ref().filter(|(i, _)| *i == id).map(|(_, name)| name.to_string())
    }

    /// The node, borrowed for as long as the connection lives: kept in the arena (once per
    /// node).
    fn keep(&self, node: &Arc<Node>) -> &Node {
        if let Some(kept) = node.kept.get().and_then(|&i| self.kept(i)) {
            return kept;
        }
        let mut next = self.arena_next.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(kept) = node.kept.get().and_then(|&i| self.kept(i)) {
            return kept;
        }
        let i = *next;
        if i >= KEPT_MAX {
            tracing::warn!(target: "rwsplit", node = %node.name, max = KEPT_MAX, "too many nodes lent out as connections over this connection's life: lending the first one kept instead");
            return self.first_kept();
        }
        let chunk = self
            .arena
            .get(i / KEPT_CHUNK)
            .map(|c| c.get_or_init(|| (0..KEPT_CHUNK).map(|_| OnceLock::new()).collect()));
        if let Some(cell) = chunk.and_then(|c| c.get(i % KEPT_CHUNK)) {
            let _ = cell.set(Arc::clone(node));
            let _ = node.kept.set(i);
            *next = i + 1;
        }
        match self.kept(i) {
            Some(kept) => kept,
            None => self.first_kept(),
        }
    }

    fn kept_arc(&self, i: usize) -> Option<&Arc<Node>> {
        let chunk = self.arena.get(i / KEPT_CHUNK)?.get()?;
        chunk.get(i % KEPT_CHUNK)?.get()
    }

    fn kept(&self, i: usize) -> Option<&Node> {
        self.kept_arc(i).map(|n| &**n)
    }

    /// The configured primary, kept since the start.
    fn first_kept(&self) -> &Arc<Node> {
        // `new` keeps the primary at index 0 before anything else can run; a chunk that is
        // missing would be a bug in `keep`, and then a fresh cell is the least surprise.
        static EMPTY: OnceLock<Arc<Node>> = OnceLock::new();
        match self.kept_arc(0) {
            Some(n) => n,
            None => EMPTY.get_or_init(|| {
                Arc::new(Node::new("(none)".to_owned(), DatabaseConnection::default()))
            }),
        }
    }
}
