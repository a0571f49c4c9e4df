//! Metrics: a `RoutedConnection` whose figures a Prometheus server scrapes at `/metrics`, set up
//! the way the dashboard and the alerting rules in `contrib/` expect.
//!
//! ```sh
//! cargo run --example metrics              # a throwaway local cluster; prints a few scrapes
//! export $(cargo xtask cluster up)         # or any cluster: DATABASE_URL, DATABASE_REPLICA_URLS
//! RWSPLIT_EXAMPLE_METRICS_ADDR=127.0.0.1:9898 RWSPLIT_EXAMPLE_METRICS_SERVE=1 cargo run --example metrics
//! ```
//!
//! rwsplit records through the `metrics` facade; the application installs the exporter it
//! likes — here `metrics-exporter-prometheus` — and serves its rendering. The one setting that
//! matters is the statement-time histogram's buckets (`telemetry::DURATION_BUCKETS`): without
//! them the exporter renders a summary, which cannot be aggregated over processes, and the
//! dashboard's p99 panels stay empty.
//!
//! With `DATABASE_URL` set it runs on that cluster, read as `RoutedConnection::from_env()`
//! reads it, so every `DATABASE_*` and `RWSPLIT_*` setting applies; else it starts a local
//! primary and two replicas. It sends reads and writes (to a table `visits`), stops a replica
//! (only on the cluster it started), and prints the lines of each scrape that show where
//! statements went and each node's state.
//!
//! `visits` lives in a namespace of its own, created at the start and dropped at the end (also
//! when it fails, and on Ctrl-C, which ends the serving mode): on PostgreSQL the schema
//! `rwsplit_metrics` in the database the URLs name, on MariaDB the database `rwsplit_metrics`.
//! Nothing else in the database is touched; if that schema or database already exists it stops
//! with an error and leaves it alone, and if a node's sessions do not work in it (a pooler that
//! drops the `options` startup parameter) it stops before creating anything there and drops
//! it. Also read:
//! - `RWSPLIT_EXAMPLE_METRICS_ADDR`: where `/metrics` listens (default `127.0.0.1:0`; the first line
//!   printed says where);
//! - `RWSPLIT_EXAMPLE_METRICS_SERVE=1`: keep serving, with light traffic (a writer that reads its rows
//!   back, and readers), until interrupted;
//! - `RWSPLIT_EXAMPLE_METRICS_LANES`: how many tasks send that traffic (default 3);
//! - `RWSPLIT_EXAMPLE_METRICS_CLUSTER`: a `cluster` label on every series, which the dashboard's
//!   `cluster` variable selects (or set it as a target label in Prometheus' configuration);
//! - `RWSPLIT_EXAMPLE_METRICS_SCHEMA`: the name of its schema (MariaDB: database), default
//!   `rwsplit_metrics` (lowercase letters, digits and `_`): one per process when several run on
//!   one database, as a fleet does.

#[path = "own/mod.rs"]
mod own;

use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use rwsplit_sea_orm::RoutedConnection;
use rwsplit_sea_orm::telemetry::{DURATION_BUCKETS, OPERATION_DURATION};
use sea_orm::{ConnectionTrait, Statement};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // 1. The exporter, installed before anything records (before `connect()`), with buckets
    //    for the statement-time histogram so that Prometheus takes quantiles over processes
    //    (`histogram_quantile`, as contrib/grafana/rwsplit.json does).
    let mut exporter = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(OPERATION_DURATION.to_owned()), DURATION_BUCKETS)?;
    if let Ok(cluster) = std::env::var("RWSPLIT_EXAMPLE_METRICS_CLUSTER") {
        exporter = exporter.add_global_label("cluster", cluster);
    }
    let handle = exporter.install_recorder()?;
    let addr =
        std::env::var("RWSPLIT_EXAMPLE_METRICS_ADDR").unwrap_or_else(|_| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(move || std::future::ready(handle.render())));
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("serving http://{addr}/metrics");

    // 2. The cluster, and a schema of the example's own on it.
    let (cluster, config) = match own::from_env()? {
        Some(config) => (None, config),
        None => {
            let cluster = rwsplit_testkit::Cluster::builder()
                .name("metrics")
                .start()
                .await
                .context("starting a throwaway local cluster (is PostgreSQL installed?)")?;
            let mut config = own::nodes(cluster.primary_url(), cluster.replica_urls())?;
            config.monitor = config.monitor.probe_interval(Duration::from_millis(250));
            config.health = config.health.failure_threshold(2);
            (Some(cluster), config)
        }
    };
    let schema = std::env::var("RWSPLIT_EXAMPLE_METRICS_SCHEMA")
        .unwrap_or_else(|_| "rwsplit_metrics".to_owned());
    let valid = schema.starts_with(|c: char| c.is_ascii_lowercase())
        && schema.len() <= 63
        && schema.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    anyhow::ensure!(
        valid,
        "RWSPLIT_EXAMPLE_METRICS_SCHEMA is `{schema}`: a name of lowercase letters, digits and `_` \
         (at most 63, starting with a letter) is needed"
    );
    own::run(&schema, config, async |config| {
        let db = config.connect().await?;
        scrape(&db, addr, cluster.as_ref()).await
    })
    .await
}

