//! A password in a URL or address given to any public method that takes one never comes back:
//! not in the error's `Display`, `Debug` or `source()` chain, not in the `Debug` of what was
//! built, not in a log line written during the call.

use std::error::Error as StdError;
use std::fmt::Debug;
use std::time::Duration;

use rstest::rstest;
use sea_orm::{DbBackend, MockDatabase};

use crate::advanced::{DnsSource, PatroniSource, TopologySource};
use crate::tests_hardening::capture;
use crate::{Replica, RoutedConfig, RoutedConnection, RoutedConnectionBuilder};

const SECRET: &str = "s3cr3tPW";
const PG: &str = "postgres://u:s3cr3tPW@h:5432/db";
const MY: &str = "mysql://u:s3cr3tPW@h:3306/db";

/// Every public method that takes an address or URL, called with `url` (a URL holding
/// [`SECRET`]) where it takes one.
#[derive(Debug, Clone, Copy)]
enum Method {
    /// `builder().primary(url)`, connected (the host does not resolve).
    Primary,
    /// `builder().replica(url)`, the replica the same node as the primary.
    ReplicaDuplicate,
    /// `builder().replica(url)` of another product than the primary's.
    ReplicaOtherProduct,
    /// `builder().replicas([url])` with a port that is not one.
    ReplicasBadPort,
    /// `Replica::replication_address(url)`.
    ReplicaReplicationAddress,
    /// `builder().primary_replication_address(url)`.
    PrimaryReplicationAddress,
    /// `RoutedConfig::new(url).replica(url)`, validated and turned into a builder.
    ConfigReplicaDuplicate,
    /// A TOML configuration with the URL as a replication address and as a DNS name.
    ConfigToml,
    /// `RoutedConfig::from_vars` (the environment).
    FromVars,
    /// `PatroniSource::new([url])`, and an `http://` endpoint with the password.
    Patroni,
    /// `DnsSource::new(url)`, asked for its members.
    Dns,
    /// `RoutedConnection::session_from(url)`.
    SessionFrom,
    /// `RoutedConnection::fence(url)` (a node name that is a URL).
    Fence,
}

/// What a call showed: texts to search for the secret.
#[derive(Default)]
struct Shown(Vec<String>);

impl Shown {
    fn error(&mut self, e: &(dyn StdError + 'static)) {
        self.0.push(e.to_string());
        self.0.push(format!("{e:?}"));
        let mut source = e.source();
        while let Some(s) = source {
            self.0.push(s.to_string());
            self.0.push(format!("{s:?}"));
            source = s.source();
        }
    }

    fn result<T: Debug, E: StdError + 'static>(&mut self, r: Result<T, E>) -> bool {
        match r {
            Ok(v) => {
                self.debug(&v);
                false
            }
            Err(e) => {
                self.error(&e);
                true
            }
        }
    }

    fn debug(&mut self, v: &dyn Debug) {
        self.0.push(format!("{v:?}"));
    }
}

fn builder(url: &str) -> RoutedConnectionBuilder {
    RoutedConnection::builder()
        .primary(url)
        .probe_interval(Duration::from_millis(50))
        .acquire_timeout(Duration::from_millis(200))
}

/// The other product's URL, with the secret.
fn other(url: &str) -> &'static str {
    if url.starts_with("mysql") { PG } else { MY }
}

/// The same URL on another host.
fn elsewhere(url: &str) -> String {
    url.replace("@h:", "@h2:")
}

fn mock(url: &str) -> RoutedConnection {
    let backend = if url.starts_with("mysql") { DbBackend::MySql } else { DbBackend::Postgres };
    let conn = MockDatabase::new(backend).into_connection();
    RoutedConnection::from_connections(conn, vec![]).unwrap()
}

