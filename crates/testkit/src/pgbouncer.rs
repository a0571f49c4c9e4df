//! A real PgBouncer in front of one PostgreSQL node, in session or transaction pooling mode.
//!
//! PgBouncer runs on this machine (Debian's `pgbouncer` package, `/usr/sbin/pgbouncer`) on both
//! backends: natively the node listens on 127.0.0.1, on containers it publishes its port there.
//! Its configuration is the one a production setup in front of a replica would have, as far as
//! rwsplit is concerned: `auth_type = trust` (the testkit's nodes trust loopback),
//! `server_reset_query = DISCARD ALL`, `ignore_startup_parameters = extra_float_digits` (sqlx
//! sends it), and nothing that forwards `options`. [`Node::pgbouncer_ignoring`] lists more
//! startup parameters to drop (`options`: the pooler that silently drops a URL's `-c …`).
//!
//! [`Node::pgbouncer_ignoring`]: crate::Node::pgbouncer_ignoring

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};
use crate::native::process::{self, RunAs};

/// PgBouncer's `pool_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PoolMode {
    /// `session`: a server connection per client connection, for as long as it lasts.
    Session,
    /// `transaction`: a server connection per transaction; statements outside a transaction
    /// are transactions of their own.
    Transaction,
}

impl PoolMode {
    /// The `pool_mode` value.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
        }
    }
}

impl std::fmt::Display for PoolMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A PgBouncer process in front of one node. Dropping it kills the process and deletes its
/// directory. Make one with [`Node::pgbouncer`](crate::Node::pgbouncer).
///
/// ```no_run
/// # async fn demo(cluster: &rwsplit_testkit::Cluster) -> rwsplit_testkit::Result<()> {
/// use rwsplit_testkit::PoolMode;
/// let bouncer = cluster.replicas()[0].pgbouncer(PoolMode::Transaction).await?;
/// let url = bouncer.url(&cluster.replicas()[0].url()); // the same database, through PgBouncer
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PgBouncer {
    child: Child,
    port: u16,
    target: u16,
    mode: PoolMode,
    dir: PathBuf,
}

/// Where PgBouncer is looked for, in order.
fn binary() -> Result<PathBuf> {
    let mut searched = Vec::new();
    if let Some((_, p)) = crate::vocab::env_setting("RWSPLIT_TESTKIT_PGBOUNCER_BIN") {
        return Ok(PathBuf::from(p));
    }
    for dir in [Path::new("/usr/sbin"), Path::new("/usr/bin"), Path::new("/usr/local/bin")] {
        let p = dir.join("pgbouncer");
        if p.is_file() {
            return Ok(p);
        }
        searched.push(dir.to_path_buf());
    }
    Err(Error::BinariesNotFound {
        db: "PgBouncer",
        searched,
        hint: "apt-get install pgbouncer, or set RWSPLIT_TESTKIT_PGBOUNCER_BIN",
    })
}

impl PgBouncer {
    /// Starts PgBouncer in `mode` in front of the PostgreSQL node `name`, which listens on
    /// `target` of 127.0.0.1 and keeps its data in `data_dir` (PgBouncer's directory goes
    /// beside it), and waits until it accepts connections.
    pub(crate) async fn start(
        name: &str,
        data_dir: &Path,
        target: u16,
        mode: PoolMode,
        pool_size: u32,
        ignore: &str,
    ) -> Result<PgBouncer> {
        let bin = binary()?;
        let port = free_port()?;
        let base = data_dir.parent().unwrap_or_else(|| Path::new("/tmp"));
        let dir = base.join(format!("pgbouncer-{name}-{}-{port}", mode.as_str()));
        std::fs::create_dir_all(&dir).io_context(|| format!("creating {}", dir.display()))?;
        let ini = dir.join("pgbouncer.ini");
        let userlist = dir.join("userlist.txt");
        let log = dir.join("pgbouncer.log");
        std::fs::write(&userlist, "\"postgres\" \"\"\n\"app\" \"\"\n")
            .io_context(|| format!("writing {}", userlist.display()))?;
        std::fs::write(&ini, config(target, port, mode, pool_size, ignore, &userlist))
            .io_context(|| format!("writing {}", ini.display()))?;
        let run_as = RunAs::for_servers("postgres")?;
        if let Some(user) = run_as {
            user.chown_tree(&dir)?;
        }
        let out =
            std::fs::File::create(&log).io_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().io_context(|| format!("opening {}", log.display()))?;
        let mut cmd = Command::new(&bin);
        cmd.arg(&ini).stdin(Stdio::null()).stdout(out).stderr(err);
        if let Some(user) = run_as {
            user.apply(&mut cmd);
        }
        let child = cmd.spawn().io_context(|| format!("starting {}", bin.display()))?;
        let mut bouncer = PgBouncer { child, port, target, mode, dir };
        bouncer.wait_ready(&log).await?;
        Ok(bouncer)
    }

