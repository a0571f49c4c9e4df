//! [`PatroniSource`]: the members of a Patroni cluster from its REST API's `GET /cluster`.

use std::future::Future;
use std::time::Duration;

use serde::Deserialize;

use super::http::Endpoint;
use super::{Member, MemberRole, MemberState, MemberTags, SourceError, TopologySource};

/// Patroni's REST API port when a URL names none.
const DEFAULT_PORT: u16 = 8008;

/// The members of a Patroni cluster, from `GET /cluster` on one of its members' REST APIs.
///
/// Each call asks the endpoints in the order given and returns the first good answer; when
/// every one fails, the error names each endpoint and why ([`SourceError::AllFailed`]). Each
/// request is bounded by [`PatroniSource::timeout`] (default 2 s; while etcd is unreachable
/// Patroni holds `/cluster` for its `retry_timeout` and then closes without answering) and its
/// body by [`PatroniSource::max_body`] (default 1 MiB; a 20-member answer is about 5 KiB).
///
/// Endpoints are `http://host:port` (a path such as Patroni's own `api_url`, `…/patroni`, is
/// ignored; without a port, 8008). `https` and credentials in the URL are refused when the
/// source is built: `GET /cluster` needs no authentication, and no message this source
/// produces can then carry a password.
///
/// The document is read loosely, as Patroni versions differ: `lag` may be a number or
/// `"unknown"`, `timeline` and `tags` may be missing, a replica's state is `running` (3.0.2)
/// or `streaming` (3.0.4+). A member without `host` and `port` (no PostgreSQL address
/// registered yet) is left out.
///
/// ```no_run
/// use rwsplit_monitor::{PatroniSource, TopologySource};
/// # #[allow(dead_code)]
/// # async fn demo() -> Result<(), rwsplit_monitor::SourceError> {
/// let source = PatroniSource::new(["http://10.0.0.1:8008", "http://10.0.0.2:8008"])?;
/// for m in source.members().await? {
///     println!("{} {:?} at {} (lag {:?})", m.name, m.role, m.address(), m.lag_bytes);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PatroniSource {
    endpoints: Vec<Endpoint>,
    timeout: Duration,
    max_body: usize,
}

impl PatroniSource {
    /// A source asking `endpoints` in order; fails naming the first endpoint it cannot use.
    pub fn new<I, S>(endpoints: I) -> Result<PatroniSource, SourceError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let endpoints = endpoints
            .into_iter()
            .map(|e| Endpoint::parse(e.as_ref().trim(), DEFAULT_PORT))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(SourceError::InvalidEndpoint {
                endpoint: String::new(),
                reason: "a Patroni source needs at least one REST endpoint",
            });
        }
        Ok(PatroniSource { endpoints, timeout: Duration::from_secs(2), max_body: 1 << 20 })
    }

    /// The time one request may take, connecting included (default 2 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> PatroniSource {
        self.timeout = timeout;
        self
    }

    /// The largest body accepted, in bytes (default 1 MiB).
    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> PatroniSource {
        self.max_body = bytes;
        self
    }

    /// The endpoints, as they will be asked (`http://host:port`).
    pub fn endpoints(&self) -> Vec<String> {
        self.endpoints.iter().map(ToString::to_string).collect()
    }

    async fn ask(&self) -> Result<Vec<Member>, SourceError> {
        let mut errors = Vec::new();
        for endpoint in &self.endpoints {
            let url = format!("{endpoint}/cluster");
            let result = match endpoint.get("/cluster", self.timeout, self.max_body).await {
                Ok(body) => parse_cluster(&body, &url),
                Err(e) => Err(e),
            };
            match result {
                Ok(members) => return Ok(members),
                Err(e) => {
                    tracing::debug!(error = %e, "patroni endpoint failed, trying the next");
                    errors.push(e);
                }
            }
        }
        Err(SourceError::AllFailed { errors })
    }
}

impl TopologySource for PatroniSource {
    fn members(&self) -> impl Future<Output = Result<Vec<Member>, SourceError>> + Send {
        self.ask()
    }
}

#[derive(Deserialize)]
struct ClusterDoc {
    members: Vec<RawMember>,
}

#[derive(Deserialize)]
struct RawMember {
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    state: String,
    host: Option<String>,
    port: Option<u16>,
    #[serde(default)]
    lag: Option<serde_json::Value>,
    #[serde(default)]
    timeline: Option<serde_json::Value>,
    #[serde(default)]
    tags: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Reads a `GET /cluster` body into members, sorted by name.
pub(crate) fn parse_cluster(body: &[u8], endpoint: &str) -> Result<Vec<Member>, SourceError> {
    let doc: ClusterDoc = serde_json::from_slice(body)
        .map_err(|source| SourceError::BadJson { endpoint: endpoint.to_owned(), source })?;
    let mut members: Vec<Member> = doc
        .members
        .into_iter()
        .filter_map(|m| {
            let (Some(host), Some(port)) = (m.host, m.port) else {
                tracing::debug!(member = %m.name, "patroni member without host/port, left out");
                return None;
            };
            let tag = |k: &str| m.tags.as_ref().and_then(|t| t.get(k)).is_some_and(truthy);
            Some(Member {
                role: MemberRole::from_patroni(&m.role),
                state: MemberState::from_patroni(&m.state),
                lag_bytes: m.lag.as_ref().and_then(serde_json::Value::as_u64),
                timeline: m
                    .timeline
                    .as_ref()
                    .and_then(serde_json::Value::as_u64)
                    .and_then(|t| u32::try_from(t).ok()),
                tags: MemberTags {
                    nofailover: tag("nofailover"),
                    noloadbalance: tag("noloadbalance"),
                },
                name: m.name,
                host,
                port,
            })
        })
        .collect();
    if members.is_empty() {
        return Err(SourceError::Empty { source_name: endpoint.to_owned() });
    }
    members.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(members)
}

/// Patroni's tag values are YAML: `true`, but also `"true"`, `on`, `yes`.
fn truthy(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::String(s) => {
            matches!(s.to_ascii_lowercase().as_str(), "true" | "on" | "yes" | "1")
        }
        serde_json::Value::Number(n) => n.as_u64().is_some_and(|n| n != 0),
        _ => false,
    }
}
