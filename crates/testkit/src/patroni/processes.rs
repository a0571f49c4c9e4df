//! [`Processes`]: the processes behind a cluster (etcd, and each member's Patroni with its
//! configuration), from start to teardown.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::error::{Error, IoContext, Result};
use crate::native::process::{self, RunAs};

use super::{
    ETCD, MemberTags, PATRONI, PatroniMember, REST_TIMEOUT, Secrets, Settings, clip, http,
};

/// The processes of one cluster: etcd (a child of this process, in its own process group) and
/// each member's Patroni (a child too, run as the native backend's server user when the testkit
/// runs as root), which starts and daemonizes that member's postmaster. With them, what they
/// are started with: the cluster's directory, Patroni scope and etcd namespace, ports,
/// passwords and Patroni settings. Everything else reaches the processes through these
/// methods.
#[derive(Debug)]
pub(super) struct Processes {
    dir: PathBuf,
    namespace: String,
    scope: String,
    etcd_client_port: u16,
    etcd_peer_port: u16,
    pg_bin: PathBuf,
    run_as: Option<RunAs>,
    secrets: Secrets,
    settings: Settings,
    etcd: Mutex<Option<Child>>,
    members: Mutex<Vec<MemberProc>>,
}

/// Locks `m`, also after a panic poisoned it (the process handles inside stay valid).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Processes {
    /// A cluster in `dir` with Patroni scope `scope`, etcd on `etcd_ports` (client, peer),
    /// PostgreSQL's binaries in `pg_bin` and fresh passwords; nothing runs yet.
    pub(super) fn new(
        dir: PathBuf,
        scope: String,
        etcd_ports: (u16, u16),
        pg_bin: PathBuf,
        run_as: Option<RunAs>,
        settings: Settings,
    ) -> Processes {
        Processes {
            dir,
            namespace: "rwsplit".into(),
            scope,
            etcd_client_port: etcd_ports.0,
            etcd_peer_port: etcd_ports.1,
            pg_bin,
            run_as,
            secrets: Secrets::new(),
            settings,
            etcd: Mutex::new(None),
            members: Mutex::new(Vec::new()),
        }
    }

    /// The directory holding etcd's and every member's data and logs.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Patroni's scope (the cluster name in the DCS).
    pub(super) fn scope(&self) -> &str {
        &self.scope
    }

    /// etcd's client URL.
    pub(super) fn etcd_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.etcd_client_port)
    }

    /// The cluster's passwords.
    pub(super) fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// Every member started and not removed, in the order they were added (running or
    /// killed).
    pub(super) fn members(&self) -> Vec<PatroniMember> {
        lock(&self.members).iter().map(|m| m.info(&self.secrets)).collect()
    }

    /// The member named `name`, or an error naming the members there are.
    pub(super) fn member(&self, name: &str) -> Result<PatroniMember> {
        let members = lock(&self.members);
        members.iter().find(|m| m.name == name).map(|m| m.info(&self.secrets)).ok_or_else(|| {
            Error::InvalidControl {
                node: name.to_owned(),
                what: format!(
                    "no such member (the cluster has {})",
                    members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            }
        })
    }

    /// Starts etcd and waits until it reports itself healthy.
    pub(super) async fn start_etcd(&self) -> Result<()> {
        let data = self.dir.join("etcd");
        let log_path = self.dir.join("etcd.log");
        let log = fs::File::create(&log_path)
            .io_context(|| format!("creating {}", log_path.display()))?;
        let err = log.try_clone().io_context(|| "duplicating the log handle".into())?;
        let (client, peer) = (self.etcd_client_port, self.etcd_peer_port);
        let mut cmd = Command::new(ETCD);
        cmd.arg("--name").arg("e1").arg("--data-dir").arg(&data);
        cmd.arg("--listen-client-urls").arg(format!("http://127.0.0.1:{client}"));
        cmd.arg("--advertise-client-urls").arg(format!("http://127.0.0.1:{client}"));
        cmd.arg("--listen-peer-urls").arg(format!("http://127.0.0.1:{peer}"));
        cmd.arg("--initial-advertise-peer-urls").arg(format!("http://127.0.0.1:{peer}"));
        cmd.arg("--initial-cluster").arg(format!("e1=http://127.0.0.1:{peer}"));
        cmd.args(["--initial-cluster-state", "new"]);
        cmd.stdin(Stdio::null()).stdout(log).stderr(err);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().io_context(|| format!("starting {}", process::describe(&cmd)))?;
        *lock(&self.etcd) = Some(child);
        let start = Instant::now();
        loop {
            if let Ok(r) = http::request("GET", client, "/health", None, REST_TIMEOUT).await
                && r.body.contains("\"health\":\"true\"")
            {
                return Ok(());
            }
            if let Some(c) = lock(&self.etcd).as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(Error::NodeStartFailed {
                    node: "etcd".into(),
                    reason: format!("etcd exited ({status})"),
                    log_tail: process::tail_file(&log_path, 30),
                    log: log_path,
                });
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(Error::NodeStartFailed {
                    node: "etcd".into(),
                    reason: "not healthy after 30 s".into(),
                    log_tail: process::tail_file(&log_path, 30),
                    log: log_path,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Lays out a new member (next free name `mN`, fresh ports) and starts its Patroni.
    pub(super) fn spawn_new_member(&self, tags: MemberTags) -> Result<String> {
        let mut members = lock(&self.members);
        let mut n = members.len() + 1;
        while members.iter().any(|m| m.name == format!("m{n}"))
            || self.dir.join(format!("m{n}")).exists()
        {
            n += 1;
        }
        let name = format!("m{n}");
        let ports = crate::vocab::allocate_ports(None, 2)?;
        let dir = self.dir.join(&name);
        fs::create_dir_all(&dir).io_context(|| format!("creating {}", dir.display()))?;
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                .io_context(|| format!("chmod {}", dir.display()))?;
        }
        if let Some(r) = self.run_as {
            r.chown_tree(&dir)?;
        }
        let mut m = MemberProc {
            name: name.clone(),
            pg_port: ports[0],
            rest_port: ports[1],
            dir,
            tags,
            child: None,
        };
        self.write_config(&m)?;
        self.spawn_patroni(&mut m)?;
        members.push(m);
        Ok(name)
    }

    /// Writes member `m`'s `patroni.yml` (owned by the server user when there is one).
    fn write_config(&self, m: &MemberProc) -> Result<()> {
        let path = m.dir.join("patroni.yml");
        fs::write(&path, self.config(m)).io_context(|| format!("writing {}", path.display()))?;
        if let Some(r) = self.run_as {
            r.chown_tree(&path)?;
        }
        Ok(())
    }

    /// Member `m`'s Patroni configuration (YAML). Every string value is quoted, so none is
    /// read as a boolean (`mode: off` would be).
    fn config(&self, m: &MemberProc) -> String {
        let s = &self.settings;
        let dir = m.dir.display();
        let bin = self.pg_bin.display();
        let (pg, rest, etcd) = (m.pg_port, m.rest_port, self.etcd_client_port);
        let secrets = &self.secrets;
        format!(
            r#"scope: "{scope}"
namespace: "/{namespace}/"
name: "{name}"
log: {{level: INFO}}
restapi:
  listen: "127.0.0.1:{rest}"
  connect_address: "127.0.0.1:{rest}"
etcd3:
  hosts: "127.0.0.1:{etcd}"
  protocol: http
watchdog:
  mode: "off"
tags:
  nofailover: {nofailover}
  noloadbalance: {noloadbalance}
bootstrap:
  dcs:
    ttl: {ttl}
    loop_wait: {loop_wait}
    retry_timeout: {retry_timeout}
    maximum_lag_on_failover: 1048576
    synchronous_mode: {sync}
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_connections: 100
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: "128MB"
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
    - data-checksums
postgresql:
  listen: "127.0.0.1:{pg}"
  connect_address: "127.0.0.1:{pg}"
  data_dir: "{dir}/data"
  bin_dir: "{bin}"
  pgpass: "{dir}/pgpass"
  authentication:
    superuser: {{username: postgres, password: "{su}"}}
    replication: {{username: replicator, password: "{repl}"}}
    rewind: {{username: postgres, password: "{su}"}}
  parameters:
    unix_socket_directories: "{dir}"
    shared_buffers: "32MB"
    fsync: "off"
    wal_receiver_status_interval: "1s"
    wal_retrieve_retry_interval: "500ms"
  basebackup:
    - checkpoint: fast
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 scram-sha-256
    - host replication replicator 127.0.0.1/32 scram-sha-256
"#,
            scope = self.scope,
            namespace = self.namespace,
            name = m.name,
            nofailover = m.tags.nofailover,
            noloadbalance = m.tags.noloadbalance,
            ttl = s.ttl,
            loop_wait = s.loop_wait,
            retry_timeout = s.retry_timeout,
            sync = s.synchronous,
            su = secrets.superuser,
            repl = secrets.replication,
        )
    }

    /// Starts member `m`'s Patroni, appending to its `patroni.log`.
    fn spawn_patroni(&self, m: &mut MemberProc) -> Result<()> {
        let log_path = m.dir.join("patroni.log");
        let log = fs::File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .io_context(|| format!("opening {}", log_path.display()))?;
        let err = log.try_clone().io_context(|| "duplicating the log handle".into())?;
        let mut cmd = Command::new(PATRONI);
        cmd.arg(m.dir.join("patroni.yml")).current_dir(&m.dir).env("HOME", &m.dir);
        cmd.stdin(Stdio::null()).stdout(log).stderr(err);
        if let Some(r) = self.run_as {
            r.apply(&mut cmd);
        }
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().io_context(|| format!("starting {}", process::describe(&cmd)))?;
        m.child = Some(child);
        Ok(())
    }

    /// SIGKILLs member `name`'s Patroni and postmaster and waits until both are gone.
    pub(super) fn kill_member(&self, name: &str) -> Result<()> {
        let mut members = lock(&self.members);
        find(&mut members, name)?.kill()
    }

    /// Starts member `name`'s Patroni again; an error if it is running.
    pub(super) fn start_member(&self, name: &str) -> Result<()> {
        let mut members = lock(&self.members);
        let m = find(&mut members, name)?;
        if m.patroni_pid().is_some() {
            return Err(Error::InvalidControl {
                node: name.to_owned(),
                what: "its Patroni is already running".into(),
            });
        }
        self.spawn_patroni(m)
    }

    /// Gives member `name` the tags `tags` and rewrites its configuration (Patroni reads it on
    /// `POST /reload`).
    pub(super) fn set_tags(&self, name: &str, tags: MemberTags) -> Result<()> {
        let mut members = lock(&self.members);
        let m = find(&mut members, name)?;
        m.tags = tags;
        self.write_config(m)
    }

    /// Removes member `name` for good: stops its Patroni cleanly (SIGTERM, which stops
    /// PostgreSQL with a fast shutdown; SIGKILL after 20 s), deletes its member key from etcd
    /// so `/cluster` drops it at once rather than after ttl, and deletes its data.
    pub(super) async fn remove_member(&self, name: &str) -> Result<()> {
        let mut m = {
            let mut members = lock(&self.members);
            let i = members.iter().position(|m| m.name == name).ok_or_else(|| {
                Error::InvalidControl { node: name.to_owned(), what: "no such member".into() }
            })?;
            members.remove(i)
        };
        if let Some(pid) = m.patroni_pid() {
            process::send(pid, Signal::SIGTERM)?;
            let start = Instant::now();
            // Polled without blocking the runtime: a clean stop takes 5-10 s.
            while m.patroni_pid().is_some() {
                if start.elapsed() > Duration::from_secs(20) {
                    tracing::warn!(member = name, "patroni ignored SIGTERM for 20 s; killing it");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        m.kill()?;
        let key = format!("/{}/{}/members/{name}", self.namespace, self.scope);
        let body = serde_json::json!({ "key": b64(key.as_bytes()) }).to_string();
        let r = http::request(
            "POST",
            self.etcd_client_port,
            "/v3/kv/deleterange",
            Some(&body),
            REST_TIMEOUT,
        )
        .await?;
        if r.status != 200 {
            return Err(Error::HttpStatus {
                request: format!("POST {}/v3/kv/deleterange", self.etcd_url()),
                status: r.status,
                body: clip(&r.body),
            });
        }
        fs::remove_dir_all(&m.dir).io_context(|| format!("removing {}", m.dir.display()))
    }

    /// The pids of member `name`'s WAL receiver (a child of its postmaster whose process title
    /// names it): none on a leader, or while it reconnects.
    pub(super) fn wal_receivers(&self, name: &str) -> Result<Vec<u32>> {
        let mut members = lock(&self.members);
        let m = find(&mut members, name)?;
        let postmaster = m.postmaster().ok_or_else(|| Error::InvalidControl {
            node: name.to_owned(),
            what: "its PostgreSQL is not running".into(),
        })?;
        let title = std::ffi::OsStr::new("walreceiver");
        Ok(process::children_of(postmaster)
            .into_iter()
            .filter(|&pid| process::cmdline_contains(pid, title))
            .collect())
    }

    /// An error naming a member whose Patroni has exited, with its log, while the caller was
    /// waiting for `what`; `Ok` while every started Patroni runs.
    pub(super) fn check_running(&self, what: &str) -> Result<()> {
        for m in lock(&self.members).iter_mut() {
            if let Some(child) = m.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                m.child = None;
                let log = m.dir.join("patroni.log");
                return Err(Error::NodeStartFailed {
                    node: m.name.clone(),
                    reason: format!("patroni exited ({status}) while waiting for {what}"),
                    log_tail: process::tail_file(&log, 30),
                    log,
                });
            }
        }
        Ok(())
    }

    /// SIGKILLs every Patroni, postmaster and etcd, waits until they are gone and deletes the
    /// directory; the first error, after trying all of it.
    pub(super) fn teardown(&self) -> Result<()> {
        let mut first = Ok(());
        // Replicas first, so they do not race for the leader lock.
        let mut members = lock(&self.members);
        for m in members.iter_mut().rev() {
            if let Err(e) = m.kill()
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        if let Some(mut etcd) = lock(&self.etcd).take() {
            let _ = etcd.kill();
            let _ = etcd.wait();
        }
        // Anything else that names the directory (a postmaster Patroni restarted meanwhile).
        let left = process::processes_mentioning(self.dir.as_os_str());
        for &p in &left {
            let _ = process::send(p, Signal::SIGKILL);
        }
        process::wait_gone(&left, Duration::from_secs(10));
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                if first.is_ok() {
                    first = Err(Error::Io {
                        what: format!("removing {}", self.dir.display()),
                        source: e,
                    });
                }
            }
        }
        first
    }
}

/// One member's process and identity.
#[derive(Debug)]
struct MemberProc {
    name: String,
    pg_port: u16,
    rest_port: u16,
    dir: PathBuf,
    tags: MemberTags,
    child: Option<Child>,
}

impl MemberProc {
    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The postmaster's pid from `postmaster.pid`, if it still runs that data directory.
    fn postmaster(&self) -> Option<u32> {
        let text = fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        let pid: u32 = text.lines().next()?.trim().parse().ok()?;
        let alive = !process::is_gone(pid) && process::cmdline_contains(pid, self.dir.as_os_str());
        alive.then_some(pid)
    }

    fn patroni_pid(&mut self) -> Option<u32> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(None) => Some(child.id()),
            _ => None,
        }
    }

    /// SIGKILLs Patroni and the postmaster and waits until both are gone.
    fn kill(&mut self) -> Result<()> {
        let mut pids = Vec::new();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            pids.push(child.id());
        }
        if let Some(pm) = self.postmaster() {
            process::send(pm, Signal::SIGKILL)?;
            pids.push(pm);
        }
        let left = process::wait_gone(&pids, Duration::from_secs(15));
        if left.is_empty() {
            Ok(())
        } else {
            Err(Error::Timeout {
                what: format!("member {} (pids {left:?}) to exit after SIGKILL", self.name),
                waited: Duration::from_secs(15),
            })
        }
    }

    fn info(&self, secrets: &Secrets) -> PatroniMember {
        PatroniMember::new(&self.name, self.pg_port, self.rest_port, secrets, self.tags)
    }
}

/// `bytes` in standard base64 (etcd's JSON gateway wants keys so).
fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn find<'a>(members: &'a mut [MemberProc], name: &str) -> Result<&'a mut MemberProc> {
    members.iter_mut().find(|m| m.name == name).ok_or_else(|| Error::InvalidControl {
        node: name.to_owned(),
        what: "no such member".into(),
    })
}
