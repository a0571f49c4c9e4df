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
    (count(db.primary()), count(&db.inner.nodes[1].conn))
}

fn routed() -> RoutedConnection {
    RoutedConnection::from_connections(node(DbBackend::Postgres), vec![node(DbBackend::Postgres)])
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

#[tokio::test]
async fn a_task_that_wrote_reads_from_the_primary() {
    let db = routed();
    let write =
        Statement::from_string(DbBackend::Postgres, "INSERT INTO t (v) VALUES (1) RETURNING id");
    let read = Statement::from_string(DbBackend::Postgres, "SELECT id FROM t");
    db.query_one_raw(write).await.unwrap();
    db.query_one_raw(read.clone()).await.unwrap();
    assert_eq!(logs(&db), (2, 0), "the writer's read is sticky");
    let other = db.clone();
    tokio::spawn(async move { other.query_one_raw(read).await.unwrap() }).await.unwrap();
    assert_eq!(logs(&db), (0, 1), "another task reads from the replica");
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
