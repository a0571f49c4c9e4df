//! A replicated cluster: its builder, its nodes, and teardown (the facade tests use; the
//! vocabulary it shares with the backends is in [`crate::vocab`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{Backend, Created, Plan, Routes, Runtime};
use crate::error::{Error, Result};
use crate::node::Node;
use crate::product::{self, Control, Product};
use crate::state::{ClusterState, NodeState};
use crate::vocab::{
    BackendKind, DbKind, STREAM_TIMEOUT, allocate_ports, default_root, ensure_traversable_dir,
    sanitize, unique,
};

/// Configures and starts a [`Cluster`].
///
/// ```no_run
/// # async fn demo() -> rwsplit_testkit::Result<()> {
/// use rwsplit_testkit::{Cluster, DbKind};
/// let pg = Cluster::builder().replicas(2).start().await?;
/// let maria = Cluster::builder().db(DbKind::MariaDb).replicas(1).start().await?;
/// println!("{} and {}", pg.primary_url(), maria.primary_url());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ClusterBuilder {
    db: DbKind,
    backend: BackendKind,
    replicas: usize,
    base_port: Option<u16>,
    keep: bool,
    bin_dir: Option<PathBuf>,
    root: Option<PathBuf>,
    settings: Vec<(String, String)>,
    name: String,
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        ClusterBuilder {
            db: DbKind::Postgres,
            backend: BackendKind::from_env().unwrap_or_default(),
            replicas: 2,
            base_port: None,
            keep: crate::vocab::env_setting("RWSPLIT_TESTKIT_KEEP").is_some_and(|(_, v)| v == "1"),
            bin_dir: None,
            root: None,
            settings: Vec::new(),
            name: "cluster".into(),
        }
    }
}

impl ClusterBuilder {
    /// The database server to run (default PostgreSQL).
    pub fn db(mut self, db: DbKind) -> Self {
        self.db = db;
        self
    }

    /// Where the servers run (default: `$RWSPLIT_TESTKIT_BACKEND`, else native processes).
    pub fn backend(mut self, backend: BackendKind) -> Self {
        self.backend = backend;
        self
    }

    /// How many replicas to start beside the primary (default 2).
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n;
        self
    }

    /// Use ports `base`, `base + 1`, … instead of free ports picked at random in 20000–29999.
    /// A taken port is then an error rather than a reason to pick another.
    pub fn base_port(mut self, base: u16) -> Self {
        self.base_port = Some(base);
        self
    }

    /// Keep the servers running and the data on disk when the cluster is dropped (for debugging).
    /// Also on when the environment has `RWSPLIT_TESTKIT_KEEP=1`.
    pub fn keep(mut self, keep: bool) -> Self {
        self.keep = keep;
        self
    }

    /// The directory holding the server binaries (native backend; containers bring their own).
    /// Default for PostgreSQL: `$RWSPLIT_TESTKIT_PG_BIN`, then the newest
    /// `/usr/lib/postgresql/*/bin`, then `PATH`; for MariaDB: `$RWSPLIT_TESTKIT_MARIADB_BIN`,
    /// then `/usr/sbin`, `/usr/bin` and `PATH`.
    pub fn bin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bin_dir = Some(dir.into());
        self
    }

    /// The directory under which clusters live (default: `$RWSPLIT_TESTKIT_DIR`, else
    /// `<tmp>/rwsplit-testkit`). Every ancestor must be traversable by the unprivileged server
    /// user. On containers the data lives in `/dev/shm/rwsplit-testkit` instead, and this
    /// directory labels the cluster's containers, for [`crate::reap_containers`].
    pub fn root_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.root = Some(dir.into());
        self
    }

    /// An extra server setting for every node: `-c key=value` for PostgreSQL, `--key=value` for
    /// MariaDB.
    pub fn setting(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((key.into(), value.into()));
        self
    }

    /// A short name used in directory names and logs (default `cluster`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Starts the cluster: ready means the primary accepts connections, every replica
    /// replicates (PostgreSQL: streams; MariaDB: IO and SQL threads running), and every replica
    /// has applied what the primary wrote while it was set up (MariaDB: the `app` user and its
    /// grants; without that wait, a replica whose SQL thread runs may still refuse `app`'s
    /// first login under load).
    pub async fn start(self) -> Result<Cluster> {
        // A typo must not silently mean "native".
        BackendKind::from_env()?;
        let root = self.root.clone().unwrap_or_else(default_root);
        ensure_traversable_dir(&root)?;
        let plan = Plan {
            db: self.db,
            name: sanitize(&self.name),
            ports: allocate_ports(self.base_port, self.replicas + 1)?,
            settings: self.settings.clone(),
            root,
            bin_dir: self.bin_dir.clone(),
        };
        let created = match self.backend {
            BackendKind::Native => crate::native::create(&plan)?,
            BackendKind::Containers => crate::containers::create(&plan).await?,
        };
        let mut cluster =
            Cluster::assemble(created, product::for_kind(self.db), &plan.ports, self.keep, true);
        cluster.settings = plan.settings;
        let product = Arc::clone(&cluster.product);
        product.start_cluster(&cluster.controls()).await?;
        cluster.wait_replicating(cluster.nodes.len() - 1, STREAM_TIMEOUT).await?;
        cluster.wait_caught_up(0, STREAM_TIMEOUT).await?;
        Ok(cluster)
    }
}

