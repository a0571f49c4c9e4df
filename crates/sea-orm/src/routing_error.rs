//! The adapter's own failures of a statement, as a type: [`RoutingError`], carried inside the
//! `DbErr` that SeaORM's traits return, and got back with [`routing_error`].
//!
//! See [`RoutingError`] for how it is carried, and why so.

use std::fmt;
use std::time::Duration;

use rwsplit_core::{Access, RouteError};
use sea_orm::{DbBackend, DbErr, RuntimeErr};

/// Why a statement failed in the adapter rather than in the database: no node could take it,
/// the node failed under it, it was given up, or it was refused in a way that says the
/// adapter routed it wrongly.
///
/// Statements return SeaORM's `DbErr`; a `RoutingError` travels inside it and
/// [`routing_error`] gets it back (see *How it is carried* below). The database's own errors
/// (constraints, syntax, a serialization failure on the primary) are not routing errors: they
/// reach the caller as the driver reported them.
///
/// Node names are `host:port/db`, never with credentials. A variant's `source` is the driver
/// or SeaORM error that caused it, where there is one (a replica's refusal keeps its SQLSTATE
/// there, and in `sqlstate`).
///
/// # Examples
///
/// ```
/// use rwsplit_sea_orm::{RoutingError, routing_error};
/// use sea_orm::DbErr;
///
/// // What a write fails with when the monitor has marked the primary down.
/// let err: DbErr = RoutingError::WriteNotSent {
///     node: "db1:5432/app".into(),
///     reason: rwsplit_sea_orm::NotSentReason::PrimaryDown,
///     source: None,
/// }
/// .into();
/// assert!(matches!(err, DbErr::Conn(_)), "SeaORM's variant for a node failure");
/// assert!(err.to_string().contains("db1:5432/app"));
///
/// // A caller branches on the type, not on the text.
/// match routing_error(&err) {
///     Some(e) if e.outcome_unknown() => { /* check whether the write happened */ }
///     Some(e) if e.is_retryable() => { /* nothing was applied: safe to try again later */ }
///     Some(_) | None => { /* the database's own error, or a bug to report */ }
/// }
/// assert!(matches!(
///     routing_error(&err),
///     Some(RoutingError::WriteNotSent { node, .. }) if node == "db1:5432/app"
/// ));
/// ```
///
/// # How it is carried
///
/// SeaORM's `ConnectionTrait` methods return `sea_orm::DbErr`, a closed enum of SeaORM's own;
/// it has no variant that holds an arbitrary error except `TryIntoErr` (a type conversion
/// failure: applications matching `DbErr::Conn` for node failures would no longer see one). Its
/// `Conn`, `Exec` and `Query` variants hold a `RuntimeErr`, which is either text
/// (`RuntimeErr::Internal(String)`: callers would have to parse English)
/// or a driver error (`RuntimeErr::SqlxError(Arc<sqlx::Error>)`). No sqlx error is both typed
/// and neutral: each variant that holds an arbitrary error says something of its own in its
/// text. So a routing error travels in the one whose text is true of it:
///
/// - a **decision** ([`RoutingError::is_decision`]: no primary, a split brain, no eligible or
///   no remaining node, a node removed, positions unsupported — nothing was sent and no node
///   failed) as `DbErr::Exec(RuntimeErr::SqlxError(sqlx::Error::Configuration(..)))`, read
///   `Execution Error: error with configuration: rwsplit: <this error>`: the state of the
///   cluster or of the settings, not the network, stops it;
/// - a **failure of a node or of reaching it** (a write not sent or its outcome unknown, a
///   node down, no connection in time, a time limit, a recovery conflict) as
///   `DbErr::Conn(RuntimeErr::SqlxError(sqlx::Error::Io(io::Error::other(..))))`, read
///   `Connection Error: error communicating with database: rwsplit: <this error>`, which it
///   is; code that treats `Io` as a broken connection (retry helpers) treats a write whose
///   outcome is unknown as it already treats a driver's broken connection under a write:
///   check [`RoutingError::outcome_unknown`];
/// - a replica's refusal and an unreadable replication position in `DbErr::Query`, the same
///   `Io` carrier; an internal error in `DbErr::Conn`.
///
/// [`routing_error`] gets the error back from either with a downcast (`io::Error::get_ref`, the
/// boxed configuration error): no text is parsed. The text after `rwsplit:` says everything.
///
/// Rejected: `sqlx::Error::Database` (SeaORM's `DbErr::sql_err` and applications take it for
/// the server's own error: "error returned from database"), `Decode`, `Tls` and
/// `AnyDriverError` (they carry a boxed error too, but mean something else, and `Tls` is a
/// connection failure to code like the adapter's own retry decision), `DbErr::Custom` and
/// `RuntimeErr::Internal` (text only: the typed error would be lost), and a table keyed by an
/// identifier in the text (text parsing by another name).
///
/// Without a sqlx driver feature (`postgres`, `mysql`) SeaORM has no `RuntimeErr::SqlxError`:
/// such a build (mock connections only) carries the error's text in `RuntimeErr::Internal`, and
/// [`routing_error`] returns `None`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RoutingError {
    /// A write was not sent to the primary: nothing of it reached the server, so it may be
    /// sent again. (It was already tried once more on the new primary if the monitor named
    /// one.)
    #[error("the write to the primary {node} was not sent: {reason}")]
    WriteNotSent {
        /// The primary (`host:port/db`).
        node: String,
        /// Why it was not sent.
        reason: NotSentReason,
        /// The pool's error, for [`NotSentReason::NoConnection`].
        #[source]
        source: Option<DbErr>,
    },
    /// A write was sent to the primary, and then the primary was marked down or the connection
    /// failed before it answered: it may or may not have committed. It was not retried.
    #[error(
        "the write to the primary {node} was sent and its outcome is unknown (it may have \
         committed); it was not retried: {reason}"
    )]
    WriteOutcomeUnknown {
        /// The primary (`host:port/db`).
        node: String,
        /// What ended it.
        reason: UnknownReason,
        /// The driver's error, for [`UnknownReason::ConnectionBroke`].
        #[source]
        source: Option<DbErr>,
    },
    /// A read failed because its last node was unreachable, was marked down while the read
    /// waited on it, or stopped being the primary. Nothing was written; a read may be run
    /// again.
    #[error("the read failed on {node} ({attempts} node(s) tried): {reason}")]
    NodeDown {
        /// The last node the read was tried on (`host:port/db`).
        node: String,
        /// How many nodes the read was tried on, this one included.
        attempts: usize,
        /// What happened to the node.
        reason: DownReason,
        /// The driver's error, for [`DownReason::Unreachable`].
        #[source]
        source: Option<DbErr>,
    },
    /// A replica cancelled the read in a recovery conflict (PostgreSQL 40001 on a standby:
    /// replay had to remove rows the query could still see), and no node was left to try.
    #[error(
        "the replica {node} cancelled the read in a recovery conflict ({attempts} node(s) tried)"
    )]
    RecoveryConflict {
        /// The replica (`host:port/db`).
        node: String,
        /// How many nodes the read was tried on, this one included.
        attempts: usize,
        /// The replica's error (SQLSTATE 40001).
        #[source]
        source: DbErr,
    },
    /// No connection of the node's pool came free within the pool's acquire timeout (the
    /// application is saturating its own pool), or the server refused a new one for lack of
    /// room (its connection limit): back-pressure. The node is not marked and the statement
    /// was not sent.
    #[error(
        "no connection to {node} to be had: none came free in its pool within the acquire \
         timeout, or the server is at its connection limit (back-pressure, not a node failure); \
         the {} was not sent",
        access_name(*access)
    )]
    Backpressure {
        /// The node whose pool was exhausted (`host:port/db`).
        node: String,
        /// Whether the statement was a read or a write.
        access: Access,
        /// How many nodes the statement was tried on, this one included.
        attempts: usize,
        /// The pool's error (SeaORM's `ConnectionAcquire(Timeout)`).
        #[source]
        source: DbErr,
    },
    /// A read did not get its answer in time on its last node: the replica read timeout, or
    /// what was left of the caller's [deadline](crate::RoutedConnection::deadline) (`limit`
    /// says which). The node is not marked (the monitor judges it). Writes are never cut short
    /// by time. (A pool's acquire timeout is [`Backpressure`](RoutingError::Backpressure).)
    #[error(
        "{node} did not answer within {} ({limit}; {attempts} node(s) tried)",
        humantime::format_duration(*after)
    )]
    TimedOut {
        /// The node (`host:port/db`).
        node: String,
        /// The limit that passed.
        after: Duration,
        /// Which limit it was.
        limit: TimeLimit,
        /// How many nodes the read was tried on, this one included.
        attempts: usize,
    },
    /// A replica refused a statement classified as a read because it writes or locks: it is
    /// read-only or in recovery (PostgreSQL 25006 and the recovery refusals, MySQL/MariaDB
    /// 1290/1792): a user function or view that writes, which the text cannot show. It was
    /// **not** run on the primary: the connection was built with
    /// [`OnReplicaRefusal::Fail`](crate::OnReplicaRefusal::Fail), or the statement was routed
    /// to the replica on purpose ([`RoutedConnection::scope`](crate::RoutedConnection::scope)
    /// with `Target::Replica` or `Target::Node(..)`, `/*rwsplit:replica*/`).
    /// Statements of its shape go to the primary from now on. Carried in `DbErr::Query`.
    #[error(
        "the replica {node} refused {} classified as a read because it writes or locks \
         (read-only{}); it was not run on the primary (on_replica_refusal is Fail, or the \
         replica was asked for) and statements of its shape go to the primary from now on",
        statement.as_deref().map_or_else(|| "a statement".to_owned(), |s| format!("`{s}`")),
        sqlstate.as_deref().map(|s| format!(", SQLSTATE {s}")).unwrap_or_default()
    )]
    ReplicaRefused {
        /// The replica (`host:port/db`).
        node: String,
        /// The SQLSTATE of the refusal (`25006`; MySQL's `HY000` for error 1290), if the
        /// driver gave one.
        sqlstate: Option<String>,
        /// The statement's shape ([`rwsplit_core::shape`]: its text with every value a `?`),
        /// which names the function or view that writes; `None` if it has none (too long).
        statement: Option<String>,
        /// The replica's error, with its code.
        #[source]
        source: DbErr,
    },
    /// The statement needs the primary and no node is the primary now (it is down and no
    /// replica has been promoted yet). Nothing was sent. The text names every node and why it
    /// is not the primary (a replica, marked down, fenced, joining …).
    #[error("no primary in the topology: the statement needs one{}", no_primary_nodes(nodes))]
    NoPrimary {
        /// Every node of the topology the statement was planned on (and those joining it),
        /// with why it is not the primary.
        nodes: Vec<NodeOut>,
    },
    /// Several nodes claim the primary role (split brain): the adapter refuses to pick one.
    /// Nothing was sent. The text names them; fencing the stale one by its name
    /// ([`RoutedConnection::fence`](crate::RoutedConnection::fence)) lets writes resume.
    #[error(
        "{primaries} nodes claim the primary role{}, refusing to pick one (split brain): fence \
         the stale one by name with `RoutedConnection::fence(name)`",
        names(nodes)
    )]
    SplitBrain {
        /// How many nodes claim the role.
        primaries: usize,
        /// Their names (`host:port/db`), the names `fence` takes.
        nodes: Vec<String>,
    },
    /// The router found no node for the statement for another reason (no eligible node for a
    /// read that may not use the primary, a node named by an override that is not in the
    /// topology). Nothing was sent. The text says which rule excluded the nodes
    /// ([`RouteError::NoEligibleNode`]'s [`Excluded`](rwsplit_core::Excluded)): down, a tag
    /// rule, a dedicated tag, the lag limit, the read's staleness bound; and why the primary
    /// could not take the read.
    #[error("no node can take the statement: {source}")]
    Unroutable {
        /// The router's reason.
        #[source]
        source: RouteError,
    },
    /// Every candidate of the statement's plan was skipped (removed since, or a catch-up wait
    /// that ran out on the only replica): nothing was sent. The text names each candidate and
    /// why it was skipped.
    #[error("no node left to run the statement on{}", skipped(nodes))]
    NoNodeLeft {
        /// The plan's candidates, each with why it was skipped.
        nodes: Vec<NodeOut>,
    },
    /// The node the statement needed was removed from the connection (a topology source
    /// stopped listing it).
    #[error(
        "{node} was removed from the connection (its topology source stopped listing it) \
         before the statement could run there"
    )]
    NodeRemoved {
        /// The node: `host:port/db` (the connection keeps the name of the last node removed
        /// at each index), else `node <id>` (the id the logs show beside its name).
        node: String,
    },
    /// A replication position (a PostgreSQL LSN, timeline or system identifier; a MariaDB GTID
    /// position) the server returned could not be read, or the query returned none. Carried in
    /// `DbErr::Query`.
    #[error(
        "unreadable replication position{}: `{what}` is {}",
        node.as_deref().map(|n| format!(" on {n}")).unwrap_or_default(),
        value.as_deref().map_or_else(|| "missing".to_owned(), |v| format!("`{v}`"))
    )]
    PositionUnreadable {
        /// The node it was read on (`host:port/db`); `None` only where it was read outside a
        /// node the adapter knows.
        node: Option<String>,
        /// What was read (the column or function: `lsn`, `gtid_binlog_pos`, …).
        what: &'static str,
        /// The server's text (at most 64 characters of it); `None` if it returned no value.
        value: Option<String>,
        /// Why the text is not a position, where the parser said.
        #[source]
        source: Option<rwsplit_core::Error>,
    },
    /// Read-your-writes positions are not supported on this database. Carried in
    /// `DbErr::Query`.
    #[error("replication positions are not supported on {}", backend.as_str())]
    PositionUnsupported {
        /// The database.
        backend: DbBackend,
    },
    /// A state the adapter's own checks rule out was reached: a bug. rwsplit has no public
    /// issue tracker, so the text says to report it to whoever maintains the copy in use.
    #[error(
        "internal error: {what} (a bug in rwsplit-sea-orm {}): report it, with this text, to \
         whoever maintains your copy of rwsplit",
        env!("CARGO_PKG_VERSION")
    )]
    Internal {
        /// What went wrong.
        what: &'static str,
    },
}

