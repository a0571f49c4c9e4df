//! A snapshot of where statements went, for operators and tests.

use rwsplit_core::{Health, Lag, NodeId, ReplayPosition, Role};

use crate::connection::inner::RoutedConnection;
use crate::observe::counters::Count;

/// Statement counts per node and routing totals, as of one instant.
///
/// ```no_run
/// # fn demo(db: &rwsplit_sea_orm::RoutedConnection) {
/// for node in db.stats().nodes() {
///     println!("{} ({}): {} reads, {} writes", node.name(), node.role(), node.reads(), node.writes());
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    nodes: Vec<NodeStats>,
    retries: u64,
    ryw: ReadYourWrites,
    promotions: u64,
    replica_refusals: u64,
    learned_writes: u64,
    hedges: Hedges,
}

/// Hedged reads since the connection was built: a read on a replica still unanswered after its
/// node's hedge delay is sent to another node of its plan too, and the first answer wins
/// (rationed to about 2 % of reads; see the builder's
/// [`hedged_reads`](crate::RoutedConnectionBuilder::hedged_reads)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Hedges {
    /// Reads hedged. Once each has ended, the sum of `rwsplit_hedged_reads_total` over its
    /// `outcome`s (`first`, `hedge`, `failed`, `abandoned`).
    pub sent: u64,
    /// Hedged reads the second node answered (first, or after the first attempt failed):
    /// `rwsplit_hedged_reads_total{outcome="hedge"}`.
    pub won: u64,
    /// Losing attempts of hedged reads (the first, when the hedge answered first; else the
    /// hedge), dropped while still running (one that had failed is not counted). A read run straight on the node's pool (as reads run unless SeaORM's
    /// hooks listen) closes its connection rather than return it to the pool; on PostgreSQL
    /// the server then ends the statement by itself within a quarter of a second of running
    /// again (`client_connection_check_interval`, set on rwsplit's replica sessions), on
    /// MariaDB it runs to its end. rwsplit sends no cancel: it never acts on a server session
    /// it did not open.
    pub lost: u64,
    /// Read attempts that passed over a replica answering nothing (a read on it went unanswered
    /// for its hedge delay, or it had reads in flight and answered nothing for 100 ms) for the
    /// plan's next node, before the monitor's verdict: `rwsplit_read_passovers_total`.
    pub stalled_skips: u64,
}

/// Read-your-writes counters since the connection was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadYourWrites {
    /// Positions read from the primary after writes (one round trip each).
    pub positions_captured: u64,
    /// The time those position reads took, summed, from asking the writable pool for a
    /// connection to the answer: over [`positions_captured`](Self::positions_captured), what one
    /// costs a write whose caller waits for it (a web layer's response, the scope's next read).
    pub position_read_time: std::time::Duration,
    /// Positions read from the primary to bound a read that ran there (one round trip each):
    /// the scope's next read, when it would wait on a replica, or its exported token, before
    /// a monitor sample of the primary bounded that read (monotonic reads; see
    /// `docs/CONSISTENCY.md`). A cost of reads on the primary, not of writes.
    pub floors_read: u64,
    /// Position reads that failed (the scope's next read then asks again or uses the primary).
    pub capture_failures: u64,
    /// Reads with a token (the scope's writes, or what it has already read) served by a
    /// replica that had replayed it.
    pub replica_reads: u64,
    /// Reads with a token served by the primary: no replica had it (or could prove it).
    pub primary_reads: u64,
    /// Reads that went to the node of their scope's previous read, or to the primary, because
    /// no monitor sample bounded what that read saw yet (monotonic reads; see
    /// `docs/CONSISTENCY.md`).
    pub last_node_reads: u64,
    /// Catch-up waits on a replica.
    pub waits: u64,
    /// Catch-up waits that ended without the replica catching up (the read used the primary).
    pub wait_timeouts: u64,
    /// Reads whose token was from another history than the primary's (after a failover).
    pub foreign_tokens: u64,
    /// Tasks holding a token or a last read now (dropped once every replica has replayed
    /// it).
    pub tracked_tasks: u64,
}

impl Stats {
    /// Every node, by id: the configured primary first, then the configured replicas, then
    /// nodes a topology source added (a removed node is not listed).
    pub fn nodes(&self) -> &[NodeStats] {
        &self.nodes
    }

