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
    NoPrimary,
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
    #[error("cannot connect to the primary ({node}): {}", connect_cause(source))]
    PrimaryUnreachable {
        /// The primary's name (host:port/database, no credentials).
        node: String,
        /// SeaORM's error (re-wrapped, its text scrubbed, if it held the password).
        #[source]
        source: DbErr,
    },
    /// A read-your-writes token given as text is not one.
    #[error("`{token}` is not a read-your-writes token: {source}")]
    InvalidToken {
        /// The text (at most 64 characters of it).
        token: String,
        /// What is wrong with it (too long, another database's, malformed …).
        #[source]
        source: crate::SessionTokenError,
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
        product: crate::ServerProduct,
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
            kind => format!("a network error ({kind})"),
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
/// SeaORM's own connect error, as it was. Every other variant is an error of building the
/// connection (configuration, URLs, the servers found at start) or of input handed to the
/// adapter outside any statement (a token's text, a node's name): none comes from running a
/// statement, so it becomes `DbErr::Custom` with this error's text. Code that branches on
/// these gets them typed from the functions that return [`Error`]; a statement's own
/// failures are [`RoutingError`](crate::RoutingError)s.
impl From<Error> for DbErr {
    fn from(e: Error) -> DbErr {
        match e {
            Error::PrimaryUnreachable { source, .. } => source,
            other => DbErr::Custom(other.to_string()),
        }
    }
}

/// The adapter's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn did_you_mean(nearest: Option<&str>) -> String {
    nearest.map(|n| format!(" (did you mean {n}?)")).unwrap_or_default()
}