/// Why a write was not sent ([`RoutingError::WriteNotSent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NotSentReason {
    /// The primary's pool gave no connection: none could be opened (the node refused or is
    /// unreachable) or the pool was closed.
    NoConnection,
    /// The node stopped being the primary (a replica now, or another node promoted) while the
    /// write waited for a connection to it.
    NotPrimary,
    /// The monitor has marked the primary down (its probes fail on connections of their own).
    PrimaryDown,
}

impl fmt::Display for NotSentReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NotSentReason::NoConnection => "no connection to it could be had",
            NotSentReason::NotPrimary => {
                "it stopped being the primary while the write waited for a connection to it"
            }
            NotSentReason::PrimaryDown => "it is marked down by the monitor (unreachable)",
        })
    }
}

/// What ended a write whose outcome is unknown ([`RoutingError::WriteOutcomeUnknown`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnknownReason {
    /// The monitor marked the primary down while the write was in flight (a frozen server, a
    /// cut network): it was given up rather than waiting for the kernel to drop the connection.
    MarkedDown,
    /// The connection failed under the write (broken, reset, the server shutting down).
    ConnectionBroke,
}

impl fmt::Display for UnknownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnknownReason::MarkedDown => {
                "the monitor marked the primary down while it was in flight"
            }
            UnknownReason::ConnectionBroke => "the connection failed under it",
        })
    }
}

