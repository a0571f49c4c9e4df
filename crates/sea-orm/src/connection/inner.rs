//! The connection's shared state: [`RoutedConnection`], a facade over `Arc<Inner>`, what the
//! statement path works with, and `Arc<Members>`, the nodes as membership and the monitor
//! (`crate::nodes::members`). [`Inner`]'s private fields are its components — the node
//! registry ([`Nodes`], shared with `Members`), the [`Planner`] (policy, classifier, routing
//! state), read-your-writes ([`Causality`]), the counters and the metric hooks; and hedging
//! ([`Hedging`]), a part visible to `connection/` (privacy at the folder): the attempt step
//! holds it, rather than asking `Inner` to pass its calls on. Callers
//! ask `Inner` for operations, named for what they want (plan this statement, a write ran,
//! count this, fence that node), and `Inner` hands each to the component that owns the state,
//! or composes two where one purpose needs both (a plan reads read-your-writes; a probe's sweep
//! clears scopes and proofs). No component is handed out; a node is lent, held while
//! something runs on it (`Inner::hold`, a lease in tidy's `LEASES`). `Inner` is also
//! what read-your-writes asks of the connection ([`Cluster`]), what a statement's watch reads
//! standings from, and what the watchdog looks at: the layers above it (`connection/mod.rs`
//! lists them) are functions over `&Inner` that compose these operations.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use rwsplit_core::{Access, CausalToken, InFlight, NodeId};
use sea_orm::{AccessMode, DatabaseConnection, DbBackend, DbErr, IsolationLevel};

use crate::consistency::{Capture, Causality, Cluster, Outcome, Ran, Seen, Slot};
use crate::hedge::hedging::Hedging;
use crate::nodes::members::Members;
use crate::observe::hooks::Hooks;
use crate::product::Product;
use crate::routing::route::{Plan, Why};
use crate::send::sending::Standing;

use crate::nodes::registry::{NodeRef, Nodes};
use crate::observe::counters::{Count, Counters, Effects};
use crate::routing::ctx::{Ctx, Policy, Scope};
use crate::routing::plan::{Around, Done, Input, Io, Planned, Planner};

pub(crate) struct Inner {
    /// The registry, by the monitor's state's ids: node 0 is the configured primary, nodes
    /// 1.. the configured replicas, then any added by a topology source (at the index the
    /// state gave them).
    nodes: Nodes,
    /// Where statements go: the policy, the classifier, the routing state, and the product
    /// whose SQL it reads.
    planner: Planner,
    /// Its own counters, for [`Stats`](crate::Stats): retries, read-your-writes, hedging.
    counters: Counters,
    /// Read-your-writes: its tasks' scopes, and the position reads after writes.
    causality: Causality,
    /// Hedging: the ration, the watchdog, the counts; the attempt step's own part.
    pub(super) hedging: Hedging,
    /// Whether a monitor's probe loops feed the routing state (not outside a tokio runtime:
    /// health then moves only on the failures statements see). Its handle is the
    /// connection's [`Members`]'.
    monitored: bool,
    /// The metric callback every node's hooked pools report to.
    hooks: Arc<Hooks>,
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
        let primary = self.inner.primary_id();
        let nodes = self.members.names();
        let name = |i: &NodeId| nodes.iter().find(|(j, _)| j == i).map(|(_, n)| n.as_str());
        let replicas: Vec<&str> =
            nodes.iter().filter(|(i, _)| Some(*i) != primary).map(|(_, n)| n.as_str()).collect();
        f.debug_struct("RoutedConnection")
            .field("backend", &self.inner.backend())
            .field("primary", &primary.as_ref().and_then(name))
            .field("replicas", &replicas)
            .finish_non_exhaustive()
    }
}

/// What a connection is made of, handed to [`Inner::new`] by the code that builds it.
pub(crate) struct Parts {
    pub(crate) nodes: Nodes,
    pub(crate) planner: Planner,
    /// Whether a monitor runs.
    pub(crate) monitored: bool,
}

