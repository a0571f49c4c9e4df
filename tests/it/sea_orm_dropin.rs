//! Drop-in gaps SeaORM's own integration tests find: what escapes the router keeps
//! read-your-writes, and a temporary table the caller created is read where it exists.

use rstest::rstest;
use rwsplit_sea_orm::RoutedConnection;
use rwsplit_testkit::DbKind;
use sea_orm::{ConnectOptions, ConnectionTrait, DatabaseExecutor, Statement};

use crate::support::own_cluster;

fn stmt(db: &RoutedConnection, sql: &str) -> Statement {
    Statement::from_string(db.get_database_backend(), sql.to_owned())
}

/// A write through `DatabaseExecutor::from(&db)` (SeaORM's `connection_or_transaction_begin`
/// path) or through `db.primary()` is unseen by the router; a read right after it in the same
/// task must still see it while every replica is paused.
#[rstest]
#[case::postgres_executor(DbKind::Postgres, true)]
#[case::postgres_primary(DbKind::Postgres, false)]
#[case::mariadb_executor(DbKind::MariaDb, true)]
#[case::mariadb_primary(DbKind::MariaDb, false)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_that_escape_the_router_are_still_read_back(
    #[case] kind: DbKind,
    #[case] executor: bool,
) {
    let cluster = own_cluster(kind, "escape", 2).await;
    let db = RoutedConnection::builder()
        .primary(cluster.primary_url())
        .replicas(cluster.replica_urls())
        .connect()
        .await
        .expect("connects");
    db.execute_unprepared("CREATE TABLE e (id BIGINT PRIMARY KEY)").await.unwrap();
    cluster.wait_caught_up(0, std::time::Duration::from_secs(10)).await.unwrap();
    for r in cluster.replicas() {
        r.pause_replay().await.unwrap();
    }
    let insert = stmt(&db, "INSERT INTO e (id) VALUES (1)");
    if executor {
        let ex = DatabaseExecutor::from(&db);
        ex.execute_raw(insert).await.unwrap();
    } else {
        db.primary().execute_raw(insert).await.unwrap();
    }
    let row = db.query_one_raw(stmt(&db, "SELECT id FROM e WHERE id = 1")).await.unwrap();
    assert!(row.is_some(), "the read after the write missed it (a paused replica served it)");
    let stats = db.stats();
    assert_eq!(stats.replica_reads(), 0, "no replica has the write");
    // Another task did not write: it may read the (paused) replicas.
    let other = db.clone();
    let seen = tokio::spawn(async move {
        other.query_one_raw(stmt(&other, "SELECT id FROM e WHERE id = 1")).await.unwrap()
    })
    .await
    .unwrap();
    assert!(seen.is_none(), "the replicas are really paused");
    for r in cluster.replicas() {
        r.resume_replay().await.unwrap();
    }
}

/// A temporary table lives on the primary's session that created it; a read of it is sent to
/// a replica first (its SQL is a plain read), which has no such table: the read moves on to the
/// primary instead of failing (PostgreSQL 42P01, MySQL 1146). One pooled primary connection, as
/// a temporary table needs with plain SeaORM too.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_table_is_read_where_it_exists(#[case] kind: DbKind) {
    let cluster = own_cluster(kind, "temp", 1).await;
    let mut primary = ConnectOptions::new(cluster.primary_url());
    primary.max_connections(1);
    let db = RoutedConnection::builder()
        .primary(primary)
        .replicas(cluster.replica_urls())
        .read_your_writes(false)
        .connect()
        .await
        .expect("connects");
    db.execute_unprepared("CREATE TEMPORARY TABLE scratch (id INT)").await.unwrap();
    db.execute_unprepared("INSERT INTO scratch (id) VALUES (7)").await.unwrap();
    let rows = db.query_all_raw(stmt(&db, "SELECT id FROM scratch")).await.expect("read");
    assert_eq!(rows.len(), 1);
    let stats = db.stats();
    assert_eq!(stats.primary().reads(), 1, "served by the primary");
    // A table that exists nowhere is still the database's own error, unchanged.
    let err = db.query_all_raw(stmt(&db, "SELECT id FROM nowhere")).await.unwrap_err();
    let text = err.to_string();
    assert!(!text.contains("rwsplit"), "{text}");
}
