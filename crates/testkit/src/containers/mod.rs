//! The containers backend: one Docker container per node, from an image built on this machine
//! ([`image`]), on two networks of the cluster's own (the layout of
//! `/work/shared/research/containers.md`, tested on this machine):
//!
//! - `<run>-ctl`, a bridge with inter-container traffic off, where each node publishes its server
//!   port on `127.0.0.1:<port>`: the host (tests, the application) reaches the nodes here, and
//!   nodes cannot reach one another through it;
//! - `<run>-repl`, an `--internal` bridge where node `i` has the fixed address `<subnet>.(10+i)`
//!   and its name (`n0`, `n1`, …) as alias: replication runs here only.
//!
//! Nodes find one another by name without Docker's embedded DNS: each container has the
//! cluster's own hosts file (every node's name and replication address) mounted read-only at
//! `/etc/hosts`, and a reconnected node gets its fixed address back. Docker's DNS has left a
//! reconnected replica unable to resolve its primary for good (PostgreSQL: "could not translate
//! host name"), and Docker edits the `/etc/hosts` it manages on every disconnect (it drops the
//! lines naming the network's containers, `--add-host` ones included), so neither is used.
//!
//! So a node's replication link can be cut (`docker network disconnect` of `<run>-repl`) while
//! it keeps serving clients, and its clients cut (an INPUT rule on its `<run>-ctl` interface,
//! added in its own network namespace with this machine's `iptables`) while it keeps
//! replicating. Data lives in a host tmpfs directory (`/dev/shm/rwsplit-testkit/…`) bind-mounted
//! at `/data`, so it survives `docker kill` / `docker start`; each node's is a copy of a template
//! made once per image ([`template`]), standbys included; the server is PID 1 and logs to
//! `/data/server.log`.
//!
//! Every container and network is named `<run>-…` and labelled `rwsplit.testkit=1`,
//! `rwsplit.run=<run>`, `rwsplit.root=<cluster root>` and `rwsplit.data=<data dir>`: teardown
//! removes by run id, and [`reap`] by root (what a crashed test process left).

mod docker;
pub(crate) mod image;
mod node;

use std::path::{Path, PathBuf};

use docker::{LABEL, REPL_IP_LABEL, ROOT_LABEL, RUN_LABEL, docker, docker_quiet};
use node::ContainerNode;

use crate::backend::{Backend, Created, Plan, Runtime};
use crate::error::{Error, IoContext, Result};
use crate::state::ClusterState;
use crate::vocab::{BackendKind, DbKind};

pub(crate) use crate::native::unique;

/// The label naming a cluster's data directory, for [`reap`].
const DATA_LABEL: &str = "rwsplit.data";

/// The containers backend of one cluster.
#[derive(Debug)]
pub(crate) struct Containers {
    run: String,
}

impl Backend for Containers {
    fn kind(&self) -> BackendKind {
        BackendKind::Containers
    }

