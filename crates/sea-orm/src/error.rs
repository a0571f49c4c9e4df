//! The adapter's error type, for building a [`RoutedConnection`](crate::RoutedConnection) and
//! reading tokens.
//! Statements return SeaORM's own `DbErr`.

use sea_orm::{DbBackend, DbErr};

/// What can go wrong while building a [`RoutedConnection`](crate::RoutedConnection) or
/// resuming a [`Session`](crate::Session) from text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No primary was configured.
    #[error("no primary configured: call `.primary(url)` or set DATABASE_URL")]
    PrimaryNotConfigured,
    /// An environment variable the configuration needs is missing or empty.
    #[error("environment variable {name} is not set")]
    MissingEnv {
        /// The variable's name.
        name: &'static str,
    },
    /// A URL in the configuration is not a database URL this build can use: it does not
    /// parse (a bad port, an unencoded `#`, `/` or `?` in a password), or names a scheme no
    /// driver of this build connects (`mariadb://`: use `mysql://`).
    #[error("{node}: `{url}` is not a usable database URL: {reason}")]
    InvalidUrl {
        /// Which node (`primary`, `replica 1`, …).
        node: String,
        /// The URL with credentials and parameters removed.
        url: String,
        /// What is wrong with it. Text, not a `#[source]`: the URL parser's and the driver's
        /// errors can quote the URL, password included, so only their scrubbed text is kept.
        reason: String,
    },
    /// A configuration value is out of range, inconsistent with another, or unknown
    /// ([`RoutedConfig`](crate::RoutedConfig), [`RoutedConfig::from_env`](crate::RoutedConfig::from_env)).
    #[error("invalid configuration: {field}: {reason}")]
    InvalidConfig {
        /// The field (`replicas[1].pool.max_connections`) or environment variable
        /// (`DATABASE_REPLICA_2_MAX_CONNECTIONS`).
        field: String,
        /// What is wrong with it (never a URL or password).
        reason: String,
    },
    /// An environment variable in a namespace [`RoutedConfig::from_env`](crate::RoutedConfig::from_env)
    /// owns (`RWSPLIT_*`, `DATABASE_PRIMARY_*`, `DATABASE_REPLICA_*`, or a near miss of a
    /// `DATABASE_*` name it reads) that names no setting: a typo, most likely.
    #[error("unknown environment variable {name}{}", did_you_mean(.nearest.as_deref()))]
    UnknownVariable {
        /// The variable's name.
        name: String,
        /// The name `from_env` reads that is nearest to it (fewest edits).
        nearest: Option<String>,
    },
    /// More nodes than the router handles.
    #[error("{nodes} nodes configured, at most {max} are supported")]
    TooManyNodes {
        /// How many were configured.
        nodes: usize,
        /// The limit.
        max: usize,
    },
    /// Two configured nodes are the same server and database (host, port and database
    /// compared; users and parameters aside).
    #[error("{second} ({second_url}) is the same server and database as {first} ({first_url})")]
    DuplicateNode {
        /// The node configured first (`primary`, `replica 1`, …).
        first: String,
        /// Its URL, redacted.
        first_url: String,
        /// The node configured later.
        second: String,
        /// Its URL, redacted.
        second_url: String,
    },
    /// The primary could not be connected to, or did not answer, at start. The text names the
    /// cause's kind (refused logins, a missing database, the pool's timeout on a server that
    /// refused every connection or never answered, TLS …); `source()` is the driver's error.
    #[error(
        "cannot connect to the primary ({node}){}: {}",
        gave_up(gave_up_after),
        connect_cause(source)
    )]
    PrimaryUnreachable {
        /// The primary's name (host:port/database, no credentials).
        node: String,
        /// SeaORM's error (re-wrapped, its text scrubbed, if it held the password).
        #[source]
        source: DbErr,
        /// How long `connect()` had tried when it gave up, if it was still trying to reach
        /// the node (refused, not resolved, no answer: up to
        /// [`connect_wait`](crate::RoutedConnectionBuilder::connect_wait)); `None` when the
        /// server answered and refused, or failed after the first contact.
        gave_up_after: Option<std::time::Duration>,
    },
    /// A read-your-writes token given as text is not one.
    #[error("`{token}` is not a read-your-writes token: {source}")]
    InvalidToken {
        /// The text (at most 64 characters of it).
        token: String,
        /// What is wrong with it (too long, another database's, malformed …).
        #[source]
        source: crate::consistency::SessionTokenError,
    },
    /// No node of the connection has this name (`host:port/db`, as in
    /// [`Stats`](crate::Stats)).
    #[error("no node named `{name}`: the nodes are {known}")]
    UnknownNode {
        /// The name asked for (at most 64 characters of it).
        name: String,
        /// The nodes' names, comma-separated.
        known: String,
    },
    /// A node runs a different database than the primary.
    #[error(
        "{node} is {found:?} but the primary is {expected:?}: every node must run the same database"
    )]
    BackendMismatch {
        /// The node that differs.
        node: String,
        /// The primary's backend.
        expected: DbBackend,
        /// This node's backend.
        found: DbBackend,
    },
    /// A node's server is not a product and version rwsplit supports (MySQL, PostgreSQL
    /// before 13, MariaDB before 10.5, a PostgreSQL-compatible server that is not PostgreSQL).
    /// Checked on the primary and every reachable replica at
    /// [`connect`](crate::RoutedConnectionBuilder::connect); a node that answers only later,
    /// or is added by a topology source, is checked when it first answers and fenced (never
    /// routed to) if refused, with an error logged.
    #[error(
        "{node} runs {product} {version}, which rwsplit does not support: it supports {supported}"
    )]
    UnsupportedServer {
        /// The node (`host:port/db`).
        node: String,
        /// The product found.
        product: crate::product::ServerProduct,
        /// Its version (`8.0.36`), or its own description when it has none rwsplit reads.
        version: String,
        /// What rwsplit supports.
        supported: &'static str,
    },
    /// Automatic failover was asked for on a cluster an HA manager runs.
    #[error(
        "automatic failover cannot be combined with a {manager} topology source: {manager} \
         promotes nodes itself, and rwsplit never promotes a node of a cluster an HA manager \
         runs (it follows {manager}'s promotions instead); remove `.auto_failover(..)`"
    )]
    FailoverWithHaManager {
        /// The HA manager (`Patroni`).
        manager: &'static str,
    },
    /// Automatic failover with a replica behind a connection pooler: the failover takes its lock
    /// on a session of each server, which a pooler's shared server connection would hold for
    /// someone else, and promotes and re-points through it.
    #[error(
        "automatic failover needs direct connections to every server, and {node} is behind a \
         pooler (pooling = {pooling}): its failover lock would be held on a server connection \
         the pooler shares; connect that replica directly or remove `.auto_failover(..)`"
    )]
    FailoverThroughPooler {
        /// The replica (`replica 1`, …).
        node: String,
        /// Its pooling mode (`session`, `transaction`).
        pooling: &'static str,
    },
}

