//! Network faults under load, on containers (only a network of each node's own can fail like
//! this): a writer (each acknowledged write read back in the same task, so read-your-writes),
//! readers at the consistency levels the fault is about, on a private cluster, counting what the
//! application sees. Each test prints one `NETFAULT-FIGURES` line (the fault suite's figures plus
//! read latency percentiles) and asserts the invariants that hold for the adapter today; the
//! gaps found are named where they are.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rstest::rstest;
use rwsplit_core::Staleness;
use rwsplit_sea_orm::advanced::{
    AutoFailover, Health, HealthPolicy, LeastOutstanding, MonitorConfig, PowerOfTwoEwma,
    RouterConfig,
};
use rwsplit_sea_orm::{Consistency, RoutedConnection};
use rwsplit_testkit::{Cluster, DbKind, Node, TestDatabase};
use sea_orm::ConnectionTrait;

use crate::support::load::{Load, LoadConfig, Seen};
use crate::support::until;
use crate::testkit_containers::containers_cluster;

const INTERVAL: Duration = Duration::from_millis(100);
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
/// The freshness bound of bounded-staleness reads.
const MAX_LAG: Duration = Duration::from_millis(500);
/// The application's own bound on a write (the adapter never cuts a write short).
const WRITE_TIMEOUT: Duration = Duration::from_secs(3);

/// Bounded-staleness reads that missed a write acknowledged more than the bound (plus the
/// monitor's own delay: two probe intervals) before they started.
fn bounded_stale(seen: &Seen) -> usize {
    seen.bounded_stale(MAX_LAG + 2 * INTERVAL)
}

/// Starts the writer (into `table`) and one reader per entry of `readers`, each write bounded
/// by [`WRITE_TIMEOUT`], then lets them run 500 ms.
async fn load_on(
    db: &RoutedConnection,
    cluster: &Cluster,
    table: &'static str,
    readers: &[Consistency],
) -> Load {
    let readers = readers.to_vec();
    let config =
        LoadConfig { table, readers, write_timeout: Some(WRITE_TIMEOUT), wait_for_progress: false };
    Load::start(db, cluster, config).await
}

/// [`load_on`] table `f`.
async fn load(db: &RoutedConnection, cluster: &Cluster, readers: &[Consistency]) -> Load {
    load_on(db, cluster, "f", readers).await
}

fn builder(primary: String, replicas: Vec<String>) -> rwsplit_sea_orm::RoutedConnectionBuilder {
    RoutedConnection::builder()
        .primary(primary)
        .replicas(replicas)
        .monitor(
            MonitorConfig::default()
                .probe_interval(INTERVAL)
                .probe_timeout(PROBE_TIMEOUT)
                .probe_jitter(Duration::from_millis(10)),
        )
        .health_policy(HealthPolicy::default().ban_base(Duration::from_secs(1)))
        .acquire_timeout(Duration::from_secs(2))
}

async fn routed(tdb: &TestDatabase) -> RoutedConnection {
    builder(tdb.primary_url(), tdb.replica_urls())
        .replica_read_timeout(Some(Duration::from_millis(300)))
        .connect()
        .await
        .expect("a routed connection")
}

fn node_name(node: &Node, tdb: &TestDatabase) -> String {
    format!("127.0.0.1:{}/{}", node.port(), tdb.name())
}

fn health(db: &RoutedConnection, name: &str) -> Option<Health> {
    db.stats().node(name).map(|n| n.health())
}

/// Whether bounded-staleness reads would leave `name` out: lag beyond the bound or unknown.
fn out_of_bound(db: &RoutedConnection, name: &str) -> bool {
    let lag = db.stats().node(name).map(|n| n.lag());
    lag.is_none_or(|l| l.time().is_none_or(|t| t > MAX_LAG))
}

async fn ids_on(node: &Node, tdb: &TestDatabase) -> HashSet<i64> {
    let mut c = crate::support::connect(&node.url_for(tdb.name())).await;
    let rows: Vec<i64> = sqlx::query_scalar("SELECT id FROM f").fetch_all(&mut c).await.unwrap();
    rows.into_iter().collect()
}