/// What happened to a read's last node ([`RoutingError::NodeDown`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DownReason {
    /// It could not be reached, or the connection to it broke (the node's failure: counted
    /// against its health).
    Unreachable,
    /// The monitor marked it down while the read waited on it (its probes time out: hung?).
    MarkedDown,
    /// It was the primary and stopped being one while the read waited on it.
    NotPrimary,
    /// The monitor had it marked down (its probes fail) when the read came to it, so the read
    /// was not sent there: a dead primary is not waited on for the pool's acquire timeout.
    AlreadyDown,
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DownReason::Unreachable => "the node is unreachable or the connection to it broke",
            DownReason::MarkedDown => {
                "the monitor marked it down while the read waited (probes time out: hung?)"
            }
            DownReason::NotPrimary => "it stopped being the primary while the read waited on it",
            DownReason::AlreadyDown => {
                "the monitor has it marked down (its probes fail), so the read was not sent there"
            }
        })
    }
}

/// Which time limit a read ran out of ([`RoutingError::TimedOut`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeLimit {
    /// The replica read timeout (`replica_read_timeout`): one attempt on a replica.
    ReplicaReadTimeout,
    /// What was left of the caller's [deadline](crate::RoutedConnection::deadline).
    Deadline,
}

impl fmt::Display for TimeLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeLimit::ReplicaReadTimeout => "replica_read_timeout",
            TimeLimit::Deadline => "what was left of the caller's deadline",
        })
    }
}