impl Inner {
    /// The connection's state from its `parts`; `start` is handed the connection's own weak
    /// reference before it exists, and its hedging (for the watchdog it starts).
    pub(crate) fn new(parts: Parts, start: impl FnOnce(&Weak<Inner>, &Hedging)) -> Arc<Inner> {
        let Parts { nodes, planner, monitored } = parts;
        let hedging = Hedging::default();
        let policy = planner.policy();
        let causality = Causality::new(
            policy.read_your_writes,
            policy.monitor.position_linger_value(),
            policy.monitor.probe_timeout_value(),
        );
        Arc::new_cyclic(|me: &Weak<Inner>| {
            start(me, &hedging);
            Inner {
                monitored,
                nodes,
                planner,
                counters: Counters::default(),
                causality,
                hedging,
                hooks: Arc::default(),
                me: me.clone(),
            }
        })
    }

    /// The product seam: its SQL, error codes and session setup (the planner's).
    pub(crate) fn product(&self) -> Product {
        self.planner.product()
    }

    /// The database backend (the same on every node), as SeaORM names it.
    pub(crate) fn backend(&self) -> DbBackend {
        self.product().backend()
    }

    /// `db.system.name`.
    pub(crate) fn system(&self) -> &'static str {
        self.product().system_name()
    }

    /// The routing policy the builder set.
    pub(crate) fn policy(&self) -> &Policy {
        self.planner.policy()
    }

    /// The catch-up wait a read with `ctx` may do ([`Planner::wait_of`]).
    #[cfg(test)]
    pub(crate) fn wait_of(&self, ctx: &Ctx<'_>) -> Option<std::time::Duration> {
        self.planner.wait_of(ctx)
    }

    /// What a plan reads of the rest of the connection: read-your-writes, the number of nodes, and
    /// whether a monitor runs.
    fn around(&self) -> Around<'_> {
        Around { causality: &self.causality, nodes: self.nodes.count(), monitored: self.monitored }
    }

    /// The id of the node that has the primary role now (the configured one until a
    /// promotion is seen).
    pub(crate) fn primary_index(&self) -> NodeId {
        self.planner.primary_index()
    }
}

/// The nodes, through the registry it shares with the connection's [`Members`]: a node lent
/// while a statement runs on it, and the pools the user is lent. Membership and what every node
/// reports are [`Members`]'.
impl Inner {
    /// Holds node `id` for something that runs on it, if it is there: a lease a removal's
    /// drain waits for ([`Nodes::hold`]).
    #[inline]
    pub(crate) fn hold(&self, id: NodeId) -> Option<NodeRef> {
        self.nodes.hold(id)
    }

    /// Whether node `id` is there (not removed, its index not reused).
    pub(crate) fn has_node(&self, id: NodeId) -> bool {
        self.nodes.has(id)
    }

    /// The name (`host:port/db`) of node `id`, if it is there.
    pub(crate) fn node_name(&self, id: NodeId) -> Option<String> {
        self.nodes.name_of(id)
    }

    /// Runs `f` on the primary's node (the configured one until a promotion is seen); if it
    /// is not there (removed by a topology source), on the first node there is.
    pub(crate) fn with_primary<R>(&self, f: impl FnOnce(&crate::nodes::Node) -> R) -> R {
        self.nodes.with_primary(self.primary_index(), f)
    }

    /// The primary's connection as the user gets it (reporting to the metric callback once one
    /// is set; no scope is touched), borrowed for the connection's life (see [`Nodes::lend`]).
    pub(crate) fn primary_conn(&self) -> &DatabaseConnection {
        let primary = self.primary_index();
        self.nodes.lend(primary, primary, true)
    }

    /// Node `id`'s read connection as the user gets it (the primary's if `id` is not there),
    /// borrowed for the connection's life (see [`Nodes::lend`]).
    pub(crate) fn read_conn(&self, id: NodeId) -> &DatabaseConnection {
        self.nodes.lend(id, self.primary_index(), false)
    }

    /// Whether a monitor runs (else every node is taken as healthy and no position is known).
    pub(crate) fn monitored(&self) -> bool {
        self.monitored
    }
}

/// Planning, through the planner: the statement path asks where its statement goes, and the
/// executor applies what the decision means, once.
impl Inner {
    /// `sql`'s classification, detached from it, and `db.operation.name` (cached by text).
    #[inline]
    pub(crate) fn classify(&self, sql: &str) -> crate::routing::classified::Entry {
        self.planner.classify(sql)
    }

