//! Starts and breaks real replicated database clusters for rwsplit's tests, examples and
//! benchmarks.
//!
//! A [`Cluster`] is a primary with N replicas (default 2) on loopback ports: PostgreSQL with
//! streaming replication and hot standbys, or MariaDB with GTID replication and `read_only`
//! replicas. On the native backend (default) the servers are children of the calling process,
//! from the server binaries installed on the machine; as root they run as an unprivileged user
//! (`postgres` or `mysql` if it exists, else `rwsplit`, created on demand). On the containers
//! backend ([`BackendKind::Containers`]) each runs in a Docker container of its own, from an
//! image the testkit builds from Debian's packages, on networks of the cluster's own. Dropping
//! the cluster stops them and deletes their data, unless it was [kept](ClusterBuilder::keep) or
//! [detached](Cluster::detach).
//!
//! Each [`Node`] has the controls the tests need: pause and resume replay, an apply delay,
//! hang and unhang, crash and restart, promote and follow; on containers also the network
//! faults (cut its replication link or its clients, one-way partitions); on both, latency and
//! jitter through a [`DelayProxy`]; and a real PgBouncer in front of a PostgreSQL node
//! ([`Node::pgbouncer`], session or transaction pooling; [`Node::pgbouncer_ignoring`] also
//! drops startup parameters such as `options`).
//!
//! ```no_run
//! # async fn demo() -> rwsplit_testkit::Result<()> {
//! use std::time::Duration;
//! let cluster = rwsplit_testkit::Cluster::builder().replicas(2).start().await?;
//! let db = cluster.create_database("demo").await?;
//! // ... connect to db.primary_url() and db.replica_urls() ...
//! cluster.replicas()[0].pause_replay().await?;  // replica 1 stops advancing
//! cluster.replicas()[0].resume_replay().await?;
//! cluster.wait_caught_up(0, Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```
//!
//! # Testing your application against lagging replicas
//!
//! The testkit is for an application's own tests too: "does my handler read its own write
//! when a replica is 300 ms late, and does it still answer when one dies?" Start the cluster in
//! an rstest fixture, point the application's `RoutedConnection` at
//! [`Cluster::primary_url`] and [`Cluster::replica_urls`], and break things with the [`Node`]
//! controls:
//!
//! ```no_run
//! use std::time::Duration;
//! use rstest::{fixture, rstest};
//! use rwsplit_testkit::Cluster;
//!
//! #[fixture]
//! async fn cluster() -> Cluster {
//!     let cluster = Cluster::builder().name("my-app").replicas(2).start().await.unwrap();
//!     let schema = "CREATE TABLE notes (id bigserial PRIMARY KEY, text text NOT NULL)";
//!     cluster.primary().execute("postgres", schema).await.unwrap();
//!     cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();
//!     cluster
//! }
//!
//! #[rstest]
//! #[tokio::test]
//! async fn reads_its_own_write(#[future(awt)] cluster: Cluster) {
//!     // let db = RoutedConnection::builder().primary(cluster.primary_url())
//!     //     .replicas(cluster.replica_urls()).connect().await?;
//!     cluster.replicas()[0].set_apply_delay(Duration::from_millis(300)).await.unwrap();
//!     // ... call the handler with &db, assert it sees its write ...
//!     cluster.replicas()[1].crash().unwrap();
//!     // ... call it again, assert it still answers ...
//! }
//! # fn main() {}
//! ```
//!
//! The complete test is `examples/tests/lagging_replicas.rs` in rwsplit's repository (run in
//! its CI), and the README's "Testing your app against lagging replicas" section says what to
//! install. In short: the server binaries (`apt-get install postgresql`, or `mariadb-server
//! mariadb-client`); as root, nothing more (the servers run as `postgres`/`mysql`, else an
//! `rwsplit` user the testkit creates), but that user must reach `$RWSPLIT_TESTKIT_DIR` and
//! `$RWSPLIT_TESTKIT_CACHE` (a root below a `0700` directory is [`Error::UnreachableDir`],
//! before any server starts); Docker only for [`BackendKind::Containers`]. For tests outside
//! cargo, `cargo xtask cluster up` starts a cluster that outlives the command and prints
//! `DATABASE_URL` and `DATABASE_REPLICA_URLS` (`cargo xtask cluster down` stops it); a
//! Rust program drives its nodes with [`Cluster::attach`] on [`ClusterState::load`] of the
//! state file it names (`target/rwsplit/cluster.json`).
//!
//! [`PatroniCluster`] is the other kind: one etcd and N PostgreSQL members managed by
//! Patroni (from Debian's `patroni` and `etcd-server`), with an operator's controls
//! (switchover, member kill, add and remove members, tags, synchronous mode) and its REST API;
//! its module docs say why it is a type of its own.
//!
//! # Layering
//!
//! The testkit depends on no other rwsplit crate. It is used by the integration tests, the
//! examples, the benchmarks and `cargo xtask`.
//!
//! # Seams
//!
//! [`DbKind`] is the database seam (PostgreSQL, MariaDB) and [`BackendKind`] the backend seam
//! (native processes, containers); with the timeouts and the directory helpers they are the
//! testkit's shared vocabulary, a leaf module every other module imports (none imports the
//! [`Cluster`] facade). Inside, each product is one implementation of a `Product` trait
//! (setup order, readiness, and the SQL behind every control, like testcontainers-rs' `Image`),
//! and each backend one implementation of a `Runtime` per node (start, freeze, kill, stop,
//! addresses) and a `Backend` per cluster (teardown). Tests, xtask and examples use only
//! [`Cluster`] and [`Node`], so they do not change with the backend.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout))]

