//! The monitor's connections: the adapter's side of `rwsplit-monitor`'s [`Connector`] and
//! [`ProbeConn`] traits.
//!
//! Every connection the monitor uses is its own, never the application's pool — a pool that is
//! full is back-pressure, not a dead node. It is one driver connection, opened from the node's
//! own options (the sqlx options SeaORM derives from its `ConnectOptions`, the application's
//! `map_sqlx_*_opts` hooks included), with no pool around it:
//! - no ping before each use (a pool's `test_before_acquire`): a probe is one round trip, its
//!   statement prepared once per connection (sqlx's statement cache);
//! - a connection whose server went away fails the next probe at once, and the next open is
//!   refused at once: a pool would reconnect, retrying a refused connection until its acquire
//!   timeout, so a stopped primary's last "I am the primary" would stand for a probe timeout after
//!   another node was promoted (two primaries: no writes, no bounded reads).
//!
//! A node behind transaction pooling ([`Pooling::Transaction`](crate::Pooling)) is probed on
//! such a connection too, PostgreSQL's with every statement sent in the simple protocol: one
//! round trip, a transaction of its own on whichever server connection the pooler lends it for
//! that statement alone, and no prepared statement left on it. (Framed like the read pool, a
//! probe would take three round trips and hold the pooler's server connection across its
//! client's pauses between them; with 200 instances the probes queued in PgBouncer behind one
//! another.) A MySQL/MariaDB
//! node behind transaction pooling keeps that framed one-connection pool. Failover's admin
//! connections use
//! [`AutoFailover::admin_credentials`](crate::advanced::AutoFailover::admin_credentials) when set.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rwsplit_core::NodeId;
use rwsplit_monitor::{Connector, ProbeConn, ProbeError, Purpose, Row, with_literal};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, QueryResult, Statement,
};

/// One connection of the monitor's, as a probe connection.
pub(crate) struct NodeProbe {
    conn: ProbeLink,
    /// Every query in the simple protocol (a PostgreSQL node behind transaction pooling): no
    /// prepared statement, each statement its own transaction.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    simple: bool,
    /// The connect (or the pool's acquire) timeout: its expiry is reported as a probe timeout.
    timeout: Duration,
}

/// What a [`NodeProbe`] talks through.
enum ProbeLink {
    /// A one-connection pool (a node behind transaction pooling: its hooks frame each use).
    Pool(DatabaseConnection),
    /// A PostgreSQL connection of its own.
    #[cfg(feature = "postgres")]
    Postgres(tokio::sync::Mutex<sea_orm::sqlx::PgConnection>),
    /// A MySQL/MariaDB connection of its own.
    #[cfg(feature = "mysql")]
    MySql(tokio::sync::Mutex<sea_orm::sqlx::MySqlConnection>),
}

