//! Planning: where a statement or a transaction goes. The SQL is classified; then an explicit
//! [scope](crate::RoutedConnection::scope) or hint, the consistency level and the caller's
//! read-your-writes need decide what the core router is asked.
//!
//! A plan decides; it changes nothing and does no I/O. Its inputs: the statement, the call's
//! [`Ctx`], the scope's state (read once per plan), the live view of the cluster it is handed
//! ([`Routing`], in [`Around`]: one snapshot per plan, read after the scope's state and the
//! monitor's sample marks it is judged with, and the positions catch-up waits proved), the
//! policy, and the clock reading the executor hands it. Its
//! output is data: a [`Plan`], or the I/O step to do first ([`Planned::Io`]: the executor does
//! it, `connection/statements.rs`'s `planned`, and plans again with what it found, [`Done`]), each with the
//! [`Effects`] of the decision — counters to move, positions to want from the monitor — which
//! the executor applies once, for the plan it runs: a read planned twice is counted once.

use std::time::{Duration, Instant};

use rwsplit_core::{
    Access, CatchUp, CausalToken, Classification, Consistency, NodeId, Role, RouteContext,
    RouteReason, Target, Transaction,
};
use sea_orm::{AccessMode, DbErr, IsolationLevel};

use super::ctx::{Ctx, Policy, SCOPE, Scope, monotonic};
use crate::cluster::view::{Floor, FloorMark, Snap};
use crate::cluster::{Plan, Routing, Why};
use crate::consistency::{Causality, Slot};
use crate::observe::counters::Effects;
use crate::observe::telemetry::Ryw;
use crate::product::Product;

/// The planner: the routing policy and the product whose SQL it plans for. It decides where
/// statements and transactions go, once classified (by
/// [`Classified`](crate::routing::classified::Classified), a peer it does not
/// own); the executor asks it through [`plan`](Planner::plan) and
/// [`plan_transaction`](Planner::plan_transaction), handing it the live view of the cluster
/// ([`Routing`], a peer it does not own either) in [`Around`].
pub(crate) struct Planner {
    /// The connection's policy, which the statement's other steps read too (it is shared).
    policy: std::sync::Arc<Policy>,
    product: Product,
    /// The product's SQL dialect, constant for the connection: read by every statement.
    dialect: rwsplit_core::Dialect,
    /// Whether some replica is behind transaction pooling, where a read-only transaction runs
    /// only if the product can nest it in the replica's frame ([`Product::frame_hosts`]).
    framed_replicas: bool,
}

/// What a plan reads of the rest of the connection: the live view of the cluster (one snapshot
/// per plan, which also tells how many nodes there are), read-your-writes (a read's scope
/// state, read once per plan), and whether a monitor samples positions.
#[derive(Clone, Copy)]
pub(crate) struct Around<'a> {
    pub(crate) routing: &'a Routing,
    pub(crate) causality: &'a Causality,
    pub(crate) monitored: bool,
}

/// What a read needs from the primary's history.
#[derive(Debug, PartialEq, Eq)]
enum Need {
    Nothing,
    Token(CausalToken),
    /// The scope wrote but its position is unknown and could not be read: the primary.
    Primary,
    /// The scope's last read was on `node` and no sample bounds it yet (monotonic reads): that
    /// node again if it is a replica in rotation that has the token, else the primary.
    Stay {
        node: NodeId,
        token: Option<CausalToken>,
    },
}

/// What the planner decided, before its effects are attached ([`Planned`]).
enum Decided {
    Ready(Plan),
    Io(Io),
}

/// A read's view of its scope: the scope's state and, for monotonic reads, the sample marks
/// that bound its last read, both read before the snapshot they are judged in.
struct ScopeView {
    slot: Slot,
    floor: Option<FloorMark>,
}

impl Planner {
    /// A planner with this policy, for `product`'s SQL; `framed_replicas`: some replica is
    /// behind transaction pooling.
    pub(crate) fn new(
        policy: std::sync::Arc<Policy>,
        product: Product,
        framed_replicas: bool,
    ) -> Planner {
        Planner { policy, product, dialect: product.dialect(), framed_replicas }
    }

    /// The catch-up wait a read may do: the call's, else the connection's default.
    pub(crate) fn wait_of(&self, ctx: &Ctx<'_>) -> Option<Duration> {
        ctx.wait.unwrap_or(self.policy.wait_for_replica).filter(|d| !d.is_zero())
    }

    /// The scope's state for a read and, for monotonic reads, the monitor's sample marks that
    /// bound its last read: read before the plan's snapshot, so that a sample the marks count
    /// is in it.
    fn scope_view(around: Around<'_>, scope: &Scope, monotonic: bool) -> ScopeView {
        let mut slot = around.causality.slot(scope);
        let floor = match slot.seen.take() {
            Some(seen) if monotonic => Some(around.routing.floor_mark(&seen)),
            _ => None,
        };
        ScopeView { slot, floor }
    }

