//! Reads after writes under real, injected lag: the task that wrote sees its write (the sticky
//! window), on PostgreSQL and MariaDB, including SeaORM's MySQL insert-then-reread.

use std::time::Duration;

use rstest::rstest;
use rwsplit_testkit::DbKind;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use sea_orm_migration::MigratorTrait;

use crate::blog::{author, migration::Migrator};
use crate::support::{own_cluster, routed, served};

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn the_writing_task_reads_its_write_while_replicas_lag(#[case] kind: DbKind) {
    let cluster = own_cluster(kind, "ryw", 2).await;
    let tdb = cluster.create_database("ryw").await.unwrap();
    let db = routed(&tdb, Duration::from_millis(500)).await;
    Migrator::up(db.primary(), None).await.unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();
    for r in cluster.replicas() {
        r.pause_replay().await.unwrap();
    }

    // On MariaDB, ActiveModel::insert is INSERT then SELECT by id through the same handle: with
    // both replicas frozen, that re-read must reach the primary.
    let (inserted, s) = served(&db, || {
        author::ActiveModel { name: Set("fresh".into()), ..Default::default() }.insert(&db)
    })
    .await;
    let inserted = inserted.expect("insert returns the row it wrote");
    assert!(s.primary_only(), "{s:?}");
    let (found, s) = served(&db, || author::Entity::find_by_id(inserted.id).one(&db)).await;
    assert_eq!(
        found.unwrap().map(|a| a.name),
        Some("fresh".to_owned()),
        "the writing task reads its write"
    );
    assert!(s.primary_only(), "{s:?}");

    // Another task (another request) reads from a replica, which has not replayed the write.
    let other = db.clone();
    let id = inserted.id;
    let (stale, s) = tokio::spawn(async move {
        let db = other.clone();
        served(&other, || async move { author::Entity::find_by_id(id).one(&db).await }).await
    })
    .await
    .unwrap();
    assert_eq!(stale.unwrap(), None, "a frozen replica cannot have the row: the lag is real");
    assert!(s.replicas_only(), "{s:?}");

    // After the window the writing task reads replicas again: the window is a time bound, not a
    // guarantee (the consistency issue replaces it with replication positions).
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, s) = served(&db, || author::Entity::find_by_id(id).one(&db)).await;
    assert!(s.replicas_only(), "{s:?}");

    for r in cluster.replicas() {
        r.resume_replay().await.unwrap();
    }
}

#[tokio::test]
async fn without_stickiness_mysql_insert_rereads_a_stale_replica() {
    // The control experiment for the test above: with the window off, SeaORM's own re-read
    // goes to a frozen replica and cannot find the row it just inserted.
    let cluster = own_cluster(DbKind::MariaDb, "nosticky", 1).await;
    let tdb = cluster.create_database("nosticky").await.unwrap();
    let db = routed(&tdb, Duration::ZERO).await;
    Migrator::up(db.primary(), None).await.unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();
    cluster.replicas()[0].pause_replay().await.unwrap();
    let err = author::ActiveModel { name: Set("lost".into()), ..Default::default() }
        .insert(&db)
        .await
        .expect_err("the re-read goes to the frozen replica");
    assert!(matches!(err, sea_orm::DbErr::RecordNotFound(_)), "{err}");
    cluster.replicas()[0].resume_replay().await.unwrap();
}
