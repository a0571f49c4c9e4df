//! [`DnsSource`]: one name, re-resolved on each poll, each address one replica.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use super::{Member, MemberRole, SourceError, TopologySource};

/// Replicas published as the addresses of one DNS name (Aurora reader endpoints, Kubernetes
/// headless services): each call resolves `host:port` again with the system resolver
/// (`tokio::net::lookup_host`), and each distinct address is one [`Member`] named by its
/// address (`10.0.0.7:5432`, `[::1]:5432`), role replica, state running, sorted by name.
///
/// Resolution is bounded by [`DnsSource::timeout`] (default 2 s). A name that resolves to no
/// address is [`SourceError::Empty`]; one that fails, [`SourceError::Resolve`] naming it.
///
/// ```no_run
/// use rwsplit_monitor::{DnsSource, TopologySource};
/// # #[allow(dead_code)]
/// # async fn demo() -> Result<(), rwsplit_monitor::SourceError> {
/// let replicas = DnsSource::new("db-replicas.internal:5432").members().await?;
/// println!("{} replicas", replicas.len());
/// # Ok(()) }
/// ```
///
/// Its `Debug` output and errors show the name with any credentials redacted (a URL pasted
/// here by mistake may hold a password).
#[derive(Clone)]
pub struct DnsSource {
    name: String,
    /// `name` as errors and `Debug` show it.
    shown: String,
    timeout: Duration,
}

impl std::fmt::Debug for DnsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsSource")
            .field("name", &self.shown)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl DnsSource {
    /// A source resolving `host_port` (e.g. `replicas.db.svc:5432`).
    pub fn new(host_port: impl Into<String>) -> DnsSource {
        let name = host_port.into();
        DnsSource { shown: super::redact(&name), name, timeout: Duration::from_secs(2) }
    }

    /// The time one resolution may take (default 2 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> DnsSource {
        self.timeout = timeout;
        self
    }

    async fn resolve(&self) -> Result<Vec<Member>, SourceError> {
        let lookup = tokio::net::lookup_host(self.name.as_str());
        let addrs = match tokio::time::timeout(self.timeout, lookup).await {
            Ok(Ok(addrs)) => addrs,
            Ok(Err(source)) => {
                return Err(SourceError::Resolve { name: self.shown.clone(), source });
            }
            Err(_) => {
                return Err(SourceError::Timeout {
                    endpoint: self.shown.clone(),
                    after: self.timeout,
                });
            }
        };
        let mut members: Vec<Member> = addrs.map(member).collect();
        members.sort_by(|a, b| a.name.cmp(&b.name));
        members.dedup_by(|a, b| a.name == b.name);
        if members.is_empty() {
            return Err(SourceError::Empty { source_name: self.shown.clone() });
        }
        Ok(members)
    }
}

fn member(addr: SocketAddr) -> Member {
    Member::new(addr.to_string(), addr.ip().to_string(), addr.port(), MemberRole::Replica)
}

impl TopologySource for DnsSource {
    fn members(&self) -> impl Future<Output = Result<Vec<Member>, SourceError>> + Send {
        self.resolve()
    }
}
