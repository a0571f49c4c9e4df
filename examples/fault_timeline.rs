//! A fault timeline, as data: what an application sees, second by second, while a replica is
//! killed and restarted, another is frozen and thawed, then lags, and the primary is switched
//! over.
//!
//! ```sh
//! cargo run --example fault_timeline -- target/rwsplit/report/timeline.json
//! ```
//!
//! It starts a throwaway PostgreSQL primary with two replicas (the testkit), runs a writer (each
//! acknowledged write read back in the same task) and three readers through one
//! `RoutedConnection`, one per consistency level: eventual (asked for: the connection's default
//! is session), a `Session` that wrote a row of its
//! own first, and bounded staleness (at most 500 ms stale). Every 250 ms it records each node's
//! health, role, lag and share of the reads, the application's read and write latency (the
//! readers' p50, p99 and slowest read), the reads the router hedged and those it steered off a
//! stalled replica (`Stats::hedges`), and the reads and writes that failed, by level. A failed
//! bounded read also records whether any node could prove the bound (the primary up, or a
//! replica within 500 ms by `Lag::staleness_at`) when it started and when it failed. The freeze
//! is `Node::hang` (SIGSTOP of the server and its processes, or `docker pause`: it accepts
//! connections and answers nothing) for 3 s. `cargo xtask report` plots the JSON it writes and
//! checks its budgets: no read over 250 ms and none failed from the freeze to 1 s after the
//! thaw.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rwsplit_sea_orm::advanced::{Health, MonitorConfig};
use rwsplit_sea_orm::{Consistency, RoutedConnection, Staleness};
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

/// Reads that failed in one sample, by the reader's consistency level.
#[derive(Serialize, Default, Clone, Copy)]
struct Failed {
    eventual: u64,
    session: u64,
    bounded: u64,
    /// Bounded reads that failed although some node could prove the bound both when they
    /// started and when they failed.
    bounded_while_provable: u64,
    /// The writer's read-backs (its task's default level, session) that failed.
    read_back: u64,
    /// The writer's read-backs that answered without the row just written: a read-your-writes
    /// violation.
    read_back_stale: u64,
}

#[derive(Serialize)]
struct Sample {
    t_ms: u64,
    nodes: Vec<NodeSample>,
    read_p50_ms: Option<f64>,
    read_p99_ms: Option<f64>,
    /// The slowest read the readers finished in the sample, failed ones included (p50 and p99
    /// are of the reads that answered).
    read_max_ms: Option<f64>,
    /// Reads the router hedged in the sample (`Stats::hedges().sent`'s increase).
    hedges: u64,
    /// Hedged reads the second node answered first, in the sample.
    hedges_won: u64,
    /// Read attempts that passed over a stalled replica for the plan's next node, in the sample.
    stalled_skips: u64,
    write_p50_ms: Option<f64>,
    write_p99_ms: Option<f64>,
    reads_failed: u64,
    writes_failed: u64,
    failed: Failed,
    /// Whether some node could prove the bounded readers' bound at the sample's instant.
    bounded_provable: bool,
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
    /// The slowest of the readers' failed reads.
    slowest_failed: Duration,
    writes: Vec<Duration>,
    writes_failed: u64,
    failed: Failed,
}

/// The bounded readers' bound.
const BOUND: Duration = Duration::from_millis(500);

/// A reader's consistency level.
#[derive(Clone, Copy)]
enum Level {
    Eventual,
    Session,
    Bounded,
}