impl NodeProbe {
    /// Runs `sql` (with `arg` as its parameter `$1`, if any) and returns its first row.
    async fn fetch(&self, sql: &str, arg: Option<&str>) -> Result<Option<Row>, ProbeError> {
        #[cfg(any(feature = "postgres", feature = "mysql"))]
        use sea_orm::sqlx::{Column as _, Row as _};
        match &self.conn {
            ProbeLink::Pool(conn) => {
                // A framed pool (a MySQL/MariaDB node behind transaction pooling): its hooks
                // drop what a statement prepared, so the parameter is written in.
                let sql = arg.map_or_else(|| sql.to_owned(), |a| with_literal(sql, a));
                let stmt = Statement::from_string(conn.get_database_backend(), sql);
                let row =
                    conn.query_one_raw(stmt).await.map_err(|e| probe_error(e, self.timeout))?;
                Ok(row.map(|r| {
                    let names = r.column_names();
                    Row::new(names.into_iter().enumerate().map(|(i, n)| (n, text(&r, i))))
                }))
            }
            #[cfg(feature = "postgres")]
            ProbeLink::Postgres(conn) => {
                let mut conn = conn.lock().await;
                let row = if self.simple {
                    // One round trip, nothing left on the server connection: the parameter
                    // written in.
                    let sql = arg.map_or_else(|| sql.to_owned(), |a| with_literal(sql, a));
                    sea_orm::sqlx::raw_sql(sea_orm::sqlx::AssertSqlSafe(sql))
                        .fetch_optional(&mut *conn)
                        .await
                } else {
                    // Prepared once per connection (sqlx's statement cache), whatever the
                    // parameter, then one round trip.
                    let query = sea_orm::sqlx::query(sea_orm::sqlx::AssertSqlSafe(sql));
                    match arg {
                        Some(a) => query.bind(a).fetch_optional(&mut *conn).await,
                        None => query.fetch_optional(&mut *conn).await,
                    }
                };
                let row = row.map_err(ProbeError::unreachable)?;
                Ok(row.map(|r| {
                    let cols = r.columns().iter().map(|c| c.name().to_owned()).collect::<Vec<_>>();
                    Row::new(cols.into_iter().enumerate().map(|(i, n)| (n, pg_text(&r, i))))
                }))
            }
            #[cfg(feature = "mysql")]
            ProbeLink::MySql(conn) => {
                let mut conn = conn.lock().await;
                // MySQL's placeholder is `?`: the parameter written in.
                let sql = arg.map_or_else(|| sql.to_owned(), |a| with_literal(sql, a));
                let row = sea_orm::sqlx::query(sea_orm::sqlx::AssertSqlSafe(sql))
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(ProbeError::unreachable)?;
                Ok(row.map(|r| {
                    let cols = r.columns().iter().map(|c| c.name().to_owned()).collect::<Vec<_>>();
                    Row::new(cols.into_iter().enumerate().map(|(i, n)| (n, my_text(&r, i))))
                }))
            }
        }
    }
}

impl ProbeConn for NodeProbe {
    async fn fetch_row(&self, sql: &str) -> Result<Option<Row>, ProbeError> {
        self.fetch(sql, None).await
    }

    async fn fetch_row_with(&self, sql: &str, arg: &str) -> Result<Option<Row>, ProbeError> {
        self.fetch(sql, Some(arg)).await
    }

    async fn execute(&self, sql: &str) -> Result<(), ProbeError> {
        // Unprepared (the simple protocol): MariaDB refuses some replication statements as
        // prepared statements.
        match &self.conn {
            ProbeLink::Pool(conn) => conn
                .execute_unprepared(sql)
                .await
                .map(drop)
                .map_err(|e| probe_error(e, self.timeout)),
            #[cfg(feature = "postgres")]
            ProbeLink::Postgres(conn) => {
                let mut conn = conn.lock().await;
                sea_orm::sqlx::raw_sql(sea_orm::sqlx::AssertSqlSafe(sql))
                    .execute(&mut *conn)
                    .await
                    .map(drop)
                    .map_err(ProbeError::unreachable)
            }
            #[cfg(feature = "mysql")]
            ProbeLink::MySql(conn) => {
                let mut conn = conn.lock().await;
                sea_orm::sqlx::raw_sql(sea_orm::sqlx::AssertSqlSafe(sql))
                    .execute(&mut *conn)
                    .await
                    .map(drop)
                    .map_err(ProbeError::unreachable)
            }
        }
    }
}