mod backend;
mod cgroup;
mod cluster;
mod containers;
mod database;
mod error;
mod native;
mod node;
mod patroni;
mod pgbouncer;
mod product;
mod prometheus;
mod proxy;
mod sql;
mod state;
mod vocab;

pub use backend::ProcessState;
pub use cluster::{Cluster, ClusterBuilder};
pub use database::TestDatabase;
pub use error::{Error, Result};
pub use node::{Node, NodeStatus};
pub use patroni::{
    MemberTags, PatroniBuilder, PatroniCluster, PatroniMember, PatroniState, patroni_get,
};
pub use pgbouncer::{PgBouncer, PoolMode};
pub use prometheus::{Prometheus, PrometheusBuilder, Sample};
pub use proxy::DelayProxy;
pub use state::{ClusterState, NodeState};
pub use vocab::{BackendKind, DbKind, format_lsn, parse_lsn};

/// Removes every container and network (and their data) of clusters started under `root` on
/// the containers backend, and returns the containers' names: what a test process that died
/// without running its destructors left behind. `cargo xtask itest` calls it after the tests.
pub fn reap_containers(root: &std::path::Path) -> Vec<String> {
    containers::reap(root)
}

/// Makes sure the containers backend's node image exists, building it from Debian's packages
/// if this machine lacks it, and says what it did. Clusters on the containers backend do this
/// themselves; `cargo xtask image` calls it to measure the build.
pub fn ensure_node_image() -> Result<NodeImage> {
    let image = containers::image::ensure()?;
    Ok(NodeImage { reference: image.reference, built: image.built, seconds: image.seconds })
}

/// The containers backend's node image, as [`ensure_node_image`] found or built it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeImage {
    /// Its reference, `rwsplit-testkit/dbnode:<hash of the recipe>`.
    pub reference: String,
    /// Whether this call built it (else it existed).
    pub built: bool,
    /// The seconds this call took.
    pub seconds: f64,
}

/// Stops every server process whose command line mentions a directory below `root` and returns
/// their pids. `cargo xtask itest` calls it after the tests, so that a test process that died
/// without running its destructors leaves nothing behind.
pub fn reap_orphans(root: &std::path::Path) -> Vec<u32> {
    let pids = native::process::processes_mentioning(root.as_os_str());
    for &p in &pids {
        let _ = native::process::send(p, nix::sys::signal::Signal::SIGKILL);
        let _ = native::process::send(p, nix::sys::signal::Signal::SIGCONT);
    }
    native::process::wait_gone(&pids, std::time::Duration::from_secs(10));
    pids
}
