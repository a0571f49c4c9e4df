//! The nodes: each database server as the adapter sees it, and the connections it has to it.
//!
//! **Owns**: the node registry (`registry.rs`: [`Nodes`], in which the monitor's
//! `TopologyState` alone decides which nodes there are and, beside it, a
//! [`NodeTable`](registry::NodeTable) holds the adapter's own part of each, its [`Node`]:
//! pools, counters, pace; [`NodeRef`], a node held while in use; components with private
//! state), the nodes as membership with the monitor watching them (`members.rs`:
//! [`Members`](members::Members): adding, removing and draining nodes, what every node reports,
//! the start's server checks and wait for first answers, promotions, the topology task's life),
//! building a node's pools (`pools.rs`), the monitor's own connections to a node
//! (`probe.rs`), a replica's placement (`replica.rs`: weight, zone, tags), the one monitor per
//! cluster per process (`shared.rs`), and replication positions on the wire (`position.rs`: a
//! write's token, waiting for a replica to replay it).
//!
//! **Offers**: the registry and its handles, `open_primary`/`open_replica`, the monitor's
//! connector (`NodeConnector`, `ProbeFrom`, `ProbeSettings`), [`Replica`](replica::Replica) and
//! `Placement`, `acquire` of a shared monitor, and the position reads (`position::On`).
//!
//! **May call**: `observe/` (a node's metric labels and durations, the metric hooks,
//! redaction), `send/` (direct sends, time limits), `product/`, the error modules,
//! `rwsplit-core` and `rwsplit-monitor`. Never `routing/`, `connection/` or
//! `config/`, which call it.

pub(crate) mod members;
pub(crate) mod pools;
pub(crate) mod position;
pub(crate) mod probe;
pub(crate) mod registry;
pub(crate) mod replica;
pub(crate) mod shared;

pub(crate) use registry::{Node, NodeRef, Nodes};
