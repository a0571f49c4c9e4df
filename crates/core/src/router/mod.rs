//! The routing decision: which node runs a statement, and where to go if it fails.

mod context;
mod rules;

#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Instant;

use crate::route::{Excluded, PrimaryExcluded, Route, RouteError, RouteReason};
pub use context::{CatchUp, RouteContext, Target, Transaction};
pub use rules::{Rule, RuleAction, TableRule, TagRule};

use crate::balance::{Balancer, RoundRobin, ZonePreference, partition};
use crate::classify::{Access, Hint};
use crate::consistency::{Consistency, LagBound, Staleness};
use crate::health::Health;
use crate::node_id::MAX_NODES;
use crate::role::Role;
use crate::token::{CausalToken, PgPosition, ReplayPosition};
use crate::topology::{Node, Primary, Topology};

/// When reads that a replica could serve may use the primary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PrimaryReads {
    /// Never: with no eligible replica an eventual or bounded read fails with
    /// [`RouteError::NoEligibleNode`]. Reads that need the primary (strong, read-your-writes
    /// not caught up, overrides, transactions) still go there.
    Never,
    /// Only when no replica is eligible, and as the last fallback (PgDog's
    /// `include_primary_if_replica_banned`). The default.
    #[default]
    Fallback,
    /// The primary is balanced together with the replicas (PgDog's `include_primary`).
    Include,
}

/// Configuration of a [`Router`].
///
/// ```
/// use std::time::Duration;
/// use rwsplit_core::{PowerOfTwoEwma, PrimaryReads, Router, RouterConfig, Staleness, TableRule, ZonePreference};
/// let router = Router::new(
///     RouterConfig::default()
///         .balancer(ZonePreference::new("eu-west-1a", PowerOfTwoEwma::default()))
///         .rule(TableRule::only_tagged(["events"], "analytics"))
///         .dedicated_tag("analytics")
///         .primary_reads(PrimaryReads::Fallback)
///         .max_replica_lag(Staleness::time(Duration::from_secs(30)))
///         .read_only_transactions_on_replicas(true),
/// );
/// # let _ = router;
/// ```
#[non_exhaustive]
pub struct RouterConfig {
    balancer: Box<dyn Balancer>,
    rules: Vec<Box<dyn Rule>>,
    primary_reads: PrimaryReads,
    read_only_transactions_on_replicas: bool,
    max_replica_lag: Option<Staleness>,
    dedicated_tags: Vec<Box<str>>,
    /// Which of the single-valued settings a setter gave ([`RouterConfig::merge`]).
    set: u8,
}

/// The bits of [`RouterConfig`]'s `set`.
const SET_BALANCER: u8 = 1;
const SET_PRIMARY_READS: u8 = 2;
const SET_READ_ONLY_TRANSACTIONS: u8 = 4;
const SET_MAX_REPLICA_LAG: u8 = 8;

impl Default for RouterConfig {
    /// Round robin, no rules, primary as read fallback, read-only transactions on replicas,
    /// no lag limit beyond each read's consistency.
    fn default() -> Self {
        Self {
            balancer: Box::new(RoundRobin::default()),
            rules: Vec::new(),
            primary_reads: PrimaryReads::Fallback,
            read_only_transactions_on_replicas: true,
            max_replica_lag: None,
            dedicated_tags: Vec::new(),
            set: 0,
        }
    }
}

impl fmt::Debug for RouterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouterConfig")
            .field("balancer", &self.balancer)
            .field("rules", &self.rules)
            .field("primary_reads", &self.primary_reads)
            .field("read_only_transactions_on_replicas", &self.read_only_transactions_on_replicas)
            .field("max_replica_lag", &self.max_replica_lag)
            .field("dedicated_tags", &self.dedicated_tags)
            .finish()
    }
}

impl RouterConfig {
    /// The balancer choosing among eligible replicas.
    #[must_use]
    pub fn balancer(mut self, balancer: impl Balancer + 'static) -> Self {
        self.balancer = Box::new(balancer);
        self.set |= SET_BALANCER;
        self
    }

    /// Adds a rule, tried after the ones added before.
    #[must_use]
    pub fn rule(mut self, rule: impl Rule + 'static) -> Self {
        self.rules.push(Box::new(rule));
        self
    }

