//! The monitor of an rwsplit cluster: it owns node health.
//!
//! - [`probe`]: one probe of one node — its role, replication position (PostgreSQL LSN with
//!   system identifier and timeline; MariaDB GTID position) and what it knows of its own delay;
//!   [`lag`] turns a replica's observation and the primary's into a [`Lag`](rwsplit_core::Lag),
//!   positions first, because the time signals lie (`now() - pg_last_xact_replay_timestamp()`
//!   grows without bound on an idle primary; `Seconds_Behind_Master` is 0 when idle and NULL
//!   when the SQL thread is stopped).
//! - [`TopologyState`]: the state machine — health per node, roles from the latest probes
//!   (promotions followed, two primaries refused, fenced nodes ignored), lag — publishing
//!   immutable [`Topology`](rwsplit_core::Topology) snapshots for the router.
//! - [`Monitor`]: a probe loop per node on the monitor's **own** connections (opened through a
//!   [`Connector`]), never the application's pools, plus a cheap replay-position feed between
//!   full probes; optional [`AutoFailover`].
//! - Topology sources ([`TopologySource`]): where the set of nodes comes from — the static
//!   configuration, a Patroni cluster's REST API, or a DNS name — and [`watch`], which polls
//!   one and publishes each change of the member set.
//!
//! Each product's SQL sits behind one internal seam (one implementation per product, chosen
//! once by [`Flavor`]); the few statements the adapter runs on the application's connections
//! are public in [`sql`], next to the probe's; this crate names no driver: it talks SQL through the small
//! [`ProbeConn`] trait, which the adapter implements over its driver and tests implement with
//! fakes.
//!
//! ```
//! use rwsplit_monitor::{Flavor, ProbeConn, ProbeError, Row, probe};
//!
//! /// A fake primary, for the example.
//! struct Fake;
//!
//! impl ProbeConn for Fake {
//!     async fn fetch_row(&self, _sql: &str) -> Result<Option<Row>, ProbeError> {
//!         Ok(Some(Row::new([
//!             ("in_recovery", Some("false")),
//!             ("system_id", Some("7300000000000000001")),
//!             ("timeline", Some("1")),
//!             ("replayed", Some("0/3000060")),
//!             ("received", None),
//!             ("since_replay_ms", None),
//!             ("paused", Some("false")),
//!         ])))
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let seen = probe(&Fake, Flavor::Postgres, std::time::Duration::from_secs(1)).await?;
//! assert_eq!(seen.role(), rwsplit_core::Role::Primary);
//! # Ok::<_, ProbeError>(()) }).unwrap();
//! ```
//!
//! # Layering
//!
//! Depends on `rwsplit-core` (positions, roles, lag, health, topology), `tokio` (timers,
//! tasks, TCP, name resolution), and, for [`PatroniSource`], hyper's HTTP/1.1 client and
//! `serde_json`; never on SeaORM or a driver. The adapter asks it; it never asks the adapter.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout))]

mod connector;
mod failover;
mod monitor;
mod patience;
mod probe;
mod product;
mod source;
mod state;

pub use connector::{Connector, Purpose};
pub use failover::{AutoFailover, InvalidReplicationAddress, ReplicationAddress};
pub use monitor::{Monitor, OnProbe};
pub use probe::{Flavor, MonitorConfig, Observation, ProbeConn, ProbeError, Row, with_literal};
pub use product::{lag, probe, sql};
pub use source::{
    DnsSource, Member, MemberDiff, MemberRole, MemberSet, MemberState, MemberTags, PatroniSource,
    SourceError, SourceWatch, StaticSource, TopologySource, diff, watch,
};
pub use state::{NoFreeIndex, TopologyState};
