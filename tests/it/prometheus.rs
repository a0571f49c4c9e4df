//! The metrics of rwsplit, read by what reads them in production. A real Prometheus
//! (Debian's, started by the testkit) scrapes a fleet of three application processes — each the
//! documented `examples/metrics.rs`, built as the binary `rwsplit-metrics-example` — every
//! second, with the shipped alerting rules loaded, through a lag spike, a replica kill, a
//! primary kill, a promotion, the old primary's return (deposed by its older timeline) and a
//! second promotion (a split brain). Through its HTTP API:
//! every expression of the shipped dashboard returns data with its variables set to all
//! processes and to one (and through `promtool query instant`); every alert goes pending in the
//! fault meant for it, or its signal returns data; each process's whole exposition passes
//! `promtool check metrics` (but for its expected finding on OpenTelemetry's
//! `db_client_connection_count`) and the naming rules. Without a cluster: the alerting rules pass
//! `promtool check rules` and their unit tests (`promtool test rules`, which cover every
//! alert), each has a runbook entry, and the dashboard's structure holds (variables, every
//! query honouring them, a layout without overlaps).

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rwsplit_testkit::{DbKind, Prometheus, Sample};

use crate::support::own_cluster;

fn contrib(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("contrib").join(path)
}

fn root(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

const WAIT: Duration = Duration::from_secs(30);

/// Every metric rwsplit exports (the telemetry module's names).
const METRICS: &[&str] = {
    use rwsplit_sea_orm::telemetry::*;
    &[
        OPERATION_DURATION,
        ERRORS,
        RETRIES,
        HEDGES,
        PASSOVERS,
        REPLICA_REFUSALS,
        READ_YOUR_WRITES,
        POSITION_READS,
        PROMOTIONS,
        PRIMARY_CHANGES,
        NODE_STATE,
        FENCED,
        ROLE,
        IN_FLIGHT,
        LAG_BYTES,
        LAG_SECONDS,
        OBSERVATION_AGE,
        CONNECTION_COUNT,
        CONNECTION_MAX,
        CONNECTION_PENDING,
    ]
};

/// One alerting rule of `contrib/prometheus/rwsplit-alerts.yml`: its name, expression and
/// runbook URL (the file is read line by line: its shape is ours).
#[derive(Debug)]
struct Rule {
    name: String,
    expr: String,
    runbook: String,
    has_for: bool,
    severity: String,
}

fn rules() -> Vec<Rule> {
    let text = std::fs::read_to_string(contrib("prometheus/rwsplit-alerts.yml")).unwrap();
    let mut rules: Vec<Rule> = Vec::new();
    let mut in_expr = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("- alert: ") {
            rules.push(Rule {
                name: name.to_owned(),
                expr: String::new(),
                runbook: String::new(),
                has_for: false,
                severity: String::new(),
            });
            in_expr = false;
            continue;
        }
        let Some(rule) = rules.last_mut() else { continue };
        if let Some(e) = t.strip_prefix("expr: ") {
            in_expr = e == "|";
            if !in_expr {
                rule.expr = e.to_owned();
            }
        } else if in_expr && line.starts_with("          ") {
            rule.expr.push_str(t);
            rule.expr.push('\n');
        } else {
            in_expr = false;
            if t.starts_with("for: ") {
                rule.has_for = true;
            } else if let Some(s) = t.strip_prefix("severity: ") {
                rule.severity = s.to_owned();
            } else if let Some(u) = t.strip_prefix("runbook_url: ") {
                rule.runbook = u.trim_matches('"').to_owned();
            }
        }
    }
    rules
}

/// `expr` without its final comparison with a number (`… > 5`): the signal the alert watches.
fn signal(expr: &str) -> String {
    let e = expr.trim_end();
    let number = e.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    if number.len() == e.len() {
        return e.to_owned();
    }
    let op = number.trim_end();
    let before = op.trim_end_matches(['>', '<', '=', '!']);
    if before.len() == op.len() { e.to_owned() } else { before.trim_end().to_owned() }
}

