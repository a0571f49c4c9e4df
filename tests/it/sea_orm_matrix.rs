//! The SeaORM operation matrix on a real cluster, PostgreSQL and MariaDB: each operation's
//! statements are counted per node by the adapter, and raw reads name the server's port.

use std::time::Duration;

use futures_util::TryStreamExt;
use rstest::rstest;
use rwsplit_sea_orm::RoutedConnection;
use rwsplit_testkit::{Cluster, DbKind, TestDatabase};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    AccessMode, ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    LoaderTrait, ModelTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, SelectExt, Set,
    Statement, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

use crate::blog::{author, migration::Migrator, post};
use crate::support::{routed, served, server_port, shared};

const SOON: Duration = Duration::from_secs(10);

/// A migrated, seeded database: 2 authors, 4 posts, replicated everywhere.
async fn seeded(db_kind: DbKind) -> (&'static Cluster, TestDatabase, RoutedConnection) {
    let cluster = shared(db_kind);
    let tdb = cluster.create_database("matrix").await.unwrap();
    let db = routed(&tdb, false).await;
    Migrator::up(db.primary(), None).await.unwrap();
    for name in ["Ada", "Grace"] {
        let a = author::ActiveModel { name: Set(name.into()), ..Default::default() }
            .insert(db.primary())
            .await
            .unwrap();
        for i in 0..2 {
            post::ActiveModel {
                author_id: Set(a.id),
                title: Set(format!("{name} {i}")),
                views: Set(i),
                ..Default::default()
            }
            .insert(db.primary())
            .await
            .unwrap();
        }
    }
    cluster.wait_caught_up(0, SOON).await.unwrap();
    (cluster, tdb, db)
}

