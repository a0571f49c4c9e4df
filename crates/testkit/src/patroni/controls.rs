//! Every method of [`PatroniCluster`]: what the cluster is (its directory, scope and
//! members) and what it answers through Patroni's REST API, the waits, and what an operator
//! does to it: switchover, killing and starting members, adding and removing them, tags,
//! synchronous mode, and freezing a member's WAL receiver. The processes behind the cluster
//! are reached through the methods of the type `processes.rs` defines.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::native::process;
use crate::product::postgres;

use super::{
    MemberTags, POLL, PatroniBuilder, PatroniCluster, PatroniMember, PatroniState, READY_TIMEOUT,
    REST_TIMEOUT, clip, http, patroni_get,
};

// What the cluster is and what it answers, and the waits (start-up's among them).
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
    /// lists as running: its name and REST port.
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
}

// What an operator does to the cluster.
impl PatroniCluster {
    /// Switches the leadership over to `candidate` (or to a member Patroni picks) through the
    /// leader's `POST /switchover`, then waits until the new leader takes writes; returns its
    /// name. In synchronous mode the candidate must be the synchronous standby (Patroni answers
    /// 412 otherwise, and so does this).
    pub async fn switchover(&self, candidate: Option<&str>) -> Result<String> {
        let (leader, port) =
            self.confirmed_leader().await.ok_or_else(|| Error::InvalidControl {
                node: self.scope().to_owned(),
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
            node: self.scope().to_owned(),
            what: "no leader answers, so none can be killed".into(),
        })?;
        self.kill_member(&leader)?;
        Ok(leader)
    }

    /// SIGKILLs member `name`'s Patroni and postmaster and waits until both are gone.
    pub fn kill_member(&self, name: &str) -> Result<()> {
        self.processes.kill_member(name)
    }

    /// Starts member `name`'s Patroni again (after [`PatroniCluster::kill_member`]); it
    /// rejoins by itself (crash recovery, `pg_rewind` if needed).
    pub fn start_member(&self, name: &str) -> Result<()> {
        self.processes.start_member(name)
    }

    /// Adds a member with `tags`, and waits until it streams from the leader; returns its name.
    pub async fn add_member(&self, tags: MemberTags) -> Result<String> {
        let name = self.processes.spawn_new_member(tags)?;
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
        self.processes.remove_member(name).await
    }

    /// Sets member `name`'s tags: rewrites its configuration and asks Patroni to reload it
    /// (`POST /reload`); `/cluster` shows them within a loop (about `loop_wait`).
    pub async fn set_tags(&self, name: &str, tags: MemberTags) -> Result<()> {
        self.processes.set_tags(name, tags)?;
        let port = self.member(name)?.rest_port();
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
        let mut last = None;
        for port in self.members().iter().map(PatroniMember::rest_port) {
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
            node: self.scope().to_owned(),
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
        let receivers = self.processes.wal_receivers(name)?;
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
        for pid in self.processes.wal_receivers(name)? {
            process::send(pid, Signal::SIGCONT)?;
        }
        Ok(())
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

/// The members `GET /cluster` lists; a field it lacks reads as empty.
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
}
