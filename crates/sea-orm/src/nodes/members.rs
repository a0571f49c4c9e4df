//! [`Members`]: the monitor's side of a connection's membership: probes started and stopped
//! with it (a node removed stops being probed before it drains), the start's wait for first
//! answers, promotions, the task following a topology source. The registry itself (adding a
//! node, retagging one, names, a visit, closing, pinging, the start's server checks) is
//! `Nodes`', which `connection/` asks directly through `Inner`, sharing the same registry.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rwsplit_core::NodeId;

#[cfg(test)]
use crate::nodes::registry::Node;
use crate::nodes::registry::Nodes;
use crate::nodes::shared::MonitorHandle;

/// A connection's nodes and the monitor watching them (see the module docs).
pub(crate) struct Members {
    /// The registry (shared with the statement path's `Inner`).
    nodes: Nodes,
    /// This connection's handle on its monitor, if one runs.
    monitor: Option<MonitorHandle>,
    /// The task following a topology source, if any: it stops when the connection is dropped.
    discovery: Mutex<Option<AbortOnDrop>>,
}

impl Members {
    /// The members of registry `nodes`, watched by `monitor` if one runs.
    pub(crate) fn new(nodes: Nodes, monitor: Option<MonitorHandle>) -> Members {
        Members { nodes, monitor, discovery: Mutex::new(None) }
    }

    /// Calls `f` with every node and its id ([`Nodes::each`]; the crate's tests', outside
    /// `connection/`, whose code asks the registry itself).
    #[cfg(test)]
    pub(crate) fn each(&self, f: impl FnMut(NodeId, &Node)) {
        self.nodes.each(f);
    }

    /// Starts the monitor's probes of node `id` (just added to the registry, and ready for
    /// statements), if a monitor runs.
    pub(crate) fn start_probing(&self, id: NodeId) {
        if let Some(m) = &self.monitor {
            m.start_node(id);
        }
    }

    /// Removes node `id` (`was_primary`: it had the primary role), unless it is the last one:
    /// its probes stop first, so that the drain the removal starts never runs beside them,
    /// then it leaves the registry and drains ([`Nodes::remove`]). Returns whether it was
    /// removed.
    pub(crate) fn remove(&self, id: NodeId, was_primary: bool) -> bool {
        if self.nodes.count() <= 1 {
            tracing::warn!(target: "rwsplit", id = %id, "not removing the last node");
            return false;
        }
        if let Some(m) = &self.monitor {
            m.stop_node(id);
        }
        self.nodes.remove(id, was_primary)
    }

    /// How many promotions the monitor has seen (`None`: no monitor runs).
    pub(crate) fn promotions(&self) -> Option<u64> {
        self.monitor.as_ref().map(|m| m.promotions())
    }

    /// Hands the connection's probe callback every node's latest probe, as if each had just
    /// been probed ([`MonitorHandle::replay`]), if a monitor runs.
    pub(crate) fn replay_probes(&self) {
        if let Some(m) = &self.monitor {
            m.replay();
        }
    }

    /// Waits, at most `max`, for the monitor's first answers from the nodes
    /// ([`MonitorHandle::first_answers`]); returns the replicas that have not answered by then.
    /// None without a monitor.
    pub(crate) async fn first_answers(&self, max: Duration) -> Vec<NodeId> {
        let Some(m) = &self.monitor else { return Vec::new() };
        let ids: Vec<NodeId> = self.nodes.names().into_iter().map(|(id, _)| id).collect();
        m.first_answers(&ids, max).await
    }

    /// Keeps `task` (the one following a topology source) for the connection's life: it stops
    /// when the connection is dropped, or when another replaces it.
    pub(crate) fn follow_topology(&self, task: AbortOnDrop) {
        *self.discovery.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
    }
}

impl fmt::Debug for Members {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Members").field("monitor", &self.monitor).finish_non_exhaustive()
    }
}

/// A background task of the connection's (topology discovery) that stops when the connection
/// is dropped.
pub(crate) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl AbortOnDrop {
    /// Aborts `task` when dropped.
    pub(crate) fn new(task: tokio::task::JoinHandle<()>) -> AbortOnDrop {
        AbortOnDrop(task)
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl fmt::Debug for AbortOnDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AbortOnDrop")
    }
}