    /// What a read in a scope seen as `view` needs: nothing, a token, or the primary (position
    /// unknown); or the I/O step to do first. The decision is [`next_step`]'s, from the scope's
    /// state, `snap` and the steps `done` so far alone.
    fn read_need(
        routing: &Routing,
        view: ScopeView,
        explicit: Option<&CausalToken>,
        wait: Option<Duration>,
        snap: &Snap,
        done: Done,
    ) -> Result<Need, Io> {
        let ScopeView { slot, floor } = view;
        let floor = floor.map(|mark| mark.resolve(snap));
        let primary = snap.primary().map(rwsplit_core::Node::id);
        let primary_down = || {
            primary.is_none_or(|p| {
                snap.node(p).is_none_or(|n| n.health() == rwsplit_core::Health::Down)
            })
        };
        let out_of_reach = || out_of_reach(snap, wait);
        match next_step(&slot, explicit, floor, wait, (primary_down, out_of_reach), done) {
            Step::Need(need) => Ok(need),
            Step::Settle(max) => Err(Io::Settle(max)),
            Step::Capture(epoch) => {
                Err(Io::Capture { epoch, at: primary.unwrap_or_else(|| routing.primary_index()) })
            }
        }
    }

    /// Where a statement goes, given its classification (see [`classify`](Self::classify)):
    /// the explicit scope, the consistency level with the caller's read-your-writes token, and
    /// the router, as of `now` (the executor's clock reading). No I/O, nothing changed: a step
    /// it needs first comes back as [`Planned::Io`], and what the decision means for counters
    /// and the monitor as its [`Effects`].
    pub(crate) fn plan(
        &self,
        sql: &str,
        kind: crate::routing::classified::Entry,
        input: &Input<'_, '_>,
    ) -> Result<Planned, DbErr> {
        let c = kind.classification.attach(sql);
        let planned = with_effects(|fx| self.plan_classified(sql, &c, input, fx))?;
        Ok(match planned {
            Planned::Ready(plan, fx) => Planned::Ready(plan.with_operation(kind.operation), fx),
            io => io,
        })
    }

    fn plan_classified(
        &self,
        sql: &str,
        c: &Classification<'_>,
        input: &Input<'_, '_>,
        fx: &mut Effects,
    ) -> Result<Decided, DbErr> {
        let &Input { ctx, scope, around, done, now } = input;
        let mut rc = RouteContext::new(c, now).with_statement(sql, self.dialect);
        let target = SCOPE.try_with(|t| *t).ok();
        if let Some(target) = target {
            rc = rc.with_target(target);
        }
        let level = ctx.consistency.unwrap_or(&self.policy.consistency);
        if matches!(level, Consistency::BoundedStaleness(_)) && c.access() != Access::Write {
            // A bounded read is proven from the monitor's samples: its replicas' staleness
            // grows between them, so while bounded reads come the feed runs (idle, only probes
            // would prove them, a probe interval apart).
            fx.want_positions = true;
        }
        let explicit_token = match level {
            Consistency::ReadYourWrites(t) => Some(t),
            _ => None,
        };
        let overridden = target.is_some() || c.hint().is_some();
        if c.access() == Access::Write
            || overridden
            || matches!(level, Consistency::Strong)
            || (!self.policy.read_your_writes && explicit_token.is_none())
        {
            return around.routing.route(&rc.with_consistency(level)).map(Decided::Ready);
        }
        let read = Read { level, explicit: explicit_token, wait: self.wait_of(ctx), around, done };
        self.decide_read(rc, &read, scope, fx)
    }

    /// Where a read in a read-your-writes scope goes — a statement's, or a read-only
    /// transaction's `BEGIN` — given what its scope needs (see [`read_need`](Self::read_need)):
    /// the one planner for both.
    fn decide_read(
        &self,
        rc: RouteContext<'_>,
        read: &Read<'_>,
        scope: &Scope,
        fx: &mut Effects,
    ) -> Result<Decided, DbErr> {
        let &Read { level, explicit, wait, around, done } = read;
        let view = Self::scope_view(around, scope, monotonic(level));
        // One snapshot for every decision of this plan, taken after the scope's view.
        let routing = around.routing;
        let snap = routing.snap();
        if explicit.is_none() && snap.nodes().len() == 1 {
            // The primary alone: nothing to wait for or stay on.
            return routing.route_in(snap, &rc.with_consistency(level)).map(Decided::Ready);
        }
        let need = match Self::read_need(routing, view, explicit, wait, &snap, done) {
            Ok(need) => need,
            Err(io) => return Ok(Decided::Io(io)),
        };
        match need {
            // A bounded read asked for positions when it was planned (`plan_classified`).
            Need::Nothing => routing.route_in(snap, &rc.with_consistency(level)),
            Need::Primary => {
                // No want here: the write's token is not even known yet, and a scope that reads
                // once right after its write never needs the feed; one that reads again asks
                // then (`plan_with_token`).
                fx.ryw = Some(Ryw::Primary);
                let plan = routing.route_in(snap, &rc.with_target(Target::Primary))?;
                Ok(plan.with_reason(Why::ReadAfterWrite))
            }
            Need::Token(token) => self.plan_with_token(snap, rc, read, token, fx),
            Need::Stay { node, token } => {
                let (token, monitored) = (token.as_ref(), around.monitored);
                let stay = Stay { routing, node, token, wait, monitored, done };
                return self.plan_stay(snap, rc, level, &stay, fx);
            }
        }
        .map(Decided::Ready)
    }

