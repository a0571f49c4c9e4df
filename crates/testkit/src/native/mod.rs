//! The native backend: database servers run as child processes of this process, from the
//! server binaries installed on the machine. [`Engine`] knows where each product's binaries
//! are and how to lay out and start a node from them; the SQL is the product's
//! ([`crate::product`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use nix::sys::signal::Signal;

use crate::backend::{Backend, Created, Plan, Runtime};
use crate::error::Result;
use crate::state::ClusterState;
use crate::vocab::Addr;
use crate::vocab::{BackendKind, DbKind};

pub(crate) mod mariadb;
mod node;
pub(crate) mod postgres;
pub(crate) mod process;

use node::NativeNode;

/// The native backend: the server binaries of one product, found on this machine.
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

    /// The unprivileged user the servers run as, if the testkit runs as root.
    pub(crate) fn server_user(&self) -> Option<crate::vocab::ServerUser> {
        match self {
            Engine::Postgres(e) => e.run_as,
            Engine::MariaDb(e) => e.run_as,
        }
        .map(process::RunAs::server_user)
    }

    pub(crate) fn chown(&self, path: &Path) -> Result<()> {
        match self {
            Engine::Postgres(e) => e.chown(path),
            Engine::MariaDb(e) => e.chown(path),
        }
    }

    /// Lays out node `index` in `data` from the template; replicas are told to follow
    /// `upstream` (PostgreSQL through its files; MariaDB by SQL once running).
    pub(crate) fn lay_out(
        &self,
        template: &Path,
        data: &Path,
        name: &str,
        index: usize,
        port: u16,
        upstream: &Addr,
    ) -> Result<()> {
        let mut cmd = Command::new("cp");
        cmd.arg("-a").arg(template).arg(data);
        process::run(&mut cmd)?;
        match self {
            Engine::Postgres(e) if index > 0 => e.make_standby(data, name, upstream),
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
}

/// The native backend of one cluster.
#[derive(Debug)]
pub(crate) struct Native;

impl Backend for Native {
    fn kind(&self) -> BackendKind {
        BackendKind::Native
    }
}

/// Lays out a new cluster's nodes from the cached template (none started).
pub(crate) fn create(plan: &Plan) -> Result<Created> {
    let engine = Engine::discover(plan.db, plan.bin_dir.as_deref())?;
    let cache = crate::vocab::template_root();
    crate::vocab::ensure_traversable_dir(&cache)?;
    if let Some(user) = engine.server_user() {
        crate::vocab::ensure_reachable(&cache, user, "RWSPLIT_TESTKIT_CACHE")?;
        crate::vocab::ensure_reachable(&plan.root, user, "RWSPLIT_TESTKIT_DIR")?;
    }
    let template = engine.template(&cache)?;
    let dir = crate::vocab::cluster_dir(&plan.root, &plan.name)?;
    engine.chown(&dir)?;
    let engine = Arc::new(engine);
    let upstream = Addr::new("127.0.0.1", plan.ports[0]);
    let mut runtimes: Vec<Box<dyn Runtime>> = Vec::with_capacity(plan.ports.len());
    for (i, port) in plan.ports.iter().copied().enumerate() {
        let name = format!("n{i}");
        let data = dir.join(&name);
        engine.lay_out(&template, &data, &name, i, port, &upstream)?;
        runtimes.push(Box::new(NativeNode::new(
            name.clone(),
            port,
            data,
            dir.join(format!("{name}.log")),
            plan.settings.clone(),
            Arc::clone(&engine),
            None,
        )));
    }
    let bin_dir = engine.bin_dir().to_path_buf();
    Ok(Created { dir, runtimes, backend: Box::new(Native), bin_dir })
}

/// The runtimes of a native cluster started elsewhere.
pub(crate) fn attach(state: &ClusterState) -> Result<Created> {
    let engine = Arc::new(Engine::discover(state.db, Some(&state.bin_dir))?);
    let runtimes = state
        .nodes
        .iter()
        .map(|n| {
            Box::new(NativeNode::new(
                n.name.clone(),
                n.port,
                n.data_dir.clone(),
                n.log.clone(),
                state.settings.clone(),
                Arc::clone(&engine),
                n.pid,
            )) as Box<dyn Runtime>
        })
        .collect();
    Ok(Created {
        dir: state.dir.clone(),
        runtimes,
        backend: Box::new(Native),
        bin_dir: state.bin_dir.clone(),
    })
}

pub(crate) use crate::vocab::unique;
