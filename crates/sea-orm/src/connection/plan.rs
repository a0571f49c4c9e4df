//! Planning: where a statement or a transaction goes. The SQL is classified; then an explicit
//! [scope](RoutedConnection::scope) or hint, the consistency level and the caller's
//! read-your-writes need decide what the core router is asked. Planning does no I/O: when a
//! read-your-writes read needs some first (waiting for the scope's position captures, reading
//! the primary's position), the planner hands back that step ([`Planned::Io`]); the executor
//! does it ([`Inner::planned`]) and plans again with what it found ([`Done`]).

use std::time::{Duration, Instant};

use rwsplit_core::{
    Access, CatchUp, CausalToken, Classification, Consistency, Health, NodeId, Role, RouteContext,
    RouteReason, Target, Transaction,
};
use sea_orm::{AccessMode, DbErr, IsolationLevel};

use super::inner::{Ctx, Inner, SCOPE, Scope, bump};
use super::scopes::monotonic;
use crate::causal::Slot;
use crate::route::{Floor, Plan, Snap, Why};
use crate::telemetry::Ryw;

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

impl Inner {
    /// `sql`'s classification, detached from it, and `db.operation.name` (cached by text).
    pub(super) fn classify(&self, sql: &str) -> crate::classified::Entry {
        self.classified.get(sql)
    }

    pub(super) fn plan_ctx(&self, ctx: &RouteContext<'_>) -> Result<Plan, DbErr> {
        self.routing.plan(ctx)
    }

    /// A plan for `access` on the primary, whatever the SQL would allow (`execute*`: no rows
    /// come back, so a replica is never worth it).
    pub(super) fn plan_on_primary(&self, access: Access, reason: Why) -> Result<Plan, DbErr> {
        let rc = RouteContext::for_access(access, Instant::now()).with_target(Target::Primary);
        Ok(self.plan_ctx(&rc)?.with_reason(reason))
    }

    /// What a read in `scope` needs: nothing, a token, or the primary (position unknown); or
    /// the I/O step to do first. The decision is [`next_step`]'s, from the scope's state, `snap`
    /// and the steps `done` so far alone.
    fn read_need(
        &self,
        scope: &Scope,
        explicit: Option<&CausalToken>,
        wait: Option<Duration>,
        snap: &Snap,
        done: Done,
        monotonic: bool,
    ) -> Result<Need, Io> {
        let mut slot = self.scope_get(scope);
        let floor = match slot.seen.take() {
            Some(seen) if monotonic => Some(self.routing.floor(&seen)),
            _ => None,
        };
        let primary = snap.primary_id();
        let primary_down = || {
            primary.is_none_or(|p| {
                snap.topology().node(p).is_none_or(|n| n.health() == rwsplit_core::Health::Down)
            })
        };
        match next_step(&slot, explicit, floor, wait, primary_down, done) {
            Step::Need(need) => Ok(need),
            Step::Settle(max) => Err(Io::Settle(max)),
            Step::Capture(epoch) => {
                Err(Io::Capture { epoch, at: primary.unwrap_or_else(|| self.primary_index()) })
            }
        }
    }

    /// Where a statement goes, given its classification (see [`classify`](Self::classify)):
    /// the explicit scope, the consistency level with the caller's read-your-writes token, and
    /// the router. No I/O: a step it needs first comes back as [`Planned::Io`]. Not pure: it
    /// reads the clock, the task's scope and the monitor's live samples, counts its decisions,
    /// and tells the monitor which positions its read wants.
    pub(super) fn plan(
        &self,
        sql: &str,
        kind: crate::classified::Entry,
        ctx: &Ctx<'_>,
        scope: &Scope,
        done: Done,
    ) -> Result<Planned, DbErr> {
        let c = kind.classification.attach(sql);
        Ok(match self.plan_classified(sql, &c, ctx, scope, done)? {
            Planned::Ready(plan) => Planned::Ready(plan.with_operation(kind.operation)),
            io => io,
        })
    }

