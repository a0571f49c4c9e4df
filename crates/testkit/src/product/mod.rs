//! The product seam: everything the testkit knows about one database server product (the SQL
//! behind setup, readiness and each control), whichever backend runs its processes.
//!
//! A [`Product`] describes a node the way testcontainers-rs' `Image` describes a container:
//! how a fresh cluster is set up once its processes exist ([`Product::start_cluster`]), when it
//! is ready ([`Product::replicating`]), and the controls (pause and resume replay, apply delay,
//! promote, follow). Where and how the processes run is the backend's business
//! ([`crate::backend::Runtime`]); a product reaches a node only through [`Node`]'s SQL helpers
//! and its addresses.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::node::Node;
use crate::vocab::{Addr, DbKind};

pub(crate) mod mariadb;
pub(crate) mod postgres;

/// A boxed future, so that [`Product`] can be used as a trait object.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One database server product.
pub(crate) trait Product: std::fmt::Debug + Send + Sync {
    /// Which product this is.
    fn kind(&self) -> DbKind;

    /// The database every server has, for control connections.
    fn admin_db(&self) -> &'static str;

    /// The URL applications use for database `db` on `port` of 127.0.0.1.
    fn url(&self, port: u16, db: &str) -> String;

    /// The URL of the testkit's own (superuser) control connections.
    fn admin_url(&self, port: u16, db: &str) -> String;

    /// Creates database `name`.
    fn create_database_sql(&self, name: &str) -> String;

    /// Returns a row when database `name` exists.
    fn database_exists_sql(&self, name: &str) -> String;

    /// Drops database `name`, closing its sessions where the product can.
    fn drop_database_sql(&self, name: &str) -> String;

    /// `true`/`false` text: whether the server is a replica.
    fn is_replica_sql(&self) -> &'static str;

    /// The node's replication position as text (replay position on a replica).
    fn position_sql(&self) -> &'static str;

    /// Received but not replayed bytes, where the product reports them.
    fn unreplayed_sql(&self) -> Option<&'static str>;

    /// Stops applying replicated changes (the replica keeps receiving them).
    fn pause_replay_sql(&self) -> &'static str;

    /// Resumes applying replicated changes.
    fn resume_replay_sql(&self) -> &'static str;

    /// Sets a fresh cluster up once its nodes exist but none runs: starts them in the product's
    /// order, creates what replication needs, and returns once every node accepts connections.
    fn start_cluster<'a>(&'a self, nodes: &'a [Node]) -> BoxFuture<'a, Result<()>>;

    /// How many of `nodes[1..]` replicate from `nodes[0]`.
    fn replicating<'a>(&'a self, nodes: &'a [Node]) -> BoxFuture<'a, usize>;

    /// Waits until `node` has applied everything `primary` has written so far.
    fn wait_caught_up<'a>(
        &'a self,
        node: &'a Node,
        primary: &'a Node,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<()>>;

    /// Makes replica `node` apply each change `delay` after it happened, in effect on return.
    fn set_apply_delay<'a>(&'a self, node: &'a Node, delay: Duration) -> BoxFuture<'a, Result<()>>;

    /// Removes an apply delay, in effect on return.
    fn clear_apply_delay<'a>(&'a self, node: &'a Node) -> BoxFuture<'a, Result<()>>;

    /// Promotes replica `node` and returns once it accepts writes.
    fn promote<'a>(&'a self, node: &'a Node) -> BoxFuture<'a, Result<()>>;

    /// Re-points replica `node` at `upstream` (another node's replication address, or a proxy in
    /// front of it) without a restart. `slot_on` is the node the upstream address leads to,
    /// where PostgreSQL needs the replica's slot.
    fn follow<'a>(
        &'a self,
        node: &'a Node,
        slot_on: &'a Node,
        upstream: Addr,
    ) -> BoxFuture<'a, Result<()>>;
}

/// The product for `kind`.
pub(crate) fn for_kind(kind: DbKind) -> Arc<dyn Product> {
    match kind {
        DbKind::Postgres => Arc::new(postgres::Postgres),
        DbKind::MariaDb => Arc::new(mariadb::MariaDb),
    }
}