/// A PostgreSQL column as text, whatever its SQL type.
#[cfg(feature = "postgres")]
fn pg_text(row: &sea_orm::sqlx::postgres::PgRow, i: usize) -> Option<String> {
    use sea_orm::sqlx::Row as _;
    if let Ok(v) = row.try_get::<Option<String>, _>(i) {
        return v;
    }
    if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = row.try_get::<Option<i32>, _>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = row.try_get::<Option<bool>, _>(i) {
        return v.map(|v| v.to_string());
    }
    row.try_get::<Option<Vec<u8>>, _>(i)
        .ok()
        .flatten()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// A MySQL/MariaDB column as text, whatever its SQL type (`SHOW SLAVE STATUS` mixes strings
/// and integers).
#[cfg(feature = "mysql")]
fn my_text(row: &sea_orm::sqlx::mysql::MySqlRow, i: usize) -> Option<String> {
    use sea_orm::sqlx::Row as _;
    if let Ok(v) = row.try_get::<Option<String>, _>(i) {
        return v;
    }
    if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = row.try_get::<Option<u64>, _>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = row.try_get::<Option<i32>, _>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = row.try_get::<Option<bool>, _>(i) {
        return v.map(|v| v.to_string());
    }
    row.try_get::<Option<Vec<u8>>, _>(i)
        .ok()
        .flatten()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// A driver error as the monitor reads it: the pool's own timeout is a timeout (the node did not
/// answer in time: slow or frozen, not refusing), everything else a failure to reach the node.
fn probe_error(e: sea_orm::DbErr, after: Duration) -> ProbeError {
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    use sea_orm::RuntimeErr;
    use sea_orm::{ConnAcquireErr, DbErr};
    let timed_out = match &e {
        DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => true,
        #[cfg(any(feature = "postgres", feature = "mysql"))]
        DbErr::Conn(RuntimeErr::SqlxError(s))
        | DbErr::Exec(RuntimeErr::SqlxError(s))
        | DbErr::Query(RuntimeErr::SqlxError(s)) => {
            matches!(**s, sea_orm::sqlx::Error::PoolTimedOut)
        }
        _ => false,
    };
    if timed_out { ProbeError::Timeout { after } } else { ProbeError::unreachable(e) }
}

/// A column as text, whatever its SQL type (`SHOW SLAVE STATUS` mixes strings and integers).
fn text(row: &QueryResult, i: usize) -> Option<String> {
    if let Ok(v) = row.try_get_by_index::<Option<String>>(i) {
        return v;
    }
    if let Ok(v) = row.try_get_by_index::<Option<i64>>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = row.try_get_by_index::<Option<u64>>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = row.try_get_by_index::<Option<i32>>(i) {
        return v.map(|v| v.to_string());
    }
    if let Ok(v) = row.try_get_by_index::<Option<bool>>(i) {
        return v.map(|v| v.to_string());
    }
    row.try_get_by_index::<Option<Vec<u8>>>(i)
        .ok()
        .flatten()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// Where the monitor opens its own connections to one node from: part of the node's entry in
/// the adapter's registry (`Node::probe`), so it comes and goes with the node.
#[derive(Clone)]
pub(crate) enum ProbeFrom {
    /// The node's own options (as configured through the builder, or made by a topology
    /// source for a node it added): the monitor opens driver connections from the sqlx options
    /// SeaORM derives from them.
    Options(ConnectOptions),
    /// The options of a node behind transaction pooling, framed for the monitor: on
    /// MySQL/MariaDB a one-connection pool whose hooks make each use one transaction; on
    /// PostgreSQL (whose hooks go unused) a driver connection of its own that sends each
    /// statement alone in the simple protocol (see the module docs).
    Framed(ConnectOptions),
    /// A pool the application built ([`RoutedConnection::from_connections`]): the monitor
    /// opens its own connections from the pool's connect options.
    ///
    /// [`RoutedConnection::from_connections`]: crate::RoutedConnection::from_connections
    Given(GivenNode),
}

/// How the monitor's connections are opened, beside each node's [`ProbeFrom`].
#[derive(Clone)]
pub(crate) struct ProbeSettings {
    /// Failover's admin account, `(user, password)`, for [`Purpose::Admin`] connections made
    /// from options.
    pub(crate) admin: Option<(String, String)>,
    /// Connect and acquire timeout, a backstop (the monitor bounds each connect and probe
    /// itself): the longest a connect may take, a node's first
    /// (`MonitorConfig::first_connect_timeout_value`: twice the connect timeout).
    pub(crate) timeout: Duration,
}

impl fmt::Debug for ProbeSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbeSettings")
            .field("admin_user", &self.admin.as_ref().map(|(u, _)| u.as_str()))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Opens the monitor's connections: looks the node up by id in the adapter's registry and
/// opens from its [`ProbeFrom`]. An id of a node that is gone opens nothing.
pub(crate) struct NodeConnector {
    sources: Sources,
    settings: ProbeSettings,
}

/// What a live [`NodeConnector`] needs of the adapter's node registry: a node's
/// [`ProbeFrom`], looked up by id when the monitor connects to it.
pub(crate) trait ProbeSources: Send + Sync + 'static {
    /// How many nodes the registry holds.
    fn count(&self) -> usize;

    /// How the monitor opens node `id`'s connections; `None` for an id of no node, or a node
    /// the adapter does not probe.
    fn probe_from(&self, id: NodeId) -> Option<ProbeFrom>;
}

/// Where a [`NodeConnector`] finds each node's [`ProbeFrom`].
enum Sources {
    /// The connection's own registry: nodes a topology source adds are found there.
    Live(Arc<dyn ProbeSources>),
    /// A copy, by id: a monitor several connections share must not hold one connection's
    /// pools open after it is dropped.
    Fixed(Vec<(NodeId, ProbeFrom)>),
}

impl NodeConnector {
    pub(crate) fn new(nodes: Arc<dyn ProbeSources>, settings: ProbeSettings) -> NodeConnector {
        NodeConnector { sources: Sources::Live(nodes), settings }
    }

    /// A connector over a fixed set of nodes (see [`Sources::Fixed`]).
    pub(crate) fn fixed(nodes: Vec<(NodeId, ProbeFrom)>, settings: ProbeSettings) -> NodeConnector {
        NodeConnector { sources: Sources::Fixed(nodes), settings }
    }

    fn count(&self) -> usize {
        match &self.sources {
            Sources::Live(nodes) => nodes.count(),
            Sources::Fixed(nodes) => nodes.len(),
        }
    }
}

impl fmt::Debug for NodeConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // ConnectOptions' own Debug prints URLs with their passwords.
        f.debug_struct("NodeConnector")
            .field("nodes", &self.count())
            .field("settings", &self.settings)
            .finish()
    }
}