/// Whether the replica at `url` says it replicates (its receiver streams, its IO thread runs):
/// asked of the replica, since the primary may be out of this process's reach.
async fn replica_streams(url: &str, kind: DbKind) -> bool {
    let mut c = crate::support::connect(url).await;
    match kind {
        DbKind::MariaDb => {
            use sqlx::Row;
            let row = sqlx::query("SHOW SLAVE STATUS").fetch_optional(&mut c).await;
            let Ok(Some(row)) = row else { return false };
            let io: Result<String, _> = row.try_get("Slave_IO_Running");
            let io = io.or_else(|_| {
                row.try_get::<Vec<u8>, _>("Slave_IO_Running")
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
            });
            io.is_ok_and(|v| v == "Yes")
        }
        _ => {
            let sql = "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'";
            sqlx::query_scalar::<_, i64>(sql).fetch_one(&mut c).await.is_ok_and(|n| n == 1)
        }
    }
}

/// Prints the figures; returns the acknowledged writes missing on `primary`.
async fn figures(
    fault: &str,
    kind: DbKind,
    seen: &Seen,
    primary: &Node,
    tdb: &TestDatabase,
    (excluded, back): (Duration, Duration),
    extra: &str,
) -> Vec<i64> {
    let on_primary = ids_on(primary, tdb).await;
    let lost: Vec<i64> =
        seen.acked.iter().map(|a| a.0).filter(|id| !on_primary.contains(id)).collect();
    let mut fails = seen.write_failures.clone();
    fails.sort_unstable();
    let fail_max = fails.last().copied().unwrap_or_default();
    eprintln!(
        "NETFAULT-FIGURES db={kind} fault={fault} reads_ok={} reads_failed={} read_p50_ms={:.1} \
         read_p99_ms={:.1} bounded_reads={} bounded_stale={} writes_acked={} \
         writes_acked_then_lost={} writes_failed={} writes_failed_unclear={} \
         writes_timed_out={} write_fail_max_ms={} ryw_checked={} ryw_stale={} ryw_failed={} \
         time_to_exclude_ms={} time_to_readmit_ms={}{extra}",
        seen.reads_ok,
        seen.reads_failed,
        seen.read_percentile(0.5).as_secs_f64() * 1e3,
        seen.read_percentile(0.99).as_secs_f64() * 1e3,
        seen.bounded.len(),
        bounded_stale(seen),
        seen.acked.len(),
        lost.len(),
        seen.writes_failed,
        seen.unclear_write_errors.len(),
        seen.writes_timed_out,
        fail_max.as_millis(),
        seen.ryw_checked,
        seen.ryw_stale,
        seen.ryw_failed,
        excluded.as_millis(),
        back.as_millis(),
    );
    lost
}

