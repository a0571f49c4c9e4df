//! Topology sources: where the set of nodes comes from.
//!
//! A [`TopologySource`] answers one question, "which members are there now?", with
//! [`Member`]s: a name, an address, and what the source knows of each (role, state, lag,
//! timeline, tags). Three sources:
//!
//! - [`StaticSource`]: the nodes the application was configured with; never changes.
//! - [`PatroniSource`]: `GET /cluster` on a Patroni member's REST API, falling back to the next
//!   endpoint in order; roles, lag, timeline and `nofailover`/`noloadbalance` tags as Patroni
//!   reports them.
//! - [`DnsSource`]: one `host:port` name re-resolved on each poll, each address one replica
//!   (Aurora reader endpoints, Kubernetes headless services).
//!
//! [`watch`] polls a source at its own interval and publishes each change as a [`MemberSet`]
//! (the full set, the [`MemberDiff`] from the previous one, a version and the latest error)
//! on a `tokio::sync::watch` channel; its docs state the contract consumers rely on.
//!
//! A source says what it sees; it does not decide routing. Patroni's view lags reality by up
//! to its ttl in one direction: a killed leader stays listed as `leader`/`running` until its
//! key expires, so the probes, not the source, tell a dead node from a live one.

use std::future::Future;
use std::time::Duration;

mod dns;
mod http;
mod patroni;
mod watch;

#[cfg(test)]
mod tests;

pub use dns::DnsSource;
pub(crate) use http::redact;
pub use patroni::PatroniSource;
pub use watch::{MemberDiff, MemberSet, SourceWatch, diff, watch};

/// A member's role, as its source reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MemberRole {
    /// Takes writes (Patroni `leader`, or the configured primary of a static source).
    Leader,
    /// The leader of a Patroni standby cluster: replicates from another cluster, takes no
    /// writes.
    StandbyLeader,
    /// A replica that is the leader's synchronous standby.
    SyncStandby,
    /// A replica.
    Replica,
    /// A role this version does not know, as the source spelled it.
    Other(String),
}

impl MemberRole {
    /// Patroni's spelling (`leader`, `standby_leader`, `sync_standby`, `replica`; `master`
    /// and `primary` from older versions mean leader).
    pub fn from_patroni(role: &str) -> MemberRole {
        match role {
            "leader" | "master" | "primary" => MemberRole::Leader,
            "standby_leader" => MemberRole::StandbyLeader,
            "sync_standby" => MemberRole::SyncStandby,
            "replica" => MemberRole::Replica,
            other => MemberRole::Other(other.to_owned()),
        }
    }

    /// Whether this member takes writes.
    pub fn is_leader(&self) -> bool {
        *self == MemberRole::Leader
    }
}

/// A member's state, as its source reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MemberState {
    /// Up (Patroni ≤ 3.0.3 says `running` for replicas too).
    Running,
    /// A replica streaming from its upstream (Patroni ≥ 3.0.4).
    Streaming,
    /// A replica replaying from the archive (Patroni ≥ 3.0.4).
    InArchiveRecovery,
    /// Starting up.
    Starting,
    /// Shutting down.
    Stopping,
    /// Not running.
    Stopped,
    /// Its PostgreSQL crashed.
    Crashed,
    /// A state this version does not know, as the source spelled it.
    Other(String),
}

impl MemberState {
    /// Patroni's spelling (`running`, `streaming`, `in archive recovery`, `starting`,
    /// `stopping`, `stopped`, `crashed`, …).
    pub fn from_patroni(state: &str) -> MemberState {
        match state {
            "running" => MemberState::Running,
            "streaming" => MemberState::Streaming,
            "in archive recovery" => MemberState::InArchiveRecovery,
            "starting" => MemberState::Starting,
            "stopping" => MemberState::Stopping,
            "stopped" => MemberState::Stopped,
            "crashed" => MemberState::Crashed,
            other => MemberState::Other(other.to_owned()),
        }
    }

    /// Whether the member's server is up (running, streaming or replaying the archive).
    pub fn is_up(&self) -> bool {
        matches!(
            self,
            MemberState::Running | MemberState::Streaming | MemberState::InArchiveRecovery
        )
    }
}

/// A member's tags (Patroni's `tags:`; other sources set none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct MemberTags {
    /// The HA manager never promotes this member.
    pub nofailover: bool,
    /// The member should get no reads from a load balancer.
    pub noloadbalance: bool,
}

/// One member of a topology, as a [`TopologySource`] sees it. Two members are the same
/// member when their names are equal ([`diff`] pairs them by name).
///
/// ```
/// use rwsplit_monitor::{Member, MemberRole};
/// let m = Member::new("db-2", "10.0.0.2", 5432, MemberRole::Replica).with_lag_bytes(Some(0));
/// assert_eq!(m.address(), "10.0.0.2:5432");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Member {
    /// Its name, unique within the source (Patroni's member name; `host:port` for DNS).
    pub name: String,
    /// The host the database listens on (an IP address or a name).
    pub host: String,
    /// The port the database listens on.
    pub port: u16,
    /// Its role.
    pub role: MemberRole,
    /// Its state.
    pub state: MemberState,
    /// How many bytes of WAL it is behind the leader, when the source knows (Patroni's `lag`;
    /// `None` for the leader and for `"unknown"`).
    pub lag_bytes: Option<u64>,
    /// Its timeline, when the source knows.
    pub timeline: Option<u32>,
    /// Its tags.
    pub tags: MemberTags,
}

impl Member {
    /// A running member with no lag, timeline or tags known.
    pub fn new(
        name: impl Into<String>,
        host: impl Into<String>,
        port: u16,
        role: MemberRole,
    ) -> Member {
        Member {
            name: name.into(),
            host: host.into(),
            port,
            role,
            state: MemberState::Running,
            lag_bytes: None,
            timeline: None,
            tags: MemberTags::default(),
        }
    }

