//! The backend seam: where and how a node's server process runs. The native backend runs it as
//! a child process of this process; the containers backend in a Docker container of its own.
//! Products ([`crate::product::Product`]) never see which.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::cluster::{BackendKind, DbKind};
use crate::error::Result;
use crate::node::{Node, ProcessState};
use crate::product::Addr;

/// One node's server process, wherever it runs.
pub(crate) trait Runtime: std::fmt::Debug + Send + Sync {
    /// Starts the server (first start, or again after a crash or stop).
    fn start(&self) -> Result<()>;

    /// Fails with the log tail if the server has exited.
    fn check_alive(&self) -> Result<()>;

    /// The server's process id on this machine, when running.
    fn pid(&self) -> Option<u32>;

    /// What the server process is doing.
    fn state(&self) -> ProcessState;

    /// Freezes the server: it keeps its port open but answers nothing.
    fn hang(&self) -> Result<()>;

    /// Resumes a server frozen by [`Runtime::hang`].
    fn unhang(&self) -> Result<()>;

    /// Kills the server like a crash and waits until it is gone.
    fn crash(&self) -> Result<()>;

    /// Stops the server cleanly (fast shutdown) and waits for it.
    fn stop(&self) -> Result<()>;

    /// The data directory on this machine.
    fn data_dir(&self) -> &Path;

    /// The server log on this machine.
    fn log_path(&self) -> &Path;

    /// How the other nodes reach this one for replication.
    fn replication_addr(&self) -> Addr;

    /// Kills the server for good (teardown) and waits until it is gone.
    fn destroy(&self) -> Result<()>;
}

/// A cluster's processes as a backend made them.
pub(crate) trait Backend: std::fmt::Debug + Send + Sync {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;

    /// Stops every node for good and removes what the backend made for the cluster (processes,
    /// containers, networks), but not the cluster directory.
    fn teardown(&self, nodes: &[Node]) -> Result<()> {
        let mut first = Ok(());
        for n in nodes {
            if let Err(e) = n.runtime.destroy()
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        first
    }

    /// The backend's part of a [`crate::ClusterState`]: an identifier of its resources.
    fn run_id(&self) -> Option<String> {
        None
    }
}

/// What a backend needs to create a cluster's nodes.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) db: DbKind,
    pub(crate) name: String,
    /// Host ports on 127.0.0.1, node 0 first.
    pub(crate) ports: Vec<u16>,
    pub(crate) settings: Vec<(String, String)>,
    pub(crate) root: PathBuf,
    pub(crate) bin_dir: Option<PathBuf>,
}

/// Maps the addresses nodes use for one another (as a replica's upstream appears in its
/// status) to the port this process reaches that server on.
#[derive(Debug, Clone, Default)]
pub(crate) struct Routes(Arc<Mutex<Vec<(Addr, u16)>>>);

impl Routes {
    pub(crate) fn add(&self, addr: Addr, client_port: u16) {
        let mut v = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        v.retain(|(a, _)| *a != addr);
        v.push((addr, client_port));
    }

    pub(crate) fn client_port(&self, addr: &Addr) -> Option<u16> {
        let v = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        v.iter().find(|(a, _)| a == addr).map(|(_, p)| *p)
    }
}

/// What a backend made for a new cluster: its directory, one runtime per node (none started),
/// and itself.
#[derive(Debug)]
pub(crate) struct Created {
    pub(crate) dir: PathBuf,
    pub(crate) runtimes: Vec<Box<dyn Runtime>>,
    pub(crate) backend: Box<dyn Backend>,
    /// The server binaries used (native backend).
    pub(crate) bin_dir: PathBuf,
}
