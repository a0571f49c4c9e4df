//! A real Prometheus server scraping the application's `/metrics`, for tests that ask
//! PromQL what an operator would.
//!
//! Debian's `prometheus` package (`/usr/bin/prometheus`) on this machine, whatever the
//! cluster's backend: its own port, data directory and configuration, scraping each target
//! every second, with optional rule files (alerting rules are evaluated every second too).
//! Queries go through its HTTP API (`/api/v1/query`), which parses the PromQL: a malformed
//! expression is [`Error::HttpStatus`] with Prometheus's own message.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};
use crate::native::process;

/// How long one HTTP request to Prometheus may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A Prometheus process. Dropping it kills the process and deletes its directory.
///
/// ```no_run
/// # async fn demo() -> rwsplit_testkit::Result<()> {
/// use rwsplit_testkit::Prometheus;
/// let prom = Prometheus::builder().target("127.0.0.1:9898").start().await?;
/// let up = prom.query("up").await?;
/// assert_eq!(up[0].value, 1.0);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    port: u16,
    dir: PathBuf,
}

/// How to start a [`Prometheus`]: [`Prometheus::builder`].
#[derive(Debug, Clone, Default)]
pub struct PrometheusBuilder {
    targets: Vec<String>,
    rules: Vec<PathBuf>,
}

impl PrometheusBuilder {
    /// A `host:port` whose `/metrics` it scrapes every second (job `rwsplit`).
    #[must_use]
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.targets.push(target.into());
        self
    }

    /// A rule file (recording or alerting rules) it loads and evaluates every second.
    #[must_use]
    pub fn rules(mut self, file: impl Into<PathBuf>) -> Self {
        self.rules.push(file.into());
        self
    }

    /// Starts it and waits until it is ready (`/-/ready`).
    pub async fn start(self) -> Result<Prometheus> {
        let bin = binary()?;
        let port = free_port()?;
        let dir = crate::vocab::default_root().join(format!("prometheus-{port}"));
        std::fs::create_dir_all(dir.join("data"))
            .io_context(|| format!("creating {}", dir.display()))?;
        let mut rule_files = Vec::new();
        for (i, file) in self.rules.iter().enumerate() {
            // Copied in: the rule file's own directory may be anywhere.
            let copy = dir.join(format!("rules-{i}.yml"));
            std::fs::copy(file, &copy).io_context(|| format!("copying {}", file.display()))?;
            rule_files.push(copy);
        }
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, config_text(&self.targets, &rule_files))
            .io_context(|| format!("writing {}", config.display()))?;
        let log = dir.join("prometheus.log");
        let out =
            std::fs::File::create(&log).io_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().io_context(|| format!("opening {}", log.display()))?;
        let child = Command::new(&bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .io_context(|| format!("starting {}", bin.display()))?;
        let mut prom = Prometheus { child, port, dir };
        prom.wait_ready(&log).await?;
        Ok(prom)
    }
}

/// One sample of a query's answer: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels (`__name__` included when the expression keeps it).
    pub labels: BTreeMap<String, String>,
    /// Its value (NaN as Prometheus sends it).
    pub value: f64,
}

impl Prometheus {
    /// What to start.
    pub fn builder() -> PrometheusBuilder {
        PrometheusBuilder::default()
    }

