//! The testkit's error type.

use std::path::PathBuf;

/// Everything that can go wrong while starting, controlling or stopping a cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database server binaries could not be found.
    #[error(
        "{db} server binaries not found (looked in: {searched}); {hint}",
        searched = display_paths(searched)
    )]
    BinariesNotFound {
        /// Which database the binaries are for.
        db: &'static str,
        /// Every directory that was searched, in order.
        searched: Vec<PathBuf>,
        /// How to install them or point the testkit at them.
        hint: &'static str,
    },
    /// A port the cluster was asked to use is already taken by another process.
    #[error(
        "port {port} on 127.0.0.1 is already in use; pick another base port or stop what holds it"
    )]
    PortInUse {
        /// The port that is taken.
        port: u16,
    },
    /// A server process did not start or did not become ready in time.
    #[error("node {node} failed to start: {reason}\n--- last lines of {log} ---\n{log_tail}")]
    NodeStartFailed {
        /// The node's name, e.g. `n1`.
        node: String,
        /// What was observed (exit status, timeout).
        reason: String,
        /// The node's log file.
        log: PathBuf,
        /// The last lines of the node's log.
        log_tail: String,
    },
    /// The cluster did not reach the expected state in time.
    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout {
        /// What was being waited for.
        what: String,
        /// How long it waited.
        waited: std::time::Duration,
    },
    /// A helper command (initdb, cp, useradd, …) failed.
    #[error("`{command}` failed: {output}")]
    Command {
        /// The command line, without secrets.
        command: String,
        /// Its exit status and the tail of its output.
        output: String,
    },
    /// A control was asked of a node that cannot do it (e.g. pausing replay on a primary).
    #[error("node {node}: {what}")]
    InvalidControl {
        /// The node's name.
        node: String,
        /// What was wrong.
        what: String,
    },
    /// An index named no node of the cluster.
    #[error("the cluster has no node {index} (it has {len})")]
    NoSuchNode {
        /// The index asked for.
        index: usize,
        /// How many nodes there are.
        len: usize,
    },
    /// A SQL statement sent to a node failed.
    #[error("sql on node {node} failed: {sql}")]
    Sql {
        /// The node's name.
        node: String,
        /// The statement (never contains credentials).
        sql: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A state file could not be read or written.
    #[error("cluster state file {path}: {what}")]
    State {
        /// The state file.
        path: PathBuf,
        /// What went wrong.
        what: String,
    },
    /// An environment variable or setting has a value the testkit does not understand.
    #[error("{name}: {what}")]
    InvalidSetting {
        /// The variable or setting.
        name: &'static str,
        /// What is wrong with its value.
        what: String,
    },
    /// A Docker command failed (containers backend).
    #[error("docker {command} failed: {output}")]
    Docker {
        /// The docker subcommand and its arguments.
        command: String,
        /// Its exit status and the tail of its output.
        output: String,
    },
    /// An HTTP request to Patroni's REST API or etcd failed before an answer came.
    #[error("{request} failed: {reason}")]
    Http {
        /// The method and URL (never with credentials).
        request: String,
        /// What went wrong.
        reason: String,
    },
    /// Patroni or etcd answered, but not as expected.
    #[error("{request} answered {status}: {body}")]
    HttpStatus {
        /// The method and URL (never with credentials).
        request: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// A directory the servers need (the clusters' root or the template cache) lies below one
    /// that the unprivileged user they run as (when the testkit runs as root) cannot enter:
    /// found before any server starts, instead of `initdb` or `postgres` failing with
    /// `Permission denied`.
    #[error(
        "the database servers run as user `{user}`, which cannot reach {dir}: {blocked} (mode \
         {mode:04o}) does not let it in; run `chmod o+x {blocked}`, or set {setting} to a \
         directory outside it"
    )]
    UnreachableDir {
        /// The directory the servers need.
        dir: PathBuf,
        /// The first directory on the way to it that the user cannot search.
        blocked: PathBuf,
        /// `blocked`'s permission bits.
        mode: u32,
        /// The servers' user (its name, or its uid if it has none).
        user: String,
        /// The environment variable that moves `dir` (`RWSPLIT_TESTKIT_DIR` or
        /// `RWSPLIT_TESTKIT_CACHE`).
        setting: &'static str,
    },
    /// An operating-system call failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// The testkit's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn display_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "nowhere".to_owned();
    }
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

pub(crate) trait IoContext<T> {
    fn io_context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn io_context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io { what: what(), source })
    }
}