    /// A read whose scope last read on `stay.node`, with no sample yet that bounds what that
    /// read saw: that node again (its replay only moves forward) if it is a replica not down
    /// that is known to have the scope's token (sampled, or proven by a recent catch-up wait)
    /// and, for a bounded read, is within the bound. A replica not known to have the token yet
    /// is waited on, in the server, if the caller waits for replicas. Else, if the caller waits
    /// and the monitor samples positions, first wait (once, within the wait and the probe
    /// timeout) for a sample of the replica that bounds the last read, then plan again with it;
    /// else the primary (at or past every replica). Either way the new read's end bounds
    /// everything the scope read before.
    fn plan_stay(
        &self,
        snap: Snap,
        rc: RouteContext<'_>,
        level: &Consistency,
        stay: &Stay<'_>,
        fx: &mut Effects,
    ) -> Result<Decided, DbErr> {
        let Stay { routing, node, token, wait, .. } = *stay;
        let topo = &*snap;
        if let Some(t) = token
            && crate::cluster::view::foreign_in(topo, t)
        {
            // As in `plan_with_token`: no node of this history can prove it has the token.
            fx.foreign_token = true;
        }
        let now = rc.now();
        let replica = topo
            .node(node)
            .filter(|n| n.serves_reads())
            .map(|n| (token.is_none_or(|t| routing.has_replayed(topo, node, t, now)), n.lag()));
        fx.monotonic_stay = true;
        let bounded = |plan: crate::cluster::Plan| match level {
            Consistency::BoundedStaleness(bound) => routing.exclude_lagging(plan, bound),
            _ => plan,
        };
        match (replica, token, wait) {
            (Some((true, _)), _, _) => {
                if token.is_some() {
                    fx.ryw = Some(Ryw::Replica);
                }
                let plan = routing.route_in(snap, &rc.with_target(Target::Node(node)))?;
                return Ok(Decided::Ready(bounded(plan.with_reason(Why::LastReadNode))));
            }
            // The token's write is likely a millisecond away on that replica: wait for it there.
            (Some((false, lag)), Some(t), Some(max)) if !too_far(&lag, max) => {
                let plan = routing.route_in(snap, &rc.with_target(Target::Node(node)))?;
                let plan = plan.with_reason(Why::LastReadNode).with_wait(t.clone(), max);
                return Ok(Decided::Ready(bounded(plan)));
            }
            _ => {}
        }
        self.plan_stay_elsewhere(snap, &rc, stay, replica.is_some(), fx)
    }

    /// [`plan_stay`](Self::plan_stay) when the last read's node cannot serve this read at
    /// once (`replica`: it is a replica not down, without the scope's token yet): the
    /// primary's position read first, or a sample of that node waited for, or the primary.
    fn plan_stay_elsewhere(
        &self,
        snap: Snap,
        rc: &RouteContext<'_>,
        stay: &Stay<'_>,
        replica: bool,
        fx: &mut Effects,
    ) -> Result<Decided, DbErr> {
        let Stay { routing, node, token, wait, monitored, done } = *stay;
        let topo = &*snap;
        // The last read was on the primary: the primary's position, read now (shared with the
        // writes' position reads), bounds it; then the read can wait on a replica for it.
        // (Not when every replica is known to be further behind than the wait: the read would go
        // to the primary anyway.)
        let on_primary = topo.node(node).is_some_and(|n| n.role() == Role::Primary);
        if on_primary
            && let Some(max) = wait
            && !done.floored
            && topo.replicas().any(|r| r.serves_reads() && !too_far(&r.lag(), max))
        {
            return Ok(Decided::Io(Io::PrimaryFloor { at: node }));
        }
        // No sample bounds the last read yet, and its node cannot serve this one: that node's
        // next sample is wanted (it is sent after the read ended: the next read of the scope
        // finds its floor known), and then the replicas' positions until each has it (so that
        // read finds one). One read of one node, then the replicas' until they catch up; not
        // every node's feed for a linger.
        fx.want_floor = Some(node);
        // Waiting for a sample is worth it for a replica only: the primary is where the read
        // would go anyway, and a node down sends no sample.
        if let (true, Some(max)) = (replica, wait)
            && !done.floored
            && monitored
        {
            return Ok(Decided::Io(Io::Floor(max)));
        }
        if token.is_some() {
            fx.ryw = Some(Ryw::Primary);
        }
        let plan = routing.route_in(snap, &rc.with_target(Target::Primary))?;
        Ok(Decided::Ready(plan.with_reason(Why::LastReadNode)))
    }

