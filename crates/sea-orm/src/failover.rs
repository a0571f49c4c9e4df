//! Fencing, and turning on the monitor's opt-in automatic promotion
//! ([`AutoFailover`](crate::advanced::AutoFailover), which lives in `rwsplit-monitor`).

use rwsplit_monitor::AutoFailover;

use crate::{RoutedConnection, RoutedConnectionBuilder};

impl RoutedConnectionBuilder {
    /// Turns on automatic promotion (off by default). Read [`AutoFailover`]'s risks first: an
    /// external HA manager is the better choice wherever there is one.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), rwsplit_sea_orm::Error> {
    /// use rwsplit_sea_orm::advanced::AutoFailover;
    /// use rwsplit_sea_orm::RoutedConnection;
    ///
    /// let db = RoutedConnection::builder()
    ///    .primary("mysql://app@db-1:3306/shop")
    ///    .replica("mysql://app@db-2:3306/shop")
    ///    // Promote after 5 failed probes; promotion and re-pointing need an admin account.
    ///    .auto_failover(AutoFailover::default().after_failures(5).admin_credentials("root", ""))
    ///    .connect()
    ///    .await?;
    /// # drop(db);
    /// # Ok(()) }
    /// ```
    pub fn auto_failover(mut self, config: AutoFailover) -> Self {
        self.policy.failover = Some(config);
        self.given.insert("auto_failover");
        self
    }
}

impl RoutedConnection {
    /// Fences the node named `name` (`host:port/db`, as in [`stats`](RoutedConnection::stats)):
    /// no statement is routed to it and its claim to the primary role is ignored until
    /// [`unfence`](RoutedConnection::unfence). Automatic failover fences the old primary itself.
    /// Fencing is routing only: the server keeps running and other clients may still write to
    /// it.
    pub fn fence(&self, name: &str) -> crate::Result<()> {
        let node = self.node_named(name)?;
        self.inner.routing().set_fenced(node, true);
        tracing::warn!(target: "rwsplit", node = %name, "fenced by the application");
        Ok(())
    }

    /// Lifts a fence: the node is routed to again as its probes report it. Do this only once it
    /// cannot claim the primary role any more (demoted and following the new primary, or
    /// rebuilt); a second primary makes the router refuse writes.
    pub fn unfence(&self, name: &str) -> crate::Result<()> {
        let node = self.node_named(name)?;
        self.inner.routing().set_fenced(node, false);
        tracing::warn!(target: "rwsplit", node = %name, "unfenced by the application");
        Ok(())
    }

    fn node_named(&self, name: &str) -> crate::Result<rwsplit_core::NodeId> {
        let nodes: Vec<_> = self.inner.nodes().iter().collect();
        nodes.iter().find(|(_, n)| n.name() == name).map(|(i, _)| *i).ok_or_else(|| {
            crate::Error::UnknownNode {
                name: crate::session::snippet(name),
                known: nodes.iter().map(|(_, n)| n.name()).collect::<Vec<_>>().join(", "),
            }
        })
    }
}
