//! What each way of making a replica read-only costs per read (see `Pooling` and
//! docs/ARCHITECTURE.md, *PgBouncer*).
//!
//! `cargo bench -p rwsplit-sea-orm --bench pooling` starts a throwaway PostgreSQL primary and
//! replica through the testkit and a real PgBouncer in front of the replica in session and in
//! transaction pooling, then times SeaORM's `find_by_id` (one task, one row by primary key) in
//! alternating rounds (ABBA) through:
//! - `direct/plain`: SeaORM to the replica; `direct/routed`: a `RoutedConnection` with the
//!   replica `Pooling::Direct` (the startup parameter, the default);
//! - `session/plain`: SeaORM through PgBouncer (session); `session/routed`: `Pooling::Session`;
//! - `transaction/plain`: SeaORM through a PgBouncer (transaction) of its own, one connection,
//!   `statement_cache_capacity(0)`: an unguarded client as it can work there at all (with two
//!   client connections, sqlx's `sqlx_s_1` of one collides with the other's on a shared server
//!   connection: "prepared statement already exists"); `transaction/routed`:
//!   `Pooling::Transaction` (each read in `BEGIN READ ONLY … COMMIT`, see `Pooling`).

use std::time::{Duration, Instant};

use rwsplit_sea_orm::{Pooling, Replica, RoutedConnection};
use rwsplit_testkit::PoolMode;
use sea_orm::entity::prelude::*;
use sea_orm::{ConnectOptions, ConnectionTrait, Database};

// The derive macros generate public items; this module is private to the bench.
#[allow(unreachable_pub, missing_docs)]
#[path = "support/item.rs"]
mod item;

const ROUNDS: usize = 100;
const OPS: u64 = 100;

async fn find<C: ConnectionTrait>(db: &C, i: u64) {
    let id = i32::try_from(i % 1000).unwrap_or(0) + 1;
    let row = item::Entity::find_by_id(id).one(db).await.expect("query");
    assert!(row.is_some());
}

async fn run<C: ConnectionTrait>(db: &C) -> f64 {
    let start = Instant::now();
    for i in 0..OPS {
        find(db, i).await;
    }
    start.elapsed().as_secs_f64() / OPS as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn options(url: &str, cache: bool) -> ConnectOptions {
    let mut o = ConnectOptions::new(url.to_owned());
    o.max_connections(if cache { 4 } else { 1 }).sqlx_logging(false);
    if !cache {
        o.map_sqlx_postgres_opts(|p| p.statement_cache_capacity(0));
    }
    o
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it with no arguments: only
    // build it then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let cluster = rwsplit_testkit::Cluster::builder()
            .name("bench-pooling")
            .replicas(1)
            .start()
            .await
            .expect("a PostgreSQL primary and replica");
        let (primary, replica) = (cluster.primary_url(), cluster.replica_urls().remove(0));
        let seed = Database::connect(options(&primary, true)).await.expect("primary");
        seed.execute_unprepared(
            "CREATE TABLE bench_item (id int primary key, name text not null, qty int not null);
             INSERT INTO bench_item SELECT g, 'item ' || g, g % 17 FROM generate_series(1, 1000) g;",
        )
        .await
        .expect("seed");
        cluster.wait_caught_up(0, Duration::from_secs(30)).await.expect("caught up");
        let node = &cluster.replicas()[0];
        let session = node.pgbouncer(PoolMode::Session).await.expect("pgbouncer (session)");
        let transaction =
            node.pgbouncer(PoolMode::Transaction).await.expect("pgbouncer (transaction)");
        let unguarded =
            node.pgbouncer(PoolMode::Transaction).await.expect("pgbouncer (transaction, plain)");
        let cases = [
            ("direct", replica.clone(), replica.clone(), Pooling::Direct, true),
            ("session", session.url(&replica), session.url(&replica), Pooling::Session, true),
            (
                "transaction",
                unguarded.url(&replica),
                transaction.url(&replica),
                Pooling::Transaction,
                false,
            ),
        ];
        for (name, plain_url, url, pooling, cache) in cases {
            let plain = Database::connect(options(&plain_url, cache)).await.expect("plain");
            let routed = RoutedConnection::builder()
                .primary(options(&primary, true))
                .replica(Replica::new(options(&url, true)).pooling(pooling))
                .read_your_writes(false)
                .connect()
                .await
                .expect("routed");
            // Warm both pools.
            run(&plain).await;
            run(&routed).await;
            // Each round is a pair (plain then routed, or routed then plain), close in time; the
            // machine's load drifts between rounds, so the ratio is taken per pair and its
            // median reported, with the interquartile range.
            let (mut a, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
            for round in 0..ROUNDS {
                let (p, r) = if round % 2 == 0 {
                    let p = run(&plain).await;
                    (p, run(&routed).await)
                } else {
                    let r = run(&routed).await;
                    (run(&plain).await, r)
                };
                a.push(p);
                b.push(r);
                ratios.push(r / p);
            }
            let (p, r) = (median(&mut a), median(&mut b));
            let ratio = median(&mut ratios);
            let (q1, q3) = (ratios[ROUNDS / 4], ratios[3 * ROUNDS / 4]);
            println!(
                "paired find_by_id {name}: plain {:.1} µs/op, routed {:.1} µs/op, \
                 per-pair ratio {ratio:.3} (IQR {q1:.3}–{q3:.3})",
                p * 1e6,
                r * 1e6,
            );
            let stats = routed.stats();
            assert!(stats.primary().reads() == 0, "every routed read used the replica: {stats:?}");
        }
    });
}
