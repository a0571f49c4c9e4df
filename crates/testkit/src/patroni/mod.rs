//! A real Patroni cluster: one etcd and N Patroni-managed PostgreSQL members on loopback, from
//! Debian's `patroni` and `etcd-server` packages (recipe and measurements:
//! `shared/research/patroni.md`).
//!
//! # Why a type of its own, not `Cluster::builder().ha(..)`
//!
//! A [`Cluster`](crate::Cluster) owns fixed roles: node 0 is the primary, every
//! [`Node`](crate::Node) is one server process the testkit starts from a cached template, and
//! its controls (`promote`, `follow`, `restart`, `pause_replay`, …) change roles and
//! replication behind the back of whatever manages them. Under Patroni none of that holds:
//! Patroni runs `initdb` and `pg_basebackup`, starts and daemonizes the postmaster (it is not a
//! child of anything the testkit started), and decides who leads; a testkit `promote` would
//! fight it. So [`PatroniCluster`] has the controls an operator of a Patroni cluster has
//! (switchover, kill a member, add and remove members, tags, synchronous mode) and answers
//! questions through Patroni's REST API, and `Cluster` keeps its contracts unchanged. It runs
//! on the native backend only (the Debian packages on this machine).
//!
//! # Processes
//!
//! etcd is a child of this process (its own process group). Each member is a `patroni`
//! child, run as the unprivileged account the native backend uses for PostgreSQL (`postgres`,
//! else `rwsplit`) when the testkit runs as root; Patroni starts PostgreSQL as that user too.
//! Each cluster has its own ports, etcd data directory, scope and namespace. Dropping the
//! cluster SIGKILLs every Patroni, every postmaster (found through `postmaster.pid`, checked
//! against its command line) and etcd, waits until they are gone and deletes the directory
//! — also when a test panics, since unwinding runs the destructor. A process that dies without
//! unwinding leaves processes whose command lines name the cluster directory:
//! [`crate::reap_orphans`] (called by `cargo xtask itest`) and [`PatroniState::destroy`]
//! (called by `cargo xtask cluster down`) stop those.
//!
//! # Credentials
//!
//! Each cluster gets fresh passwords for the superuser (`postgres`), replication
//! (`replicator`) and the application user (`app`, owner of database `app`, `CREATEDB`).
//! TCP connections need SCRAM; the unix socket (in each member's directory) trusts. URLs carry
//! the application password, so they are handed out by method and never appear in `Debug`.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::error::{Error, IoContext, Result};
use crate::native::process::{self, RunAs};
use crate::native::unique;

mod http;

/// How long one REST call may take (etcd trouble makes `/cluster` hang for `retry_timeout`).
const REST_TIMEOUT: Duration = Duration::from_secs(6);
/// How long a cluster may take to come up (measured 12–20 s under load).
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Poll period of the wait helpers.
const POLL: Duration = Duration::from_millis(100);

const PATRONI: &str = "/usr/bin/patroni";
const ETCD: &str = "/usr/bin/etcd";
const INSTALL_HINT: &str =
    "install them with `apt-get install patroni etcd-server` (Debian/Ubuntu)";

/// The tags a member advertises in `/cluster` (Patroni's `tags:` section).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberTags {
    /// Never promote this member.
    pub nofailover: bool,
    /// Load balancers (and rwsplit) should not send reads to this member.
    pub noloadbalance: bool,
}

impl MemberTags {
    /// No tags set.
    pub fn none() -> MemberTags {
        MemberTags::default()
    }

    /// With `noloadbalance` set to `on`.
    #[must_use]
    pub fn noloadbalance(mut self, on: bool) -> MemberTags {
        self.noloadbalance = on;
        self
    }

    /// With `nofailover` set to `on`.
    #[must_use]
    pub fn nofailover(mut self, on: bool) -> MemberTags {
        self.nofailover = on;
        self
    }
}

/// Configures and starts a [`PatroniCluster`].
///
/// ```no_run
/// # async fn demo() -> rwsplit_testkit::Result<()> {
/// use rwsplit_testkit::PatroniCluster;
/// let cluster = PatroniCluster::builder().members(3).start().await?;
/// let leader = cluster.leader().await?.expect("a leader after start");
/// println!("{leader} leads; REST API at {}", cluster.member(&leader)?.rest_url());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct PatroniBuilder {
    members: usize,
    synchronous: bool,
    keep: bool,
    root: Option<PathBuf>,
    name: String,
    ttl: u32,
    loop_wait: u32,
    retry_timeout: u32,
}

