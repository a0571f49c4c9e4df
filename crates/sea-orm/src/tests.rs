//! Routing decisions against SeaORM's `MockDatabase`, one per node: pure logic, no server.
//! Which node served a statement is read from each mock's transaction log.

use std::collections::BTreeMap;

use rstest::rstest;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, MockDatabase, MockExecResult, Statement, Value,
};

use crate::{Error, RoutedConnection, Target};

fn row() -> BTreeMap<&'static str, Value> {
    BTreeMap::from([("id", Value::Int(Some(1)))])
}

fn node(backend: DbBackend) -> DatabaseConnection {
    MockDatabase::new(backend)
        .append_query_results((0..8).map(|_| vec![row()]))
        .append_exec_results((0..8).map(|_| MockExecResult { last_insert_id: 1, rows_affected: 1 }))
        .into_connection()
}

/// Statements each node received: (primary, replica).
fn logs(db: &RoutedConnection) -> (usize, usize) {
    let count = |c: &DatabaseConnection| c.clone().into_transaction_log().len();
    let mut replica = None;
    db.members.each(|id, n| {
        if id == rwsplit_core::NodeId::new(1) {
            replica = Some(count(n.conn()));
        }
    });
    (count(db.inner.primary_conn()), replica.expect("replica 1"))
}

/// A primary and a replica, read-your-writes off so the logs hold only routed statements (with
/// it on, a write is followed by a position query on the primary).
fn routed() -> RoutedConnection {
    let policy = crate::routing::Policy { read_your_writes: false, ..Default::default() };
    RoutedConnection::from_connections_with(
        node(DbBackend::Postgres),
        vec![node(DbBackend::Postgres)],
        policy,
    )
    .unwrap()
}

#[rstest]
#[case::select("SELECT \"id\" FROM \"t\" WHERE \"id\" = $1 LIMIT $2", (0, 1))]
#[case::insert_returning("INSERT INTO \"t\" (\"v\") VALUES ($1) RETURNING \"id\"", (1, 0))]
#[case::update_returning("UPDATE \"t\" SET \"v\" = $1 WHERE \"id\" = $2 RETURNING \"id\"", (1, 0))]
#[case::delete_returning("DELETE FROM \"t\" WHERE \"id\" = $1 RETURNING \"id\"", (1, 0))]
#[case::for_update("SELECT \"id\" FROM \"t\" FOR UPDATE", (1, 0))]
#[case::nextval("SELECT nextval('s') AS id", (1, 0))]
#[case::cte_delete("WITH g AS (DELETE FROM t RETURNING *) SELECT * FROM g", (1, 0))]
#[case::primary_hint("/*rwsplit:primary*/ SELECT id FROM t", (1, 0))]
#[case::replica_hint("/*rwsplit:replica*/ SELECT id FROM t", (0, 1))]
#[tokio::test]
async fn queries_are_routed_by_their_sql_not_their_method(
    #[case] sql: &str,
    #[case] expected: (usize, usize),
) {
    let db = routed();
    let stmt = Statement::from_string(DbBackend::Postgres, sql);
    db.query_one_raw(stmt).await.unwrap();
    assert_eq!(logs(&db), expected, "{sql}");
}

#[tokio::test]
async fn execute_always_runs_on_the_primary() {
    let db = routed();
    db.execute_raw(Statement::from_string(DbBackend::Postgres, "SELECT 1")).await.unwrap();
    db.execute_unprepared("SET search_path TO app").await.unwrap();
    assert_eq!(logs(&db), (2, 0));
}

/// A probe connection that answers PostgreSQL's probe with one fixed row.
struct Answers(rwsplit_monitor::Row);

impl rwsplit_monitor::ProbeConn for Answers {
    async fn fetch_row(
        &self,
        _sql: &str,
    ) -> Result<Option<rwsplit_monitor::Row>, rwsplit_monitor::ProbeError> {
        Ok(Some(self.0.clone()))
    }
}