/// A node a statement could not use, and why ([`RoutingError::NoPrimary`],
/// [`RoutingError::NoNodeLeft`]). Shown as `host:port/db (why)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct NodeOut {
    /// The node (`host:port/db`).
    pub node: String,
    /// Why it could not take the statement.
    pub why: OutReason,
}

impl NodeOut {
    /// `node`, out for `why`.
    pub fn new(node: impl Into<String>, why: OutReason) -> NodeOut {
        NodeOut { node: node.into(), why }
    }
}

impl fmt::Display for NodeOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.node, self.why)
    }
}

/// Why a node could not take a statement ([`NodeOut`]), as far as the adapter knew when the
/// error was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OutReason {
    /// It answers its probes as a replica.
    Replica,
    /// The monitor has it marked down (its probes fail), and it last answered as a replica
    /// (or never answered).
    Down,
    /// Fenced ([`RoutedConnection::fence`](crate::RoutedConnection::fence), or automatic
    /// failover fenced the old primary): out of rotation, its claim to the primary role
    /// ignored.
    Fenced,
    /// Fenced because its server is not one rwsplit supports
    /// ([`Error::UnsupportedServer`](crate::Error::UnsupportedServer), logged).
    Unsupported,
    /// Joining: probed, not in rotation until seen healthy and caught up.
    Joining,
    /// Removed from the connection (its topology source stopped listing it) since the
    /// statement was planned: draining.
    Removed,
    /// A catch-up wait for the session's writes ran out on it (`wait_for_replica`).
    NotCaughtUp {
        /// How long the wait was.
        waited: Duration,
    },
    /// It had answered nothing past its hedge delay (stalled), so the plan's next node was
    /// tried instead.
    Stalled,
}

