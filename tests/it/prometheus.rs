//! Issue 27: rwsplit's metrics read by what reads them in production. A real Prometheus
//! (Debian's, started by the testkit) scrapes the application's `/metrics` every second while a
//! replica falls behind and then is killed; PromQL, through Prometheus's HTTP API, answers what
//! an operator asks. Every expression of the shipped Grafana dashboard parses and returns data
//! from that Prometheus (asked through its HTTP API and through `promtool query instant`), the
//! shipped alerting rules pass `promtool check rules` and their unit
//! tests (`promtool test rules`), and the replica-down alert goes pending on the live one.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rwsplit_sea_orm::{HealthPolicy, MonitorConfig, RoutedConnection};
use rwsplit_testkit::{DbKind, Prometheus, Sample};
use sea_orm::{ConnectionTrait, Statement};

use crate::support::own_cluster;

fn contrib(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("contrib").join(path)
}

const WAIT: Duration = Duration::from_secs(30);

/// `promtool` on the shipped rules: they load, and their unit tests pass.
#[test]
fn the_alerting_rules_pass_promtool() {
    let _ = crate::support::shared(DbKind::Postgres); // the itest guard: `cargo xtask itest`
    let dir = contrib("prometheus");
    for args in [
        &["check", "rules", "rwsplit-alerts.yml"][..],
        &["test", "rules", "rwsplit-alerts.test.yml"],
    ] {
        let out = std::process::Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("promtool runs (apt-get install prometheus)");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn by_port(samples: &[Sample]) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = samples
        .iter()
        .map(|s| (s.labels.get("server_port").cloned().unwrap_or_default(), s.value))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_answers_an_operators_questions_through_a_lag_spike_and_a_replica_kill() {
    let exporter = crate::metrics::exporter();
    let cluster = own_cluster(DbKind::Postgres, "prometheus", 2).await;
    let tdb = cluster.create_database("prom").await.unwrap();
    cluster
        .primary()
        .execute(
            tdb.name(),
            "CREATE TABLE t (id serial PRIMARY KEY, v int); \
             CREATE FUNCTION bump() RETURNS int LANGUAGE sql \
             AS 'INSERT INTO t (v) VALUES (0) RETURNING 1'",
        )
        .await
        .unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(20)).await.unwrap();
    let prom = Prometheus::builder()
        .target(exporter.to_string())
        .rules(contrib("prometheus/rwsplit-alerts.yml"))
        .start()
        .await
        .expect("Prometheus starts (apt-get install prometheus)");
    let db = RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replicas(tdb.replica_urls())
        .monitor(MonitorConfig::default().interval(Duration::from_millis(250)))
        .health_policy(HealthPolicy::default().failure_threshold(2))
        .connect()
        .await
        .unwrap();
    let [p0, p1, p2] = [0, 1, 2].map(|i| cluster.nodes()[i].port().to_string());
    let ours = format!("server_port=~\"{p0}|{p1}|{p2}\"");
    // Traffic: a write and two reads every 20 ms (each task its own read-your-writes scope),
    // and reads that need no write, until the end.
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for lane in 0..3 {
        let (db, stop) = (db.clone(), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let backend = db.get_database_backend();
            while !stop.load(Ordering::Relaxed) {
                if lane == 0 {
                    db.execute_unprepared("INSERT INTO t (v) VALUES (1)").await.ok();
                }
                let read = Statement::from_string(backend, "SELECT count(*) AS c FROM t");
                db.query_one_raw(read.clone()).await.ok();
                db.query_one_raw(read).await.ok();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    // A read that writes (refused by a replica, run on the primary): the refusal series.
    let backend = db.get_database_backend();
    db.query_one_raw(Statement::from_string(backend, "SELECT bump() AS b")).await.unwrap();
    let mut answers = Vec::new();

    // Reads per second per node: both replicas serve.
    let q = format!(
        "sum by (server_port) (rate(db_client_operation_duration_count{{rwsplit_access=\"read\",{ours}}}[10s]))"
    );
    let a = prom
        .wait_for(&q, WAIT, |s| {
            s.iter().filter(|x| x.labels["server_port"] != p0 && x.value > 0.0).count() == 2
        })
        .await
        .unwrap();
    answers.push(format!("reads/s per node: {:?}", by_port(&a)));

    // A lag spike: replica 2 stops replaying while the writes go on.
    cluster.replicas()[1].pause_replay().await.unwrap();
    let q = format!("max by (server_port) (rwsplit_replica_lag_seconds{{server_port=\"{p2}\"}})");
    let a = prom.wait_for(&q, WAIT, |s| s.first().is_some_and(|x| x.value > 1.0)).await.unwrap();
    answers.push(format!("lag seconds during the spike: {:?}", by_port(&a)));
    let q = format!("max by (server_port) (rwsplit_replica_lag_bytes{{server_port=\"{p2}\"}})");
    let a = prom.wait_for(&q, WAIT, |s| s.first().is_some_and(|x| x.value > 0.0)).await.unwrap();
    answers.push(format!("lag bytes during the spike: {:?}", by_port(&a)));
    // Read-your-writes outcomes during the spike: where the reads that had to see a write
    // went. The writer reads its row back at once, before any replica can have it: those reads
    // fall back to the primary (what `RwsplitReadYourWritesOnPrimary` watches).
    let q = "sum by (outcome) (rate(rwsplit_read_your_writes[30s]))";
    let a = prom
        .wait_for(q, WAIT, |s| s.iter().any(|x| x.labels["outcome"] == "primary" && x.value > 0.0))
        .await
        .unwrap();
    let mut ryw: Vec<(String, f64)> =
        a.iter().map(|s| (s.labels.get("outcome").cloned().unwrap_or_default(), s.value)).collect();
    ryw.sort_by(|a, b| a.0.cmp(&b.0));
    answers.push(format!("read-your-writes reads/s by outcome: {ryw:?}"));
    cluster.replicas()[1].resume_replay().await.unwrap();
    let q = format!("max by (server_port) (rwsplit_replica_lag_bytes{{server_port=\"{p2}\"}})");
    prom.wait_for(&q, WAIT, |s| s.first().is_some_and(|x| x.value == 0.0)).await.unwrap();

    // p99 statement time per node, from the histogram's buckets.
    let q = format!(
        "histogram_quantile(0.99, sum by (server_port, le) (rate(db_client_operation_duration_bucket{{{ours}}}[30s])))"
    );
    let a = prom
        .wait_for(&q, WAIT, |s| {
            s.len() == 3 && s.iter().all(|x| x.value.is_finite() && x.value > 0.0)
        })
        .await
        .unwrap();
    answers.push(format!("p99 seconds per node: {:?}", by_port(&a)));

    // A replica is killed: which node is down, and the alert on it.
    cluster.replicas()[0].crash().unwrap();
    let q = format!("max by (server_port) (rwsplit_node_health{{{ours}}}) == 2");
    let a = prom.wait_for(&q, WAIT, |s| by_port(s) == [(p1.clone(), 2.0)]).await.unwrap();
    answers.push(format!("down: {:?}", by_port(&a)));
    let mut alert = Vec::new();
    for _ in 0..50 {
        alert = prom.alerts().await.unwrap();
        if alert.iter().any(|(n, s)| n == "RwsplitReplicaDown" && (s == "pending" || s == "firing"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        alert.iter().any(|(n, s)| n == "RwsplitReplicaDown" && (s == "pending" || s == "firing")),
        "the replica-down alert is pending: {alert:?}"
    );
    answers.push(format!("alerts: {alert:?}"));
    // Reads go on, on the other replica.
    let q = format!(
        "sum by (server_port) (rate(db_client_operation_duration_count{{rwsplit_access=\"read\",server_port=\"{p2}\"}}[5s]))"
    );
    prom.wait_for(&q, WAIT, |s| s.first().is_some_and(|x| x.value > 0.0)).await.unwrap();

    // Every expression of the dashboard parses and returns data (Grafana's `$__rate_interval`
    // is Grafana's: 30 s here).
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(contrib("grafana/rwsplit.json")).unwrap())
            .unwrap();
    let mut panels = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap().replace("$__rate_interval", "30s");
            let title = panel["title"].as_str().unwrap();
            let data = prom
                .wait_for(&expr, WAIT, |s| !s.is_empty())
                .await
                .unwrap_or_else(|e| panic!("panel `{title}`: {e}"));
            // And through `promtool`, as an operator checks an expression.
            let server = format!("http://127.0.0.1:{}", prom.port());
            let out = std::process::Command::new("promtool")
                .args(["query", "instant", &server, &expr])
                .output()
                .expect("promtool runs");
            let printed = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && !printed.trim().is_empty(),
                "promtool query instant `{expr}` (panel `{title}`): {printed}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            panels.push(format!("{title}: {} series", data.len()));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    eprintln!("PROMQL-ANSWERS\n{}\nDASHBOARD\n{}", answers.join("\n"), panels.join("\n"));
    assert_eq!(panels.len(), 16);
}