    /// A read-your-writes read: replicas known to have replayed `token` (sampled by the monitor,
    /// or proven by a recent catch-up wait), or (if the caller waits, up to `wait`) the closest
    /// one, waited on in the server, or the primary. A bounded-staleness level still applies
    /// its bound to the replicas that qualify.
    fn plan_with_token(
        &self,
        snap: Snap,
        rc: RouteContext<'_>,
        read: &Read<'_>,
        token: CausalToken,
        fx: &mut Effects,
    ) -> Result<Plan, DbErr> {
        let &Read { level, wait, around: Around { routing, .. }, .. } = read;
        if crate::cluster::view::foreign_in(&snap, &token) {
            return Self::plan_foreign(routing, snap, &rc, &token, fx);
        }
        let bounded = |plan: Plan| match level {
            Consistency::BoundedStaleness(bound) => routing.exclude_lagging(plan, bound),
            _ => plan,
        };
        let catch_up = if wait.is_some() { CatchUp::Wait } else { CatchUp::Primary };
        let ryw = Consistency::ReadYourWrites(token);
        let plan =
            routing.route_in(snap.clone(), &rc.with_consistency(&ryw).with_catch_up(catch_up))?;
        let Consistency::ReadYourWrites(token) = ryw else { return Ok(plan) };
        let mut plan = bounded(plan);
        let reason = plan.route_reason();
        let behind = matches!(reason, RouteReason::AwaitCatchUp | RouteReason::NotCaughtUp)
            || plan.on_primary();
        if behind {
            // No sample shows a replica with the write; a catch-up wait may have proven one.
            let rather = (reason == RouteReason::AwaitCatchUp).then(|| plan.first());
            let proven = routing.proven_replica(&snap, &token, rather, rc.now());
            if let Some(r) = proven {
                fx.ryw = Some(Ryw::Replica);
                let proven = routing.route_in(snap, &rc.with_target(Target::Node(r)))?;
                return Ok(bounded(proven.with_reason(Why::ProvenReplica)));
            }
            // The replicas' feeds show the next reads which have it (each until it has it).
            fx.want_replayed = Some(token.clone());
        }
        match reason {
            RouteReason::AwaitCatchUp => {
                let lag = snap.node(plan.first()).map(rwsplit_core::Node::lag);
                match wait {
                    // Known to be further behind than the wait allows: the primary at once.
                    Some(max) if lag.is_some_and(|l| too_far(&l, max)) => {
                        fx.ryw = Some(Ryw::Primary);
                        let primary = routing.route_in(snap, &rc.with_target(Target::Primary))?;
                        plan = primary.with_reason(Why::Router(RouteReason::NotCaughtUp));
                    }
                    Some(max) => plan = plan.with_wait(token, max),
                    None => {}
                }
            }
            _ if behind => fx.ryw = Some(Ryw::Primary),
            _ => fx.ryw = Some(Ryw::Replica),
        }
        Ok(plan)
    }

    /// A read-your-writes read whose `token` is from another history than the primary's (a
    /// failover?): no replica can prove it has the write, so the primary.
    fn plan_foreign(
        routing: &Routing,
        snap: Snap,
        rc: &RouteContext<'_>,
        token: &CausalToken,
        fx: &mut Effects,
    ) -> Result<Plan, DbErr> {
        fx.ryw = Some(Ryw::Primary);
        fx.foreign_token = true;
        tracing::info!(target: "rwsplit", token = %token, "read-your-writes token is from another history than the primary's (a failover?): no replica can prove it has the write; reading from the primary");
        let plan = routing.route_in(snap, &rc.with_target(Target::Primary))?;
        Ok(plan.with_reason(Why::ForeignToken))
    }

    /// Where a transaction with this configuration begins, as of `now`: a read-only one (not
    /// SERIALIZABLE on PostgreSQL) may use a replica that has the caller's writes, everything
    /// else uses the primary. No I/O and nothing changed, like [`plan`](Self::plan).
    pub(crate) fn plan_transaction(
        &self,
        isolation: Option<IsolationLevel>,
        access: Option<AccessMode>,
        input: &Input<'_, '_>,
    ) -> Result<Planned, DbErr> {
        let &Input { ctx, scope, around, done, now } = input;
        with_effects(|fx| {
            let read_only = access == Some(AccessMode::ReadOnly);
            let serializable_pg = isolation == Some(IsolationLevel::Serializable)
                && self.product.replicas_refuse_serializable();
            // A transaction a transaction-pooled replica cannot host goes to the primary: the
            // router does not pick replicas by pooling, and such setups pool every replica.
            let unhosted = self.framed_replicas && !self.product.frame_hosts(isolation);
            if !read_only || serializable_pg || unhosted {
                let ctx = RouteContext::for_access(Access::Write, now)
                    .with_transaction(Transaction::ReadWrite);
                return Ok(Decided::Ready(
                    around.routing.route(&ctx)?.with_reason(Why::Transaction),
                ));
            }
            let rc =
                RouteContext::for_access(Access::Read, now).with_transaction(Transaction::ReadOnly);
            let level = ctx.consistency.unwrap_or(&self.policy.consistency);
            if matches!(level, Consistency::BoundedStaleness(_)) {
                fx.want_positions = true;
            }
            if let Ok(target) = SCOPE.try_with(|t| *t) {
                return around.routing.route(&rc.with_target(target)).map(Decided::Ready);
            }
            if matches!(level, Consistency::Strong) || !self.policy.read_your_writes {
                return around.routing.route(&rc.with_consistency(level)).map(Decided::Ready);
            }
            let explicit = match level {
                Consistency::ReadYourWrites(t) => Some(t),
                _ => None,
            };
            // No catch-up wait for a transaction: it goes where the scope's token is satisfied.
            let read = Read { level, explicit, wait: None, around, done };
            self.decide_read(rc, &read, scope, fx)
        })
    }
}

/// A decision made with `decide`, with the effects it noted.
fn with_effects(
    decide: impl FnOnce(&mut Effects) -> Result<Decided, DbErr>,
) -> Result<Planned, DbErr> {
    let mut fx = Effects::default();
    Ok(match decide(&mut fx)? {
        // Most plans have no effects: the executor then applies nothing.
        Decided::Ready(plan) => Planned::Ready(plan, (fx != Effects::default()).then_some(fx)),
        Decided::Io(io) => Planned::Io(io, fx),
    })
}

/// One plan's inputs beyond the statement: the call's context, its scope, what the plan reads
/// of the rest of the connection, the I/O steps done so far, and the executor's clock reading.
#[derive(Clone, Copy)]
pub(crate) struct Input<'c, 'a> {
    pub(crate) ctx: &'c Ctx<'a>,
    pub(crate) scope: &'c Scope,
    pub(crate) around: Around<'c>,
    pub(crate) done: Done,
    pub(crate) now: Instant,
}

