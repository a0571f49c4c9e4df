//! Does a handler read its own write while a replica is 300 ms late, and does it still answer
//! when a replica dies? The test an application copies into its own `tests/`: a real
//! PostgreSQL primary and two streaming replicas from `rwsplit-testkit`, an rstest fixture for
//! the cluster, and the application's handler on a `RoutedConnection`.
//!
//! ```sh
//! cargo test -p rwsplit-examples --test lagging_replicas
//! ```
//!
//! It needs PostgreSQL's server binaries (`apt-get install postgresql`); as root the servers
//! run as an unprivileged user (`postgres`, else `rwsplit`, created on first use). The README's
//! "Testing your app against lagging replicas" says more.

use std::time::Duration;

use rstest::{fixture, rstest};
use rwsplit_sea_orm::RoutedConnection;
use rwsplit_testkit::Cluster;
use sea_orm::{ConnectionTrait, DbErr, Statement, Value};

/// The application's handler: ordinary code on a `RoutedConnection`. It writes a note, then
/// reads it back (a read the router may send to a replica).
async fn save_and_show(db: &RoutedConnection, text: &str) -> Result<Option<String>, DbErr> {
    let backend = db.get_database_backend();
    let inserted = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            "INSERT INTO notes (text) VALUES ($1) RETURNING id",
            [Value::from(text)],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotInserted)?;
    let id: i64 = inserted.try_get("", "id")?;
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            "SELECT text FROM notes WHERE id = $1",
            [Value::from(id)],
        ))
        .await?;
    row.map(|r| r.try_get("", "text")).transpose()
}

/// A primary and two replicas, with the application's schema; stopped and deleted on drop.
#[fixture]
async fn cluster() -> Cluster {
    let cluster = Cluster::builder()
        .name("lagging-replicas")
        .replicas(2)
        .start()
        .await
        .unwrap_or_else(|e| panic!("starting a primary and 2 replicas: {e}"));
    cluster
        .primary()
        .execute("postgres", "CREATE TABLE notes (id bigserial PRIMARY KEY, text text NOT NULL)")
        .await
        .unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();
    cluster
}

#[rstest]
#[tokio::test]
async fn handler_reads_its_own_write_and_survives_a_dead_replica(#[future(awt)] cluster: Cluster) {
    let db = RoutedConnection::builder()
        .primary(cluster.primary_url())
        .replicas(cluster.replica_urls())
        .connect()
        .await
        .unwrap();

    // Replica 1 applies the primary's changes 300 ms late.
    cluster.replicas()[0].set_apply_delay(Duration::from_millis(300)).await.unwrap();
    for i in 0..20 {
        let text = format!("note {i}");
        assert_eq!(save_and_show(&db, &text).await.unwrap(), Some(text), "a stale read");
    }
    // The control: the lag is real. Replica 1, asked directly right after a write, lacks it
    // (connected first, so that the 300 ms are not spent connecting).
    let replica = sea_orm::Database::connect(cluster.replicas()[0].url()).await.unwrap();
    cluster
        .primary()
        .execute("postgres", "INSERT INTO notes (text) VALUES ('fresh')")
        .await
        .unwrap();
    let sql = "SELECT count(*) AS n FROM notes WHERE text = 'fresh'";
    let seen = replica
        .query_one_raw(Statement::from_string(replica.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.try_get::<i64>("", "n").unwrap(), 0, "replica 1 does not lag");

    // Replica 2 dies: the handler still answers.
    cluster.replicas()[1].crash().unwrap();
    for i in 0..5 {
        let text = format!("after the crash {i}");
        assert_eq!(save_and_show(&db, &text).await.unwrap(), Some(text));
    }
}
