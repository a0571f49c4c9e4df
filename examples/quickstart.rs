//! Quickstart: a primary and two replicas, a write, and the replicas catching up.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! With `RWSPLIT_PRIMARY_URL` (and `RWSPLIT_REPLICA_URLS`, comma-separated) it uses that cluster;
//! without, it starts a throwaway local cluster through the testkit (PostgreSQL server binaries
//! must be installed, e.g. `apt-get install postgresql`) and stops it at the end.
//!
//! Until the SeaORM adapter lands this shows the replication the router is built on.

use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::{Connection, PgConnection};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (_cluster, primary, replicas) = match std::env::var("RWSPLIT_PRIMARY_URL") {
        Ok(primary) => {
            let replicas = std::env::var("RWSPLIT_REPLICA_URLS").unwrap_or_default();
            let replicas =
                replicas.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect();
            (None, primary, replicas)
        }
        Err(_) => {
            let started = Instant::now();
            let cluster = rwsplit_testkit::Cluster::builder()
                .name("quickstart")
                .start()
                .await
                .context("starting a throwaway local cluster")?;
            println!("started a local cluster in {:.2} s", started.elapsed().as_secs_f64());
            let (p, r) = (cluster.primary_url(), cluster.replica_urls());
            (Some(cluster), p, r)
        }
    };
    println!("primary  {primary}");
    for r in &replicas {
        println!("replica  {r}");
    }

    let mut p = PgConnection::connect(&primary).await.context("connecting to the primary")?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS quickstart (id serial primary key, note text not null);
         INSERT INTO quickstart (note) VALUES ('hello from the primary')",
    )
    .execute(&mut p)
    .await?;
    let written: i64 =
        sqlx::query_scalar("SELECT count(*) FROM quickstart").fetch_one(&mut p).await?;
    println!("primary  wrote; it now has {written} rows");

    for url in &replicas {
        let mut r =
            PgConnection::connect(url).await.with_context(|| format!("connecting to {url}"))?;
        let start = Instant::now();
        loop {
            let seen: Option<i64> =
                sqlx::query_scalar("SELECT count(*) FROM quickstart").fetch_one(&mut r).await.ok();
            if seen == Some(written) {
                let port: i32 =
                    sqlx::query_scalar("SELECT inet_server_port()").fetch_one(&mut r).await?;
                println!("replica  :{port} has all {written} rows after {:?}", start.elapsed());
                break;
            }
            anyhow::ensure!(start.elapsed() < Duration::from_secs(10), "{url} did not catch up");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let refused =
            sqlx::query("INSERT INTO quickstart (note) VALUES ('x')").execute(&mut r).await;
        println!("replica  refuses writes: {}", refused.is_err());
    }
    Ok(())
}
