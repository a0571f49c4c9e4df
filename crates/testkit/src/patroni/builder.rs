//! [`PatroniBuilder`]: a cluster's settings, and starting it (etcd, then the members, then
//! the application user).

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::native::unique;

use super::processes::Processes;
use super::{ETCD, INSTALL_HINT, MemberTags, PATRONI, PatroniCluster, READY_TIMEOUT, Settings};

/// Configures and starts a [`PatroniCluster`].
///
/// ```no_run
/// # async fn demo() -> rwsplit_testkit::Result<()> {
/// use rwsplit_testkit::PatroniCluster;
/// let cluster = PatroniCluster::builder().members(3).start().await?;
/// let leader = cluster.leader().await?.expect("a leader after start");
/// println!("{leader} leads; REST API at {}", cluster.member(&leader)?.rest_url());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct PatroniBuilder {
    members: usize,
    synchronous: bool,
    keep: bool,
    root: Option<PathBuf>,
    name: String,
    ttl: u32,
    loop_wait: u32,
    retry_timeout: u32,
}

impl Default for PatroniBuilder {
    fn default() -> Self {
        PatroniBuilder {
            members: 3,
            synchronous: false,
            keep: crate::vocab::env_setting("RWSPLIT_TESTKIT_KEEP").is_some_and(|(_, v)| v == "1"),
            root: None,
            name: "patroni".into(),
            ttl: 10,
            loop_wait: 1,
            retry_timeout: 4,
        }
    }
}

impl PatroniBuilder {
    /// How many members to start (default 3; at least 1).
    pub fn members(mut self, n: usize) -> Self {
        self.members = n;
        self
    }

    /// Start with Patroni's synchronous mode on (default off; [`PatroniCluster::set_synchronous`]
    /// changes it at run time).
    pub fn synchronous(mut self, on: bool) -> Self {
        self.synchronous = on;
        self
    }

    /// Leave the processes and data behind when the cluster is dropped (also with
    /// `RWSPLIT_TESTKIT_KEEP=1`).
    pub fn keep(mut self, keep: bool) -> Self {
        self.keep = keep;
        self
    }

    /// The directory under which clusters live (default `$RWSPLIT_TESTKIT_DIR`, else
    /// `<tmp>/rwsplit-testkit`); every ancestor must be traversable by the server user.
    pub fn root_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.root = Some(dir.into());
        self
    }

    /// A short name for directories and the Patroni scope (default `patroni`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Patroni's `ttl`, `loop_wait` and `retry_timeout` in seconds (default 10, 1, 4: failover
    /// in about 11 s). Patroni's rule `loop_wait + 2 * retry_timeout <= ttl` is checked.
    pub fn timing(mut self, ttl: u32, loop_wait: u32, retry_timeout: u32) -> Self {
        self.ttl = ttl;
        self.loop_wait = loop_wait;
        self.retry_timeout = retry_timeout;
        self
    }

    /// Starts etcd and the members; ready means one leader that accepts writes, every other
    /// member streaming from it, and the application user and database on every member.
    pub async fn start(self) -> Result<PatroniCluster> {
        if self.members == 0 {
            return Err(Error::InvalidSetting {
                name: "members",
                what: "a Patroni cluster needs at least one member".into(),
            });
        }
        if self.loop_wait + 2 * self.retry_timeout > self.ttl {
            return Err(Error::InvalidSetting {
                name: "timing",
                what: format!(
                    "loop_wait ({}) + 2 * retry_timeout ({}) must not exceed ttl ({})",
                    self.loop_wait, self.retry_timeout, self.ttl
                ),
            });
        }
        for bin in [PATRONI, ETCD] {
            if !Path::new(bin).is_file() {
                return Err(Error::BinariesNotFound {
                    db: "Patroni/etcd",
                    searched: vec![PathBuf::from(bin)],
                    hint: INSTALL_HINT,
                });
            }
        }
        let pg = crate::native::postgres::PgEngine::discover(None)?;
        let root = self.root.clone().unwrap_or_else(crate::vocab::default_root);
        crate::vocab::ensure_traversable_dir(&root)?;
        if let Some(r) = pg.run_as {
            crate::vocab::ensure_reachable(&root, r.server_user(), "RWSPLIT_TESTKIT_DIR")?;
        }
        let name = crate::vocab::sanitize(&self.name);
        let dir = crate::vocab::cluster_dir(&root, &name)?;
        let ports = crate::vocab::allocate_ports(None, 2)?;
        let scope = format!("{name}-{:x}", unique() & 0xff_ffff);
        let settings = Settings {
            synchronous: self.synchronous,
            ttl: self.ttl,
            loop_wait: self.loop_wait,
            retry_timeout: self.retry_timeout,
        };
        let processes =
            Processes::new(dir, scope, (ports[0], ports[1]), pg.bin, pg.run_as, settings);
        let cluster = PatroniCluster { processes, keep: self.keep };
        let started = Instant::now();
        cluster.processes.start_etcd().await?;
        for _ in 0..self.members {
            cluster.processes.spawn_new_member(MemberTags::none())?;
        }
        cluster.wait_ready(READY_TIMEOUT.saturating_sub(started.elapsed())).await?;
        cluster.create_app_user().await?;
        tracing::info!(
            scope = %cluster.scope(),
            seconds = started.elapsed().as_secs_f64(),
            "patroni cluster ready"
        );
        Ok(cluster)
    }
}
