//! What is needed to find a detached cluster again: saved by `cargo xtask cluster up`, read by
//! `status` and `down`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::vocab::{BackendKind, DbKind};

/// A serialisable description of a running cluster: where its data is, which ports and which
/// process ids its servers have.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ClusterState {
    /// The database it runs.
    pub db: DbKind,
    /// Where its servers run.
    #[serde(default)]
    pub backend: BackendKind,
    /// The containers backend: the run id that names and labels its containers and networks.
    #[serde(default)]
    pub run_id: Option<String>,
    /// The directory holding the nodes' data and logs.
    pub dir: PathBuf,
    /// The server binaries it was started with (native backend).
    pub bin_dir: PathBuf,
    /// Extra `-c` settings every node was started with.
    pub settings: Vec<(String, String)>,
    /// Every node; node 0 started as the primary.
    pub nodes: Vec<NodeState>,
}

/// One node of a [`ClusterState`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct NodeState {
    /// The node's name.
    pub name: String,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The server's process id when the state was taken.
    pub pid: Option<u32>,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its server log.
    pub log: PathBuf,
}

impl ClusterState {
    /// Writes the state as JSON to `path`, creating parent directories.
    pub fn save(&self, path: &Path) -> Result<()> {
        let err = |what: String| Error::State { path: path.to_path_buf(), what };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| err(e.to_string()))?;
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| err(e.to_string()))?;
        std::fs::write(path, text).map_err(|e| err(e.to_string()))
    }

    /// Reads a state written by [`ClusterState::save`].
    pub fn load(path: &Path) -> Result<ClusterState> {
        let err = |what: String| Error::State { path: path.to_path_buf(), what };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| err(format!("not a cluster state: {e}")))
    }
}
