//! The connection's shared state: [`RoutedConnection`], a handle on `Arc<Inner>`, what the
//! statement path works with, and `Arc<Members>`, the nodes as membership and the monitor
//! (`crate::nodes::members`). [`Inner`] is a bundle of peers, each the owner of its state: the
//! node registry ([`Nodes`], shared with `Members`), the live view of the cluster ([`Routing`]:
//! the monitor's state, wrapped once), the pure [`Planner`], the classifier ([`Classified`]),
//! read-your-writes ([`Causality`]), hedging ([`Hedging`], its watchdog included), retry
//! ([`Retrying`]), the counters and the metric hooks; beside them the configuration every
//! step reads as a value (the [`Policy`], shared with the planner; the product). The parts
//! (`nodes`, `routing`, `planner`, `policy`, `classified`, `causality`, `hedging`, `retry`,
//! `counters`, `hooks`) are visible to the folder (privacy at the folder, as sqlx's
//! `PoolInner`): code in `connection/`, the public methods (`facade.rs`) and the start's
//! checks included, calls the part that owns the state (`inner.nodes.hold(id)`, a lease;
//! `inner.routing.set_fenced(..)`), whose invariants stay behind its methods. Read-your-writes is handed the views it asks
//! through, each from its owner: `routing` for the monitor's samples, [`Inner::writable`] for
//! position reads on the nodes' writable pools. `Inner`'s own operations compose parts: a plan
//! reads the routing view and read-your-writes; the pools lent to the user are found by the
//! routing view's primary; whether a pending scope's position could serve a read when its token
//! is exported ([`Inner::out_of_reach`]); the task a write is left to
//! ([`Inner::background`]); a probe's sweep clears scopes and proofs. It passes a call on to one
//! part only in tests outside the folder (`classify`, `wait_of`, `ban`). `Inner` is what the
//! watchdog looks at; a statement's watch reads standings from `Routing` itself.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Instant;

use rwsplit_core::{Access, CausalToken, NodeId};
use sea_orm::{DatabaseConnection, DbErr};

use crate::cluster::Routing;
use crate::consistency::{Capture, Causality, Seen};
use crate::hedge::hedging::Hedging;
use crate::nodes::members::Members;
use crate::observe::hooks::Hooks;
use crate::retry::retrying::Retrying;

use crate::nodes::position::Writable;
use crate::nodes::registry::Nodes;
use crate::observe::counters::Counters;
#[cfg(test)]
use crate::observe::counters::Effects;
use crate::product::Product;
use crate::routing::classified::Classified;
use crate::routing::ctx::Policy;
#[cfg(test)]
use crate::routing::ctx::{Ctx, Scope};
use crate::routing::plan::Planner;
#[cfg(test)]
use crate::routing::plan::{Around, Done, Input, Planned};

pub(crate) struct Inner {
    /// The registry, by the monitor's state's ids: node 0 is the configured primary, nodes
    /// 1.. the configured replicas, then any added by a topology source (at the index the
    /// state gave them).
    pub(super) nodes: Nodes,
    /// The live view of the cluster: the adapter's one owner of the monitor's state (roles,
    /// health, fencing, samples, wants), and the core router that plans from its snapshots.
    pub(super) routing: Routing,
    /// Where statements go: each plan is handed the cluster (`routing`) and the statement's
    /// classification (`classified`'s).
    pub(super) planner: Planner,
    /// The policy the builder set: the planner's, and the bounds and choices the attempt steps
    /// read (timeouts, hedging, refusals, the monitor's verdict).
    pub(super) policy: Arc<Policy>,
    /// The database product the connection talks to, and its OpenTelemetry `db.system.name`
    /// (`postgresql`, `mariadb`, …), which labels every statement's metrics and span.
    pub(super) product: Product,
    pub(super) system_name: &'static str,
    /// The classifier, behind its cache of the texts it has seen, and the shapes learned from
    /// replicas' refusals: what a statement is, before the planner decides where it goes.
    pub(super) classified: Classified,
    /// Its own counters, for [`Stats`](crate::Stats): read-your-writes, refusals, stalled
    /// nodes passed over; moved by the steps that count.
    pub(super) counters: Counters,
    /// Read-your-writes: its tasks' scopes, and the position reads after writes; a step
    /// hands it the views it asks through (`routing` for samples, [`Inner::writable`]).
    pub(super) causality: Causality,
    /// Hedging: the ration, the counts, the watchdog over reads in flight; the attempt step's
    /// own part.
    pub(super) hedging: Hedging,
    /// Retry: the budget, the verdict wait, the count; the attempt step's own part.
    pub(super) retry: Retrying,
    /// The SeaORM backend its statements are built for, which SeaORM asks for on every call.
    pub(super) backend: sea_orm::DbBackend,
    /// Whether a monitor's probe loops feed the routing state (not outside a tokio runtime:
    /// health then moves only on the failures statements see). Its handle is the
    /// connection's [`Members`]'.
    pub(super) monitored: bool,
    /// The metric callback every node's hooked pools report to; a write sent in two steps
    /// times its statement with it, as SeaORM would.
    pub(super) hooks: Arc<Hooks>,
    /// Itself, for the work a statement leaves running after it returns (a write's position
    /// capture): that work stops mattering once the connection is gone.
    me: Weak<Inner>,
}

