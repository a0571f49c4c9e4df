//! SeaORM's metric callback set on a `RoutedConnection` sees every statement the router runs
//! for the caller — writes the adapter sends itself in two steps included — and none of the
//! adapter's own (the position read after each write).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rstest::rstest;
use rwsplit_sea_orm::{RoutedConnection, Target};
use rwsplit_testkit::DbKind;
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait, Value};

use crate::support::{served, shared};

/// One report: the SQL, its values, whether it failed and how long it took.
#[derive(Debug, Clone)]
struct Report {
    sql: String,
    values: Option<sea_orm::Values>,
    failed: bool,
    elapsed: Duration,
}

/// `sql` with `$n` placeholders as the backend writes them.
fn stmt(backend: DbBackend, sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    let sql = match backend {
        DbBackend::MySql => (1..=3).fold(sql.to_owned(), |s, n| s.replace(&format!("${n}"), "?")),
        _ => sql.to_owned(),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metric_callback_sees_every_routed_statement_and_none_of_the_adapters(
    #[case] kind: DbKind,
) {
    let cluster = shared(kind);
    let tdb = cluster.create_database("hooks").await.unwrap();
    // Read-your-writes on (the default): each write is followed by the adapter's own read of
    // the primary's position, which must not be reported.
    let mut db = RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replicas(tdb.replica_urls())
        .connect()
        .await
        .unwrap();
    let reports: Arc<Mutex<Vec<Report>>> = Arc::default();
    let into = Arc::clone(&reports);
    db.set_metric_callback(move |info| {
        into.lock().unwrap().push(Report {
            sql: info.statement.sql.clone(),
            values: info.statement.values.clone(),
            failed: info.failed,
            elapsed: info.elapsed,
        });
    });
    let b = db.get_database_backend();

    // Unprepared: SeaORM reports none, nor does the router.
    db.execute_unprepared("CREATE TABLE h (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)")
        .await
        .unwrap();
    let insert = stmt(b, "INSERT INTO h (id, n) VALUES ($1, $2)", [1i64.into(), 10i64.into()]);
    let (r, s) = served(&db, || db.execute_raw(insert.clone())).await;
    r.unwrap();
    assert_eq!((s.primary_writes, s.replica_writes), (1, 0), "a routed write: {s:?}");
    let update = stmt(b, "UPDATE h SET n = $1 WHERE id = $2", [11i64.into(), 1i64.into()]);
    db.execute_raw(update.clone()).await.unwrap();
    // `INSERT … RETURNING` arrives through `query_one`, and is a write.
    let returning =
        stmt(b, "INSERT INTO h (id, n) VALUES ($1, $2) RETURNING id", [2i64.into(), 20i64.into()]);
    let row = db.query_one_raw(returning.clone()).await.unwrap().expect("a row");
    assert_eq!(row.try_get::<i64>("", "id").unwrap(), 2);
    let delete = stmt(b, "DELETE FROM h WHERE id = $1", [2i64.into()]);
    db.execute_raw(delete.clone()).await.unwrap();
    // A write the database refuses (duplicate key) is reported, failed.
    let duplicate = stmt(b, "INSERT INTO h (id, n) VALUES ($1, $2)", [1i64.into(), 0i64.into()]);
    db.execute_raw(duplicate.clone()).await.expect_err("duplicate key");

    // A transaction's statements (SeaORM's `DatabaseTransaction`, begun on the primary's pool).
    let in_txn = stmt(b, "INSERT INTO h (id, n) VALUES ($1, $2)", [3i64.into(), 30i64.into()]);
    let read_in_txn = stmt(b, "SELECT n FROM h WHERE id = $1", [3i64.into()]);
    let (a, c) = (in_txn.clone(), read_in_txn.clone());
    db.transaction::<_, _, sea_orm::DbErr>(|txn| {
        Box::pin(async move {
            txn.execute_raw(a).await?;
            txn.query_one_raw(c).await
        })
    })
    .await
    .unwrap();

    // A read on a replica: from another task, which wrote nothing, once the replicas have it.
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();
    let on_replica = stmt(b, "SELECT id, n FROM h ORDER BY id", []);
    let reader = db.clone();
    let read = on_replica.clone();
    let (rows, s) = served(&db, || async move {
        tokio::spawn(async move { reader.query_all_raw(read).await }).await.unwrap()
    })
    .await;
    assert_eq!(rows.unwrap().len(), 2);
    assert!(s.replicas_only(), "read on a replica: {s:?}");
    // A read on the primary.
    let on_primary = stmt(b, "SELECT count(*) AS c FROM h", []);
    let (r, s) = served(&db, || {
        RoutedConnection::scope(Target::Primary, db.query_one_raw(on_primary.clone()))
    })
    .await;
    r.unwrap();
    assert!(s.primary_only(), "read on the primary: {s:?}");

    let reports = reports.lock().unwrap().clone();
    let got: Vec<(&str, bool)> = reports.iter().map(|r| (r.sql.as_str(), r.failed)).collect();
    let expected: Vec<(&str, bool)> = [
        (&insert, false),
        (&update, false),
        (&returning, false),
        (&delete, false),
        (&duplicate, true),
        (&in_txn, false),
        (&read_in_txn, false),
        (&on_replica, false),
        (&on_primary, false),
    ]
    .iter()
    .map(|(s, failed)| (s.sql.as_str(), *failed))
    .collect();
    // Exactly these, in order: once each, and nothing of the adapter's own (position reads).
    assert_eq!(got, expected);
    assert_eq!(reports[0].values, insert.values, "the statement as sent, with its values");
    assert!(reports.iter().all(|r| r.elapsed > Duration::ZERO), "{reports:?}");
}