impl fmt::Display for OutReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutReason::Replica => f.write_str("a replica"),
            OutReason::Down => f.write_str("marked down: its probes fail"),
            OutReason::Fenced => f.write_str("fenced"),
            OutReason::Unsupported => f.write_str("fenced: its server is not one rwsplit supports"),
            OutReason::Joining => f.write_str("joining: not yet seen healthy and caught up"),
            OutReason::Removed => f.write_str("removed from the connection, draining"),
            OutReason::NotCaughtUp { waited } => write!(
                f,
                "did not replay the session's writes within {} (wait_for_replica)",
                humantime::format_duration(*waited)
            ),
            OutReason::Stalled => f.write_str("stalled: answering nothing past its hedge delay"),
        }
    }
}

/// `nodes`, comma-separated.
fn list<T: fmt::Display>(nodes: &[T]) -> String {
    nodes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// [`RoutingError::NoPrimary`]'s tail: the nodes and why none is the primary.
fn no_primary_nodes(nodes: &[NodeOut]) -> String {
    if nodes.is_empty() { String::new() } else { format!("; the nodes: {}", list(nodes)) }
}

/// [`RoutingError::SplitBrain`]'s names, in parentheses.
fn names(nodes: &[String]) -> String {
    if nodes.is_empty() { String::new() } else { format!(" ({})", nodes.join(", ")) }
}

/// [`RoutingError::NoNodeLeft`]'s tail: each candidate skipped, and why.
fn skipped(nodes: &[NodeOut]) -> String {
    if nodes.is_empty() {
        String::new()
    } else {
        format!(": every candidate was skipped: {}", list(nodes))
    }
}

fn access_name(access: Access) -> &'static str {
    match access {
        Access::Read => "read",
        Access::Write => "write",
    }
}

