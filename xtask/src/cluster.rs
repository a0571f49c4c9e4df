//! `cargo xtask cluster up|status|down`: a cluster that outlives the command.

use std::time::Instant;

use anyhow::{Context, bail};
use clap::Subcommand;
use rwsplit_testkit::{BackendKind, Cluster, ClusterState, DbKind};

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCmd {
    /// Start a cluster in the background and print its URLs as shell-ready lines.
    Up {
        /// Number of replicas beside the primary.
        #[arg(long, default_value_t = 2)]
        replicas: usize,
        /// Database to run.
        #[arg(long, default_value = "postgres")]
        db: DbKind,
        /// Use ports BASE, BASE+1, … instead of random free ones.
        #[arg(long)]
        base_port: Option<u16>,
        /// Where the servers run: native processes, or one Docker container each.
        #[arg(long, default_value = "native")]
        backend: BackendKind,
    },
    /// Show each node's role, process state and replication position.
    Status,
    /// Stop exactly what `up` started and delete its data.
    Down,
}

fn state_file() -> std::path::PathBuf {
    crate::state_dir().join("cluster.json")
}

pub(crate) fn run(cmd: ClusterCmd) -> anyhow::Result<()> {
    let rt = crate::runtime()?;
    let path = state_file();
    match cmd {
        ClusterCmd::Up { replicas, db, base_port, backend } => {
            if path.exists() {
                bail!(
                    "a cluster is already up (state in {}); run `cargo xtask cluster down` first",
                    path.display()
                );
            }
            let mut b = Cluster::builder().db(db).backend(backend).replicas(replicas).name("xtask");
            if let Some(p) = base_port {
                b = b.base_port(p);
            }
            let started = Instant::now();
            let cluster = rt.block_on(b.start())?;
            let elapsed = started.elapsed();
            let primary = cluster.primary_url();
            let replicas = cluster.replica_urls().join(",");
            let state = cluster.detach();
            state.save(&path)?;
            eprintln!(
                "{db} cluster on {backend} up in {:.2} s; state in {}",
                elapsed.as_secs_f64(),
                path.display()
            );
            println!("RWSPLIT_PRIMARY_URL={primary}");
            println!("RWSPLIT_REPLICA_URLS={replicas}");
            Ok(())
        }
        ClusterCmd::Status => {
            let state = load(&path)?;
            let cluster = Cluster::attach(&state)?;
            println!("{} cluster on {}", cluster.db(), cluster.backend());
            println!(
                "{:<4} {:>6} {:>8} {:<8} {:<12} {:>10}",
                "node", "port", "pid", "state", "role", "position"
            );
            for n in cluster.nodes() {
                let s = rt.block_on(n.status());
                let role = match s.is_replica {
                    Some(true) => "replica",
                    Some(false) => "primary",
                    None => "unknown",
                };
                let pos = match (s.position, s.unreplayed_bytes) {
                    (Some(p), Some(b)) if b > 0 => format!("{p} (+{b} B unreplayed)"),
                    (Some(p), _) => p,
                    (None, _) => "-".into(),
                };
                let pid = n.pid().map_or_else(|| "-".into(), |p| p.to_string());
                println!(
                    "{:<4} {:>6} {:>8} {:<8} {:<12} {:>10}",
                    s.name, s.port, pid, s.process, role, pos
                );
            }
            Ok(())
        }
        ClusterCmd::Down => {
            let state = load(&path)?;
            let cluster = Cluster::attach(&state)?;
            cluster.stop()?;
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            eprintln!("cluster stopped and its data removed");
            Ok(())
        }
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<ClusterState> {
    if !path.exists() {
        bail!("no cluster is up (no {}); start one with `cargo xtask cluster up`", path.display());
    }
    Ok(ClusterState::load(path)?)
}
