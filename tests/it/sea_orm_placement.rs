//! What the exported balancers and rules do end to end: each replica's
//! weight, zone and tags reach the router, and reads land where they say, on a real cluster:
//! weighted round robin, zone preference, table and tag rules, round robin, random, lowest lag,
//! and the three `PrimaryReads` modes. P2C-EWMA and least-outstanding under latency are in
//! `network_faults.rs`.

use rstest::rstest;
use rwsplit_sea_orm::advanced::{
    Health, LowestLag, PrimaryReads, Random, RoundRobin, RouteError, RouterConfig, TableRule,
    TagRule, WeightedRoundRobin, ZonePreference,
};
use rwsplit_sea_orm::{Replica, RoutedConnection, RoutingError, routing_error};
use rwsplit_testkit::DbKind;
use sea_orm::{ConnectionTrait, Statement};

use crate::support::shared;

const READS: u64 = 200;

async fn read(db: &RoutedConnection, sql: &str) {
    let stmt = Statement::from_string(db.get_database_backend(), sql.to_owned());
    db.query_all_raw(stmt).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Reads each replica served (configuration order) while `op` ran.
async fn served<F, Fut>(db: &RoutedConnection, op: F) -> Vec<u64>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let before: Vec<u64> = db.stats().replicas().iter().map(|n| n.reads()).collect();
    op().await;
    let stats = db.stats();
    assert_eq!(stats.primary().reads(), 0, "no read fell back to the primary");
    stats.replicas().iter().zip(before).map(|(n, b)| n.reads() - b).collect()
}

