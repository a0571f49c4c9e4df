//! PostgreSQL on the native backend: finding the binaries, a cached `initdb` template, the
//! server command line and the SQL behind each control.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::process::{self, RunAs};
use crate::error::{Error, IoContext, Result};
use crate::product::postgres::standby_settings;
use crate::vocab::Addr;

/// Bumped whenever the template's configuration changes, so stale templates are not reused.
const TEMPLATE_VERSION: u32 = 2;

/// Settings every node shares. Node identity (port, cluster name) is passed on the command
/// line instead, so that files copied between nodes (by the template copy or by pg_rewind) never
/// carry another node's identity.
const CONFIG: &str = "
# --- rwsplit testkit ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
# on, not off: with off the walsender waits for the WAL writer (~200 ms) before shipping.
synchronous_commit = on
# pg_rewind needs full_page_writes on the source and wal_log_hints on the target.
full_page_writes = on
wal_log_hints = on
wal_level = replica
max_wal_senders = 16
max_replication_slots = 16
wal_keep_size = '256MB'
hot_standby = on
hot_standby_feedback = on
wal_receiver_status_interval = 1s
# defaults are 5 s / 60 s / 60 s: far too slow for failure tests.
wal_retrieve_retry_interval = '200ms'
wal_sender_timeout = '5s'
wal_receiver_timeout = '5s'
shared_buffers = '32MB'
max_connections = 200
log_min_messages = warning
log_line_prefix = '%m [%p] '
";

/// Statements per node, counted as they run (pg_stat_database's counters reach the view only
/// when a backend idles for a second, which a monitor's connection never does): what a router
/// costs each server. The view needs `CREATE EXTENSION pg_stat_statements` in the database
/// read. Added where the build has the module: Debian's does, a build without its contrib
/// modules (a PyPI wheel of PostgreSQL 16) would not start with it preloaded.
const STATEMENTS_CONFIG: &str = "shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = top
";

/// The PostgreSQL server binaries and the account servers run as.
#[derive(Debug, Clone)]
pub(crate) struct PgEngine {
    pub(crate) bin: PathBuf,
    pub(crate) run_as: Option<RunAs>,
}

const INSTALL_HINT: &str = "install them with `apt-get install postgresql` (Debian/Ubuntu), \
or set RWSPLIT_TESTKIT_PG_BIN to the directory that holds `postgres` and `initdb`";

impl PgEngine {
    /// Finds the binaries: `explicit`, else `$RWSPLIT_TESTKIT_PG_BIN`, else the newest
    /// `/usr/lib/postgresql/*/bin`, else `PATH`.
    pub(crate) fn discover(explicit: Option<&Path>) -> Result<PgEngine> {
        let mut searched = Vec::new();
        let candidates: Vec<PathBuf> = if let Some(dir) = explicit {
            vec![dir.to_path_buf()]
        } else if let Some((_, dir)) = crate::vocab::env_setting("RWSPLIT_TESTKIT_PG_BIN") {
            vec![PathBuf::from(dir)]
        } else {
            let mut v = debian_bin_dirs();
            v.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
            v
        };
        for dir in candidates {
            let ok = ["postgres", "initdb", "psql"].iter().all(|b| dir.join(b).is_file());
            if ok {
                return Ok(PgEngine { bin: dir, run_as: RunAs::for_servers("postgres")? });
            }
            searched.push(dir);
        }
        Err(Error::BinariesNotFound { db: "PostgreSQL", searched, hint: INSTALL_HINT })
    }

    fn cmd(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        if let Some(r) = self.run_as {
            r.apply(&mut cmd);
        }
        cmd
    }

