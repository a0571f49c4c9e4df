//! The node registry: [`Node`] (one server as the adapter sees it: its pools, counters,
//! placement and pace), [`NodeRef`] (a node held while something runs on it), and [`Nodes`],
//! a lock-free registry of generational slots (a lookup compares the generation) with the
//! arena of nodes lent out as `&DatabaseConnection` and the drain of a removed node, whose
//! pools close once its last [`NodeRef`] is dropped.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use arc_swap::ArcSwapOption;
use rwsplit_core::{MAX_NODES, NodeId};
use sea_orm::DatabaseConnection;

use crate::telemetry::NodeLabels;

/// One database server as the adapter sees it: its id, its pools, its counters, its placement
/// and where the monitor opens its own connections from. Its health, role and lag are the
/// monitor's ([`Routing`](crate::route::Routing)), under the same [`NodeId`].
pub(crate) struct Node {
    /// Its id: set when it enters [`Nodes`] (the monitor's state hands out ids at run time).
    pub(crate) id: NodeId,
    /// `host:port/db`, never credentials.
    pub(crate) name: String,
    /// The pool reads use; read-only sessions on a configured replica.
    pub(crate) conn: DatabaseConnection,
    /// The pool writes use: the same pool on the configured primary; on a replica a lazy,
    /// writable pool that opens connections only if the node is promoted and takes writes.
    pub(crate) writer: DatabaseConnection,
    pub(crate) reads: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) failures: AtomicU64,
    /// Statements that found no free connection in the node's pool in time (back-pressure:
    /// never counted against the node's health).
    pub(crate) pool_timeouts: AtomicU64,
    /// PostgreSQL system identifier, for tokens (0: not known yet).
    pub(crate) system_id: AtomicU64,
    /// Weight, zone and tags, for the router's balancers and rules.
    pub(crate) placement: crate::replica::Placement,
    /// Its metric labels.
    pub(crate) labels: NodeLabels,
    /// Its statement-duration handles, by label set.
    pub(crate) durations: crate::telemetry::Durations,
    /// Whether reads and writes share one pool (`conn` is `writer`).
    pub(crate) one_pool: bool,
    /// When it last answered a probe.
    pub(crate) last_seen: Mutex<Option<Instant>>,
    /// How fast it has been answering: hedged reads, and reads steered off it while it answers
    /// nothing.
    pub(crate) pace: crate::pace::Pace,
    /// Where the monitor opens its own connections to it from (`None`: it cannot, and a
    /// connection made of such nodes runs no monitor).
    pub(crate) probe: Option<crate::probe::ProbeFrom>,
    /// Its index in [`Nodes`]' arena once a reference to it was handed out.
    kept: OnceLock<usize>,
    /// What its server is, once checked against the version policy
    /// ([`check`](crate::product::check)): at connect, or when it first
    /// answers a probe.
    pub(crate) server: OnceLock<crate::Server>,
    /// A check of its server is under way (started on a probe).
    pub(crate) checking: std::sync::atomic::AtomicBool,
    /// A cancel of a hedged read's losing attempt on it is under way ([`super::cancel`]).
    pub(crate) cancelling: std::sync::atomic::AtomicBool,
    /// Its pools again, reporting to the connection's metric callback: made once one is set
    /// ([`Node::hook`]). The user's statements run on these; the adapter's own (position
    /// captures, catch-up waits, server checks) on `conn` and `writer`, unreported.
    hooked: OnceLock<Hooked>,
    /// Its pools were made by the adapter (the builder, a topology source), so no SeaORM metric
    /// callback of the user's is on them: its reads may skip SeaORM's `DatabaseConnection`
    /// ([`crate::sending::direct`]). Pools given to `from_connections` may carry one.
    pub(crate) owned: bool,
    /// How many [`NodeRef`]s hold it: statements running on it, sampler rounds, server checks.
    holders: AtomicUsize,
    /// It was taken out of the registry ([`Nodes::take`]): no new holder.
    removed: AtomicBool,
    /// The last holder of a removed node let go ([`Node::drained`] waits for it).
    released: tokio::sync::Notify,
    /// Whether SeaORM's spans record the statement's text (its options'
    /// `record_stmt_in_spans`; SeaORM's default, `true`, for pools given as they are).
    pub(crate) record_stmt: bool,
}

/// A node's pools, with a SeaORM metric callback forwarding to the connection's [`Hooks`].
///
/// [`Hooks`]: crate::hooks::Hooks
struct Hooked {
    conn: DatabaseConnection,
    writer: DatabaseConnection,
}

impl Node {
    pub(crate) fn new(name: String, conn: DatabaseConnection) -> Node {
        let mut node = Node::with_writer(name, conn.clone(), conn);
        node.one_pool = true;
        node
    }

