//! Client-side instructions per `find_by_id`, and per one-row `INSERT`: plain SeaORM against
//! `RoutedConnection`, counted by callgrind (deterministic, unlike time on a shared machine).
//! `cargo xtask bench adapter-instructions` starts a PostgreSQL primary and replica, runs this
//! program under valgrind for each case with N statements and with fewer, and prints the
//! difference per statement.
//!
//! Usage: `adapter_instructions seed` (creates the tables on the primary), then
//! `adapter_instructions <plain|routed|plain-write|routed-write> <N>` with `RWSPLIT_BENCH_URL`
//! (the primary) and `RWSPLIT_BENCH_REPLICA_URL` set; `adapter_instructions --list` names the
//! cases. The read cases read the same replica, the write cases write the same primary, through
//! one pooled connection on a current-thread runtime; the routed connection's monitor probes
//! once at connect and not again during the run (an hour's interval, no position feed), so what
//! is counted is the statement path alone: classification, the read-your-writes scope, the
//! router and balancer, and the attempt loop; for a write, its two steps and what it leaves to
//! read-your-writes (a pending position, and the task it is left to).

use rwsplit_sea_orm::RoutedConnection;
use rwsplit_sea_orm::advanced::MonitorConfig;
use sea_orm::entity::prelude::*;
use sea_orm::{ConnectOptions, Database};

// The derive macros generate public items; this module is private to the bench.
#[allow(unreachable_pub, missing_docs)]
#[path = "support/item.rs"]
mod item;

fn options(url: &str) -> ConnectOptions {
    let mut o = ConnectOptions::new(url.to_owned());
    o.max_connections(1).min_connections(1).sqlx_logging(false);
    o
}

/// `n` + 1 one-row inserts, each one statement with a bound value (no read back).
async fn inserts<C: ConnectionTrait>(db: &C, n: u64) {
    for i in 0..=n {
        let name = format!("write {i}");
        let stmt = sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "INSERT INTO bench_write (name) VALUES ($1)",
            [name.into()],
        );
        db.execute_raw(stmt).await.expect("insert");
    }
}

async fn lookups<C: ConnectionTrait>(db: &C, n: u64) {
    for i in 0..=n {
        // One lookup before counting starts in earnest (i = 0 runs in both the N and the 0 run),
        // so connection set-up and first-use costs cancel out.
        let id = i32::try_from(i % 1000).unwrap_or(0) + 1;
        let row = item::Entity::find_by_id(id).one(db).await.expect("query");
        assert!(row.is_some(), "row {id}");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--list") {
        println!("plain\nrouted\nplain-write\nrouted-write");
        return;
    }
    let case = args.first().map(String::as_str).unwrap_or("plain").to_owned();
    let n: u64 = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    let primary = std::env::var("RWSPLIT_BENCH_URL").expect("RWSPLIT_BENCH_URL");
    let replica = std::env::var("RWSPLIT_BENCH_REPLICA_URL").expect("RWSPLIT_BENCH_REPLICA_URL");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        match case.as_str() {
            "seed" => {
                let db = Database::connect(options(&primary)).await.expect("primary");
                db.execute_unprepared(
                    "DROP TABLE IF EXISTS bench_item;
                     CREATE TABLE bench_item (id int primary key, name text not null, qty int not null);
                     INSERT INTO bench_item SELECT g, 'item ' || g, g % 17 FROM generate_series(1, 1000) g;
                     DROP TABLE IF EXISTS bench_write;
                     CREATE TABLE bench_write (id serial primary key, name text not null);",
                )
                .await
                .expect("seed");
            }
            "plain" => {
                let db = Database::connect(options(&replica)).await.expect("replica");
                lookups(&db, n).await;
            }
            "plain-write" => {
                let db = Database::connect(options(&primary)).await.expect("primary");
                inserts(&db, n).await;
            }
            "routed" | "routed-write" => {
                let quiet = MonitorConfig::default()
                    .probe_interval(std::time::Duration::from_secs(3600))
                    .position_interval(std::time::Duration::ZERO);
                let db = RoutedConnection::builder()
                    .primary(options(&primary))
                    .replica(options(&replica))
                    .monitor(quiet)
                    .connect()
                    .await
                    .expect("routed");
                // Under callgrind everything is tens of times slower: the replica's first probe
                // may answer after `connect()` returned, and until it does the replica takes no
                // reads. Wait for it (bounded), in both runs alike.
                let started = std::time::Instant::now();
                while db.stats().replicas()[0].joining() {
                    assert!(started.elapsed() < std::time::Duration::from_secs(120), "replica held");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                if case == "routed-write" {
                    inserts(&db, n).await;
                    assert_eq!(db.stats().primary().writes(), n + 1, "every insert on the primary");
                } else {
                    lookups(&db, n).await;
                    assert_eq!(db.stats().primary().reads(), 0, "every lookup used the replica");
                }
            }
            other => panic!("unknown case {other}"),
        }
    });
}