    fn plan_classified(
        &self,
        sql: &str,
        c: &Classification<'_>,
        ctx: &Ctx<'_>,
        scope: &Scope,
        done: Done,
    ) -> Result<Planned, DbErr> {
        let now = Instant::now();
        self.note_use(now);
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
            self.want_positions();
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
            || (self.nodes.count() == 1 && explicit_token.is_none())
        {
            return self.plan_ctx(&rc.with_consistency(level)).map(Planned::Ready);
        }
        // One snapshot for every decision of this plan.
        let snap = self.routing.snap();
        let monotonic = monotonic(level);
        let wait = self.wait_of(ctx);
        let need = match self.read_need(scope, explicit_token, wait, &snap, done, monotonic) {
            Ok(need) => need,
            Err(io) => return Ok(Planned::Io(io)),
        };
        match need {
            Need::Nothing => self.plan_fresh(snap, &rc, level),
            Need::Primary => {
                // No want here: the write's token is not even known yet, and a scope that reads
                // once right after its write never needs the feed; one that reads again asks
                // then (`plan_with_token`).
                self.counters.read_your_writes(Ryw::Primary);
                let plan = self.routing.plan_in(snap, &rc.with_target(Target::Primary))?;
                Ok(plan.with_reason(Why::ReadAfterWrite))
            }
            Need::Token(token) => self.plan_with_token(snap, rc, level, token, ctx),
            Need::Stay { node, token } => {
                return self.plan_stay(snap, rc, level, node, token.as_ref(), wait, done);
            }
        }
        .map(Planned::Ready)
    }

    /// A read whose scope last read on `node`, with no sample yet that bounds what that read
    /// saw: `node` again (its replay only moves forward) if it is a replica not down that is
    /// known to have `token` (sampled, or proven by a recent catch-up wait) and, for a bounded
    /// read, is within the bound. A replica not known to have `token` yet is waited on, in the
    /// server, if the caller waits for replicas (`wait`). Else, if the caller waits and the
    /// monitor samples positions, first wait (once, within `wait` and the probe timeout) for a
    /// sample of the replica that bounds the last read, then plan again with it; else the
    /// primary (at or past every replica). Either way the new read's end bounds everything the
    /// scope read before.
    #[expect(clippy::too_many_arguments, reason = "one plan's inputs, passed through")]
    fn plan_stay(
        &self,
        snap: Snap,
        rc: RouteContext<'_>,
        level: &Consistency,
        node: NodeId,
        token: Option<&CausalToken>,
        wait: Option<Duration>,
        done: Done,
    ) -> Result<Planned, DbErr> {
        let topo = snap.topology();
        if let Some(t) = token
            && crate::route::foreign_in(topo, t)
        {
            // As in `plan_with_token`: no node of this history can prove it has the token.
            bump(&self.counters.foreign_tokens);
        }
        let replica = topo
            .node(node)
            .filter(|n| n.role() == Role::Replica && n.health() != Health::Down)
            .map(|n| (token.is_none_or(|t| self.routing.has_replayed(topo, node, t)), n.lag()));
        bump(&self.counters.monotonic_stays);
        let bounded = |plan: crate::route::Plan| match level {
            Consistency::BoundedStaleness(bound) => self.routing.exclude_lagging(plan, bound),
            _ => plan,
        };
        match (replica, token, wait) {
            (Some((true, _)), _, _) => {
                if token.is_some() {
                    self.counters.read_your_writes(Ryw::Replica);
                }
                let plan = self.routing.plan_in(snap, &rc.with_target(Target::Node(node)))?;
                return Ok(Planned::Ready(bounded(plan.with_reason(Why::LastReadNode))));
            }
            // The token's write is likely a millisecond away on that replica: wait for it there.
            (Some((false, lag)), Some(t), Some(max)) if !too_far(&lag, max) => {
                let plan = self.routing.plan_in(snap, &rc.with_target(Target::Node(node)))?;
                let plan = plan.with_reason(Why::LastReadNode).with_wait(t.clone(), max);
                return Ok(Planned::Ready(bounded(plan)));
            }
            _ => {}
        }
        // The last read was on the primary: the primary's position, read now (shared with the
        // writes' position reads), bounds it; then the read can wait on a replica for it.
        // (Not when every replica is known to be further behind than the wait: the read would go
        // to the primary anyway.)
        let on_primary = topo.node(node).is_some_and(|n| n.role() == Role::Primary);
        if on_primary
            && let Some(max) = wait
            && !done.floored
            && topo.replicas().any(|r| r.health() != Health::Down && !too_far(&r.lag(), max))
        {
            return Ok(Planned::Io(Io::PrimaryFloor { at: node }));
        }
        // No sample bounds the last read yet, and its node cannot serve this one: that node's
        // next sample is wanted (it is sent after the read ended: the next read of the scope
        // finds its floor known), and then the replicas' positions until each has it (so that
        // read finds one). One read of one node, then the replicas' until they catch up; not
        // every node's feed for a linger.
        self.want_floor(node);
        // Waiting for a sample is worth it for a replica only: the primary is where the read
        // would go anyway, and a node down sends no sample.
        if let (Some((_, _)), Some(max)) = (replica, wait)
            && !done.floored
            && self.monitor.is_some()
        {
            return Ok(Planned::Io(Io::Floor(max)));
        }
        if token.is_some() {
            self.counters.read_your_writes(Ryw::Primary);
        }
        let plan = self.routing.plan_in(snap, &rc.with_target(Target::Primary))?;
        Ok(Planned::Ready(plan.with_reason(Why::LastReadNode)))
    }

