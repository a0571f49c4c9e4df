//! Health belongs to the monitor: a busy node is not a dead one, a frozen one is caught.
//!
//! - A full application pool (every connection held by long statements for three times the
//!   probe timeout) leaves the node `Up`: writes wait or fail as back-pressure, never "primary
//!   down", and automatic failover promotes nothing.
//! - A frozen node (SIGSTOP of the server and its processes) is marked `Suspect`, then `Down`,
//!   within a few probe rounds, every time; each run prints a `FROZEN-FIGURES` line.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rstest::rstest;
use rwsplit_sea_orm::advanced::{Access, AutoFailover, Health, HealthPolicy, MonitorConfig};
use rwsplit_sea_orm::{RoutedConnection, RoutingError, routing_error};
use rwsplit_testkit::{Cluster, DbKind};
use sea_orm::{ConnectOptions, ConnectionTrait, Statement};

use crate::support::{own_cluster, until};

const INTERVAL: Duration = Duration::from_millis(200);
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

fn monitor() -> MonitorConfig {
    MonitorConfig::default().probe_interval(INTERVAL).probe_timeout(PROBE_TIMEOUT)
}

/// A statement that holds its connection for `d`.
fn sleep_sql(db: DbKind, d: Duration) -> String {
    match db {
        DbKind::MariaDb => format!("SELECT SLEEP({}) AS s", d.as_secs_f64()),
        _ => format!("SELECT pg_sleep({})::text AS s", d.as_secs_f64()),
    }
}

/// Records the worst health `node` shows until `stop` is set, checking every 10 ms.
fn watch_health(
    db: &RoutedConnection,
    node: usize,
    stop: &Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Health>> {
    let (db, stop) = (db.clone(), Arc::clone(stop));
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let h = db.stats().nodes()[node].health();
            if seen.last() != Some(&h) {
                seen.push(h);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        seen
    })
}

fn stmt(db: &RoutedConnection, sql: String) -> Statement {
    Statement::from_string(db.get_database_backend(), sql)
}