    /// Where statement `sql` (classified as `kind`) goes for a call with `ctx` in `scope`,
    /// given the I/O steps `done` so far, as of `now` ([`Planner::plan`]).
    #[inline]
    pub(crate) fn plan(
        &self,
        sql: &str,
        kind: crate::routing::classified::Entry,
        ctx: &Ctx<'_>,
        scope: &Scope,
        done: Done,
        now: Instant,
    ) -> Result<Planned, DbErr> {
        let input = Input { ctx, scope, around: self.around(), done, now };
        self.planner.plan(sql, kind, &input)
    }

    /// Where a transaction with this configuration begins for a call with `ctx` in `scope`
    /// ([`Planner::plan_transaction`]).
    pub(super) fn plan_transaction(
        &self,
        isolation: Option<IsolationLevel>,
        access: Option<AccessMode>,
        ctx: &Ctx<'_>,
        scope: &Scope,
        done: Done,
        now: Instant,
    ) -> Result<Planned, DbErr> {
        let input = Input { ctx, scope, around: self.around(), done, now };
        self.planner.plan_transaction(isolation, access, &input)
    }

    /// A plan for `access` on the primary, whatever the SQL would allow.
    #[inline]
    pub(super) fn plan_on_primary(&self, access: Access, reason: Why) -> Result<Plan, DbErr> {
        self.planner.plan_on_primary(access, reason)
    }

    /// What the router makes of `ctx` in the live topology (the tests' plain plans).
    #[cfg(test)]
    pub(super) fn plan_ctx(&self, ctx: &rwsplit_core::RouteContext<'_>) -> Result<Plan, DbErr> {
        self.planner.plan_ctx(ctx)
    }

    /// The replica a read sent now would go to, chosen as a read would be (healthy, by the
    /// balancer); when none is in rotation, [`RoutingError::NoNodeLeft`] naming each replica
    /// and why it is out, never the primary.
    pub(crate) fn replica_for_reads(&self) -> Result<NodeId, DbErr> {
        let ctx = rwsplit_core::RouteContext::for_access(Access::Read, Instant::now())
            .with_target(rwsplit_core::Target::Replica);
        let plan = self.planner.plan_ctx(&ctx)?;
        if !plan.on_primary() {
            return Ok(plan.first());
        }
        let nodes = self.planner.replicas_out(&plan);
        Err(crate::routing_error::RoutingError::NoNodeLeft { nodes }.into())
    }

    /// Applies the `effects` of the plan that runs, once, as of `now`: its counters, and its
    /// wants to the monitor if one runs.
    #[inline]
    pub(crate) fn apply(&self, effects: Effects, now: Instant) {
        self.planner.apply(effects, &self.counters, self.monitored, now);
    }

    /// Sends the wants of a plan's `effects` to the monitor, if one runs, before its I/O step.
    pub(super) fn want(&self, effects: &Effects, now: Instant) {
        self.planner.want(effects, self.monitored, now);
    }

    /// A replica refused `sql` as a write: its shape is learned as one from now on.
    pub(super) fn learn_refused(&self, sql: &str) -> crate::routing::classified::Learned {
        self.planner.learn_refused(sql)
    }

    /// Whether `learned` filled the table of learned shapes (said once).
    pub(super) fn first_full(&self, learned: &crate::routing::classified::Learned) -> bool {
        self.planner.first_full(learned)
    }

    /// How many shapes were learned as writes from replicas' refusals (`Stats`).
    pub(crate) fn learned_writes(&self) -> usize {
        self.planner.learned_writes()
    }
}

/// The routing state, through the planner that owns it: what statements, the monitor's
/// callbacks, the facade and `Stats` tell it or read of it.
impl Inner {
    /// The current primary's id, if exactly one node has the role.
    #[inline]
    pub(crate) fn primary_id(&self) -> Option<NodeId> {
        self.planner.primary_id()
    }

    /// Where `node` stands for a statement on it: the primary, down, not the primary, gone.
    #[inline]
    pub(super) fn standing(&self, node: NodeId) -> Standing {
        self.planner.standing(node)
    }

