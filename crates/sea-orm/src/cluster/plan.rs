//! A statement's plan: the route `rwsplit-core`'s router chose on one topology snapshot (target,
//! then fallbacks), what the statement is and why it goes there ([`Why`], the reason's metric
//! label), and the catch-up wait to do first.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rwsplit_core::{
    Access, CausalToken, Health, InFlight, Node, NodeId, Route, RouteReason, Topology,
};

use crate::consistency::Ran;

/// Where one statement goes: the router's [`Route`] (target, then fallbacks, no heap), what the
/// statement is, and why it goes there; for a read-your-writes read, the nodes a staleness bound
/// excludes and the catch-up wait to do first.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(super) access: Access,
    pub(super) reason: Why,
    /// `db.operation.name`, when the statement was classified (else the attempt finds it).
    pub(super) operation: Option<&'static str>,
    pub(super) route: Route,
    /// Bit `i`: the candidate at index `i` is not to be used (a route names each index once).
    pub(super) excluded: u64,
    /// Boxed: few reads wait, and a plan is carried by every statement's future.
    pub(super) wait: Option<Box<(CausalToken, Duration)>>,
    /// When it was made (the route's own clock reading, reused for its first attempt).
    pub(super) made: Instant,
    /// The snapshot it was made from: its attempts count themselves in flight there and take
    /// the primary from it, so one plan acts on one topology. Its candidates are [`NodeId`]s:
    /// one whose node was removed, its index since given to a newer node, finds nothing in the
    /// adapter's registry (another generation), and is skipped as gone.
    pub(super) topology: Arc<Topology>,
}

/// Why a statement goes where it goes: the core router's reason, or one the adapter decided
/// before or after asking it. [`Why::code`] is the `rwsplit.route.reason` metric label and
/// span field (a stable `snake_case` code), [`Why::as_str`] and `Display` the text of log
/// lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// The router's reason.
    Router(RouteReason),
    /// `execute`: no rows come back, so the primary.
    Execute,
    /// `execute_unprepared`: the same.
    ExecuteUnprepared,
    /// A transaction that may write.
    Transaction,
    /// A read right after a write whose position is not known yet: the primary.
    ReadAfterWrite,
    /// A read-your-writes token from another history than the primary's (a failover).
    ForeignToken,
    /// No replica within the staleness bound has the session's writes.
    OutsideBound,
    /// Monotonic reads: the scope's last read is not bounded by a sample yet, so the read
    /// goes to that read's node again, or the primary.
    LastReadNode,
    /// Read-your-writes: no sample shows a replica with the write yet, but a catch-up wait on
    /// this one proved it a moment ago.
    ProvenReplica,
    /// A read given up on a deposed primary, run once more on the new one.
    MovedToNewPrimary,
    /// A read whose connection to the primary broke, run once more on the same primary once it
    /// answered the monitor again.
    RerunOnPrimary,
    /// A read a replica refused because it writes, run once on the primary as a write.
    RefusedByReplica,
}

impl Why {
    /// Every reason the adapter decides itself (the router's are `RouteReason::ALL`).
    #[cfg(test)]
    pub(crate) const OWN: [Why; 11] = [
        Self::Execute,
        Self::ExecuteUnprepared,
        Self::Transaction,
        Self::ReadAfterWrite,
        Self::ForeignToken,
        Self::OutsideBound,
        Self::LastReadNode,
        Self::ProvenReplica,
        Self::MovedToNewPrimary,
        Self::RerunOnPrimary,
        Self::RefusedByReplica,
    ];