/// Holds every connection of the primary's pool (2) with statements three times the probe
/// timeout long, while a write waits for a connection: with a patient pool it succeeds after
/// them; with an impatient one it fails as back-pressure. Either way the primary stays `Up`
/// and automatic failover does nothing.
#[rstest]
#[case::postgres_patient(DbKind::Postgres, true)]
#[case::postgres_impatient(DbKind::Postgres, false)]
#[case::mariadb_patient(DbKind::MariaDb, true)]
#[case::mariadb_impatient(DbKind::MariaDb, false)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_primary_pool_is_back_pressure_not_a_dead_primary(
    #[case] kind: DbKind,
    #[case] patient: bool,
) {
    let cluster = own_cluster(kind, "saturate-primary", 1).await;
    let mut primary = ConnectOptions::new(cluster.primary_url());
    let acquire = if patient { Duration::from_secs(10) } else { Duration::from_millis(300) };
    primary.max_connections(2).acquire_timeout(acquire);
    let db = RoutedConnection::builder()
        .primary(primary)
        .replicas(cluster.replica_urls())
        .monitor(monitor())
        .auto_failover(AutoFailover::default().after_failures(2))
        .connect()
        .await
        .expect("connects");
    db.execute_unprepared("CREATE TABLE s (id BIGINT PRIMARY KEY)").await.expect("table");
    // Judge the saturation only: a first probe slow on a loaded machine may leave a node
    // Suspect for a round before it starts.
    until("the primary Up", || async { db.stats().nodes()[0].health() == Health::Up }).await;
    let stop = Arc::new(AtomicBool::new(false));
    let watch = watch_health(&db, 0, &stop);
    let hold = PROBE_TIMEOUT * 3;
    let started = Instant::now();
    let holders: Vec<_> = (0..2)
        .map(|_| {
            let db = db.clone();
            // `execute` runs on the primary whatever the SQL: the pool's two connections.
            tokio::spawn(async move { db.execute_raw(stmt(&db, sleep_sql(kind, hold))).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let write = db.execute_raw(stmt(&db, "INSERT INTO s (id) VALUES (1)".into())).await;
    for h in holders {
        h.await.unwrap().expect("the long statements finish");
    }
    let waited = started.elapsed();
    // A few more probe rounds after the pool is free again.
    tokio::time::sleep(INTERVAL * 3).await;
    stop.store(true, Ordering::Relaxed);
    let healths = watch.await.unwrap();
    let stats = db.stats();
    println!(
        "SATURATION-FIGURES db={kind} node=primary patient={patient} held_ms={} write={} \
         health_seen={healths:?} pool_timeouts={} failures={} promotions={}",
        waited.as_millis(),
        if write.is_ok() { "ok".to_owned() } else { "back-pressure".to_owned() },
        stats.primary().pool_timeouts(),
        stats.primary().failures(),
        stats.promotions(),
    );
    assert_eq!(healths, [Health::Up], "the primary never left Up");
    assert_eq!(stats.promotions(), 0, "no failover");
    assert_eq!(stats.primary().failures(), 0);
    match write {
        Ok(_) => assert!(patient, "an impatient pool cannot have served the write"),
        Err(e) => {
            assert!(!patient, "a patient pool serves the write once a connection is free: {e}");
            assert!(
                matches!(
                    routing_error(&e),
                    Some(RoutingError::Backpressure { access: Access::Write, .. })
                ),
                "{e:?}"
            );
            assert!(stats.primary().pool_timeouts() >= 1);
        }
    }
    // And writes go on as soon as the pool is free.
    db.execute_raw(stmt(&db, "INSERT INTO s (id) VALUES (2)".into())).await.expect("a later write");
}

/// A replica whose only pooled connection is held by a long read: other reads queue briefly
/// and then move on to the primary; the replica is never marked down or banned.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_replica_pool_moves_reads_on_without_banning_the_replica(#[case] kind: DbKind) {
    let cluster = own_cluster(kind, "saturate-replica", 1).await;
    let mut replica = ConnectOptions::new(cluster.replica_urls()[0].clone());
    replica.max_connections(1).acquire_timeout(Duration::from_millis(200));
    let db = RoutedConnection::builder()
        .primary(cluster.primary_url())
        .replica(replica)
        .monitor(monitor())
        .read_your_writes(false)
        .connect()
        .await
        .expect("connects");
    // Judge the saturation only (see the primary's test).
    until("the replica Up", || async { db.stats().nodes()[1].health() == Health::Up }).await;
    let stop = Arc::new(AtomicBool::new(false));
    let watch = watch_health(&db, 1, &stop);
    let hold = PROBE_TIMEOUT * 3;
    let holder = {
        let db = db.clone();
        tokio::spawn(async move { db.query_one_raw(stmt(&db, sleep_sql(kind, hold))).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut ok = 0;
    for _ in 0..5 {
        db.query_one_raw(stmt(&db, "SELECT 1 AS one".into())).await.expect("a read moves on");
        ok += 1;
    }
    holder.await.unwrap().expect("the long read finishes on the replica");
    tokio::time::sleep(INTERVAL * 3).await;
    stop.store(true, Ordering::Relaxed);
    let healths = watch.await.unwrap();
    let stats = db.stats();
    let r = &stats.replicas()[0];
    println!(
        "SATURATION-FIGURES db={kind} node=replica reads_ok={ok} health_seen={healths:?} \
         pool_timeouts={} failures={} primary_reads={}",
        r.pool_timeouts(),
        r.failures(),
        stats.primary().reads(),
    );
    assert_eq!(healths, [Health::Up], "the replica never left Up");
    assert_eq!(r.failures(), 0);
    // The reads moved on: past the pool's acquire timeout, or passed over while the replica's
    // one connection was held and it answered nothing (a hedge, or a stalled node skipped).
    let hedges = stats.hedges();
    assert!(
        r.pool_timeouts() + hedges.sent + hedges.stalled_skips >= 1,
        "the reads found the pool full: {hedges:?}"
    );
    // Free again: reads are back on the replica.
    let before = db.stats().replicas()[0].reads();
    db.query_one_raw(stmt(&db, "SELECT 1 AS one".into())).await.expect("read");
    assert_eq!(db.stats().replicas()[0].reads(), before + 1);
}

/// Freezes `node` of `cluster` for 4 s, three times, and measures how soon the monitor marks it
/// `Suspect` and `Down`, and how soon it is `Up` again after it thaws.
async fn freeze_runs(kind: DbKind, cluster: &Cluster, db: &RoutedConnection, node: usize) {
    let role = if node == 0 { "primary" } else { "replica" };
    for run in 1..=3 {
        let health = || db.stats().nodes()[node].health();
        until("the node up before the freeze", || async { health() == Health::Up }).await;
        let frozen = Instant::now();
        cluster.nodes()[node].hang().expect("freeze");
        let suspect = until("Suspect", || async { health() != Health::Up }).await;
        let down = until("Down", || async { health() == Health::Down }).await;
        let held = Duration::from_secs(4).saturating_sub(frozen.elapsed());
        tokio::time::sleep(held).await;
        cluster.nodes()[node].unhang().expect("thaw");
        let up = until("Up again", || async { health() == Health::Up }).await;
        println!(
            "FROZEN-FIGURES db={kind} node={role} run={run} suspect_ms={} down_ms={} up_after_thaw_ms={}",
            suspect.as_millis(),
            down.as_millis(),
            up.as_millis()
        );
        // One probe round (interval + timeout) to the first failure; three to a ban.
        assert!(suspect <= INTERVAL + PROBE_TIMEOUT + Duration::from_millis(400), "{suspect:?}");
        assert!(down <= (INTERVAL + PROBE_TIMEOUT) * 3 + Duration::from_millis(600), "{down:?}");
    }
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_node_is_caught_every_time(#[case] kind: DbKind) {
    let cluster = own_cluster(kind, "freeze", 1).await;
    let db = RoutedConnection::builder()
        .primary(cluster.primary_url())
        .replicas(cluster.replica_urls())
        .monitor(monitor())
        .health_policy(HealthPolicy::default().ban_base(Duration::from_millis(500)))
        .connect()
        .await
        .expect("connects");
    // Keep the application's pools busy too, as a user's would be.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (db, stop) = (db.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = RoutedConnection::deadline(Duration::from_millis(300), async {
                    db.query_one_raw(stmt(&db, "SELECT 1 AS one".into())).await
                })
                .await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    freeze_runs(kind, &cluster, &db, 0).await;
    freeze_runs(kind, &cluster, &db, 1).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
}