/// `promtool` on the shipped rules: they load, their unit tests pass, and those tests cover
/// every alert, firing and silent; each alert has `for:`, a severity, and a runbook URL whose
/// anchor is a heading of docs/guide/operations.md.
#[test]
fn the_alerting_rules_pass_promtool_and_each_has_a_test_and_a_runbook() {
    let _ = crate::support::shared(DbKind::Postgres); // the itest guard: `cargo xtask itest`
    let dir = contrib("prometheus");
    for args in [
        &["check", "rules", "rwsplit-alerts.yml"][..],
        &["test", "rules", "rwsplit-alerts.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("promtool runs (apt-get install prometheus)");
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "promtool {args:?}:\n{printed}");
        eprintln!("promtool {}: {}", args.join(" "), printed.trim().replace('\n', " | "));
    }
    // Which alerts the unit tests expect to fire, and which they expect silent.
    let tests = std::fs::read_to_string(dir.join("rwsplit-alerts.test.yml")).unwrap();
    let (mut firing, mut silent) = (BTreeSet::new(), BTreeSet::new());
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    for (i, line) in lines.iter().enumerate() {
        if let Some(name) = line.strip_prefix("alertname: ") {
            match lines.get(i + 1) {
                Some(&"exp_alerts: []") => silent.insert(name.to_owned()),
                Some(&"exp_alerts:") => firing.insert(name.to_owned()),
                other => panic!("alertname {name} followed by {other:?}"),
            };
        }
    }
    let guide = std::fs::read_to_string(root("docs/guide/operations.md")).unwrap();
    let anchors: BTreeSet<String> = guide
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(|h| {
            h.to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect();
    let rules = rules();
    assert!(rules.len() >= 9, "{rules:#?}");
    for rule in &rules {
        assert!(firing.contains(&rule.name), "no promtool test fires {}", rule.name);
        assert!(silent.contains(&rule.name), "no promtool test keeps {} silent", rule.name);
        assert!(rule.has_for, "{} has no `for:`", rule.name);
        assert!(
            ["critical", "warning", "info"].contains(&rule.severity.as_str()),
            "{}: severity {:?}",
            rule.name,
            rule.severity
        );
        let anchor = rule.runbook.rsplit_once("operations.md#").map(|(_, a)| a.to_owned());
        assert!(
            anchor.as_ref().is_some_and(|a| anchors.contains(a)),
            "{}: runbook_url {:?} names no heading of docs/guide/operations.md ({anchors:?})",
            rule.name,
            rule.runbook
        );
    }
}

/// Grafana's variables as a test sets them.
struct Vars<'a> {
    job: &'a str,
    cluster: &'a str,
    instance: &'a str,
}

impl Vars<'_> {
    fn apply(&self, expr: &str) -> String {
        expr.replace("$__rate_interval", "30s")
            .replace("$job", self.job)
            .replace("$cluster", self.cluster)
            .replace("$instance", self.instance)
    }
}

/// Every query of the dashboard: (panel title, expression), the annotations' included.
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap().to_owned();
            queries.push((title, target["expr"].as_str().unwrap().to_owned()));
        }
    }
    for a in dashboard["annotations"]["list"].as_array().unwrap() {
        if let Some(expr) = a["expr"].as_str() {
            let name = format!("annotation {}", a["name"].as_str().unwrap());
            queries.push((name, expr.to_owned()));
        }
    }
    queries
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(contrib("grafana/rwsplit.json")).unwrap())
        .unwrap()
}

