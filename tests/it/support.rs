//! Shared fixtures: the clusters `cargo xtask itest` started, private clusters for destructive
//! tests, and small SQL helpers that work on PostgreSQL and MariaDB alike.

pub(crate) mod load;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rwsplit_testkit::{Cluster, ClusterState, DbKind};
use sqlx::{AnyConnection, Connection};

/// The environment variable naming the state file of the shared cluster for `db`.
fn state_var(db: DbKind) -> &'static str {
    match db {
        DbKind::MariaDb => "RWSPLIT_ITEST_CLUSTER_MARIADB",
        _ => "RWSPLIT_ITEST_CLUSTER_POSTGRES",
    }
}

/// The guard every test goes through: without the environment `cargo xtask itest` sets, fail
/// loudly instead of skipping.
fn state_path(db: DbKind) -> String {
    let var = state_var(db);
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the integration tests with `cargo xtask itest`")
    })
}

/// The long-lived cluster for `db` started by `cargo xtask itest`, shared by the tests that do
/// not break nodes. Tests isolate themselves with [`Cluster::create_database`].
pub(crate) fn shared(db: DbKind) -> &'static Cluster {
    static PG: OnceLock<Cluster> = OnceLock::new();
    static MARIA: OnceLock<Cluster> = OnceLock::new();
    let cell = if db == DbKind::MariaDb { &MARIA } else { &PG };
    cell.get_or_init(|| {
        let path = state_path(db);
        let state = ClusterState::load(path.as_ref()).expect("the itest cluster state is readable");
        Cluster::attach(&state).expect("the itest cluster can be attached")
    })
}

/// The guard for tests that start clusters of their own kind (Patroni): they run only under
/// `cargo xtask itest`, which also reaps what a crashed test leaves below its directory.
pub(crate) fn require_itest() {
    let _ = state_path(DbKind::Postgres);
}

/// A private cluster for a test that crashes, hangs, lags or promotes nodes. It is stopped when
/// dropped.
pub(crate) async fn own_cluster(db: DbKind, name: &str, replicas: usize) -> Cluster {
    let _ = state_path(db);
    Cluster::builder()
        .db(db)
        .name(name)
        .replicas(replicas)
        .start()
        .await
        .unwrap_or_else(|e| panic!("a private {db} cluster starts: {e}"))
}

