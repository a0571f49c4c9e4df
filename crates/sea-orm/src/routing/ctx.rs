//! What one call carries into the connection's layers: the routing [`Policy`] the builder set,
//! the per-call [`Ctx`], the [`Scope`] whose read-your-writes state it uses, and the task-locals
//! of [`RoutedConnection::scope`](crate::RoutedConnection::scope) and
//! [`Session::scope`](crate::Session::scope).

use std::sync::Arc;
use std::time::Duration;

use rwsplit_core::{Consistency, Target};

pub(crate) use crate::consistency::Scope;
use crate::consistency::Shared;

/// Routing policy switches.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// Track each write's replication position so later reads in its scope see it.
    pub(crate) read_your_writes: bool,
    /// How long a read-your-writes read may wait for a replica to catch up before it goes to
    /// the primary (`None`: go to the primary at once).
    pub(crate) wait_for_replica: Option<Duration>,
    pub(crate) read_retries: u8,
    pub(crate) monitor: rwsplit_monitor::MonitorConfig,
    pub(crate) consistency: Consistency,
    pub(crate) timeouts: crate::send::deadline::Timeouts,
    pub(crate) failover: Option<rwsplit_monitor::AutoFailover>,
    pub(crate) on_replica_refusal: crate::send::refusal::OnReplicaRefusal,
    /// Whether a read on a replica still unanswered after its node's hedge delay is sent to
    /// another node of its plan too ([`crate::hedge::pace`]).
    pub(crate) hedged_reads: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            read_your_writes: true,
            wait_for_replica: Some(DEFAULT_WAIT_FOR_REPLICA),
            read_retries: 2,
            monitor: rwsplit_monitor::MonitorConfig::default(),
            consistency: Consistency::Session,
            timeouts: crate::send::deadline::Timeouts::default(),
            failover: None,
            on_replica_refusal: crate::send::refusal::OnReplicaRefusal::Primary,
            hedged_reads: true,
        }
    }
}

/// How long a read-your-writes read waits, by default, for a replica to replay the caller's
/// writes before it goes to the primary. Replicas at their usual lag replay a write within a
/// millisecond or two, so a read right after a write finds one in time and the primary is
/// spared; a replica the monitor knows to be further behind than this is not waited on.
pub(crate) const DEFAULT_WAIT_FOR_REPLICA: Duration = Duration::from_millis(10);

/// A token that could never be satisfied (another history) is dropped from a task's scope
/// after this long without a write.
pub(crate) const FOREIGN_TOKEN_TTL: Duration = Duration::from_secs(60);

/// How one call is routed beyond its SQL: whose read-your-writes scope it uses, and per-call
/// consistency and catch-up settings.
#[derive(Clone, Copy, Default)]
pub(crate) struct Ctx<'a> {
    /// An explicit session; `None`: the ambient session (`Session::scope`) or the task's scope.
    pub(crate) session: Option<&'a Arc<Shared>>,
    pub(crate) consistency: Option<&'a Consistency>,
    /// `Some(None)`: go to the primary at once; `Some(Some(d))`: wait up to `d`.
    pub(crate) wait: Option<Option<Duration>>,
}

impl Ctx<'_> {
    /// The call's scope: its explicit session, else the ambient one, else the task's.
    pub(crate) fn scope(&self) -> Scope {
        match self.session {
            Some(s) => Scope::Session(Arc::clone(s)),
            None => SESSION.try_with(|s| Scope::Session(Arc::clone(s))).unwrap_or(Scope::Task),
        }
    }

    /// Whether the call's reads keep monotonic reads under `policy`: its level, else the
    /// policy's, is `Consistency::Session`.
    pub(crate) fn keeps_monotonic(&self, policy: &Policy) -> bool {
        monotonic(self.consistency.unwrap_or(&policy.consistency))
    }
}

tokio::task_local! {
    /// The target of [`RoutedConnection::scope`].
    pub(crate) static SCOPE: Target;
    /// The ambient session of [`Session::scope`](crate::Session::scope).
    pub(crate) static SESSION: Arc<Shared>;
}

/// Whether reads at `level` keep monotonic reads: `Consistency::Session` only (a bounded or
/// strong read is judged by its own level alone).
pub(crate) fn monotonic(level: &Consistency) -> bool {
    matches!(level, Consistency::Session)
}