/// What kind of failure a connection error is, in words, for [`Error::PrimaryUnreachable`]'s
/// text: from the server's SQLSTATE or MySQL error number, or the driver's error kind. Never
/// the URL (the driver's own text, which may quote it, is left to `source()`, scrubbed).
pub(crate) fn connect_cause(err: &DbErr) -> String {
    use sea_orm::RuntimeErr;
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    if let DbErr::Conn(RuntimeErr::SqlxError(e)) = err {
        return sqlx_cause(e);
    }
    match err {
        DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout) => POOL_TIMEOUT.to_owned(),
        DbErr::ConnectionAcquire(_) => "the pool was closed".to_owned(),
        // The driver's text, already scrubbed of the password (it held it).
        DbErr::Conn(RuntimeErr::Internal(text)) => format!("the driver reported: {text}"),
        other => other.to_string(),
    }
}

/// " after trying for 5.0s (`connect_wait`)", or nothing.
fn gave_up(after: &Option<std::time::Duration>) -> String {
    match after {
        Some(d) => {
            format!(" after trying for {:.1}s (`connect_wait` sets how long)", d.as_secs_f64())
        }
        None => String::new(),
    }
}

const POOL_TIMEOUT: &str = "no connection within the pool's acquire timeout: the server refused \
    every attempt (is it running, on that host and port?) or never answered (a firewall, a \
    wrong address)";