/// The dashboard's structure: the variables (data source, job, cluster, instance, each
/// selecting one, several or all), every metric selector filtered by them, every panel on the
/// variable data source, per-process series only in top-10 panels (a fleet of 50 stays
/// readable), unique ids and a layout without overlaps.
#[test]
fn the_dashboard_has_fleet_variables_and_every_query_honours_them() {
    let _ = crate::support::shared(DbKind::Postgres); // the itest guard: `cargo xtask itest`
    let d = dashboard();
    let vars = d["templating"]["list"].as_array().unwrap();
    let names: Vec<&str> = vars.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["datasource", "job", "cluster", "instance"]);
    assert_eq!(
        (vars[0]["type"].as_str(), vars[0]["query"].as_str()),
        (Some("datasource"), Some("prometheus"))
    );
    for v in &vars[1..] {
        assert_eq!(v["type"], "query", "{v}");
        assert_eq!(
            (v["includeAll"].as_bool(), v["multi"].as_bool()),
            (Some(true), Some(true)),
            "{v}"
        );
        assert_eq!(v["allValue"], ".*", "{v}: `All` must match series without the label too");
        assert!(v["definition"].as_str().unwrap().starts_with("label_values(rwsplit_node_state"));
    }
    let mut ids = BTreeSet::new();
    let mut cells: BTreeMap<(i64, i64), String> = BTreeMap::new();
    let panels = d["panels"].as_array().unwrap();
    for p in panels {
        let title = p["title"].as_str().unwrap().to_owned();
        assert!(ids.insert(p["id"].as_i64().unwrap()), "duplicate id: {title}");
        let g = &p["gridPos"];
        let [x, y, w, h] = [&g["x"], &g["y"], &g["w"], &g["h"]].map(|v| v.as_i64().unwrap());
        assert!(x >= 0 && w > 0 && x + w <= 24 && h > 0, "{title}: {g}");
        for cx in x..x + w {
            for cy in y..y + h {
                if let Some(other) = cells.insert((cx, cy), title.clone()) {
                    panic!("`{title}` overlaps `{other}`");
                }
            }
        }
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        assert!(!p["targets"].as_array().unwrap().is_empty(), "{title}");
    }
    let wanted = ["job=~\"$job\"", "cluster=~\"$cluster\"", "instance=~\"$instance\""];
    let queries = dashboard_queries(&d);
    assert!(queries.len() >= 25, "{}", queries.len());
    for (title, expr) in &queries {
        // Every metric selector carries the three variables.
        for (at, _) in expr.match_indices(['r', 'd']) {
            let before = expr[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let word: String =
                expr[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let family = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| word.strip_suffix(s).filter(|f| METRICS.contains(f)))
                .unwrap_or(word.as_str());
            if !METRICS.contains(&family) {
                continue; // a label name, a function
            }
            let after = &expr[at + word.len()..];
            let selector = after.strip_prefix('{').and_then(|s| s.split_once('}'));
            let Some((selector, _)) = selector else {
                panic!("{title}: `{word}` without a selector in `{expr}`")
            };
            for w in wanted {
                assert!(selector.contains(w), "{title}: `{word}{{{selector}}}` lacks {w}");
            }
        }
        // Series per process only among the top 10, or aggregated away.
        let per_process = expr.contains("by (instance") || expr.contains(", instance)");
        let bounded = ["topk(10,", "count(", "max(", "sum("].iter().any(|p| expr.starts_with(p));
        assert!(!per_process || bounded, "{title}: a series per process, unbounded: `{expr}`");
    }
}

/// One application process: `examples/metrics.rs` serving `/metrics` with light traffic.
struct App {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl App {
    fn start(n: usize, env: &[(&str, String)]) -> App {
        let log = std::env::temp_dir()
            .join(format!("rwsplit-metrics-app-{}-{n}.log", std::process::id()));
        let err = std::fs::File::create(&log).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_rwsplit-metrics-example"))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RWSPLIT_EXAMPLE_METRICS_ADDR", "127.0.0.1:0")
            .env("RWSPLIT_EXAMPLE_METRICS_SERVE", "1")
            // Each process works in a schema of its own (the example drops it when it ends).
            .env("RWSPLIT_EXAMPLE_METRICS_SCHEMA", format!("rwsplit_metrics_{n}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .expect("the example binary runs");
        let mut first = String::new();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut first).unwrap();
        // Drained, so that it never writes to a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let addr = first
            .trim()
            .strip_prefix("serving http://")
            .and_then(|s| s.strip_suffix("/metrics"))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "app {n} said {first:?}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        App { child, addr, log }
    }