fn replica_ports(cluster: &Cluster) -> Vec<u16> {
    cluster.replicas().iter().map(|n| n.port()).collect()
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn entity_reads_go_to_replicas(#[case] kind: DbKind) {
    let (cluster, _tdb, db) = seeded(kind).await;

    let (all, s) = served(&db, || post::Entity::find().all(&db)).await;
    assert_eq!(all.unwrap().len(), 4);
    assert!(s.replicas_only(), "find().all: {s:?}");

    let (one, s) = served(&db, || post::Entity::find_by_id(1).one(&db)).await;
    assert!(one.unwrap().is_some());
    assert!(s.replicas_only(), "find_by_id().one: {s:?}");

    let (count, s) = served(&db, || post::Entity::find().count(&db)).await;
    assert_eq!(count.unwrap(), 4);
    assert!(s.replicas_only(), "count: {s:?}");

    let (exists, s) =
        served(&db, || post::Entity::find().filter(post::Column::Views.gt(0)).exists(&db)).await;
    assert!(exists.unwrap());
    assert!(s.replicas_only(), "exists: {s:?}");

    let ada = author::Entity::find()
        .filter(author::Column::Name.eq("Ada"))
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    let (related, s) = served(&db, || ada.find_related(post::Entity).all(&db)).await;
    assert_eq!(related.unwrap().len(), 2);
    assert!(s.replicas_only(), "find_related: {s:?}");

    let authors = author::Entity::find().all(&db).await.unwrap();
    let (loaded, s) = served(&db, || authors.load_many(post::Entity, &db)).await;
    assert_eq!(loaded.unwrap().iter().map(Vec::len).sum::<usize>(), 4);
    assert!(s.replicas_only(), "load_many: {s:?}");

    let (page, s) = served(&db, || async {
        let pages = post::Entity::find().order_by_asc(post::Column::Id).paginate(&db, 3);
        Ok::<_, DbErr>((pages.num_pages().await?, pages.fetch_page(1).await?))
    })
    .await;
    let (num_pages, second) = page.unwrap();
    assert_eq!((num_pages, second.len()), (2, 1));
    assert!(s.replicas_only(), "paginator: {s:?}");

    let (cursor, s) = served(&db, || async {
        let mut cursor = post::Entity::find().cursor_by(post::Column::Id);
        cursor.first(2).all(&db).await
    })
    .await;
    assert_eq!(cursor.unwrap().len(), 2);
    assert!(s.replicas_only(), "cursor: {s:?}");

    let (streamed, s) = served(&db, || async {
        let stream = post::Entity::find().stream(&db).await?;
        stream.try_collect::<Vec<_>>().await
    })
    .await;
    assert_eq!(streamed.unwrap().len(), 4);
    assert!(s.replicas_only(), "stream: {s:?}");

    let (port, s) = served(&db, || server_port(&db, "")).await;
    assert!(replica_ports(cluster).contains(&port), "raw read ran on :{port}");
    assert!(s.replicas_only(), "raw read: {s:?}");
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn writes_and_locking_reads_go_to_the_primary(#[case] kind: DbKind) {
    let (cluster, tdb, _) = seeded(kind).await;
    // The application's own handle: read-your-writes on, so SeaORM's MySQL re-read after an
    // insert sees the row.
    let db = routed(&tdb, true).await;
    let backend = db.get_database_backend();

    let (ada, s) = served(&db, || {
        author::ActiveModel { name: Set("Linus".into()), ..Default::default() }.insert(&db)
    })
    .await;
    let ada = ada.unwrap();
    // The write on the primary; on MariaDB SeaORM reads the row back, which goes to a replica
    // that has replayed it (a catch-up wait there), else the primary.
    assert_eq!((s.primary_writes, s.replica_writes), (1, 0), "insert: {s:?}");

    let (updated, s) = served(&db, || {
        let mut am: author::ActiveModel = ada.clone().into();
        am.name = Set("Linus T".into());
        am.update(&db)
    })
    .await;
    assert_eq!(updated.unwrap().name, "Linus T");
    assert_eq!((s.primary_writes, s.replica_writes), (1, 0), "update: {s:?}");

    let (saved, s) = served(&db, || {
        author::ActiveModel { name: Set("Ken".into()), ..Default::default() }.save(&db)
    })
    .await;
    saved.unwrap();
    assert_eq!((s.primary_writes, s.replica_writes), (1, 0), "save: {s:?}");

    let many = || {
        post::Entity::insert_many((0..3).map(|i| post::ActiveModel {
            author_id: Set(ada.id),
            title: Set(format!("many {i}")),
            views: Set(i),
            ..Default::default()
        }))
    };
    let (r, s) = served(&db, || many().exec(&db)).await;
    r.unwrap();
    assert!(s.primary_only(), "insert_many: {s:?}");

    let conflict = || {
        post::Entity::insert(post::ActiveModel {
            author_id: Set(ada.id),
            title: Set("many 0".into()),
            views: Set(99),
            ..Default::default()
        })
        .on_conflict(
            OnConflict::column(post::Column::Title).update_column(post::Column::Views).to_owned(),
        )
    };
    let (r, s) = served(&db, || conflict().exec(&db)).await;
    r.unwrap();
    assert!(s.primary_only(), "on_conflict: {s:?}");

    if backend == DbBackend::Postgres {
        // INSERT … RETURNING arrives through query_all: classified by its SQL, not its method.
        let (rows, s) = served(&db, || {
            post::Entity::insert_many((3..5).map(|i| post::ActiveModel {
                author_id: Set(ada.id),
                title: Set(format!("many {i}")),
                views: Set(i),
                ..Default::default()
            }))
            .exec_with_returning(&db)
        })
        .await;
        assert_eq!(rows.unwrap().len(), 2);
        assert!(s.primary_only(), "exec_with_returning: {s:?}");
    }

    let (r, s) = served(&db, || {
        post::Entity::update_many()
            .col_expr(post::Column::Views, sea_orm::sea_query::Expr::value(1))
            .filter(post::Column::AuthorId.eq(ada.id))
            .exec(&db)
    })
    .await;
    assert!(r.unwrap().rows_affected >= 3);
    assert!(s.primary_only(), "update_many: {s:?}");

    let (r, s) = served(&db, || {
        post::Entity::delete_many().filter(post::Column::Title.eq("many 1")).exec(&db)
    })
    .await;
    assert_eq!(r.unwrap().rows_affected, 1);
    assert!(s.primary_only(), "delete_many: {s:?}");

    let (r, s) = served(&db, || ada.clone().delete(&db)).await;
    assert_eq!(r.unwrap().rows_affected, 1);
    assert!(s.primary_only(), "delete: {s:?}");

    // Locking reads, on a handle without read-your-writes so the token does not decide for us.
    let reader = routed(&tdb, false).await;
    let (r, s) = served(&reader, || post::Entity::find().lock_exclusive().all(&reader)).await;
    r.unwrap();
    assert!(s.primary_only(), "lock_exclusive: {s:?}");
    let (r, s) = served(&reader, || post::Entity::find().lock_shared().all(&reader)).await;
    r.unwrap();
    assert!(s.primary_only(), "lock_shared: {s:?}");

    // Raw SQL: execute_unprepared always runs on the primary; a hint pins a read there.
    let (r, s) =
        served(&reader, || reader.execute_unprepared("UPDATE post SET views = views + 1")).await;
    r.unwrap();
    assert!(s.primary_only(), "execute_unprepared: {s:?}");
    let port = server_port(&reader, "/*rwsplit:primary*/ ").await;
    assert_eq!(port, cluster.primary().port(), "a primary hint pins the read");
}

/// Application code written against SeaORM's traits, as it would be for `DatabaseConnection`.
async fn generic_report<C>(db: &C) -> Result<u64, DbErr>
where
    C: ConnectionTrait + sea_orm::StreamTrait + TransactionTrait + Send,
    C::Transaction: sea_orm::TransactionSession,
{
    let streamed = post::Entity::find().stream(db).await?.try_collect::<Vec<_>>().await?.len();
    let counted = post::Entity::find().count(db).await?;
    let txn = db.begin().await?;
    let in_txn = post::Entity::find().count(&txn).await?;
    sea_orm::TransactionSession::commit(txn).await?;
    assert_eq!(u64::try_from(streamed).unwrap_or(0), counted);
    assert_eq!(counted, in_txn);
    Ok(counted)
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn transactions_run_on_the_primary_and_read_only_ones_on_a_replica(#[case] kind: DbKind) {
    let (cluster, tdb, _) = seeded(kind).await;
    let db = routed(&tdb, false).await;
    let primary_port = cluster.primary().port();

    let port = db
        .transaction::<_, _, DbErr>(|txn| {
            Box::pin(async move {
                author::ActiveModel { name: Set("in txn".into()), ..Default::default() }
                    .insert(txn)
                    .await?;
                Ok(server_port(txn, "").await)
            })
        })
        .await
        .unwrap();
    assert_eq!(port, primary_port, "transaction()");

    let port = db
        .transaction_async(async |txn: &sea_orm::DatabaseTransaction| {
            author::ActiveModel { name: Set("async txn".into()), ..Default::default() }
                .insert(txn)
                .await?;
            Ok::<_, DbErr>(server_port(txn, "").await)
        })
        .await
        .unwrap();
    assert_eq!(port, primary_port, "transaction_async()");
    assert_eq!(generic_report(&db).await.unwrap(), 4, "generic code takes &RoutedConnection");

    let txn = db.begin().await.unwrap();
    assert_eq!(server_port(&txn, "").await, primary_port, "begin()");
    author::ActiveModel { name: Set("committed".into()), ..Default::default() }
        .insert(&txn)
        .await
        .unwrap();
    txn.commit().await.unwrap();

    let txn = db.begin().await.unwrap();
    author::ActiveModel { name: Set("rolled back".into()), ..Default::default() }
        .insert(&txn)
        .await
        .unwrap();
    txn.rollback().await.unwrap();
    let names: Vec<String> = author::Entity::find()
        .all(db.primary())
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert!(
        names.contains(&"committed".to_owned()) && !names.contains(&"rolled back".to_owned()),
        "{names:?}"
    );

    let ro = db.begin_with_config(None, Some(AccessMode::ReadOnly)).await.unwrap();
    let port = server_port(&ro, "").await;
    assert!(replica_ports(cluster).contains(&port), "a read-only transaction ran on :{port}");
    assert_eq!(post::Entity::find().count(&ro).await.unwrap(), 4);
    let write =
        author::ActiveModel { name: Set("nope".into()), ..Default::default() }.insert(&ro).await;
    assert!(write.is_err(), "a read-only transaction refuses writes");
    drop(ro);

    // The policy switch: read-only transactions can be kept on the primary.
    let strict = RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replicas(tdb.replica_urls())
        .read_only_transactions_on_replicas(false)
        .connect()
        .await
        .unwrap();
    let ro = strict.begin_with_config(None, Some(AccessMode::ReadOnly)).await.unwrap();
    assert_eq!(
        server_port(&ro, "").await,
        primary_port,
        "read-only transactions kept on the primary"
    );
    drop(ro);

    if kind == DbKind::Postgres {
        // Hot standbys refuse SERIALIZABLE: it stays on the primary.
        let ser = db
            .begin_with_config(
                Some(sea_orm::IsolationLevel::Serializable),
                Some(AccessMode::ReadOnly),
            )
            .await
            .unwrap();
        assert_eq!(server_port(&ser, "").await, primary_port);
        ser.commit().await.unwrap();
    }
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn migrations_run_through_the_primary_and_reach_the_replicas(#[case] kind: DbKind) {
    let cluster = shared(kind);
    let tdb = cluster.create_database("migrate").await.unwrap();
    let db = routed(&tdb, false).await;
    Migrator::up(db.primary(), None).await.unwrap();
    // `&RoutedConnection` is an executor too: migrations through it use the primary.
    Migrator::down(&db, None).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    cluster.wait_caught_up(0, SOON).await.unwrap();
    let applied = Migrator::get_applied_migrations(db.primary()).await.unwrap();
    assert_eq!(applied.len(), 1);
    // The tables exist on the replicas: a read through the router finds the (empty) table.
    let (count, s) = served(&db, || post::Entity::find().count(&db)).await;
    assert_eq!(count.unwrap(), 0);
    assert!(s.replicas_only(), "{s:?}");
    let raw = Statement::from_string(db.get_database_backend(), "SELECT COUNT(*) AS n FROM author");
    assert!(db.query_one_raw(raw).await.unwrap().is_some());
}