impl Connector for NodeConnector {
    type Conn = NodeProbe;

    async fn open(&self, node: NodeId, purpose: Purpose) -> Result<NodeProbe, ProbeError> {
        // A clone of the options: the node is not held while connecting (its drain waits for
        // the last holder).
        let from = match &self.sources {
            Sources::Live(nodes) => nodes.probe_from(node),
            Sources::Fixed(nodes) => nodes.iter().find(|(i, _)| *i == node).map(|(_, p)| p.clone()),
        };
        let timeout = self.settings.timeout;
        let admin = |base: &ConnectOptions| match (purpose, &self.settings.admin) {
            (Purpose::Admin, Some((user, password))) => {
                ConnectOptions::new(with_credentials(base.get_url(), user, password))
            }
            _ => base.clone(),
        };
        match from {
            None => Err(ProbeError::unreachable("no such node, or nothing to open it from")),
            Some(ProbeFrom::Given(given)) => given.open(timeout).await,
            // The node's options; behind transaction pooling, PostgreSQL's too, every
            // statement then in the simple protocol (see the module docs).
            Some(ProbeFrom::Options(base)) => derived(admin(&base), timeout, false).await,
            Some(ProbeFrom::Framed(base))
                if crate::product::pooled_probe_unframed(base.get_url()) =>
            {
                derived(admin(&base), timeout, true).await
            }
            Some(ProbeFrom::Framed(base)) => {
                // A refused connection fails at once here; the driver's pool would retry it until
                // its acquire timeout, making a dead node look like a slow one.
                if let Some((host, port)) = address(base.get_url()) {
                    tokio::net::TcpStream::connect((host.as_str(), port))
                        .await
                        .map_err(ProbeError::refused)?;
                }
                let mut opts = admin(&base);
                // One connection, opened only when used: behind transaction pooling an idle
                // connection would sit inside its transaction, holding a server connection.
                opts.max_connections(1)
                    .min_connections(0)
                    .connect_timeout(timeout)
                    .acquire_timeout(timeout)
                    .connect_lazy(false)
                    .sqlx_logging(false);
                let conn = Database::connect(opts).await.map_err(|e| probe_error(e, timeout))?;
                Ok(NodeProbe { conn: ProbeLink::Pool(conn), simple: false, timeout })
            }
        }
    }
}

