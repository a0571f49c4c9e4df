//! The knobs most applications never turn, and what implementing one takes: the router
//! ([`RouterConfig`]: balancers, rules, primary reads, a lag limit), the monitor and health
//! ([`MonitorConfig`], [`HealthPolicy`]), topology sources ([`PatroniSource`], [`DnsSource`], a
//! [`TopologySource`] of your own), automatic failover ([`AutoFailover`]), the classifier, and
//! the topology types a [`Balancer`] or [`Rule`] reads.
//!
//! The everyday API is at the crate root: [`RoutedConnection`](crate::RoutedConnection), its
//! builder, [`RoutedConfig`](crate::RoutedConfig), [`Consistency`](crate::Consistency),
//! [`Session`](crate::Session) and its token, and the errors. Each item here is what a builder
//! setter takes:
//!
//! ```no_run
//! # async fn demo() -> Result<(), rwsplit_sea_orm::Error> {
//! use rwsplit_sea_orm::RoutedConnection;
//! use rwsplit_sea_orm::advanced::{PowerOfTwoEwma, RouterConfig, TableRule};
//!
//! let db = RoutedConnection::builder()
//!     .primary("postgres://app@db-1/app")
//!     .replica("postgres://app@db-2/app")
//!     .router(
//!         RouterConfig::default()
//!             .balancer(PowerOfTwoEwma::default())
//!             .rule(TableRule::only_tagged(["events"], "analytics")),
//!     )
//!     .connect()
//!     .await?;
//! # drop(db);
//! # Ok(()) }
//! ```

// Every balancer core has (a new one in core's `balance/` is here with nothing else to change).
pub use rwsplit_core::balance::*;
// Routing rules, and what implementing `Balancer` or `Rule` needs.
pub use rwsplit_core::{
    Access, Node, NodeId, NodeLoad, PrimaryReads, RouteContext, RouteError, RouterConfig, Rule,
    RuleAction, TableRule, TagRule, Transaction,
};
// Health, lag, positions and the classifier.
pub use rwsplit_core::{
    CausalToken, Classifier, Health, HealthPolicy, Lag, ReplayPosition, Role, TokenKind,
};
// The monitor, topology sources and automatic failover.
pub use crate::nodes::probe::MONITOR_APPLICATION;
pub use rwsplit_monitor::{
    AutoFailover, DnsSource, Member, MemberRole, MemberTags, MonitorConfig, PatroniSource,
    SourceError, StaticSource, TopologySource,
};
