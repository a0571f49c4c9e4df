//! The product seam: everything the testkit knows about one database server product (the SQL
//! behind setup, readiness and each control), whichever backend runs its processes.
//!
//! A [`Product`] describes a node the way testcontainers-rs' `Image` describes a container:
//! how a fresh cluster is set up once its processes exist ([`Product::start_cluster`]), when it
//! is ready ([`Product::replicating`]), and the controls (pause and resume replay, apply delay,
//! promote, follow). Where and how the processes run is the backend's business
//! ([`crate::backend::Runtime`]); a product reaches a node only through [`Control`], which
//! `crate::node::Node` implements: its name, its process, SQL on it, and its addresses. The SQL
//! of the setup, the readiness checks and the controls is the product's, in its module.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::Routes;
use crate::error::{Error, Result};
use crate::sql::Conn;
use crate::vocab::{Addr, DbKind};

pub(crate) mod mariadb;
pub(crate) mod postgres;

/// A boxed future, so that [`Product`] can be used as a trait object.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a product's setup and controls do to one node (`crate::node::Node` is the one
/// implementation): the product sees a node through this and nothing else of it.
pub(crate) trait Control: Sync {
    /// The node's name, for errors and replication slots.
    fn name(&self) -> &str;

    /// Whether its server process runs (or is paused).
    fn is_running(&self) -> bool;

    /// Starts its server process.
    fn start(&self) -> Result<()>;

    /// Waits until the server accepts connections, failing with its log after `timeout`.
    fn wait_accepting(&self, timeout: Duration) -> BoxFuture<'_, Result<()>>;

    /// A control connection (superuser) to the default database.
    fn conn(&self) -> BoxFuture<'_, Result<Conn>>;

    /// Runs `sql` (one or more statements) as the superuser on database `db`.
    fn execute<'a>(&'a self, db: &'a str, sql: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Runs `sql` on the default database and returns its first column as text.
    fn text<'a>(&'a self, sql: &'a str) -> BoxFuture<'a, Result<Option<String>>>;

    /// Runs `sql` on the default database as the superuser.
    fn admin<'a>(&'a self, sql: &'a str) -> BoxFuture<'a, Result<()>>;

    /// The error for `sql` failing on it.
    fn sql_error(&self, sql: &str, source: sqlx::Error) -> Error;

    /// The error for a control it cannot do, saying `what`.
    fn invalid(&self, what: &str) -> Error;

    /// Which port of this process reaches an address the node's server names.
    fn routes(&self) -> &Routes;

    /// How the other nodes reach it for replication.
    fn replication_addr(&self) -> Addr;
}

/// Starts `nodes` at once, one thread each (a `docker start` takes 0.3–0.5 s, mostly waiting on
/// the engine); the first error wins.
fn start_all(nodes: &[&dyn Control]) -> Result<()> {
    std::thread::scope(|scope| {
        let started: Vec<_> = nodes.iter().map(|n| scope.spawn(|| n.start())).collect();
        started.into_iter().try_for_each(|h| {
            h.join().unwrap_or_else(|_| {
                Err(Error::InvalidControl {
                    node: "?".into(),
                    what: "the thread starting it panicked".into(),
                })
            })
        })
    })
}

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
    fn start_cluster<'a>(&'a self, nodes: &'a [&'a dyn Control]) -> BoxFuture<'a, Result<()>>;

    /// How many of `nodes[1..]` replicate from `nodes[0]`.
    fn replicating<'a>(&'a self, nodes: &'a [&'a dyn Control]) -> BoxFuture<'a, usize>;

    /// Waits until `node` has applied everything `primary` has written so far.
    fn wait_caught_up<'a>(
        &'a self,
        node: &'a dyn Control,
        primary: &'a dyn Control,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<()>>;

    /// Makes replica `node` apply each change `delay` after it happened, in effect on return.
    fn set_apply_delay<'a>(
        &'a self,
        node: &'a dyn Control,
        delay: Duration,
    ) -> BoxFuture<'a, Result<()>>;

    /// Removes an apply delay, in effect on return.
    fn clear_apply_delay<'a>(&'a self, node: &'a dyn Control) -> BoxFuture<'a, Result<()>>;

    /// Promotes replica `node` and returns once it accepts writes.
    fn promote<'a>(&'a self, node: &'a dyn Control) -> BoxFuture<'a, Result<()>>;

    /// Re-points replica `node` at `upstream` (another node's replication address, or a proxy in
    /// front of it) without a restart. `slot_on` is the node the upstream address leads to,
    /// where PostgreSQL needs the replica's slot.
    fn follow<'a>(
        &'a self,
        node: &'a dyn Control,
        slot_on: &'a dyn Control,
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