/// What the monitor's probe makes of a PostgreSQL node at `lsn` (hex, `0/…`): the primary, or
/// a replica that replayed `since_replay_ms` ago. Fed to `TopologyState::observe` by tests that
/// drive the monitor's view by hand.
pub(crate) async fn pg_probe(
    primary: bool,
    lsn: &str,
    since_replay_ms: u64,
) -> Result<rwsplit_monitor::Observation, rwsplit_monitor::ProbeError> {
    let row = rwsplit_monitor::Row::new([
        ("in_recovery", Some((!primary).to_string())),
        ("system_id", Some("7".to_owned())),
        ("timeline", Some("1".to_owned())),
        ("replayed", Some(lsn.to_owned())),
        ("received", None),
        ("since_replay_ms", Some(since_replay_ms.to_string())),
        ("paused", Some("false".to_owned())),
    ]);
    let flavor = rwsplit_monitor::Flavor::Postgres;
    rwsplit_monitor::probe(&Answers(row), flavor, std::time::Duration::from_secs(1)).await
}

/// A PostgreSQL primary mock that answers `before` one-row statements, then the two queries
/// of a position read (system id 7, timeline 1, LSN 0/3000148), then `after` one-row reads.
pub(crate) fn pg_primary_answering_position(before: usize, after: usize) -> DatabaseConnection {
    let text = |k: &'static str, v: &str| (k, Value::String(Some(v.to_owned())));
    MockDatabase::new(DbBackend::Postgres)
        .append_query_results((0..before).map(|_| vec![row()]))
        .append_query_results([vec![BTreeMap::from([text("system_id", "7")])]])
        .append_query_results([vec![BTreeMap::from([
            text("lsn", "0/3000148"),
            text("timeline", "1"),
        ])]])
        .append_query_results((0..after).map(|_| vec![row()]))
        .into_connection()
}

/// A primary that answers an `INSERT … RETURNING`, the position read after it, then reads.
fn pg_primary_recording_positions() -> DatabaseConnection {
    pg_primary_answering_position(1, 4)
}

#[tokio::test]
async fn a_write_records_the_primary_position_and_the_task_reads_it() {
    let db = RoutedConnection::from_connections(
        pg_primary_recording_positions(),
        vec![node(DbBackend::Postgres)],
    )
    .unwrap();
    let write =
        Statement::from_string(DbBackend::Postgres, "INSERT INTO t (v) VALUES (1) RETURNING id");
    let read = Statement::from_string(DbBackend::Postgres, "SELECT id FROM t");
    db.query_one_raw(write).await.unwrap();
    let token = db.token().await.unwrap().expect("the write left a token");
    assert_eq!(token.to_string(), "pg:1:7:1:0-3000148");
    db.query_one_raw(read.clone()).await.unwrap();
    assert_eq!(logs(&db), (4, 0), "no replica is known to have replayed it: the primary");
    let ryw = db.stats().read_your_writes();
    assert_eq!((ryw.positions_captured, ryw.primary_reads, ryw.replica_reads), (1, 1, 0));
    let other = db.clone();
    tokio::spawn(async move { other.query_one_raw(read).await.unwrap() }).await.unwrap();
    assert_eq!(logs(&db), (0, 1), "another task has no token: the replica");
}

#[tokio::test]
async fn a_session_carries_its_token_and_a_bad_token_is_refused() {
    let db = RoutedConnection::from_connections(
        pg_primary_recording_positions(),
        vec![node(DbBackend::Postgres)],
    )
    .unwrap();
    let session = db.session();
    assert_eq!(session.token().await.unwrap(), None);
    let write =
        Statement::from_string(DbBackend::Postgres, "INSERT INTO t (v) VALUES (1) RETURNING id");
    session.query_one_raw(write).await.unwrap();
    let text = session.token().await.unwrap().unwrap().to_string();
    assert_eq!(db.token().await.unwrap(), None, "the session's write is not the task's");
    let resumed = db.session_from(&text).unwrap();
    assert_eq!(resumed.token().await.unwrap().map(|t| t.to_string()), Some(text));
    assert_eq!(db.session_from("  ").unwrap().token().await.unwrap(), None);
    let err = db.session_from("pg:1:7:1:zz").unwrap_err();
    assert!(matches!(err, Error::InvalidToken { .. }), "{err}");
    assert!(err.to_string().contains("invalid LSN"), "{err}");
}

