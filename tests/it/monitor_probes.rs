//! The monitor's probes against real servers: roles, positions and lag as PostgreSQL and
//! MariaDB really report them, with lag injected for real.

use std::time::{Duration, Instant};

use rstest::rstest;
use rwsplit_core::{Lag, Role};
use rwsplit_monitor::{Flavor, Observation, ProbeConn, ProbeError, Row, lag, probe};
use rwsplit_testkit::{Cluster, DbKind, Node};
use sqlx::{Column, Connection, Row as _};

use crate::support::own_cluster;

const TIMEOUT: Duration = Duration::from_secs(1);

/// A probe connection straight over sqlx, as superuser/root (the testkit's own URLs are the
/// application user's; `SHOW SLAVE STATUS` needs more).
enum Probe {
    Pg(String),
    My(String),
}

impl Probe {
    fn of(node: &Node) -> Probe {
        match node.db() {
            DbKind::MariaDb => Probe::My(format!("mysql://root@127.0.0.1:{}/mysql", node.port())),
            _ => Probe::Pg(node.url()),
        }
    }
}

fn text_of_my(row: &sqlx::mysql::MySqlRow, i: usize) -> Option<String> {
    row.try_get::<Option<String>, _>(i)
        .ok()
        .flatten()
        .or_else(|| row.try_get::<Option<i64>, _>(i).ok().flatten().map(|v| v.to_string()))
        .or_else(|| row.try_get::<Option<u64>, _>(i).ok().flatten().map(|v| v.to_string()))
        .or_else(|| {
            row.try_get::<Option<Vec<u8>>, _>(i)
                .ok()
                .flatten()
                .map(|v| String::from_utf8_lossy(&v).into_owned())
        })
}

impl ProbeConn for Probe {
    async fn fetch_row(&self, sql: &str) -> Result<Option<Row>, ProbeError> {
        match self {
            Probe::Pg(url) => {
                let mut c =
                    sqlx::PgConnection::connect(url).await.map_err(ProbeError::unreachable)?;
                let row = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_optional(&mut c)
                    .await
                    .map_err(ProbeError::unreachable)?;
                Ok(row.map(|r| {
                    Row::new(r.columns().iter().enumerate().map(|(i, col)| {
                        (col.name().to_owned(), r.try_get::<Option<String>, _>(i).ok().flatten())
                    }))
                }))
            }
            Probe::My(url) => {
                let mut c =
                    sqlx::MySqlConnection::connect(url).await.map_err(ProbeError::unreachable)?;
                let row = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_optional(&mut c)
                    .await
                    .map_err(ProbeError::unreachable)?;
                Ok(row.map(|r| {
                    Row::new(
                        r.columns()
                            .iter()
                            .enumerate()
                            .map(|(i, col)| (col.name().to_owned(), text_of_my(&r, i))),
                    )
                }))
            }
        }
    }
}

fn flavor(kind: DbKind) -> Flavor {
    if kind == DbKind::MariaDb { Flavor::MariaDb } else { Flavor::Postgres }
}

async fn observe(node: &Node) -> Observation {
    probe(&Probe::of(node), flavor(node.db()), TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("probe {}: {e}", node.name()))
}

async fn replica_lag(cluster: &Cluster, i: usize) -> Lag {
    let p = observe(cluster.primary()).await;
    let r = observe(&cluster.replicas()[i]).await;
    lag(&p, &r)
}

fn is_zero(l: Lag) -> bool {
    l.time() == Some(Duration::ZERO) && l.bytes().unwrap_or(0) == 0
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn probes_see_roles_positions_and_real_lag(#[case] kind: DbKind) {
    let cluster = own_cluster(kind, "probe", 1).await;
    let tdb = cluster.create_database("probe").await.unwrap();
    let admin_db = tdb.name().to_owned();
    cluster
        .primary()
        .execute(&admin_db, "CREATE TABLE t (id int, pad varchar(200))")
        .await
        .unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();

    let p = observe(cluster.primary()).await;
    assert_eq!(p.role(), Role::Primary);
    assert!(p.latency() < TIMEOUT);
    let r = observe(&cluster.replicas()[0]).await;
    assert_eq!(r.role(), Role::Replica);
    assert!(is_zero(lag(&p, &r)), "caught up: {:?}", lag(&p, &r));

    // Idle for a while: a caught-up replica must still read as caught up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(is_zero(replica_lag(&cluster, 0).await), "an idle primary fooled the lag");

    // Inject lag for real: stop applying, write ~100 KB.
    let replica = &cluster.replicas()[0];
    replica.pause_replay().await.unwrap();
    let insert = "INSERT INTO t VALUES (1, REPEAT('x', 200))";
    for _ in 0..500 {
        cluster.primary().execute(&admin_db, insert).await.unwrap();
    }
    let started = Instant::now();
    let behind = replica_lag(&cluster, 0).await;
    assert!(!is_zero(behind), "lag not detected: {behind:?}");
    if kind == DbKind::Postgres {
        let bytes = behind.bytes().unwrap_or(0);
        assert!(
            bytes >= 100_000,
            "about 100 KB of rows (plus WAL overhead) injected, {bytes} B measured"
        );
        eprintln!(
            "postgres: injected 500 rows x 200 B, measured {bytes} B behind, {:?}",
            behind.time()
        );
    } else {
        assert_eq!(behind.time(), None, "SQL thread stopped: the lag is unknown, never 0");
        eprintln!("mariadb: SQL thread stopped, lag {behind:?}");
    }
    assert!(observe(replica).await.replay_stopped());
    eprintln!("{kind}: lag detected {:?} after the writes", started.elapsed());

    replica.resume_replay().await.unwrap();
    let healed = Instant::now();
    while !is_zero(replica_lag(&cluster, 0).await) {
        assert!(healed.elapsed() < Duration::from_secs(10), "never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("{kind}: caught up {:?} after resuming", healed.elapsed());
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn a_hung_node_fails_its_probe_within_the_deadline(#[case] kind: DbKind) {
    let cluster = own_cluster(kind, "probehang", 1).await;
    let node = &cluster.replicas()[0];
    node.hang().unwrap();
    let started = Instant::now();
    let err = probe(&Probe::of(node), flavor(kind), Duration::from_millis(500)).await.unwrap_err();
    let took = started.elapsed();
    node.unhang().unwrap();
    assert!(err.is_timeout(), "{err}");
    assert!(took < Duration::from_millis(900), "took {took:?}");
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn a_promoted_replica_reports_the_primary_role(#[case] kind: DbKind) {
    let cluster = own_cluster(kind, "probepromote", 1).await;
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();
    cluster.primary().stop().unwrap();
    let node = &cluster.replicas()[0];
    assert_eq!(observe(node).await.role(), Role::Replica);
    node.promote().await.unwrap();
    assert_eq!(observe(node).await.role(), Role::Primary);
}