impl RoutingError {
    /// Whether running the same statement again may succeed and cannot apply it twice: it was
    /// not sent, or it is a read, and the cause can pass (a node down, a full pool, a failover
    /// under way). `false` for a write whose outcome is unknown (check first whether it
    /// happened), a replica's refusal (it would be refused again: route it to the primary),
    /// an unreadable position and internal errors.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            RoutingError::WriteNotSent { .. }
            | RoutingError::NodeDown { .. }
            | RoutingError::RecoveryConflict { .. }
            | RoutingError::Backpressure { .. }
            | RoutingError::TimedOut { .. }
            | RoutingError::NoPrimary { .. }
            | RoutingError::SplitBrain { .. }
            | RoutingError::NoNodeLeft { .. }
            | RoutingError::NodeRemoved { .. } => true,
            RoutingError::Unroutable { source } => source.is_transient(),
            RoutingError::WriteOutcomeUnknown { .. }
            | RoutingError::ReplicaRefused { .. }
            | RoutingError::PositionUnreadable { .. }
            | RoutingError::PositionUnsupported { .. }
            | RoutingError::Internal { .. } => false,
        }
    }

    /// Whether a write was sent and may have committed: [`RoutingError::WriteOutcomeUnknown`].
    #[must_use]
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, RoutingError::WriteOutcomeUnknown { .. })
    }

    /// Whether the application's own pool was exhausted ([`RoutingError::Backpressure`]):
    /// shed load rather than blame the database.
    #[must_use]
    pub fn is_backpressure(&self) -> bool {
        matches!(self, RoutingError::Backpressure { .. })
    }

    /// Whether a time limit passed ([`RoutingError::TimedOut`]).
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self, RoutingError::TimedOut { .. })
    }

    /// The node it names (`host:port/db`), if it names one.
    #[must_use]
    pub fn node(&self) -> Option<&str> {
        match self {
            RoutingError::WriteNotSent { node, .. }
            | RoutingError::WriteOutcomeUnknown { node, .. }
            | RoutingError::NodeDown { node, .. }
            | RoutingError::RecoveryConflict { node, .. }
            | RoutingError::Backpressure { node, .. }
            | RoutingError::TimedOut { node, .. }
            | RoutingError::ReplicaRefused { node, .. }
            | RoutingError::NodeRemoved { node } => Some(node),
            RoutingError::PositionUnreadable { node, .. } => node.as_deref(),
            _ => None,
        }
    }

    /// How many nodes the statement was tried on, where the variant counts them.
    fn attempts_mut(&mut self) -> Option<&mut usize> {
        match self {
            RoutingError::NodeDown { attempts, .. }
            | RoutingError::RecoveryConflict { attempts, .. }
            | RoutingError::Backpressure { attempts, .. }
            | RoutingError::TimedOut { attempts, .. } => Some(attempts),
            _ => None,
        }
    }

    /// The error for a statement whose node `id` was removed from the connection, before it
    /// ran there: named by `name` (its address, kept by the registry), else by its id.
    pub(crate) fn node_removed(id: rwsplit_core::NodeId, name: Option<&str>) -> RoutingError {
        let node = name.map_or_else(|| format!("node {id}"), str::to_owned);
        RoutingError::NodeRemoved { node }
    }

    /// The error for the router's refusal to route a statement planned on `topo`: the nodes
    /// that claim the primary role named, or (no primary) every node with `why` it is not the
    /// primary.
    pub(crate) fn from_route(
        e: RouteError,
        topo: &rwsplit_core::Topology,
        why: impl FnOnce() -> Vec<NodeOut>,
    ) -> RoutingError {
        match e {
            RouteError::NoPrimary => RoutingError::NoPrimary { nodes: why() },
            RouteError::SplitBrain { primaries } => {
                let nodes = topo
                    .nodes()
                    .iter()
                    .filter(|n| n.role() == rwsplit_core::Role::Primary)
                    .map(|n| n.name().to_owned())
                    .collect();
                RoutingError::SplitBrain { primaries, nodes }
            }
            source => RoutingError::Unroutable { source },
        }
    }

    /// Whether SeaORM's `DbErr::Query` carries it (a statement's own outcome) rather than
    /// `DbErr::Conn` (the node or the cluster).
    /// Whether this is the router's decision that the statement cannot run now: nothing was
    /// sent and no node failed (no primary, a split brain, no eligible or no remaining node,
    /// a node removed, positions unsupported). Carried as `DbErr::Exec` in
    /// `sqlx::Error::Configuration`, whose text does not claim a network fault.
    #[must_use]
    pub fn is_decision(&self) -> bool {
        matches!(
            self,
            RoutingError::NoPrimary { .. }
                | RoutingError::SplitBrain { .. }
                | RoutingError::Unroutable { .. }
                | RoutingError::NoNodeLeft { .. }
                | RoutingError::NodeRemoved { .. }
                | RoutingError::PositionUnsupported { .. }
        )
    }

    fn is_query(&self) -> bool {
        matches!(
            self,
            RoutingError::ReplicaRefused { .. }
                | RoutingError::PositionUnreadable { .. }
                | RoutingError::PositionUnsupported { .. }
        )
    }
}

