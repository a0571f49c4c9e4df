//! The native backend: database servers run as child processes of this process, from the
//! server binaries installed on the machine. [`Engine`] is the database seam inside it.

use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::Signal;

use crate::cluster::DbKind;
use crate::error::Result;

pub(crate) mod mariadb;
pub(crate) mod postgres;
pub(crate) mod process;

/// One database server product, as the native backend runs it.
#[derive(Debug, Clone)]
pub(crate) enum Engine {
    Postgres(postgres::PgEngine),
    MariaDb(mariadb::MariaEngine),
}

impl Engine {
    pub(crate) fn discover(db: DbKind, bin: Option<&Path>) -> Result<Engine> {
        Ok(match db {
            DbKind::Postgres => Engine::Postgres(postgres::PgEngine::discover(bin)?),
            DbKind::MariaDb => Engine::MariaDb(mariadb::MariaEngine::discover(bin)?),
        })
    }

    pub(crate) fn kind(&self) -> DbKind {
        match self {
            Engine::Postgres(_) => DbKind::Postgres,
            Engine::MariaDb(_) => DbKind::MariaDb,
        }
    }

    pub(crate) fn bin_dir(&self) -> &Path {
        match self {
            Engine::Postgres(e) => &e.bin,
            Engine::MariaDb(e) => &e.bin,
        }
    }

    pub(crate) fn template(&self, cache: &Path) -> Result<PathBuf> {
        match self {
            Engine::Postgres(e) => e.template(cache),
            Engine::MariaDb(e) => e.template(cache),
        }
    }

    pub(crate) fn chown(&self, path: &Path) -> Result<()> {
        match self {
            Engine::Postgres(e) => e.chown(path),
            Engine::MariaDb(e) => e.chown(path),
        }
    }

    /// Lays out node `index` in `data` from the template; replicas are told to follow the
    /// primary on `primary_port` (PostgreSQL through its files; MariaDB by SQL once running).
    pub(crate) fn lay_out(
        &self,
        template: &Path,
        data: &Path,
        name: &str,
        index: usize,
        port: u16,
        primary_port: u16,
    ) -> Result<()> {
        let mut cmd = Command::new("cp");
        cmd.arg("-a").arg(template).arg(data);
        process::run(&mut cmd)?;
        match self {
            Engine::Postgres(e) if index > 0 => e.make_standby(data, name, primary_port),
            Engine::Postgres(_) => Ok(()),
            Engine::MariaDb(e) => e.write_config(data, index, port),
        }
    }

    pub(crate) fn server(
        &self,
        data: &Path,
        name: &str,
        port: u16,
        settings: &[(String, String)],
    ) -> Command {
        match self {
            Engine::Postgres(e) => e.server(data, name, port, settings),
            Engine::MariaDb(e) => e.server(data, settings),
        }
    }

    /// The signal for a clean, fast shutdown.
    pub(crate) fn stop_signal(&self) -> Signal {
        match self {
            Engine::Postgres(_) => Signal::SIGINT,
            Engine::MariaDb(_) => Signal::SIGTERM,
        }
    }

    /// The URL applications use for database `db` on `port`.
    pub(crate) fn url(&self, port: u16, db: &str) -> String {
        match self {
            Engine::Postgres(_) => postgres::url(port, db),
            Engine::MariaDb(_) => mariadb::url(port, db),
        }
    }

    /// The database every server has, for control connections.
    pub(crate) fn admin_db(&self) -> &'static str {
        match self {
            Engine::Postgres(_) => "postgres",
            Engine::MariaDb(_) => "mysql",
        }
    }

    /// A synchronous client command running `sql` (for `Drop`, where nothing can be awaited).
    pub(crate) fn client(&self, port: u16, sql: &str) -> Command {
        match self {
            Engine::Postgres(e) => e.psql(port, sql),
            Engine::MariaDb(e) => e.client(port, sql),
        }
    }
}

/// A value unique within this process and unlikely to repeat across processes.
pub(crate) fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (u64::from(t) << 16) ^ NEXT.fetch_add(1, Ordering::Relaxed)
}