/// A read's inputs beyond its route context and scope ([`Planner::decide_read`]).
#[derive(Clone, Copy)]
struct Read<'a> {
    level: &'a Consistency,
    /// The caller's own token (`Consistency::ReadYourWrites`).
    explicit: Option<&'a CausalToken>,
    /// The catch-up wait it may do (`None` for a transaction).
    wait: Option<Duration>,
    around: Around<'a>,
    done: Done,
}

/// A read kept, if it can be, on the node of its scope's last read ([`Planner::plan_stay`]).
#[derive(Clone, Copy)]
struct Stay<'t> {
    routing: &'t Routing,
    node: NodeId,
    token: Option<&'t CausalToken>,
    wait: Option<Duration>,
    /// Whether a monitor samples positions (else no sample is worth waiting for).
    monitored: bool,
    done: Done,
}

/// Whether a replica whose monitor-measured lag is `lag` is known to be further behind than a
/// catch-up wait of `max` could make up: then the read goes to the primary at once rather than
/// wait in vain.
fn too_far(lag: &rwsplit_core::Lag, max: Duration) -> bool {
    lag.time().is_some_and(|t| t > max)
}

/// Whether no replica of `topo` could serve a read that waits at most `wait` for one: every
/// replica is down or reports itself further behind than the wait (one that reports nothing:
/// is estimated so by the monitor), or there is none. A position
/// read of the primary is then of no use to the read — it goes to the primary either way — and
/// is left until a replica could use it. Never without a wait (`None`): a replica may have a
/// write by the time the read comes, which only the write's position can tell.
pub(crate) fn out_of_reach(topo: &rwsplit_core::Topology, wait: Option<Duration>) -> bool {
    let Some(max) = wait else { return false };
    // The server's own figure where it gave one, not the monitor's estimate: between the
    // primary's samples the estimate makes a replica a few milliseconds behind look up to a
    // probe interval late, and a write that then skipped its position read would start no
    // position feed to correct it. (PostgreSQL's figure, the time since its last replayed
    // commit while WAL waits, can make a current replica look as late as the pause before a
    // write: the scope's next read then goes to the primary, one primary statement for the
    // position read it saved.) A replica that gave none (a MariaDB probe without its status
    // row, most of them) has only the estimate: an upper bound, so a replica it calls near
    // is near, and one it calls far by mistake costs that one primary statement.
    let far = |lag: rwsplit_core::Lag| lag.reported_time().or(lag.time()).is_some_and(|t| t > max);
    topo.replicas().all(|r| !r.serves_reads() || far(r.lag()))
}

/// What planning gives: a plan, or an I/O step to do before planning again; each with the
/// [`Effects`] of the decision, which the executor applies (a plan's all, once; an I/O step's
/// wants before it, since the step may wait on what they ask for).
#[derive(Debug)]
pub(crate) enum Planned {
    /// Where it goes, and its effects (`None`: none, as for most plans).
    Ready(Plan, Option<Effects>),
    /// Do this first, note it in [`Done`], and plan again.
    Io(Io, Effects),
}

/// An I/O step a read-your-writes read's plan needs first; the executor does it
/// (`connection/statements.rs`'s `planned`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Io {
    /// Wait, up to this long, for the scope's position captures in flight to land.
    Settle(Duration),
    /// Wait, up to this long (and the monitor's probe timeout), for a position sample that
    /// bounds the scope's last read (monotonic reads).
    Floor(Duration),
    /// Read the position of primary `at`, which the scope's last read was on: it bounds that
    /// read (monotonic reads).
    PrimaryFloor {
        /// The primary of the plan's snapshot.
        at: NodeId,
    },
    /// Read the position of primary `at`, for the scope whose pending epoch is `epoch`.
    Capture {
        /// The scope's pending epoch when it was asked for.
        epoch: u64,
        /// The primary of the plan's snapshot.
        at: NodeId,
    },
}

/// What planning a read in a read-your-writes scope needs next ([`next_step`]).
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Decided.
    Need(Need),
    /// Wait, up to this long, for the scope's position captures in flight to land.
    Settle(Duration),
    /// Read the primary's position (a pending scope, or a held token to lower), taken while
    /// the scope's pending epoch is this.
    Capture(u64),
}

/// The I/O steps a read's plan has done so far.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Done {
    /// It waited for the scope's captures in flight.
    pub(crate) settled: bool,
    /// It read the primary's position: `true` if that worked.
    pub(crate) captured: Option<bool>,
    /// It waited for a sample bounding the scope's last read, or read the primary's position
    /// for it.
    pub(crate) floored: bool,
}

