//! Faults under load: a background writer (each acknowledged write followed by a read of it in
//! the same task) and two background readers run through each fault, on a private cluster,
//! counting what the application sees. Each test prints one `FAULT-FIGURES` line and asserts the
//! invariants: no read fails while a healthy node can serve, no acknowledged write is lost (every
//! acknowledged id is on the final primary), every failed write says clearly why, and no read
//! after a write in the same task misses it.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rstest::rstest;
use rwsplit_core::Staleness;
use rwsplit_sea_orm::advanced::{AutoFailover, Health, HealthPolicy, MonitorConfig};
use rwsplit_sea_orm::{
    Consistency, NotSentReason, Replica, RoutedConnection, RoutingError, UnknownReason,
    routing_error,
};
use rwsplit_testkit::{Cluster, DbKind, Node, TestDatabase};
use sea_orm::ConnectionTrait;

use crate::support::load::{Load, LoadConfig, Seen, stmt};
use crate::support::{own_cluster, until};

const INTERVAL: Duration = Duration::from_millis(100);
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
const READ_TIMEOUT: Duration = Duration::from_millis(300);
/// The freshness bound reads get in the lag test.
const MAX_LAG: Duration = Duration::from_millis(500);

/// The load every fault here runs through: the writer and two readers at the connection's
/// own consistency, each write and read waited for as long as it takes.
async fn load(db: &RoutedConnection, cluster: &Cluster, consistency: Consistency) -> Load {
    let readers = vec![consistency; 2];
    let config = LoadConfig { table: "f", readers, write_timeout: None, wait_for_progress: true };
    Load::start(db, cluster, config).await
}

/// A routed connection to `tdb`; with `failover`, automatic failover on, re-pointing the
/// replicas at each node's replication address in `cluster` (on containers the application's
/// `127.0.0.1:<port>` is not where the replicas reach a node).
async fn routed(
    tdb: &TestDatabase,
    consistency: Consistency,
    failover: Option<&Cluster>,
) -> RoutedConnection {
    let mut replicas: Vec<Replica> = tdb.replica_urls().into_iter().map(Replica::new).collect();
    let mut b = RoutedConnection::builder().primary(tdb.primary_url());
    if let Some(cluster) = failover {
        b = b.primary_replication_address(cluster.primary().replication_address());
        for (replica, node) in replicas.iter_mut().zip(cluster.replicas()) {
            *replica = replica.clone().replication_address(node.replication_address());
        }
    }
    let mut b = b
        .replicas(replicas)
        .consistency(consistency)
        .monitor(
            MonitorConfig::default()
                .probe_interval(INTERVAL)
                .probe_timeout(PROBE_TIMEOUT)
                .probe_jitter(Duration::from_millis(10)),
        )
        .health_policy(HealthPolicy::default().ban_base(Duration::from_secs(1)))
        .replica_read_timeout(Some(READ_TIMEOUT))
        .acquire_timeout(Duration::from_secs(2));
    if failover.is_some() {
        // The MariaDB application user may not promote; the testkit's root may (no password).
        // A short grace: a crashed primary is not coming back here.
        let cfg = AutoFailover::default().after_failures(2).grace(Duration::from_secs(1));
        let cfg = match tdb.primary_url().starts_with("mysql") {
            true => cfg.admin_credentials("root", ""),
            false => cfg,
        };
        b = b.auto_failover(cfg);
    }
    b.connect().await.expect("a routed connection")
}

fn node_name(node: &Node, tdb: &TestDatabase) -> String {
    format!("127.0.0.1:{}/{}", node.port(), tdb.name())
}

fn health(db: &RoutedConnection, name: &str) -> Option<Health> {
    db.stats().node(name).map(|n| n.health())
}

/// Idle connections in `db`'s primary pool (the one SeaORM's accessors hand out). Asked in a
/// task of its own: handing the pool out marks the asking task's scope pending (writes the
/// router cannot see may follow), and the test's own scope must stay as its writes left it.
async fn primary_idle(db: &RoutedConnection, kind: DbKind) -> usize {
    let db = db.clone();
    tokio::spawn(async move {
        if kind == DbKind::Postgres {
            db.get_postgres_connection_pool().num_idle()
        } else {
            db.get_mysql_connection_pool().num_idle()
        }
    })
    .await
    .unwrap()
}