    /// A read with no token or floor to honour: where `level` sends it.
    fn plan_fresh(
        &self,
        snap: Snap,
        rc: &RouteContext<'_>,
        level: &Consistency,
    ) -> Result<Plan, DbErr> {
        // A bounded read asked for positions when it was planned (`plan_classified`).
        self.routing.plan_in(snap, &rc.with_consistency(level))
    }

    /// Tells the monitor the cluster is in use: it probes at its usual interval, not the idle
    /// one ([`MonitorConfig::idle_probe_interval`](rwsplit_monitor::MonitorConfig::idle_probe_interval)).
    /// One atomic load while statements come less than 50 ms apart.
    fn note_use(&self, now: Instant) {
        if self.monitor.is_some() {
            self.routing.state().used(now);
        }
    }

    /// Asks the monitor's position feed to run (for the configured linger): this read needed a
    /// position the snapshot could not prove. Idle, positions come with the full probes only.
    fn want_positions(&self) {
        if self.monitor.is_none() {
            return;
        }
        let now = Instant::now();
        let linger = self.policy.monitor.position_linger_value();
        self.routing.state().want_positions(now, now.checked_add(linger).unwrap_or(now));
    }

    /// A read-your-writes read: replicas known to have replayed `token` (sampled by the monitor,
    /// or proven by a recent catch-up wait), or (if the caller waits) the closest one, waited
    /// on in the server, or the primary. A bounded-staleness level still applies its bound to
    /// the replicas that qualify.
    fn plan_with_token(
        &self,
        snap: Snap,
        rc: RouteContext<'_>,
        level: &Consistency,
        token: CausalToken,
        ctx: &Ctx<'_>,
    ) -> Result<Plan, DbErr> {
        let wait = self.wait_of(ctx);
        if crate::route::foreign_in(snap.topology(), &token) {
            self.counters.read_your_writes(Ryw::Primary);
            bump(&self.counters.foreign_tokens);
            tracing::info!(target: "rwsplit", token = %token, "read-your-writes token is from another history than the primary's (a failover?): no replica can prove it has the write; reading from the primary");
            let plan = self.routing.plan_in(snap, &rc.with_target(Target::Primary))?;
            return Ok(plan.with_reason(Why::ForeignToken));
        }
        let bounded = |plan: Plan| match level {
            Consistency::BoundedStaleness(bound) => self.routing.exclude_lagging(plan, bound),
            _ => plan,
        };
        let catch_up = if wait.is_some() { CatchUp::Wait } else { CatchUp::Primary };
        let ryw = Consistency::ReadYourWrites(token);
        let plan = self
            .routing
            .plan_in(snap.clone(), &rc.with_consistency(&ryw).with_catch_up(catch_up))?;
        let Consistency::ReadYourWrites(token) = ryw else { return Ok(plan) };
        let mut plan = bounded(plan);
        let behind = matches!(plan.route_reason(), RouteReason::AwaitCatchUp)
            || matches!(plan.route_reason(), RouteReason::NotCaughtUp)
            || plan.on_primary();
        if behind {
            // No sample shows a replica with the write; a catch-up wait may have proven one.
            let rather = (plan.route_reason() == RouteReason::AwaitCatchUp).then(|| plan.first());
            if let Some(r) = self.routing.proven_replica(snap.topology(), &token, rather) {
                self.counters.read_your_writes(Ryw::Replica);
                let proven = self.routing.plan_in(snap, &rc.with_target(Target::Node(r)))?;
                return Ok(bounded(proven.with_reason(Why::ProvenReplica)));
            }
            // The replicas' feeds show the next reads which have it (each until it has it).
            self.want_replayed(&token);
        }
        match plan.route_reason() {
            RouteReason::AwaitCatchUp => {
                let lag = snap.topology().node(plan.first()).map(rwsplit_core::Node::lag);
                match wait {
                    // Known to be further behind than the wait allows: the primary at once.
                    Some(max) if lag.is_some_and(|l| too_far(&l, max)) => {
                        self.counters.read_your_writes(Ryw::Primary);
                        let primary =
                            self.routing.plan_in(snap, &rc.with_target(Target::Primary))?;
                        plan = primary.with_reason(Why::Router(RouteReason::NotCaughtUp));
                    }
                    Some(max) => plan = plan.with_wait(token, max),
                    None => {}
                }
            }
            _ if behind => self.counters.read_your_writes(Ryw::Primary),
            _ => self.counters.read_your_writes(Ryw::Replica),
        }
        Ok(plan)
    }