    /// The first node's counts: the configured primary (see [`NodeStats::current_role`] for
    /// who is primary now), or, if a topology source removed it, the node with the lowest id.
    pub fn primary(&self) -> &NodeStats {
        &self.nodes[0]
    }

    /// Every other node's counts, by id (configuration order, then nodes added at run time).
    pub fn replicas(&self) -> &[NodeStats] {
        &self.nodes[1..]
    }

    /// Reads served by any replica.
    pub fn replica_reads(&self) -> u64 {
        self.replicas().iter().map(NodeStats::reads).sum()
    }

    /// Statements that failed on one node and were retried on another: reads, and writes
    /// known never to have been sent to a node that stopped being the primary (tried once
    /// more, on the new primary).
    pub fn retries(&self) -> u64 {
        self.retries
    }

    /// Read-your-writes counters.
    pub fn read_your_writes(&self) -> ReadYourWrites {
        self.ryw
    }

    /// Statements classified as reads that a replica refused because they write (a user
    /// function or view that writes; see [`OnReplicaRefusal`](crate::OnReplicaRefusal)): each
    /// ran once on the primary, or failed with `OnReplicaRefusal::Fail`. Once a statement's
    /// shape is learned, later ones go to the primary and are not refused again (but for
    /// statements of the shape already under way, or planned while it was learned).
    pub fn replica_refusals(&self) -> u64 {
        self.replica_refusals
    }

    /// Statement shapes learned from replicas' refusals: they go to the primary (at most
    /// 1,024 are kept). The table is the database's: every connection in the process whose
    /// configured primary is the same `host:port/database` shares it (and this counts what
    /// any of them learned), so one connection's refusal spares the others theirs.
    pub fn learned_writes(&self) -> u64 {
        self.learned_writes
    }

    /// Hedged reads and reads steered off a stalled replica.
    pub fn hedges(&self) -> Hedges {
        self.hedges
    }

    /// Replicas this connection promoted by automatic failover.
    pub fn promotions(&self) -> u64 {
        self.promotions
    }

    /// The node with this name, if any.
    pub fn node(&self, name: &str) -> Option<&NodeStats> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// One node's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStats {
    name: String,
    role: &'static str,
    current_role: Role,
    health: Health,
    lag: Lag,
    position: Option<ReplayPosition>,
    reads: u64,
    writes: u64,
    failures: u64,
    pool_timeouts: u64,
    fenced: bool,
    joining: bool,
    server: Option<crate::product::Server>,
    changes: u64,
    failed_probes: u64,
    busy_probes: u64,
}

impl NodeStats {
    /// `host:port/database` (never credentials).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many times the monitor has announced a change of this node's role or health (out
    /// of rotation and back counts two). On a healthy cluster it stays where it was once the
    /// first probes are in: any later change there is a false alarm (load mistaken for
    /// failure). Counted by the monitor, so connections sharing one monitor see the same count.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// The monitor's probes of this node that failed (timed out, refused, errored) so far; on
    /// a healthy cluster, 0 however busy it is.
    pub fn failed_probes(&self) -> u64 {
        self.failed_probes
    }

    /// The monitor's probes of this node that found it alive and busy so far: its server
    /// refused the probe's connection for lack of room (PostgreSQL `too_many_connections`,
    /// MariaDB `ER_CON_COUNT_ERROR`), or the probe timed out while the node answered this
    /// process's statements. They are not failures and do not change its health; the node's
    /// figures age meanwhile.
    pub fn busy_probes(&self) -> u64 {
        self.busy_probes
    }

