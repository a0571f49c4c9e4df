//! The monitor inside a connection: one probe loop per node.
//!
//! Each node is probed on its own schedule (every interval plus jitter, under the probe
//! timeout) and its result is published as soon as it arrives, so a hung node, whose probe runs
//! to the timeout, never delays what the others report: a promoted replica is seen as primary,
//! and a primary that returns is taken back, within about one interval.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use rwsplit_core::ReplayPosition;

use rwsplit_monitor::Flavor;
use sea_orm::DbBackend;

use crate::RoutedConnection;
use crate::connection::FOREIGN_TOKEN_TTL;
use crate::probe::NodeProbe;

/// Starts the probe loops. They hold only weak references and end when the last clone of the
/// connection is dropped. Without a tokio runtime (a connection built outside one) there is no
/// monitor: health then moves only on the failures statements see.
pub(crate) fn spawn(conn: &RoutedConnection) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
    let flavor = match conn.inner.backend {
        DbBackend::Postgres => Flavor::Postgres,
        DbBackend::MySql => Flavor::MariaDb,
        _ => return,
    };
    let config = conn.inner.policy.monitor;
    for node in 0..conn.inner.nodes.len() {
        let weak = Arc::downgrade(&conn.inner);
        handle.spawn(async move {
            // Nodes start their jitter sequences apart, so they do not probe in lockstep.
            let mut round = (node as u64).wrapping_mul(0x9E37_79B9);
            loop {
                tokio::time::sleep(config.pause(round)).await;
                round = round.wrapping_add(1);
                let Some(inner) = weak.upgrade() else { return };
                let Some(n) = inner.nodes.get(node) else { return };
                let probe = NodeProbe(&n.conn);
                let result = rwsplit_monitor::probe(&probe, flavor, config.timeout_value()).await;
                let failures = inner.routing.observe_node(node, &result);
                if let Ok(obs) = &result
                    && let Some(ReplayPosition::Postgres(p)) = obs.position()
                {
                    n.system_id.store(p.system_id(), Ordering::Relaxed);
                }
                // Read-your-writes scopes whose token every replica has replayed are done.
                let now = Instant::now();
                inner.tasks.sweep(now, FOREIGN_TOKEN_TTL, |t| inner.routing.settled(t));
                crate::failover::after_probe(&inner, node, failures, flavor);
            }
        });
    }
}
