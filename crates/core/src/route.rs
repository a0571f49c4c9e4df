//! The routing decision and its failures.

use std::fmt;

use crate::node_id::{MAX_NODES, NodeId};
use crate::role::Role;

/// Why a statement goes where it goes, for tracing and metrics: [`RouteReason::code`] is the
/// stable code a label or span field carries, [`RouteReason::as_str`] (and `Display`) the
/// text a log line shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RouteReason {
    /// The statement writes (or could not be proven to read).
    Write,
    /// A read-write transaction is open (or read-only transactions stay on the primary).
    Transaction,
    /// [`Consistency::Strong`](crate::Consistency::Strong).
    Strong,
    /// An explicit override or a `/*rwsplit:primary*/` hint.
    PrimaryRequested,
    /// A routing rule sent the read to the primary.
    Rule,
    /// An explicit override or hint sent the read to a replica, consistency notwithstanding.
    ReplicaRequested,
    /// An explicit override named the node.
    NodeRequested,
    /// An eligible replica, chosen by the balancer.
    Balanced,
    /// A replica known to have caught up with the read-your-writes token.
    CaughtUp,
    /// No replica is known to have caught up; the caller asked to wait on the closest one
    /// (the target) before falling back to the primary.
    AwaitCatchUp,
    /// No replica is known to have caught up: the primary.
    NotCaughtUp,
    /// No replica is eligible (down, lagging, excluded): the primary.
    NoEligibleReplica,
    /// The primary was chosen by the balancer among the replicas
    /// ([`PrimaryReads::Include`](crate::PrimaryReads::Include)).
    PrimaryBalanced,
}

impl RouteReason {
    /// Every reason, in declaration order.
    pub const ALL: [RouteReason; 13] = [
        Self::Write,
        Self::Transaction,
        Self::Strong,
        Self::PrimaryRequested,
        Self::Rule,
        Self::ReplicaRequested,
        Self::NodeRequested,
        Self::Balanced,
        Self::CaughtUp,
        Self::AwaitCatchUp,
        Self::NotCaughtUp,
        Self::NoEligibleReplica,
        Self::PrimaryBalanced,
    ];

    /// A stable `snake_case` code, one per reason, for metric labels and span fields (a
    /// dashboard or an alert selects on it; renaming a variant does not change it).
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::Write => "write",
            Self::Transaction => "transaction",
            Self::Strong => "strong",
            Self::PrimaryRequested => "primary_requested",
            Self::Rule => "rule",
            Self::ReplicaRequested => "replica_requested",
            Self::NodeRequested => "node_requested",
            Self::Balanced => "balanced",
            Self::CaughtUp => "caught_up",
            Self::AwaitCatchUp => "await_catch_up",
            Self::NotCaughtUp => "not_caught_up",
            Self::NoEligibleReplica => "no_eligible_replica",
            Self::PrimaryBalanced => "primary_balanced",
        }
    }

    /// A lowercase description in English, for logs (its `Display`); [`RouteReason::code`] is
    /// what labels carry.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Write => "write",
            Self::Transaction => "transaction",
            Self::Strong => "strong consistency",
            Self::PrimaryRequested => "primary requested",
            Self::Rule => "rule",
            Self::ReplicaRequested => "replica requested",
            Self::NodeRequested => "node requested",
            Self::Balanced => "balanced",
            Self::CaughtUp => "caught up",
            Self::AwaitCatchUp => "await catch-up",
            Self::NotCaughtUp => "no replica caught up",
            Self::NoEligibleReplica => "no eligible replica",
            Self::PrimaryBalanced => "primary balanced",
        }
    }
}

impl fmt::Display for RouteReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a statement goes: a target node and an ordered list of fallbacks. Fixed size, no heap.
///
/// A statement that fails on the target for a connection-level reason may be retried on the
/// fallbacks in order, if it is a read; writes are never retried blindly.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Route {
    target: NodeId,
    role: Role,
    reason: RouteReason,
    wait_candidate: Option<NodeId>,
    len: u8,
    fallbacks: [NodeId; MAX_NODES],
}

