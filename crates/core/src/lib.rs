//! Pure routing logic for rwsplit: statement classification, consistency levels, causal
//! tokens, topology snapshots, balancers, the health state machine and the routing decision.
//!
//! rwsplit lets an application use a PostgreSQL or MySQL/MariaDB primary with read replicas as
//! if it were one database. This crate is the bottom layer: the adapter (`rwsplit-sea-orm`)
//! asks it where each statement goes, and the monitor (`rwsplit-monitor`) feeds it what it
//! learns about the nodes.
//!
//! ```text
//!  rwsplit-sea-orm   runs statements: classify → route → execute, retry reads, record outcomes
//!  rwsplit-monitor   probes nodes, publishes Topology snapshots
//!  rwsplit-core      this crate: pure decisions, nanoseconds, no I/O
//! ```
//!
//! # Architecture invariant
//!
//! This crate does no I/O and names neither SeaORM nor any database driver. Everything in it is
//! deterministic given its inputs — time enters as `Instant` parameters, randomness as seeds —
//! which keeps it fast to test and reusable by other adapters. The hot path (classification,
//! routing, token checks, health updates) does not allocate.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, Instant};
//! use rwsplit_core::{
//!     CausalToken, Consistency, Dialect, Lag, Node, NodeId, PgPosition, ReplayPosition, Role,
//!     RouteContext, RouteReason, Router, RouterConfig, PowerOfTwoEwma, SharedTopology, Topology,
//!     explain,
//! };
//!
//! let sys = 7_311_234_567_890_123_456;
//! let at = |lsn: u64| ReplayPosition::from(PgPosition::new(sys, 1, rwsplit_core::Lsn::new(lsn)));
//! // The monitor publishes snapshots; readers never lock.
//! let shared = SharedTopology::new(
//!     Topology::builder()
//!         .node(Node::builder(NodeId::new(0), Role::Primary).name("primary").position(at(0x3000)).build())
//!         .node(Node::builder(NodeId::new(1), Role::Replica).name("replica-1").position(at(0x3000)).lag(Lag::zero()).build())
//!         .node(Node::builder(NodeId::new(2), Role::Replica).name("replica-2").position(at(0x1000))
//!             .lag(Lag::new(Some(0x2000), Some(Duration::from_millis(800)))).build())
//!         .build()?,
//! );
//! let router = Router::new(RouterConfig::default().balancer(PowerOfTwoEwma::default()));
//! let now = Instant::now();
//!
//! // A SeaORM insert on PostgreSQL arrives through `query_one`: the text decides.
//! let insert = explain(r#"INSERT INTO "post" ("title") VALUES ($1) RETURNING "id""#, Dialect::Postgres);
//! let route = router.route(&shared.load(), &RouteContext::new(&insert, now))?;
//! assert_eq!((route.target(), route.reason()), (NodeId::new(0), RouteReason::Write));
//!
//! // After the write the adapter captures a token; the next read must see it.
//! let token: CausalToken = "pg:1:7311234567890123456:1:0-3000".parse()?;
//! let ryw = Consistency::ReadYourWrites(token);
//! let select = explain(r#"SELECT "post"."id" FROM "post" WHERE "post"."id" = $1"#, Dialect::Postgres);
//! let route = router.route(&shared.load(), &RouteContext::new(&select, now).with_consistency(&ryw))?;
//! assert_eq!((route.target(), route.reason()), (NodeId::new(1), RouteReason::CaughtUp));
//! assert_eq!(route.fallbacks(), [NodeId::new(0)]); // replica-2 is behind: only the primary
//! # Ok::<(), rwsplit_core::Error>(())
//! ```
//!
//! # Performance
//!
//! Classifying a typical ORM `SELECT` takes about a hundred nanoseconds and a routing decision
//! over eight replicas a few tens; see `BENCHMARKS.md` and `cargo bench -p rwsplit-core`.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]
// Tests fail by panicking; library code never unwraps.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod balance;
mod classify;
mod consistency;
mod error;
mod health;
mod load;
mod node_id;
mod product;
mod role;
mod route;
mod router;
mod token;
mod topology;

// Every balancer, the trait and the list a configuration names them from: adding a balancer
// touches `balance/` alone.
pub use balance::*;
pub use classify::{
    Access, Classification, Classifier, DEFAULT_WRITE_FUNCTIONS, Detached, Dialect, Hint,
    MAX_SHAPE, Reason, Tables, classify, explain, shape, tables,
};
pub use consistency::{Consistency, LevelNameError, Staleness};
pub use error::{Error, Result};
pub use health::{Health, HealthPolicy, HealthTracker};
pub use load::{InFlight, NodeLoad};
pub use node_id::{MAX_NODES, NodeId};
pub use product::{Product, TokenKind};
pub use role::Role;
pub use route::{Excluded, PrimaryExcluded, Route, RouteError, RouteReason};
pub use router::{
    CatchUp, PrimaryReads, RouteContext, Router, RouterConfig, Rule, RuleAction, TableRule,
    TagRule, Target, Transaction,
};
pub use token::{CausalToken, Lsn, MariaDbGtid, MariaDbPosition, PgPosition, ReplayPosition};
pub use topology::{
    Lag, Node, NodeBuilder, SharedTopology, Topology, TopologyBuilder, TopologyGuard,
};