/// Every id in table `f` on `node`.
async fn ids_on(node: &Node, tdb: &TestDatabase) -> HashSet<i64> {
    let mut c = crate::support::connect(&node.url_for(tdb.name())).await;
    let rows: Vec<i64> = sqlx::query_scalar("SELECT id FROM f").fetch_all(&mut c).await.unwrap();
    rows.into_iter().collect()
}

/// Prints the figures and asserts the invariants.
async fn report(
    fault: &str,
    kind: DbKind,
    seen: &Seen,
    final_primary: &Node,
    tdb: &TestDatabase,
    (excluded, back): (Duration, Duration),
    extra: &str,
) {
    let on_primary = ids_on(final_primary, tdb).await;
    let lost: Vec<i64> =
        seen.acked.iter().map(|a| a.0).filter(|id| !on_primary.contains(id)).collect();
    eprintln!(
        "FAULT-FIGURES db={kind} fault={fault} reads_ok={} reads_failed={} writes_acked={} \
         writes_acked_then_lost={} writes_failed={} writes_failed_unclear={} ryw_checked={} \
         ryw_stale={} ryw_failed={} time_to_exclude_ms={} time_to_readmit_or_follow_ms={}{extra}",
        seen.reads_ok,
        seen.reads_failed,
        seen.acked.len(),
        lost.len(),
        seen.writes_failed,
        seen.unclear_write_errors.len(),
        seen.ryw_checked,
        seen.ryw_stale,
        seen.ryw_failed,
        excluded.as_millis(),
        back.as_millis(),
    );
    assert_eq!(
        seen.reads_failed, 0,
        "reads failed while a healthy node could serve: {:?}",
        seen.read_errors
    );
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert!(
        seen.unclear_write_errors.is_empty(),
        "unclear write errors: {:?}",
        seen.unclear_write_errors
    );
    assert_eq!(seen.ryw_stale, 0, "a read after a write in the same task missed it");
    assert!(seen.acked.len() > 50, "the writer made progress: {}", seen.acked.len());
    assert!(seen.reads_ok > 100, "the readers made progress: {}", seen.reads_ok);
}

#[derive(Debug, Clone, Copy)]
enum ReplicaFault {
    Kill,
    Hang,
    Lag,
    Restart,
}

#[rstest]
#[case::postgres_kill(DbKind::Postgres, ReplicaFault::Kill)]
#[case::mariadb_kill(DbKind::MariaDb, ReplicaFault::Kill)]
#[case::postgres_hang(DbKind::Postgres, ReplicaFault::Hang)]
#[case::mariadb_hang(DbKind::MariaDb, ReplicaFault::Hang)]
#[case::postgres_lag(DbKind::Postgres, ReplicaFault::Lag)]
#[case::mariadb_lag(DbKind::MariaDb, ReplicaFault::Lag)]
#[case::postgres_restart(DbKind::Postgres, ReplicaFault::Restart)]
#[case::mariadb_restart(DbKind::MariaDb, ReplicaFault::Restart)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_replica_under_load(#[case] kind: DbKind, #[case] fault: ReplicaFault) {
    let cluster = own_cluster(kind, "freplica", 2).await;
    let tdb = cluster.create_database("freplica").await.unwrap();
    let consistency = match fault {
        ReplicaFault::Lag => Consistency::BoundedStaleness(Staleness::time(MAX_LAG)),
        _ => Consistency::Eventual,
    };
    let db = routed(&tdb, consistency.clone(), None).await;
    let victim = &cluster.replicas()[0];
    let name = node_name(victim, &tdb);
    until("a healthy start", || async { health(&db, &name) == Some(Health::Up) }).await;
    let load = load(&db, &cluster, consistency).await;

    // Lag counts as excluding once it is beyond the bound or unknown: the router then sends
    // bounded reads elsewhere.
    let lagging = |db: &RoutedConnection| {
        let lag = db.stats().node(&name).map(|n| n.lag());
        lag.is_none_or(|l| l.time().is_none_or(|t| t > MAX_LAG))
    };
    let injected = Instant::now();
    match fault {
        ReplicaFault::Kill => victim.crash().unwrap(),
        ReplicaFault::Hang => victim.hang().unwrap(),
        ReplicaFault::Lag => victim.pause_replay().await.unwrap(),
        ReplicaFault::Restart => victim.stop().unwrap(),
    }
    let excluded = match fault {
        ReplicaFault::Lag => {
            until("the lagging replica to be excluded", || async { lagging(&db) }).await
        }
        _ => {
            until("the replica to be marked down", || async {
                health(&db, &name) == Some(Health::Down)
            })
            .await
        }
    };
    // Hold the fault: a SIGSTOP lasts 5 s, the others 2 s.
    let hold = if matches!(fault, ReplicaFault::Hang) {
        Duration::from_secs(5)
    } else {
        Duration::from_secs(2)
    };
    tokio::time::sleep(hold.saturating_sub(injected.elapsed())).await;

    let healed = Instant::now();
    match fault {
        ReplicaFault::Kill | ReplicaFault::Restart => victim.restart().await.unwrap(),
        ReplicaFault::Hang => victim.unhang().unwrap(),
        ReplicaFault::Lag => victim.resume_replay().await.unwrap(),
    }
    match fault {
        ReplicaFault::Lag => {
            until("the replica to be fresh again", || async { !lagging(&db) }).await
        }
        _ => {
            until("the replica to be readmitted", || async {
                health(&db, &name) == Some(Health::Up)
            })
            .await
        }
    };
    let back = healed.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = load.finish().await;
    let label = format!("replica-{fault:?}").to_lowercase();
    report(&label, kind, &seen, cluster.primary(), &tdb, (excluded, back), "").await;
    // The readmitted replica has every acknowledged write too.
    victim.wait_caught_up_with(cluster.primary(), Duration::from_secs(10)).await.unwrap();
    let on_victim = ids_on(victim, &tdb).await;
    assert!(seen.acked.iter().all(|a| on_victim.contains(&a.0)), "the replica caught up");
}