async fn call(method: Method, url: &str) -> Shown {
    let mut shown = Shown::default();
    match method {
        Method::Primary => {
            // A short wait: the connect error it ends in is what must not show the password.
            let b = builder(url).connect_wait(std::time::Duration::from_millis(200));
            shown.debug(&b);
            assert!(shown.result(b.connect().await), "connected to {url}");
        }
        Method::ReplicaDuplicate => {
            let b = builder(url).replica(url);
            shown.debug(&b);
            assert!(shown.result(b.connect().await));
        }
        Method::ReplicaOtherProduct => {
            let b = builder(url).replica(other(url));
            shown.debug(&b);
            assert!(shown.result(b.connect().await));
        }
        Method::ReplicasBadPort => {
            let bad = elsewhere(url).replace(":5432", ":54x2").replace(":3306", ":33x6");
            let b = builder(url).replicas([bad.as_str()]);
            shown.debug(&b);
            assert!(shown.result(b.connect().await));
        }
        Method::ReplicaReplicationAddress => {
            let replica = Replica::new(elsewhere(url)).replication_address(url);
            shown.debug(&replica);
            let b = builder(url).replica(replica);
            shown.debug(&b);
            assert!(shown.result(b.connect().await));
        }
        Method::PrimaryReplicationAddress => {
            let b = builder(url).primary_replication_address(url);
            shown.debug(&b);
            assert!(shown.result(b.connect().await));
        }
        Method::ConfigReplicaDuplicate => {
            let config = RoutedConfig::new(url).replica(url);
            shown.debug(&config);
            shown.result(config.validate());
            let b = config.into_builder();
            if let Ok(b) = &b {
                shown.debug(b);
            }
            if let Ok(b) = b {
                assert!(shown.result(b.connect().await));
            }
        }
        Method::ConfigToml => {
            for toml in [
                format!(
                    "primary = {{ url = \"{url}\" }}\n[[replicas]]\nurl = \"{}\"\n\
                     replication_address = \"{url}\"",
                    elsewhere(url)
                ),
                format!("primary = {{ url = \"{url}\" }}\n[topology]\ndns = \"{url}\""),
                format!(
                    "primary = {{ url = \"{url}\" }}\n[topology]\npatroni = [\"http://u:{SECRET}@h:8008\"]"
                ),
            ] {
                let config: RoutedConfig = toml::from_str(&toml).unwrap();
                shown.debug(&config);
                shown.result(config.validate());
                assert!(shown.result(config.connect().await), "{toml}");
            }
        }
        Method::FromVars => {
            let replica = elsewhere(url);
            for extra in [
                ("DATABASE_REPLICA_1_REPLICATION_ADDRESS", url),
                ("DATABASE_REPLICA_URLS", url),
                ("RWSPLIT_TOPOLOGY_DNS", url),
            ] {
                let vars =
                    [("DATABASE_URL", url), ("DATABASE_REPLICA_URLS", replica.as_str()), extra];
                match RoutedConfig::from_vars(vars) {
                    Ok(c) => {
                        shown.debug(&c);
                        shown.result(c.validate());
                        assert!(shown.result(c.connect().await));
                    }
                    Err(e) => shown.error(&e),
                }
            }
        }
        Method::Patroni => {
            assert!(shown.result(PatroniSource::new([url])));
            assert!(shown.result(PatroniSource::new([format!("http://u:{SECRET}@h:8008")])));
        }
        Method::Dns => {
            let source = DnsSource::new(url).timeout(Duration::from_millis(200));
            shown.debug(&source);
            assert!(shown.result(source.members().await));
            let b = builder(url).topology(source);
            shown.debug(&b);
        }
        Method::SessionFrom => {
            assert!(shown.result(mock(url).session_from(url)));
        }
        Method::Fence => {
            let db = mock(url);
            assert!(shown.result(db.fence(url)));
            assert!(shown.result(db.unfence(url)));
        }
    }
    shown
}

#[rstest]
fn no_method_that_takes_an_address_shows_its_password(
    #[values(
        Method::Primary,
        Method::ReplicaDuplicate,
        Method::ReplicaOtherProduct,
        Method::ReplicasBadPort,
        Method::ReplicaReplicationAddress,
        Method::PrimaryReplicationAddress,
        Method::ConfigReplicaDuplicate,
        Method::ConfigToml,
        Method::FromVars,
        Method::Patroni,
        Method::Dns,
        Method::SessionFrom,
        Method::Fence
    )]
    method: Method,
    #[values(PG, MY)] url: &str,
) {
    let (subscriber, logs) = capture(tracing::Level::TRACE);
    let shown = tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(call(method, url))
    });
    assert!(!shown.0.is_empty(), "{method:?} showed nothing");
    for text in &shown.0 {
        assert!(!text.contains(SECRET), "{method:?} with {url}: {text}");
    }
    let logs = logs.text();
    assert!(!logs.contains(SECRET), "{method:?} with {url} logged: {logs}");
}
