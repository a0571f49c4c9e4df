//! Asynchronous lag and health probes for rwsplit.
//!
//! A probe asks one node, in one round trip per query and under a deadline, what it is and how
//! far it has got: its role, its replication position (PostgreSQL LSN with system identifier and
//! timeline; MariaDB GTID position) and what it knows about its own delay. [`lag`] turns a
//! replica's observation and the primary's into a [`Lag`](rwsplit_core::Lag) — positions first,
//! because the time signals lie: `now() - pg_last_xact_replay_timestamp()` grows without bound
//! on an idle primary, and `Seconds_Behind_Master` is 0 when idle and NULL when the SQL thread
//! is stopped.
//!
//! Probes talk SQL through the small [`ProbeConn`] trait, so this crate names no driver: the
//! adapter runs them on its own pools, and tests run them on fakes.
//!
//! ```
//! use rwsplit_monitor::{Flavor, ProbeConn, ProbeError, Row, probe};
//!
//! /// A fake primary, for the example.
//! struct Fake;
//!
//! impl ProbeConn for Fake {
//!     async fn fetch_row(&self, _sql: &'static str) -> Result<Option<Row>, ProbeError> {
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
//! Depends on `rwsplit-core` (positions, roles, lag) and `tokio` (timers); never on SeaORM.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout))]

mod probe;

pub use probe::{Flavor, MonitorConfig, Observation, ProbeConn, ProbeError, Row, lag, probe};