impl Route {
    pub(crate) fn new(target: NodeId, role: Role, reason: RouteReason) -> Self {
        Self {
            target,
            role,
            reason,
            wait_candidate: None,
            len: 0,
            fallbacks: [NodeId::new(0); MAX_NODES],
        }
    }

    /// A route whose fallbacks are `fallbacks`, in order: distinct nodes, none of them the
    /// target (beyond [`MAX_NODES`] they are dropped).
    #[inline]
    pub(crate) fn with_fallbacks(
        target: NodeId,
        role: Role,
        reason: RouteReason,
        fallbacks: impl Iterator<Item = NodeId>,
    ) -> Self {
        let mut route = Self::new(target, role, reason);
        for (slot, id) in route.fallbacks.iter_mut().zip(fallbacks) {
            *slot = id;
            route.len += 1;
        }
        route
    }

    /// Appends a fallback; callers never pass a node twice, only possibly the target.
    pub(crate) fn push_fallback(&mut self, id: NodeId) {
        if id == self.target {
            return;
        }
        if let Some(slot) = self.fallbacks.get_mut(usize::from(self.len)) {
            *slot = id;
            self.len += 1;
        }
    }

    pub(crate) fn set_wait_candidate(&mut self, id: Option<NodeId>) {
        self.wait_candidate = id;
    }

    /// The node to run the statement on.
    #[must_use]
    pub fn target(&self) -> NodeId {
        self.target
    }

    /// The target's role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether the target is the primary.
    #[must_use]
    pub fn is_primary(&self) -> bool {
        self.role == Role::Primary
    }

    /// Why.
    #[must_use]
    pub fn reason(&self) -> RouteReason {
        self.reason
    }

    /// Nodes to try next, in order (for reads; the primary, when allowed, comes last).
    #[must_use]
    pub fn fallbacks(&self) -> &[NodeId] {
        self.fallbacks.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// The target followed by the fallbacks.
    pub fn candidates(&self) -> impl Iterator<Item = NodeId> + '_ {
        std::iter::once(self.target).chain(self.fallbacks().iter().copied())
    }

    /// For a read-your-writes read no replica has caught up with: the replica closest to the
    /// token, which the caller could wait on. With [`CatchUp::Wait`](crate::CatchUp::Wait)
    /// it is also the target.
    #[must_use]
    pub fn wait_candidate(&self) -> Option<NodeId> {
        self.wait_candidate
    }

    /// Whether the caller must wait for the target to catch up with its token before reading.
    #[must_use]
    pub fn needs_catch_up(&self) -> bool {
        self.reason == RouteReason::AwaitCatchUp
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("target", &self.target)
            .field("role", &self.role)
            .field("reason", &self.reason)
            .field("wait_candidate", &self.wait_candidate)
            .field("fallbacks", &self.fallbacks())
            .finish()
    }
}

/// Why no node could be chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The statement needs the primary and no node claims the role.
    #[error("no primary in the topology")]
    NoPrimary,
    /// Several nodes claim the primary role: writing could split the cluster's history.
    #[error("{primaries} nodes claim the primary role, refusing to pick one")]
    SplitBrain {
        /// How many nodes claim the role.
        primaries: usize,
    },
    /// A read found no eligible replica and may not, or cannot, use the primary. `excluded`
    /// says which rule left out each replica, and why the primary could not take the read.
    #[error("no eligible node for this read: {excluded}")]
    NoEligibleNode {
        /// Which rule excluded the nodes.
        excluded: Excluded,
    },
    /// An override named a node that is not in the topology.
    #[error("node {id} is not in the topology")]
    UnknownNode {
        /// The node named.
        id: NodeId,
    },
}