/// A driver connection of the monitor's own, opened from the sqlx options SeaORM derives from
/// `opts` ([`derive`]); `simple`: every query in the simple protocol.
async fn derived(
    opts: ConnectOptions,
    timeout: Duration,
    simple: bool,
) -> Result<NodeProbe, ProbeError> {
    let Some(given) = derive(opts).await? else {
        return Err(ProbeError::unreachable("not a PostgreSQL or MySQL node"));
    };
    let mut probe = given.open(timeout).await?;
    probe.simple = simple;
    Ok(probe)
}

/// The sqlx options SeaORM would connect with for `opts` (its URL and the application's
/// `map_sqlx_*_opts` hooks), read off a pool that is built but never connects.
async fn derive(opts: ConnectOptions) -> Result<Option<GivenNode>, ProbeError> {
    given_node(opts).await.map_err(ProbeError::unreachable)
}

/// [`derive`], with SeaORM's error.
async fn given_node(mut opts: ConnectOptions) -> Result<Option<GivenNode>, DbErr> {
    opts.connect_lazy(true).sqlx_logging(false);
    let pool = Database::connect(opts).await?;
    Ok(GivenNode::of(&pool))
}

/// The `application_name` of the monitor's own PostgreSQL connections.
pub const MONITOR_APPLICATION: &str = "rwsplit-monitor";

/// A pool the application built, as the monitor can open a connection of its own to its node.
#[derive(Clone)]
pub(crate) enum GivenNode {
    /// A PostgreSQL pool's connect options.
    #[cfg(feature = "postgres")]
    Postgres(sea_orm::sqlx::postgres::PgConnectOptions),
    /// A MySQL/MariaDB pool's connect options.
    #[cfg(feature = "mysql")]
    MySql(sea_orm::sqlx::mysql::MySqlConnectOptions),
}

impl GivenNode {
    /// The connect options of `conn`'s pool; `None` for a connection that is no sqlx pool (a
    /// `MockDatabase` in tests): there is then nothing for a monitor to probe.
    pub(crate) fn of(conn: &DatabaseConnection) -> Option<GivenNode> {
        #[cfg(any(feature = "postgres", feature = "mysql"))]
        use sea_orm::DatabaseConnectionType as T;
        match &conn.inner {
            #[cfg(feature = "postgres")]
            T::SqlxPostgresPoolConnection(_) => Some(GivenNode::Postgres(
                (*conn.get_postgres_connection_pool().connect_options()).clone(),
            )),
            #[cfg(feature = "mysql")]
            T::SqlxMySqlPoolConnection(_) => Some(GivenNode::MySql(
                (*conn.get_mysql_connection_pool().connect_options()).clone(),
            )),
            _ => None,
        }
    }

