//! The monitor inside a `RoutedConnection`, on real clusters: lag takes a replica out of
//! rotation and back, hung and killed replicas are marked down and readmitted, and a promotion
//! is followed. Every test prints what it measured.

use std::time::{Duration, Instant};

use rstest::rstest;
use rwsplit_core::Staleness;
use rwsplit_sea_orm::advanced::{Health, HealthPolicy, MonitorConfig};
use rwsplit_sea_orm::{Consistency, NotSentReason, RoutedConnection, RoutingError, routing_error};
use rwsplit_testkit::{DbKind, TestDatabase};
use sea_orm::ConnectionTrait;

use crate::support::{own_cluster, server_port, until};

static PRINTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
const INTERVAL: Duration = Duration::from_millis(200);
const TIMEOUT: Duration = Duration::from_millis(500);

async fn monitored(tdb: &TestDatabase, consistency: Consistency) -> RoutedConnection {
    RoutedConnection::builder()
        .consistency(consistency)
        .primary(tdb.primary_url())
        .replicas(tdb.replica_urls())
        .read_your_writes(false)
        .monitor(
            MonitorConfig::default()
                .probe_interval(INTERVAL)
                .probe_timeout(TIMEOUT)
                .probe_jitter(Duration::ZERO),
        )
        .health_policy(
            HealthPolicy::default().failure_threshold(1).ban_base(Duration::from_millis(300)),
        )
        .connect()
        .await
        .expect("a monitored connection")
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn a_lagging_replica_leaves_rotation_for_bounded_reads_and_comes_back(#[case] kind: DbKind) {
    let cluster = own_cluster(kind, "lagrot", 1).await;
    let tdb = cluster.create_database("lagrot").await.unwrap();
    // Reads accept one probe interval of staleness: a caught-up replica proves it within a
    // position-feed interval (20 ms) of the primary's last sighting; one whose replay is paused
    // after a write cannot once the bound has passed since (an unknown lag, e.g. MariaDB with
    // its SQL thread stopped, excludes it too). A zero bound is never provable by a replica.
    let db = monitored(&tdb, Consistency::BoundedStaleness(Staleness::time(INTERVAL))).await;
    let (primary, replica) = (cluster.primary().port(), cluster.replicas()[0].port());
    db.execute_unprepared("CREATE TABLE t (id int)").await.unwrap();
    let took =
        until("the replica to serve reads", || async { server_port(&db, "").await == replica })
            .await;
    eprintln!("{kind}: caught-up replica in rotation after {took:?}");

    cluster.replicas()[0].pause_replay().await.unwrap();
    db.execute_unprepared("INSERT INTO t VALUES (1)").await.unwrap();
    let detected = until("the lagging replica to leave rotation", || async {
        server_port(&db, "").await == primary
    })
    .await;
    eprintln!(
        "{kind}: injected lag (paused replay + 1 row) detected in {detected:?} (interval {INTERVAL:?})"
    );
    assert!(detected <= 2 * INTERVAL + TIMEOUT, "detected after {detected:?}");

    cluster.replicas()[0].resume_replay().await.unwrap();
    let back =
        until("the replica to come back", || async { server_port(&db, "").await == replica }).await;
    eprintln!("{kind}: caught-up replica back in rotation {back:?} after resuming");
    assert!(back <= 2 * INTERVAL + TIMEOUT, "back after {back:?}");
}

#[rstest]
#[case::postgres_hang(DbKind::Postgres, true)]
#[case::mariadb_hang(DbKind::MariaDb, true)]
#[case::postgres_kill(DbKind::Postgres, false)]
#[case::mariadb_kill(DbKind::MariaDb, false)]
#[tokio::test]
async fn a_failed_replica_is_marked_down_and_readmitted(#[case] kind: DbKind, #[case] hang: bool) {
    let cluster = own_cluster(kind, if hang { "hangmon" } else { "killmon" }, 1).await;
    let tdb = cluster.create_database("failmon").await.unwrap();
    let db = monitored(&tdb, Consistency::Eventual).await;
    let node = &cluster.replicas()[0];
    let health = || async { db.stats().replicas()[0].health() };
    until("a healthy start", || async { health().await == Health::Up }).await;

    if hang {
        node.hang().unwrap()
    } else {
        node.crash().unwrap()
    }
    let down =
        until("the replica to be marked down", || async { health().await == Health::Down }).await;
    let fault = if hang { "SIGSTOP" } else { "SIGKILL" };
    eprintln!(
        "{kind}: {fault} replica marked down after {down:?} (timeout {TIMEOUT:?}, interval {INTERVAL:?})"
    );
    assert!(down <= TIMEOUT + 2 * INTERVAL + Duration::from_millis(300), "down after {down:?}");
    // Reads keep working meanwhile, from the primary.
    assert_eq!(server_port(&db, "").await, cluster.primary().port());

    let started = Instant::now();
    if hang {
        node.unhang().unwrap()
    } else {
        node.restart().await.unwrap()
    }
    let up = until("the replica to be readmitted", || async { health().await == Health::Up }).await;
    eprintln!(
        "{kind}: replica readmitted {:?} after {}",
        started.elapsed(),
        if hang { "SIGCONT" } else { "restart" }
    );
    let _ = up;
    until("reads to reach it again", || async { server_port(&db, "").await == node.port() }).await;
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn a_promoted_replica_takes_over_writes(#[case] kind: DbKind) {
    let cluster = own_cluster(kind, "follow", 1).await;
    let tdb = cluster.create_database("follow").await.unwrap();
    let db = monitored(&tdb, Consistency::Eventual).await;
    db.execute_unprepared("CREATE TABLE t (id int)").await.unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();

    // A planned switchover by hand: stop the primary, promote the replica.
    cluster.primary().stop().unwrap();
    let down = until("the primary to be marked down", || async {
        db.stats().primary().health() == Health::Down
    })
    .await;
    let started = Instant::now();
    let err = db
        .execute_unprepared("INSERT INTO t VALUES (0)")
        .await
        .expect_err("a write to a stopped primary fails, it is not silently retried elsewhere");
    let failed_in = started.elapsed();
    assert!(
        matches!(
            routing_error(&err),
            Some(RoutingError::WriteNotSent { reason: NotSentReason::PrimaryDown, .. })
        ),
        "{err:?}"
    );
    assert!(failed_in < Duration::from_millis(100), "writes fail fast: {failed_in:?}");
    eprintln!(
        "{kind}: stopped primary marked down after {down:?}; a write then failed in {failed_in:?}: {err}"
    );
    let promoted = Instant::now();
    cluster.replicas()[0].promote().await.unwrap();
    let followed = until("writes to reach the new primary", || async {
        match db.execute_unprepared("INSERT INTO t VALUES (1)").await {
            Ok(_) => true,
            Err(e) => {
                if promoted.elapsed() > Duration::from_secs(3)
                    && !PRINTED.swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    eprintln!("{kind}: still failing: {e}; {:?}", db.stats());
                }
                false
            }
        }
    })
    .await;
    eprintln!(
        "{kind}: writes followed the promotion {followed:?} after it ({:?} incl. pg_promote)",
        promoted.elapsed()
    );
    // A round lasts an interval plus its slowest probe, and the dead old primary's probe runs to
    // the timeout: two rounds at most.
    assert!(followed <= 2 * (INTERVAL + TIMEOUT), "followed after {followed:?}");
    assert_eq!(server_port(db.primary(), "").await, cluster.replicas()[0].port());
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT id FROM t",
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "exactly the acknowledged write, no lost or duplicated one");
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn two_primaries_stop_writes_instead_of_splitting_the_history(#[case] kind: DbKind) {
    // A promotion starts an epoch (PostgreSQL: a timeline; MariaDB: the promoted node's slave
    // position names the primary it took over from), and a primary of an older one is deposed,
    // not a second claimant: two replicas promoted from one primary are two primaries of the
    // newest epoch, and a third replica serves reads.
    let (replicas, promoted) = (3, 2);
    let cluster = own_cluster(kind, "splitbrain", replicas).await;
    let tdb = cluster.create_database("splitbrain").await.unwrap();
    let db = monitored(&tdb, Consistency::Eventual).await;
    db.execute_unprepared("CREATE TABLE t (id int)").await.unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();

    // Promote while the old primary still runs and takes writes: two claim the role.
    for r in &cluster.replicas()[..promoted] {
        r.promote().await.unwrap();
    }
    let last = std::sync::Mutex::new(None);
    // A write in flight as the old primary is deposed fails as sent with its outcome unknown;
    // the writes after it are refused as a split brain.
    let refused = until("writes to be refused as a split brain", || async {
        match db.execute_unprepared("INSERT INTO t VALUES (1)").await {
            Ok(_) => false,
            Err(e) => {
                let split = matches!(routing_error(&e), Some(RoutingError::SplitBrain { .. }));
                *last.lock().unwrap() = Some(e);
                split
            }
        }
    })
    .await;
    let err = last.lock().unwrap().take().unwrap();
    eprintln!("{kind}: two primaries seen, writes refused {refused:?} after the promotion: {err}");
    let Some(RoutingError::SplitBrain { primaries: 2, nodes }) = routing_error(&err) else {
        panic!("{err:?}")
    };
    // Both claimants named, by the names `fence` takes.
    let names: Vec<String> = db.stats().nodes().iter().map(|n| n.name().to_owned()).collect();
    assert_eq!(nodes.len(), 2, "{err}");
    assert!(nodes.iter().all(|n| names.contains(n)), "{nodes:?} among {names:?}");
    assert!(err.to_string().contains("RoutedConnection::fence(name)"), "{err}");
    // Reads still work, from the replica that is still one.
    assert_eq!(server_port(&db, "").await, cluster.replicas()[promoted].port());
}

/// A primary deposed by a promotion while it still runs is deposed for every process, one
/// that started after the promotion included: the epoch comes from the servers (PostgreSQL: the
/// promoted node's newer timeline; MariaDB: its slave position names the old primary), not from
/// a flag in the memory of a process that saw it happen.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn a_deposed_primary_is_deposed_for_a_process_that_never_saw_the_promotion(
    #[case] kind: DbKind,
) {
    let cluster = own_cluster(kind, "deposed", 2).await;
    let tdb = cluster.create_database("deposed").await.unwrap();
    let db = monitored(&tdb, Consistency::Eventual).await;
    db.execute_unprepared("CREATE TABLE t (id int)").await.unwrap();
    db.execute_unprepared("INSERT INTO t VALUES (1)").await.unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();
    let (old, new) = (cluster.primary().port(), cluster.replicas()[0].port());

    // Promoted while the old primary still runs and takes writes from other clients.
    cluster.replicas()[0].promote().await.unwrap();
    let followed = until("writes to reach the promoted replica", || async {
        server_port(db.primary(), "").await == new
    })
    .await;
    eprintln!("{kind}: a process that saw the promotion followed it in {followed:?}");

    // A process that starts now never saw the old primary as the primary.
    let started = Instant::now();
    let fresh = monitored(&tdb, Consistency::Eventual).await;
    assert_eq!(server_port(fresh.primary(), "").await, new, "its first write goes to the new one");
    fresh.execute_unprepared("INSERT INTO t VALUES (2)").await.unwrap();
    eprintln!(
        "{kind}: a process started after it wrote to the new primary {:?} after connect() began",
        started.elapsed()
    );
    for _ in 0..20 {
        assert_ne!(server_port(&fresh, "").await, old, "no read from the deposed primary");
    }
    let stats = fresh.stats();
    let old_node = stats.nodes().iter().find(|n| n.name().contains(&format!(":{old}/")));
    assert_eq!(old_node.map(|n| n.health()), Some(Health::Down), "out of rotation: {stats:?}");
}
