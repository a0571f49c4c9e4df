//! Metrics on a real cluster: a Prometheus exporter serves `/metrics` over HTTP
//! while a replica is killed and restarted; the scrape shows the replica's health change, the
//! statements each node served, and never a credential or SQL text.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rstest::rstest;
use rwsplit_sea_orm::RoutedConnection;
use rwsplit_sea_orm::advanced::{HealthPolicy, MonitorConfig};
use rwsplit_testkit::DbKind;
use sea_orm::ConnectionTrait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{own_cluster, until};

/// The itest process's one Prometheus recorder, served at `http://<addr>/metrics`, with the
/// statement-time buckets as the telemetry docs say to set them (so that Prometheus can
/// aggregate quantiles over processes; without them the exporter renders a summary).
pub(crate) fn exporter() -> std::net::SocketAddr {
    static ADDR: OnceLock<std::net::SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(
                    rwsplit_sea_orm::telemetry::OPERATION_DURATION.to_owned(),
                ),
                rwsplit_sea_orm::telemetry::DURATION_BUCKETS,
            )
            .expect("valid buckets")
            .install_recorder()
            .expect("the only recorder of the itest process");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("bound");
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let app = axum::Router::new().route(
                    "/metrics",
                    axum::routing::get(move || std::future::ready(handle.render())),
                );
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        addr
    })
}

/// `GET /metrics` over plain HTTP, as a Prometheus server does.
pub(crate) async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("the exporter listens");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    body
}

/// The value of the first sample of `metric` whose labels contain `labels`.
fn sample(text: &str, metric: &str, labels: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) && l.contains(labels))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn a_scrape_during_a_fault_shows_the_replica_go_down_and_come_back(#[case] kind: DbKind) {
    let addr = exporter();
    let cluster = own_cluster(kind, "metrics", 1).await;
    let tdb = cluster.create_database("metrics").await.unwrap();
    let db = RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replicas(tdb.replica_urls())
        .monitor(MonitorConfig::default().probe_interval(Duration::from_millis(200)))
        .health_policy(HealthPolicy::default().failure_threshold(1))
        .connect()
        .await
        .unwrap();
    db.execute_unprepared("CREATE TABLE t (id int)").await.unwrap();
    let replica = cluster.replicas()[0].port();
    let node = format!("server_address=\"127.0.0.1\",server_port=\"{replica}\"");
    // The node's state: the `state` label of its series that is 1.
    let health = |text: &str| {
        rwsplit_sea_orm::telemetry::NODE_STATES.into_iter().find(|state| {
            sample(text, "rwsplit_node_state", &format!("{node},state=\"{state}\"")) == Some(1.0)
        })
    };
    // Reads from another task than the write's: no read-your-writes wait, so the replica serves
    // them once it has the table.
    until("the replica to serve reads, as the scrape shows", || async {
        let db = db.clone();
        tokio::spawn(async move {
            let sql = "SELECT id FROM t";
            let _ = db
                .query_all_raw(sea_orm::Statement::from_string(db.get_database_backend(), sql))
                .await;
        })
        .await
        .unwrap();
        sample(&scrape(addr).await, "db_client_operation_duration_seconds_count", &node)
            .unwrap_or(0.0)
            > 0.0
    })
    .await;
    until("the replica's health gauge to read up", || async {
        health(&scrape(addr).await) == Some("up")
    })
    .await;
    // The replica's lag is measured once the monitor has probed both nodes.
    until("the scrape to show the replica's lag", || async {
        sample(&scrape(addr).await, "rwsplit_replica_lag_seconds", &node)
            .is_some_and(|v: f64| !v.is_nan())
    })
    .await;
    let text = scrape(addr).await;
    assert!(sample(&text, "db_client_connection_count", &node).is_some(), "{text}");
    for secret in ["password", "SELECT id", "CREATE TABLE"] {
        assert!(!text.contains(secret), "`{secret}` in the metrics:\n{text}");
    }

    let killed = Instant::now();
    cluster.replicas()[0].crash().unwrap();
    let down = until("the scrape to show the replica down", || async {
        health(&scrape(addr).await) == Some("down")
    })
    .await;
    cluster.replicas()[0].restart().await.unwrap();
    let up = until("the scrape to show the replica up again", || async {
        health(&scrape(addr).await) == Some("up")
    })
    .await;
    eprintln!(
        "{kind}: scraped health down {down:?} after the kill, up {up:?} after the restart ({:?} in all)",
        killed.elapsed()
    );
}
