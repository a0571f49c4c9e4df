//! A fault timeline, as data: what an application sees, second by second, while a replica is
//! killed and restarted, another lags, and the primary is switched over.
//!
//! ```sh
//! cargo run --example fault_timeline -- target/rwsplit/report/timeline.json
//! ```
//!
//! It starts a throwaway PostgreSQL primary with two replicas (the testkit), runs a writer (each
//! acknowledged write read back in the same task) and two readers (reads at most 500 ms stale)
//! through one `RoutedConnection`, and every 250 ms records each node's health, role, lag and
//! share of the reads, and the application's read and write latency. `cargo xtask report` plots
//! the JSON it writes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rwsplit_sea_orm::{Consistency, Health, MonitorConfig, RoutedConnection, Staleness};
use rwsplit_testkit::{Cluster, DbKind};
use sea_orm::{ConnectionTrait, Statement};
use serde::Serialize;

const SAMPLE: Duration = Duration::from_millis(250);

#[derive(Serialize)]
struct NodeSample {
    name: String,
    role: &'static str,
    health: &'static str,
    lag_ms: Option<u64>,
    lag_bytes: Option<u64>,
    reads: u64,
}

#[derive(Serialize)]
struct Sample {
    t_ms: u64,
    nodes: Vec<NodeSample>,
    read_p50_ms: Option<f64>,
    read_p99_ms: Option<f64>,
    write_p50_ms: Option<f64>,
    write_p99_ms: Option<f64>,
    reads_failed: u64,
    writes_failed: u64,
}

#[derive(Serialize)]
struct Event {
    t_ms: u64,
    what: &'static str,
}

#[derive(Serialize)]
struct Timeline {
    db: &'static str,
    sample_ms: u64,
    events: Vec<Event>,
    samples: Vec<Sample>,
}

/// Latencies of one sampling interval, and failures.
#[derive(Default)]
struct Window {
    reads: Vec<Duration>,
    writes: Vec<Duration>,
    reads_failed: u64,
    writes_failed: u64,
}

/// Nearest-rank percentile, `per_mille` in thousandths, in milliseconds.
fn percentile(v: &mut [Duration], per_mille: usize) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort();
    let i = (v.len() - 1) * per_mille / 1000;
    Some(v[i.min(v.len() - 1)].as_secs_f64() * 1e3)
}

fn stmt(db: &RoutedConnection, sql: String) -> Statement {
    Statement::from_string(db.get_database_backend(), sql)
}