/// Settings that make an acknowledged write durable on a replica before the primary answers:
/// without them, a primary lost at the wrong instant takes acknowledged writes with it, and no
/// router can bring them back. MariaDB's wait for a replica's acknowledgement starts short:
/// the cluster's own setup writes (its users) commit before any replica follows, and each
/// would wait it out; [`semi_sync_held`] sets the wait the test runs with once both replicas
/// acknowledge.
pub(crate) fn durable(kind: DbKind, name: &str) -> rwsplit_testkit::ClusterBuilder {
    let b = Cluster::builder().db(kind).name(name).replicas(2);
    match kind {
        DbKind::MariaDb => b
            .setting("rpl-semi-sync-master-enabled", "ON")
            .setting("rpl-semi-sync-slave-enabled", "ON")
            .setting("rpl-semi-sync-master-wait-point", "AFTER_SYNC")
            .setting("rpl-semi-sync-master-timeout", "200"),
        _ => b.setting("synchronous_standby_names", "ANY 1 (*)"),
    }
}

/// A [`durable`] MariaDB cluster's primary waits up to `timeout` for a replica's
/// acknowledgement on every node (a promoted replica keeps it), from when both replicas
/// acknowledge (nothing to do on PostgreSQL).
pub(crate) async fn semi_sync_held(cluster: &Cluster, timeout: Duration) {
    if cluster.db() != DbKind::MariaDb {
        return;
    }
    let set = format!("SET GLOBAL rpl_semi_sync_master_timeout = {}", timeout.as_millis());
    for n in cluster.nodes() {
        n.execute("mysql", &set).await.unwrap();
    }
    let primary = cluster.primary().url_for("mysql").replace("//app@", "//root@");
    until("semi-sync replicas acknowledging", || async {
        let mut c = crate::support::connect(&primary).await;
        let clients = crate::support::global_status(&mut c, "RPL_SEMI_SYNC_MASTER_CLIENTS").await;
        clients.is_some_and(|n| n >= 2)
    })
    .await;
}

