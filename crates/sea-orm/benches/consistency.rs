//! Read-your-writes strategies compared in one run on a real lagging cluster.
//!
//! `cargo xtask bench consistency` runs it. It starts a PostgreSQL primary with two streaming
//! replicas that apply WAL `RWSPLIT_BENCH_DELAY_MS` late (default 200 ms,
//! `recovery_min_apply_delay`), then runs the same workload through five strategies, one after
//! the other, on the same cluster:
//!
//! - `naive`: reads always go to replicas (read-your-writes off);
//! - `window 2s`: Rails/Laravel style: for 2 s after a user's write, its reads go to the
//!   primary;
//! - `position`: rwsplit's default: the write's replication position, per task;
//! - `position, wait ≤ 2 ms`: the same, but a read no replica is *known* to satisfy checks the
//!   closest replica's replay position (a round trip or two) before using the primary;
//! - `position, wait ≤ 500 ms`: waits up to 500 ms for a replica before using the primary.
//!
//! The workload: `USERS` concurrent users (one tokio task each), each doing `ROUNDS` rounds of
//! a write (insert), an immediate read of that row, a pause (uniform 0–1 s, deterministic per
//! user and round), a second read of the row, and two reads of other rows ("browsing"). A read
//! of one's own row that does not find it is stale. Reported per strategy: stale reads, the
//! share of reads replicas served, the *oracle* share — the reads a router with perfect,
//! instant knowledge of every replica's position could have sent to a replica without a stale
//! read (those issued at least the apply delay after the user's last acknowledged write) — and
//! the replica share as a fraction of it, read latency p50/p99 and write latency p50 (the
//! position strategies pay one round trip per write to read the position).
//!
//! Then the monotonic-reads workload: the first replica's delay is cleared (the
//! second keeps it), a writer increments a counter every 10 ms on the primary, and
//! `MONO_READERS` readers that only read each read it `MONO_READS` times, 10 ms apart, each in
//! its own task scope, at `Consistency::Eventual` and at `Consistency::Session` (the default).
//! Reported per level: reads that went back in time (a value below one the same reader had
//! already seen), the worst such step, and the share of reads replicas served.

use std::time::{Duration, Instant};

use rwsplit_sea_orm::{Consistency, RoutedConnection};
use rwsplit_testkit::{Cluster, DbKind};
use sea_orm::entity::prelude::*;
use sea_orm::{ConnectionTrait, Set};

// The derive macros generate public items; this module is private to the bench.
#[allow(unreachable_pub, missing_docs)]
mod item {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ryw_item")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub owner: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

const USERS: u8 = 8;
const MONO_READERS: usize = 4;
const MONO_READS: usize = 100;
const ROUNDS: usize = 12;
const WINDOW: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Strategy {
    Naive,
    Window,
    Position,
    PositionCheck,
    PositionWait,
}

impl Strategy {
    fn name(self) -> &'static str {
        match self {
            Strategy::Naive => "naive (always replicas)",
            Strategy::Window => "time window 2 s (Rails)",
            Strategy::Position => "rwsplit by position",
            Strategy::PositionCheck => "rwsplit by position, wait ≤ 2 ms",
            Strategy::PositionWait => "rwsplit by position, wait ≤ 500 ms",
        }
    }
}

#[derive(Default)]
struct Tally {
    own_reads: usize,
    /// Reads issued at least the apply delay after the user's last write.
    oracle: usize,
    stale: usize,
    read_latencies: Vec<Duration>,
    write_latencies: Vec<Duration>,
}

/// A deterministic pause in [0, 1 s) for `user`'s round `round`.
fn pause(user: i32, round: usize) -> Duration {
    let mut x = u64::from(user.unsigned_abs()) << 32 | round as u64;
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    Duration::from_millis(x % 1000)
}