#[cfg(any(feature = "postgres", feature = "mysql"))]
fn sqlx_cause(e: &sea_orm::sqlx::Error) -> String {
    use sea_orm::sqlx::Error as E;
    match e {
        E::Database(db) => crate::product::refusal::connect_refusal(db.as_ref()),
        E::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                "connection refused (is the server running, on that host and port?)".to_owned()
            }
            std::io::ErrorKind::TimedOut => "the connection timed out".to_owned(),
            // The system's own words: "failed to lookup address information: Name or service
            // not known" says more than its kind (uncategorized).
            _ => format!("a network error: {io}"),
        },
        E::PoolTimedOut => POOL_TIMEOUT.to_owned(),
        E::PoolClosed => "the pool was closed".to_owned(),
        E::Tls(_) => {
            "TLS failed (sslmode, certificates, or a build without a TLS feature)".to_owned()
        }
        E::Configuration(_) => "the connection settings are invalid".to_owned(),
        E::Protocol(_) => {
            "the server spoke an unexpected protocol (is that port a database?)".to_owned()
        }
        other => other.to_string(),
    }
}

/// A server the version policy refused (`product::server::judge`).
impl From<crate::product::server::Refused> for Error {
    fn from(refused: crate::product::server::Refused) -> Error {
        let crate::product::server::Refused { node, product, version } = refused;
        Error::UnsupportedServer {
            node,
            product,
            version,
            supported: crate::product::server::SUPPORTED,
        }
    }
}

/// For `?` in functions that return SeaORM's `DbErr`. The primary unreachable at start is
/// carried whole, as `DbErr::Conn` (SeaORM's variant for a connection failure): the `DbErr`'s
/// text names the primary and the cause's kind, then the driver's text; the `Error` itself,
/// with its `source()` (SeaORM's error), is got back with [`adapter_error`], or by walking the
/// sqlx error's `source()` chain. Every other variant is an error of building the connection
/// (configuration, URLs, the servers found at start) or of input handed to the adapter
/// outside any statement (a token's text, a node's name): none comes from running a
/// statement, so it becomes `DbErr::Custom` with this error's text. Code that branches on
/// these gets them typed from the functions that return [`Error`]; a statement's own
/// failures are [`RoutingError`](crate::RoutingError)s.
///
/// ```
/// use rwsplit_sea_orm::{Error, adapter_error};
/// use sea_orm::DbErr;
///
/// let refused = DbErr::Conn(sea_orm::RuntimeErr::Internal("connection refused".into()));
/// let e = Error::PrimaryUnreachable {
///     node: "db1:5432/app".into(),
///     source: refused,
///     gave_up_after: None,
/// };
/// let err: DbErr = e.into();
/// assert!(err.to_string().contains("cannot connect to the primary (db1:5432/app)"));
/// assert!(err.to_string().contains("connection refused"));
/// assert!(matches!(adapter_error(&err), Some(Error::PrimaryUnreachable { node, .. }) if node == "db1:5432/app"));
/// ```
impl From<Error> for DbErr {
    fn from(e: Error) -> DbErr {
        match e {
            e @ Error::PrimaryUnreachable { .. } => DbErr::Conn(carry(e)),
            other => DbErr::Custom(other.to_string()),
        }
    }
}

/// The error inside the `DbErr`: shown with the adapter's prefix and its cause's text, so that
/// the `DbErr`'s text says everything (SeaORM's `RuntimeErr` has no `source()` to follow);
/// its `source()` is the error itself (a `std::io::Error` holding it shows its source as its
/// own: the chain from the sqlx error reaches the [`Error`], then SeaORM's).
#[derive(Debug)]
struct Carried(Error);