    fn teardown(&self, nodes: &[&dyn Runtime]) -> Result<()> {
        let mut first = Ok(());
        for n in nodes {
            if let Err(e) = n.destroy()
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        // Anything else of this run (a node container made before a failed start).
        for c in docker::containers_labelled(RUN_LABEL, &self.run).unwrap_or_default() {
            docker_quiet(&["rm", "--force", "--volumes", &c]);
        }
        for net in docker::networks_labelled(RUN_LABEL, &self.run)? {
            if let Err(e) = docker(&["network", "rm", &net])
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        first
    }

    fn run_id(&self) -> Option<String> {
        Some(self.run.clone())
    }
}

/// Where container data lives: a tmpfs (creating files on this machine's disk costs 2.5 ms
/// each, through Docker's storage driver more).
fn data_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() { shm.join("rwsplit-testkit") } else { crate::vocab::template_root() }
}

/// Creates the networks and one container per node (none started), building the image first
/// if this machine lacks it.
pub(crate) async fn create(plan: &Plan) -> Result<Created> {
    docker(&["version", "--format", "{{.Server.Version}}"])?;
    let image = tokio::task::spawn_blocking(image::ensure).await.map_err(|e| Error::Io {
        what: "building the node image".into(),
        source: std::io::Error::other(e.to_string()),
    })??;
    let run = format!("rwsplit-{}-{:x}", std::process::id(), unique() & 0xff_ffff);
    let root = data_root();
    crate::vocab::ensure_traversable_dir(&root)?;
    let template = {
        let (image, db, root, run) = (image.reference.clone(), plan.db, root.clone(), run.clone());
        tokio::task::spawn_blocking(move || template(&image, db, &root, &run)).await.map_err(
            |e| Error::Io {
                what: "making the data directory template".into(),
                source: std::io::Error::other(e.to_string()),
            },
        )??
    };
    let dir = crate::vocab::cluster_dir(&root, &plan.name)?;
    let backend = Containers { run: run.clone() };
    match make(plan, &image.reference, &template, &run, &dir) {
        Ok(runtimes) => {
            Ok(Created { dir, runtimes, backend: Box::new(backend), bin_dir: PathBuf::new() })
        }
        Err(e) => {
            if let Err(t) = backend.teardown(&[]) {
                tracing::warn!(error = %t, "cleaning up after a failed container start");
            }
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

fn labels(run: &str, plan: &Plan, dir: &Path) -> Vec<String> {
    vec![
        "--label".into(),
        format!("{LABEL}=1"),
        "--label".into(),
        format!("{RUN_LABEL}={run}"),
        "--label".into(),
        format!("{ROOT_LABEL}={}", plan.root.display()),
        "--label".into(),
        format!("{DATA_LABEL}={}", dir.display()),
    ]
}

fn make(
    plan: &Plan,
    image: &str,
    template: &Path,
    run: &str,
    dir: &Path,
) -> Result<Vec<Box<dyn Runtime>>> {
    let labels = labels(run, plan, dir);
    let ctl = format!("{run}-ctl");
    let repl = format!("{run}-repl");
    create_network(&ctl, &labels, &["-o", "com.docker.network.bridge.enable_icc=false"])?;
    let subnet = create_network(&repl, &labels, &["--internal"])?;
    let repl_ips =
        (0..plan.ports.len()).map(|i| replication_ip(&subnet, i)).collect::<Result<Vec<_>>>()?;
    let hosts = write_hosts(dir, &repl_ips)?;
    // One thread per node: each `docker` call costs 0.1–0.4 s, mostly waiting on the engine.
    std::thread::scope(|scope| {
        let made: Vec<_> = (0..plan.ports.len())
            .map(|i| {
                let (labels, ctl, repl, hosts) = (&labels, &ctl, &repl, &hosts);
                let repl_ip = &repl_ips[i];
                let node =
                    NodePlan { plan, image, template, run, dir, labels, ctl, repl, repl_ip, hosts };
                scope.spawn(move || make_node(&node, i))
            })
            .collect();
        made.into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::Docker {
                        command: "create".into(),
                        output: "the thread creating a node's container panicked".into(),
                    })
                })
            })
            .collect()
    })
}

/// What every node of one cluster shares while its container is made.
struct NodePlan<'a> {
    plan: &'a Plan,
    image: &'a str,
    template: &'a Path,
    run: &'a str,
    dir: &'a Path,
    labels: &'a [String],
    ctl: &'a str,
    repl: &'a str,
    /// This node's fixed address on `repl`.
    repl_ip: &'a str,
    /// The cluster's hosts file, mounted at `/etc/hosts`.
    hosts: &'a Path,
}

/// Lays node `i` out from the template and creates its container (not started).
fn make_node(np: &NodePlan<'_>, i: usize) -> Result<Box<dyn Runtime>> {
    let NodePlan { plan, image, template, run, dir, labels, ctl, repl, repl_ip, hosts } = *np;
    // Inside the container the server listens on the port the host publishes, so it names the
    // same port as natively (`inet_server_port()`, `@@port`) and replicas use it too.
    let port = plan.ports[i];
    let name = format!("n{i}");
    let container = format!("{run}-{name}");
    let data = dir.join(&name);
    std::fs::create_dir_all(&data).io_context(|| format!("creating {}", data.display()))?;
    lay_out(plan.db, template, &data, &name, i, plan.ports[0])?;
    let mut args: Vec<String> = vec!["create".into(), "--name".into(), container.clone()];
    args.extend(labels.iter().cloned());
    args.extend([
        "--label".into(),
        format!("{REPL_IP_LABEL}={repl_ip}"),
        "--volume".into(),
        format!("{}:/etc/hosts:ro", hosts.display()),
        // A cut replication link drops packets silently, and a PostgreSQL walreceiver's
        // connection attempt has no timeout of its own (`connect_timeout` is not applied to its
        // non-blocking connect): with the kernel's default 6 SYN retries an attempt made during
        // a cut hangs about 2 minutes, past the heal. One retry gives up after 3 s.
        "--sysctl".into(),
        "net.ipv4.tcp_syn_retries=1".into(),
        "--network".into(),
        ctl.to_owned(),
        "--publish".into(),
        format!("127.0.0.1:{port}:{port}"),
        "--volume".into(),
        format!("{}:/data", data.display()),
        "--stop-timeout".into(),
        "30".into(),
        "--stop-signal".into(),
    ]);
    match plan.db {
        DbKind::Postgres => {
            args.extend(["SIGINT".into(), image.into(), "/usr/local/bin/rwsplit-pg".into()]);
            args.extend([name.clone(), port.to_string()]);
            for (k, v) in &plan.settings {
                args.extend(["-c".into(), format!("{k}={v}")]);
            }
        }
        DbKind::MariaDb => {
            args.extend(["SIGTERM".into(), image.into(), "/usr/local/bin/rwsplit-mariadb".into()]);
            args.push((i + 1).to_string());
            args.push(if i == 0 { "OFF" } else { "ON" }.into());
            args.push(port.to_string());
            for (k, v) in &plan.settings {
                args.push(format!("--{k}={v}"));
            }
        }
    }
    docker(&args)?;
    // The alias only on the replication network: with `--hostname`, the name would resolve to
    // the control network's address too, where nodes cannot reach one another. The address is
    // fixed (`--ip`), so the hosts file stays true across `heal_replication` and restarts.
    docker(&["network", "connect", "--ip", repl_ip, "--alias", &name, repl, &container])?;
    Ok(Box::new(ContainerNode {
        node: name,
        container,
        run: run.to_owned(),
        port,
        log: data.join("server.log"),
        data,
    }))
}

