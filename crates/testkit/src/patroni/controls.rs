//! What an operator of a Patroni cluster does to it: switchover, killing and starting
//! members, adding and removing them, tags, synchronous mode, and freezing a member's WAL
//! receiver.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::error::{Error, Result};
use crate::native::process;

use super::{
    MemberTags, POLL, PatroniCluster, PatroniMember, READY_TIMEOUT, REST_TIMEOUT, clip, http,
};

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