    /// A template data directory made by `initdb` once per machine and configuration; copying it
    /// takes 0.05 s where `initdb` takes about 0.7 s.
    pub(crate) fn template(&self, root: &Path) -> Result<PathBuf> {
        let version = self.version()?;
        let statements = self.has_module("pg_stat_statements");
        let without = if statements { "" } else { "-nostatements" };
        let dir = root.join(format!("template-pg{version}{without}-v{TEMPLATE_VERSION}"));
        if dir.join("PG_VERSION").is_file() {
            return Ok(dir);
        }
        let tmp = root.join(format!("template.tmp-{}-{}", std::process::id(), super::unique()));
        fs::create_dir_all(&tmp).io_context(|| format!("creating {}", tmp.display()))?;
        self.chown(&tmp)?;
        let mut cmd = self.cmd("initdb");
        cmd.arg("-D").arg(&tmp).args(["-U", "postgres", "--auth=trust", "--no-sync"]);
        cmd.args(["-E", "UTF8", "--no-locale", "--no-instructions"]).current_dir(root);
        process::run(&mut cmd)?;
        let conf = tmp.join("postgresql.conf");
        let mut text =
            fs::read_to_string(&conf).io_context(|| format!("reading {}", conf.display()))?;
        text.push_str(CONFIG);
        if statements {
            text.push_str(STATEMENTS_CONFIG);
        }
        fs::write(&conf, text).io_context(|| format!("writing {}", conf.display()))?;
        // Atomic publish: if another process won the race, keep theirs and drop ours.
        if fs::rename(&tmp, &dir).is_err() || !dir.join("PG_VERSION").is_file() {
            let _ = fs::remove_dir_all(&tmp);
        }
        if dir.join("PG_VERSION").is_file() {
            Ok(dir)
        } else {
            Err(Error::Command {
                command: format!("initdb -D {}", dir.display()),
                output: "the template directory is missing after initdb".into(),
            })
        }
    }

    /// Whether the build has the loadable module `name` (`pg_config --pkglibdir`); a build
    /// whose `pg_config` does not answer is taken to have it, as Debian's has.
    fn has_module(&self, name: &str) -> bool {
        let Ok(out) = Command::new(self.bin.join("pg_config")).arg("--pkglibdir").output() else {
            return true;
        };
        let dir = String::from_utf8_lossy(&out.stdout);
        !out.status.success() || Path::new(dir.trim()).join(format!("{name}.so")).is_file()
    }

    fn version(&self) -> Result<String> {
        let out = process::run(Command::new(self.bin.join("postgres")).arg("--version"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" -> "15"
        let major = text
            .split_whitespace()
            .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
            .and_then(|v| v.split('.').next())
            .unwrap_or("unknown");
        Ok(major.to_owned())
    }

    pub(crate) fn chown(&self, path: &Path) -> Result<()> {
        match self.run_as {
            Some(r) => r.chown_tree(path),
            None => Ok(()),
        }
    }

    /// Turns a copied data directory into a standby of `upstream`.
    pub(crate) fn make_standby(&self, data: &Path, node: &str, upstream: &Addr) -> Result<()> {
        let signal = data.join("standby.signal");
        fs::write(&signal, "").io_context(|| format!("writing {}", signal.display()))?;
        let auto = data.join("postgresql.auto.conf");
        fs::write(&auto, standby_settings(node, upstream))
            .io_context(|| format!("writing {}", auto.display()))?;
        self.chown(&signal)?;
        self.chown(&auto)
    }

    /// The server command line for one node.
    pub(crate) fn server(
        &self,
        data: &Path,
        node: &str,
        port: u16,
        settings: &[(String, String)],
    ) -> Command {
        let mut cmd = self.cmd("postgres");
        cmd.arg("-D").arg(data).arg("-p").arg(port.to_string());
        cmd.arg("-c").arg(format!("cluster_name=rwsplit-{node}"));
        for (k, v) in settings {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        if let Some(parent) = data.parent() {
            cmd.current_dir(parent);
        }
        cmd
    }
}

fn debian_bin_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0));
    dirs.into_iter().map(|(_, p)| p).collect()
}
