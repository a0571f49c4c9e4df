//! The backend seam: where and how a node's server process runs. The native backend runs it as
//! a child process of this process; the containers backend in a Docker container of its own.
//! Products ([`crate::product::Product`]) never see which.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::vocab::{Addr, BackendKind, DbKind};

/// What a node's server process is doing, as far as the operating system says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProcessState {
    /// Running.
    Running,
    /// Frozen ([`Node::hang`](crate::Node::hang): SIGSTOP natively, a paused container on containers).
    Hung,
    /// Not running (never started, crashed or stopped).
    Stopped,
}

impl std::fmt::Display for ProcessState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProcessState::Running => "running",
            ProcessState::Hung => "hung",
            ProcessState::Stopped => "stopped",
        })
    }
}

/// One node's server process, wherever it runs.
pub(crate) trait Runtime: std::fmt::Debug + Send + Sync {
    /// Starts the server (first start, or again after a crash or stop).
    fn start(&self) -> Result<()>;

    /// Fails with the log tail if the server has exited.
    fn check_alive(&self) -> Result<()>;

    /// The server's process id on this machine, when running.
    fn pid(&self) -> Option<u32>;

    /// Whether the server runs in a control group of its own (its CPU time is its own).
    fn own_cgroup(&self) -> bool {
        false
    }

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

    /// Network faults, where the backend has a network of its own (see [`Net`]).
    fn net(&self) -> Option<&dyn Net> {
        None
    }
}

/// The network controls of a backend whose nodes have their own network stack.
pub(crate) trait Net: std::fmt::Debug + Send + Sync {
    /// Cuts the node from the replication network; it keeps serving clients.
    fn cut_replication(&self) -> Result<()>;
    /// Undoes [`Net::cut_replication`].
    fn heal_replication(&self) -> Result<()>;
    /// Drops every packet from clients (this process, the application) to the node's server
    /// port; the node keeps replicating.
    fn cut_clients(&self) -> Result<()>;
    /// Undoes [`Net::cut_clients`].
    fn heal_clients(&self) -> Result<()>;
    /// Drops every packet the node receives from `peer` on the replication network (one way:
    /// what the node sends still arrives).
    fn drop_from(&self, peer: &dyn Net) -> Result<()>;
    /// Undoes [`Net::drop_from`].
    fn undrop_from(&self, peer: &dyn Net) -> Result<()>;
    /// The node's address on the replication network.
    fn replication_ip(&self) -> Result<String>;
    /// The node's address on the client network, which this machine reaches through the
    /// bridge (the server listens there on the port it publishes on 127.0.0.1).
    fn client_ip(&self) -> Result<String>;
    /// The replication network's gateway: an address of this machine the node can reach.
    fn gateway(&self) -> Result<String>;
}

/// A cluster's processes as a backend made them.
pub(crate) trait Backend: std::fmt::Debug + Send + Sync {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;

    /// Stops every node (`nodes`: their runtimes) for good and removes what the backend made
    /// for the cluster (processes, containers, networks), but not the cluster directory.
    fn teardown(&self, nodes: &[&dyn Runtime]) -> Result<()> {
        let mut first = Ok(());
        for n in nodes {
            if let Err(e) = n.destroy()
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

/// The error of a network control on a backend without a network of its own.
pub(crate) fn no_network(node: &str, what: &str) -> Error {
    Error::InvalidControl {
        node: node.to_owned(),
        what: format!(
            "{what} needs a network of the node's own: start the cluster with \
             `.backend(BackendKind::Containers)` (native servers share this machine's loopback)"
        ),
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
