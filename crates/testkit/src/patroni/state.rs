//! [`PatroniState`]: what `cargo xtask cluster up --ha patroni` saves to find, describe and
//! stop a detached cluster.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use super::{MemberTags, PatroniMember, Secrets};

/// What is needed to find a detached [`PatroniCluster`](super::PatroniCluster) again: its
/// directory, scope, etcd and members. `Debug` shows no password; the JSON file holds them (it
/// lives under `target/`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PatroniState {
    dir: PathBuf,
    scope: String,
    etcd_url: String,
    secrets: Secrets,
    members: Vec<PatroniMemberState>,
}

/// One member of a [`PatroniState`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct PatroniMemberState {
    name: String,
    pg_port: u16,
    rest_port: u16,
}

impl PatroniState {
    /// The state of a cluster in `dir` with Patroni scope `scope`, etcd at `etcd_url`, the
    /// passwords `secrets` and the members `members`.
    pub(super) fn new(
        dir: &Path,
        scope: &str,
        etcd_url: String,
        secrets: &Secrets,
        members: &[PatroniMember],
    ) -> PatroniState {
        PatroniState {
            dir: dir.to_path_buf(),
            scope: scope.to_owned(),
            etcd_url,
            secrets: secrets.clone(),
            members: members
                .iter()
                .map(|m| PatroniMemberState {
                    name: m.name().to_owned(),
                    pg_port: m.pg_port(),
                    rest_port: m.rest_port(),
                })
                .collect(),
        }
    }

    /// The cluster's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its Patroni scope.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// etcd's client URL.
    pub fn etcd_url(&self) -> &str {
        &self.etcd_url
    }

    /// Its members when the state was taken.
    pub fn members(&self) -> Vec<PatroniMember> {
        self.members
            .iter()
            .map(|m| {
                PatroniMember::new(
                    &m.name,
                    m.pg_port,
                    m.rest_port,
                    &self.secrets,
                    MemberTags::none(),
                )
            })
            .collect()
    }

    /// Writes the state as JSON to `path`, creating parent directories.
    pub fn save(&self, path: &Path) -> Result<()> {
        let err = |what: String| Error::State { path: path.to_path_buf(), what };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| err(e.to_string()))?;
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| err(e.to_string()))?;
        fs::write(path, text).map_err(|e| err(e.to_string()))
    }

    /// Reads a state written by [`PatroniState::save`].
    pub fn load(path: &Path) -> Result<PatroniState> {
        let err = |what: String| Error::State { path: path.to_path_buf(), what };
        let text = fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| err(format!("not a patroni cluster state: {e}")))
    }

    /// Stops every process whose command line names the cluster's directory (Patronis,
    /// postmasters, etcd), waits until they are gone, deletes the directory, and returns their
    /// pids.
    pub fn destroy(self) -> Result<Vec<u32>> {
        let pids = crate::reap_orphans(&self.dir);
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(pids),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(pids),
            Err(e) => {
                Err(Error::Io { what: format!("removing {}", self.dir.display()), source: e })
            }
        }
    }
}