    /// The reason's code: the `rwsplit.route.reason` label value and span field, `snake_case`,
    /// one per reason (the module docs of `telemetry` list them).
    pub(crate) const fn code(self) -> &'static str {
        match self {
            Self::Router(r) => r.code(),
            Self::Execute => "execute",
            Self::ExecuteUnprepared => "execute_unprepared",
            // The router's `Transaction` is the same reason: one code.
            Self::Transaction => "transaction",
            Self::ReadAfterWrite => "read_after_write",
            Self::ForeignToken => "foreign_token",
            Self::OutsideBound => "outside_bound",
            Self::LastReadNode => "last_read_node",
            Self::ProvenReplica => "proven_replica",
            Self::MovedToNewPrimary => "moved_to_new_primary",
            Self::RerunOnPrimary => "rerun_on_primary",
            Self::RefusedByReplica => "refused_by_replica",
        }
    }

    /// The reason's text, for log lines.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Router(r) => r.as_str(),
            Self::Execute => "execute",
            Self::ExecuteUnprepared => "execute_unprepared",
            Self::Transaction => "transaction",
            Self::ReadAfterWrite => "read right after a write",
            Self::ForeignToken => "token from another history",
            Self::OutsideBound => "no replica within the staleness bound has the write",
            Self::LastReadNode => "the last read's node",
            Self::ProvenReplica => "replica proven to have the write",
            Self::MovedToNewPrimary => "moved to the new primary",
            Self::RerunOnPrimary => "run again on the primary after its connection broke",
            Self::RefusedByReplica => "refused by a replica",
        }
    }
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Plan {
    pub(crate) fn route_reason(&self) -> RouteReason {
        self.route.reason()
    }

    /// Wait up to `max` for the first candidate to replay `token` before reading there.
    pub(crate) fn with_wait(mut self, token: CausalToken, max: Duration) -> Plan {
        self.wait = Some(Box::new((token, max)));
        self
    }

    pub(crate) fn wait(&self) -> Option<(&CausalToken, Duration)> {
        self.wait.as_deref().map(|(t, d)| (t, *d))
    }

    pub(crate) fn access(&self) -> Access {
        self.access
    }

    /// Why it goes where it goes.
    pub(crate) fn reason(&self) -> Why {
        self.reason
    }

    pub(crate) fn with_reason(mut self, reason: Why) -> Plan {
        self.reason = reason;
        self
    }

    /// The statement's `db.operation.name`, known from its classification.
    pub(crate) fn with_operation(mut self, operation: &'static str) -> Plan {
        self.operation = Some(operation);
        self
    }

    /// The statement's `db.operation.name`, if known.
    pub(crate) fn operation(&self) -> Option<&'static str> {
        self.operation
    }

    /// When it was made.
    pub(crate) fn made(&self) -> Instant {
        self.made
    }

    /// The primary in the snapshot it was made from, if exactly one node had the role.
    pub(crate) fn snapshot_primary(&self) -> Option<NodeId> {
        self.topology.primary().map(Node::id)
    }

    /// What running this plan on `node` means for monotonic reads
    /// ([`Causality::saw`](crate::consistency::Causality::saw)): `monotonic`, the call's level
    /// keeps them; `ended`, its result is in. With the primary alone in the snapshot there is
    /// no other node to go back in time on.
    pub(crate) fn ran(&self, node: NodeId, monotonic: bool, ended: bool) -> Ran {
        let monotonic_read =
            self.access() == Access::Read && monotonic && self.topology.nodes().len() > 1;
        // Only an ended monotonic read asks for it.
        let on_primary = monotonic_read && ended && self.snapshot_primary() == Some(node);
        Ran { node, monotonic_read, ended, on_primary }
    }

    /// The name of `node` in the plan's snapshot (a node removed since still has it there).
    pub(crate) fn name(&self, node: NodeId) -> Option<&str> {
        self.topology.node(node).map(Node::name)
    }

    /// Counts a statement as in flight on `node` (in the plan's snapshot) until the guard drops.
    pub(crate) fn start(&self, node: NodeId, now: Instant) -> Option<InFlight> {
        self.topology.node(node).map(|n| n.load().start(now))
    }

    /// Statements in flight on `node` in the plan's snapshot.
    pub(crate) fn in_flight(&self, node: NodeId) -> u32 {
        self.topology.node(node).map_or(0, |n| n.load().in_flight())
    }

    /// Whether `node` is marked down in the plan's snapshot.
    pub(crate) fn marked_down(&self, node: NodeId) -> bool {
        self.topology.node(node).is_some_and(|n| n.health() == Health::Down)
    }

    /// The node to try first.
    pub(crate) fn first(&self) -> NodeId {
        self.iter().next().unwrap_or_else(|| self.route.target())
    }

    /// Whether the first node is a primary.
    pub(crate) fn on_primary(&self) -> bool {
        // A plan with exclusions still has a replica first (see `Routing::exclude_lagging`).
        self.excluded == 0 && self.route.is_primary()
    }

    /// The `k`-th candidate (from 0), if there are that many.
    #[inline]
    pub(crate) fn candidate(&self, k: usize) -> Option<NodeId> {
        self.iter().nth(k)
    }

    /// Every candidate in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = NodeId> + '_ {
        let excluded = self.excluded;
        self.route.candidates().filter(move |id| excluded & (1 << id.index()) == 0)
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use rwsplit_core::RouteReason;

    use super::Why;

    /// The `rwsplit.route.reason` label values: dashboards and alerts select on them, so a
    /// renamed variant must not rename its label; the English text stays in logs.
    #[rstest]
    #[case(Why::Router(RouteReason::Balanced), "balanced", "balanced")]
    #[case(Why::Router(RouteReason::Write), "write", "write")]
    #[case(Why::Router(RouteReason::Strong), "strong", "strong consistency")]
    #[case(Why::Router(RouteReason::NotCaughtUp), "not_caught_up", "no replica caught up")]
    #[case(Why::Execute, "execute", "execute")]
    #[case(Why::ExecuteUnprepared, "execute_unprepared", "execute_unprepared")]
    #[case(Why::Transaction, "transaction", "transaction")]
    #[case(Why::ReadAfterWrite, "read_after_write", "read right after a write")]
    #[case(Why::ForeignToken, "foreign_token", "token from another history")]
    #[case(
        Why::OutsideBound,
        "outside_bound",
        "no replica within the staleness bound has the write"
    )]
    #[case(Why::LastReadNode, "last_read_node", "the last read's node")]
    #[case(Why::ProvenReplica, "proven_replica", "replica proven to have the write")]
    #[case(Why::MovedToNewPrimary, "moved_to_new_primary", "moved to the new primary")]
    #[case(
        Why::RerunOnPrimary,
        "rerun_on_primary",
        "run again on the primary after its connection broke"
    )]
    #[case(Why::RefusedByReplica, "refused_by_replica", "refused by a replica")]
    fn reasons_keep_their_labels(#[case] why: Why, #[case] code: &str, #[case] text: &str) {
        assert_eq!(why.code(), code);
        assert_eq!((why.as_str(), why.to_string().as_str()), (text, text));
    }

    /// Every code is `snake_case`, one per reason (the adapter's `Transaction` and the
    /// router's are one reason), and listed in the telemetry module's docs.
    #[test]
    fn every_reason_code_is_snake_case_unique_and_documented() {
        let docs = include_str!("../observe/telemetry.rs");
        let mut seen = std::collections::BTreeSet::new();
        let all = RouteReason::ALL.into_iter().map(Why::Router).chain(Why::OWN);
        for why in all {
            let code = why.code();
            assert!(
                code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{why:?}: {code:?} is not snake_case"
            );
            let twin = why == Why::Transaction;
            assert!(seen.insert(code) || twin, "{why:?}: {code:?} is another reason's code");
            assert!(docs.contains(&format!("`{code}`")), "{code} is not in telemetry's docs");
        }
    }
}
