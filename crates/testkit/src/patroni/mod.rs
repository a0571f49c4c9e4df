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
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::native::unique;
use crate::product::postgres;

mod builder;
mod controls;
pub(crate) mod http;
mod processes;
mod state;

pub use builder::PatroniBuilder;
use processes::Processes;
pub use state::PatroniState;

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
    /// Member `name` as its cluster knows it, with the cluster's passwords.
    fn new(name: &str, pg_port: u16, rest_port: u16, secrets: &Secrets, tags: MemberTags) -> Self {
        PatroniMember {
            name: name.to_owned(),
            pg_port,
            rest_port,
            app_password: secrets.app.clone(),
            superuser_password: secrets.superuser.clone(),
            tags,
        }
    }

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
    /// etcd and the members' Patroni, with what they are started with.
    processes: Processes,
    /// Leave the processes and the directory behind when dropped.
    keep: bool,
}

impl Drop for PatroniCluster {
    fn drop(&mut self) {
        if self.keep {
            tracing::warn!(dir = %self.processes.dir().display(), "keeping the patroni cluster");
            return;
        }
        if let Err(e) = self.processes.teardown() {
            tracing::error!(error = %e, "patroni cluster teardown failed");
        }
    }
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
        self.processes.dir()
    }

    /// Patroni's scope (the cluster name in the DCS), unique per cluster.
    pub fn scope(&self) -> &str {
        self.processes.scope()
    }

    /// etcd's client URL.
    pub fn etcd_url(&self) -> String {
        self.processes.etcd_url()
    }

    /// Leaves every process running after this value is gone, and returns what is needed to
    /// find and stop them later ([`PatroniState::destroy`]).
    pub fn detach(mut self) -> PatroniState {
        self.keep = true;
        self.state()
    }

    /// A serialisable description of the cluster (`cargo xtask cluster up --ha patroni`).
    pub fn state(&self) -> PatroniState {
        PatroniState::new(
            self.dir(),
            self.scope(),
            self.etcd_url(),
            self.processes.secrets(),
            &self.members(),
        )
    }

    /// Every member this cluster started and has not removed, in the order they were added
    /// (running or killed).
    pub fn members(&self) -> Vec<PatroniMember> {
        self.processes.members()
    }

    /// The member named `name`, or an error naming the members there are.
    pub fn member(&self, name: &str) -> Result<PatroniMember> {
        self.processes.member(name)
    }

    /// Every member's REST base URL, in member order.
    pub fn rest_urls(&self) -> Vec<String> {
        self.members().iter().map(PatroniMember::rest_url).collect()
    }

    /// `GET /cluster` from the first member that answers (members in order).
    pub async fn cluster_json(&self) -> Result<Value> {
        let mut last = None;
        for m in self.members() {
            match patroni_get(m.rest_port, "/cluster").await {
                Ok(v) => return Ok(v),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::InvalidControl {
            node: self.scope().to_owned(),
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
                && self.sql(&m.admin_url("postgres"), postgres::ACCEPTS_WRITES).await.is_ok()
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
        let Ok(v) = patroni_get(port, "/patroni").await else { return Vec::new() };
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
        let target =
            self.sql(&lm.admin_url("postgres"), postgres::CURRENT_LSN).await?.unwrap_or_default();
        let names = self.streaming().await;
        for name in names {
            let Ok(m) = self.member(&name) else { continue };
            let sql = postgres::replayed_past(&target);
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

    /// An error if a member's Patroni has exited (named at once, with its log) or `timeout`
    /// has passed since `start` while waiting for `what`.
    fn check_timeout(&self, start: Instant, timeout: Duration, what: &str) -> Result<()> {
        self.processes.check_running(what)?;
        if start.elapsed() > timeout {
            return Err(Error::Timeout { what: what.to_owned(), waited: timeout });
        }
        Ok(())
    }

    /// Ready: a writable leader and every other member streaming from it.
    pub(super) async fn wait_ready(&self, timeout: Duration) -> Result<()> {
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
    pub(super) async fn create_app_user(&self) -> Result<()> {
        let leader = self.wait_writable(READY_TIMEOUT).await?;
        let lm = self.member(&leader)?;
        let admin = lm.admin_url("postgres");
        let create_role = format!(
            "CREATE ROLE app LOGIN CREATEDB PASSWORD '{}'",
            self.processes.secrets().app.replace('\'', "''")
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
    pub(super) async fn sql(&self, url: &str, sql: &str) -> Result<Option<String>> {
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

/// At most 300 characters of a response body, for error messages.
fn clip(body: &str) -> String {
    body.chars().take(300).collect()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
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
