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
//!
//! # Files
//!
//! This file defines the public types ([`PatroniCluster`], [`PatroniMember`], [`MemberTags`])
//! and the cluster's destructor. `builder.rs` configures and starts a cluster; `controls.rs`
//! holds every method of [`PatroniCluster`] (what it answers, what it waits for, what an
//! operator does to it); `processes.rs` owns the processes behind it (etcd, each member's
//! Patroni and its configuration) in a type whose fields only that file sees; `state.rs`
//! holds [`PatroniState`], what a detached cluster is found again by; `http.rs` sends the
//! REST requests.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::native::unique;

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

/// Patroni's bootstrap settings (synchronous mode, timing) as the builder set them, written
/// into every member's configuration.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_password() {
        let s = Secrets::new();
        let m = PatroniMember::new("m1", 1, 2, &s, MemberTags::none());
        let text = format!("{m:?} {s:?}");
        assert!(!text.contains(&s.app) && !text.contains(&s.superuser), "{text}");
        assert!(m.url().contains(&s.app));
    }
}