    /// A driver connection of the monitor's own, opened within `timeout`: a refused connection
    /// is reported as refused at once, one that does not answer as a timeout.
    async fn open(&self, timeout: Duration) -> Result<NodeProbe, ProbeError> {
        let conn = self.dial(timeout).await.map_err(|failed| match failed {
            Dialed::TimedOut => ProbeError::Timeout { after: timeout },
            #[cfg(any(feature = "postgres", feature = "mysql"))]
            Dialed::Failed(e) => match e {
                sea_orm::sqlx::Error::Io(io)
                    if io.kind() == std::io::ErrorKind::ConnectionRefused =>
                {
                    ProbeError::refused(io)
                }
                // The server answered: it has no room for another connection. Alive, busy.
                sea_orm::sqlx::Error::Database(db)
                    if crate::product::server_error(db.as_ref())
                        == Some(crate::product::ServerError::TooManyConnections) =>
                {
                    ProbeError::busy(sea_orm::sqlx::Error::Database(db))
                }
                e => ProbeError::unreachable(e),
            },
        })?;
        Ok(NodeProbe { conn, simple: false, timeout })
    }

    /// A driver connection of rwsplit's own (named `rwsplit-monitor` on PostgreSQL), opened
    /// within `timeout`.
    async fn dial(&self, timeout: Duration) -> Result<ProbeLink, Dialed> {
        #[cfg(any(feature = "postgres", feature = "mysql"))]
        use sea_orm::sqlx::{ConnectOptions as _, Connection as _};
        match *self {
            #[cfg(feature = "postgres")]
            GivenNode::Postgres(ref o) => {
                // Named, so operators tell the monitor's connections from the application's
                // (`pg_stat_activity.application_name`).
                let o = o.clone().application_name(MONITOR_APPLICATION).disable_statement_logging();
                let c =
                    tokio::time::timeout(timeout, sea_orm::sqlx::PgConnection::connect_with(&o))
                        .await
                        .map_err(|_| Dialed::TimedOut)?
                        .map_err(Dialed::Failed)?;
                Ok(ProbeLink::Postgres(tokio::sync::Mutex::new(c)))
            }
            #[cfg(feature = "mysql")]
            GivenNode::MySql(ref o) => {
                let o = o.clone().disable_statement_logging();
                let c =
                    tokio::time::timeout(timeout, sea_orm::sqlx::MySqlConnection::connect_with(&o))
                        .await
                        .map_err(|_| Dialed::TimedOut)?
                        .map_err(Dialed::Failed)?;
                Ok(ProbeLink::MySql(tokio::sync::Mutex::new(c)))
            }
        }
    }
}

/// Why [`GivenNode::dial`] opened nothing.
enum Dialed {
    /// No connection within the time given (a black-holed address, a server that never
    /// answers).
    TimedOut,
    /// The driver's error: refused, not resolved, unreachable, or the server said no.
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    Failed(sea_orm::sqlx::Error),
}

/// How long [`first_contact`] waits on one attempt before it logs that the node has not
/// answered yet (a black-holed address answers nothing, ever).
const SILENT_FOR: Duration = Duration::from_secs(1);