/// A running primary with its replicas.
///
/// Dropping it stops every server it started and deletes its data, unless it was built with
/// [`ClusterBuilder::keep`] or turned into a [`ClusterState`] by [`Cluster::detach`].
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    nodes: Vec<Node>,
    product: Arc<dyn Product>,
    backend: Box<dyn Backend>,
    bin_dir: PathBuf,
    settings: Vec<(String, String)>,
    keep: bool,
    /// Whether this process started the cluster (and so stops it on drop).
    owned: bool,
}

impl Cluster {
    /// A builder with the defaults: PostgreSQL, native processes, two replicas.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// Takes control of a cluster started elsewhere (e.g. by `cargo xtask cluster up`). Dropping
    /// the returned value leaves the servers running; [`Cluster::stop`] stops them.
    pub fn attach(state: &ClusterState) -> Result<Cluster> {
        let created = match state.backend {
            BackendKind::Native => crate::native::attach(state)?,
            BackendKind::Containers => crate::containers::attach(state)?,
        };
        let ports: Vec<u16> = state.nodes.iter().map(|n| n.port).collect();
        let mut cluster =
            Cluster::assemble(created, product::for_kind(state.db), &ports, true, false);
        cluster.settings = state.settings.clone();
        Ok(cluster)
    }

    fn assemble(
        created: Created,
        product: Arc<dyn Product>,
        ports: &[u16],
        keep: bool,
        owned: bool,
    ) -> Cluster {
        let routes = Routes::default();
        let nodes: Vec<Node> = created
            .runtimes
            .into_iter()
            .zip(ports)
            .enumerate()
            .map(|(i, (runtime, &port))| {
                routes.add(runtime.replication_addr(), port);
                Node {
                    name: format!("n{i}"),
                    port,
                    product: Arc::clone(&product),
                    runtime,
                    routes: routes.clone(),
                }
            })
            .collect();
        Cluster {
            dir: created.dir,
            nodes,
            product,
            backend: created.backend,
            bin_dir: created.bin_dir,
            settings: Vec::new(),
            keep,
            owned,
        }
    }

    /// Where the servers run.
    pub fn backend(&self) -> BackendKind {
        self.backend.kind()
    }

    /// Which database this cluster runs.
    pub fn db(&self) -> DbKind {
        self.product.kind()
    }

    /// The directory holding the nodes' data and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every node; node 0 started as the primary.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Node `index`, or an error naming the valid range.
    pub fn node(&self, index: usize) -> Result<&Node> {
        self.nodes.get(index).ok_or(Error::NoSuchNode { index, len: self.nodes.len() })
    }

    /// The node that started as the primary (node 0).
    pub fn primary(&self) -> &Node {
        &self.nodes[0]
    }

    /// The nodes that started as replicas (nodes 1…).
    pub fn replicas(&self) -> &[Node] {
        &self.nodes[1..]
    }

    /// The application URL of the default database on the primary.
    pub fn primary_url(&self) -> String {
        self.primary().url()
    }

    /// The application URLs of the default database on each replica.
    pub fn replica_urls(&self) -> Vec<String> {
        self.replicas().iter().map(Node::url).collect()
    }

