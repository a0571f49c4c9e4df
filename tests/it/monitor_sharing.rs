//! On real clusters: what the monitor costs the servers. Idle, a node pays one full
//! probe per interval and no position feed; twenty `RoutedConnection`s to one cluster in one
//! process share one monitor, so they cost what one costs; the last one's drop stops it.
//! Statements are counted by the servers themselves (PostgreSQL: `pg_stat_database`
//! transactions; MariaDB: the `Questions` status counter), and the monitor's PostgreSQL
//! connections by their `application_name`.

use std::time::Duration;

use rstest::rstest;
use rwsplit_sea_orm::RoutedConnection;
use rwsplit_sea_orm::advanced::{MONITOR_APPLICATION, MonitorConfig};
use rwsplit_testkit::{Cluster, DbKind, Node, TestDatabase};
use sea_orm::ConnectionTrait;
use sqlx::{Connection, Row};

use crate::support::{own_cluster, until};

const INTERVAL: Duration = Duration::from_millis(200);
const WINDOW: Duration = Duration::from_secs(4);

/// A superuser connection to one node, to read its counters.
enum Counter {
    Pg(sqlx::PgConnection),
    My(sqlx::MySqlConnection),
}

impl Counter {
    async fn open(node: &Node, primary: bool) -> Counter {
        match node.db() {
            DbKind::MariaDb => {
                let url = format!("mysql://root@127.0.0.1:{}/mysql", node.port());
                Counter::My(sqlx::MySqlConnection::connect(&url).await.expect("root connects"))
            }
            _ => {
                let mut c = sqlx::PgConnection::connect(&node.url()).await.expect("connects");
                // Created on the primary, replayed by the replicas.
                if primary {
                    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                        .execute(&mut c)
                        .await
                        .expect("the testkit preloads pg_stat_statements");
                }
                Counter::Pg(c)
            }
        }
    }

    /// Statements the server has run so far; on PostgreSQL, not counting these reads.
    async fn statements(&mut self) -> i64 {
        match self {
            Counter::Pg(c) => sqlx::query(
                "SELECT coalesce(sum(calls), 0)::bigint AS n FROM pg_stat_statements \
                 WHERE query NOT LIKE '%FROM pg_stat_statements%'",
            )
            .fetch_one(&mut *c)
            .await
            .expect("pg_stat_statements")
            .get::<i64, _>("n"),
            Counter::My(c) => {
                let row = sqlx::query("SHOW GLOBAL STATUS LIKE 'Questions'")
                    .fetch_one(&mut *c)
                    .await
                    .expect("Questions");
                row.get::<String, _>(1).parse().expect("a count")
            }
        }
    }

    /// The monitor's own connections to this node (PostgreSQL only: MariaDB's sqlx
    /// connections carry no name).
    async fn monitor_connections(&mut self) -> Option<i64> {
        let Counter::Pg(c) = self else { return None };
        let n =
            sqlx::query("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1")
                .bind(MONITOR_APPLICATION)
                .fetch_one(&mut *c)
                .await
                .expect("pg_stat_activity")
                .get::<i64, _>("n");
        Some(n)
    }
}