impl std::fmt::Display for Carried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.0.to_string();
        write!(f, "rwsplit: {text}")?;
        match std::error::Error::source(&self.0).map(ToString::to_string) {
            Some(cause) if !text.ends_with(&cause) => write!(f, ": {cause}"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for Carried {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
fn carry(e: Error) -> sea_orm::RuntimeErr {
    let io = std::io::Error::other(Carried(e));
    sea_orm::RuntimeErr::SqlxError(std::sync::Arc::new(sea_orm::sqlx::Error::Io(io)))
}

/// Without a sqlx driver SeaORM has no error that carries another: the text only.
#[cfg(not(any(feature = "postgres", feature = "mysql")))]
fn carry(e: Error) -> sea_orm::RuntimeErr {
    sea_orm::RuntimeErr::Internal(Carried(e).to_string())
}

/// The adapter's [`Error`] inside `err`, if `err` was made from one that it carries
/// ([`Error::PrimaryUnreachable`], converted with `?` or `From`); else `None` (a
/// [`RoutingError`](crate::RoutingError) is [`routing_error`](crate::routing_error)'s).
#[must_use]
pub fn adapter_error(err: &DbErr) -> Option<&Error> {
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    if let DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e)) = err
        && let sea_orm::sqlx::Error::Io(io) = &**e
    {
        return io.get_ref().and_then(|c| c.downcast_ref::<Carried>()).map(|c| &c.0);
    }
    let _ = err;
    None
}

/// The adapter's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn did_you_mean(nearest: Option<&str>) -> String {
    nearest.map(|n| format!(" (did you mean {n}?)")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sea_orm::{DbErr, RuntimeErr};

    use super::*;

    /// The primary unreachable at start, converted to SeaORM's `DbErr` (`?` in a function that
    /// returns one), keeps its node and classified cause in the text, and the whole error in
    /// the source chain: got back typed, its own source SeaORM's error.
    #[test]
    fn a_primary_unreachable_keeps_its_cause_through_db_err() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let driver =
            DbErr::Conn(RuntimeErr::SqlxError(Arc::new(sea_orm::sqlx::Error::Io(refused))));
        let e = Error::PrimaryUnreachable {
            node: "db1:5432/app".into(),
            source: driver,
            gave_up_after: None,
        };
        let before = e.to_string();
        let err: DbErr = e.into();
        assert!(matches!(err, DbErr::Conn(_)), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&before), "{text}");
        assert!(
            text.contains(
                "cannot connect to the primary (db1:5432/app): connection refused (is \
                 the server running, on that host and port?)"
            ),
            "{text}"
        );
        // The driver's own text follows.
        assert!(text.ends_with("connection refused"), "{text}");
        let Some(Error::PrimaryUnreachable { node, source, .. }) = adapter_error(&err) else {
            panic!("{err:?}")
        };
        assert_eq!(node, "db1:5432/app");
        assert!(matches!(source, DbErr::Conn(_)));
        // The chain from the sqlx error: the adapter's error, then SeaORM's, then the I/O one.
        let DbErr::Conn(RuntimeErr::SqlxError(sqlx)) = &err else { panic!("{err:?}") };
        let chain: Vec<String> =
            std::iter::successors(std::error::Error::source(&**sqlx), |e| e.source())
                .map(ToString::to_string)
                .collect();
        assert!(chain.contains(&before), "{chain:?}");
        assert!(chain.iter().any(|c| c.contains("error communicating with database")), "{chain:?}");
        // Not a routing error; a routing error is not the adapter's `Error`.
        assert!(crate::routing_error::routing_error(&err).is_none());
        let routed: DbErr =
            crate::routing_error::RoutingError::NoPrimary { nodes: Vec::new() }.into();
        assert!(adapter_error(&routed).is_none());
        assert!(crate::routing_error::routing_error(&routed).is_some());
    }

    /// Every other variant is text in `DbErr::Custom`, as it was.
    #[test]
    fn other_errors_stay_custom() {
        let err: DbErr = Error::PrimaryNotConfigured.into();
        assert!(matches!(&err, DbErr::Custom(t) if t.contains("no primary configured")), "{err:?}");
        assert!(adapter_error(&err).is_none());
    }
}