/// The index of the replica that has replayed the most of the stopped primary's history, once
/// replay has settled (PostgreSQL: replay LSN; MariaDB: the GTID sequence in domain 0).
async fn most_advanced(replicas: &[Node]) -> usize {
    async fn position(node: &Node) -> u64 {
        match node.db() {
            DbKind::Postgres => node.replay_lsn().await.ok().flatten().unwrap_or(0),
            _ => {
                let pos = node.gtid_slave_pos().await.unwrap_or_default();
                pos.split(',')
                    .filter_map(|g| g.trim().rsplit('-').next()?.parse::<u64>().ok())
                    .max()
                    .unwrap_or(0)
            }
        }
    }
    // Replay of what was received before the stop finishes within moments.
    let mut last = Vec::new();
    for _ in 0..50 {
        let mut now = Vec::new();
        for r in replicas {
            now.push(position(r).await);
        }
        if now == last {
            break;
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last.iter().enumerate().max_by_key(|(i, p)| (**p, std::cmp::Reverse(*i))).map_or(0, |(i, _)| i)
}

async fn durable_cluster(kind: DbKind, name: &str) -> Cluster {
    // Through the same guard as `own_cluster`: without `cargo xtask itest` this fails loudly.
    let _ = crate::support::shared(kind);
    let cluster = durable(kind, name)
        .start()
        .await
        .unwrap_or_else(|e| panic!("a durable {kind} cluster: {e}"));
    semi_sync_held(&cluster, Duration::from_secs(10)).await;
    cluster
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_planned_switchover_under_load(#[case] kind: DbKind) {
    let cluster = durable_cluster(kind, "fswitch").await;
    let tdb = cluster.create_database("fswitch").await.unwrap();
    let db = routed(&tdb, Consistency::Eventual, None).await;
    let old = node_name(cluster.primary(), &tdb);
    let load = load(&db, &cluster, Consistency::Eventual).await;

    // By hand, as an operator or HA manager would: stop the primary, promote a replica, point
    // the other replica at it.
    let injected = Instant::now();
    cluster.primary().stop().unwrap();
    let excluded = until("the old primary to be marked down", || async {
        health(&db, &old) == Some(Health::Down)
    })
    .await;
    // With `ANY 1` synchronous replication (or semi-sync) the write the old primary acknowledged
    // last may be on one replica only: as an operator would, promote the one that has received
    // the most.
    let best = most_advanced(cluster.replicas()).await;
    let (new, other) = (&cluster.replicas()[best], &cluster.replicas()[1 - best]);
    new.promote().await.unwrap();
    // From the moment the new primary accepts writes.
    let promoted = Instant::now();
    let new_name = node_name(new, &tdb);
    let follow_task = {
        let db = db.clone();
        tokio::spawn(async move {
            until("routing to follow the promotion", || async {
                db.stats()
                    .node(&new_name)
                    .is_some_and(|n| n.current_role() == rwsplit_core::Role::Primary)
            })
            .await;
            promoted.elapsed()
        })
    };
    other.follow(new).await.unwrap();
    let followed = follow_task.await.unwrap();
    until("writes to reach the new primary", || async {
        load.last_ack().is_some_and(|t| t > promoted)
    })
    .await;
    let first_write = load.last_ack().map_or(Duration::ZERO, |t| t - promoted);
    eprintln!(
        "{kind}: switchover: routing followed {followed:?} after the promotion, first write acknowledged after {first_write:?}"
    );
    eprintln!("{kind}: switchover: primary stopped, writes back {:?} later", injected.elapsed());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = load.finish().await;
    if kind == DbKind::Postgres {
        // Diagnostics for a lost write: where is it?
        let on_new = ids_on(new, &tdb).await;
        let lost: Vec<i64> =
            seen.acked.iter().map(|a| a.0).filter(|id| !on_new.contains(id)).collect();
        if !lost.is_empty() {
            let on_other = ids_on(other, &tdb).await;
            cluster.primary().restart().await.unwrap();
            let on_old = ids_on(cluster.primary(), &tdb).await;
            eprintln!(
                "LOST {lost:?}: on the other replica {:?}, on the old primary {:?}; acked at {:?} after the stop began",
                lost.iter().map(|id| on_other.contains(id)).collect::<Vec<_>>(),
                lost.iter().map(|id| on_old.contains(id)).collect::<Vec<_>>(),
                seen.acked
                    .iter()
                    .filter(|a| lost.contains(&a.0))
                    .map(|a| a.1.checked_duration_since(injected))
                    .collect::<Vec<_>>(),
            );
        }
    }
    let extra = format!(" first_write_after_promotion_ms={}", first_write.as_millis());
    report("planned-switchover", kind, &seen, new, &tdb, (excluded, followed), &extra).await;
    // The promoted node's next probe reports its role: it starts within an interval (and its
    // jitter) and may take up to its timeout on a loaded machine before it answers.
    assert!(
        followed <= INTERVAL + PROBE_TIMEOUT + Duration::from_millis(200),
        "routing followed the promotion after {followed:?}"
    );
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_primary_killed_with_auto_failover(#[case] kind: DbKind) {
    // The failover's own account of what it did (RUST_LOG=rwsplit=info to see it).
    crate::support::tracing_baseline();
    let cluster = durable_cluster(kind, "fpromote").await;
    let tdb = cluster.create_database("fpromote").await.unwrap();
    let db = routed(&tdb, Consistency::Eventual, Some(&cluster)).await;
    let old = node_name(cluster.primary(), &tdb);
    let load = load(&db, &cluster, Consistency::Eventual).await;

    cluster.primary().crash().unwrap();
    // From when the old primary is gone: any write acknowledged later was the new primary's.
    let killed = Instant::now();
    let excluded = until("the old primary to be marked down", || async {
        health(&db, &old) == Some(Health::Down)
    })
    .await;
    until("the automatic promotion", || async { db.stats().promotions() == 1 }).await;
    // Routing follows once the promoted node's probe reports the primary role.
    until("routing to follow the promotion", || async {
        db.stats().nodes().iter().any(|n| {
            n.name() != old && n.current_role() == rwsplit_core::Role::Primary && !n.fenced()
        })
    })
    .await;
    let followed = killed.elapsed();
    until("writes to reach the new primary", || async {
        load.last_ack().is_some_and(|t| t > killed)
    })
    .await;
    let first_write = load.last_ack().map_or(Duration::ZERO, |t| t - killed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = load.finish().await;
    let stats = db.stats();
    assert!(stats.node(&old).is_some_and(|n| n.fenced()), "the old primary is fenced: {stats:?}");
    let new = cluster
        .replicas()
        .iter()
        .find(|n| {
            stats
                .node(&node_name(n, &tdb))
                .is_some_and(|s| s.current_role() == rwsplit_core::Role::Primary)
        })
        .expect("a replica was promoted");
    let extra = format!(" first_write_after_crash_ms={}", first_write.as_millis());
    report("primary-sigkill-auto-failover", kind, &seen, new, &tdb, (excluded, followed), &extra)
        .await;
    // The other replica was re-pointed and follows the new primary.
    let other = cluster.replicas().iter().find(|n| n.port() != new.port()).unwrap();
    other.wait_caught_up_with(new, Duration::from_secs(10)).await.unwrap();
    let on_other = ids_on(other, &tdb).await;
    assert!(seen.acked.iter().all(|a| on_other.contains(&a.0)), "the other replica follows");

    // The old primary stays fenced when it returns, until an operator unfences it.
    cluster.primary().restart().await.unwrap();
    tokio::time::sleep(4 * INTERVAL).await;
    assert!(db.stats().node(&old).is_some_and(|n| n.fenced() && n.health() == Health::Down));
    db.execute_unprepared("INSERT INTO f (id, v) VALUES (-1, 'after')").await.unwrap();
    assert!(
        ids_on(new, &tdb).await.contains(&-1),
        "writes go to the new primary, not the fenced one"
    );
    // The old primary still believes it is one, with synchronous replication and no standby:
    // the test database's teardown would wait on it forever.
    cluster.primary().crash().unwrap();
}

/// Without a fixed replica deadline (the default), a read on a hung replica is given up once
/// the monitor marks the replica down, and a slow read on a healthy replica runs to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_hung_replica_without_a_statement_deadline() {
    let cluster = own_cluster(DbKind::Postgres, "fhang_default", 2).await;
    let tdb = cluster.create_database("fhang_default").await.unwrap();
    let db = RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replicas(tdb.replica_urls())
        .monitor(MonitorConfig::default().probe_interval(INTERVAL).probe_timeout(PROBE_TIMEOUT))
        .connect()
        .await
        .unwrap();
    let hung = node_name(&cluster.replicas()[0], &tdb);
    until("both replicas in rotation", || async {
        db.stats().replicas().iter().all(|n| n.health() == Health::Up)
    })
    .await;

    // A 1.5 s report on a healthy replica is not cut short (with a 300 ms deadline it would be).
    let sql = "/*rwsplit:replica*/ SELECT pg_sleep(1.5)::text AS slept".to_owned();
    let started = Instant::now();
    db.query_one_raw(stmt(&db, sql)).await.expect("a slow read completes");
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert_eq!(db.stats().retries(), 0, "nothing was abandoned");

    cluster.replicas()[0].hang().unwrap();
    let mut slowest = Duration::ZERO;
    let reads: Vec<_> = (0..8)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let r = db.query_one_raw(stmt(&db, "SELECT 1 AS one".to_owned())).await;
                (r.is_ok(), started.elapsed())
            })
        })
        .collect();
    for r in reads {
        let (ok, took) = r.await.unwrap();
        assert!(ok, "every read succeeds while the other replica and the primary serve");
        slowest = slowest.max(took);
    }
    cluster.replicas()[0].unhang().unwrap();
    eprintln!(
        "hung replica, no statement deadline: slowest of 8 reads {} ms; {hung} marked {:?}",
        slowest.as_millis(),
        health(&db, &hung)
    );
    // Marked down after 3 failed probes of 100 ms + 300 ms each, then the read moves on.
    assert!(slowest < Duration::from_secs(4), "reads were held {slowest:?}");
}