async fn connect(
    db: DbKind,
    prefix: &str,
    replicas: [fn(String) -> Replica; 2],
    router: RouterConfig,
) -> (rwsplit_testkit::TestDatabase, RoutedConnection) {
    let tdb = shared(db).create_database(prefix).await.unwrap();
    let urls = tdb.replica_urls();
    let routed = RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replica(replicas[0](urls[0].clone()))
        .replica(replicas[1](urls[1].clone()))
        .router(router)
        .read_your_writes(false)
        // The balancers' spread alone: on a busy machine a read left unanswered past its hedge
        // delay is hedged on the other replica, and the slow one passed over until it answers
        // (`sea_orm_hedging` tests that), which moves reads the counts below are about.
        .hedged_reads(false)
        .connect()
        .await
        .expect("connects");
    (tdb, routed)
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn weighted_round_robin_follows_each_replicas_weight(#[case] kind: DbKind) {
    let (_tdb, db) = connect(
        kind,
        "weights",
        [|u| Replica::new(u).weight(3), |u| Replica::new(u).weight(1)],
        RouterConfig::default().balancer(WeightedRoundRobin::default()),
    )
    .await;
    let got = served(&db, || async {
        for _ in 0..READS {
            read(&db, "SELECT 1 AS one").await;
        }
    })
    .await;
    assert_eq!(got.iter().sum::<u64>(), READS);
    // 3:1 over whole rounds of a smooth weighted round robin (150 / 50 while both replicas
    // stay healthy; a little slack for a probe that times out on a loaded machine).
    assert!((140..=160).contains(&got[0]), "weights 3 and 1: {got:?}");
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn zone_preference_keeps_reads_in_the_local_zone(#[case] kind: DbKind) {
    let (_tdb, db) = connect(
        kind,
        "zones",
        [|u| Replica::new(u).zone("eu-b"), |u| Replica::new(u).zone("eu-a")],
        RouterConfig::default().balancer(ZonePreference::new("eu-a", RoundRobin::default())),
    )
    .await;
    let got = served(&db, || async {
        for _ in 0..READS {
            read(&db, "SELECT 1 AS one").await;
        }
    })
    .await;
    assert_eq!(got, [0, READS], "every read in zone eu-a");
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn table_and_tag_rules_send_reads_to_the_tagged_replica(#[case] kind: DbKind) {
    let (tdb, db) = connect(
        kind,
        "tags",
        [|u| Replica::new(u), |u| Replica::new(u).tag("analytics")],
        RouterConfig::default()
            .rule(TableRule::only_tagged(["events"], "analytics"))
            .rule(TagRule::only_tagged("report", "analytics")),
    )
    .await;
    db.execute_unprepared("CREATE TABLE events (id INT)").await.unwrap();
    shared(kind).wait_caught_up(0, std::time::Duration::from_secs(10)).await.unwrap();
    let events = served(&db, || async {
        for _ in 0..20 {
            read(&db, "SELECT count(*) AS n FROM events").await;
        }
    })
    .await;
    assert_eq!(events, [0, 20], "reads of `events` only on the analytics replica");
    let tagged = served(&db, || async {
        for _ in 0..20 {
            read(&db, "/*rwsplit:tag=report*/ SELECT 1 AS one").await;
        }
    })
    .await;
    assert_eq!(tagged, [0, 20], "reads tagged `report` only on the analytics replica");
    let others = served(&db, || async {
        for _ in 0..20 {
            read(&db, "SELECT 1 AS one").await;
        }
    })
    .await;
    assert_eq!(others, [10, 10], "other reads round robin over both");
    drop(tdb);
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn round_robin_and_random_spread_reads_over_both_replicas(#[case] kind: DbKind) {
    for (name, router) in [
        ("round robin", RouterConfig::default().balancer(RoundRobin::default())),
        ("random", RouterConfig::default().balancer(Random::with_seed(7))),
    ] {
        let (_tdb, db) = connect(kind, "spread", [Replica::new, Replica::new], router).await;
        let got = served(&db, || async {
            for _ in 0..READS {
                read(&db, "SELECT 1 AS one").await;
            }
        })
        .await;
        assert_eq!(got.iter().sum::<u64>(), READS);
        // Round robin: 100 / 100; random: binomial(200, ½), 60..140 is far outside 6 sigma.
        let band = if name == "round robin" { 95..=105 } else { 60..=140 };
        assert!(band.contains(&got[0]), "{name}: {got:?}");
    }
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn lowest_lag_reads_from_the_replica_that_is_caught_up(#[case] kind: DbKind) {
    let cluster = crate::support::own_cluster(kind, "lowlag", 2).await;
    let tdb = cluster.create_database("lowlag").await.unwrap();
    let urls = tdb.replica_urls();
    let db = RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replica(Replica::new(urls[0].clone()))
        .replica(Replica::new(urls[1].clone()))
        .router(RouterConfig::default().balancer(LowestLag::default()))
        .read_your_writes(false)
        // The balancer's choice alone: a read hedged on the other replica past its hedge
        // delay (a busy machine) passes the slow one over for a while, as `connect` says.
        .hedged_reads(false)
        .connect()
        .await
        .unwrap();
    db.execute_unprepared("CREATE TABLE t (id INT)").await.unwrap();
    cluster.wait_caught_up(0, std::time::Duration::from_secs(10)).await.unwrap();
    // Replica 0 stops replaying; writes go on, so it falls behind (PostgreSQL: bytes and time;
    // MariaDB: its lag becomes unknown, which ranks last).
    cluster.replicas()[0].pause_replay().await.unwrap();
    for i in 0..20 {
        db.execute_unprepared(&format!("INSERT INTO t VALUES ({i})")).await.unwrap();
    }
    // Both healthy (the router ranks a suspect replica, one whose probe just failed on a busy
    // machine, after the healthy ones whatever its lag), replica 0 behind, replica 1 not.
    crate::support::until("replica 0 to be measured behind", || async {
        let stats = db.stats();
        let (behind, fresh) = (&stats.replicas()[0], &stats.replicas()[1]);
        let up = |n: &rwsplit_sea_orm::NodeStats| n.health() == Health::Up;
        up(behind)
            && up(fresh)
            && fresh.lag().time() == Some(std::time::Duration::ZERO)
            && behind.lag().time() != Some(std::time::Duration::ZERO)
    })
    .await;
    // A round counts when no probe of a replica failed, found it busy or changed its health
    // meanwhile: on a busy machine one may, and a suspect replica ranks after the healthy one
    // whatever its lag, which is another rule than the one tested here (at most three rounds).
    let mut got = Vec::new();
    for _ in 0..3 {
        let before = crate::support::probe_verdicts(&db);
        got = served(&db, || async {
            for _ in 0..50 {
                read(&db, "SELECT count(*) AS n FROM t").await;
            }
        })
        .await;
        if crate::support::probe_verdicts(&db) == before {
            break;
        }
    }
    cluster.replicas()[0].resume_replay().await.unwrap();
    assert_eq!(got, [0, 50], "every read on the caught-up replica");
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn primary_reads_decide_whether_the_primary_serves_reads(#[case] kind: DbKind) {
    let reads_on_primary = |db: &RoutedConnection| db.stats().primary().reads();
    // Include: the primary is balanced with the replicas (a third of round-robin reads).
    let (_a, db) = connect(
        kind,
        "pinclude",
        [Replica::new, Replica::new],
        RouterConfig::default()
            .balancer(RoundRobin::default())
            .primary_reads(PrimaryReads::Include),
    )
    .await;
    for _ in 0..90 {
        read(&db, "SELECT 1 AS one").await;
    }
    let included = reads_on_primary(&db);
    assert!((25..=35).contains(&included), "Include: {included} of 90 on the primary");

    // Fallback (the default) and Never, with both replicas fenced: the primary serves the read,
    // or the read fails naming the problem.
    for (mode, expect_ok) in [(PrimaryReads::Fallback, true), (PrimaryReads::Never, false)] {
        let (_t, db) = connect(
            kind,
            "pfallback",
            [Replica::new, Replica::new],
            RouterConfig::default().primary_reads(mode),
        )
        .await;
        for n in db.stats().replicas().iter().map(|n| n.name().to_owned()).collect::<Vec<_>>() {
            db.fence(&n).unwrap();
        }
        let stmt = Statement::from_string(db.get_database_backend(), "SELECT 1 AS one");
        let r = db.query_all_raw(stmt).await;
        assert_eq!(r.is_ok(), expect_ok, "{mode:?}: {r:?}");
        if expect_ok {
            assert_eq!(reads_on_primary(&db), 1, "{mode:?}");
        } else {
            let err = r.unwrap_err();
            assert!(
                matches!(
                    routing_error(&err),
                    Some(RoutingError::Unroutable { source: RouteError::NoEligibleNode { .. } })
                ),
                "{mode:?}: {err:?}"
            );
            // The text says which rule left the replicas out, and why the primary did not serve.
            let text = err.to_string();
            assert!(text.contains("down (failing probes, fenced or joining)"), "{text}");
            assert!(text.contains("primary_reads = never"), "{text}");
        }
    }
}