/// `connect()`'s first contact with the primary: one connection of rwsplit's own to the node
/// of `opts`, opened and closed, tried again while it fails in a way that may pass (refused,
/// a name not resolved, no route, no answer, a server starting up) until `wait` has gone by.
/// The first failure is logged at once with its cause, and a node silent for [`SILENT_FOR`]
/// too, so a wrong address is neither silent nor waited on for the pool's acquire timeout
/// (sqlx retries a refused connection until then, 30 s by default). A refusal by the server
/// itself (the login, the database, TLS) ends it at once: trying again would not help.
/// At least one attempt is made, given a second at least.
/// `Ok(false)`: the options are not a driver's (a mock): nothing to contact. The error's
/// `Duration`: how long it had tried, when it gave up still trying (`None`: the server, or the
/// options, refused at once).
pub(crate) async fn first_contact(
    opts: &ConnectOptions,
    node: &str,
    wait: Duration,
) -> Result<bool, (DbErr, Option<Duration>)> {
    let Some(given) = given_node(opts.clone()).await.map_err(|e| (e, None))? else {
        return Ok(false);
    };
    let started = tokio::time::Instant::now();
    let deadline = started + wait;
    let mut pause = Duration::from_millis(50);
    let mut logged = None::<String>;
    // The last failure that was not a timeout, for when the wait's end cuts an attempt short.
    let mut earlier = None::<DbErr>;
    loop {
        // The first attempt gets a second at least, however short the wait.
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let left = if logged.is_none() { left.max(SILENT_FOR) } else { left };
        let attempt = given.dial(left);
        tokio::pin!(attempt);
        let dialed = tokio::select! {
            dialed = &mut attempt => dialed,
            () = tokio::time::sleep(SILENT_FOR.min(left)), if logged.is_none() => {
                tracing::warn!(target: "rwsplit", node, wait = ?wait, "the primary has not answered a connection in {SILENT_FOR:?}: waiting for up to `connect_wait` in all (a firewall or a wrong address answers nothing)");
                logged = Some(String::new());
                attempt.await
            }
        };
        let error = match dialed {
            Ok(link) => {
                link.close().await;
                if logged.is_some() {
                    tracing::info!(target: "rwsplit", node, after = ?started.elapsed(), "the primary answered");
                }
                return Ok(true);
            }
            // The last attempt cut short by the wait's end says less than the failure before.
            Err(Dialed::TimedOut) => earlier.take().unwrap_or_else(|| {
                let text = format!("no answer in {wait:?}");
                connect_error(std::io::Error::new(std::io::ErrorKind::TimedOut, text))
            }),
            #[cfg(any(feature = "postgres", feature = "mysql"))]
            Err(Dialed::Failed(e)) => {
                let again = passing(&e);
                let error = DbErr::Conn(sea_orm::RuntimeErr::SqlxError(Arc::new(e)));
                if !again {
                    return Err((error, None));
                }
                error
            }
        };
        let cause = crate::error::connect_cause(&error);
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Err((error, Some(started.elapsed())));
        }
        if logged.as_deref() != Some(cause.as_str()) {
            tracing::warn!(target: "rwsplit", node, cause = %cause, left = ?left, "cannot connect to the primary yet: trying again until `connect_wait` runs out");
            logged = Some(cause);
        }
        tokio::time::sleep(pause.min(left)).await;
        pause = (pause * 2).min(Duration::from_secs(1));
        if tokio::time::Instant::now() >= deadline {
            return Err((error, Some(started.elapsed())));
        }
        earlier = Some(error);
    }
}

/// A connection error that may pass if tried again: the network's (refused, not resolved, no
/// route, reset, timed out) or a server starting up or shutting down; not a server's refusal of
/// the login or the database, TLS, or the settings.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn passing(e: &sea_orm::sqlx::Error) -> bool {
    match e {
        sea_orm::sqlx::Error::Io(_) => true,
        sea_orm::sqlx::Error::Database(db) => db.is_transient_in_connect_phase(),
        _ => false,
    }
}

/// `io` as SeaORM's connection error.
fn connect_error(io: std::io::Error) -> DbErr {
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    return DbErr::Conn(sea_orm::RuntimeErr::SqlxError(Arc::new(sea_orm::sqlx::Error::Io(io))));
    #[cfg(not(any(feature = "postgres", feature = "mysql")))]
    return DbErr::Conn(sea_orm::RuntimeErr::Internal(io.to_string()));
}

impl ProbeLink {
    /// Closes a connection of its own politely (the server logs no broken connection).
    async fn close(self) {
        #[cfg(any(feature = "postgres", feature = "mysql"))]
        use sea_orm::sqlx::Connection as _;
        match self {
            ProbeLink::Pool(pool) => {
                let _ = pool.close().await;
            }
            #[cfg(feature = "postgres")]
            ProbeLink::Postgres(c) => {
                let _ = c.into_inner().close().await;
            }
            #[cfg(feature = "mysql")]
            ProbeLink::MySql(c) => {
                let _ = c.into_inner().close().await;
            }
        }
    }
}