    /// Completes at `node`'s next announced change of role or health (or nudge).
    #[inline]
    pub(super) fn changed(&self, node: NodeId) -> tokio::sync::futures::Notified<'_> {
        self.planner.changed(node)
    }

    /// An attempt on `node` succeeded at `now` ([`Planner::answered`]).
    #[inline]
    pub(super) fn answered(&self, node: NodeId, guard: Option<InFlight>, now: Instant) {
        self.planner.answered(node, guard, now);
    }

    /// A failure of `node` itself (never back-pressure) that a statement saw.
    pub(super) fn record_failure(&self, node: NodeId) {
        self.planner.record_failure(node);
    }

    /// A catch-up wait proved `node` has replayed `token`: proof for the next reads.
    pub(super) fn learn(&self, node: NodeId, token: &CausalToken) {
        self.planner.learn(node, token);
    }

    /// Fences or unfences `node`; whether it was there to be.
    pub(crate) fn set_fenced(&self, node: NodeId, fenced: bool) -> bool {
        self.planner.set_fenced(node, fenced)
    }

    /// Fences `node` because its server is not one rwsplit supports.
    pub(super) fn fence_unsupported(&self, node: NodeId) {
        self.planner.fence_unsupported(node);
    }

    /// How the routing state sees `node` now (`Stats`).
    pub(crate) fn node_routing(&self, node: NodeId) -> crate::routing::route::NodeRouting {
        self.planner.node_routing(node)
    }

    /// The monitor's probes of `node` refused for lack of room (busy, not gone).
    pub(crate) fn busy_probes(&self, node: NodeId) -> u64 {
        self.planner.busy_probes(node)
    }

    /// The primary's position as the monitor last saw it, if known.
    pub(crate) fn primary_position(&self) -> Option<rwsplit_core::ReplayPosition> {
        self.planner.primary_position()
    }

    /// Holds `node` out of rotation until the monitor has an answer from it (it did not
    /// answer while the connection was made); whether it was held.
    pub(crate) fn hold_until_answered(&self, node: NodeId) -> bool {
        self.planner.hold_until_answered(node)
    }

    /// Completes at the monitor's next published topology (enable it before the look it
    /// guards).
    pub(super) fn published(&self) -> tokio::sync::futures::Notified<'_> {
        self.planner.published()
    }

    /// Asks the monitor for one sample of `node`'s position read after `after`, until `until`.
    pub(super) fn want_sample(&self, node: NodeId, after: Instant, until: Instant) {
        self.planner.want_sample(node, after, until);
    }

    /// Whether the monitor sampled `node` after `at`.
    pub(super) fn sampled_since(&self, node: NodeId, at: Instant) -> bool {
        self.planner.sampled_since(node, at)
    }

    /// Tells the monitor, if one runs, that the cluster is in use at `now`: it probes at its
    /// usual interval, not the idle one. One atomic load while statements come often.
    #[inline]
    pub(super) fn note_use(&self, now: Instant) {
        if self.monitored {
            self.planner.used(now);
        }
    }

    /// The live topology, for the gauges.
    pub(super) fn snapshot(&self) -> rwsplit_core::TopologyGuard {
        self.planner.snapshot()
    }

    /// Whether the monitor has `node` (in the snapshot or joining it).
    pub(super) fn in_monitor(&self, node: NodeId) -> bool {
        self.planner.in_monitor(node)
    }

    /// Whether `node` is fenced.
    pub(super) fn is_fenced(&self, node: NodeId) -> bool {
        self.planner.is_fenced(node)
    }

    /// After a probe of the monitor's: forgets the scopes whose writes every replica has
    /// replayed (or whose tokens are stale), and the catch-up waits' expired proofs.
    pub(super) fn sweep(&self, now: Instant) {
        let floor = |seen: &Seen| self.planner.floor(seen);
        let settled = |t: &CausalToken| self.planner.settled(t);
        self.causality.sweep(now, crate::routing::ctx::FOREIGN_TOKEN_TTL, settled, floor);
        self.planner.sweep_learned(now);
    }

    /// The monitor's state, for the tests to feed it probe results and compare it with the
    /// registry.
    #[cfg(test)]
    pub(crate) fn shared_state(&self) -> Arc<rwsplit_monitor::TopologyState> {
        Arc::clone(self.planner.monitor_state())
    }

    /// Takes `node` out of rotation at once (the tests' way of making a node unroutable).
    #[cfg(test)]
    pub(crate) fn ban(&self, node: NodeId) {
        self.planner.ban(node);
    }

    /// The looks at the live topology so far (plans and the rest, standings).
    #[cfg(test)]
    pub(crate) fn looks(&self) -> (usize, usize) {
        self.planner.looks()
    }
}

/// A statement's watch reads its node's standing here ([`crate::send::watch::bounded`]).
impl crate::send::watch::Standings for Inner {
    #[inline]
    fn standing(&self, node: NodeId) -> Standing {
        Inner::standing(self, node)
    }