/// The next step for a read in a scope whose state is `slot`, with the caller's own token
/// `explicit`, the catch-up wait `wait`, and whether the primary is marked down (asked only
/// for a held token). Pure: no I/O, no clock, no lock.
///
/// - A write's position still being read (in flight): the primary, or — if the caller would
///   rather wait for a replica — wait for it first, once.
/// - A pending scope, or a held token while the primary is up: read the primary's position
///   first, once. If that fails, a pending scope reads from the primary; a held token is used
///   as it came. A pending scope reads from the primary without that position read while no
///   replica could serve the read within the wait ([`out_of_reach`]): it stays pending.
/// - Then the scope's token merged with the caller's and with `floor`, the bound of what the
///   scope has read (monotonic reads), if any; if that bound is not known yet, the node of
///   the last read (or the primary), still with the token.
fn next_step(
    slot: &Slot,
    explicit: Option<&CausalToken>,
    floor: Option<Floor>,
    wait: Option<Duration>,
    (primary_down, out_of_reach): (impl FnOnce() -> bool, impl FnOnce() -> bool),
    done: Done,
) -> Step {
    if slot.inflight > 0 {
        return match wait {
            Some(max) if !done.settled => Step::Settle(max),
            _ => Step::Need(Need::Primary),
        };
    }
    if done.captured.is_none() && slot.pending && slot.external.is_none() && out_of_reach() {
        return Step::Need(Need::Primary);
    }
    if done.captured.is_none() && (slot.pending || (slot.external.is_some() && !primary_down())) {
        return Step::Capture(slot.pending_epoch);
    }
    if done.captured == Some(false) && slot.pending {
        return Step::Need(Need::Primary);
    }
    let token = match (slot.with_external(), explicit) {
        (Some(t), Some(e)) => Some(t.merged(e)),
        (Some(t), None) => Some(t),
        (None, Some(e)) => Some(e.clone()),
        (None, None) => None,
    };
    Step::Need(match (floor, token) {
        (Some(Floor::Unknown(node)), token) => Need::Stay { node, token },
        (Some(Floor::Known(f)), Some(t)) => Need::Token(t.merged(&f)),
        (Some(Floor::Known(f)), None) | (None, Some(f)) => Need::Token(f),
        (None, None) => Need::Nothing,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rstest::rstest;
    use rwsplit_core::CausalToken;

    use rwsplit_core::{Health, Lag, Node, NodeId, Role, Topology};

    use super::{Done, Floor, Need, Slot, Step, next_step};

    fn token(text: &str) -> CausalToken {
        text.parse().unwrap()
    }

    fn slot(inflight: u32, pending: bool, own: Option<&str>, held: Option<&str>) -> Slot {
        Slot {
            token: own.map(token),
            pending,
            inflight,
            pending_epoch: 7,
            external: held.map(token),
            ..Slot::default()
        }
    }

    const MS: Duration = Duration::from_millis(250);
    const T: &str = "pg:1:7:1:0-100";
    const U: &str = "pg:1:7:1:0-200";

    fn done(settled: bool, captured: Option<bool>) -> Done {
        Done { settled, captured, floored: false }
    }

    #[rstest]
    #[case::nothing(slot(0, false, None, None), None, done(false, None), Step::Need(Need::Nothing))]
    #[case::own_token(
        slot(0, false, Some(T), None),
        None,
        done(false, None),
        Step::Need(Need::Token(token(T)))
    )]
    #[case::in_flight_no_wait(
        slot(1, false, Some(T), None),
        None,
        done(false, None),
        Step::Need(Need::Primary)
    )]
    #[case::in_flight_waits(
        slot(1, false, Some(T), None),
        Some(MS),
        done(false, None),
        Step::Settle(MS)
    )]
    #[case::in_flight_after_wait(
        slot(1, false, Some(T), None),
        Some(MS),
        done(true, None),
        Step::Need(Need::Primary)
    )]
    #[case::pending_captures(
        slot(0, true, Some(T), None),
        None,
        done(false, None),
        Step::Capture(7)
    )]
    #[case::pending_capture_failed(
        slot(0, true, Some(T), None),
        None,
        done(false, Some(false)),
        Step::Need(Need::Primary)
    )]
    #[case::held_token_is_checked(
        slot(0, false, None, Some(U)),
        None,
        done(false, None),
        Step::Capture(7)
    )]
    #[case::held_token_as_it_came(
        slot(0, false, None, Some(U)),
        None,
        done(false, Some(false)),
        Step::Need(Need::Token(token(U)))
    )]
    #[case::after_capture(
        slot(0, false, Some(T), None),
        None,
        done(false, Some(true)),
        Step::Need(Need::Token(token(T)))
    )]
    fn the_next_step_of_a_reads_plan(
        #[case] s: Slot,
        #[case] wait: Option<Duration>,
        #[case] d: Done,
        #[case] want: Step,
    ) {
        assert_eq!(next_step(&s, None, None, wait, (|| false, || false), d), want);
    }

    /// While no replica could serve the read within its wait, a pending scope reads from the
    /// primary without reading its position first (the position would change nothing), and
    /// stays pending; what else comes first still does.
    #[rstest]
    #[case::pending_reads_the_primary(
        slot(0, true, Some(T), None),
        done(false, None),
        Step::Need(Need::Primary)
    )]
    #[case::in_flight_still_settles(
        slot(1, true, Some(T), None),
        done(false, None),
        Step::Settle(MS)
    )]
    #[case::a_held_token_is_still_checked(
        slot(0, true, None, Some(U)),
        done(false, None),
        Step::Capture(7)
    )]
    #[case::not_pending_as_before(
        slot(0, false, Some(T), None),
        done(false, None),
        Step::Need(Need::Token(token(T)))
    )]
    fn no_position_read_while_no_replica_is_within_reach(
        #[case] s: Slot,
        #[case] d: Done,
        #[case] want: Step,
    ) {
        assert_eq!(next_step(&s, None, None, Some(MS), (|| false, || true), d), want);
    }

    /// A replica is out of reach for a read waiting `MS` only when every replica not down
    /// reports itself further behind: the monitor's estimate from the primary's samples, which
    /// makes a replica a few milliseconds behind look a probe interval late, counts only for a
    /// replica that reported nothing.
    #[rstest]
    #[case::both_report_far(&[(Some(400), 900, Health::Up), (Some(300), 300, Health::Up)], true)]
    #[case::one_reports_near(&[(Some(400), 900, Health::Up), (Some(2), 480, Health::Up)], false)]
    #[case::the_near_one_is_down(&[(Some(400), 900, Health::Up), (Some(2), 2, Health::Down)], true)]
    #[case::silent_is_as_far_as_its_estimate(&[(None, 900, Health::Up)], true)]
    #[case::silent_and_near(&[(None, 900, Health::Up), (None, 4, Health::Up)], false)]
    #[case::reported_near_whatever_the_estimate(&[(Some(2), 900, Health::Up)], false)]
    #[case::no_replica(&[], true)]
    fn out_of_reach_is_what_the_replicas_report(
        #[case] replicas: &[(Option<u64>, u64, Health)],
        #[case] want: bool,
    ) {
        let mut b = Topology::builder().node(Node::builder(NodeId::new(0), Role::Primary).build());
        for (i, &(reported, estimate, health)) in replicas.iter().enumerate() {
            let lag = Lag::new(Some(1), reported.map(Duration::from_millis))
                .with_estimate(Duration::from_millis(estimate));
            let id = NodeId::new(u16::try_from(i + 1).unwrap());
            b = b.node(Node::builder(id, Role::Replica).lag(lag).health(health).build());
        }
        assert_eq!(super::out_of_reach(&b.build().unwrap(), Some(MS)), want);
        assert!(!super::out_of_reach(&primary_alone(), None), "never without a wait");
    }

    fn primary_alone() -> Topology {
        Topology::builder()
            .node(Node::builder(NodeId::new(0), Role::Primary).build())
            .build()
            .unwrap()
    }

    #[test]
    fn a_held_token_is_not_checked_while_the_primary_is_down() {
        let s = slot(0, false, None, Some(U));
        assert_eq!(
            next_step(&s, None, None, None, (|| true, || false), Done::default()),
            Step::Need(Need::Token(token(U)))
        );
    }

    #[test]
    fn the_callers_token_is_merged_with_the_scopes() {
        let s = slot(0, false, Some(T), None);
        let want = token(T).merged(&token(U));
        assert_eq!(
            next_step(&s, Some(&token(U)), None, None, (|| false, || false), Done::default()),
            Step::Need(Need::Token(want))
        );
    }

    const N1: NodeId = NodeId::new(1);

    /// Monotonic reads: the bound of what the scope has read joins its token; while that bound
    /// is unknown the read stays on the node of the last read (with the token, if any); the
    /// steps before (captures in flight, pending positions) come first.
    #[rstest]
    #[case::known_floor_alone(
        slot(0, false, None, None),
        Some(Floor::Known(token(T))),
        done(false, None),
        Step::Need(Need::Token(token(T)))
    )]
    #[case::known_floor_above_the_token(
        slot(0, false, Some(T), None),
        Some(Floor::Known(token(U))),
        done(false, None),
        Step::Need(Need::Token(token(U)))
    )]
    #[case::known_floor_below_the_token(
        slot(0, false, Some(U), None),
        Some(Floor::Known(token(T))),
        done(false, None),
        Step::Need(Need::Token(token(U)))
    )]
    #[case::unknown_floor(slot(0, false, None, None), Some(Floor::Unknown(N1)), done(false, None), Step::Need(Need::Stay { node: N1, token: None }))]
    #[case::unknown_floor_keeps_the_token(slot(0, false, Some(T), None), Some(Floor::Unknown(N1)), done(false, None), Step::Need(Need::Stay { node: N1, token: Some(token(T)) }))]
    #[case::in_flight_first(
        slot(1, false, Some(T), None),
        Some(Floor::Unknown(N1)),
        done(false, None),
        Step::Need(Need::Primary)
    )]
    #[case::pending_first(
        slot(0, true, Some(T), None),
        Some(Floor::Known(token(U))),
        done(false, None),
        Step::Capture(7)
    )]
    fn the_floor_of_what_was_read_joins_the_plan(
        #[case] s: Slot,
        #[case] floor: Option<Floor>,
        #[case] d: Done,
        #[case] want: Step,
    ) {
        assert_eq!(next_step(&s, None, floor, None, (|| false, || false), d), want);
    }
}