/// A drop-in replacement for SeaORM's `DatabaseConnection` that sends reads to replicas and
/// everything else to the primary.
///
/// It implements `ConnectionTrait`, `StreamTrait`, `TransactionTrait` (with
/// `Transaction = DatabaseTransaction`) and `IntoDatabaseExecutor`, so code generic over those
/// traits, and SeaORM's own entity, loader, paginator, stream and migration APIs, take
/// `&RoutedConnection` unchanged. Cloning is cheap (two `Arc`s).
///
/// How each statement is routed:
/// - its SQL is classified (the method it arrives through says nothing: SeaORM sends
///   `INSERT … RETURNING` through `query_one`); anything not provably a read is a write;
/// - writes, `execute*`, `begin`/`transaction` and locking reads go to the primary;
/// - reads go to a healthy replica — after the caller's own writes, one that has replayed them
///   (see [`Session`](crate::Session)) — unless the consistency level, a
///   [scope](RoutedConnection::scope) or a `/*rwsplit:primary*/` hint says otherwise, or no
///   replica is in rotation;
/// - a read that cannot reach its replica is retried on the next candidate (the primary last).
#[derive(Clone)]
pub struct RoutedConnection {
    /// What the statement path works with.
    pub(crate) inner: Arc<Inner>,
    /// The nodes as membership, and the monitor watching them.
    pub(crate) members: Arc<Members>,
}

impl fmt::Debug for RoutedConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let primary = self.inner.routing.primary_id();
        let nodes = self.inner.nodes.names();
        let name = |i: &NodeId| nodes.iter().find(|(j, _)| j == i).map(|(_, n)| n.as_str());
        let replicas: Vec<&str> =
            nodes.iter().filter(|(i, _)| Some(*i) != primary).map(|(_, n)| n.as_str()).collect();
        f.debug_struct("RoutedConnection")
            .field("backend", &self.inner.backend)
            .field("primary", &primary.as_ref().and_then(name))
            .field("replicas", &replicas)
            .finish_non_exhaustive()
    }
}

/// What a connection is made of, handed to [`Inner::new`] by the code that builds it.
pub(crate) struct Parts {
    pub(crate) nodes: Nodes,
    pub(crate) routing: Routing,
    pub(crate) planner: Planner,
    pub(crate) policy: Arc<Policy>,
    pub(crate) product: Product,
    /// The classifier's cache.
    pub(crate) classified: Classified,
    /// Whether a monitor runs.
    pub(crate) monitored: bool,
}