/// Every node's counter.
async fn counters(cluster: &Cluster) -> Vec<Counter> {
    let mut all = vec![Counter::open(cluster.primary(), true).await];
    for r in cluster.replicas() {
        if r.db() == DbKind::Postgres {
            until("the replica to replay CREATE EXTENSION", || async {
                let mut c = sqlx::PgConnection::connect(&r.url()).await.unwrap();
                sqlx::query("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
                    .fetch_optional(&mut c)
                    .await
                    .is_ok_and(|row| row.is_some())
            })
            .await;
        }
        all.push(Counter::open(r, false).await);
    }
    all
}

/// Statements per second each node ran over `WINDOW`, less the two reads of the counter.
async fn rates(counters: &mut [Counter]) -> Vec<f64> {
    // PostgreSQL flushes a backend's statistics at most once a second: settle first.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let mut before = Vec::new();
    for c in counters.iter_mut() {
        before.push(c.statements().await);
    }
    tokio::time::sleep(WINDOW).await;
    let mut out = Vec::new();
    for (c, b) in counters.iter_mut().zip(before) {
        // MariaDB counts the counter's own read.
        let own = i64::from(matches!(c, Counter::My(_)));
        let ran = c.statements().await - b - own;
        out.push(ran as f64 / WINDOW.as_secs_f64());
    }
    out
}

async fn connect(tdb: &TestDatabase, config: MonitorConfig) -> RoutedConnection {
    RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replicas(tdb.replica_urls())
        .monitor(config)
        .connect()
        .await
        .expect("a routed connection")
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn twenty_idle_connections_to_one_cluster_cost_what_one_costs(#[case] kind: DbKind) {
    let cluster = own_cluster(kind, "share", 2).await;
    let tdb = cluster.create_database("share").await.unwrap();
    let mut counters = counters(&cluster).await;
    // No idle pace: the probe rate stays one per interval (the fleet benchmark measures the
    // idle pace, `cargo xtask bench fleet`).
    let config = MonitorConfig::default()
        .probe_interval(INTERVAL)
        .probe_jitter(Duration::ZERO)
        .idle_probe_interval(INTERVAL);
    // One full probe per interval per node, one statement each (MariaDB reads `SHOW SLAVE
    // STATUS` only on a connection's first probe, and after a `CHANGE MASTER` or `RESET`).
    let per_probe = 1.0;
    let probe_rate = per_probe / INTERVAL.as_secs_f64();

    let nothing = rates(&mut counters).await;
    let first = connect(&tdb, config).await;
    let one = rates(&mut counters).await;
    let mut all = vec![first];
    for _ in 0..19 {
        all.push(connect(&tdb, config).await);
    }
    let twenty = rates(&mut counters).await;
    eprintln!(
        "{kind}: statements/s per node (primary, replicas): none {nothing:.1?}, one idle connection {one:.1?}, twenty {twenty:.1?} (full probes alone: {probe_rate:.1})"
    );
    for (node, (&one, &twenty)) in one.iter().zip(&twenty).enumerate() {
        // Idle: the full probes and nothing else (the position feed is off), within what a
        // one-second statistics flush can blur over a four-second window.
        assert!(one <= probe_rate * 1.3 + 1.0, "node {node}: {one:.1}/s for one idle connection");
        assert!(one >= probe_rate * 0.5, "node {node}: {one:.1}/s, is the monitor probing?");
        // Twenty share one monitor: not twenty times the cost.
        assert!(twenty <= one * 1.3 + 1.0, "node {node}: {twenty:.1}/s for twenty vs {one:.1}/s");
    }
    for c in counters.iter_mut() {
        if let Some(n) = c.monitor_connections().await {
            assert_eq!(n, 1, "one monitor connection per node for twenty connections");
        }
    }

    // Each still routes on its own: its writes, and its session's reads of them.
    for (i, db) in all.iter().enumerate() {
        if i == 0 {
            db.execute_unprepared("CREATE TABLE t (id int)").await.unwrap();
        }
        db.execute_unprepared(&format!("INSERT INTO t VALUES ({i})")).await.unwrap();
        let backend = db.get_database_backend();
        let sql = format!("SELECT count(*) AS n FROM t WHERE id = {i}");
        let row = db.query_one_raw(sea_orm::Statement::from_string(backend, sql)).await;
        let n: i64 = row.unwrap().unwrap().try_get("", "n").unwrap();
        assert_eq!(n, 1, "connection {i} reads its own write");
    }

    // Settings that differ get a monitor of their own.
    let other = connect(&tdb, config.probe_interval(INTERVAL * 2)).await;
    for c in counters.iter_mut() {
        if let Some(n) = c.monitor_connections().await {
            assert_eq!(n, 2, "another probe interval, another monitor");
        }
    }
    drop(other);

    // The last one's drop stops the monitor and closes its connections.
    drop(all);
    let stopped = rates(&mut counters).await;
    eprintln!("{kind}: after the last drop: {stopped:.1?} statements/s per node");
    for (node, rate) in stopped.iter().enumerate() {
        assert!(*rate < 1.0, "node {node}: {rate:.1}/s with no connection left");
    }
    if kind == DbKind::Postgres {
        let nodes = std::iter::once(cluster.primary()).chain(cluster.replicas());
        for node in nodes {
            until("the monitor's connections to close", || async {
                Counter::open(node, false).await.monitor_connections().await == Some(0)
            })
            .await;
        }
    }
}

/// A PostgreSQL monitor connection prepares one probe statement. Every probe runs
/// it — a connection's first, which reads the cluster's identifier, and the later ones, which
/// read a standby's timeline from its receiver — with a parameter saying what it reads, so
/// each probe after a connection's first is one round trip. `pg_stat_statements` keeps a
/// prepared statement's runs under one entry whatever its parameter; a text of its own per read
/// would be an entry each (two on the primary, two on a streaming standby, before).
#[tokio::test]
async fn a_postgres_monitor_connection_probes_with_one_statement() {
    let cluster = own_cluster(DbKind::Postgres, "onestatement", 1).await;
    let tdb = cluster.create_database("onestatement").await.unwrap();
    let mut counters = counters(&cluster).await;
    for c in &mut counters {
        let Counter::Pg(c) = c else { unreachable!("PostgreSQL") };
        sqlx::query("SELECT pg_stat_statements_reset()").execute(&mut *c).await.unwrap();
    }
    let config = MonitorConfig::default().probe_interval(INTERVAL).idle_probe_interval(INTERVAL);
    let db = connect(&tdb, config).await;
    // Ten probe intervals, and a statistics flush (at most once a second).
    tokio::time::sleep(INTERVAL * 10 + Duration::from_millis(1_100)).await;
    for (node, c) in counters.iter_mut().enumerate() {
        let Counter::Pg(c) = c else { unreachable!("PostgreSQL") };
        // Only the probe reads the postmaster's start time.
        let probes: Vec<(String, i64)> = sqlx::query(
            "SELECT query, calls FROM pg_stat_statements \
             WHERE query LIKE '%pg_postmaster_start_time()%' \
             AND query NOT LIKE '%pg_stat_statements%'",
        )
        .fetch_all(&mut *c)
        .await
        .expect("pg_stat_statements")
        .into_iter()
        .map(|r| (r.get::<String, _>("query"), r.get::<i64, _>("calls")))
        .collect();
        assert_eq!(probes.len(), 1, "node {node}: one probe statement: {probes:#?}");
        assert!(probes[0].1 >= 5, "node {node}: probed {} times", probes[0].1);
    }
    drop(db);
}