/// The data directory (`pg` or `db` below a node's `/data`) of a product.
fn data_subdir(db: DbKind) -> &'static str {
    match db {
        DbKind::Postgres => "pg",
        DbKind::MariaDb => "db",
    }
}

/// A data directory made once per image and product on this machine (`initdb`,
/// `mariadb-install-db` in a throwaway container), which each node copies: 0.05 s where
/// `initdb` in a container takes 1.3 s. Published by atomic rename, under a file lock.
fn template(image: &str, db: DbKind, root: &Path, run: &str) -> Result<PathBuf> {
    let key = image.rsplit(':').next().unwrap_or(image);
    let dir = root.join(format!("template-{db}-{key}"));
    let ready = dir.join(".rwsplit-ready");
    if ready.is_file() {
        return Ok(dir);
    }
    let lock_path = root.join("template.lock");
    let file = std::fs::File::create(&lock_path)
        .io_context(|| format!("creating {}", lock_path.display()))?;
    let _lock =
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| {
            Error::Io {
                what: format!("locking {}", lock_path.display()),
                source: std::io::Error::from(e),
            }
        })?;
    if ready.is_file() {
        return Ok(dir);
    }
    let tmp = root.join(format!("template.tmp-{}-{:x}", std::process::id(), unique()));
    std::fs::create_dir_all(&tmp).io_context(|| format!("creating {}", tmp.display()))?;
    let (entry, arg) = match db {
        DbKind::Postgres => ("/usr/local/bin/rwsplit-pg", "--initdb"),
        DbKind::MariaDb => ("/usr/local/bin/rwsplit-mariadb", "--install"),
    };
    let volume = format!("{}:/data", tmp.display());
    let name = format!("{run}-template");
    let label = format!("{LABEL}=1");
    let made = docker(&[
        "run",
        "--rm",
        "--name",
        &name,
        "--label",
        &label,
        "--network",
        "none",
        "--volume",
        &volume,
        image,
        entry,
        arg,
    ]);
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    std::fs::write(tmp.join(".rwsplit-ready"), "").io_context(|| "marking the template".into())?;
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    if ready.is_file() {
        Ok(dir)
    } else {
        Err(Error::Command {
            command: format!("{entry} {arg}"),
            output: format!("the template {} is missing after it ran", dir.display()),
        })
    }
}

/// Copies the template into node `i`'s `/data`; a PostgreSQL standby also gets
/// `standby.signal` and its `primary_conninfo` (a cold copy of a cleanly shut down cluster is a
/// valid base backup, as on the native backend).
fn lay_out(
    db: DbKind,
    template: &Path,
    data: &Path,
    name: &str,
    i: usize,
    primary_port: u16,
) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let sub = data_subdir(db);
    let mut cp = std::process::Command::new("cp");
    cp.arg("-a").arg(template.join(sub)).arg(data.join(sub));
    crate::native::process::run(&mut cp)?;
    if db == DbKind::Postgres && i > 0 {
        let pg = data.join(sub);
        let meta = std::fs::metadata(&pg).io_context(|| format!("reading {}", pg.display()))?;
        let upstream = crate::vocab::Addr::new("n0", primary_port);
        let auto = crate::product::postgres::standby_settings(name, &upstream);
        for (file, text) in [("standby.signal", String::new()), ("postgresql.auto.conf", auto)] {
            let path = pg.join(file);
            std::fs::write(&path, text).io_context(|| format!("writing {}", path.display()))?;
            std::os::unix::fs::chown(&path, Some(meta.uid()), Some(meta.gid()))
                .io_context(|| format!("chown {}", path.display()))?;
        }
    }
    Ok(())
}