    fn instance(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The naming rules of Prometheus' guide on an exposition's families (`# TYPE` lines), as
/// crates/sea-orm/src/observe/telemetry.rs checks them on its own rendering: what breaks them.
fn naming_problems(exposition: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
        let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
        let mut bad = |why: &str| problems.push(format!("{name} ({kind}): {why}"));
        if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            bad("not snake_case");
        }
        if !name.starts_with("rwsplit_") && !name.starts_with("db_client_") {
            bad("neither rwsplit_ nor OpenTelemetry's db_client_");
        }
        if (kind == "counter") != name.ends_with("_total") {
            bad("`_total` is for counters, and every counter ends with it");
        }
        if kind == "summary" {
            bad("a summary (no buckets set)");
        }
        if kind == "histogram" && !(name.ends_with("_seconds") || name.ends_with("_bytes")) {
            bad("a histogram without its base unit");
        }
        // OpenTelemetry's `db.client.connection.count`, as its exporters write it: the one name
        // allowed the reserved suffix (telemetry's module docs).
        let otel = name == rwsplit_sea_orm::telemetry::CONNECTION_COUNT;
        if kind != "histogram"
            && !otel
            && ["_count", "_sum", "_bucket"].iter().any(|s| name.ends_with(s))
        {
            bad("a suffix reserved for histograms and summaries");
        }
        let unit = name.trim_end_matches("_total");
        if ["duration", "age", "lag", "latency", "time"]
            .iter()
            .any(|w| unit.split('_').any(|part| part == *w))
            && !(unit.ends_with("_seconds") || unit.ends_with("_bytes"))
        {
            bad("a time or size without its base unit");
        }
        if !exposition.contains(&format!("# HELP {name} ")) {
            bad("no HELP text");
        }
    }
    problems
}

/// A sample's labels that say which series it is, and its value, in a line.
fn show(samples: &[Sample]) -> String {
    let mut parts: Vec<String> = samples
        .iter()
        .map(|s| {
            let labels: Vec<&str> = s
                .labels
                .iter()
                .filter(|(k, _)| k.as_str() != "__name__" && k.as_str() != "job")
                .map(|(_, v)| v.as_str())
                .collect();
            format!("{}={:.3}", labels.join("/"), s.value)
        })
        .collect();
    parts.sort();
    if parts.len() > 8 {
        let more = parts.len() - 8;
        parts.truncate(8);
        parts.push(format!("… {more} more"));
    }
    format!("{} series [{}]", samples.len(), parts.join(", "))
}

/// Waits until alert `name` is pending or firing; returns its state.
async fn alert_goes_pending(prom: &Prometheus, name: &str, limit: Duration) -> String {
    let started = Instant::now();
    loop {
        let alerts = prom.alerts().await.unwrap();
        if let Some((_, state)) = alerts.iter().find(|(n, _)| n == name) {
            return state.clone();
        }
        assert!(started.elapsed() < limit, "{name} never went pending; alerts: {alerts:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_three_processes_through_faults_and_every_panel_and_alert_answers() {
    let cluster = own_cluster(DbKind::Postgres, "prometheus", 2).await;
    let tdb = cluster.create_database("prom").await.unwrap();
    // Each process creates its table in a schema of its own (`RWSPLIT_EXAMPLE_METRICS_SCHEMA`).
    cluster.wait_caught_up(0, Duration::from_secs(20)).await.unwrap();
    let env = |extra: &[(&'static str, &str)]| {
        let mut env = vec![
            ("DATABASE_URL", tdb.primary_url()),
            ("DATABASE_REPLICA_URLS", tdb.replica_urls().join(",")),
            ("RWSPLIT_PROBE_INTERVAL", "250ms".to_owned()),
            ("RWSPLIT_FAILURE_THRESHOLD", "2".to_owned()),
            ("RWSPLIT_EXAMPLE_METRICS_CLUSTER", "itest".to_owned()),
        ];
        env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        env
    };
    // The third process has one connection per pool for 48 tasks: back-pressure.
    let mut apps = [
        App::start(1, &env(&[])),
        App::start(2, &env(&[])),
        App::start(
            3,
            &env(&[("DATABASE_MAX_CONNECTIONS", "1"), ("RWSPLIT_EXAMPLE_METRICS_LANES", "48")]),
        ),
    ];
    let mut prom = Prometheus::builder();
    for app in &apps {
        prom = prom.target(app.instance());
    }
    let prom = prom
        .rules(contrib("prometheus/rwsplit-alerts.yml"))
        .start()
        .await
        .expect("Prometheus starts (apt-get install prometheus)");
    let [p0, p1, p2] = [0, 1, 2].map(|i| cluster.nodes()[i].port().to_string());
    let mut answers = Vec::new();
    let mut pending = BTreeMap::new();

    // The fleet: three processes scraped.
    let q = "count(count by (instance) (rwsplit_node_state{job=\"rwsplit\"}))";
    let a = match prom.wait_for(q, WAIT, |s| s.first().is_some_and(|x| x.value == 3.0)).await {
        Ok(a) => a,
        Err(e) => {
            let up = prom.query("up").await;
            let mut logs = String::new();
            for app in &mut apps {
                let status = app.child.try_wait();
                let log = std::fs::read_to_string(&app.log).unwrap_or_default();
                logs.push_str(&format!("\n{} ({status:?}):\n{log}", app.instance()));
            }
            panic!("{e}\nup: {up:?}\nprometheus: {}{logs}", prom.log_tail(20));
        }
    };
    answers.push(format!("processes scraped: {}", show(&a)));
    // Reads per second per node over the fleet: both replicas serve.
    let q = "sum by (server_port) (rate(db_client_operation_duration_seconds_count{rwsplit_access=\"read\"}[10s]))";
    let a = prom
        .wait_for(q, WAIT, |s| {
            s.iter().filter(|x| x.labels["server_port"] != p0 && x.value > 0.0).count() == 2
        })
        .await
        .unwrap();
    answers.push(format!("reads/s per node: {}", show(&a)));
    // p99 per node from the buckets the documented setup sets.
    let q = "histogram_quantile(0.99, sum by (server_port, le) (rate(db_client_operation_duration_seconds_bucket[30s])))";
    let a = prom
        .wait_for(q, WAIT, |s| {
            s.len() == 3 && s.iter().all(|x| x.value.is_finite() && x.value > 0.0)
        })
        .await
        .unwrap();
    answers.push(format!("p99 seconds per node: {}", show(&a)));

    // Each process's whole exposition: promtool's linter and the naming rules.
    let mut names = BTreeSet::new();
    let mut labels = BTreeSet::new();
    for app in &apps {
        let body = crate::metrics::scrape(app.addr).await;
        let text = body.split_once("\r\n\r\n").map_or(body.as_str(), |(_, b)| b).to_owned();
        assert_eq!(naming_problems(&text), Vec::<String>::new(), "{}:\n{text}", app.instance());
        let mut lint = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool runs");
        std::io::Write::write_all(&mut lint.stdin.take().unwrap(), text.as_bytes()).unwrap();
        let out = lint.wait_with_output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Its one expected finding: OpenTelemetry's `db_client_connection_count` ends with
        // `_count` (telemetry's module docs); exit status 3 is "lint problems found".
        let expected = "db_client_connection_count non-histogram and non-summary metrics should not have \"_count\" suffix";
        let findings: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(
            findings == [expected] && matches!(out.status.code(), Some(0 | 3)),
            "promtool check metrics ({:?}): {said}\n{text}",
            out.status
        );
        names.extend(text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).map(str::to_owned));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((_, rest)) = line.split_once('{') else { continue };
            for pair in rest.split("\",") {
                if let Some((label, _)) = pair.split_once('=') {
                    labels.insert(label.trim_start_matches(',').to_owned());
                }
            }
        }
    }
    answers.push(format!(
        "exposition ({} families, promtool check metrics clean but for db_client_connection_count): {names:?}",
        names.len()
    ));
    // Every metric and label the dashboard and the rules name is in the exposition.
    let exported: BTreeSet<&str> = names.iter().filter_map(|n| n.split(' ').next()).collect();
    let dashboard = dashboard();
    let queries = dashboard_queries(&dashboard);
    let rules = rules();
    for expr in queries.iter().map(|(_, e)| e).chain(rules.iter().map(|r| &r.expr)) {
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("rwsplit_") || word.starts_with("db_client_") {
                let family = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|s| word.strip_suffix(s).filter(|f| exported.contains(f)))
                    .unwrap_or(word);
                assert!(
                    exported.contains(family) || labels.contains(word),
                    "`{word}` is neither a metric nor a label of the exposition: {exported:?} {labels:?}"
                );
            }
        }
    }

