//! MariaDB on the native backend: finding the binaries, a cached `mariadb-install-db`
//! template, each node's option file and the server command line.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::process::{self, RunAs};
use crate::error::{Error, IoContext, Result};

/// Bumped whenever the template changes, so stale templates are not reused.
const TEMPLATE_VERSION: u32 = 1;

const INSTALL_HINT: &str = "install them with `apt-get install mariadb-server` (Debian/Ubuntu), \
or set RWSPLIT_TESTKIT_MARIADB_BIN to the directory that holds `mariadbd`, `mariadb-install-db` and `mariadb`";

/// The MariaDB binaries and the account servers run as.
#[derive(Debug, Clone)]
pub(crate) struct MariaEngine {
    /// The directory of `mariadbd`.
    pub(crate) bin: PathBuf,
    install_db: PathBuf,
    pub(crate) run_as: Option<RunAs>,
    user_name: Option<String>,
}

impl MariaEngine {
    /// Finds the binaries: `explicit`, else `$RWSPLIT_TESTKIT_MARIADB_BIN`, else `/usr/sbin` + `PATH`.
    pub(crate) fn discover(explicit: Option<&Path>) -> Result<MariaEngine> {
        // The server must be in the named directory; the client tools may sit beside it
        // (Debian: /usr/sbin/mariadbd, /usr/bin/mariadb) or on PATH.
        let named = explicit.map(Path::to_path_buf).or_else(|| {
            crate::vocab::env_setting("RWSPLIT_TESTKIT_MARIADB_BIN")
                .map(|(_, dir)| PathBuf::from(dir))
        });
        let server_dirs: Vec<PathBuf> = match &named {
            Some(dir) => vec![dir.clone()],
            None => {
                let mut v = vec![PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")];
                v.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
                v
            }
        };
        let mut dirs = server_dirs.clone();
        if let Some(parent) = named.as_deref().and_then(Path::parent) {
            dirs.extend([parent.join("bin"), parent.join("sbin")]);
        }
        dirs.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
        let find_in =
            |dirs: &[PathBuf], name: &str| dirs.iter().map(|d| d.join(name)).find(|p| p.is_file());
        let find = |name: &str| find_in(&dirs, name);
        let server = find_in(&server_dirs, "mariadbd");
        match (server, find("mariadb-install-db"), find("mariadb")) {
            (Some(server), Some(install_db), Some(_client)) => {
                let bin = server.parent().map(Path::to_path_buf).unwrap_or_default();
                let run_as = RunAs::for_servers("mysql")?;
                let user_name = run_as.map(|r| {
                    nix::unistd::User::from_uid(r.uid)
                        .ok()
                        .flatten()
                        .map_or_else(|| "mysql".to_owned(), |u| u.name)
                });
                Ok(MariaEngine { bin, install_db, run_as, user_name })
            }
            _ => Err(Error::BinariesNotFound {
                db: "MariaDB",
                searched: server_dirs,
                hint: INSTALL_HINT,
            }),
        }
    }

    /// A template data directory made by `mariadb-install-db` once per machine.
    pub(crate) fn template(&self, root: &Path) -> Result<PathBuf> {
        let dir = root.join(format!("template-mariadb-v{TEMPLATE_VERSION}"));
        if dir.join("mysql").is_dir() && dir.join(".rwsplit-ready").is_file() {
            return Ok(dir);
        }
        let tmp = root.join(format!("template.tmp-{}-{}", std::process::id(), super::unique()));
        fs::create_dir_all(&tmp).io_context(|| format!("creating {}", tmp.display()))?;
        self.chown(&tmp)?;
        let mut cmd = Command::new(&self.install_db);
        cmd.arg("--no-defaults").arg(format!("--datadir={}", tmp.display()));
        cmd.args([
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ]);
        if let Some(user) = &self.user_name {
            cmd.arg(format!("--user={user}"));
        }
        cmd.current_dir(root);
        process::run(&mut cmd)?;
        fs::write(tmp.join(".rwsplit-ready"), "").io_context(|| "marking the template".into())?;
        if fs::rename(&tmp, &dir).is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        if dir.join(".rwsplit-ready").is_file() {
            Ok(dir)
        } else {
            Err(Error::Command {
                command: format!("mariadb-install-db --datadir={}", dir.display()),
                output: "the template directory is missing after install".into(),
            })
        }
    }

    pub(crate) fn chown(&self, path: &Path) -> Result<()> {
        match self.run_as {
            Some(r) => r.chown_tree(path),
            None => Ok(()),
        }
    }

    /// Writes node `index`'s option file beside its data directory (`nX.cnf`).
    pub(crate) fn write_config(&self, data: &Path, index: usize, port: u16) -> Result<()> {
        let cnf = config_path(data);
        let d = data.display();
        let mut text = format!(
            "[mariadbd]\n\
             datadir = {d}\n\
             socket = {d}.sock\n\
             pid-file = {d}.pid\n\
             port = {port}\n\
             bind-address = 127.0.0.1\n\
             skip-name-resolve\n\
             server-id = {id}\n\
             log-bin = {d}/binlog\n\
             log-slave-updates = ON\n\
             binlog-format = ROW\n\
             gtid-strict-mode = ON\n\
             relay-log = {d}/relay\n\
             innodb-flush-log-at-trx-commit = 2\n\
             sync-binlog = 0\n\
             innodb-doublewrite = 0\n\
             innodb-buffer-pool-size = 32M\n\
             innodb-log-file-size = 16M\n\
             performance-schema = OFF\n\
             max-connections = 300\n\
             # default 60 s: how long a replica trusts a hung primary\n\
             slave-net-timeout = 5\n",
            id = index + 1,
        );
        if let Some(user) = &self.user_name {
            text.push_str(&format!("user = {user}\n"));
        }
        if index > 0 {
            // A replica comes back read-only after a restart too.
            text.push_str("read-only = ON\n");
        }
        fs::write(&cnf, text).io_context(|| format!("writing {}", cnf.display()))
    }

    /// The server command line for one node.
    pub(crate) fn server(&self, data: &Path, settings: &[(String, String)]) -> Command {
        let mut cmd = Command::new(self.bin.join("mariadbd"));
        cmd.arg(format!("--defaults-file={}", config_path(data).display()));
        for (k, v) in settings {
            cmd.arg(format!("--{k}={v}"));
        }
        if let Some(parent) = data.parent() {
            cmd.current_dir(parent);
        }
        cmd
    }
}

/// `…/n1` → `…/n1.cnf`.
fn config_path(data: &Path) -> PathBuf {
    data.with_extension("cnf")
}
