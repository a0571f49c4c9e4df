//! What an operator of a Patroni cluster does to it: switchover, killing and starting
//! members, adding and removing them, tags, synchronous mode, and freezing a member's WAL
//! receiver.

use std::fs;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::error::{Error, IoContext, Result};
use crate::native::process;

use super::{
    MemberTags, POLL, PatroniCluster, READY_TIMEOUT, REST_TIMEOUT, b64, clip, find, http, lock,
};

impl PatroniCluster {
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
}
