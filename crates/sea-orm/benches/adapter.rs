//! The adapter's overhead against plain SeaORM, in one run, against the same replica server.
//!
//! `cargo xtask bench adapter` runs it and prints the ratios. The workload is SeaORM's
//! `find_by_id` (a one-row SELECT by primary key), with 1 task and with 16 concurrent tasks,
//! through:
//! - `plain`: a `DatabaseConnection` to the replica;
//! - `routed`: a `RoutedConnection` over the primary and that replica, so every read goes
//!   through classification, the read-your-writes scope lookup, the router, the balancer and the
//!   replica's pool (its monitor probing both nodes meanwhile, as in production).
//!
//! It starts a throwaway PostgreSQL primary and streaming replica through the testkit, or uses
//! `RWSPLIT_BENCH_URL` and `RWSPLIT_BENCH_REPLICA_URL`. (An earlier version used one node as
//! both primary and replica; the monitor, which reads each node's role, rightly calls that two
//! primaries.)

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rwsplit_sea_orm::RoutedConnection;
use sea_orm::entity::prelude::*;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

// The derive macros generate public items; this module is private to the bench.
#[allow(unreachable_pub, missing_docs)]
#[path = "support/item.rs"]
mod item;

const ROWS: i32 = 1000;

async fn setup(
    primary: &str,
    replica: &str,
    cluster: Option<&rwsplit_testkit::Cluster>,
) -> (DatabaseConnection, RoutedConnection) {
    let options = |url: &str| {
        let mut opts = sea_orm::ConnectOptions::new(url.to_owned());
        opts.max_connections(32).sqlx_logging(false);
        opts
    };
    let seed = Database::connect(options(primary)).await.expect("connect to the primary");
    seed.execute_unprepared(
            "DROP TABLE IF EXISTS bench_item;
             CREATE TABLE bench_item (id int primary key, name text not null, qty int not null);
             INSERT INTO bench_item SELECT g, 'item ' || g, g % 17 FROM generate_series(1, 1000) g;",
        )
        .await
        .expect("seed");
    if let Some(cluster) = cluster {
        cluster.wait_caught_up(0, Duration::from_secs(30)).await.expect("the replica catches up");
    }
    // Both sides read from the same replica server: plain SeaORM connected to it directly, and
    // a RoutedConnection whose reads are routed to it.
    let plain = Database::connect(options(replica)).await.expect("connect to the replica");
    // `RWSPLIT_BENCH_POSITION_INTERVAL_MS` changes the monitor's replay-position feed (20 ms by
    // default) to measure what that background work costs the statements.
    let mut monitor = rwsplit_sea_orm::advanced::MonitorConfig::default();
    if let Some(ms) =
        std::env::var("RWSPLIT_BENCH_POSITION_INTERVAL_MS").ok().and_then(|v| v.parse::<u64>().ok())
    {
        monitor = monitor.position_interval(Duration::from_millis(ms));
        eprintln!("adapter bench: position feed every {ms} ms");
    }
    let routed = RoutedConnection::builder()
        .primary(options(primary))
        .replica(options(replica))
        .monitor(monitor)
        .connect()
        .await
        .expect("connect routed");
    (plain, routed)
}

async fn find<C: ConnectionTrait>(db: &C, i: u64) {
    let id = i32::try_from(i % u64::try_from(ROWS).unwrap_or(1)).unwrap_or(0) + 1;
    let row = item::Entity::find_by_id(id).one(db).await.expect("query");
    assert!(row.is_some());
}

/// Time `iters` lookups spread over `tasks` concurrent tasks.
async fn run<C>(db: &C, iters: u64, tasks: u64) -> Duration
where
    C: ConnectionTrait + Clone + Send + Sync + 'static,
{
    let start = Instant::now();
    let per_task = iters.div_ceil(tasks);
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let db = db.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    find(&db, t * per_task + i).await;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("task");
    }
    start.elapsed()
}

/// Median seconds per operation for each side over alternating rounds.
async fn paired(plain: &DatabaseConnection, routed: &RoutedConnection, tasks: u64) -> (f64, f64) {
    const ROUNDS: usize = 60;
    const OPS: u64 = 400;
    let (mut a, mut b) = (Vec::with_capacity(ROUNDS), Vec::with_capacity(ROUNDS));
    for round in 0..ROUNDS {
        let per_op = |d: Duration| d.as_secs_f64() / OPS as f64;
        if round % 2 == 0 {
            a.push(per_op(run(plain, OPS, tasks).await));
            b.push(per_op(run(routed, OPS, tasks).await));
        } else {
            b.push(per_op(run(routed, OPS, tasks).await));
            a.push(per_op(run(plain, OPS, tasks).await));
        }
    }
    (median(&mut a), median(&mut b))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let env = (std::env::var("RWSPLIT_BENCH_URL"), std::env::var("RWSPLIT_BENCH_REPLICA_URL"));
    let (cluster, primary, replica) = match env {
        (Ok(p), Ok(r)) => (None, p, r),
        _ => {
            let cluster = rt
                .block_on(rwsplit_testkit::Cluster::builder().name("bench").replicas(1).start())
                .expect("a PostgreSQL primary and replica for the benchmark");
            let (p, r) = (cluster.primary_url(), cluster.replica_urls().remove(0));
            (Some(cluster), p, r)
        }
    };
    let (plain, routed) = rt.block_on(setup(&primary, &replica, cluster.as_ref()));
    for tasks in [1_u64, 16] {
        let mut group = c.benchmark_group(format!("find_by_id/{tasks}_tasks"));
        group.throughput(criterion::Throughput::Elements(1));
        group.bench_function("plain", |b| {
            b.iter_custom(|iters| rt.block_on(run(&plain, iters, tasks)))
        });
        group.bench_function("routed", |b| {
            b.iter_custom(|iters| rt.block_on(run(&routed, iters, tasks)))
        });
        group.finish();
    }
    // The headline number: plain and routed measured alternately (ABBA), so that load from
    // anything else on the machine falls on both alike. Printed for `cargo xtask bench adapter`.
    for tasks in [1_u64, 16] {
        let (plain_med, routed_med) = rt.block_on(paired(&plain, &routed, tasks));
        println!(
            "paired find_by_id/{tasks}_tasks: plain {:.1} µs/op, routed {:.1} µs/op, ratio {:.3}",
            plain_med * 1e6,
            routed_med * 1e6,
            routed_med / plain_med
        );
    }
    let stats = routed.stats();
    assert!(
        stats.replica_reads() > 0 && stats.primary().reads() == 0,
        "the routed reads used the replica pool: {stats:?}"
    );
    drop(cluster);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
