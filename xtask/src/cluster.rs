//! `cargo xtask cluster up|status|down`: a cluster that outlives the command.

use std::time::Instant;

use anyhow::{Context, bail};
use clap::Subcommand;
use rwsplit_testkit::{BackendKind, Cluster, ClusterState, DbKind, PatroniCluster, PatroniState};

/// Which HA manager runs the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Ha {
    /// None: a fixed primary with replicas (`Cluster`).
    None,
    /// Patroni with one etcd (`PatroniCluster`): `--replicas N` gives N + 1 members.
    Patroni,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCmd {
    /// Start a cluster in the background and print its URLs as shell-ready lines: the
    /// variables `RoutedConnection::from_env` reads (`DATABASE_URL`, `DATABASE_REPLICA_URLS`;
    /// with `--ha patroni` also `RWSPLIT_TOPOLOGY_PATRONI`), which the examples read too.
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
        /// An HA manager: `patroni` starts one etcd and Patroni-managed PostgreSQL members
        /// (native processes only).
        #[arg(long, value_enum, default_value = "none")]
        ha: Ha,
    },
    /// Show each node's role, process state and replication position.
    Status,
    /// Stop exactly what `up` started and delete its data.
    Down,
}

fn state_file() -> std::path::PathBuf {
    crate::state_dir().join("cluster.json")
}

fn patroni_state_file() -> std::path::PathBuf {
    crate::state_dir().join("patroni.json")
}

pub(crate) fn run(cmd: ClusterCmd) -> anyhow::Result<()> {
    let rt = crate::runtime()?;
    let path = state_file();
    let patroni_path = patroni_state_file();
    match cmd {
        ClusterCmd::Up { replicas, db, base_port, backend, ha } => {
            for p in [&path, &patroni_path] {
                if p.exists() {
                    bail!(
                        "a cluster is already up (state in {}); run `cargo xtask cluster down` \
                         first",
                        p.display()
                    );
                }
            }
            if ha == Ha::Patroni {
                if db != DbKind::Postgres || backend != BackendKind::Native || base_port.is_some() {
                    bail!("--ha patroni runs PostgreSQL natively on random ports only");
                }
                return patroni_up(&rt, replicas + 1, &patroni_path);
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
            print_urls(&primary, &replicas, None);
            Ok(())
        }
        ClusterCmd::Status if patroni_path.exists() => {
            let state = PatroniState::load(&patroni_path)?;
            patroni_status(&rt, &state)
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
        ClusterCmd::Down if patroni_path.exists() => {
            let state = PatroniState::load(&patroni_path)?;
            let pids = state.destroy()?;
            std::fs::remove_file(&patroni_path)
                .with_context(|| format!("removing {}", patroni_path.display()))?;
            eprintln!("patroni cluster stopped ({} processes) and its data removed", pids.len());
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

fn patroni_up(
    rt: &tokio::runtime::Runtime,
    members: usize,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let cluster =
        rt.block_on(PatroniCluster::builder().members(members).name("xtask-patroni").start())?;
    let elapsed = started.elapsed();
    let leader = rt.block_on(cluster.leader())?.context("no leader after start")?;
    let all = cluster.members();
    let primary = all.iter().find(|m| m.name() == leader).map(|m| m.url()).unwrap_or_default();
    let replicas: Vec<String> =
        all.iter().filter(|m| m.name() != leader).map(|m| m.url()).collect();
    let rest: Vec<String> = all.iter().map(|m| m.rest_url()).collect();
    let state = cluster.detach();
    state.save(path)?;
    eprintln!(
        "patroni cluster ({members} members, scope {}, etcd {}) up in {:.2} s; state in {}",
        state.scope(),
        state.etcd_url(),
        elapsed.as_secs_f64(),
        path.display()
    );
    print_urls(&primary, &replicas.join(","), Some(&rest.join(",")));
    Ok(())
}

/// The cluster's URLs as `NAME=value` lines for `export $(cargo xtask cluster up)`: what
/// `RoutedConnection::from_env` reads (the names in crates/sea-orm/src/config/env.rs), and
/// nothing else, so an application (or an example) connects with no further setting.
fn print_urls(primary: &str, replicas: &str, patroni: Option<&str>) {
    println!("DATABASE_URL={primary}");
    println!("DATABASE_REPLICA_URLS={replicas}");
    if let Some(rest) = patroni {
        // `from_env` follows the Patroni cluster through these REST endpoints.
        println!("RWSPLIT_TOPOLOGY_PATRONI={rest}");
    }
}

fn patroni_status(rt: &tokio::runtime::Runtime, state: &PatroniState) -> anyhow::Result<()> {
    println!("patroni cluster, scope {}, etcd {}", state.scope(), state.etcd_url());
    for m in state.members() {
        let text = rt.block_on(rwsplit_testkit::patroni_get(m.rest_port(), "/patroni"));
        let summary = match text {
            Ok(v) => format!(
                "role {}, state {}, timeline {}",
                v.get("role").and_then(|r| r.as_str()).unwrap_or("?"),
                v.get("state").and_then(|r| r.as_str()).unwrap_or("?"),
                v.get("timeline").map_or_else(|| "?".into(), ToString::to_string),
            ),
            Err(e) => format!("unreachable: {e}"),
        };
        println!("{:<4} pg {:>5} rest {}  {summary}", m.name(), m.pg_port(), m.rest_url());
    }
    Ok(())
}