    /// Where a transaction with this configuration begins: a read-only one (not SERIALIZABLE on
    /// PostgreSQL) may use a replica that has the caller's writes, everything else uses the
    /// primary. No I/O, like [`plan`](Self::plan).
    pub(super) fn plan_transaction(
        &self,
        isolation: Option<IsolationLevel>,
        access: Option<AccessMode>,
        ctx: &Ctx<'_>,
        scope: &Scope,
        done: Done,
    ) -> Result<Planned, DbErr> {
        let now = Instant::now();
        self.note_use(now);
        let read_only = access == Some(AccessMode::ReadOnly);
        let serializable_pg = isolation == Some(IsolationLevel::Serializable)
            && self.product.replicas_refuse_serializable();
        if !read_only || serializable_pg {
            let ctx = RouteContext::for_access(Access::Write, now)
                .with_transaction(Transaction::ReadWrite);
            return Ok(Planned::Ready(self.plan_ctx(&ctx)?.with_reason(Why::Transaction)));
        }
        let mut rc =
            RouteContext::for_access(Access::Read, now).with_transaction(Transaction::ReadOnly);
        let level = ctx.consistency.unwrap_or(&self.policy.consistency);
        if matches!(level, Consistency::BoundedStaleness(_)) {
            self.want_positions();
        }
        if let Ok(target) = SCOPE.try_with(|t| *t) {
            return self.plan_ctx(&rc.with_target(target)).map(Planned::Ready);
        }
        if matches!(level, Consistency::Strong) || !self.policy.read_your_writes {
            return self.plan_ctx(&rc.with_consistency(level)).map(Planned::Ready);
        }
        let explicit = match level {
            Consistency::ReadYourWrites(t) => Some(t),
            _ => None,
        };
        let snap = self.routing.snap();
        let need = match self.read_need(scope, explicit, None, &snap, done, monotonic(level)) {
            Ok(need) => need,
            Err(io) => return Ok(Planned::Io(io)),
        };
        match need {
            Need::Nothing => self.plan_fresh(snap, &rc, level),
            Need::Primary => self.routing.plan_in(snap, &rc.with_target(Target::Primary)),
            Need::Stay { node, token } => {
                return self.plan_stay(snap, rc, level, node, token.as_ref(), None, done);
            }
            Need::Token(token) => {
                // No catch-up wait for a transaction: it goes where the token is satisfied.
                rc = rc.with_catch_up(CatchUp::Primary);
                let no_wait = Ctx { wait: Some(None), ..*ctx };
                self.plan_with_token(snap, rc, level, token, &no_wait)
            }
        }
        .map(Planned::Ready)
    }
}