/// The invariants every fault keeps: no read fails while a healthy node can serve, no
/// acknowledged write is lost, every failed write says clearly why, no read after a write in
/// the same task misses it, and the load made progress.
fn assert_invariants(seen: &Seen, lost: &[i64]) {
    assert_eq!(seen.reads_failed, 0, "reads failed: {:?}", seen.read_errors);
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert!(seen.unclear_write_errors.is_empty(), "unclear: {:?}", seen.unclear_write_errors);
    assert_eq!(seen.ryw_stale, 0, "a read after a write in the same task missed it");
    assert!(seen.acked.len() > 50, "the writer made progress: {}", seen.acked.len());
    assert!(seen.reads_ok > 100, "the readers made progress: {}", seen.reads_ok);
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_faults_replication_link_cut_for_10_s(#[case] kind: DbKind) {
    let cluster = containers_cluster(kind, "nfcut", 2).await;
    let tdb = cluster.create_database("nfcut").await.unwrap();
    let db = routed(&tdb).await;
    let victim = &cluster.replicas()[0];
    let name = node_name(victim, &tdb);
    until("a healthy, fresh start", || async {
        health(&db, &name) == Some(Health::Up) && !out_of_bound(&db, &name)
    })
    .await;
    let bounded = Consistency::BoundedStaleness(Staleness::time(MAX_LAG));
    let load = load(&db, &cluster, &[Consistency::Eventual, bounded]).await;

    let cut = Instant::now();
    victim.cut_replication().unwrap();
    let excluded =
        until("the cut replica to leave bounded reads", || async { out_of_bound(&db, &name) })
            .await;
    let reads_in = db.stats().node(&name).map_or(0, |n| n.reads());
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(cut.elapsed())).await;
    let reads_during = db.stats().node(&name).map_or(0, |n| n.reads()) - reads_in;
    assert_eq!(health(&db, &name), Some(Health::Up), "a cut replica still answers its probes");

    let healed = Instant::now();
    victim.heal_replication().unwrap();
    let fresh =
        crate::support::eventually(Duration::from_secs(30), || async { !out_of_bound(&db, &name) })
            .await;
    if fresh.is_none() {
        panic!(
            "the healed replica never became fresh again: adapter sees {:?}; it says {:?}; log:\n{}",
            db.stats().node(&name),
            victim.status().await,
            victim.log_tail(20)
        );
    }
    let back = healed.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = load.finish().await;
    let extra = format!(" victim_reads_while_cut={reads_during}");
    let lost = figures(
        "replication-cut-10s",
        kind,
        &seen,
        cluster.primary(),
        &tdb,
        (excluded, back),
        &extra,
    )
    .await;
    assert_invariants(&seen, &lost);
    assert!(reads_during > 0, "eventual reads may still use the cut replica");
    // The replica's position stops while the primary's moves on: the monitor's lag from
    // positions (how long ago the primary was where the replica stands) grows past the bound,
    // whatever the server says of its own delay (MariaDB's `Seconds_Behind_Master` stays 0
    // until `slave-net-timeout`, 5 s here; PostgreSQL's replay timestamp stops too).
    assert!(excluded <= MAX_LAG + 4 * INTERVAL, "excluded after {excluded:?}");
    assert_eq!(bounded_stale(&seen), 0, "bounded reads missed writes past the bound");
    victim.wait_caught_up_with(cluster.primary(), Duration::from_secs(10)).await.unwrap();
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_faults_application_cut_from_the_primary(#[case] kind: DbKind) {
    let cluster = containers_cluster(kind, "nfapp", 2).await;
    let tdb = cluster.create_database("nfapp").await.unwrap();
    // With automatic failover on: the monitor must tell "this process cannot reach it" from
    // "it is gone" by asking the replicas, which still stream from it, and promote nothing.
    // (The MariaDB application user may not read SHOW SLAVE STATUS; the testkit's root may.)
    let failover = AutoFailover::default().after_failures(2).retry_after(Duration::from_secs(1));
    let failover = match kind {
        DbKind::MariaDb => failover.admin_credentials("root", ""),
        _ => failover,
    };
    let db = builder(tdb.primary_url(), tdb.replica_urls())
        .replica_read_timeout(Some(Duration::from_millis(300)))
        .auto_failover(failover)
        .connect()
        .await
        .expect("a routed connection");
    let primary = cluster.primary();
    let name = node_name(primary, &tdb);
    until("a healthy start", || async { health(&db, &name) == Some(Health::Up) }).await;
    let load = load(&db, &cluster, &[Consistency::Eventual, Consistency::Eventual]).await;

    let cut = Instant::now();
    primary.cut_clients().unwrap();
    let excluded = until("the primary to be marked down", || async {
        health(&db, &name) == Some(Health::Down)
    })
    .await;
    // The replicas still stream from it: it is alive, only this process cannot reach it.
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(cut.elapsed())).await;
    for url in tdb.replica_urls() {
        assert!(replica_streams(&url, kind).await, "{url} still replicates from the primary");
    }
    let acked_before_heal = load.seen.lock().unwrap().acked.len();

    let healed = Instant::now();
    primary.heal_clients().unwrap();
    until("the primary to be readmitted", || async { health(&db, &name) == Some(Health::Up) })
        .await;
    let back = healed.elapsed();
    // Writes resume, and the writer gets past the progress the invariants ask for however
    // slowly a busy machine runs it (500 ms after the heal may hold fewer than 50 writes).
    until("writes to resume", || async {
        let acked = load.seen.lock().unwrap().acked.len();
        acked > acked_before_heal && acked > 50
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = load.finish().await;
    // How long each failed write took: the ones not failed at once by the "marked down" check
    // were already on their way to the primary (sent, or waiting for a connection).
    let mut slow: Vec<u128> = seen
        .write_failures
        .iter()
        .filter(|d| **d >= Duration::from_millis(100))
        .map(Duration::as_millis)
        .collect();
    slow.sort_unstable();
    let extra = format!(" slow_write_failures_ms={slow:?}");
    let lost =
        figures("app-cut-from-primary", kind, &seen, primary, &tdb, (excluded, back), &extra).await;
    assert_invariants(&seen, &lost);
    assert_eq!(db.stats().promotions(), 0, "no failover while the replicas still see the primary");
    assert!(!db.stats().node(&name).is_some_and(|n| n.fenced()), "the primary was not fenced");
    assert!(seen.writes_failed > 0, "writes failed while the primary was unreachable");
    // Once the primary is marked down, writes fail at once with the adapter's error.
    let fast = seen.write_failures.iter().filter(|d| **d < Duration::from_millis(100)).count();
    assert!(fast > 0, "fast write failures: {:?}", &seen.write_failures);
    // GAP (adapter): a write already sent on a connection to the unreachable primary is not
    // bounded by the monitor marking the primary down, as reads are: it failed after about 2 s
    // on most runs and hung past the application's timeout on some; at most the one in flight.
    assert!(seen.writes_timed_out <= 1, "writes hung: {}", seen.writes_timed_out);
}

#[rstest]
#[case::postgres_p2c_ewma(DbKind::Postgres, "p2c-ewma")]
#[case::postgres_least_outstanding(DbKind::Postgres, "least-outstanding")]
#[case::mariadb_p2c_ewma(DbKind::MariaDb, "p2c-ewma")]
#[case::mariadb_least_outstanding(DbKind::MariaDb, "least-outstanding")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_faults_200_ms_to_one_replica(#[case] kind: DbKind, #[case] balancer: &str) {
    let cluster = containers_cluster(kind, "nflatency", 2).await;
    let tdb = cluster.create_database("nflatency").await.unwrap();
    // The slow replica is reached through a proxy, with no delay for the baseline run.
    let proxy = cluster.replicas()[0].delay_clients(Duration::ZERO, Duration::ZERO).await.unwrap();
    let urls = tdb.replica_urls();
    let slow_url = proxy.url(&urls[0]);
    assert_ne!(slow_url, urls[0], "the slow replica goes through the proxy");
    let router = match balancer {
        "p2c-ewma" => RouterConfig::default().balancer(PowerOfTwoEwma::with_seed(7)),
        _ => RouterConfig::default().balancer(LeastOutstanding::default()),
    };
    let db = builder(tdb.primary_url(), vec![slow_url.clone(), urls[1].clone()])
        .router(router)
        .connect()
        .await
        .expect("a routed connection");
    let slow = slow_url.split('@').nth(1).unwrap_or_default().to_owned();
    until("both replicas in rotation", || async {
        db.stats().replicas().iter().all(|n| n.health() == Health::Up)
    })
    .await;
    let readers = vec![Consistency::Eventual; 4];
    db.execute_unprepared("CREATE TABLE warm (id INT)").await.unwrap();
    db.execute_unprepared("DROP TABLE warm").await.unwrap();

    let run = |db: RoutedConnection, table: &'static str, delay: Duration| {
        let cluster = &cluster;
        let readers = readers.clone();
        let proxy = &proxy;
        async move {
            proxy.set_delay(delay / 2, Duration::ZERO);
            let load = load_on(&db, cluster, table, &readers).await;
            tokio::time::sleep(Duration::from_secs(6)).await;
            load.finish().await
        }
    };
    let base = run(db.clone(), "f_base", Duration::ZERO).await;
    let slow_reads_before = db.stats().node(&slow).map_or(0, |n| n.reads());
    // 200 ms more per round trip: 100 ms each way.
    let faulty = run(db.clone(), "f", Duration::from_millis(200)).await;
    let slow_reads = db.stats().node(&slow).map_or(0, |n| n.reads()) - slow_reads_before;
    let (p99_base, p99_fault) = (base.read_percentile(0.99), faulty.read_percentile(0.99));
    let extra = format!(
        " balancer={balancer} baseline_p99_ms={:.1} slow_replica_reads={slow_reads}",
        p99_base.as_secs_f64() * 1e3
    );
    let lost = figures(
        "replica-latency-200ms",
        kind,
        &faulty,
        cluster.primary(),
        &tdb,
        (Duration::ZERO, Duration::ZERO),
        &extra,
    )
    .await;
    assert_eq!(faulty.reads_failed, 0, "{:?}", faulty.read_errors);
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert_eq!(faulty.ryw_stale, 0);
    // The reads move away from the slow replica (round robin would send it half of them).
    let share = slow_reads as f64 / faulty.reads_ok.max(1) as f64;
    assert!(share < 0.02, "the slow replica served {slow_reads} of {} reads", faulty.reads_ok);
    // P2C over peak EWMA remembers the slow replica's round trips: fewer than 1% of the reads
    // pay one, so the application's p99 stays below half the added round trip (a read sent to
    // the slow replica takes at least all of it). It is held to that rather than to a multiple of
    // the no-fault run's p99: that one is another 6 s window, and on a busy machine it moves by
    // 2× with no read on the slow replica at all. Both p99s are in the figures line above.
    let bound = Duration::from_millis(200) / 2;
    // GAP (core balancer): least-outstanding has no memory of latency. When neither replica has
    // a read in flight, its rotating tie-break still hands the slow one a read, about 1% of them
    // here, which puts the p99 right at the slow replica's round trip on some runs. What holds
    // for it: the share above (measured 10–30 of 3,000–4,300 reads).
    if balancer == "p2c-ewma" {
        assert!(p99_fault <= bound, "p99 {p99_fault:?} with the latency, {p99_base:?} without");
    }
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_faults_replica_container_stopped_and_started(#[case] kind: DbKind) {
    let cluster = containers_cluster(kind, "nfrestart", 2).await;
    let tdb = cluster.create_database("nfrestart").await.unwrap();
    let db = routed(&tdb).await;
    let victim = &cluster.replicas()[0];
    let name = node_name(victim, &tdb);
    until("a healthy start", || async { health(&db, &name) == Some(Health::Up) }).await;
    let load = load(&db, &cluster, &[Consistency::Eventual, Consistency::Eventual]).await;

    let stopped = Instant::now();
    victim.stop().unwrap(); // docker stop: the server shuts down, the container exits
    until("the replica to be marked down", || async { health(&db, &name) == Some(Health::Down) })
        .await;
    let excluded = stopped.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    victim.restart().await.unwrap(); // docker start: same data, same published port
    until("the replica to be readmitted", || async { health(&db, &name) == Some(Health::Up) })
        .await;
    let back = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = load.finish().await;
    let lost = figures(
        "replica-container-stop-start",
        kind,
        &seen,
        cluster.primary(),
        &tdb,
        (excluded, back),
        "",
    )
    .await;
    assert_invariants(&seen, &lost);
    victim.wait_caught_up_with(cluster.primary(), Duration::from_secs(10)).await.unwrap();
    let on_victim = ids_on(victim, &tdb).await;
    assert!(seen.acked.iter().all(|a| on_victim.contains(&a.0)), "the replica rejoined");
}
