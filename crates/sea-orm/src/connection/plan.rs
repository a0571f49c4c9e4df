//! Planning: where a statement or a transaction goes. The SQL is classified; then an explicit
//! [scope](RoutedConnection::scope) or hint, the consistency level and the caller's
//! read-your-writes need decide what the core router is asked. Nothing is sent here except the
//! primary's position, when a scope's is pending.

use std::time::{Duration, Instant};

use rwsplit_core::{
    Access, CatchUp, CausalToken, Classification, Consistency, RouteContext, RouteReason, Target,
    Transaction,
};
use sea_orm::{AccessMode, DbErr, IsolationLevel};

use super::inner::{Ctx, RoutedConnection, SCOPE, Scope, bump};
use crate::route::Plan;
use crate::telemetry::Ryw;

/// What a read needs from the primary's history.
enum Need {
    Nothing,
    Token(CausalToken),
    /// The scope wrote but its position is unknown and could not be read: the primary.
    Primary,
}

impl RoutedConnection {
    pub(super) fn classify<'s>(&self, sql: &'s str) -> Classification<'s> {
        self.inner.classifier.explain(sql, self.inner.dialect)
    }

    pub(super) fn plan_ctx(&self, ctx: &RouteContext<'_>) -> Result<Plan, DbErr> {
        self.inner.routing.plan(ctx)
    }

    /// A plan for `access` on the primary, whatever the SQL would allow (`execute*`: no rows
    /// come back, so a replica is never worth it).
    pub(super) fn plan_on_primary(
        &self,
        access: Access,
        reason: &'static str,
    ) -> Result<Plan, DbErr> {
        let rc = RouteContext::for_access(access, Instant::now()).with_target(Target::Primary);
        Ok(self.plan_ctx(&rc)?.with_reason(reason))
    }

    /// What a read in `scope` needs: nothing, a token, or the primary (position unknown).
    async fn read_need(
        &self,
        scope: &Scope,
        explicit: Option<&CausalToken>,
        wait: Option<Duration>,
    ) -> Need {
        let mut slot = self.scope_get(scope);
        if slot.inflight > 0 {
            // A write's position is on its way. A caller who would rather wait for a replica
            // waits for it first; otherwise no replica can have that write yet: the primary.
            let Some(max) = wait else { return Need::Primary };
            slot = self.settled_slot(scope, max).await;
            if slot.inflight > 0 {
                return Need::Primary;
            }
        }
        let mut token = slot.with_external();
        // A token held from outside is lowered to the primary's position, unless the primary
        // is down or does not answer: then it is used as it came.
        let verify = slot.external.is_some()
            && self.inner.routing.health(self.primary_index()) != rwsplit_core::Health::Down;
        if slot.pending || verify {
            let epoch = slot.pending_epoch;
            match self.capture_on(self.primary_index()).await {
                Ok(t) => {
                    self.scope_update(scope, |s| s.settle(&t, epoch));
                    let mut mine = slot;
                    mine.settle(&t, epoch);
                    token = mine.token;
                }
                Err(_) if !slot.pending => {}
                Err(_) => return Need::Primary,
            }
        }
        match (token, explicit) {
            (Some(t), Some(e)) => Need::Token(t.merged(e)),
            (Some(t), None) => Need::Token(t),
            (None, Some(e)) => Need::Token(e.clone()),
            (None, None) => Need::Nothing,
        }
    }

    /// The catch-up wait a read may do: the call's, else the connection's default.
    fn wait_of(&self, ctx: &Ctx<'_>) -> Option<Duration> {
        ctx.wait.unwrap_or(self.inner.policy.wait_for_replica).filter(|d| !d.is_zero())
    }

    /// Where a statement goes: classified, then the explicit scope, the consistency level with
    /// the caller's read-your-writes token, and the router.
    pub(super) async fn plan(
        &self,
        sql: &str,
        ctx: &Ctx<'_>,
        scope: &Scope,
    ) -> Result<Plan, DbErr> {
        let c = self.classify(sql);
        let now = Instant::now();
        let mut rc = RouteContext::new(&c, now).with_statement(sql, self.inner.dialect);
        let target = SCOPE.try_with(|t| *t).ok();
        if let Some(target) = target {
            rc = rc.with_target(target);
        }
        let level = ctx.consistency.unwrap_or(&self.inner.policy.consistency);
        let explicit_token = match level {
            Consistency::ReadYourWrites(t) => Some(t),
            _ => None,
        };
        let overridden = target.is_some() || c.hint().is_some();
        if c.access() == Access::Write
            || overridden
            || matches!(level, Consistency::Strong)
            || (!self.inner.policy.read_your_writes && explicit_token.is_none())
            || (self.inner.nodes.count() == 1 && explicit_token.is_none())
        {
            return self.plan_ctx(&rc.with_consistency(level));
        }
        match self.read_need(scope, explicit_token, self.wait_of(ctx)).await {
            Need::Nothing => self.plan_ctx(&rc.with_consistency(level)),
            Need::Primary => {
                self.inner.counters.read_your_writes(Ryw::Primary);
                let plan = self.plan_ctx(&rc.with_target(Target::Primary))?;
                Ok(plan.with_reason("read right after a write"))
            }
            Need::Token(token) => self.plan_with_token(rc, level, token, ctx),
        }
    }

    /// A read-your-writes read: replicas known to have replayed `token`, or (if the caller
    /// waits) the closest one, or the primary. A bounded-staleness level still applies its bound
    /// to the replicas that qualify.
    fn plan_with_token(
        &self,
        rc: RouteContext<'_>,
        level: &Consistency,
        token: CausalToken,
        ctx: &Ctx<'_>,
    ) -> Result<Plan, DbErr> {
        let wait = self.wait_of(ctx);
        if self.inner.routing.foreign(&token) {
            self.inner.counters.read_your_writes(Ryw::Primary);
            bump(&self.inner.counters.foreign_tokens);
            tracing::info!(target: "rwsplit", token = %token, "read-your-writes token is from another history than the primary's (a failover?): no replica can prove it has the write; reading from the primary");
            let plan = self.plan_ctx(&rc.with_target(Target::Primary))?;
            return Ok(plan.with_reason("token from another history"));
        }
        let catch_up = if wait.is_some() { CatchUp::Wait } else { CatchUp::Primary };
        let ryw = Consistency::ReadYourWrites(token);
        let mut plan = self.plan_ctx(&rc.with_consistency(&ryw).with_catch_up(catch_up))?;
        let Consistency::ReadYourWrites(token) = ryw else { return Ok(plan) };
        if let Consistency::BoundedStaleness(bound) = level {
            plan = self.inner.routing.exclude_lagging(plan, bound);
        }
        match plan.route_reason() {
            RouteReason::AwaitCatchUp => {
                if let Some(max) = wait {
                    plan = plan.with_wait(token, max);
                }
            }
            RouteReason::NotCaughtUp => self.inner.counters.read_your_writes(Ryw::Primary),
            _ if plan.on_primary() => self.inner.counters.read_your_writes(Ryw::Primary),
            _ => self.inner.counters.read_your_writes(Ryw::Replica),
        }
        Ok(plan)
    }

    /// Where a transaction with this configuration begins: a read-only one (not SERIALIZABLE on
    /// PostgreSQL) may use a replica that has the caller's writes, everything else uses the
    /// primary.
    pub(super) async fn plan_transaction(
        &self,
        isolation: Option<IsolationLevel>,
        access: Option<AccessMode>,
        ctx: &Ctx<'_>,
        scope: &Scope,
    ) -> Result<Plan, DbErr> {
        let now = Instant::now();
        let read_only = access == Some(AccessMode::ReadOnly);
        let serializable_pg = isolation == Some(IsolationLevel::Serializable)
            && self.inner.product.replicas_refuse_serializable();
        if !read_only || serializable_pg {
            let ctx = RouteContext::for_access(Access::Write, now)
                .with_transaction(Transaction::ReadWrite);
            return Ok(self.plan_ctx(&ctx)?.with_reason("transaction"));
        }
        let mut rc =
            RouteContext::for_access(Access::Read, now).with_transaction(Transaction::ReadOnly);
        let level = ctx.consistency.unwrap_or(&self.inner.policy.consistency);
        if let Ok(target) = SCOPE.try_with(|t| *t) {
            return self.plan_ctx(&rc.with_target(target));
        }
        if matches!(level, Consistency::Strong) || !self.inner.policy.read_your_writes {
            return self.plan_ctx(&rc.with_consistency(level));
        }
        let explicit = match level {
            Consistency::ReadYourWrites(t) => Some(t),
            _ => None,
        };
        match self.read_need(scope, explicit, None).await {
            Need::Nothing => self.plan_ctx(&rc.with_consistency(level)),
            Need::Primary => self.plan_ctx(&rc.with_target(Target::Primary)),
            Need::Token(token) => {
                // No catch-up wait for a transaction: it goes where the token is satisfied.
                rc = rc.with_catch_up(CatchUp::Primary);
                let no_wait = Ctx { wait: Some(None), ..*ctx };
                self.plan_with_token(rc, level, token, &no_wait)
            }
        }
    }
}