pub(crate) async fn connect(url: &str) -> AnyConnection {
    sqlx::any::install_default_drivers();
    AnyConnection::connect(url).await.unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// Runs `sql` on the database at `url`.
pub(crate) async fn exec(conn: &mut AnyConnection, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(conn).await.map(drop)
}

/// MariaDB's global status variable `name` (`information_schema.GLOBAL_STATUS`) as a number:
/// `None` if the server has no such variable (its plugin not loaded) or it is not a number.
pub(crate) async fn global_status(conn: &mut AnyConnection, name: &str) -> Option<u64> {
    let value: Option<String> = sqlx::query_scalar(
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = ?",
    )
    .bind(name)
    .fetch_optional(conn)
    .await
    .unwrap_or_else(|e| panic!("reading the status {name}: {e}"));
    value.and_then(|v| v.parse().ok())
}

/// Polls `check` every 5 ms until it returns true or `timeout` passes; returns how long it took.
pub(crate) async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

/// Polls `check` (see [`eventually`]) until it returns true; how long that took, or a panic
/// naming `what` after 20 s.
pub(crate) async fn until<F, Fut>(what: &str, check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually(Duration::from_secs(20), check)
        .await
        .unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// Runs `write` (a write through `db`) every 50 ms until `db`'s monitor sees every replica
/// further behind than a read waits (over 50 ms), at most 20 s: the router knows its replicas
/// late (a lag just set on them is seen only once writes reach them). By the figure the router
/// judges reach by: the server's own where it gave one (PostgreSQL's time since its last
/// replayed commit, which climbs from zero over the delay's first stretch after a delay is
/// set), else the estimate. Panics naming the stats if it never does.
pub(crate) async fn write_until_replicas_behind<F, Fut>(
    db: &rwsplit_sea_orm::RoutedConnection,
    mut write: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let far = eventually(Duration::from_secs(20), || {
        let written = write();
        async move {
            written.await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            db.stats().replicas().iter().all(|r| {
                let lag = r.lag();
                lag.reported_time().or(lag.time()).is_some_and(|t| t > Duration::from_millis(50))
            })
        }
    })
    .await;
    assert!(far.is_some(), "the monitor sees the replicas behind: {:?}", db.stats());
}

/// Another client of the primary at `url`, writing a row into a table of its own every 20 ms
/// until the guard is dropped: replicas that apply with a delay then always have a write
/// waiting, so they stay behind (an idle delayed replica has replayed everything and reads as
/// current), whatever pace a loaded machine leaves the test's own writes.
pub(crate) async fn writer_beside(url: &str) -> WriterBeside {
    sqlx::any::install_default_drivers();
    let mut c = AnyConnection::connect(url).await.expect("the writer beside connects");
    sqlx::query("CREATE TABLE IF NOT EXISTS beside_writes (n INT)")
        .execute(&mut c)
        .await
        .expect("the writer beside's table");
    WriterBeside(tokio::spawn(async move {
        loop {
            let _ = sqlx::query("INSERT INTO beside_writes (n) VALUES (1)").execute(&mut c).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }))
}

/// Stops [`writer_beside`]'s writes when dropped.
pub(crate) struct WriterBeside(tokio::task::JoinHandle<()>);

impl Drop for WriterBeside {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The number of rows in table `t` of the database at `url`, or `None` when it cannot be read.
pub(crate) async fn count(url: &str, table: &str) -> Option<i64> {
    sqlx::any::install_default_drivers();
    let mut c = AnyConnection::connect(url).await.ok()?;
    let sql = format!("SELECT count(*) FROM {table}");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&mut c).await.ok()
}

/// A `RoutedConnection` over a test database: its primary and replicas, with read-your-writes
/// on or off (off makes every read eligible for a replica at once, whatever the task wrote).
pub(crate) async fn routed(
    tdb: &rwsplit_testkit::TestDatabase,
    read_your_writes: bool,
) -> rwsplit_sea_orm::RoutedConnection {
    rwsplit_sea_orm::RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replicas(tdb.replica_urls())
        .read_your_writes(read_your_writes)
        .connect()
        .await
        .expect("a routed connection to the test database")
}

/// Reads and writes per role, as the adapter counted them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Served {
    pub(crate) primary_reads: u64,
    pub(crate) primary_writes: u64,
    pub(crate) replica_reads: u64,
    pub(crate) replica_writes: u64,
}

impl Served {
    fn of(db: &rwsplit_sea_orm::RoutedConnection) -> Served {
        let s = db.stats();
        Served {
            primary_reads: s.primary().reads(),
            primary_writes: s.primary().writes(),
            replica_reads: s.replicas().iter().map(|n| n.reads()).sum(),
            replica_writes: s.replicas().iter().map(|n| n.writes()).sum(),
        }
    }

    /// Only replicas served (at least one read), the primary nothing.
    pub(crate) fn replicas_only(&self) -> bool {
        self.replica_reads > 0
            && self.replica_writes == 0
            && self.primary_reads == 0
            && self.primary_writes == 0
    }

    /// Only the primary served, the replicas nothing.
    pub(crate) fn primary_only(&self) -> bool {
        self.replica_reads == 0
            && self.replica_writes == 0
            && self.primary_reads + self.primary_writes > 0
    }
}

/// Runs `op` and returns its result with what each role served meanwhile.
pub(crate) async fn served<T, F, Fut>(db: &rwsplit_sea_orm::RoutedConnection, op: F) -> (T, Served)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let before = Served::of(db);
    let out = op().await;
    let after = Served::of(db);
    (
        out,
        Served {
            primary_reads: after.primary_reads - before.primary_reads,
            primary_writes: after.primary_writes - before.primary_writes,
            replica_reads: after.replica_reads - before.replica_reads,
            replica_writes: after.replica_writes - before.replica_writes,
        },
    )
}

/// Each replica's probe verdicts so far (failed, busy, health changes): equal before and after a
/// stretch of reads when the monitor saw nothing disturb their nodes meanwhile.
pub(crate) fn probe_verdicts(db: &rwsplit_sea_orm::RoutedConnection) -> Vec<(u64, u64, u64)> {
    db.stats()
        .replicas()
        .iter()
        .map(|n| (n.failed_probes(), n.busy_probes(), n.changes()))
        .collect()
}

/// The SQL that names the server's port, per backend.
pub(crate) fn port_sql(backend: sea_orm::DbBackend) -> &'static str {
    match backend {
        sea_orm::DbBackend::MySql => "SELECT CAST(@@port AS SIGNED) AS port",
        _ => "SELECT inet_server_port()::bigint AS port",
    }
}