/// 3. Traffic, a fault (on `cluster`, if the example started it), and what the scrapes show.
async fn scrape(
    db: &RoutedConnection,
    addr: std::net::SocketAddr,
    cluster: Option<&rwsplit_testkit::Cluster>,
) -> anyhow::Result<()> {
    let backend = db.get_database_backend();
    db.execute_unprepared("CREATE TABLE visits (id int)").await?;
    if std::env::var_os("RWSPLIT_EXAMPLE_METRICS_SERVE").is_some() {
        let lanes = match std::env::var("RWSPLIT_EXAMPLE_METRICS_LANES") {
            Ok(n) => n.parse().context("RWSPLIT_EXAMPLE_METRICS_LANES: a number")?,
            Err(_) => 3,
        };
        for lane in 0..lanes {
            tokio::spawn(serve_traffic(db.clone(), lane == 0));
        }
        println!("serving until interrupted (Ctrl-C), {lanes} tasks sending statements");
        tokio::signal::ctrl_c().await?;
        return Ok(());
    }
    traffic(db, backend).await?;
    // Gauges are sampled on the monitor's interval.
    tokio::time::sleep(Duration::from_millis(300)).await;
    show(addr, "after some reads and writes").await?;
    if let Some(cluster) = cluster {
        cluster.replicas()[0].stop()?;
        println!("\n(stopped replica {})", cluster.replicas()[0].port());
        tokio::time::sleep(Duration::from_secs(2)).await;
        traffic(db, backend).await?;
        show(addr, "two seconds after a replica stopped").await?;
    }
    Ok(())
}

async fn traffic(db: &RoutedConnection, backend: sea_orm::DbBackend) -> anyhow::Result<()> {
    db.execute_unprepared("INSERT INTO visits VALUES (1)").await?;
    for _ in 0..50 {
        // Reads in tasks of their own: no write of theirs to wait for.
        let db = db.clone();
        let sql = Statement::from_string(backend, "SELECT count(*) FROM visits");
        tokio::spawn(async move { db.query_one_raw(sql).await }).await??;
    }
    Ok(())
}

/// One task of the serving mode's traffic, every 20 ms: the writer inserts and reads back (a
/// read that must see its write), readers read. Failures are the metrics' to show.
async fn serve_traffic(db: RoutedConnection, writer: bool) {
    let read = Statement::from_string(db.get_database_backend(), "SELECT count(*) FROM visits");
    loop {
        if writer {
            let _ = db.execute_unprepared("INSERT INTO visits VALUES (1)").await;
        }
        let _ = db.query_one_raw(read.clone()).await;
        let _ = db.query_one_raw(read.clone()).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Scrapes `/metrics` as Prometheus would and prints the routing and health lines.
async fn show(addr: std::net::SocketAddr, when: &str) -> anyhow::Result<()> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n").await?;
    let mut text = String::new();
    s.read_to_string(&mut text).await?;
    println!("\n== /metrics, {when}");
    for line in text.lines().filter(|l| {
        l.starts_with("db_client_operation_duration_seconds_count{")
            || (l.starts_with("rwsplit_node_state{") && l.ends_with(" 1"))
            || l.starts_with("rwsplit_replica_lag_seconds{")
            || l.starts_with("rwsplit_retries_total{")
    }) {
        println!("{line}");
    }
    Ok(())
}