fn spawn_load(
    db: &RoutedConnection,
    stop: &Arc<AtomicBool>,
    window: &Arc<Mutex<Window>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    {
        let (db, stop, window) = (db.clone(), Arc::clone(stop), Arc::clone(window));
        tasks.push(tokio::spawn(async move {
            let mut id = 0_i64;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                let started = Instant::now();
                let r =
                    db.execute_raw(stmt(&db, format!("INSERT INTO t (id) VALUES ({id})"))).await;
                let took = started.elapsed();
                match r {
                    Ok(_) => {
                        window.lock().unwrap().writes.push(took);
                        let check = stmt(&db, format!("SELECT id FROM t WHERE id = {id}"));
                        let _ = db.query_one_raw(check).await;
                    }
                    Err(_) => window.lock().unwrap().writes_failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    for _ in 0..2 {
        let (db, stop, window) = (db.clone(), Arc::clone(stop), Arc::clone(window));
        tasks.push(tokio::spawn(async move {
            let fresh = db.consistent(Consistency::BoundedStaleness(Staleness::time(
                Duration::from_millis(500),
            )));
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let r = fresh.query_one_raw(stmt(&db, "SELECT count(*) AS n FROM t".into())).await;
                let took = started.elapsed();
                {
                    let mut w = window.lock().unwrap();
                    match r {
                        Ok(_) => w.reads.push(took),
                        Err(_) => w.reads_failed += 1,
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    tasks
}

fn sample(db: &RoutedConnection, t: Duration, last_reads: &mut Vec<u64>, w: Window) -> Sample {
    let mut w = w;
    let stats = db.stats();
    let nodes = stats
        .nodes()
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let reads = n.reads();
            let before = last_reads.get(i).copied().unwrap_or(0);
            if let Some(slot) = last_reads.get_mut(i) {
                *slot = reads;
            } else {
                last_reads.push(reads);
            }
            NodeSample {
                name: n.name().to_owned(),
                role: if n.current_role() == rwsplit_sea_orm::Role::Primary {
                    "primary"
                } else {
                    "replica"
                },
                health: match n.health() {
                    Health::Up => "up",
                    Health::Suspect => "suspect",
                    Health::Down => "down",
                },
                lag_ms: n.lag().time().map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                lag_bytes: n.lag().bytes(),
                reads: reads.saturating_sub(before),
            }
        })
        .collect();
    Sample {
        t_ms: u64::try_from(t.as_millis()).unwrap_or(u64::MAX),
        nodes,
        read_p50_ms: percentile(&mut w.reads, 500),
        read_p99_ms: percentile(&mut w.reads, 990),
        write_p50_ms: percentile(&mut w.writes, 500),
        write_p99_ms: percentile(&mut w.writes, 990),
        reads_failed: w.reads_failed,
        writes_failed: w.writes_failed,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> anyhow::Result<()> {
    let out = std::env::args().nth(1).unwrap_or_else(|| "timeline.json".to_owned());
    let cluster =
        Cluster::builder().db(DbKind::Postgres).replicas(2).name("timeline").start().await?;
    let tdb = cluster.create_database("timeline").await?;
    let db = RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replicas(tdb.replica_urls())
        .monitor(
            MonitorConfig::default()
                .interval(Duration::from_millis(200))
                .timeout(Duration::from_millis(500)),
        )
        .replica_read_timeout(Some(Duration::from_millis(500)))
        .connect()
        .await?;
    db.execute_unprepared("CREATE TABLE t (id BIGINT PRIMARY KEY)").await?;
    cluster.wait_caught_up(0, Duration::from_secs(10)).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let window = Arc::new(Mutex::new(Window::default()));
    let load = spawn_load(&db, &stop, &window);
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut events = Vec::new();
    let mut last_reads = Vec::new();
    // (at, what): the fault script, run between samples.
    let script: [(u64, &'static str); 6] = [
        (4_000, "replica n2 killed (SIGKILL)"),
        (9_000, "replica n2 restarted"),
        (13_000, "replay paused on replica n1 (lag spike)"),
        (17_000, "replay resumed on n1"),
        (21_000, "switchover: primary stopped, n1 promoted, n2 follows"),
        (28_000, "end"),
    ];
    let mut next = 0;
    let mut tick = tokio::time::interval(SAMPLE);
    loop {
        tick.tick().await;
        let t = start.elapsed();
        let w = std::mem::take(&mut *window.lock().unwrap());
        samples.push(sample(&db, t, &mut last_reads, w));
        let Some(&(at, what)) = script.get(next) else { break };
        if u64::try_from(t.as_millis()).unwrap_or(u64::MAX) < at {
            continue;
        }
        next += 1;
        events.push(Event { t_ms: at, what });
        let (primary, n1, n2) = (cluster.primary(), &cluster.replicas()[0], &cluster.replicas()[1]);
        match next {
            1 => n2.crash()?,
            2 => n2.restart().await?,
            3 => n1.pause_replay().await?,
            4 => n1.resume_replay().await?,
            5 => {
                primary.stop()?;
                n1.promote().await?;
                n2.follow(n1).await?;
            }
            _ => break,
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await?;
    }
    let timeline = Timeline { db: "postgres", sample_ms: 250, events, samples };
    std::fs::write(&out, serde_json::to_vec_pretty(&timeline)?)?;
    eprintln!("wrote {out}: {} samples", timeline.samples.len());
    Ok(())
}