/// The error inside the `DbErr`: the routing error, shown with the adapter's prefix and its
/// cause so that the `DbErr`'s text says everything (applications print the `DbErr`, and
/// SeaORM's `RuntimeErr` has no `source()` to follow).
#[derive(Debug)]
struct Carried(RoutingError);

impl fmt::Display for Carried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        write!(f, "rwsplit: {text}")?;
        // The immediate cause only: a `DbErr`'s text already holds its own causes. Not twice:
        // a variant whose own text ends with its cause (`Unroutable`) already says it.
        match std::error::Error::source(&self.0).map(ToString::to_string) {
            Some(cause) if !text.ends_with(&cause) => write!(f, ": {cause}"),
            _ => Ok(()),
        }
    }
}

/// No `source()`: the text holds the cause already, and [`routing_error`] is the way to the
/// typed error (and from it, to its cause).
impl std::error::Error for Carried {}

impl From<RoutingError> for DbErr {
    /// A decision (nothing sent, no node failed: [`RoutingError::is_decision`]) as
    /// `DbErr::Exec` in `sqlx::Error::Configuration`; a replica's refusal and an unreadable
    /// position as `DbErr::Query`, the rest as `DbErr::Conn`, in `sqlx::Error::Io` (see
    /// [`RoutingError`]).
    fn from(e: RoutingError) -> DbErr {
        if e.is_decision() {
            return DbErr::Exec(carry_decision(e));
        }
        let query = e.is_query();
        let runtime = carry(e);
        if query { DbErr::Query(runtime) } else { DbErr::Conn(runtime) }
    }
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
fn carry(e: RoutingError) -> RuntimeErr {
    let io = std::io::Error::other(Carried(e));
    RuntimeErr::SqlxError(std::sync::Arc::new(sea_orm::sqlx::Error::Io(io)))
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
fn carry_decision(e: RoutingError) -> RuntimeErr {
    let boxed = Box::new(Carried(e));
    RuntimeErr::SqlxError(std::sync::Arc::new(sea_orm::sqlx::Error::Configuration(boxed)))
}

/// Without a sqlx driver SeaORM has no error that carries another: the text only.
#[cfg(not(any(feature = "postgres", feature = "mysql")))]
fn carry(e: RoutingError) -> RuntimeErr {
    RuntimeErr::Internal(Carried(e).to_string())
}

#[cfg(not(any(feature = "postgres", feature = "mysql")))]
fn carry_decision(e: RoutingError) -> RuntimeErr {
    carry(e)
}

/// The [`RoutingError`] inside `err`, if the adapter made `err` (else the database's or
/// SeaORM's own error: `None`).
///
/// ```
/// use rwsplit_sea_orm::{RoutingError, routing_error};
/// use sea_orm::DbErr;
///
/// let ours: DbErr = RoutingError::NoPrimary { nodes: Vec::new() }.into();
/// assert!(matches!(routing_error(&ours), Some(RoutingError::NoPrimary { .. })));
/// assert!(routing_error(&ours).is_some_and(RoutingError::is_retryable));
/// let theirs = DbErr::RecordNotFound("user 7".into());
/// assert!(routing_error(&theirs).is_none());
/// ```
#[must_use]
pub fn routing_error(err: &DbErr) -> Option<&RoutingError> {
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    if let DbErr::Conn(RuntimeErr::SqlxError(e))
    | DbErr::Exec(RuntimeErr::SqlxError(e))
    | DbErr::Query(RuntimeErr::SqlxError(e)) = err
    {
        let carried = match &**e {
            sea_orm::sqlx::Error::Io(io) => io.get_ref().and_then(|c| c.downcast_ref::<Carried>()),
            sea_orm::sqlx::Error::Configuration(b) => b.downcast_ref::<Carried>(),
            _ => None,
        };
        return carried.map(|c| &c.0);
    }
    let _ = err;
    None
}

/// `err` with the number of nodes tried set to `attempts`, if it is a routing error that
/// counts them (an attempt given up on its node, counted once the loop knows how many came
/// before); any other error as it is.
pub(crate) fn with_attempts(err: DbErr, attempts: usize) -> DbErr {
    let Some(mut e) = routing_error(&err).cloned() else { return err };
    match e.attempts_mut() {
        Some(n) => *n = attempts,
        None => return err,
    }
    e.into()
}

/// `err` naming `node` if it is an unreadable position read there
/// ([`RoutingError::PositionUnreadable`], made where the node is not known); any other error
/// as it is.
pub(crate) fn read_on(err: DbErr, node: &str) -> DbErr {
    match routing_error(&err) {
        Some(RoutingError::PositionUnreadable { node: None, what, value, source }) => {
            RoutingError::PositionUnreadable {
                node: Some(node.to_owned()),
                what,
                value: value.clone(),
                source: source.clone(),
            }
            .into()
        }
        _ => err,
    }
}

/// The SQLSTATE of a database error inside `err`, if the driver gave one.
pub(crate) fn sqlstate(err: &DbErr) -> Option<String> {
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    if let DbErr::Conn(RuntimeErr::SqlxError(e))
    | DbErr::Exec(RuntimeErr::SqlxError(e))
    | DbErr::Query(RuntimeErr::SqlxError(e)) = err
        && let sea_orm::sqlx::Error::Database(db) = &**e
    {
        return db.code().map(std::borrow::Cow::into_owned);
    }
    let _ = err;
    None
}

/// At most 64 characters of a server's text, for an error.
pub(crate) fn bounded(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests;