/// Whether a replica whose monitor-measured lag is `lag` is known to be further behind than a
/// catch-up wait of `max` could make up: then the read goes to the primary at once rather than
/// wait in vain.
fn too_far(lag: &rwsplit_core::Lag, max: Duration) -> bool {
    lag.time().is_some_and(|t| t > max)
}

/// What planning gives: a plan, or an I/O step to do before planning again.
#[derive(Debug)]
pub(super) enum Planned {
    /// Where it goes.
    Ready(Plan),
    /// Do this first, note it in [`Done`], and plan again.
    Io(Io),
}

/// An I/O step a read-your-writes read's plan needs first; the executor does it
/// ([`Inner::planned`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Io {
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
pub(super) struct Done {
    /// It waited for the scope's captures in flight.
    pub(super) settled: bool,
    /// It read the primary's position: `true` if that worked.
    pub(super) captured: Option<bool>,
    /// It waited for a sample bounding the scope's last read, or read the primary's position
    /// for it.
    pub(super) floored: bool,
}

/// The next step for a read in a scope whose state is `slot`, with the caller's own token
/// `explicit`, the catch-up wait `wait`, and whether the primary is marked down (asked only
/// for a held token). Pure: no I/O, no clock, no lock.
///
/// - A write's position still being read (in flight): the primary, or — if the caller would
///   rather wait for a replica — wait for it first, once.
/// - A pending scope, or a held token while the primary is up: read the primary's position
///   first, once. If that fails, a pending scope reads from the primary; a held token is used
///   as it came.
/// - Then the scope's token merged with the caller's and with `floor`, the bound of what the
///   scope has read (monotonic reads), if any; if that bound is not known yet, the node of
///   the last read (or the primary), still with the token.
fn next_step(
    slot: &Slot,
    explicit: Option<&CausalToken>,
    floor: Option<Floor>,
    wait: Option<Duration>,
    primary_down: impl FnOnce() -> bool,
    done: Done,
) -> Step {
    if slot.inflight > 0 {
        return match wait {
            Some(max) if !done.settled => Step::Settle(max),
            _ => Step::Need(Need::Primary),
        };
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

    use rwsplit_core::NodeId;

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
        assert_eq!(next_step(&s, None, None, wait, || false, d), want);
    }

    #[test]
    fn a_held_token_is_not_checked_while_the_primary_is_down() {
        let s = slot(0, false, None, Some(U));
        assert_eq!(
            next_step(&s, None, None, None, || true, Done::default()),
            Step::Need(Need::Token(token(U)))
        );
    }

    #[test]
    fn the_callers_token_is_merged_with_the_scopes() {
        let s = slot(0, false, Some(T), None);
        let want = token(T).merged(&token(U));
        assert_eq!(
            next_step(&s, Some(&token(U)), None, None, || false, Done::default()),
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
        assert_eq!(next_step(&s, None, floor, None, || false, d), want);
    }
}