/// Why a read found no node ([`RouteError::NoEligibleNode`]): how many replicas each of the
/// router's rules left out (each counted under the first rule it fails, in the order of the
/// fields), and why the primary could not take the read instead.
///
/// ```
/// use rwsplit_core::{Excluded, PrimaryExcluded};
///
/// let mut excluded = Excluded::default();
/// (excluded.replicas, excluded.down, excluded.over_bound) = (2, 1, 1);
/// assert_eq!(excluded.primary, PrimaryExcluded::NotAllowed);
/// assert_eq!(
///     excluded.to_string(),
///     "of 2 replicas, 1 is down (failing probes, fenced or joining), 1 is not provably within \
///      the read's staleness bound; the primary may not serve reads a replica could \
///      (primary_reads = never)"
/// );
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Excluded {
    /// The replicas in the topology.
    pub replicas: u8,
    /// Down: failing their probes, fenced, or joining (not yet seen healthy and caught up).
    pub down: u8,
    /// Without the tag a [`Rule`](crate::Rule) restricted this read to
    /// ([`RuleAction::OnlyTagged`](crate::RuleAction::OnlyTagged)).
    pub not_tagged: u8,
    /// Reserved for reads a rule sends to one of their tags
    /// ([`RouterConfig::dedicated_tag`](crate::RouterConfig::dedicated_tag); Patroni's
    /// `noloadbalance`).
    pub dedicated: u8,
    /// Known to lag past [`RouterConfig::max_replica_lag`](crate::RouterConfig::max_replica_lag).
    pub over_max_lag: u8,
    /// Not provably within the read's
    /// [`BoundedStaleness`](crate::Consistency::BoundedStaleness) bound (unknown lag counts).
    pub over_bound: u8,
    /// Not known to have replayed the read's token
    /// ([`ReadYourWrites`](crate::Consistency::ReadYourWrites)).
    pub behind_token: u8,
    /// Why the primary did not take the read.
    pub primary: PrimaryExcluded,
}

/// Why the primary did not take a read no replica could ([`Excluded::primary`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PrimaryExcluded {
    /// [`PrimaryReads::Never`](crate::PrimaryReads::Never): reads a replica could serve never
    /// use the primary.
    #[default]
    NotAllowed,
    /// No node has the primary role now.
    NoPrimary,
}

impl fmt::Display for Excluded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.replicas == 0 {
            f.write_str("there is no replica")?;
        } else {
            let noun = if self.replicas == 1 { "replica" } else { "replicas" };
            write!(f, "of {} {noun}", self.replicas)?;
            let rules = [
                (self.down, "down (failing probes, fenced or joining)"),
                (self.not_tagged, "without the tag a routing rule restricts this read to"),
                (self.dedicated, "reserved for another tag's reads (a dedicated tag)"),
                (self.over_max_lag, "known to lag past the router's max_replica_lag"),
                (self.over_bound, "not provably within the read's staleness bound"),
                (self.behind_token, "not known to have replayed the read's token"),
            ];
            let mut any = false;
            for (n, why) in rules.into_iter().filter(|(n, _)| *n > 0) {
                let verb = if n == 1 { "is" } else { "are" };
                write!(f, ", {n} {verb} {why}")?;
                any = true;
            }
            if !any {
                f.write_str(", none was left")?;
            }
        }
        f.write_str(match self.primary {
            PrimaryExcluded::NotAllowed => {
                "; the primary may not serve reads a replica could (primary_reads = never)"
            }
            PrimaryExcluded::NoPrimary => "; no node is the primary now",
        })
    }
}

impl RouteError {
    /// Whether a later topology may fix it (all variants but an unknown node): worth retrying
    /// after the monitor publishes a new snapshot.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::UnknownNode { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A generational id is four bytes, so a route with its fallbacks inline (carried by every
    /// statement's plan) stays a small, copyable value.
    #[test]
    fn ids_and_routes_stay_small() {
        assert_eq!(std::mem::size_of::<NodeId>(), 4);
        let route = std::mem::size_of::<Route>();
        assert!(route <= 4 * MAX_NODES + 16, "a route is {route} bytes");
    }
}