    // Back-pressure in the third process (48 tasks, one connection per pool).
    let q = "sum by (instance, server_port) (db_client_connection_pending_requests)";
    let a = prom.wait_for(q, WAIT, |s| s.iter().any(|x| x.value > 1.0)).await.unwrap();
    answers.push(format!("statements waiting for a connection: {}", show(&a)));
    pending.insert(
        "RwsplitBackpressure",
        alert_goes_pending(&prom, "RwsplitBackpressure", WAIT * 2).await,
    );

    // A lag spike: replica 2 stops replaying while the writes go on.
    cluster.replicas()[1].pause_replay().await.unwrap();
    let q = format!("max by (server_port) (rwsplit_replica_lag_seconds{{server_port=\"{p2}\"}})");
    let a = prom.wait_for(&q, WAIT, |s| s.first().is_some_and(|x| x.value > 5.0)).await.unwrap();
    answers.push(format!("lag seconds during the spike: {}", show(&a)));
    pending.insert(
        "RwsplitReplicaLagHigh",
        alert_goes_pending(&prom, "RwsplitReplicaLagHigh", WAIT).await,
    );
    let q = "sum by (outcome) (rate(rwsplit_read_your_writes_total[30s]))";
    let a = prom.wait_for(q, WAIT, |s| s.len() == 3).await.unwrap();
    answers.push(format!("read-your-writes reads/s by outcome: {}", show(&a)));
    // The example's writes read the primary's position for their sessions' reads.
    let q = "sum by (purpose) (increase(rwsplit_position_reads_total{purpose=\"write\"}[1m]))";
    let a = prom.wait_for(q, WAIT, |s| s.first().is_some_and(|x| x.value > 0.0)).await.unwrap();
    answers.push(format!("position reads after writes in the last minute: {}", show(&a)));
    cluster.replicas()[1].resume_replay().await.unwrap();
    let q = format!("max by (server_port) (rwsplit_replica_lag_bytes{{server_port=\"{p2}\"}})");
    prom.wait_for(&q, WAIT, |s| s.first().is_some_and(|x| x.value == 0.0)).await.unwrap();

