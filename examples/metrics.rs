//! Metrics: a `RoutedConnection` whose figures a Prometheus server can scrape at `/metrics`.
//!
//! ```sh
//! cargo run --example metrics              # a throwaway local cluster; prints a few scrapes
//! RWSPLIT_METRICS_ADDR=127.0.0.1:9898 RWSPLIT_METRICS_SERVE=1 cargo run --example metrics
//! ```
//!
//! rwsplit records through the `metrics` facade; the application installs the exporter it
//! likes — here `metrics-exporter-prometheus` — and serves its rendering. This example starts a
//! local primary and two replicas (or uses `RWSPLIT_PRIMARY_URL`/`RWSPLIT_REPLICA_URLS`), sends
//! reads and writes, stops a replica, and prints the lines of each scrape that show where
//! statements went and each replica's health. With `RWSPLIT_METRICS_SERVE=1` it keeps serving
//! `/metrics` until interrupted.

use std::time::Duration;

use anyhow::Context;
use rwsplit_sea_orm::{HealthPolicy, MonitorConfig, RoutedConnection};
use sea_orm::{ConnectionTrait, Statement};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // 1. The exporter: installed before anything records.
    // Buckets for the statement-time histogram, so Prometheus can take quantiles over
    // processes (`histogram_quantile`, as contrib/grafana/rwsplit.json does).
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(
                rwsplit_sea_orm::telemetry::OPERATION_DURATION.to_owned(),
            ),
            &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
        )?
        .install_recorder()?;
    let addr = std::env::var("RWSPLIT_METRICS_ADDR").unwrap_or_else(|_| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(move || std::future::ready(handle.render())));
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("serving http://{addr}/metrics");

    // 2. The cluster and the connection.
    let (cluster, primary, replicas) = match std::env::var("RWSPLIT_PRIMARY_URL") {
        Ok(primary) => {
            let list = std::env::var("RWSPLIT_REPLICA_URLS").unwrap_or_default();
            (None, primary, list.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect())
        }
        Err(_) => {
            let cluster = rwsplit_testkit::Cluster::builder()
                .name("metrics")
                .start()
                .await
                .context("starting a throwaway local cluster (is PostgreSQL installed?)")?;
            let (p, r) = (cluster.primary_url(), cluster.replica_urls());
            (Some(cluster), p, r)
        }
    };
    let db = RoutedConnection::builder()
        .primary(primary)
        .replicas(replicas)
        .monitor(MonitorConfig::default().interval(Duration::from_millis(250)))
        .health_policy(HealthPolicy::default().failure_threshold(2))
        .connect()
        .await?;
    let backend = db.get_database_backend();
    db.execute_unprepared("CREATE TABLE IF NOT EXISTS visits (id int)").await?;

    // 3. Traffic, a fault, and what the scrapes show.
    traffic(&db, backend).await?;
    // Gauges are sampled on the monitor's interval.
    tokio::time::sleep(Duration::from_millis(300)).await;
    show(addr, "after some reads and writes").await?;
    if let Some(cluster) = &cluster {
        cluster.replicas()[0].stop()?;
        println!("\n(stopped replica {})", cluster.replicas()[0].port());
        tokio::time::sleep(Duration::from_secs(2)).await;
        traffic(&db, backend).await?;
        show(addr, "two seconds after a replica stopped").await?;
    }
    if std::env::var_os("RWSPLIT_METRICS_SERVE").is_some() {
        println!("serving until interrupted (Ctrl-C)");
        tokio::signal::ctrl_c().await?;
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

/// Scrapes `/metrics` as Prometheus would and prints the routing and health lines.
async fn show(addr: std::net::SocketAddr, when: &str) -> anyhow::Result<()> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n").await?;
    let mut text = String::new();
    s.read_to_string(&mut text).await?;
    println!("\n== /metrics, {when}");
    for line in text.lines().filter(|l| {
        l.starts_with("db_client_operation_duration_count{")
            || l.starts_with("rwsplit_node_health{")
            || l.starts_with("rwsplit_replica_lag_seconds{")
            || l.starts_with("rwsplit_retries{")
    }) {
        println!("{line}");
    }
    Ok(())
}