impl Inner {
    /// The connection's state from its `parts`; `start` is handed the connection's own weak
    /// reference before it exists, and its hedging (to start its watchdog).
    pub(crate) fn new(parts: Parts, start: impl FnOnce(&Weak<Inner>, &Hedging)) -> Arc<Inner> {
        let Parts { nodes, routing, planner, policy, product, classified, monitored } = parts;
        let hedging = Hedging::default();
        let causality = Causality::new(
            policy.read_your_writes,
            monitored,
            policy.monitor.position_linger_value(),
            policy.monitor.probe_timeout_value(),
        );
        let retry =
            Retrying::new(policy.read_retries, crate::send::deadline::verdict(&policy.monitor));
        Arc::new_cyclic(|me: &Weak<Inner>| {
            start(me, &hedging);
            Inner {
                backend: product.backend(),
                system_name: product.system_name(),
                product,
                policy,
                monitored,
                nodes,
                routing,
                planner,
                classified,
                counters: Counters::default(),
                causality,
                hedging,
                retry,
                hooks: Arc::default(),
                me: me.clone(),
            }
        })
    }

    /// The catch-up wait a read with `ctx` may do ([`Planner::wait_of`]; the configuration's
    /// tests', outside this folder).
    #[cfg(test)]
    pub(crate) fn wait_of(&self, ctx: &Ctx<'_>) -> Option<std::time::Duration> {
        self.planner.wait_of(ctx)
    }
}

/// The nodes by the routing view's roles: the primary, and the pools the user is lent (the
/// registry is shared with the connection's [`Members`], whose are membership and what every
/// node reports); what read-your-writes is handed of them.
impl Inner {
    /// Runs `f` on the primary's node (the configured one until a promotion is seen); if it
    /// is not there (removed by a topology source), on the first node there is.
    pub(crate) fn with_primary<R>(&self, f: impl FnOnce(&crate::nodes::Node) -> R) -> R {
        self.nodes.with_primary(self.routing.primary_index(), f)
    }

    /// The primary's connection as the user gets it (reporting to the metric callback once one
    /// is set; no scope is touched), borrowed for the connection's life (see [`Nodes::lend`]).
    pub(crate) fn primary_conn(&self) -> &DatabaseConnection {
        let primary = self.routing.primary_index();
        self.nodes.lend(primary, primary, true)
    }

    /// Node `id`'s read connection as the user gets it (the primary's if `id` is not there),
    /// borrowed for the connection's life (see [`Nodes::lend`]).
    pub(crate) fn read_conn(&self, id: NodeId) -> &DatabaseConnection {
        self.nodes.lend(id, self.routing.primary_index(), false)
    }

    /// Whether a monitor runs (else every node is taken as healthy and no position is known).
    pub(crate) fn monitored(&self) -> bool {
        self.monitored
    }

    /// Whether no replica could serve a read that waits the connection's catch-up wait
    /// ([`out_of_reach`](crate::routing::plan::out_of_reach)), as the topology stands: a
    /// write's position would then serve no read yet. Never without a monitor (no lag is known).
    /// While none could, the next samples of the replicas judged by the monitor's estimate (no
    /// figure of their own: MariaDB's, most probes) are asked for: one sampled while it replayed
    /// an earlier write looks further behind the longer it is not sampled again, and no read is
    /// sent there to ask for one (they go to the primary). Not the others': a figure a replica
    /// reported does not grow with its age, and a fresh sample set against the primary's older
    /// one would make a late replica look caught up.
    pub(super) fn out_of_reach(&self) -> bool {
        if !self.monitored {
            return false;
        }
        let topo = self.routing.live_topology();
        let far = crate::routing::plan::out_of_reach(&topo, self.policy.wait_for_replica);
        if far {
            use crate::consistency::Samples;
            let now = Instant::now();
            let timeout = self.policy.monitor.probe_timeout_value();
            let until = now.checked_add(timeout).unwrap_or(now);
            let estimated = |r: &&rwsplit_core::Node| r.lag().reported_time().is_none();
            for r in topo.replicas().filter(|r| r.serves_reads()).filter(estimated) {
                self.routing.want_sample(r.id(), now, until);
            }
        }
        far
    }