/// The TCP address of a node's URL (`None` for a Unix socket or anything unparsable): host as
/// written, port as written or the scheme's default.
fn address(url: &str) -> Option<(String, u16)> {
    let (scheme, _) = url.split_once("://")?;
    let name = crate::observe::redact::node_name(url);
    let authority = name.split('/').next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && !p.contains(']') => (h, p.parse().ok()?),
        _ => match scheme {
            "postgres" | "postgresql" => (authority, 5432),
            "mysql" | "mariadb" => (authority, 3306),
            _ => return None,
        },
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty() && !host.starts_with('%')).then(|| (host.to_owned(), port))
}

/// `url` with its user and password replaced (percent-encoded).
fn with_credentials(url: &str, user: &str, password: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let userinfo = if password.is_empty() {
        encode(user)
    } else {
        format!("{}:{}", encode(user), encode(password))
    };
    format!("{scheme}://{userinfo}@{host}{tail}")
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::registry::{Node, NodeTable};

    #[test]
    fn admin_credentials_replace_the_users_and_are_encoded() {
        assert_eq!(
            with_credentials("mysql://app:pw@h:3306/shop?x=1", "root", ""),
            "mysql://root@h:3306/shop?x=1"
        );
        assert_eq!(
            with_credentials("postgres://h/db", "ad min", "p@ss"),
            "postgres://ad%20min:p%40ss@h/db"
        );
    }

    #[rstest::rstest]
    #[case("postgres://app:pw@db1:6432/app", Some(("db1", 6432)))]
    #[case("postgres://app@db1/app", Some(("db1", 5432)))]
    #[case("mysql://app@127.0.0.1/shop", Some(("127.0.0.1", 3306)))]
    #[case("postgresql://u@[::1]:5433/app", Some(("::1", 5433)))]
    #[case("postgres://%2Frun%2Fpostgresql/app", None)]
    #[case("not a url", None)]
    fn node_addresses(#[case] url: &str, #[case] expected: Option<(&str, u16)>) {
        assert_eq!(address(url), expected.map(|(h, p)| (h.to_owned(), p)));
    }

    #[test]
    fn the_pools_timeout_is_a_probe_timeout() {
        use sea_orm::{ConnAcquireErr, DbErr};
        let t = Duration::from_millis(500);
        assert!(probe_error(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout), t).is_timeout());
        assert!(
            !probe_error(DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed), t)
                .is_timeout()
        );
    }

    #[test]
    fn the_connector_never_prints_urls() {
        let options = ConnectOptions::new("postgres://app:hunter2@h/db");
        let node = Node::new("h:5432/db".to_owned(), DatabaseConnection::default())
            .probed_from(Some(ProbeFrom::Options(options)));
        let nodes = Arc::new(NodeTable::new(node, Vec::new()));
        let settings = ProbeSettings {
            admin: Some(("root".into(), "secret".into())),
            timeout: Duration::from_secs(1),
        };
        let debug = format!("{:?}", NodeConnector::new(nodes, settings));
        assert!(!debug.contains("hunter2") && !debug.contains("secret"), "{debug}");
    }

    /// The connector finds a node's options in the registry by the whole id: an id of another
    /// generation at the same index opens nothing.
    #[tokio::test]
    async fn the_connector_opens_only_the_node_of_that_generation() {
        let node = Node::new("n:5432/db".to_owned(), DatabaseConnection::default());
        let nodes = Arc::new(NodeTable::new(node, Vec::new()));
        let settings = ProbeSettings { admin: None, timeout: Duration::from_millis(100) };
        let c = NodeConnector::new(nodes, settings);
        let later = NodeId::new(0).next_generation().unwrap();
        for id in [later, NodeId::new(5), NodeId::new(0)] {
            let Err(e) = c.open(id, Purpose::Probe).await else { panic!("opened {id}") };
            assert!(e.to_string().contains("no such node"), "{e}");
        }
    }
}
