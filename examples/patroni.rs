//! Patroni: the quickstart's blog on a throwaway Patroni cluster (one etcd, three
//! Patroni-managed PostgreSQL members, started by the testkit from Debian's `patroni` and
//! `etcd-server` packages), with the `RoutedConnection` following Patroni's REST API. It prints
//! where statements go, switches the leader over, and prints where they go after.
//!
//! ```sh
//! cargo run --example patroni
//! ```
//!
//! The connection is built from the leader's URL and the members' REST endpoints only; the
//! other members are discovered, and after the switchover writes follow the new leader
//! without a restart. Patroni promotes; rwsplit never does (`auto_failover` is refused with a
//! Patroni source).
//!
//! It runs only on the cluster it starts (it reads no `DATABASE_URL`), which it deletes at the
//! end with everything in it.

#[path = "blog/mod.rs"]
mod blog;

use std::time::{Duration, Instant};

use anyhow::Context;
use blog::{author, migration::Migrator, post};
use rwsplit_sea_orm::RoutedConnection;
use rwsplit_sea_orm::advanced::PatroniSource;
use sea_orm::{ActiveModelTrait, EntityTrait, PaginatorTrait, Set};
use sea_orm_migration::MigratorTrait;

/// Where the counts moved since `before`: `node: +reads/+writes` for each node.
fn moved(db: &RoutedConnection, before: &[(String, u64, u64)]) -> String {
    db.stats()
        .nodes()
        .iter()
        .map(|n| {
            let (r, w) = before.iter().find(|b| b.0 == n.name()).map_or((0, 0), |b| (b.1, b.2));
            format!(
                "{} ({:?}): +{} reads, +{} writes",
                n.name(),
                n.current_role(),
                n.reads() - r,
                n.writes() - w
            )
        })
        .collect::<Vec<_>>()
        .join("\n  ")
}

fn counts(db: &RoutedConnection) -> Vec<(String, u64, u64)> {
    db.stats().nodes().iter().map(|n| (n.name().to_owned(), n.reads(), n.writes())).collect()
}

/// A burst of traffic: `n` posts written, then read back by other tasks.
async fn traffic(db: &RoutedConnection, author_id: i32, n: i32, phase: &str) -> anyhow::Result<()> {
    for i in 0..n {
        post::ActiveModel {
            author_id: Set(author_id),
            title: Set(format!("{phase} post {i}")),
            views: Set(i),
            ..Default::default()
        }
        .insert(db)
        .await?;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let reader = db.clone();
    tokio::spawn(async move {
        for _ in 0..n {
            post::Entity::find().count(&reader).await?;
        }
        Ok::<_, sea_orm::DbErr>(())
    })
    .await??;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "rwsplit=warn".into()))
        .with_target(false)
        .with_ansi(false)
        .without_time()
        .init();

    let started = Instant::now();
    let cluster = rwsplit_testkit::PatroniCluster::builder()
        .name("example")
        .members(3)
        .start()
        .await
        .context("starting a throwaway Patroni cluster (are patroni and etcd-server installed?)")?;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await?;
    println!("Patroni cluster up in {:.1} s; leader {leader}", started.elapsed().as_secs_f64());

    let db = RoutedConnection::builder()
        .primary(cluster.member(&leader)?.url())
        .topology(PatroniSource::new(cluster.rest_urls())?)
        .topology_interval(Duration::from_millis(500))
        .probe_interval(Duration::from_millis(200))
        .connect()
        .await?;
    // The other members join once their first probes see them healthy and caught up.
    let deadline = Instant::now() + Duration::from_secs(15);
    while db
        .stats()
        .nodes()
        .iter()
        .filter(|n| n.health() == rwsplit_sea_orm::advanced::Health::Up)
        .count()
        < 3
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("{db:?}");

    Migrator::up(db.primary(), None).await?;
    let alice =
        author::ActiveModel { name: Set("Alice".into()), ..Default::default() }.insert(&db).await?;

    let before = counts(&db);
    traffic(&db, alice.id, 20, "before").await?;
    println!("\n== before the switchover\n  {}", moved(&db, &before));

    let candidate = cluster
        .members()
        .into_iter()
        .map(|m| m.name().to_owned())
        .find(|n| *n != leader)
        .context("a second member")?;
    let asked = Instant::now();
    let new = cluster.switchover(Some(&candidate)).await?;
    println!(
        "\n== Patroni switched over from {leader} to {new} in {:.2} s",
        asked.elapsed().as_secs_f64()
    );
    // Writes follow once the monitor's probe sees the new leader (one probe interval).
    let mut failed = 0;
    let before = counts(&db);
    let resumed = loop {
        match (author::ActiveModel { name: Set("Bob".into()), ..Default::default() })
            .insert(&db)
            .await
        {
            Ok(_) => break asked.elapsed(),
            Err(e) => {
                failed += 1;
                if asked.elapsed() > Duration::from_secs(30) {
                    anyhow::bail!("writes did not resume: {e}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    println!(
        "first write acknowledged {:.2} s after the request ({failed} attempts failed meanwhile)",
        resumed.as_secs_f64()
    );
    traffic(&db, alice.id, 20, "after").await?;
    println!("\n== after the switchover\n  {}", moved(&db, &before));
    db.close().await?;
    Ok(())
}