/// Node `i`'s fixed address on the replication network `<subnet>.0/24`: `<subnet>.(10+i)` (the
/// gateway is `.1`; Docker hands out no other address there).
fn replication_ip(subnet: &str, i: usize) -> Result<String> {
    match u8::try_from(i + 10) {
        Ok(host) if host < 255 => Ok(format!("{subnet}.{host}")),
        _ => Err(Error::InvalidSetting {
            name: "replicas",
            what: format!("node {i} does not fit the replication network {subnet}.0/24"),
        }),
    }
}

/// Writes the cluster's hosts file (`<dir>/hosts`): loopback and every node's name at its
/// replication address. Mounted read-only at `/etc/hosts` in every node, so a node resolves its
/// upstream (`n0`) from this file (`hosts: files dns`) and never asks Docker's DNS, and Docker,
/// which does not manage a mounted `/etc/hosts`, never edits it.
fn write_hosts(dir: &Path, repl_ips: &[String]) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let mut text =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for (i, ip) in repl_ips.iter().enumerate() {
        text.push_str(&format!("{ip}\tn{i}\n"));
    }
    let path = dir.join("hosts");
    std::fs::write(&path, text).io_context(|| format!("writing {}", path.display()))?;
    // Read by the servers' own users in the containers, whatever this process's umask.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
        .io_context(|| format!("chmod {}", path.display()))?;
    Ok(path)
}

/// Creates a network on a /24 of 10.200.0.0–10.249.255.0 picked at random (Docker's default
/// pools hold only about 30 networks, fewer than parallel tests need), another on overlap.
/// Returns the subnet's first three octets (`10.231.7`).
fn create_network(name: &str, labels: &[String], extra: &[&str]) -> Result<String> {
    let mut seed = unique() ^ u64::from(std::process::id()).rotate_left(40);
    let mut last = None;
    for _ in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let prefix = format!("10.{}.{}", 200 + seed % 50, (seed >> 8) % 256);
        let mut args: Vec<String> = vec!["network".into(), "create".into()];
        args.extend(labels.iter().cloned());
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        // The gateway explicitly: with `--subnet` alone this engine records none.
        args.extend(["--subnet".into(), format!("{prefix}.0/24")]);
        args.extend(["--gateway".into(), format!("{prefix}.1"), name.into()]);
        match docker(&args) {
            Ok(_) => return Ok(prefix),
            Err(e) if e.to_string().contains("overlap") => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::Docker {
        command: format!("network create {name}"),
        output: "no free subnet found".into(),
    }))
}

/// The runtimes of a containers cluster started elsewhere (by its state).
pub(crate) fn attach(state: &ClusterState) -> Result<Created> {
    let run = state.run_id.clone().ok_or_else(|| Error::State {
        path: state.dir.clone(),
        what: "a containers cluster's state has no run id".into(),
    })?;
    let runtimes = state
        .nodes
        .iter()
        .map(|n| {
            Box::new(ContainerNode {
                node: n.name.clone(),
                container: format!("{run}-{}", n.name),
                run: run.clone(),
                port: n.port,
                data: n.data_dir.clone(),
                log: n.log.clone(),
            }) as Box<dyn Runtime>
        })
        .collect();
    Ok(Created {
        dir: state.dir.clone(),
        runtimes,
        backend: Box::new(Containers { run }),
        bin_dir: PathBuf::new(),
    })
}

/// Removes every container and network labelled with cluster root `root`, and their data:
/// what test processes that died without their destructors left behind. Returns the names of
/// the containers removed. Without a Docker engine there is nothing to reap.
pub(crate) fn reap(root: &Path) -> Vec<String> {
    let root = root.display().to_string();
    let Ok(containers) = docker::containers_labelled(ROOT_LABEL, &root) else { return Vec::new() };
    let mut dirs = Vec::new();
    for c in &containers {
        let format = format!("{{{{index .Config.Labels \"{DATA_LABEL}\"}}}}");
        if let Ok(d) = docker(&["inspect", "--format", &format, c]) {
            dirs.push(d);
        }
        docker_quiet(&["rm", "--force", "--volumes", c]);
    }
    for net in docker::networks_labelled(ROOT_LABEL, &root).unwrap_or_default() {
        docker_quiet(&["network", "rm", &net]);
    }
    dirs.sort();
    dirs.dedup();
    for d in dirs.iter().filter(|d| d.contains("rwsplit-testkit")) {
        let _ = std::fs::remove_dir_all(d);
    }
    containers
}
