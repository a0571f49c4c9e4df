//! Fencing a node by hand (automatic promotion, [`AutoFailover`](crate::advanced::AutoFailover),
//! lives in `rwsplit-monitor`; the builder turns it on).

use crate::RoutedConnection;

impl RoutedConnection {
    /// Fences the node named `name` (`host:port/db`, as in [`stats`](RoutedConnection::stats)):
    /// no statement is routed to it and its claim to the primary role is ignored until
    /// [`unfence`](RoutedConnection::unfence). Automatic failover fences the old primary itself.
    /// Fencing is routing only: the server keeps running and other clients may still write to
    /// it.
    pub fn fence(&self, name: &str) -> crate::Result<()> {
        let node = self.node_named(name)?;
        self.inner.routing.set_fenced(node, true);
        tracing::warn!(target: "rwsplit", node = %name, "fenced by the application");
        Ok(())
    }

    /// Lifts a fence: the node is routed to again as its probes report it. Do this only once it
    /// cannot claim the primary role any more (demoted and following the new primary, or
    /// rebuilt); a second primary makes the router refuse writes.
    pub fn unfence(&self, name: &str) -> crate::Result<()> {
        let node = self.node_named(name)?;
        self.inner.routing.set_fenced(node, false);
        tracing::warn!(target: "rwsplit", node = %name, "unfenced by the application");
        Ok(())
    }

    fn node_named(&self, name: &str) -> crate::Result<rwsplit_core::NodeId> {
        let nodes: Vec<_> = self.inner.nodes.iter().collect();
        nodes.iter().find(|(_, n)| n.name() == name).map(|(i, _)| *i).ok_or_else(|| {
            crate::Error::UnknownNode {
                name: crate::session::snippet(name),
                known: nodes.iter().map(|(_, n)| n.name()).collect::<Vec<_>>().join(", "),
            }
        })
    }
}