async fn user(db: RoutedConnection, strategy: Strategy, user: i32, delay: Duration) -> Tally {
    let mut t = Tally::default();
    let strong = db.consistent(Consistency::Strong);
    let waiting = db.wait_for_replica(Duration::from_millis(500));
    let checking = db.wait_for_replica(Duration::from_millis(2));
    for round in 0..ROUNDS {
        let started = Instant::now();
        let row = item::ActiveModel { owner: Set(user), ..Default::default() }
            .insert(&db)
            .await
            .expect("insert");
        t.write_latencies.push(started.elapsed());
        let last_write = Instant::now();
        // Reads of one's own row: right away, then after a pause; then two other rows.
        let reads = [Some(row.id), None, Some(row.id), Some(row.id - 1), Some(row.id / 2)];
        for (i, id) in reads.into_iter().enumerate() {
            let Some(id) = id else {
                tokio::time::sleep(pause(user, round)).await;
                continue;
            };
            let own = i < 3;
            let started = Instant::now();
            t.oracle += usize::from(started.duration_since(last_write) >= delay);
            let found = match strategy {
                Strategy::Naive | Strategy::Position => item::Entity::find_by_id(id).one(&db).await,
                Strategy::PositionWait => item::Entity::find_by_id(id).one(&waiting).await,
                Strategy::PositionCheck => item::Entity::find_by_id(id).one(&checking).await,
                Strategy::Window => {
                    if last_write.elapsed() < WINDOW {
                        item::Entity::find_by_id(id).one(&strong).await
                    } else {
                        item::Entity::find_by_id(id).one(&db).await
                    }
                }
            }
            .expect("read");
            t.read_latencies.push(started.elapsed());
            if own {
                t.own_reads += 1;
                t.stale += usize::from(found.is_none());
            }
        }
    }
    t
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest rank, in integer arithmetic: p is given in per mille.
    let rank = (sorted.len() - 1) * p / 1000;
    sorted[rank.min(sorted.len() - 1)]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let delay_ms: u64 =
        std::env::var("RWSPLIT_BENCH_DELAY_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let delay = Duration::from_millis(delay_ms);
    let cluster = Cluster::builder()
        .db(DbKind::Postgres)
        .replicas(2)
        .name("bench-consistency")
        .start()
        .await
        .expect("a PostgreSQL cluster (see the testkit's requirements)");
    let tdb = cluster.create_database("ryw_bench").await.expect("a database");
    let setup = sea_orm::Database::connect(tdb.primary_url()).await.expect("primary");
    setup
        .execute_unprepared("CREATE TABLE ryw_item (id serial PRIMARY KEY, owner int NOT NULL)")
        .await
        .expect("table");
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.expect("replicas catch up");
    for r in cluster.replicas() {
        r.set_apply_delay(delay).await.expect("apply delay");
    }
    println!(
        "PostgreSQL primary + 2 replicas applying {delay_ms} ms late; {USERS} users × {ROUNDS} rounds (write, read own, pause 0–1 s, read own, read 2 others); full probe every 500 ms, replay positions every 20 ms\n"
    );
    println!(
        "| strategy | stale reads (of own-row reads) | reads on replicas | oracle share | of the oracle | read p50 | read p99 | write p50 |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut rows = Vec::new();
    for strategy in [
        Strategy::Naive,
        Strategy::Window,
        Strategy::Position,
        Strategy::PositionCheck,
        Strategy::PositionWait,
    ] {
        let db = RoutedConnection::builder()
            .primary(tdb.primary_url())
            .replicas(tdb.replica_urls())
            .read_your_writes(!matches!(strategy, Strategy::Naive | Strategy::Window))
            .connect()
            .await
            .expect("routed connection");
        // `connect` returns once the monitor has probed every node.
        let before = db.stats();
        let tasks: Vec<_> = (0..i32::from(USERS))
            .map(|u| tokio::spawn(user(db.clone(), strategy, u, delay)))
            .collect();
        let mut total = Tally::default();
        for task in tasks {
            let t = task.await.expect("user task");
            total.own_reads += t.own_reads;
            total.stale += t.stale;
            total.oracle += t.oracle;
            total.read_latencies.extend(t.read_latencies);
            total.write_latencies.extend(t.write_latencies);
        }
        let after = db.stats();
        let replica = after.replica_reads() - before.replica_reads();
        let primary = after.primary().reads() - before.primary().reads();
        total.read_latencies.sort();
        total.write_latencies.sort();
        let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
        let reads = (replica + primary).max(1) as f64;
        let share = replica as f64 / reads;
        let oracle = total.oracle as f64 / reads;
        println!(
            "| {} | {} of {} | {:.1} % | {:.1} % | {:.0} % | {} | {} | {} |",
            strategy.name(),
            total.stale,
            total.own_reads,
            100.0 * share,
            100.0 * oracle,
            100.0 * share / oracle.max(f64::MIN_POSITIVE),
            ms(percentile(&total.read_latencies, 500)),
            ms(percentile(&total.read_latencies, 990)),
            ms(percentile(&total.write_latencies, 500)),
        );
        rows.push(serde_json::json!({
            "strategy": strategy.name(),
            "stale": total.stale,
            "own_reads": total.own_reads,
            "replica_share": share,
            "oracle_share": oracle,
            "read_p50_ms": percentile(&total.read_latencies, 500).as_secs_f64() * 1e3,
            "read_p99_ms": percentile(&total.read_latencies, 990).as_secs_f64() * 1e3,
            "write_p50_ms": percentile(&total.write_latencies, 500).as_secs_f64() * 1e3,
        }));
        if !matches!(strategy, Strategy::Naive | Strategy::Window) {
            let ryw = after.read_your_writes();
            eprintln!("  {}: {ryw:?}", strategy.name());
        }
        db.close().await.ok();
    }
    let monotonic = monotonic_workload(&cluster, &tdb, &setup, delay).await;
    // `cargo xtask report` plots these and checks the monotonic budgets.
    if let Ok(path) = std::env::var("RWSPLIT_BENCH_JSON") {
        let doc = serde_json::json!({
            "delay_ms": delay_ms,
            "users": USERS,
            "rounds": ROUNDS,
            "rows": rows,
            "monotonic": monotonic,
        });
        std::fs::write(&path, doc.to_string()).expect("writing the JSON");
    }
    for r in cluster.replicas() {
        r.clear_apply_delay().await.ok();
    }
    drop(tdb);
    cluster.stop().ok();
}

/// One reader of the monotonic workload: `MONO_READS` reads of the counter through `db` in
/// this task's scope; returns (reads that went back in time, the worst step back).
async fn mono_reader(db: RoutedConnection) -> (usize, i64) {
    let sql = sea_orm::Statement::from_string(
        db.get_database_backend(),
        "SELECT v FROM mono_counter WHERE id = 1",
    );
    let (mut high, mut back, mut worst) = (i64::MIN, 0, 0);
    for _ in 0..MONO_READS {
        let row = db.query_one_raw(sql.clone()).await.expect("read").expect("the counter's row");
        let v: i64 = row.try_get("", "v").expect("v");
        if v < high {
            back += 1;
            worst = worst.max(high - v);
        }
        high = high.max(v);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (back, worst)
}

/// The monotonic-reads workload (see the module docs); prints its table and returns its rows.
async fn monotonic_workload(
    cluster: &Cluster,
    tdb: &rwsplit_testkit::TestDatabase,
    setup: &sea_orm::DatabaseConnection,
    delay: Duration,
) -> Vec<serde_json::Value> {
    setup
        .execute_unprepared(
            "CREATE TABLE mono_counter (id int PRIMARY KEY, v bigint NOT NULL); \
             INSERT INTO mono_counter VALUES (1, 0)",
        )
        .await
        .expect("counter table");
    cluster.replicas()[0].clear_apply_delay().await.expect("replica 1 without delay");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn({
        let (setup, stop) = (setup.clone(), std::sync::Arc::clone(&stop));
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                setup
                    .execute_unprepared("UPDATE mono_counter SET v = v + 1 WHERE id = 1")
                    .await
                    .expect("increment");
            }
        }
    });
    // The late replica is `delay` behind, and the table is on both.
    tokio::time::sleep(delay + Duration::from_millis(500)).await;
    println!(
        "\nMonotonic reads: replica 1 applies at once, replica 2 {} ms late; a writer increments a counter every 10 ms; {MONO_READERS} readers × {MONO_READS} reads, 10 ms apart, each in its task's scope\n",
        delay.as_millis()
    );
    println!("| level | reads | went back in time | worst step back | reads on replicas |");
    println!("| --- | --- | --- | --- | --- |");
    let mut rows = Vec::new();
    for (name, level) in [("eventual", Consistency::Eventual), ("session", Consistency::Session)] {
        let db = RoutedConnection::builder()
            .primary(tdb.primary_url())
            .replicas(tdb.replica_urls())
            .consistency(level)
            .connect()
            .await
            .expect("routed connection");
        let readers: Vec<_> =
            (0..MONO_READERS).map(|_| tokio::spawn(mono_reader(db.clone()))).collect();
        let (mut back, mut worst) = (0, 0);
        for r in readers {
            let (b, w) = r.await.expect("reader");
            back += b;
            worst = worst.max(w);
        }
        let stats = db.stats();
        let replica = stats.replica_reads();
        let reads = (replica + stats.primary().reads()).max(1);
        let share = replica as f64 / reads as f64;
        println!("| {name} | {reads} | {back} | {worst} | {:.1} % |", 100.0 * share);
        rows.push(serde_json::json!({
            "level": name,
            "reads": reads,
            "time_travel": back,
            "worst": worst,
            "replica_share": share,
        }));
        db.close().await.ok();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.expect("writer");
    rows
}