/// Whether some node can serve a read bounded by [`BOUND`] now: the one primary, up (two nodes
/// claiming the role are split brain: the router picks neither), or a replica not down that is
/// provably within the bound.
fn provable(db: &RoutedConnection) -> bool {
    use rwsplit_sea_orm::advanced::Role;
    let now = Instant::now();
    let stats = db.stats();
    let primaries = stats.nodes().iter().filter(|n| n.current_role() == Role::Primary).count();
    stats.nodes().iter().any(|n| match (n.current_role(), n.health()) {
        (Role::Primary, h) => primaries == 1 && h == Health::Up,
        (_, Health::Down) => false,
        _ => n.lag().staleness_at(now).is_some_and(|s| s <= BOUND),
    })
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
                        // The task's default level (session): the write must be read back.
                        let check = stmt(&db, format!("SELECT id FROM t WHERE id = {id}"));
                        let back = db.query_one_raw(check).await;
                        let mut w = window.lock().unwrap();
                        match back {
                            Ok(Some(_)) => {}
                            Ok(None) => w.failed.read_back_stale += 1,
                            Err(e) => {
                                // Why, for the report's reader (its budget from the switchover
                                // on is 0).
                                eprintln!("fault_timeline: the writer's read-back failed: {e}");
                                w.failed.read_back += 1;
                            }
                        }
                    }
                    Err(_) => window.lock().unwrap().writes_failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    for level in [Level::Eventual, Level::Session, Level::Bounded] {
        let (db, stop, window) = (db.clone(), Arc::clone(stop), Arc::clone(window));
        tasks.push(tokio::spawn(async move {
            let session = db.session();
            if matches!(level, Level::Session) {
                // The session's own row: its reads must see it (read-your-writes).
                let own = stmt(&db, "INSERT INTO t (id) VALUES (-1)".into());
                session.execute_raw(own).await.expect("the session's own row");
            }
            let bounded = db.consistent(Consistency::BoundedStaleness(Staleness::time(BOUND)));
            // The connection's default is `Session`: the eventual reader asks for `Eventual`.
            let eventual = db.consistent(Consistency::Eventual);
            while !stop.load(Ordering::Relaxed) {
                let count = stmt(&db, "SELECT count(*) AS n FROM t".into());
                let provable_before = matches!(level, Level::Bounded) && provable(&db);
                let started = Instant::now();
                let r = match level {
                    Level::Eventual => eventual.query_one_raw(count).await,
                    Level::Session => session.query_one_raw(count).await,
                    Level::Bounded => bounded.query_one_raw(count).await,
                };
                let took = started.elapsed();
                let provable_after = matches!(level, Level::Bounded) && r.is_err() && provable(&db);
                {
                    let mut w = window.lock().unwrap();
                    if r.is_err() {
                        w.slowest_failed = w.slowest_failed.max(took);
                    }
                    match (r, level) {
                        (Ok(_), _) => w.reads.push(took),
                        (Err(_), Level::Eventual) => w.failed.eventual += 1,
                        (Err(_), Level::Session) => w.failed.session += 1,
                        (Err(_), Level::Bounded) => {
                            w.failed.bounded += 1;
                            if provable_before && provable_after {
                                w.failed.bounded_while_provable += 1;
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    tasks
}

/// Cumulative counts at the previous sample, for the per-sample deltas.
#[derive(Default)]
struct Last {
    reads: Vec<u64>,
    hedges: rwsplit_sea_orm::Hedges,
}

fn sample(db: &RoutedConnection, t: Duration, last: &mut Last, w: Window) -> Sample {
    let mut w = w;
    let stats = db.stats();
    let hedges = stats.hedges();
    let before = std::mem::replace(&mut last.hedges, hedges);
    let last_reads = &mut last.reads;
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
                role: if n.current_role() == rwsplit_sea_orm::advanced::Role::Primary {
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
        read_max_ms: percentile(&mut w.reads, 1000)
            .into_iter()
            .chain((!w.slowest_failed.is_zero()).then_some(w.slowest_failed.as_secs_f64() * 1e3))
            .reduce(f64::max),
        hedges: hedges.sent.saturating_sub(before.sent),
        hedges_won: hedges.won.saturating_sub(before.won),
        stalled_skips: hedges.stalled_skips.saturating_sub(before.stalled_skips),
        write_p50_ms: percentile(&mut w.writes, 500),
        write_p99_ms: percentile(&mut w.writes, 990),
        reads_failed: w.failed.eventual + w.failed.session + w.failed.bounded + w.failed.read_back,
        writes_failed: w.writes_failed,
        failed: w.failed,
        bounded_provable: provable(db),
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
                .probe_interval(Duration::from_millis(200))
                .probe_timeout(Duration::from_millis(500)),
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
    let mut last = Last::default();
    // (at, what): the fault script, run between samples. `cargo xtask report` finds the phases
    // by their texts: the words "frozen" and "thawed", and the text that starts "switchover".
    let script: [(u64, &'static str); 8] = [
        (4_000, "replica n2 killed (SIGKILL)"),
        (8_000, "replica n2 restarted"),
        // n2 is readmitted about 5 s after it went down (the health policy's first ban).
        (10_500, "replica n1 frozen (SIGSTOP)"),
        (13_500, "replica n1 thawed (SIGCONT)"),
        // n1 went down about 2 s into the freeze: it is readmitted 5 s later.
        (18_500, "replay paused on replica n1 (lag spike)"),
        (22_500, "replay resumed on n1"),
        (26_500, "switchover: primary stopped, n1 promoted, n2 follows"),
        (33_500, "end"),
    ];
    let mut next = 0;
    let mut tick = tokio::time::interval(SAMPLE);
    loop {
        tick.tick().await;
        let t = start.elapsed();
        let w = std::mem::take(&mut *window.lock().unwrap());
        samples.push(sample(&db, t, &mut last, w));
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
            3 => n1.hang()?,
            4 => n1.unhang()?,
            5 => n1.pause_replay().await?,
            6 => n1.resume_replay().await?,
            7 => {
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