/// The port of the server that runs `SELECT port` through `conn`.
pub(crate) async fn server_port<C: sea_orm::ConnectionTrait>(conn: &C, sql_prefix: &str) -> u16 {
    let backend = conn.get_database_backend();
    let sql = format!("{sql_prefix}{}", port_sql(backend));
    let row = conn
        .query_one_raw(sea_orm::Statement::from_string(backend, sql))
        .await
        .expect("the port query runs")
        .expect("one row");
    let port: i64 = row.try_get("", "port").expect("a port column");
    u16::try_from(port).expect("a port")
}

/// The process's global subscriber: `RUST_LOG`'s filter (errors only by default) to the test
/// harness's captured output. Installed once, by every test that wants log output or captures
/// logs. It also makes a test's scoped subscriber (`set_default`) see every event its thread
/// emits, whatever other tests run meanwhile: with a single dispatcher registered,
/// tracing-core computes a callsite's cached interest from the default of whichever thread
/// reaches it first, and a sibling test's thread with no subscriber caches "never", losing the
/// event for the scoped subscriber too (tokio-rs/tracing#3611). With this second dispatcher,
/// interest is the union over all of them.
pub(crate) fn tracing_baseline() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Already set (by another harness): the baseline is then whatever that is.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    });
}

/// Asserts that `err` is a replica's read-only refusal of a statement classified as a read:
/// `RoutingError::ReplicaRefused` in `DbErr::Query`, naming a replica, with the replica's own
/// database error (and its code) behind it — SQLSTATE 25006 on PostgreSQL, error 1290 or 1792
/// on MariaDB.
pub(crate) fn assert_replica_refused(err: &sea_orm::DbErr, kind: DbKind) {
    use rwsplit_sea_orm::{RoutingError, routing_error};
    use sea_orm::{DbErr, RuntimeErr, sqlx};
    assert!(matches!(err, DbErr::Query(_)), "SeaORM's variant for it: {err:?}");
    let Some(RoutingError::ReplicaRefused { node, sqlstate, source, .. }) = routing_error(err)
    else {
        panic!("not a replica's refusal: {err:?}")
    };
    let DbErr::Query(RuntimeErr::SqlxError(e)) = source else {
        panic!("not the driver's error: {source:?}")
    };
    let sqlx::Error::Database(db) = &**e else { panic!("not the server's error: {e:?}") };
    assert_eq!(sqlstate.as_deref(), db.code().as_deref(), "the SQLSTATE is kept");
    match kind {
        DbKind::Postgres => assert_eq!(sqlstate.as_deref(), Some("25006"), "{err}"),
        DbKind::MariaDb => {
            let my = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().expect("MariaDB's");
            assert!(matches!(my.number(), 1290 | 1792), "{my:?}");
        }
        other => panic!("no refusal codes known for {other:?}"),
    }
    assert!(err.to_string().contains(node.as_str()), "the text names the replica: {err}");
}