impl Default for PatroniBuilder {
    fn default() -> Self {
        PatroniBuilder {
            members: 3,
            synchronous: false,
            keep: std::env::var_os("RWSPLIT_KEEP").is_some_and(|v| v == "1"),
            root: None,
            name: "patroni".into(),
            ttl: 10,
            loop_wait: 1,
            retry_timeout: 4,
        }
    }
}

impl PatroniBuilder {
    /// How many members to start (default 3; at least 1).
    pub fn members(mut self, n: usize) -> Self {
        self.members = n;
        self
    }

    /// Start with Patroni's synchronous mode on (default off; [`PatroniCluster::set_synchronous`]
    /// changes it at run time).
    pub fn synchronous(mut self, on: bool) -> Self {
        self.synchronous = on;
        self
    }

    /// Leave the processes and data behind when the cluster is dropped (also with
    /// `RWSPLIT_KEEP=1`).
    pub fn keep(mut self, keep: bool) -> Self {
        self.keep = keep;
        self
    }

    /// The directory under which clusters live (default `$RWSPLIT_TESTKIT_DIR`, else
    /// `<tmp>/rwsplit-testkit`); every ancestor must be traversable by the server user.
    pub fn root_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.root = Some(dir.into());
        self
    }

    /// A short name for directories and the Patroni scope (default `patroni`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Patroni's `ttl`, `loop_wait` and `retry_timeout` in seconds (default 10, 1, 4: failover
    /// in about 11 s). Patroni's rule `loop_wait + 2 * retry_timeout <= ttl` is checked.
    pub fn timing(mut self, ttl: u32, loop_wait: u32, retry_timeout: u32) -> Self {
        self.ttl = ttl;
        self.loop_wait = loop_wait;
        self.retry_timeout = retry_timeout;
        self
    }

    /// Starts etcd and the members; ready means one leader that accepts writes, every other
    /// member streaming from it, and the application user and database on every member.
    pub async fn start(self) -> Result<PatroniCluster> {
        if self.members == 0 {
            return Err(Error::InvalidSetting {
                name: "members",
                what: "a Patroni cluster needs at least one member".into(),
            });
        }
        if self.loop_wait + 2 * self.retry_timeout > self.ttl {
            return Err(Error::InvalidSetting {
                name: "timing",
                what: format!(
                    "loop_wait ({}) + 2 * retry_timeout ({}) must not exceed ttl ({})",
                    self.loop_wait, self.retry_timeout, self.ttl
                ),
            });
        }
        for bin in [PATRONI, ETCD] {
            if !Path::new(bin).is_file() {
                return Err(Error::BinariesNotFound {
                    db: "Patroni/etcd",
                    searched: vec![PathBuf::from(bin)],
                    hint: INSTALL_HINT,
                });
            }
        }
        let pg = crate::native::postgres::PgEngine::discover(None)?;
        let root = self.root.clone().unwrap_or_else(crate::cluster::default_root);
        crate::cluster::ensure_traversable_dir(&root)?;
        let name = crate::cluster::sanitize(&self.name);
        let dir = crate::cluster::cluster_dir(&root, &name)?;
        let ports = crate::cluster::allocate_ports(None, 2)?;
        let scope = format!("{name}-{:x}", unique() & 0xff_ffff);
        let cluster = PatroniCluster {
            dir,
            namespace: "rwsplit".into(),
            scope,
            etcd_client_port: ports[0],
            etcd_peer_port: ports[1],
            etcd: Mutex::new(None),
            members: Mutex::new(Vec::new()),
            pg_bin: pg.bin,
            run_as: pg.run_as,
            secrets: Secrets::new(),
            settings: Settings {
                synchronous: self.synchronous,
                ttl: self.ttl,
                loop_wait: self.loop_wait,
                retry_timeout: self.retry_timeout,
            },
            keep: self.keep,
        };
        let started = Instant::now();
        cluster.start_etcd().await?;
        for _ in 0..self.members {
            cluster.spawn_new_member(MemberTags::none())?;
        }
        cluster.wait_ready(READY_TIMEOUT.saturating_sub(started.elapsed())).await?;
        cluster.create_app_user().await?;
        tracing::info!(
            scope = %cluster.scope,
            seconds = started.elapsed().as_secs_f64(),
            "patroni cluster ready"
        );
        Ok(cluster)
    }
}