    /// When reads may use the primary.
    #[must_use]
    pub fn primary_reads(mut self, primary_reads: PrimaryReads) -> Self {
        self.primary_reads = primary_reads;
        self.set |= SET_PRIMARY_READS;
        self
    }

    /// Whether read-only transactions may run on a replica (default true).
    #[must_use]
    pub fn read_only_transactions_on_replicas(mut self, allow: bool) -> Self {
        self.read_only_transactions_on_replicas = allow;
        self.set |= SET_READ_ONLY_TRANSACTIONS;
        self
    }

    /// Excludes replicas whose *known* lag exceeds `bound` from every read (a lag ban; unknown
    /// lag does not exclude). The ban uses the lag as last measured, not its growth since: a
    /// replica is not banned because news of the primary stopped (eventual reads go on through
    /// a switchover). Per-read bounds come from [`Consistency::BoundedStaleness`], which do count
    /// that growth ([`Staleness::allows_at`]).
    #[must_use]
    pub fn max_replica_lag(mut self, bound: Staleness) -> Self {
        self.max_replica_lag = Some(bound);
        self.set |= SET_MAX_REPLICA_LAG;
        self
    }

    /// Reserves replicas tagged `tag` for reads a rule sends to that tag: other reads skip them.
    #[must_use]
    pub fn dedicated_tag(mut self, tag: impl Into<Box<str>>) -> Self {
        self.dedicated_tags.push(tag.into());
        self
    }

    /// `later` over this configuration: each single-valued setting `later` was given (its
    /// balancer, primary reads, read-only transactions, lag limit) replaces this one's, the
    /// others keep this one's; `later`'s rules are tried after this one's and its dedicated tags
    /// are added. So a configuration built in two places (a file's settings, then rules added
    /// in code) loses nothing:
    ///
    /// ```
    /// use rwsplit_core::{PowerOfTwoEwma, RouterConfig, TableRule};
    /// let from_file = RouterConfig::default().balancer(PowerOfTwoEwma::default());
    /// let merged = from_file.merge(RouterConfig::default().rule(TableRule::only_tagged(["events"], "analytics")));
    /// let shown = format!("{merged:?}");
    /// assert!(shown.contains("PowerOfTwoEwma") && shown.contains("analytics"));
    /// ```
    ///
    /// A zone preference counts as a setting of its own, as a file's `prefer_zone` is a key
    /// of its own beside `balancer`: when this configuration prefers a zone
    /// ([`ZonePreference`]) and `later`'s balancer prefers none, `later`'s balancer is kept
    /// inside that zone preference instead of dropping it. A `later` balancer with a zone
    /// preference of its own replaces this one whole.
    ///
    /// ```
    /// use rwsplit_core::{LeastOutstanding, RoundRobin, RouterConfig, ZonePreference};
    /// let from_file = RouterConfig::default().balancer(ZonePreference::new("eu-west-1a", RoundRobin::default()));
    /// let merged = from_file.merge(RouterConfig::default().balancer(LeastOutstanding::default()));
    /// assert_eq!(merged.balancer_value().preferred_zone(), Some("eu-west-1a"));
    /// assert!(format!("{merged:?}").contains("LeastOutstanding"));
    /// ```
    #[must_use]
    pub fn merge(mut self, later: RouterConfig) -> Self {
        let given = |bit: u8| later.set & bit != 0;
        if given(SET_BALANCER) {
            let zone: Option<Box<str>> = self.balancer.preferred_zone().map(Into::into);
            self.balancer = match zone {
                Some(zone) if later.balancer.preferred_zone().is_none() => {
                    Box::new(ZonePreference::new(zone, later.balancer))
                }
                _ => later.balancer,
            };
        }
        if given(SET_PRIMARY_READS) {
            self.primary_reads = later.primary_reads;
        }
        if given(SET_READ_ONLY_TRANSACTIONS) {
            self.read_only_transactions_on_replicas = later.read_only_transactions_on_replicas;
        }
        if given(SET_MAX_REPLICA_LAG) {
            self.max_replica_lag = later.max_replica_lag;
        }
        self.rules.extend(later.rules);
        for tag in later.dedicated_tags {
            if !self.dedicated_tags.contains(&tag) {
                self.dedicated_tags.push(tag);
            }
        }
        self.set |= later.set;
        self
    }

    /// The lag bound set by [`max_replica_lag`](Self::max_replica_lag), if any.
    #[must_use]
    pub fn max_replica_lag_value(&self) -> Option<Staleness> {
        self.max_replica_lag
    }