    /// Waits until `count` replicas replicate from node 0: on PostgreSQL, standbys streaming in
    /// `pg_stat_replication`; on MariaDB, replicas whose IO and SQL threads run.
    pub async fn wait_replicating(&self, count: usize, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            let got = self.count_replicating().await;
            if got >= count {
                return Ok(());
            }
            for n in self.replicas() {
                n.check_alive()?;
            }
            if start.elapsed() > timeout {
                return Err(Error::Timeout {
                    what: format!(
                        "{count} replicas to replicate from {} (saw {got})",
                        self.primary().name
                    ),
                    waited: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn count_replicating(&self) -> usize {
        self.product.replicating(&self.controls()).await
    }

    /// The nodes as the product sees them.
    fn controls(&self) -> Vec<&dyn Control> {
        self.nodes.iter().map(|n| n as &dyn Control).collect()
    }

    /// Waits until every running replica has applied everything node `primary` has written so
    /// far.
    pub async fn wait_caught_up(&self, primary: usize, timeout: Duration) -> Result<()> {
        let p = self.node(primary)?;
        for (i, n) in self.nodes.iter().enumerate() {
            if i != primary && n.is_running() {
                n.wait_caught_up_with(p, timeout).await?;
            }
        }
        Ok(())
    }

    /// Creates a fresh database on node 0 and waits until every running replica has it. It is
    /// dropped when the returned value is dropped.
    pub async fn create_database(&self, prefix: &str) -> Result<crate::TestDatabase> {
        let name = format!("{}_{}_{:x}", sanitize(prefix), std::process::id(), unique());
        let primary = self.primary();
        let (create, exists) =
            (self.product.create_database_sql(&name), self.product.database_exists_sql(&name));
        primary.admin(&create).await?;
        let start = Instant::now();
        for n in self.replicas().iter().filter(|n| n.is_running()) {
            while !matches!(n.text(&exists).await, Ok(Some(_))) {
                if start.elapsed() > STREAM_TIMEOUT {
                    return Err(Error::Timeout {
                        what: format!("database {name} to reach {}", n.name),
                        waited: STREAM_TIMEOUT,
                    });
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        Ok(crate::TestDatabase::new(
            name,
            primary.port,
            self.replicas().iter().map(|n| n.port).collect(),
            Arc::clone(&self.product),
        ))
    }

    /// Stops every node (SIGKILL) and deletes the data directory, whether or not this process
    /// started the cluster.
    pub fn stop(mut self) -> Result<()> {
        self.keep = false;
        self.owned = true;
        self.teardown()
    }

    /// Leaves the servers running after this value is gone, and returns what is needed to find
    /// and stop them later.
    pub fn detach(mut self) -> ClusterState {
        self.keep = true;
        self.state()
    }

    /// A description of the cluster that can be saved and later [attached](Cluster::attach).
    pub fn state(&self) -> ClusterState {
        ClusterState {
            db: self.product.kind(),
            backend: self.backend.kind(),
            run_id: self.backend.run_id(),
            dir: self.dir.clone(),
            bin_dir: self.bin_dir.clone(),
            settings: self.settings.clone(),
            nodes: self
                .nodes
                .iter()
                .map(|n| NodeState {
                    name: n.name.clone(),
                    port: n.port,
                    pid: n.pid(),
                    data_dir: n.data_dir().to_path_buf(),
                    log: n.log_path().to_path_buf(),
                })
                .collect(),
        }
    }

    fn teardown(&mut self) -> Result<()> {
        let runtimes: Vec<&dyn Runtime> = self.nodes.iter().map(|n| &*n.runtime).collect();
        self.backend.teardown(&runtimes)?;
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => {
                Err(Error::Io { what: format!("removing {}", self.dir.display()), source: e })
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.keep || !self.owned {
            if self.owned {
                tracing::warn!(dir = %self.dir.display(), "keeping the cluster (RWSPLIT_TESTKIT_KEEP)");
            }
            return;
        }
        if let Err(e) = self.teardown() {
            tracing::error!(error = %e, "cluster teardown failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::error::Error;
    use crate::vocab::DbKind;

    #[test]
    fn missing_binaries_say_how_to_install_them() {
        let empty = std::env::temp_dir().join(format!("rwsplit-empty-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        let err = crate::native::Engine::discover(DbKind::Postgres, Some(&empty)).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::BinariesNotFound { .. }));
        assert!(text.contains("apt-get install postgresql"), "{text}");
        assert!(text.contains(&empty.display().to_string()), "{text}");
        std::fs::remove_dir_all(&empty).unwrap();
    }
}