    async fn wait_ready(&mut self, log: &Path) -> Result<()> {
        let started = Instant::now();
        let limit = Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.failed(log, format!("exited at start ({status})")));
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return Ok(());
            }
            if started.elapsed() > limit {
                return Err(self.failed(log, format!("not listening after {limit:?}")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn failed(&self, log: &Path, reason: String) -> Error {
        Error::NodeStartFailed {
            node: format!("pgbouncer for port {}", self.target),
            reason,
            log: log.to_path_buf(),
            log_tail: process::tail_file(log, 20),
        }
    }

    /// Where it listens on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its pool mode.
    pub fn pool_mode(&self) -> PoolMode {
        self.mode
    }

    /// `url` (a URL of the node it fronts) made to go through PgBouncer.
    pub fn url(&self, url: &str) -> String {
        url.replace(&format!("@127.0.0.1:{}/", self.target), &format!("@127.0.0.1:{}/", self.port))
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        process::tail_file(&self.dir.join("pgbouncer.log"), lines)
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The startup parameters PgBouncer is always told to ignore: sqlx sends it.
const ALWAYS_IGNORED: &str = "extra_float_digits";

/// `ignore_startup_parameters`' value: [`ALWAYS_IGNORED`] and `extra`, or why `extra` cannot
/// be in it. A name is ASCII letters, digits, `_` and `.` (a server parameter's name,
/// `custom.name` included): no separator, space or line end that would change the list or
/// the file.
pub(crate) fn ignored_parameters(extra: &[&str]) -> std::result::Result<String, String> {
    let mut list = ALWAYS_IGNORED.to_owned();
    for name in extra {
        if name.is_empty()
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        {
            return Err(format!(
                "{name:?} is no startup parameter name for PgBouncer's ignore_startup_parameters \
                 (ASCII letters, digits, `_` and `.`)"
            ));
        }
        if !list.split(',').any(|known| known.eq_ignore_ascii_case(name)) {
            list.push(',');
            list.push_str(name);
        }
    }
    Ok(list)
}

/// The configuration file: every database of the node, `mode` pooling, `pool_size` server
/// connections per database and user, trust auth, `ignore` ([`ignored_parameters`]) as
/// `ignore_startup_parameters`. Room for
/// 2,000 clients: the fleet benchmark's 200 instances open 400 or more through one PgBouncer
/// (a monitor's connection and a pool's each), past the 500 this allowed before.
fn config(
    target: u16,
    port: u16,
    mode: PoolMode,
    pool_size: u32,
    ignore: &str,
    userlist: &Path,
) -> String {
    format!(
        "[databases]\n\
         * = host=127.0.0.1 port={target}\n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {port}\n\
         unix_socket_dir =\n\
         auth_type = trust\n\
         auth_file = {userlist}\n\
         pool_mode = {mode}\n\
         max_client_conn = 2000\n\
         default_pool_size = {pool_size}\n\
         server_reset_query = DISCARD ALL\n\
         ignore_startup_parameters = {ignore}\n\
         server_login_retry = 1\n",
        userlist = userlist.display(),
        mode = mode.as_str(),
    )
}

/// A port nothing listens on now (the system's choice).
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))
        .io_context(|| "finding a free port for PgBouncer".into())?;
    l.local_addr().map(|a| a.port()).io_context(|| "finding a free port for PgBouncer".into())
}

#[cfg(test)]
mod tests {
    use super::ignored_parameters;

    #[test]
    fn ignored_parameters_are_names_only() {
        assert_eq!(ignored_parameters(&[]).unwrap(), "extra_float_digits");
        assert_eq!(
            ignored_parameters(&["options", "my.setting", "options"]).unwrap(),
            "extra_float_digits,options,my.setting"
        );
        assert_eq!(ignored_parameters(&["extra_float_digits"]).unwrap(), "extra_float_digits");
        for bad in ["", "options, search_path", "a b", "options\npool_mode = session", "x;y"] {
            assert!(ignored_parameters(&[bad]).is_err(), "{bad:?} accepted");
        }
    }
}