    /// Its balancer.
    #[must_use]
    pub fn balancer_value(&self) -> &dyn Balancer {
        &*self.balancer
    }
}

/// Chooses the node for each statement.
///
/// # Rules, in order
///
/// 1. A write (anything [`classify`](crate::classify) cannot prove to be a read) goes to the
///    primary. Always: no override, hint or rule sends a write to a replica.
/// 2. Inside a read-write transaction: the primary. A read-only transaction may use a replica
///    ([`RouterConfig::read_only_transactions_on_replicas`], on by default).
/// 3. [`Target::Primary`] or a `/*rwsplit:primary*/` hint: the primary.
/// 4. Rules ([`Rule`]), in order: the first that matches may send the read to the primary or
///    restrict it to a tagged group of replicas.
/// 5. [`Target::Node`]: that node.
/// 6. [`Consistency::Strong`]: the primary — unless [`Target::Replica`] or a
///    `/*rwsplit:replica*/` hint asks for a replica. An explicit request for a replica wins
///    over every consistency level, for reads: the caller accepts staleness knowingly.
/// 7. Otherwise a replica: `Down` replicas are excluded, `Suspect` ones come after every `Up`
///    one, replicas whose known lag exceeds [`RouterConfig::max_replica_lag`] are excluded,
///    then the consistency level filters: [`Consistency::BoundedStaleness`] keeps replicas
///    whose known lag is within the bound, [`Consistency::ReadYourWrites`] keeps replicas whose
///    known position satisfies the token. The balancer orders what is left: the first is the
///    target, the rest the fallbacks, with the primary last (see [`PrimaryReads`]).
/// 8. No replica left: for read-your-writes, the route says so — the primary, with the closest
///    replica recorded as [`Route::wait_candidate`], or that replica as the target if the
///    caller asked to wait ([`CatchUp::Wait`]). Otherwise the primary
///    ([`RouteReason::NoEligibleReplica`]), unless [`PrimaryReads::Never`].
///
/// A route that needs the primary fails with [`RouteError::NoPrimary`] when no node claims the
/// role and with [`RouteError::SplitBrain`] when several do, rather than guess.
///
/// The decision allocates nothing: candidates live in a fixed array on the stack and the
/// [`Route`] carries its fallbacks inline.
///
/// # Example
///
/// ```
/// use std::time::Instant;
/// use rwsplit_core::{Consistency, Dialect, Node, NodeId, Role, RouteContext, RouteReason, Router, Topology, explain};
///
/// let topology = Topology::builder()
///     .node(Node::builder(NodeId::new(0), Role::Primary).build())
///     .node(Node::builder(NodeId::new(1), Role::Replica).build())
///     .node(Node::builder(NodeId::new(2), Role::Replica).build())
///     .build()?;
/// let router = Router::default();
/// let now = Instant::now();
///
/// let read = explain(r#"SELECT "id" FROM "user""#, Dialect::Postgres);
/// let route = router.route(&topology, &RouteContext::new(&read, now))?;
/// assert!(!route.is_primary());
/// assert_eq!(route.fallbacks().last(), Some(&NodeId::new(0))); // the primary, last
///
/// let write = explain(r#"UPDATE "user" SET "name" = $1"#, Dialect::Postgres);
/// let route = router.route(&topology, &RouteContext::new(&write, now))?;
/// assert_eq!((route.target(), route.reason()), (NodeId::new(0), RouteReason::Write));
///
/// let strong = Consistency::Strong;
/// let route = router.route(&topology, &RouteContext::new(&read, now).with_consistency(&strong))?;
/// assert!(route.is_primary());
/// # Ok::<(), rwsplit_core::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Router {
    config: RouterConfig,
}