    async fn wait_ready(&mut self, log: &Path) -> Result<()> {
        let started = Instant::now();
        let limit = Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.failed(log, format!("exited at start ({status})")));
            }
            let ready = crate::patroni::http::request(
                "GET",
                self.port,
                "/-/ready",
                None,
                Duration::from_secs(1),
            )
            .await;
            if ready.is_ok_and(|r| r.status == 200) {
                return Ok(());
            }
            if started.elapsed() > limit {
                return Err(self.failed(log, format!("not ready after {limit:?}")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn failed(&self, log: &Path, reason: String) -> Error {
        Error::NodeStartFailed {
            node: format!("prometheus on port {}", self.port),
            reason,
            log: log.to_path_buf(),
            log_tail: process::tail_file(log, 20),
        }
    }

    /// Where its HTTP API listens on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The instant vector `promql` evaluates to now (a scalar is one sample without labels).
    /// A malformed expression is [`Error::HttpStatus`] carrying Prometheus's parse error.
    pub async fn query(&self, promql: &str) -> Result<Vec<Sample>> {
        let path = format!("/api/v1/query?query={}", encode(promql));
        let body = self.get(&path).await?;
        parse_vector(&body).map_err(|reason| Error::Http { request: path, reason })
    }

    /// The alerts firing or pending now: (name, state) pairs.
    pub async fn alerts(&self) -> Result<Vec<(String, String)>> {
        let body = self.get("/api/v1/alerts").await?;
        let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| Error::Http {
            request: "/api/v1/alerts".into(),
            reason: format!("not JSON: {e}"),
        })?;
        let list = v["data"]["alerts"].as_array().cloned().unwrap_or_default();
        Ok(list
            .iter()
            .map(|a| {
                let name = a["labels"]["alertname"].as_str().unwrap_or("").to_owned();
                (name, a["state"].as_str().unwrap_or("").to_owned())
            })
            .collect())
    }

    /// Polls `promql` every 200 ms until `done` holds for its answer, up to `limit`; returns
    /// that answer. Prometheus's scrapes and rule evaluations are periodic: there is nothing
    /// to wait on but its answers.
    pub async fn wait_for(
        &self,
        promql: &str,
        limit: Duration,
        done: impl Fn(&[Sample]) -> bool,
    ) -> Result<Vec<Sample>> {
        let started = Instant::now();
        loop {
            let answer = self.query(promql).await?;
            if done(&answer) {
                return Ok(answer);
            }
            if started.elapsed() > limit {
                return Err(Error::Timeout {
                    what: format!("`{promql}` to answer as expected (last: {answer:?})"),
                    waited: limit,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn get(&self, path: &str) -> Result<String> {
        let r = crate::patroni::http::request("GET", self.port, path, None, HTTP_TIMEOUT).await?;
        if r.status != 200 {
            let body = r.body.chars().take(500).collect();
            return Err(Error::HttpStatus { request: path.to_owned(), status: r.status, body });
        }
        Ok(r.body)
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        process::tail_file(&self.dir.join("prometheus.log"), lines)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where Prometheus is looked for.
fn binary() -> Result<PathBuf> {
    if let Some((_, p)) = crate::vocab::env_setting("RWSPLIT_TESTKIT_PROMETHEUS_BIN") {
        return Ok(PathBuf::from(p));
    }
    let mut searched = Vec::new();
    for dir in [Path::new("/usr/bin"), Path::new("/usr/local/bin")] {
        let p = dir.join("prometheus");
        if p.is_file() {
            return Ok(p);
        }
        searched.push(dir.to_path_buf());
    }
    Err(Error::BinariesNotFound {
        db: "Prometheus",
        searched,
        hint: "apt-get install prometheus, or set RWSPLIT_TESTKIT_PROMETHEUS_BIN",
    })
}

fn config_text(targets: &[String], rules: &[PathBuf]) -> String {
    let mut s = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n",
    );
    if !rules.is_empty() {
        s.push_str("rule_files:\n");
        for r in rules {
            s.push_str(&format!("  - {}\n", r.display()));
        }
    }
    s.push_str("scrape_configs:\n  - job_name: rwsplit\n    static_configs:\n      - targets: [");
    let quoted: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    s.push_str(&quoted.join(", "));
    s.push_str("]\n");
    s
}

/// Percent-encodes `s` for a query string (everything but unreserved characters).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The samples of an instant-query answer (`resultType` `vector` or `scalar`).
fn parse_vector(body: &str) -> std::result::Result<Vec<Sample>, String> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    if v["status"] != "success" {
        return Err(format!("status {}: {}", v["status"], v["error"]));
    }
    let value = |pair: &serde_json::Value| -> f64 {
        pair.get(1)
            .and_then(serde_json::Value::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::NAN)
    };
    match v["data"]["resultType"].as_str() {
        Some("scalar") => {
            Ok(vec![Sample { labels: BTreeMap::new(), value: value(&v["data"]["result"]) }])
        }
        Some("vector") => Ok(v["data"]["result"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|r| Sample {
                labels: r["metric"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                            .collect()
                    })
                    .unwrap_or_default(),
                value: value(&r["value"]),
            })
            .collect()),
        other => Err(format!("an answer of type {other:?}, not an instant vector")),
    }
}

/// A port nothing listens on now (the system's choice).
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))
        .io_context(|| "finding a free port for Prometheus".into())?;
    l.local_addr().map(|a| a.port()).io_context(|| "finding a free port for Prometheus".into())
}

#[cfg(test)]
mod tests {
    use super::{config_text, encode, parse_vector};

    #[test]
    fn a_query_is_percent_encoded() {
        assert_eq!(encode("rate(x{a=\"b\"}[1m])"), "rate%28x%7Ba%3D%22b%22%7D%5B1m%5D%29");
    }

    #[test]
    fn an_answer_is_read_as_samples() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"up","job":"rwsplit"},"value":[1.5,"1"]},
            {"metric":{"job":"x"},"value":[1.5,"NaN"]}]}}"#;
        let s = parse_vector(body).unwrap();
        assert_eq!((s[0].labels["job"].as_str(), s[0].value), ("rwsplit", 1.0));
        assert!(s[1].value.is_nan());
        let scalar = r#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"2"]}}"#;
        assert_eq!(parse_vector(scalar).unwrap()[0].value, 2.0);
        assert!(parse_vector(r#"{"status":"error","error":"parse error"}"#).is_err());
    }

    #[test]
    fn the_config_scrapes_every_second_and_loads_the_rules() {
        let c = config_text(&["127.0.0.1:9898".into()], &["/tmp/r.yml".into()]);
        assert!(c.contains("scrape_interval: 1s") && c.contains("- /tmp/r.yml"), "{c}");
        assert!(c.contains("targets: ['127.0.0.1:9898']"), "{c}");
    }
}
