//! How the monitor opens its own connections to the nodes: the [`Connector`] the adapter
//! implements over its driver, and what each connection is for ([`Purpose`]).

use std::time::Duration;

use rwsplit_core::NodeId;

use crate::probe::{ProbeConn, ProbeError};

/// What a connection the monitor opens is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Purpose {
    /// A node's dedicated probe connection (and failover's last look at an old primary).
    Probe,
    /// Promotion and re-pointing: the failover's admin account if one is configured
    /// ([`AutoFailover::admin_credentials`](crate::AutoFailover::admin_credentials)).
    Admin,
}

/// Opens connections to the nodes for the monitor. The adapter implements it over its driver;
/// tests implement it with fakes. Every connection it opens is the monitor's own: never one of
/// the application's pooled connections, so a pool that is full (back-pressure) never looks
/// like a node that is dead.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use rwsplit_core::{Health, HealthPolicy, Node, NodeId, Role, Topology};
/// use rwsplit_monitor::{
///     Connector, Flavor, Monitor, MonitorConfig, ProbeConn, ProbeError, Purpose, Row,
///     TopologyState,
/// };
///
/// /// Every node refuses connections.
/// struct Nowhere;
/// struct NoConn;
///
/// impl ProbeConn for NoConn {
///     async fn fetch_row(&self, _sql: &str) -> Result<Option<Row>, ProbeError> {
///         Err(ProbeError::unreachable("closed"))
///     }
/// }
///
/// impl Connector for Nowhere {
///     type Conn = NoConn;
///     async fn open(&self, _node: NodeId, _purpose: Purpose) -> Result<NoConn, ProbeError> {
///         Err(ProbeError::unreachable("connection refused"))
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let topology = Topology::builder()
///     .node(Node::builder(NodeId::new(0), Role::Primary).name("db-1:5432/app").build())
///     .build()?;
/// let state = Arc::new(TopologyState::new(topology, HealthPolicy::default()));
/// let config = MonitorConfig::default();
/// let monitor = Monitor::start(Arc::clone(&state), Nowhere, Flavor::Postgres, config, None, None);
/// assert!(monitor.first_round(Duration::from_secs(2)).await);
/// assert_eq!(state.health(NodeId::new(0)), Health::Suspect);
/// # Ok::<_, rwsplit_core::Error>(()) }).unwrap();
/// ```
pub trait Connector: Send + Sync + 'static {
    /// A connection the monitor probes or administers one node through.
    type Conn: ProbeConn + 'static;

    /// Opens a fresh connection to node `node`. A probe waits for it up to the probe timeout
    /// (a node's first probe: [`MonitorConfig::connect_timeout_value`](crate::MonitorConfig::connect_timeout_value)); the monitor lets it go
    /// on for the next probe, up to that in all (a node's first connection:
    /// [`MonitorConfig::first_connect_timeout_value`](crate::MonitorConfig::first_connect_timeout_value)).
    fn open(
        &self,
        node: NodeId,
        purpose: Purpose,
    ) -> impl std::future::Future<Output = Result<Self::Conn, ProbeError>> + Send;
}

/// Opens a connection under the probe timeout.
pub(crate) async fn open<K: Connector>(
    connector: &K,
    node: NodeId,
    purpose: Purpose,
    timeout: Duration,
) -> Result<K::Conn, ProbeError> {
    match tokio::time::timeout(timeout, connector.open(node, purpose)).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::Timeout { after: timeout }),
    }
}