#[tokio::test]
async fn without_read_your_writes_reads_ignore_the_tasks_writes() {
    let primary = node(DbBackend::Postgres);
    let policy = crate::routing::Policy { read_your_writes: false, ..Default::default() };
    let db =
        RoutedConnection::from_connections_with(primary, vec![node(DbBackend::Postgres)], policy)
            .unwrap();
    let write =
        Statement::from_string(DbBackend::Postgres, "INSERT INTO t (v) VALUES (1) RETURNING id");
    db.query_one_raw(write).await.unwrap();
    db.query_one_raw(Statement::from_string(DbBackend::Postgres, "SELECT id FROM t"))
        .await
        .unwrap();
    assert_eq!(logs(&db), (1, 1), "no position query, and the read goes to the replica");
}

#[rstest]
#[case::strong(rwsplit_core::Consistency::Strong, (1, 0))]
#[case::eventual(rwsplit_core::Consistency::Eventual, (0, 1))]
#[tokio::test]
async fn per_call_consistency_overrides_the_default(
    #[case] level: rwsplit_core::Consistency,
    #[case] expected: (usize, usize),
) {
    let db = routed();
    let read = Statement::from_string(DbBackend::Postgres, "SELECT id FROM t");
    db.consistent(level).query_one_raw(read).await.unwrap();
    assert_eq!(logs(&db), expected);
}

#[tokio::test]
async fn a_scope_pins_reads() {
    let db = routed();
    let read = Statement::from_string(DbBackend::Postgres, "SELECT id FROM t");
    RoutedConnection::scope(Target::Primary, db.query_one_raw(read.clone())).await.unwrap();
    assert_eq!(logs(&db), (1, 0));
    let write = Statement::from_string(DbBackend::Postgres, "UPDATE t SET v = 2 RETURNING id");
    RoutedConnection::scope(Target::Replica, db.query_one_raw(write)).await.unwrap();
    assert_eq!(logs(&db), (1, 0), "a replica scope never sends a write to a replica");
}

#[tokio::test]
async fn without_replicas_reads_use_the_primary() {
    let db = RoutedConnection::from_connections(node(DbBackend::MySql), vec![]).unwrap();
    db.query_one_raw(Statement::from_string(DbBackend::MySql, "SELECT 1")).await.unwrap();
    assert_eq!(db.stats().primary().reads(), 1);
    assert_eq!(db.get_database_backend(), DbBackend::MySql);
}

#[test]
fn mixed_backends_are_refused() {
    let err =
        RoutedConnection::from_connections(node(DbBackend::Postgres), vec![node(DbBackend::MySql)])
            .unwrap_err();
    assert!(matches!(err, Error::BackendMismatch { .. }), "{err}");
}

#[test]
fn debug_output_names_nodes_without_credentials() {
    let db = routed();
    let text = format!("{db:?}");
    assert!(text.contains("primary") && text.contains("replica 1"), "{text}");
}

#[tokio::test]
async fn what_escapes_the_router_makes_the_scope_conservative() {
    let primary = pg_primary_answering_position(0, 1);
    let db = RoutedConnection::from_connections(primary, vec![node(DbBackend::Postgres)]).unwrap();
    // SeaORM's `connection_or_transaction_begin` and migrations take this path: whatever they
    // write is unseen by the router.
    let executor = sea_orm::DatabaseExecutor::from(&db);
    drop(executor);
    let read = Statement::from_string(DbBackend::Postgres, "SELECT id FROM t");
    db.query_one_raw(read).await.unwrap();
    let ryw = db.stats().read_your_writes();
    assert_eq!(ryw.positions_captured, 1, "the read first asked the primary for its position");
    assert_eq!(logs(&db), (3, 0), "no replica is known to have it: the primary");
    // Another task wrote nothing through it: its reads are unaffected.
    let other = db.clone();
    let read = Statement::from_string(DbBackend::Postgres, "SELECT id FROM t");
    tokio::spawn(async move { other.query_one_raw(read).await.unwrap() }).await.unwrap();
    assert_eq!(logs(&db), (0, 1));
}