/// The planner as a function of its inputs: plain tests (no runtime, no I/O) over a connection
/// of SeaORM mocks made outside any runtime (so without a monitor), whose scopes and topology
/// the tests set.
#[cfg(test)]
mod planner {
    use std::sync::Arc;
    use std::time::Instant;

    use rstest::rstest;
    use rwsplit_core::NodeId;
    use sea_orm::{DbBackend, MockDatabase};

    use super::super::ctx::{Ctx, Policy, Scope};
    use super::{Done, Io, Planned};
    use crate::cluster::Why;
    use crate::connection::RoutedConnection;
    use crate::consistency::Shared;
    use crate::observe::counters::Effects;
    use crate::observe::telemetry::Ryw;

    const PRIMARY: NodeId = NodeId::new(0);
    const R1: NodeId = NodeId::new(1);
    const R2: NodeId = NodeId::new(2);
    const TOKEN: &str = "pg:1:7:1:0-100";

    /// A primary and two replicas, all mocks; no runtime, so no monitor and no task scope.
    fn three_nodes() -> RoutedConnection {
        assert!(tokio::runtime::Handle::try_current().is_err(), "planner tests run without tokio");
        let mock = || MockDatabase::new(DbBackend::Postgres).into_connection();
        RoutedConnection::from_connections_with(mock(), vec![mock(), mock()], Policy::default())
            .expect("three mock nodes")
    }