    /// With `state`.
    #[must_use]
    pub fn with_state(mut self, state: MemberState) -> Member {
        self.state = state;
        self
    }

    /// With `lag_bytes`.
    #[must_use]
    pub fn with_lag_bytes(mut self, lag_bytes: Option<u64>) -> Member {
        self.lag_bytes = lag_bytes;
        self
    }

    /// With `timeline`.
    #[must_use]
    pub fn with_timeline(mut self, timeline: Option<u32>) -> Member {
        self.timeline = timeline;
        self
    }

    /// With `tags`.
    #[must_use]
    pub fn with_tags(mut self, tags: MemberTags) -> Member {
        self.tags = tags;
        self
    }

    /// `host:port` (`[v6]:port` for an IPv6 address).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Why a source could not say which members there are. Messages name the endpoint or name
/// that failed and never carry credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// An endpoint given to the source is not one it can use.
    #[error("invalid endpoint {endpoint}: {reason}")]
    InvalidEndpoint {
        /// The endpoint, with any credentials removed.
        endpoint: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Connecting to the endpoint failed.
    #[error("connecting to {endpoint} failed")]
    Connect {
        /// The URL asked.
        endpoint: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange failed after connecting (closed early, not HTTP, …).
    #[error("request to {endpoint} failed")]
    Request {
        /// The URL asked.
        endpoint: String,
        /// The HTTP client's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The endpoint answered with a status other than 200.
    #[error("{endpoint} answered HTTP {status}")]
    Status {
        /// The URL asked.
        endpoint: String,
        /// The HTTP status.
        status: u16,
    },
    /// The response body was larger than the source accepts.
    #[error("{endpoint} sent more than {limit} bytes")]
    TooLarge {
        /// The URL asked.
        endpoint: String,
        /// The limit, in bytes.
        limit: usize,
    },
    /// No complete answer within the source's timeout.
    #[error("{endpoint} did not answer within {after:?}")]
    Timeout {
        /// The URL asked (or the name resolved).
        endpoint: String,
        /// The timeout.
        after: Duration,
    },
    /// The body is not the JSON the source expects.
    #[error("{endpoint} sent a body that is not a Patroni cluster document")]
    BadJson {
        /// The URL asked.
        endpoint: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// Resolving a name failed.
    #[error("resolving {name} failed")]
    Resolve {
        /// The `host:port` resolved.
        name: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// The source answered with no members at all. [`watch`] treats this as a failure: a set
    /// that had nodes never becomes empty because of one answer.
    #[error("{source_name} reported no members")]
    Empty {
        /// The endpoint or name that answered.
        source_name: String,
    },
    /// Every endpoint failed; each one's error, in the order they were tried.
    #[error("every endpoint failed: {}", list(.errors))]
    AllFailed {
        /// One error per endpoint.
        errors: Vec<SourceError>,
    },
}

fn list(errors: &[SourceError]) -> String {
    let mut out = String::new();
    for (i, e) in errors.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(&e.to_string());
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            out.push_str(": ");
            out.push_str(&c.to_string());
            cause = c.source();
        }
    }
    out
}

impl SourceError {
    /// Whether the source gave up waiting (on every endpoint, for [`SourceError::AllFailed`]).
    pub fn is_timeout(&self) -> bool {
        match self {
            SourceError::Timeout { .. } => true,
            SourceError::AllFailed { errors } => {
                !errors.is_empty() && errors.iter().all(SourceError::is_timeout)
            }
            _ => false,
        }
    }
}

/// Where the set of nodes comes from. Implementations must be cheap to call repeatedly and
/// bound their own time (each built-in source has a timeout).
///
/// ```
/// use rwsplit_monitor::{Member, MemberRole, SourceError, TopologySource};
///
/// /// Two fixed nodes, for the example.
/// struct Pair;
///
/// impl TopologySource for Pair {
///     async fn members(&self) -> Result<Vec<Member>, SourceError> {
///         Ok(vec![
///             Member::new("a", "10.0.0.1", 5432, MemberRole::Leader),
///             Member::new("b", "10.0.0.2", 5432, MemberRole::Replica),
///         ])
///     }
/// }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert_eq!(Pair.members().await?.len(), 2);
/// # Ok::<_, SourceError>(()) }).unwrap();
/// ```
pub trait TopologySource: Send + Sync + 'static {
    /// The members there are now.
    fn members(&self) -> impl Future<Output = Result<Vec<Member>, SourceError>> + Send;
}

impl<S: TopologySource> TopologySource for std::sync::Arc<S> {
    fn members(&self) -> impl Future<Output = Result<Vec<Member>, SourceError>> + Send {
        (**self).members()
    }
}

/// The members the application was configured with; it always answers the same.
///
/// ```
/// use rwsplit_monitor::{Member, MemberRole, StaticSource, TopologySource};
/// let source = StaticSource::new(vec![Member::new("primary", "127.0.0.1", 5432, MemberRole::Leader)]);
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert_eq!(source.members().await.unwrap()[0].name, "primary");
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct StaticSource {
    members: Vec<Member>,
}

impl StaticSource {
    /// A source that always reports `members`.
    pub fn new(members: Vec<Member>) -> StaticSource {
        StaticSource { members }
    }
}

impl TopologySource for StaticSource {
    fn members(&self) -> impl Future<Output = Result<Vec<Member>, SourceError>> + Send {
        let members = self.members.clone();
        async move {
            if members.is_empty() {
                return Err(SourceError::Empty { source_name: "the static configuration".into() });
            }
            Ok(members)
        }
    }
}
