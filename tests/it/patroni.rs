//! A real Patroni cluster (the testkit's `PatroniCluster`: one etcd, Patroni-managed
//! PostgreSQL 15 members) followed by the monitor's `PatroniSource` through its `watch` loop:
//! switchover, leader kill, members added and removed, tags; and the DNS source.
//!
//! Each test prints a `PATRONI-FIGURES` line with what it measured.

use std::time::{Duration, Instant};

use rwsplit_monitor::{
    DnsSource, MemberRole, MemberSet, PatroniSource, SourceWatch, TopologySource, watch,
};
use rwsplit_testkit::{MemberTags, PatroniCluster};

use crate::support::require_itest;

/// The source's poll interval in these tests.
const POLL: Duration = Duration::from_millis(500);

async fn start(name: &str) -> (PatroniCluster, Duration) {
    require_itest();
    let started = Instant::now();
    let cluster = PatroniCluster::builder()
        .name(name)
        .members(3)
        .start()
        .await
        .unwrap_or_else(|e| panic!("a patroni cluster starts: {e}"));
    (cluster, started.elapsed())
}

fn source_of(cluster: &PatroniCluster) -> SourceWatch {
    let source = PatroniSource::new(cluster.rest_urls())
        .expect("the testkit's REST URLs are valid")
        .timeout(Duration::from_secs(2));
    watch(source, POLL)
}

fn leader_of(set: &MemberSet) -> Option<String> {
    set.members().iter().find(|m| m.role.is_leader() && m.state.is_up()).map(|m| m.name.clone())
}

