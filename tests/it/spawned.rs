//! Work that leaves the handler keeps its session: a task spawned with
//! `RoutedConnection::spawn` reads what the spawning request wrote, with replicas 200 ms late,
//! whether the request ran in a web session (`Session::scope`, as every rwsplit middleware runs
//! it) or in its task's own scope; a job handed over as a token (`current_session().token()`,
//! then `session_from` in the worker) does too. A bare `tokio::spawn` beside it reads a replica
//! without the write, which shows the test can tell.

use std::time::Duration;

use rstest::rstest;
use rwsplit_sea_orm::RoutedConnection;
use rwsplit_testkit::DbKind;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::support::own_cluster;

/// How late the replicas apply what the primary wrote.
const LATE: Duration = Duration::from_millis(200);

fn count(backend: DbBackend, tag: &str) -> Statement {
    let sql = match backend {
        DbBackend::Postgres => "SELECT count(*) AS n FROM jobs WHERE tag = $1",
        _ => "SELECT count(*) AS n FROM jobs WHERE tag = ?",
    };
    Statement::from_sql_and_values(backend, sql, [tag.into()])
}

async fn seen(db: &impl ConnectionTrait, tag: &str) -> i64 {
    let row = db.query_one_raw(count(db.get_database_backend(), tag)).await.unwrap().unwrap();
    row.try_get("", "n").unwrap()
}

async fn write(db: &RoutedConnection, tag: &str) {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => "INSERT INTO jobs (tag) VALUES ($1)",
        _ => "INSERT INTO jobs (tag) VALUES (?)",
    };
    db.execute_raw(Statement::from_sql_and_values(backend, sql, [tag.into()])).await.unwrap();
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_task_reads_what_its_request_wrote(#[case] kind: DbKind) {
    let cluster = own_cluster(kind, "spawned", 2).await;
    let tdb = cluster.create_database("spawned").await.unwrap();
    let db = RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replicas(tdb.replica_urls())
        .connect()
        .await
        .expect("connects");
    let id = match kind {
        DbKind::MariaDb => "id INT AUTO_INCREMENT PRIMARY KEY",
        _ => "id SERIAL PRIMARY KEY",
    };
    db.primary()
        .execute_unprepared(&format!("CREATE TABLE jobs ({id}, tag VARCHAR(40) NOT NULL)"))
        .await
        .unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();
    for r in cluster.replicas() {
        r.set_apply_delay(LATE).await.unwrap();
    }

    // A web request: its handler runs in the client's session.
    let session = db.session();
    let (spawned, bare) = session
        .scope(async {
            write(&db, "web").await;
            let (a, b) = (db.clone(), db.clone());
            let spawned = db.spawn(async move { seen(&a, "web").await });
            let bare = tokio::spawn(async move { seen(&b, "web").await });
            (spawned.await.unwrap(), bare.await.unwrap())
        })
        .await;
    assert_eq!(spawned, 1, "a task spawned with db.spawn() sees the request's write");
    assert_eq!(bare, 0, "a bare tokio::spawn read a replica 200 ms late: the test can tell");

    // No session: the spawning task's own scope is carried.
    let reader = db.clone();
    let in_task = tokio::spawn(async move {
        write(&reader, "task").await;
        let r = reader.clone();
        reader.spawn(async move { seen(&r, "task").await }).await.unwrap()
    })
    .await
    .unwrap();
    assert_eq!(in_task, 1, "a task spawned from a task that wrote sees the write");

    // A job queue: the session as text, resumed by the worker.
    let writer = db.clone();
    let text = tokio::spawn(async move {
        write(&writer, "job").await;
        writer.current_session().token().await.unwrap().map(|t| t.to_string()).unwrap()
    })
    .await
    .unwrap();
    let worker = db.session_from(&text).unwrap();
    assert_eq!(seen(&worker, "job").await, 1, "a job resumed from the token sees the write");

    let ryw = db.stats().read_your_writes();
    eprintln!("SPAWNED-FIGURES {kind}: replicas {LATE:?} late; {ryw:?}");
    for r in cluster.replicas() {
        r.clear_apply_delay().await.unwrap();
    }
}