    pub(crate) fn with_writer(
        name: String,
        conn: DatabaseConnection,
        writer: DatabaseConnection,
    ) -> Node {
        Node {
            id: NodeId::new(0),
            labels: NodeLabels::of(&name),
            durations: crate::telemetry::Durations::default(),
            name,
            conn,
            writer,
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            pool_timeouts: AtomicU64::new(0),
            system_id: AtomicU64::new(0),
            placement: crate::replica::Placement::default(),
            last_seen: Mutex::new(None),
            pace: crate::pace::Pace::default(),
            one_pool: false,
            probe: None,
            kept: OnceLock::new(),
            server: OnceLock::new(),
            checking: std::sync::atomic::AtomicBool::new(false),
            cancelling: std::sync::atomic::AtomicBool::new(false),
            hooked: OnceLock::new(),
            owned: false,
            holders: AtomicUsize::new(0),
            removed: AtomicBool::new(false),
            released: tokio::sync::Notify::new(),
            record_stmt: true,
        }
    }

    /// Once it is out of the registry: returns when nothing holds it any more. Woken by its
    /// last holder letting go ([`NodeRef`]'s `Drop`), never by polling.
    pub(crate) async fn drained(&self) {
        self.removed.store(true, Ordering::SeqCst);
        // `notify_one` keeps a permit when nobody waits yet, so a release between the check and
        // the wait is not lost.
        while self.holders.load(Ordering::SeqCst) != 0 {
            self.released.notified().await;
        }
    }

    /// The pool the user's reads run on: `conn`, reporting to the metric callback once one is
    /// set.
    pub(crate) fn user_conn(&self) -> &DatabaseConnection {
        self.hooked.get().map_or(&self.conn, |h| &h.conn)
    }

    /// The pool the user's writes run on: `writer`, reporting to the metric callback once one
    /// is set.
    pub(crate) fn user_writer(&self) -> &DatabaseConnection {
        self.hooked.get().map_or(&self.writer, |h| &h.writer)
    }