/// Waits until the latest publication satisfies `check`; how long that took, or a panic
/// naming `what` and the last set seen.
async fn until_set(
    w: &SourceWatch,
    what: &str,
    timeout: Duration,
    check: impl Fn(&MemberSet) -> bool,
) -> Duration {
    let started = Instant::now();
    let mut rx = w.subscribe();
    loop {
        if check(&rx.borrow_and_update()) {
            return started.elapsed();
        }
        let left = timeout.saturating_sub(started.elapsed());
        if left.is_zero() || tokio::time::timeout(left, rx.changed()).await.is_err() {
            panic!("{what}: not seen within {timeout:?}; last set {:#?}", w.current().members());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patroni_source_follows_switchover_members_and_tags() {
    let (cluster, ready) = start("pat-switch").await;
    let w = source_of(&cluster);
    let first = cluster.leader().await.unwrap().expect("a leader after start");
    until_set(&w, "the first leader", Duration::from_secs(5), |s| {
        leader_of(s).as_deref() == Some(first.as_str()) && s.members().len() == 3
    })
    .await;

    // Switchover: request → new leader writable, then the source reports it within one poll
    // (plus the poll's own round trip).
    let candidate =
        cluster.members().into_iter().map(|m| m.name().to_owned()).find(|n| *n != first).unwrap();
    let asked = Instant::now();
    let new = cluster.switchover(Some(&candidate)).await.unwrap();
    let switchover = asked.elapsed();
    assert_eq!(new, candidate);
    let followed = until_set(&w, "the new leader", POLL + Duration::from_secs(1), |s| {
        leader_of(s).as_deref() == Some(new.as_str())
    })
    .await;

    // A member added by Patroni appears, with its address; tagged noloadbalance, the tag shows.
    let asked = Instant::now();
    let added = cluster.add_member(MemberTags::none()).await.unwrap();
    let add = asked.elapsed();
    let port = cluster.member(&added).unwrap().pg_port();
    until_set(&w, "the added member", Duration::from_secs(10), |s| {
        s.members()
            .iter()
            .any(|m| m.name == added && m.port == port && m.role == MemberRole::Replica)
    })
    .await;
    cluster.set_tags(&added, MemberTags::none().noloadbalance(true)).await.unwrap();
    until_set(&w, "the noloadbalance tag", Duration::from_secs(10), |s| {
        s.members().iter().any(|m| m.name == added && m.tags.noloadbalance)
    })
    .await;

    // Removed: gone from the source, and the diff says so.
    cluster.remove_member(&added).await.unwrap();
    until_set(&w, "the removed member to leave", Duration::from_secs(10), |s| {
        !s.members().iter().any(|m| m.name == added)
    })
    .await;
    let set = w.current();
    assert_eq!(set.members().len(), 3);
    assert!(set.error().is_none());

    // Synchronous mode on: the source shows a sync standby; off: none.
    cluster.set_synchronous(true).await.unwrap();
    let sync = cluster.wait_sync_standby(Duration::from_secs(30)).await.unwrap();
    until_set(&w, "the sync standby", Duration::from_secs(5), |s| {
        s.members().iter().any(|m| m.name == sync && m.role == MemberRole::SyncStandby)
    })
    .await;
    cluster.set_synchronous(false).await.unwrap();
    until_set(&w, "no sync standby", Duration::from_secs(30), |s| {
        !s.members().iter().any(|m| m.role == MemberRole::SyncStandby)
    })
    .await;

    println!(
        "PATRONI-FIGURES start_to_ready_s={:.2} switchover_request_to_writable_s={:.2} \
         source_followed_after_s={:.2} add_member_to_streaming_s={:.2}",
        ready.as_secs_f64(),
        switchover.as_secs_f64(),
        followed.as_secs_f64(),
        add.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patroni_source_follows_a_killed_leader() {
    let (cluster, ready) = start("pat-kill").await;
    let w = source_of(&cluster);
    let old = cluster.leader().await.unwrap().expect("a leader after start");
    until_set(&w, "the first leader", Duration::from_secs(5), |s| {
        leader_of(s).as_deref() == Some(old.as_str())
    })
    .await;

    let killed_at = Instant::now();
    assert_eq!(cluster.kill_leader().await.unwrap(), old);
    // Patroni promotes once the leader key expires (ttl 10 s here).
    let new = cluster.wait_writable(Duration::from_secs(60)).await.unwrap();
    let failover = killed_at.elapsed();
    assert_ne!(new, old);
    let seen = until_set(&w, "the promoted leader", POLL + Duration::from_secs(3), |s| {
        leader_of(s).as_deref() == Some(new.as_str())
    })
    .await;
    // The killed member's key went with its lease: the source no longer lists it, and never
    // published an empty set in between.
    until_set(&w, "the killed leader to leave", Duration::from_secs(15), |s| {
        !s.members().iter().any(|m| m.name == old)
    })
    .await;
    assert!(w.current().members().len() >= 2);

    // Brought back, it rejoins as a replica and the source lists it again.
    cluster.start_member(&old).unwrap();
    cluster.wait_streaming(&old, Duration::from_secs(60)).await.unwrap();
    until_set(&w, "the old leader back as a replica", Duration::from_secs(10), |s| {
        s.members().iter().any(|m| m.name == old && !m.role.is_leader())
    })
    .await;
    println!(
        "PATRONI-FIGURES start_to_ready_s={:.2} leader_kill_to_new_leader_writable_s={:.2} \
         source_followed_after_s={:.2}",
        ready.as_secs_f64(),
        failover.as_secs_f64(),
        (failover + seen).as_secs_f64()
    );
}

#[tokio::test]
async fn dns_source_resolves_localhost_to_its_addresses() {
    require_itest();
    let members = DnsSource::new("localhost:5432").members().await.unwrap();
    let hosts: Vec<&str> = members.iter().map(|m| m.host.as_str()).collect();
    assert!(hosts.contains(&"127.0.0.1"), "{hosts:?}");
    assert!(hosts.iter().all(|h| *h == "127.0.0.1" || *h == "::1"), "{hosts:?}");
    assert!(members.iter().all(|m| m.port == 5432 && m.role == MemberRole::Replica));
    let w = watch(DnsSource::new("localhost:5432"), POLL);
    until_set(&w, "localhost's addresses", Duration::from_secs(5), |s| {
        s.members().len() == members.len()
    })
    .await;
}