/// Passwords of one cluster; `Debug` shows none of them.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Secrets {
    superuser: String,
    replication: String,
    app: String,
}

impl Secrets {
    /// Fresh passwords: std's per-process random hasher keys (not a cryptographic generator,
    /// but unguessable enough for a throwaway cluster on loopback).
    fn new() -> Secrets {
        use std::hash::{BuildHasher, Hasher};
        let fresh = || {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(unique());
            let mut h2 = std::collections::hash_map::RandomState::new().build_hasher();
            h2.write_u64(unique());
            format!("{:016x}{:016x}", h.finish(), h2.finish())
        };
        Secrets { superuser: fresh(), replication: fresh(), app: fresh() }
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secrets(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    synchronous: bool,
    ttl: u32,
    loop_wait: u32,
    retry_timeout: u32,
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
        PatroniMember {
            name: self.name.clone(),
            pg_port: self.pg_port,
            rest_port: self.rest_port,
            app_password: secrets.app.clone(),
            superuser_password: secrets.superuser.clone(),
            tags: self.tags,
        }
    }
}

/// One member of a [`PatroniCluster`], as the cluster knew it when asked. `Debug` shows no
/// password.
#[derive(Clone)]
pub struct PatroniMember {
    name: String,
    pg_port: u16,
    rest_port: u16,
    app_password: String,
    superuser_password: String,
    tags: MemberTags,
}

impl fmt::Debug for PatroniMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatroniMember")
            .field("name", &self.name)
            .field("pg_port", &self.pg_port)
            .field("rest_port", &self.rest_port)
            .field("tags", &self.tags)
            .finish_non_exhaustive()
    }
}

impl PatroniMember {
    /// The member's Patroni name (`m1`, `m2`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its PostgreSQL port on 127.0.0.1.
    pub fn pg_port(&self) -> u16 {
        self.pg_port
    }

    /// Its REST API port on 127.0.0.1.
    pub fn rest_port(&self) -> u16 {
        self.rest_port
    }

    /// The application URL: user `app` (with its password), database `app`.
    pub fn url(&self) -> String {
        format!("postgres://app:{}@127.0.0.1:{}/app", self.app_password, self.pg_port)
    }

    /// A superuser URL of database `db` (for controls a test needs beyond the application's).
    pub fn admin_url(&self, db: &str) -> String {
        format!("postgres://postgres:{}@127.0.0.1:{}/{db}", self.superuser_password, self.pg_port)
    }

    /// Its REST API's base URL, `http://127.0.0.1:<port>` (no credentials: the API has none).
    pub fn rest_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rest_port)
    }

    /// The tags it was configured with.
    pub fn tags(&self) -> MemberTags {
        self.tags
    }
}

/// One etcd and Patroni-managed PostgreSQL members on loopback, from Debian's `patroni` and
/// `etcd-server`.
///
/// A type of its own rather than a mode of [`Cluster`](crate::Cluster): a `Cluster` owns fixed
/// roles and its controls (`promote`, `follow`, `restart`) change them behind the back of an
/// HA manager, while here Patroni runs `initdb` and `pg_basebackup`, daemonizes the postmaster
/// and decides who leads. So this type has an operator's controls (switchover, kill, add and
/// remove members, tags, synchronous mode) and answers through Patroni's REST API.
///
/// Members run as the native backend's unprivileged server user when the testkit runs as
/// root; each cluster has its own ports, scope, etcd and passwords. Dropping it SIGKILLs every
/// Patroni, postmaster and etcd and deletes its directory, also when a test panics; a process
/// that dies without unwinding leaves processes naming the directory, which
/// [`crate::reap_orphans`] and [`PatroniState::destroy`] stop. URLs carry the application
/// password and are handed out by method; `Debug` shows none.
#[derive(Debug)]
pub struct PatroniCluster {
    dir: PathBuf,
    namespace: String,
    scope: String,
    etcd_client_port: u16,
    etcd_peer_port: u16,
    etcd: Mutex<Option<Child>>,
    members: Mutex<Vec<MemberProc>>,
    pg_bin: PathBuf,
    run_as: Option<RunAs>,
    secrets: Secrets,
    settings: Settings,
    keep: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One member's line of `GET /cluster`, as far as the testkit reads it.
#[derive(Debug, Clone)]
struct Seen {
    name: String,
    role: String,
    state: String,
    api_port: Option<u16>,
}

fn parse_cluster(v: &Value) -> Vec<Seen> {
    let Some(members) = v.get("members").and_then(Value::as_array) else { return Vec::new() };
    members
        .iter()
        .map(|m| {
            let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
            let api_port = m
                .get("api_url")
                .and_then(Value::as_str)
                .and_then(|u| u.rsplit_once(':'))
                .and_then(|(_, rest)| rest.split('/').next()?.parse().ok());
            Seen { name: s("name"), role: s("role"), state: s("state"), api_port }
        })
        .collect()
}

impl PatroniCluster {
    /// A builder with the defaults: three members, asynchronous replication, ttl 10 s.
    pub fn builder() -> PatroniBuilder {
        PatroniBuilder::default()
    }

