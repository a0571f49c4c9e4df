//! What the exported balancers and rules do end to end (issue 17 item 2): each replica's
//! weight, zone and tags reach the router, and reads land where they say, on a real cluster.

use rstest::rstest;
use rwsplit_sea_orm::{
    Replica, RoundRobin, RoutedConnection, RouterConfig, TableRule, TagRule, WeightedRoundRobin,
    ZonePreference,
};
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