    #[inline]
    fn wake_ups(&self, node: NodeId) -> u64 {
        self.planner.wake_ups(node)
    }

    #[inline]
    fn changed(&self, node: NodeId) -> tokio::sync::futures::Notified<'_> {
        Inner::changed(self, node)
    }
}

/// What the watchdog looks at (`crate::hedge::watchdog`).
impl crate::hedge::watchdog::Watched for Inner {
    fn look_each(&self, now: Instant, mut each: impl FnMut(NodeId, crate::hedge::pace::Look)) {
        // The snapshot's nodes (those reads can be on), each looked up by id: cheaper than a
        // walk over the registry's every slot.
        self.planner.each_routable(|id| {
            if let Some(node) = self.nodes.hold(id) {
                each(id, node.look(now));
            }
        });
    }

    fn wake_reads_on(&self, id: NodeId) {
        self.planner.nudge(id);
    }
}

/// Read-your-writes: the statement path's calls into [`Causality`], with the connection as
/// its [`Cluster`].
impl Inner {
    /// A statement or transaction ran as `ran` in `scope`: what it saw bounds the scope's
    /// next reads.
    #[inline]
    pub(super) fn saw(&self, scope: &Scope, ran: Ran) {
        self.causality.saw(self, scope, ran);
    }

    /// Whether a write in `scope` is tracked (its position read after it).
    #[inline]
    pub(super) fn tracks_writes(&self, scope: &Scope) -> bool {
        self.causality.tracks_writes(self, scope)
    }

    /// A write on `node` succeeded in `scope`: its position is read (on `taken`, the
    /// connection it was sent on, if held) and recorded.
    pub(super) async fn after_write(
        &self,
        node: NodeId,
        scope: &Scope,
        taken: Option<crate::send::sending::Taken>,
    ) {
        self.causality.after_write(self, node, scope, taken).await;
    }

    /// `scope` may have writes the router did not see commit: its next read asks the primary.
    #[inline]
    pub(crate) fn mark_unseen_writes(&self, scope: &Scope) {
        self.causality.mark_unseen_writes(self, scope);
    }

    /// A transaction on `node` ended as `outcome`: a commit records its position in `scope`.
    pub(super) async fn after_transaction(&self, node: NodeId, scope: &Scope, outcome: Outcome) {
        self.causality.after_transaction(self, node, scope, outcome).await;
    }

    /// `scope`'s state once no position read of it is under way, waiting at most `max`.
    pub(crate) async fn settled_slot(&self, scope: &Scope, max: Duration) -> Slot {
        self.causality.settled(scope, max).await
    }

    /// Does one of a plan's I/O steps for `scope` ([`Io`]: all of them read-your-writes') and
    /// notes what it found in `done`, for the next plan.
    pub(super) async fn plan_step(&self, io: Io, scope: &Scope, done: &mut Done) {
        match io {
            Io::Settle(max) => {
                self.causality.settled(scope, max).await;
                done.settled = true;
            }
            Io::Floor(max) => {
                self.causality.await_floor(self, scope, max).await;
                done.floored = true;
            }
            Io::PrimaryFloor { at } => {
                self.causality.floor_on_primary(self, scope, at).await;
                done.floored = true;
            }
            Io::Capture { epoch, at } => {
                done.captured = Some(self.causality.settle(self, scope, at, epoch).await);
            }
        }
    }

    /// Reads `node`'s position now (coalesced with reads of it under way).
    pub(crate) async fn capture(&self, node: NodeId) -> Result<CausalToken, DbErr> {
        self.causality.capture(self, node).await
    }

    /// `scope`'s state now.
    pub(crate) fn scope_slot(&self, scope: &Scope) -> Slot {
        self.causality.slot(scope)
    }

    /// The part of `scope`'s token its writes make, from its state `slot`, a pending write's
    /// position read from the primary first ([`Causality::written`]).
    pub(crate) async fn written(
        &self,
        scope: &Scope,
        slot: Slot,
    ) -> Result<Option<CausalToken>, DbErr> {
        self.causality.written(self, scope, slot).await
    }

    /// The newest position this connection read after a write, if any.
    pub(crate) fn newest_position(&self) -> Option<CausalToken> {
        self.causality.newest_position()
    }

    /// How many tasks' scopes are tracked (`Stats`).
    pub(crate) fn tracked_tasks(&self) -> usize {
        self.causality.tracked_tasks()
    }
}