    /// The directory holding etcd's and every member's data and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Patroni's scope (the cluster name in the DCS), unique per cluster.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// etcd's client URL.
    pub fn etcd_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.etcd_client_port)
    }

    /// Every member this cluster started and has not removed, in the order they were added
    /// (running or killed).
    pub fn members(&self) -> Vec<PatroniMember> {
        lock(&self.members).iter().map(|m| m.info(&self.secrets)).collect()
    }

    /// The member named `name`, or an error naming the members there are.
    pub fn member(&self, name: &str) -> Result<PatroniMember> {
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

    /// Every member's REST base URL, in member order.
    pub fn rest_urls(&self) -> Vec<String> {
        self.members().iter().map(PatroniMember::rest_url).collect()
    }

    /// `GET /cluster` from the first member that answers (members in order).
    pub async fn cluster_json(&self) -> Result<Value> {
        let ports: Vec<u16> = lock(&self.members).iter().map(|m| m.rest_port).collect();
        let mut last = None;
        for port in ports {
            match self.get_json(port, "/cluster").await {
                Ok(v) => return Ok(v),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::InvalidControl {
            node: self.scope.clone(),
            what: "the cluster has no members".into(),
        }))
    }

    /// The member `/cluster` lists as leader and running, if any. During a failover the dead
    /// leader stays listed until its key expires (ttl): use [`PatroniCluster::wait_leader`] to
    /// know a leader that answers.
    pub async fn leader(&self) -> Result<Option<String>> {
        let v = self.cluster_json().await?;
        Ok(parse_cluster(&v)
            .into_iter()
            .find(|m| m.role == "leader" && m.state == "running")
            .map(|m| m.name))
    }

    async fn get_json(&self, port: u16, path: &str) -> Result<Value> {
        patroni_get(port, path).await
    }

    /// A leader that its own REST API confirms (`GET /primary` = 200) and that `/cluster`
    /// lists as running: returns its name.
    async fn confirmed_leader(&self) -> Option<(String, u16)> {
        let v = self.cluster_json().await.ok()?;
        for m in parse_cluster(&v) {
            if m.role != "leader" || m.state != "running" {
                continue;
            }
            let port = m.api_port?;
            let r = http::request("GET", port, "/primary", None, REST_TIMEOUT).await.ok()?;
            if r.status == 200 {
                return Some((m.name, port));
            }
        }
        None
    }

    /// Waits until a leader is elected and confirmed by its own REST API; returns its name.
    pub async fn wait_leader(&self, timeout: Duration) -> Result<String> {
        let start = Instant::now();
        loop {
            if let Some((name, _)) = self.confirmed_leader().await {
                return Ok(name);
            }
            self.check_timeout(start, timeout, "a leader to be elected")?;
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until a leader accepts a write (`SELECT txid_current()`, which fails on a
    /// standby); returns its name.
    pub async fn wait_writable(&self, timeout: Duration) -> Result<String> {
        let start = Instant::now();
        loop {
            if let Some((name, _)) = self.confirmed_leader().await
                && let Ok(m) = self.member(&name)
                && self.sql(&m.admin_url("postgres"), "SELECT txid_current()::text").await.is_ok()
            {
                return Ok(name);
            }
            self.check_timeout(start, timeout, "a writable leader")?;
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the leader's `/patroni` lists member `name` as a streaming replica (matched
    /// by `application_name`, so `pg_basebackup`'s own stream does not count).
    pub async fn wait_streaming(&self, name: &str, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            if self.streaming().await.iter().any(|n| n == name) {
                return Ok(());
            }
            self.check_timeout(start, timeout, &format!("member {name} to stream"))?;
            tokio::time::sleep(POLL).await;
        }
    }

    /// The names of the members streaming from the confirmed leader.
    async fn streaming(&self) -> Vec<String> {
        let Some((_, port)) = self.confirmed_leader().await else { return Vec::new() };
        let Ok(v) = self.get_json(port, "/patroni").await else { return Vec::new() };
        v.get("replication")
            .and_then(Value::as_array)
            .map(|rs| {
                rs.iter()
                    .filter(|r| r.get("state").and_then(Value::as_str) == Some("streaming"))
                    .filter_map(|r| r.get("application_name")?.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until every running replica has replayed everything the leader had written when
    /// this was called.
    pub async fn wait_caught_up(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let leader = self.wait_writable(timeout).await?;
        let lm = self.member(&leader)?;
        let target = self
            .sql(&lm.admin_url("postgres"), "SELECT pg_current_wal_lsn()::text")
            .await?
            .unwrap_or_default();
        let names = self.streaming().await;
        for name in names {
            let Ok(m) = self.member(&name) else { continue };
            let sql = format!("SELECT (pg_last_wal_replay_lsn() >= '{target}'::pg_lsn)::text");
            loop {
                if self.sql(&m.admin_url("postgres"), &sql).await.ok().flatten().as_deref()
                    == Some("true")
                {
                    break;
                }
                self.check_timeout(start, timeout, &format!("{name} to replay {target}"))?;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    /// Waits until `/cluster` names a synchronous standby; returns its name.
    pub async fn wait_sync_standby(&self, timeout: Duration) -> Result<String> {
        let start = Instant::now();
        loop {
            if let Ok(v) = self.cluster_json().await
                && let Some(m) = parse_cluster(&v).into_iter().find(|m| m.role == "sync_standby")
            {
                return Ok(m.name);
            }
            self.check_timeout(start, timeout, "a synchronous standby")?;
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until `/cluster` no longer lists member `name`.
    pub async fn wait_member_gone(&self, name: &str, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            if let Ok(v) = self.cluster_json().await
                && !parse_cluster(&v).iter().any(|m| m.name == name)
            {
                return Ok(());
            }
            self.check_timeout(start, timeout, &format!("member {name} to leave /cluster"))?;
            tokio::time::sleep(POLL).await;
        }
    }

    fn check_timeout(&self, start: Instant, timeout: Duration, what: &str) -> Result<()> {
        // A member whose Patroni exited is worth naming at once, with its log.
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
        if start.elapsed() > timeout {
            return Err(Error::Timeout { what: what.to_owned(), waited: timeout });
        }
        Ok(())
    }

    /// Switches the leadership over to `candidate` (or to a member Patroni picks) through the
    /// leader's `POST /switchover`, then waits until the new leader takes writes; returns its
    /// name. In synchronous mode the candidate must be the synchronous standby (Patroni answers
    /// 412 otherwise, and so does this).
    pub async fn switchover(&self, candidate: Option<&str>) -> Result<String> {
        let (leader, port) =
            self.confirmed_leader().await.ok_or_else(|| Error::InvalidControl {
                node: self.scope.clone(),
                what: "switchover needs a leader, and none answers".into(),
            })?;
        let body = match candidate {
            Some(c) => serde_json::json!({ "leader": leader, "candidate": c }),
            None => serde_json::json!({ "leader": leader }),
        };
        let r = http::request(
            "POST",
            port,
            "/switchover",
            Some(&body.to_string()),
            Duration::from_secs(60),
        )
        .await?;
        if r.status != 200 {
            return Err(Error::HttpStatus {
                request: format!("POST http://127.0.0.1:{port}/switchover"),
                status: r.status,
                body: clip(&r.body),
            });
        }
        let start = Instant::now();
        loop {
            let now = self.wait_writable(Duration::from_secs(60)).await?;
            if now != leader {
                return Ok(now);
            }
            self.check_timeout(start, Duration::from_secs(30), "the old leader to step down")?;
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGKILLs the confirmed leader's Patroni and postmaster (a crash of the whole member);
    /// returns its name. The member stays in [`PatroniCluster::members`];
    /// [`PatroniCluster::start_member`] brings it back.
    pub async fn kill_leader(&self) -> Result<String> {
        let (leader, _) = self.confirmed_leader().await.ok_or_else(|| Error::InvalidControl {
            node: self.scope.clone(),
            what: "no leader answers, so none can be killed".into(),
        })?;
        self.kill_member(&leader)?;
        Ok(leader)
    }

    /// SIGKILLs member `name`'s Patroni and postmaster and waits until both are gone.
    pub fn kill_member(&self, name: &str) -> Result<()> {
        let mut members = lock(&self.members);
        let m = find(&mut members, name)?;
        m.kill()
    }

    /// Starts member `name`'s Patroni again (after [`PatroniCluster::kill_member`]); it
    /// rejoins by itself (crash recovery, `pg_rewind` if needed).
    pub fn start_member(&self, name: &str) -> Result<()> {
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

    /// Adds a member with `tags`, and waits until it streams from the leader; returns its name.
    pub async fn add_member(&self, tags: MemberTags) -> Result<String> {
        let name = self.spawn_new_member(tags)?;
        self.wait_streaming(&name, READY_TIMEOUT).await?;
        Ok(name)
    }

    /// Removes member `name` for good: stops its Patroni cleanly (SIGTERM, which stops
    /// PostgreSQL with a fast shutdown; SIGKILL after 20 s), deletes its member key from etcd
    /// so `/cluster` drops it at once rather than after ttl, and deletes its data. The leader
    /// cannot be removed: switch over first.
    pub async fn remove_member(&self, name: &str) -> Result<()> {
        if self.confirmed_leader().await.is_some_and(|(l, _)| l == name) {
            return Err(Error::InvalidControl {
                node: name.to_owned(),
                what: "is the leader; switch over before removing it".into(),
            });
        }
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

    /// Sets member `name`'s tags: rewrites its configuration and asks Patroni to reload it
    /// (`POST /reload`); `/cluster` shows them within a loop (about `loop_wait`).
    pub async fn set_tags(&self, name: &str, tags: MemberTags) -> Result<()> {
        let port = {
            let mut members = lock(&self.members);
            let m = find(&mut members, name)?;
            m.tags = tags;
            self.write_config(m)?;
            m.rest_port
        };
        let r = http::request("POST", port, "/reload", None, REST_TIMEOUT).await?;
        if !(200..300).contains(&r.status) {
            return Err(Error::HttpStatus {
                request: format!("POST http://127.0.0.1:{port}/reload"),
                status: r.status,
                body: clip(&r.body),
            });
        }
        Ok(())
    }

    /// Turns Patroni's synchronous mode on or off (`PATCH /config` on the first member that
    /// answers). With it on, wait for the standby with [`PatroniCluster::wait_sync_standby`].
    pub async fn set_synchronous(&self, on: bool) -> Result<()> {
        let body = serde_json::json!({ "synchronous_mode": on }).to_string();
        let ports: Vec<u16> = lock(&self.members).iter().map(|m| m.rest_port).collect();
        let mut last = None;
        for port in ports {
            let request = format!("PATCH http://127.0.0.1:{port}/config");
            match http::request("PATCH", port, "/config", Some(&body), REST_TIMEOUT).await {
                Ok(r) if r.status == 200 => return Ok(()),
                Ok(r) => {
                    last =
                        Some(Error::HttpStatus { request, status: r.status, body: clip(&r.body) })
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::InvalidControl {
            node: self.scope.clone(),
            what: "the cluster has no members".into(),
        }))
    }

    /// Freezes member `name`'s WAL receiver (SIGSTOP): the member stays up, answers queries
    /// and its Patroni's REST API, but receives no WAL, so it falls behind while the leader
    /// writes and Patroni reports it lagging (`lag` in `/cluster` is the leader's position minus
    /// the member's received one). Not for the leader, and not under synchronous mode for the
    /// sync standby (commits would wait for it). [`PatroniCluster::resume_streaming`] undoes
    /// it; dropping the cluster kills a frozen receiver like every other process.
    pub fn hold_streaming(&self, name: &str) -> Result<()> {
        let receivers = self.wal_receivers(name)?;
        if receivers.is_empty() {
            return Err(Error::InvalidControl {
                node: name.to_owned(),
                what: "runs no WAL receiver (is it the leader, or reconnecting?)".into(),
            });
        }
        for pid in receivers {
            process::send(pid, Signal::SIGSTOP)?;
        }
        Ok(())
    }

    /// Continues member `name`'s WAL receiver after [`PatroniCluster::hold_streaming`]: it
    /// streams the WAL it missed and catches up. A member not held is left as it is.
    pub fn resume_streaming(&self, name: &str) -> Result<()> {
        for pid in self.wal_receivers(name)? {
            process::send(pid, Signal::SIGCONT)?;
        }
        Ok(())
    }

    /// The pids of member `name`'s WAL receiver (a child of its postmaster whose process title
    /// names it): none on a leader, or while it reconnects.
    fn wal_receivers(&self, name: &str) -> Result<Vec<u32>> {
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

    /// Leaves every process running after this value is gone, and returns what is needed to
    /// find and stop them later ([`PatroniState::destroy`]).
    pub fn detach(mut self) -> PatroniState {
        self.keep = true;
        self.state()
    }

    /// A serialisable description of the cluster (`cargo xtask cluster up --ha patroni`).
    pub fn state(&self) -> PatroniState {
        PatroniState {
            dir: self.dir.clone(),
            scope: self.scope.clone(),
            etcd_url: self.etcd_url(),
            secrets: self.secrets.clone(),
            members: lock(&self.members)
                .iter()
                .map(|m| PatroniMemberState {
                    name: m.name.clone(),
                    pg_port: m.pg_port,
                    rest_port: m.rest_port,
                })
                .collect(),
        }
    }

    async fn start_etcd(&self) -> Result<()> {
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
    fn spawn_new_member(&self, tags: MemberTags) -> Result<String> {
        let mut members = lock(&self.members);
        let mut n = members.len() + 1;
        while members.iter().any(|m| m.name == format!("m{n}"))
            || self.dir.join(format!("m{n}")).exists()
        {
            n += 1;
        }
        let name = format!("m{n}");
        let ports = crate::cluster::allocate_ports(None, 2)?;
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

    /// Ready: a writable leader and every other member streaming from it.
    async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let leader = self.wait_leader(timeout).await?;
        let others: Vec<String> =
            self.members().into_iter().map(|m| m.name).filter(|n| *n != leader).collect();
        for name in others {
            self.wait_streaming(&name, timeout.saturating_sub(start.elapsed())).await?;
        }
        Ok(())
    }

    /// Creates the application role and database on the leader and waits until every member
    /// lets the application in.
    async fn create_app_user(&self) -> Result<()> {
        let leader = self.wait_writable(READY_TIMEOUT).await?;
        let lm = self.member(&leader)?;
        let admin = lm.admin_url("postgres");
        let create_role = format!(
            "CREATE ROLE app LOGIN CREATEDB PASSWORD '{}'",
            self.secrets.app.replace('\'', "''")
        );
        self.sql(&admin, &create_role).await?;
        self.sql(&admin, "CREATE DATABASE app OWNER app").await?;
        let start = Instant::now();
        for m in self.members() {
            while self.sql(&m.url(), "SELECT 1::text").await.is_err() {
                self.check_timeout(start, READY_TIMEOUT, &format!("user app on {}", m.name))?;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Runs `sql` on `url` (one fresh connection) and returns the first column of the first
    /// row as text. Errors name the statement, never the URL (it carries a password).
    async fn sql(&self, url: &str, sql: &str) -> Result<Option<String>> {
        use sqlx::{Connection, Row};
        let node = url.rsplit_once('@').map_or("?", |(_, hostpart)| hostpart).to_owned();
        let fail = |source| Error::Sql { node: node.clone(), sql: sql.to_owned(), source };
        let run = async {
            let mut c = sqlx::PgConnection::connect(url).await.map_err(fail)?;
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .fetch_optional(&mut c)
                .await
                .map_err(fail)?;
            let _ = c.close().await;
            Ok(row.and_then(|r| r.try_get::<Option<String>, _>(0).ok().flatten()))
        };
        match tokio::time::timeout(Duration::from_secs(5), run).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                what: format!("`{sql}` on {node}"),
                waited: Duration::from_secs(5),
            }),
        }
    }

    fn teardown(&self) -> Result<()> {
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

impl Drop for PatroniCluster {
    fn drop(&mut self) {
        if self.keep {
            tracing::warn!(dir = %self.dir.display(), "keeping the patroni cluster");
            return;
        }
        if let Err(e) = self.teardown() {
            tracing::error!(error = %e, "patroni cluster teardown failed");
        }
    }
}

/// `GET path` on the Patroni REST API at `127.0.0.1:rest_port`, parsed as JSON (`/cluster`,
/// `/patroni`, `/config`, …); an answer other than 200 is an error with its status and body.
pub async fn patroni_get(rest_port: u16, path: &str) -> Result<Value> {
    let r = http::request("GET", rest_port, path, None, REST_TIMEOUT).await?;
    let request = format!("GET http://127.0.0.1:{rest_port}{path}");
    if r.status != 200 {
        return Err(Error::HttpStatus { request, status: r.status, body: clip(&r.body) });
    }
    serde_json::from_str(&r.body)
        .map_err(|e| Error::Http { request, reason: format!("the body is not JSON: {e}") })
}

fn find<'a>(members: &'a mut [MemberProc], name: &str) -> Result<&'a mut MemberProc> {
    members.iter_mut().find(|m| m.name == name).ok_or_else(|| Error::InvalidControl {
        node: name.to_owned(),
        what: "no such member".into(),
    })
}

/// At most 300 characters of a response body, for error messages.
fn clip(body: &str) -> String {
    body.chars().take(300).collect()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// What is needed to find a detached [`PatroniCluster`] again: its directory, scope, etcd and
/// members. `Debug` shows no password; the JSON file holds them (it lives under `target/`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PatroniState {
    dir: PathBuf,
    scope: String,
    etcd_url: String,
    secrets: Secrets,
    members: Vec<PatroniMemberState>,
}

/// One member of a [`PatroniState`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct PatroniMemberState {
    name: String,
    pg_port: u16,
    rest_port: u16,
}

impl PatroniState {
    /// The cluster's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its Patroni scope.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// etcd's client URL.
    pub fn etcd_url(&self) -> &str {
        &self.etcd_url
    }

    /// Its members when the state was taken.
    pub fn members(&self) -> Vec<PatroniMember> {
        self.members
            .iter()
            .map(|m| PatroniMember {
                name: m.name.clone(),
                pg_port: m.pg_port,
                rest_port: m.rest_port,
                app_password: self.secrets.app.clone(),
                superuser_password: self.secrets.superuser.clone(),
                tags: MemberTags::none(),
            })
            .collect()
    }

    /// Writes the state as JSON to `path`, creating parent directories.
    pub fn save(&self, path: &Path) -> Result<()> {
        let err = |what: String| Error::State { path: path.to_path_buf(), what };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| err(e.to_string()))?;
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| err(e.to_string()))?;
        fs::write(path, text).map_err(|e| err(e.to_string()))
    }

    /// Reads a state written by [`PatroniState::save`].
    pub fn load(path: &Path) -> Result<PatroniState> {
        let err = |what: String| Error::State { path: path.to_path_buf(), what };
        let text = fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| err(format!("not a patroni cluster state: {e}")))
    }

    /// Stops every process whose command line names the cluster's directory (Patronis,
    /// postmasters, etcd), waits until they are gone, deletes the directory, and returns their
    /// pids.
    pub fn destroy(self) -> Result<Vec<u32>> {
        let pids = crate::reap_orphans(&self.dir);
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(pids),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(pids),
            Err(e) => {
                Err(Error::Io { what: format!("removing {}", self.dir.display()), source: e })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_json_is_read_loosely() {
        let v: Value = serde_json::from_str(
            r#"{"members": [
 {"name": "m1", "role": "replica", "state": "stopped", "api_url": "http://127.0.0.1:58001/patroni",
  "host": "127.0.0.1", "port": 55431, "lag": "unknown"},
 {"name": "m2", "role": "leader", "state": "running", "api_url": "http://127.0.0.1:58002/patroni",
  "host": "127.0.0.1", "port": 55432, "timeline": 2}]}"#,
        )
        .unwrap();
        let seen = parse_cluster(&v);
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[1].role, "leader");
        assert_eq!(seen[1].api_port, Some(58002));
        assert!(parse_cluster(&serde_json::json!({"nope": 1})).is_empty());
    }

    #[test]
    fn debug_shows_no_password() {
        let s = Secrets::new();
        let m = PatroniMember {
            name: "m1".into(),
            pg_port: 1,
            rest_port: 2,
            app_password: s.app.clone(),
            superuser_password: s.superuser.clone(),
            tags: MemberTags::none(),
        };
        let text = format!("{m:?} {s:?}");
        assert!(!text.contains(&s.app) && !text.contains(&s.superuser), "{text}");
        assert!(m.url().contains(&s.app));
    }
}