/// A write on a primary that freezes (SIGSTOP: its port stays open, nothing answers) returns
/// once the monitor marks the primary down, instead of waiting for the kernel to give the
/// connection up (about 15 minutes). What the caller is told depends on how far the write got:
/// - on a pool that pings a connection before handing it out (sqlx's `test_before_acquire`,
///   on by default), the ping is what hangs: the write was never sent, and says so; the
///   writer's scope is not made pending;
/// - on a pool that does not, the statement itself was sent and hangs: its outcome is unknown,
///   it is not retried, and the writer's scope becomes pending (the write may have committed):
///   its next read first asks the primary for its position.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn a_write_in_flight_on_a_frozen_primary_ends_when_the_primary_is_marked_down(
    #[case] kind: DbKind,
) {
    let cluster = own_cluster(kind, "frozenw", 1).await;
    let tdb = cluster.create_database("frozenw").await.unwrap();
    let connect = |ping: bool| {
        let mut primary = sea_orm::ConnectOptions::new(tdb.primary_url());
        primary.test_before_acquire(ping);
        RoutedConnection::builder()
            .primary(primary)
            .replicas(tdb.replica_urls())
            .monitor(MonitorConfig::default().probe_interval(INTERVAL).probe_timeout(PROBE_TIMEOUT))
            .connect()
    };
    let pinging = connect(true).await.unwrap();
    let sending = connect(false).await.unwrap();
    pinging.execute_unprepared("CREATE TABLE t (id INT)").await.unwrap();
    // An idle pooled connection to the primary exists in each, so the write does not have to
    // open one. The pool takes the write's connection back in a task of sqlx's own, so the test
    // waits for the idle connection itself.
    for db in [&pinging, &sending] {
        db.execute_unprepared("INSERT INTO t VALUES (0)").await.unwrap();
        until("the write's connection back in the primary's pool", || async {
            primary_idle(db, kind).await > 0
        })
        .await;
    }

    cluster.primary().hang().unwrap();
    let started = Instant::now();
    // Both in this task: a write's read-your-writes scope is its task's.
    let write = |db: &RoutedConnection, id: i32| {
        let db = db.clone();
        async move {
            let sql = format!("INSERT INTO t VALUES ({id})");
            let r = tokio::time::timeout(Duration::from_secs(30), db.execute_unprepared(&sql));
            (r.await, started.elapsed())
        }
    };
    let ((unsent, unsent_took), (sent, sent_took)) =
        tokio::join!(write(&pinging, 1), write(&sending, 2));
    cluster.primary().unhang().unwrap();
    for (r, took, what) in [(unsent, unsent_took, "pinged"), (sent, sent_took, "sent")] {
        let err = r.expect("the write returned before 30 s").expect_err("the write was given up");
        let text = err.to_string();
        eprintln!(
            "{kind}: write ({what}) on a frozen primary given up after {} ms: {text}",
            took.as_millis()
        );
        assert!(matches!(err, sea_orm::DbErr::Conn(_)), "{err:?}");
        let typed = routing_error(&err).expect("the adapter's error");
        if what == "sent" {
            assert!(
                matches!(
                    typed,
                    RoutingError::WriteOutcomeUnknown { reason: UnknownReason::MarkedDown, .. }
                ),
                "{typed:?}"
            );
            assert!(typed.outcome_unknown() && !typed.is_retryable());
        } else {
            assert!(
                matches!(
                    typed,
                    RoutingError::WriteNotSent {
                        reason: NotSentReason::NotPrimary | NotSentReason::PrimaryDown,
                        ..
                    }
                ),
                "{typed:?}"
            );
            assert!(typed.is_retryable() && !typed.outcome_unknown());
        }
        // 3 failed probes of 100 ms + 300 ms each mark it down.
        assert!(took < Duration::from_secs(5), "the write was held {took:?}");
    }
    for (db, pending) in [(&pinging, false), (&sending, true)] {
        until("the primary back in rotation", || async {
            db.stats().primary().health() == Health::Up
        })
        .await;
        let captured = db.stats().read_your_writes().positions_captured;
        db.query_all_raw(stmt(db, "SELECT id FROM t".to_owned())).await.unwrap();
        let asked = db.stats().read_your_writes().positions_captured > captured;
        assert_eq!(asked, pending, "the read after the write asked the primary for its position");
    }
}