/// A replica's eligibility check, decided once per read.
#[derive(Clone, Copy)]
enum Check<'c> {
    /// Every replica.
    Any,
    /// Known lag within the bound.
    Lag(LagBound),
    /// Known position satisfies the token.
    Token(&'c CausalToken),
    /// The same for a PostgreSQL token: one history, one LSN comparison.
    PgToken(&'c PgPosition),
    /// [`Router::eligible`].
    Full,
}

/// Which replicas a rule allows.
#[derive(Clone, Copy)]
enum Group<'r> {
    Any,
    Only(&'r str),
    Prefer(&'r str),
}

impl Router {
    /// A router with `config`.
    #[must_use]
    pub fn new(config: RouterConfig) -> Self {
        Self { config }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// Whether its balancer reads the nodes' latency estimates ([`Balancer::uses_latency`]):
    /// if not, callers need not record each statement's round trip.
    #[must_use]
    pub fn uses_latency(&self) -> bool {
        self.config.balancer.uses_latency()
    }

    /// Decides where the statement described by `ctx` runs, given `topology`.
    ///
    /// # Errors
    ///
    /// [`RouteError::NoPrimary`] or [`RouteError::SplitBrain`] when the statement needs the
    /// primary and there is not exactly one; [`RouteError::NoEligibleNode`] when a read has no
    /// node at all; [`RouteError::UnknownNode`] when [`Target::Node`] names an absent node.
    pub fn route(&self, topology: &Topology, ctx: &RouteContext<'_>) -> Result<Route, RouteError> {
        if ctx.access() == Access::Write {
            return primary(topology, RouteReason::Write);
        }
        match ctx.transaction() {
            Transaction::ReadWrite => return primary(topology, RouteReason::Transaction),
            Transaction::ReadOnly if !self.config.read_only_transactions_on_replicas => {
                return primary(topology, RouteReason::Transaction);
            }
            _ => {}
        }
        if ctx.target() == Some(Target::Primary) || ctx.hint() == Some(Hint::Primary) {
            return primary(topology, RouteReason::PrimaryRequested);
        }
        let mut group = Group::Any;
        for rule in &self.config.rules {
            if let Some(action) = rule.route(ctx) {
                group = match action {
                    RuleAction::Primary => return primary(topology, RouteReason::Rule),
                    RuleAction::OnlyTagged(t) => Group::Only(t),
                    RuleAction::PreferTagged(t) => Group::Prefer(t),
                };
                break;
            }
        }
        if let Some(Target::Node(id)) = ctx.target() {
            let node = topology.node(id).ok_or(RouteError::UnknownNode { id })?;
            let mut route = Route::new(id, node.role(), RouteReason::NodeRequested);
            if let Some(p) = topology.primary() {
                route.push_fallback(p.id());
            }
            return Ok(route);
        }
        let explicit = ctx.target() == Some(Target::Replica) || ctx.hint() == Some(Hint::Replica);
        let consistency = if explicit { &Consistency::Eventual } else { ctx.consistency() };
        if matches!(consistency, Consistency::Strong) {
            return primary(topology, RouteReason::Strong);
        }
        self.route_read(topology, ctx, consistency, group, explicit)
    }

    fn route_read(
        &self,
        topology: &Topology,
        ctx: &RouteContext<'_>,
        consistency: &Consistency,
        group: Group<'_>,
        explicit: bool,
    ) -> Result<Route, RouteError> {
        let nodes = topology.nodes();
        let Some(first) = nodes.first() else {
            return Err(self.no_eligible(topology, consistency, group, ctx.now()));
        };
        let mut buf: [&Node; MAX_NODES] = [first; MAX_NODES];
        let include_primary =
            self.config.primary_reads == PrimaryReads::Include && topology.primary().is_some();

        // The common configuration (no tag groups, no lag ban) decides eligibility from the
        // consistency level alone: check that once, not per replica.
        let plain = matches!(group, Group::Any)
            && self.config.dedicated_tags.is_empty()
            && self.config.max_replica_lag.is_none();
        let check = match consistency {
            Consistency::Eventual | Consistency::Session if plain => Check::Any,
            Consistency::BoundedStaleness(s) if plain => Check::Lag(LagBound::new(s)),
            Consistency::ReadYourWrites(token) if plain => match token.position() {
                ReplayPosition::Postgres(t) => Check::PgToken(t),
                _ => Check::Token(token),
            },
            _ => Check::Full,
        };
        // Up replicas first, then suspect ones (a second pass only if there are any). One
        // loop per check, so that each loop tests its own condition only.
        let (up, len, primary_included) = match check {
            Check::Any => gather(nodes, &mut buf, include_primary, |_| true),
            Check::Lag(bound) => {
                let now = ctx.now();
                gather(nodes, &mut buf, include_primary, |n| bound.allows_at(&n.lag(), now))
            }
            Check::Token(token) => gather(nodes, &mut buf, include_primary, |n| {
                n.position().is_some_and(|p| token.is_satisfied_by(p))
            }),
            Check::PgToken(t) => gather(
                nodes,
                &mut buf,
                include_primary,
                |n| matches!(n.position(), Some(ReplayPosition::Postgres(r)) if t.is_reached_by(r)),
            ),
            Check::Full => gather(nodes, &mut buf, include_primary, |n| {
                self.eligible(n, consistency, group, ctx.now())
            }),
        };

        if len == 0 {
            return self.no_replica(topology, ctx, consistency, group);
        }
        let now = ctx.now();
        let Some(up_slice) = buf.get_mut(..up) else {
            return Err(self.no_eligible(topology, consistency, group, now));
        };
        let preferred = match group {
            Group::Prefer(tag) => partition(up_slice, |n| n.has_tag(tag)),
            _ => up_slice.len(),
        };
        // Through the balancer's vtable at once (`Box`'s own impl would only pass it on).
        if let Some(slice) = up_slice.get_mut(..preferred).filter(|s| !s.is_empty()) {
            (*self.config.balancer).order(slice, now);
        } else if !up_slice.is_empty() {
            (*self.config.balancer).order(up_slice, now);
        }

        let Some(target) = buf.first().filter(|_| len > 0) else {
            return Err(self.no_eligible(topology, consistency, group, now));
        };
        let reason = if target.role() == Role::Primary {
            RouteReason::PrimaryBalanced
        } else if explicit {
            RouteReason::ReplicaRequested
        } else if matches!(consistency, Consistency::ReadYourWrites(_)) {
            RouteReason::CaughtUp
        } else {
            RouteReason::Balanced
        };
        // Candidates are distinct nodes, so none of the others is the target.
        let mut route = Route::with_fallbacks(
            target.id(),
            target.role(),
            reason,
            buf.get(1..len).unwrap_or_default().iter().map(|n| n.id()),
        );
        if !primary_included
            && let Some(p) = topology.primary()
            && self.primary_may_serve(consistency, explicit)
        {
            route.push_fallback(p.id());
        }
        Ok(route)
    }

    /// Whether the primary may be a fallback of a read.
    fn primary_may_serve(&self, consistency: &Consistency, explicit: bool) -> bool {
        self.config.primary_reads != PrimaryReads::Never
            || (!explicit && matches!(consistency, Consistency::ReadYourWrites(_)))
    }

    /// Whether replica `node` may serve a read with `consistency` under `group`.
    #[inline(never)]
    fn eligible(
        &self,
        node: &Node,
        consistency: &Consistency,
        group: Group<'_>,
        now: Instant,
    ) -> bool {
        match group {
            Group::Only(tag) if !node.has_tag(tag) => return false,
            _ => {}
        }
        for dedicated in &self.config.dedicated_tags {
            let chosen = match group {
                Group::Only(t) | Group::Prefer(t) => t == &**dedicated,
                Group::Any => false,
            };
            if !chosen && node.has_tag(dedicated) {
                return false;
            }
        }
        if self.config.max_replica_lag.is_some_and(|b| b.exceeded_by(&node.lag())) {
            return false;
        }
        match consistency {
            Consistency::BoundedStaleness(s) => s.allows_at(&node.lag(), now),
            Consistency::ReadYourWrites(token) => {
                node.position().is_some_and(|p| token.is_satisfied_by(p))
            }
            _ => true,
        }
    }

    /// No replica is eligible: decide between waiting, the primary and failing.
    fn no_replica(
        &self,
        topology: &Topology,
        ctx: &RouteContext<'_>,
        consistency: &Consistency,
        group: Group<'_>,
    ) -> Result<Route, RouteError> {
        if let Consistency::ReadYourWrites(token) = consistency {
            // The replica closest to the token, among those otherwise eligible; Up before Suspect.
            let mut best: Option<(&Node, (bool, u64))> = None;
            for node in topology.replicas() {
                if !node.serves_reads()
                    || !self.eligible(node, &Consistency::Eventual, group, ctx.now())
                {
                    continue;
                }
                let Some(short) = node.position().and_then(|p| token.shortfall(p)) else {
                    continue;
                };
                let key = (node.health() != Health::Up, short);
                if best.is_none_or(|(_, k)| key < k) {
                    best = Some((node, key));
                }
            }
            let candidate = best.map(|(n, _)| n);
            if ctx.catch_up() == CatchUp::Wait
                && let Some(n) = candidate
            {
                let mut route = Route::new(n.id(), n.role(), RouteReason::AwaitCatchUp);
                route.set_wait_candidate(Some(n.id()));
                if let Some(p) = topology.primary() {
                    route.push_fallback(p.id());
                }
                return Ok(route);
            }
            let mut route = primary(topology, RouteReason::NotCaughtUp)?;
            route.set_wait_candidate(candidate.map(Node::id));
            return Ok(route);
        }
        if self.config.primary_reads == PrimaryReads::Never
            || topology.primary_state() == Primary::None
        {
            return Err(self.no_eligible(topology, consistency, group, ctx.now()));
        }
        primary(topology, RouteReason::NoEligibleReplica)
    }

    /// The error of a read no node can take, saying which rule left out each replica and why
    /// the primary could not take it. Off the hot path: only a failing read gets here.
    #[cold]
    #[inline(never)]
    fn no_eligible(
        &self,
        topology: &Topology,
        consistency: &Consistency,
        group: Group<'_>,
        now: Instant,
    ) -> RouteError {
        let mut excluded = Excluded::default();
        let count = |n: &mut u8| *n = n.saturating_add(1);
        for node in topology.replicas() {
            count(&mut excluded.replicas);
            if node.health() == Health::Down {
                count(&mut excluded.down);
                continue;
            }
            if let Group::Only(tag) = group
                && !node.has_tag(tag)
            {
                count(&mut excluded.not_tagged);
                continue;
            }
            let chosen = match group {
                Group::Only(t) | Group::Prefer(t) => Some(t),
                Group::Any => None,
            };
            if self.config.dedicated_tags.iter().any(|d| chosen != Some(&**d) && node.has_tag(d)) {
                count(&mut excluded.dedicated);
                continue;
            }
            if self.config.max_replica_lag.is_some_and(|b| b.exceeded_by(&node.lag())) {
                count(&mut excluded.over_max_lag);
                continue;
            }
            match consistency {
                Consistency::BoundedStaleness(s) if !s.allows_at(&node.lag(), now) => {
                    count(&mut excluded.over_bound);
                }
                Consistency::ReadYourWrites(token)
                    if !node.position().is_some_and(|p| token.is_satisfied_by(p)) =>
                {
                    count(&mut excluded.behind_token);
                }
                _ => {}
            }
        }
        excluded.primary = if topology.primary_state() == Primary::None {
            PrimaryExcluded::NoPrimary
        } else {
            PrimaryExcluded::NotAllowed
        };
        RouteError::NoEligibleNode { excluded }
    }
}

/// Collects the candidates of a read into `buf`: the up replicas that pass `passes` (and the
/// primary if it is balanced with them), then the suspect ones that pass. Returns how many are
/// up, how many in all, and whether the primary is among them.
#[inline(always)]
fn gather<'t>(
    nodes: &'t [Node],
    buf: &mut [&'t Node; MAX_NODES],
    include_primary: bool,
    passes: impl Fn(&Node) -> bool,
) -> (usize, usize, bool) {
    let mut len = 0usize;
    let mut primary_included = false;
    let mut suspects = false;
    for node in nodes {
        let health = node.health();
        let is_primary = node.role() == Role::Primary;
        if is_primary {
            if !(include_primary && health != Health::Down) {
                continue;
            }
        } else if health != Health::Up {
            suspects |= health == Health::Suspect;
            continue;
        } else if !passes(node) {
            continue;
        }
        if let Some(slot) = buf.get_mut(len) {
            *slot = node;
            len += 1;
            primary_included |= is_primary;
        }
    }
    let up = len;
    if suspects {
        for node in nodes {
            if node.role() == Role::Primary || node.health() != Health::Suspect || !passes(node) {
                continue;
            }
            if let Some(slot) = buf.get_mut(len) {
                *slot = node;
                len += 1;
            }
        }
    }
    (up, len, primary_included)
}

/// The primary, or why there is none to use.
fn primary(topology: &Topology, reason: RouteReason) -> Result<Route, RouteError> {
    match topology.primary_state() {
        Primary::One(_) => match topology.primary() {
            Some(p) => Ok(Route::new(p.id(), Role::Primary, reason)),
            None => Err(RouteError::NoPrimary),
        },
        Primary::None => Err(RouteError::NoPrimary),
        Primary::Many(n) => Err(RouteError::SplitBrain { primaries: n }),
    }
}
