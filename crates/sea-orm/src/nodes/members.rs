//! [`Members`]: a connection's nodes as its handles, its start and its topology task see them,
//! with the monitor that watches them. Membership (adding a node, removing and draining one,
//! retagging one), what every node reports or is asked at once (names, a visit, closing,
//! pinging, the start's server checks), and the monitor's side of it (probes started and
//! stopped with membership, the start's wait for first answers, promotions, the task following
//! a topology source). The statement path never comes here: it holds its node through `Inner`,
//! which shares the same registry.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rwsplit_core::NodeId;
use rwsplit_monitor::NoFreeIndex;

use crate::nodes::registry::{Node, Nodes};
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

    /// Every node's id and name, in index order.
    pub(crate) fn names(&self) -> Vec<(NodeId, String)> {
        self.nodes.names()
    }

    /// The id of the node named `name` (`host:port/db`), if there is one.
    pub(crate) fn id_of(&self, name: &str) -> Option<NodeId> {
        self.nodes.id_of(name)
    }

    /// Calls `f` with every node and its id ([`Nodes::each`]).
    pub(crate) fn each(&self, f: impl FnMut(NodeId, &Node)) {
        self.nodes.each(f);
    }

    /// Pings node `primary`'s write pool (the first node's if it is not there).
    pub(crate) async fn ping(&self, primary: NodeId) -> Result<(), sea_orm::DbErr> {
        self.nodes.ping(primary).await
    }

    /// Closes every node's pools ([`Nodes::close`]).
    pub(crate) async fn close(&self) -> Result<(), sea_orm::DbErr> {
        self.nodes.close().await
    }

    /// Checks the servers of the configured replicas against the version policy, each for at
    /// most `max` ([`Nodes::check_servers`]).
    pub(crate) async fn check_replica_servers(
        &self,
        max: Duration,
    ) -> Result<(), crate::error::Error> {
        self.nodes.check_servers(NodeId::new(0), max).await
    }

    /// Adds `node` to the registry, its snapshot entry made by `entry` from the id it gets
    /// ([`Nodes::add`]). Its probes start with [`start_probing`](Self::start_probing), once
    /// the caller has made it ready for statements.
    ///
    /// # Errors
    ///
    /// [`NoFreeIndex`] when every index is taken (the node is dropped).
    pub(crate) fn add(
        &self,
        node: Node,
        entry: impl FnOnce(NodeId, &Node) -> rwsplit_core::Node,
    ) -> Result<NodeId, NoFreeIndex> {
        self.nodes.add(node, entry)
    }

    /// Starts the monitor's probes of node `id` (just added), if a monitor runs.
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

    /// Node `id` has the tag `tag` (alone) if `on`, else none, when that changes
    /// ([`Nodes::retag`]).
    pub(crate) fn retag(&self, id: NodeId, tag: &str, on: bool) {
        self.nodes.retag(id, tag, on);
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

    /// How many nodes there are (for tests).
    #[cfg(test)]
    pub(crate) fn count(&self) -> usize {
        self.nodes.count()
    }

    /// The ids the registry's table holds a node for ([`Nodes::table_ids`]; for tests).
    #[cfg(test)]
    pub(crate) fn table_ids(&self) -> Vec<NodeId> {
        self.nodes.table_ids()
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