    /// A session scope: nothing read or written yet, or last read on a node, or holding the
    /// token of a write.
    #[derive(Debug, Clone, Copy)]
    enum Before {
        Nothing,
        ReadOn(NodeId),
        Wrote,
    }

    fn session(before: Before) -> Scope {
        let shared = Arc::new(Shared::default());
        match before {
            Before::Nothing => {}
            Before::ReadOn(node) => shared.update(|s| s.saw(node, Some(Instant::now()))),
            Before::Wrote => shared.update(|s| s.record(&TOKEN.parse().expect("a token"))),
        }
        Scope::Session(shared)
    }

    fn plan(db: &RoutedConnection, sql: &str, scope: &Scope) -> Planned {
        let inner = &db.inner;
        let kind = inner.classify(sql);
        let ctx = Ctx::default();
        inner.plan(sql, kind, &ctx, scope, Done::default(), Instant::now()).expect("planned")
    }

    const SELECT: &str = "SELECT id FROM t WHERE id = 1";
    const INSERT: &str = "INSERT INTO t (id) VALUES (1)";

    fn wants_floor(node: NodeId) -> Effects {
        Effects { monotonic_stay: true, want_floor: Some(node), ..Effects::default() }
    }

    /// Where each read or write goes and what its decision asks the recorder to do, from the
    /// scope's state and the topology alone (replica 2 is down in the last case).
    #[rstest]
    #[case::a_write(
        INSERT,
        Before::Nothing,
        false,
        Some(PRIMARY),
        Why::Router(rwsplit_core::RouteReason::Write),
        Effects::default()
    )]
    #[case::a_fresh_read(
        SELECT,
        Before::Nothing,
        false,
        None,
        Why::Router(rwsplit_core::RouteReason::Balanced),
        Effects::default()
    )]
    #[case::a_read_stays_on_its_last_replica(SELECT, Before::ReadOn(R1), false, Some(R1), Why::LastReadNode, Effects { monotonic_stay: true, ..Effects::default() })]
    #[case::a_read_whose_last_replica_is_down_goes_to_the_primary(
        SELECT,
        Before::ReadOn(R2),
        true,
        Some(PRIMARY),
        Why::LastReadNode,
        wants_floor(R2)
    )]
    fn the_planner_decides_from_its_inputs(
        #[case] sql: &str,
        #[case] before: Before,
        #[case] r2_down: bool,
        #[case] first: Option<NodeId>,
        #[case] why: Why,
        #[case] effects: Effects,
    ) {
        let db = three_nodes();
        if r2_down {
            db.inner.ban(R2);
        }
        let Planned::Ready(p, fx) = plan(&db, sql, &session(before)) else {
            panic!("no I/O step expected")
        };
        let fx = fx.unwrap_or_default();
        match first {
            Some(node) => assert_eq!(p.first(), node),
            None => assert_ne!(p.first(), PRIMARY, "a fresh read goes to a replica"),
        }
        assert_eq!((p.reason(), fx), (why, effects));
    }

    /// A read after the scope's write, with no replica whose position is known (no monitor has
    /// sampled one): the primary, counted as a read-your-writes read there, and the replicas'
    /// positions wanted until one is seen with the write.
    #[test]
    fn a_read_after_a_write_no_replica_is_known_to_have_goes_to_the_primary() {
        let db = three_nodes();
        let Planned::Ready(p, Some(fx)) = plan(&db, SELECT, &session(Before::Wrote)) else {
            panic!("no I/O step expected, effects")
        };
        assert_eq!(p.first(), PRIMARY);
        assert!(p.wait().is_none());
        let token = TOKEN.parse().expect("a token");
        let want =
            Effects { ryw: Some(Ryw::Primary), want_replayed: Some(token), ..Effects::default() };
        assert_eq!(fx, want);
    }

    /// A scope with a write whose position is still unknown: the planner asks for the
    /// primary's position first (an I/O step), and plans nothing else.
    #[test]
    fn a_pending_scope_asks_for_the_primarys_position_first() {
        let db = three_nodes();
        let scope = session(Before::Nothing);
        if let Scope::Session(s) = &scope {
            s.update(crate::consistency::Slot::mark_pending);
        }
        let Planned::Io(io, fx) = plan(&db, SELECT, &scope) else { panic!("an I/O step first") };
        assert_eq!(io, Io::Capture { epoch: 1, at: PRIMARY });
        assert_eq!(fx, Effects::default());
    }

    /// Planning changes nothing: a read planned twice moves no counter; its effects, applied
    /// once for the plan that runs, move each counter once.
    #[test]
    fn a_read_planned_twice_is_counted_once() {
        let db = three_nodes();
        db.inner.ban(R2);
        let scope = session(Before::ReadOn(R2));
        let _ = plan(&db, SELECT, &scope);
        let Planned::Ready(_, Some(fx)) = plan(&db, SELECT, &scope) else { panic!("effects") };
        let stays = || db.stats().read_your_writes().last_node_reads;
        assert_eq!(stays(), 0, "planning counted");
        db.inner.apply(fx, Instant::now());
        assert_eq!(stays(), 1);
    }
}