    /// The nodes' writable pools as read-your-writes reads positions on them: the registry,
    /// the product's SQL, the counters each read moves.
    pub(super) fn writable(&self) -> Writable<'_> {
        Writable::new(&self.nodes, self.product, &self.counters)
    }

    /// The task a write is left to: given the [`Capture`], it runs [`Causality::finish`],
    /// which leaves the write to the primary's samples (or reads its position, without a
    /// monitor) if the scope has not read the position. `None` outside a runtime, or once
    /// the connection is being dropped (the position is then read in the caller's task, at
    /// once).
    pub(super) fn background(&self) -> Option<impl FnOnce(Capture) + use<>> {
        // Live while a statement of the connection runs (it holds the connection).
        let (Ok(runtime), Some(db)) = (tokio::runtime::Handle::try_current(), self.me.upgrade())
        else {
            return None;
        };
        Some(move |capture| {
            runtime.spawn(async move {
                let still_primary = |node| db.routing.primary_id() == Some(node);
                db.causality.finish(&db.routing, &db.writable(), capture, still_primary).await;
            });
        })
    }
}

/// Planning: what the executor applies of a decision, once (the statement path asks the
/// planner itself, `statements.rs`).
impl Inner {
    /// `sql`'s classification (the planner's tests', outside this folder).
    #[cfg(test)]
    pub(crate) fn classify(&self, sql: &str) -> crate::routing::classified::Entry {
        self.classified.get(sql)
    }

    /// Where statement `sql` (classified as `kind`) goes for a call with `ctx` in `scope`,
    /// given the I/O steps `done` so far, as of `now` ([`Planner::plan`]; the planner's tests',
    /// outside this folder: the statement path asks the planner itself).
    #[cfg(test)]
    pub(crate) fn plan(
        &self,
        sql: &str,
        kind: crate::routing::classified::Entry,
        ctx: &Ctx<'_>,
        scope: &Scope,
        done: Done,
        now: Instant,
    ) -> Result<Planned, DbErr> {
        let around = Around {
            routing: &self.routing,
            causality: &self.causality,
            monitored: self.monitored,
        };
        self.planner.plan(sql, kind, &Input { ctx, scope, around, done, now })
    }

    /// The replica a read sent now would go to, chosen as a read would be (healthy, by the
    /// balancer); when none is in rotation, [`RoutingError::NoNodeLeft`] naming each replica
    /// and why it is out, never the primary.
    pub(crate) fn replica_for_reads(&self) -> Result<NodeId, DbErr> {
        let ctx = rwsplit_core::RouteContext::for_access(Access::Read, Instant::now())
            .with_target(rwsplit_core::Target::Replica);
        let plan = self.routing.route(&ctx)?;
        if !plan.on_primary() {
            return Ok(plan.first());
        }
        let nodes = self.routing.replicas_out(&plan);
        Err(crate::routing_error::RoutingError::NoNodeLeft { nodes }.into())
    }

    /// Applies the `effects` of a plan, as the executor does for the one that runs (the
    /// planner's tests').
    #[cfg(test)]
    pub(crate) fn apply(&self, effects: Effects, now: Instant) {
        self.routing.want(&effects, now);
        effects.count(&self.counters);
    }
}

/// After the monitor's probes: what read-your-writes and the routing view may forget.
impl Inner {
    /// After a probe of the monitor's: forgets the scopes whose writes every replica has
    /// replayed (or whose tokens are stale), and the catch-up waits' expired proofs.
    pub(super) fn sweep(&self, now: Instant) {
        let floor = |seen: &Seen| self.routing.floor(seen).known();
        let settled = |t: &CausalToken| self.routing.settled(t);
        self.causality.sweep(now, crate::routing::ctx::FOREIGN_TOKEN_TTL, settled, floor);
        self.routing.sweep_learned(now);
    }

    /// Takes `node` out of rotation at once (the planner's tests' way of making a node
    /// unroutable).
    #[cfg(test)]
    pub(crate) fn ban(&self, node: NodeId) {
        self.routing.ban(node);
    }
}

/// How the watchdog wakes reads (`crate::hedge::hedging`).
impl crate::hedge::hedging::Watched for Inner {
    fn wake_reads_on(&self, id: NodeId) {
        self.routing.nudge(id);
    }
}