    /// Makes its pools report to `hooks` from now on (once; later calls change nothing).
    pub(crate) fn hook(&self, hooks: &Arc<crate::hooks::Hooks>) {
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

    /// The node with pools the adapter made itself ([`Node::owned`]).
    pub(crate) fn owned(mut self) -> Node {
        self.owned = true;
        self
    }

    /// Whether its reads may go straight to its sqlx pool: pools the adapter made, and nothing
    /// listening to SeaORM's instrumentation ([`crate::sending::Direct::quiet`]).
    #[inline]
    pub(crate) fn reads_direct(&self) -> bool {
        self.owned && crate::sending::Direct::quiet(self.is_hooked())
    }

    /// The node with SeaORM's `record_stmt_in_spans` from its options.
    pub(crate) fn recording(mut self, record_stmt: bool) -> Node {
        self.record_stmt = record_stmt;
        self
    }

    /// The node with what its server was found to be.
    pub(crate) fn checked(self, server: Option<crate::Server>) -> Node {
        if let Some(server) = server {
            let _ = self.server.set(server);
        }
        self
    }

    /// The node with where the monitor opens its connections from.
    pub(crate) fn probed_from(mut self, probe: Option<crate::probe::ProbeFrom>) -> Node {
        self.probe = probe;
        self
    }

    /// The node with its weight, zone and tags.
    pub(crate) fn placed(mut self, placement: crate::replica::Placement) -> Node {
        self.placement = placement;
        self
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
/// ([`Nodes::keep`]) is not a holder: a removed node's pools close even if it was lent out.
pub(crate) struct NodeRef(Arc<Node>);

impl NodeRef {
    /// `node`, held; `None` if it was removed meanwhile (its drain may have found it idle).
    #[inline]
    fn hold(node: Arc<Node>) -> Option<NodeRef> {
        // Counted first: either the drain sees this holder, or this sees the removal.
        let held = NodeRef::counted(node);
        (!held.0.removed.load(Ordering::SeqCst)).then_some(held)
    }

    /// `node`, held even if it was removed.
    fn counted(node: Arc<Node>) -> NodeRef {
        node.holders.fetch_add(1, Ordering::SeqCst);
        NodeRef(node)
    }

    /// The shared node.
    pub(crate) fn arc(&self) -> &Arc<Node> {
        &self.0
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
        if self.0.holders.fetch_sub(1, Ordering::SeqCst) == 1
            && self.0.removed.load(Ordering::SeqCst)
        {
            self.0.released.notify_one();
        }
    }
}

impl fmt::Debug for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The adapter's registry of nodes, keyed by [`NodeId`] (the ids the monitor's state hands
/// out): one slot per index ([`MAX_NODES`]), each empty or holding the [`Node`] — everything
/// the adapter has of it — whose id is at that index. A lookup compares the whole id, so an id
/// of a removed node (a plan made before its index was reused) finds nothing: the node is
/// gone. Nodes added at run time (a topology source) take the slot of the index the monitor
/// gave them ([`Nodes::install`]); a removed one is taken out of its slot at once
/// ([`Nodes::take`]) and its pools closed once nothing runs on it ([`Node::drained`]).
///
/// Loading a slot is lock-free (`arc-swap`) and clones one `Arc`: a statement holds its node
/// ([`NodeRef`]) while it runs on it, which is how a removal knows it has drained.
///
/// SeaORM hands out `&DatabaseConnection` borrowed from the connection
/// (`IntoDatabaseExecutor`, `RoutedConnection::primary`), so a node lent out that way is kept
/// in an append-only arena for the connection's life ([`Nodes::keep`]): at most
/// [`KEPT_MAX`] nodes, each a few kilobytes with its pools closed once removed.
pub(crate) struct Nodes {
    slots: Box<[ArcSwapOption<Node>]>,
    count: AtomicUsize,
    arena: Box<[OnceLock<Chunk>]>,
    arena_next: Mutex<usize>,
}

/// One chunk of the arena of lent-out nodes, filled in order.
type Chunk = Box<[OnceLock<Arc<Node>>]>;

/// Nodes per chunk of the arena of lent-out nodes.
const KEPT_CHUNK: usize = 64;
/// At most this many distinct nodes are ever lent out as `&DatabaseConnection`; past it the
/// first one kept is lent again (with a warning).
pub(crate) const KEPT_MAX: usize = KEPT_CHUNK * 64;

impl crate::probe::ProbeSources for Nodes {
    fn count(&self) -> usize {
        Nodes::count(self)
    }

    fn probe_from(&self, id: NodeId) -> Option<crate::probe::ProbeFrom> {
        self.get(id).and_then(|n| n.probe.clone())
    }
}

impl Nodes {
    /// Slots holding `primary` at id 0 and `replicas` at ids 1.. in order (generation 0: the
    /// first nodes at their indices). The primary is kept in the arena at once: it is what is
    /// lent when nothing else can be.
    pub(crate) fn new(mut primary: Node, replicas: Vec<Node>) -> Nodes {
        primary.id = NodeId::new(0);
        let primary = Arc::new(primary);
        let count = replicas.len() + 1;
        let replicas = replicas.into_iter().zip(1..).map(|(mut n, i)| {
            n.id = NodeId::new(i);
            Arc::new(n)
        });
        let mut given = std::iter::once(Arc::clone(&primary)).chain(replicas);
        let nodes = Nodes {
            slots: (0..MAX_NODES).map(|_| ArcSwapOption::new(given.next())).collect(),
            count: AtomicUsize::new(count),
            arena: (0..KEPT_MAX / KEPT_CHUNK).map(|_| OnceLock::new()).collect(),
            arena_next: Mutex::new(0),
        };
        nodes.keep_arc(&primary);
        nodes
    }

    /// The node `id`, if it is there: its index's slot holds a node of that generation.
    #[inline]
    pub(crate) fn get(&self, id: NodeId) -> Option<NodeRef> {
        let node = self.slots.get(id.index()).and_then(ArcSwapOption::load_full)?;
        if node.id != id {
            return None;
        }
        NodeRef::hold(node)
    }

    /// How many nodes there are.
    #[inline]
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// The first node there is; the configured primary, kept since the start, while there is
    /// none (the adapter never removes its last node).
    pub(crate) fn any(&self) -> NodeRef {
        match self.iter().next() {
            Some((_, n)) => n,
            None => NodeRef::counted(Arc::clone(self.first_kept())),
        }
    }

    /// Every node with its id, in index order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (NodeId, NodeRef)> + '_ {
        self.slots
            .iter()
            .filter_map(ArcSwapOption::load_full)
            .filter_map(NodeRef::hold)
            .map(|n| (n.id, n))
    }

    /// Puts `node` in the slot of `id`'s index, which must be empty.
    pub(crate) fn install(&self, id: NodeId, mut node: Node) -> bool {
        let Some(slot) = self.slots.get(id.index()) else { return false };
        node.id = id;
        let node = Arc::new(node);
        let prev = slot.compare_and_swap(&None::<Arc<Node>>, Some(node));
        let installed = prev.is_none();
        if installed {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        installed
    }

    /// Takes node `id` out of its slot, returning it (`None`: it is not there).
    pub(crate) fn take(&self, id: NodeId) -> Option<Arc<Node>> {
        let slot = self.slots.get(id.index())?;
        let current = slot.load_full().filter(|n| n.id == id);
        let node = Arc::clone(current.as_ref()?);
        // Only that node: a slot that changed in between is left alone.
        let prev = slot.compare_and_swap(&current, None::<Arc<Node>>);
        let taken = prev.as_ref().is_some_and(|p| Arc::ptr_eq(p, &node));
        if taken {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        taken.then_some(node)
    }

    /// The node, borrowed for as long as the connection lives: kept in the arena (once per
    /// node).
    pub(crate) fn keep(&self, node: &NodeRef) -> &Node {
        self.keep_arc(node.arc())
    }

    fn keep_arc(&self, node: &Arc<Node>) -> &Node {
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
    pub(crate) fn first_kept(&self) -> &Arc<Node> {
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