/// The connection's counters and metric hooks.
impl Inner {
    /// Counts one `count`.
    #[inline]
    pub(crate) fn count(&self, count: Count) {
        self.counters.bump(count);
    }

    /// Counts a read-your-writes read as `outcome` (and its metric).
    #[inline]
    pub(super) fn count_ryw(&self, outcome: crate::observe::telemetry::Ryw) {
        self.counters.read_your_writes(outcome);
    }

    /// How many `count` there were so far (`Stats`).
    pub(crate) fn counted(&self, count: Count) -> u64 {
        self.counters.get(count)
    }

    /// Sets the metric callback every node's hooked pools report to.
    pub(crate) fn set_metric<F>(&self, callback: F)
    where
        F: Fn(&sea_orm::metric::Info<'_>) + Send + Sync + 'static,
    {
        self.hooks.set_metric(callback);
    }

    /// Makes every node's pools report to the metric callback, the primary lent out since the
    /// start included ([`Nodes::hook`]).
    pub(crate) fn hook_every_node(&self) {
        self.nodes.hook(&self.hooks);
    }

    /// Makes `node`'s pools report to the metric callback if one is set.
    pub(crate) fn hook_if_set(&self, node: &crate::nodes::registry::Node) {
        if self.hooks.is_set() {
            node.hook(&self.hooks);
        }
    }

    /// The metric callback's timing of `call`, if a callback is set.
    #[inline]
    pub(super) fn timing(
        &self,
        call: &crate::observe::hooks::Call<'_>,
    ) -> Option<crate::observe::hooks::Timing> {
        self.hooks.timing(call)
    }

    /// Ends `timing` (reporting it, `failed` or not, to the metric callback).
    #[inline]
    pub(super) fn finish_timing(
        &self,
        timing: Option<crate::observe::hooks::Timing>,
        failed: bool,
    ) {
        self.hooks.finish(timing, failed);
    }
}

impl Cluster for Inner {
    fn node_count(&self) -> usize {
        self.nodes.count()
    }

    fn want_sample(&self, node: NodeId, after: Instant, until: Instant) {
        self.planner.want_sample(node, after, until);
    }

    fn want_floor(&self, node: NodeId, after: Instant, until: Instant) {
        self.planner.want_floor(node, after, until);
    }

    fn want_replayed(&self, token: &CausalToken, until: Instant) {
        self.planner.want_replayed(token, until);
    }

    fn sampled(&self) -> tokio::sync::futures::Notified<'_> {
        self.planner.sampled()
    }

    fn monitored(&self) -> bool {
        Inner::monitored(self)
    }

    fn floor(&self, seen: &Seen) -> Option<CausalToken> {
        self.planner.floor(seen)
    }

    fn primary(&self) -> NodeId {
        self.planner.primary_id().unwrap_or_else(|| self.primary_index())
    }

    fn name_of(&self, node: NodeId) -> Option<String> {
        self.nodes.name_of(node)
    }

    async fn read_position<'a>(
        &'a self,
        node: NodeId,
        taken: Option<&'a mut crate::send::sending::Taken>,
    ) -> Result<CausalToken, DbErr> {
        let n = self.nodes.hold(node).ok_or_else(|| {
            let name = self.nodes.removed_name(node);
            DbErr::from(crate::routing_error::RoutingError::node_removed(node, name.as_deref()))
        })?;
        let cached = n.system_id();
        let mut on = match taken {
            Some(t) => crate::nodes::position::On::Taken(t),
            None => crate::nodes::position::On::Pool(n.writer()),
        };
        match self.product().capture(&mut on, cached).await {
            Ok((token, system_id)) => {
                n.set_system_id(system_id);
                self.counters.bump(Count::Captures);
                Ok(token)
            }
            Err(e) => {
                self.counters.bump(Count::CaptureFailures);
                Err(crate::routing_error::read_on(e, n.name()))
            }
        }
    }

    fn background(&self) -> Option<impl FnOnce(Capture)> {
        // Live while a statement of the connection runs (it holds the connection).
        let (Ok(runtime), Some(db)) = (tokio::runtime::Handle::try_current(), self.me.upgrade())
        else {
            return None;
        };
        Some(move |capture| {
            runtime.spawn(async move {
                db.causality.finish(&*db, capture).await;
            });
        })
    }
}