    /// `"primary"` or `"replica"`, as configured (see [`NodeStats::current_role`]).
    pub fn role(&self) -> &'static str {
        self.role
    }

    /// The role the node has now, as the monitor last saw it (a promoted replica reports
    /// `Role::Primary`).
    pub fn current_role(&self) -> Role {
        self.current_role
    }

    /// Its database server, product and version, once checked against rwsplit's version
    /// policy (at connect, or when it first answered a probe; `None` before).
    pub fn server(&self) -> Option<&crate::product::Server> {
        self.server.as_ref()
    }

    /// How far behind the primary it is, as the monitor last measured it (unknown until then).
    pub fn lag(&self) -> Lag {
        self.lag
    }

    /// Its replication position, as the monitor last read it.
    pub fn position(&self) -> Option<&ReplayPosition> {
        self.position.as_ref()
    }

    /// The node's health as the router sees it. A node still [joining](NodeStats::joining)
    /// is `Down` here (nothing is routed to it yet) without having failed: tell the two apart
    /// with [`NodeStats::joining`].
    pub fn health(&self) -> Health {
        self.health
    }

    /// Whether the node is still joining: a topology source added it at run time, the monitor
    /// probes it, and it enters rotation at the first probe that sees it as the primary, or as
    /// a replica whose lag is known and within the join limit (1 s; a fresh standby replaying
    /// its base backup waits). Until then it takes no statement and its
    /// [`health`](NodeStats::health) is `Down`; its role is `Replica` and its lag unknown.
    /// Configured nodes never join: they are in rotation from the start.
    pub fn joining(&self) -> bool {
        self.joining
    }

    /// Reads it served (statements classified as reads that succeeded).
    pub fn reads(&self) -> u64 {
        self.reads
    }

    /// Writes it served.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// Statements that failed because of the node itself (I/O, protocol, the server shutting
    /// down); each counts against its health.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// Statements that found no free connection in the node's pool within the acquire timeout:
    /// the application's own back-pressure, never counted against the node's health.
    pub fn pool_timeouts(&self) -> u64 {
        self.pool_timeouts
    }

    /// Whether it is fenced: out of rotation for everything until
    /// [`RoutedConnection::unfence`](crate::RoutedConnection::unfence).
    pub fn fenced(&self) -> bool {
        self.fenced
    }
}

pub(crate) fn snapshot(db: &RoutedConnection) -> Stats {
    let inner = &db.inner;
    Stats {
        nodes: {
            // In id order: the configured primary (id 0) first while it is there. Never empty:
            // the adapter keeps its last node.
            let mut nodes = Vec::new();
            db.inner.nodes.each(|i, n| {
                let routing = inner.routing.node_routing(i);
                let seen = routing.view;
                let configured = if i == NodeId::new(0) { Role::Primary } else { Role::Replica };
                nodes.push(NodeStats {
                    name: n.name().to_owned(),
                    role: if i == NodeId::new(0) { "primary" } else { "replica" },
                    current_role: seen.as_ref().map_or(configured, |v| v.0),
                    health: routing.health,
                    joining: routing.joining,
                    server: n.server().cloned(),
                    lag: seen.as_ref().map_or(Lag::unknown(), |v| v.1),
                    position: seen.and_then(|v| v.2),
                    reads: n.reads(),
                    writes: n.writes(),
                    failures: n.failures(),
                    pool_timeouts: n.pool_timeouts(),
                    fenced: routing.fenced,
                    changes: routing.changes,
                    failed_probes: routing.failed_probes,
                    busy_probes: routing.busy_probes,
                });
            });
            nodes
        },
        retries: inner.retry.retries(),
        ryw: ReadYourWrites {
            positions_captured: inner.counters.get(Count::Captures),
            position_read_time: std::time::Duration::from_micros(
                inner.counters.get(Count::CaptureMicros),
            ),
            floors_read: inner.counters.get(Count::FloorReads),
            capture_failures: inner.counters.get(Count::CaptureFailures),
            replica_reads: inner.counters.get(Count::TokenReadsOnReplicas),
            primary_reads: inner.counters.get(Count::TokenReadsOnPrimary),
            waits: inner.counters.get(Count::Waits),
            wait_timeouts: inner.counters.get(Count::WaitTimeouts),
            foreign_tokens: inner.counters.get(Count::ForeignTokens),
            last_node_reads: inner.counters.get(Count::MonotonicStays),
            tracked_tasks: inner.causality.tracked_tasks() as u64,
        },
        promotions: db.members.promotions().unwrap_or(0),
        replica_refusals: inner.counters.get(Count::ReplicaRefusals),
        learned_writes: u64::try_from(inner.classified.learned()).unwrap_or(u64::MAX),
        hedges: Hedges {
            sent: inner.hedging.sent(),
            won: inner.hedging.won(),
            lost: inner.hedging.lost(),
            stalled_skips: inner.counters.get(Count::StalledSkips),
        },
    }
}