    // Replica 1 is killed: every process sees it down; the alerts on it.
    let killed = Instant::now();
    cluster.replicas()[0].crash().unwrap();
    let q =
        format!("sum by (server_port) (rwsplit_node_state{{state=\"down\",server_port=\"{p1}\"}})");
    let a = prom.wait_for(&q, WAIT, |s| s.first().is_some_and(|x| x.value == 3.0)).await.unwrap();
    answers.push(format!("processes that see replica 1 down: {}", show(&a)));
    pending
        .insert("RwsplitReplicaDown", alert_goes_pending(&prom, "RwsplitReplicaDown", WAIT).await);

    // Every dashboard query, with the variables at all processes and at one.
    let one = apps[1].instance();
    let settings = [
        ("all", Vars { job: ".*", cluster: ".*", instance: ".*" }),
        ("one", Vars { job: "rwsplit", cluster: "itest", instance: &one }),
    ];
    let server = format!("http://127.0.0.1:{}", prom.port());
    let mut panels = Vec::new();
    for (title, expr) in queries.iter().filter(|(t, _)| !t.starts_with("annotation ")) {
        for (which, vars) in &settings {
            let q = vars.apply(expr);
            let data = prom
                .wait_for(&q, WAIT, |s| !s.is_empty())
                .await
                .unwrap_or_else(|e| panic!("panel `{title}` ({which}): {e}"));
            panels.push(format!("{title} [{which}]: {}", show(&data)));
            if *which == "all" {
                // And through `promtool`, as an operator checks an expression.
                let out = Command::new("promtool")
                    .args(["query", "instant", &server, &q])
                    .output()
                    .expect("promtool runs");
                let printed = String::from_utf8_lossy(&out.stdout);
                assert!(
                    out.status.success() && !printed.trim().is_empty(),
                    "promtool query instant `{q}` (panel `{title}`): {printed}{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    // The variables' own queries (Grafana's `label_values(m, l)` is `count by (l) (m)`), and one
    // process selected is one process.
    for (var, q, want) in [
        ("job", "count by (job) (rwsplit_node_state)", 1),
        ("cluster", "count by (cluster) (rwsplit_node_state{job=~\"rwsplit\"})", 1),
        (
            "instance",
            "count by (instance) (rwsplit_node_state{job=~\"rwsplit\",cluster=~\"itest\"})",
            3,
        ),
    ] {
        let a = prom.query(q).await.unwrap();
        assert_eq!(a.len(), want, "variable {var}: {a:?}");
        panels.push(format!("variable {var}: {}", show(&a)));
    }
    let count = "count(count by (job, instance) (rwsplit_node_state{job=~\"$job\",cluster=~\"$cluster\",instance=~\"$instance\"}))";
    for (which, vars, want) in [("all", &settings[0].1, 3.0), ("one", &settings[1].1, 1.0)] {
        let a = prom.query(&vars.apply(count)).await.unwrap();
        assert_eq!(a.first().map(|s| s.value), Some(want), "processes reporting, {which}");
    }

    // Stale probes: no answer from replica 1 for 30 s.
    pending.insert(
        "RwsplitProbesStale",
        alert_goes_pending(&prom, "RwsplitProbesStale", WAIT * 2).await,
    );
    answers.push(format!("probes stale after {:.0?} dead", killed.elapsed()));
    // Each rule's signal (its expression without the final threshold) during the fault.
    let mut signals = BTreeMap::new();
    for rule in &rules {
        let s = signal(&rule.expr);
        let data = prom.query(&s).await.unwrap_or_else(|e| panic!("{}: `{s}`: {e}", rule.name));
        signals.insert(rule.name.clone(), show(&data));
    }

    // The primary is killed: no process has a primary.
    cluster.primary().crash().unwrap();
    pending.insert("RwsplitNoPrimary", alert_goes_pending(&prom, "RwsplitNoPrimary", WAIT).await);
    // Replica 2 is promoted: the monitors follow it.
    cluster.replicas()[1].promote().await.unwrap();
    let a = prom
        .wait_for("sum by (job) (rwsplit_primary_changes_total)", WAIT, |s| {
            s.first().is_some_and(|x| x.value >= 1.0)
        })
        .await
        .unwrap();
    answers.push(format!("promotions followed: {}", show(&a)));
    // The dashboard's annotation marks a promotion followed.
    for (title, expr) in queries.iter().filter(|(t, _)| t.starts_with("annotation ")) {
        for (which, vars) in &settings {
            let data = prom
                .wait_for(&vars.apply(expr), WAIT, |s| !s.is_empty())
                .await
                .unwrap_or_else(|e| panic!("{title} ({which}): {e}"));
            panels.push(format!("{title} [{which}]: {}", show(&data)));
        }
    }
    // The old primary comes back, still a primary, on the older timeline: deposed in every
    // process. Replica 1, restarted and promoted too, is a second primary on the newest
    // timeline: split brain.
    cluster.primary().restart().await.unwrap();
    cluster.replicas()[0].restart().await.unwrap();
    cluster.replicas()[0].promote().await.unwrap();
    pending.insert("RwsplitSplitBrain", alert_goes_pending(&prom, "RwsplitSplitBrain", WAIT).await);

    let mut alerts = Vec::new();
    for rule in &rules {
        let seen = pending.get(rule.name.as_str());
        let signal = &signals[&rule.name];
        assert!(
            seen.is_some() || !signal.starts_with("0 series"),
            "{}: neither pending in its fault nor a signal with data ({signal})",
            rule.name
        );
        alerts.push(format!(
            "{}: {}; signal during the replica kill: {signal}",
            rule.name,
            seen.map_or("not triggered by these faults".to_owned(), |s| format!("went {s}"))
        ));
    }
    eprintln!(
        "PROMQL-ANSWERS\n{}\nDASHBOARD ({} queries)\n{}\nALERTS\n{}",
        answers.join("\n"),
        queries.len(),
        panels.join("\n"),
        alerts.join("\n")
    );
    assert!(panels.len() >= 2 * queries.len());
}
