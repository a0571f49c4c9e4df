//! Quickstart: a small SeaORM blog on a `RoutedConnection`, printing where each statement ran
//! and why.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! Without `DATABASE_URL` it starts a throwaway local PostgreSQL cluster (a primary and two
//! streaming replicas) through the testkit, which needs the server binaries (`apt-get install
//! postgresql`), and stops it at the end. With `DATABASE_URL` set (and `DATABASE_REPLICA_URLS`,
//! and any other variable `RoutedConnection::from_env` reads; `export $(cargo xtask cluster
//! up)` sets them) it runs on that cluster instead.
//!
//! Either way it works only in a namespace of its own, which it creates and then drops at the
//! end (also when it fails or is interrupted): on PostgreSQL the schema `rwsplit_quickstart`
//! in the database the URLs name (its sessions' `search_path`), on MariaDB the database
//! `rwsplit_quickstart`. Nothing else in the database is read, changed or dropped. If that
//! schema or database already exists it stops with an error, leaving it alone (it may be
//! someone else's). Before creating anything in it, it checks that every node's sessions work
//! in it (`current_schema()`, `DATABASE()`) and stops, dropping it, if not: a pooler that drops
//! the `options` startup parameter (PgBouncer's `ignore_startup_parameters = options`) would
//! leave the `search_path` unset and the migration in `public`. The user needs the privilege to create it (PostgreSQL: `CREATE` on the
//! database).
//!
//! It runs the blog's migration through `db.primary()` (`Migrator::up`: the schema is new),
//! inserts authors and posts, reads them back (the writing task reads its own writes from the
//! primary; another task reads from a replica), runs a transaction, pages through a listing,
//! streams the posts, and prints the per-node statement counts.

#[path = "blog/mod.rs"]
mod blog;
#[path = "own/mod.rs"]
mod own;

use std::time::{Duration, Instant};

use anyhow::Context;
use blog::{author, migration::Migrator, post};
use futures_util::TryStreamExt;
use rwsplit_sea_orm::RoutedConnection;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, ModelTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Set, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Print every routing decision: "route node=… reason=… write=…".
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "rwsplit=debug".into()))
        .with_target(false)
        .with_level(false)
        .with_ansi(false)
        .without_time()
        .init();

    let (_cluster, config) = match own::from_env()? {
        Some(config) => (None, config),
        None => {
            let started = Instant::now();
            let cluster = rwsplit_testkit::Cluster::builder()
                .name("quickstart")
                .start()
                .await
                .context("starting a throwaway local cluster (is PostgreSQL installed?)")?;
            println!(
                "started a local primary + 2 replicas in {:.2} s",
                started.elapsed().as_secs_f64()
            );
            let config = own::nodes(cluster.primary_url(), cluster.replica_urls())?;
            (Some(cluster), config)
        }
    };
    own::run("rwsplit_quickstart", config, async |config| tour(config.connect().await?).await).await
}

/// The tour of the blog, on `db`.
async fn tour(db: RoutedConnection) -> anyhow::Result<()> {
    println!("{db:?}");

    println!("\n== migration, through db.primary()");
    Migrator::up(db.primary(), None).await?;

    println!("\n== writes go to the primary");
    let alice =
        author::ActiveModel { name: Set("Alice".into()), ..Default::default() }.insert(&db).await?;
    for (i, title) in ["Hello", "Replicas", "Routing", "Lag"].iter().enumerate() {
        post::ActiveModel {
            author_id: Set(alice.id),
            title: Set((*title).into()),
            views: Set(i32::try_from(i)? * 10),
            ..Default::default()
        }
        .insert(&db)
        .await?;
    }

    println!(
        "\n== this task just wrote: its read goes to a replica that has the write, else the \
         primary (read your writes)"
    );
    let mine = post::Entity::find().filter(post::Column::AuthorId.eq(alice.id)).all(&db).await?;
    println!("alice has {} posts", mine.len());

    println!("\n== another task (say, the next request) reads from a replica");
    tokio::time::sleep(Duration::from_millis(50)).await; // let replication catch up (~1 ms)
    let reader = db.clone();
    let (count, first) = tokio::spawn(async move {
        let count = post::Entity::find().count(&reader).await?;
        let first = author::Entity::find().one(&reader).await?;
        Ok::<_, DbErr>((count, first))
    })
    .await??;
    println!("{count} posts; first author: {:?}", first.map(|a| a.name));

    println!("\n== a transaction runs on the primary");
    db.transaction::<_, _, DbErr>(|txn| {
        Box::pin(async move {
            let bob = author::ActiveModel { name: Set("Bob".into()), ..Default::default() }
                .insert(txn)
                .await?;
            post::ActiveModel {
                author_id: Set(bob.id),
                title: Set("Transactions".into()),
                views: Set(7),
                ..Default::default()
            }
            .insert(txn)
            .await?;
            Ok(())
        })
    })
    .await?;

    let listing = db.clone();
    tokio::time::sleep(Duration::from_millis(50)).await;
    tokio::spawn(async move {
        println!("\n== a paginated listing, from a replica");
        let mut pages = post::Entity::find().order_by_asc(post::Column::Id).paginate(&listing, 2);
        let mut page_no = 1;
        while let Some(page) = pages.fetch_and_next().await? {
            let titles: Vec<_> = page.iter().map(|p| p.title.as_str()).collect();
            println!("page {page_no}: {titles:?}");
            page_no += 1;
        }

        println!("\n== a stream, from a replica");
        let mut stream =
            post::Entity::find().order_by_desc(post::Column::Views).stream(&listing).await?;
        while let Some(p) = stream.try_next().await? {
            println!("{:>3} views  {}", p.views, p.title);
        }

        println!("\n== related rows, from a replica");
        if let Some(alice) =
            author::Entity::find().filter(author::Column::Name.eq("Alice")).one(&listing).await?
        {
            let posts = alice.find_related(post::Entity).all(&listing).await?;
            println!("Alice wrote {} posts", posts.len());
        }
        Ok::<_, DbErr>(())
    })
    .await??;

    println!("\n== where the statements went");
    let stats = db.stats();
    for n in stats.nodes() {
        println!(
            "{:<8} {:<28} reads {:>3}  writes {:>3}  health {:?}",
            n.role(),
            n.name(),
            n.reads(),
            n.writes(),
            n.health()
        );
    }
    anyhow::ensure!(stats.replica_reads() > 0, "no read reached a replica");
    db.close().await?;
    Ok(())
}
