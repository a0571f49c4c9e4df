//! The soak: mixed traffic through a `RoutedConnection` while random replica faults come and go,
//! on a cluster of its own. Run it with `cargo xtask soak --minutes N [--db postgres|mariadb|all]`,
//! which sets `RWSPLIT_SOAK_MINUTES` (per database) and `RWSPLIT_SOAK_DB`.
//!
//! Four workers each insert rows, read each one back right away (it must be there), update some
//! and read the new value back (it must be the new one), count their own rows (never fewer than
//! they were told were written) and run plain reads. Meanwhile one fault at a time hits a random
//! replica: SIGKILL and restart, SIGSTOP and SIGCONT, paused replay, clean stop and restart, an
//! apply delay. At the end every acknowledged write must be on the primary and on every
//! replica, and no read-your-writes read may have been stale. One `SOAK-RESULTS` line per
//! database is printed; any broken invariant fails the run.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rwsplit_sea_orm::RoutedConnection;
use rwsplit_sea_orm::advanced::{HealthPolicy, MonitorConfig};
use rwsplit_testkit::{Cluster, DbKind, Node, TestDatabase};
use sea_orm::{ConnectionTrait, Statement};
use sqlx::Connection;

const WORKERS: i64 = 4;

#[derive(Debug, Default)]
struct Counts {
    writes_acked: AtomicU64,
    writes_failed: AtomicU64,
    reads_ok: AtomicU64,
    reads_failed: AtomicU64,
    ryw_checked: AtomicU64,
    ryw_stale: AtomicU64,
    ryw_failed: AtomicU64,
}

/// A small deterministic generator (xorshift), seeded from the environment or the clock.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn main() -> anyhow::Result<()> {
    let minutes: f64 = std::env::var("RWSPLIT_SOAK_MINUTES")
        .context("RWSPLIT_SOAK_MINUTES is not set: run the soak with `cargo xtask soak`")?
        .parse()
        .context("RWSPLIT_SOAK_MINUTES is a number of minutes")?;
    let kind = match std::env::var("RWSPLIT_SOAK_DB").as_deref() {
        Ok("mariadb") => DbKind::MariaDb,
        Ok("postgres") | Err(_) => DbKind::Postgres,
        Ok(other) => bail!("RWSPLIT_SOAK_DB must be postgres or mariadb, not {other}"),
    };
    let seed =
        std::env::var("RWSPLIT_SOAK_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            t.map_or(0x5EED, |d| {
                u64::try_from(d.as_nanos() % u128::from(u64::MAX)).unwrap_or(0x5EED)
            }) | 1
        });
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(soak(kind, Duration::from_secs_f64(minutes * 60.0), seed))
}

fn stmt(db: &RoutedConnection, sql: String) -> Statement {
    Statement::from_string(db.get_database_backend(), sql)
}

async fn soak(kind: DbKind, duration: Duration, seed: u64) -> anyhow::Result<()> {
    eprintln!("soak: {kind}, {duration:?}, seed {seed}");
    let cluster = Cluster::builder()
        .db(kind)
        .name("soak")
        .replicas(2)
        .start()
        .await
        .context("the cluster")?;
    let tdb = cluster.create_database("soak").await?;
    let db = RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replicas(tdb.replica_urls())
        .monitor(
            MonitorConfig::default()
                .probe_interval(Duration::from_millis(200))
                .probe_timeout(Duration::from_millis(500)),
        )
        .health_policy(HealthPolicy::default().ban_base(Duration::from_secs(1)))
        .replica_read_timeout(Some(Duration::from_millis(500)))
        .connect()
        .await?;
    db.execute_unprepared(
        "CREATE TABLE s (id BIGINT PRIMARY KEY, task INT NOT NULL, v INT NOT NULL)",
    )
    .await?;
    // The readers below never write, so they read from replicas at once: the table must be
    // there first (a replica that has not replayed it yet answers "relation does not exist",
    // which is the application's business, not a fault of the replica).
    cluster.wait_caught_up(0, Duration::from_secs(30)).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let acked = Arc::new(Mutex::new(Vec::<i64>::new()));
    let mut workers = Vec::new();
    for task in 0..WORKERS {
        let (db, stop, counts, acked) = (db.clone(), stop.clone(), counts.clone(), acked.clone());
        workers.push(tokio::spawn(async move { worker(task, db, stop, counts, acked).await }));
    }

    // Readers that never write: the workers' own reads stick to the primary (they just wrote),
    // so these are what the replicas and their faults serve.
    for _ in 0..2 {
        let (db, stop, counts) = (db.clone(), stop.clone(), counts.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match db.query_one_raw(stmt(&db, "SELECT count(*) AS v FROM s".into())).await {
                    Ok(_) => counts.reads_ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("soak: read failed: {e}");
                        counts.reads_failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut faults = Vec::new();
    while started.elapsed() < duration {
        tokio::time::sleep(Duration::from_millis(1000 + rng.below(2000))).await;
        if started.elapsed() >= duration {
            break;
        }
        let node = &cluster.replicas()[usize::try_from(rng.below(2)).unwrap_or(0)];
        let hold = Duration::from_millis(1000 + rng.below(2000));
        let fault = rng.below(5);
        let name = inject(node, fault, hold)
            .await
            .with_context(|| format!("fault {fault} on {}", node.name()))?;
        faults.push(name);
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await?;
    }

    // Every replica catches up; every acknowledged write is everywhere.
    let acked: Vec<i64> = acked.lock().map(|a| a.clone()).unwrap_or_default();
    let mut missing = Vec::new();
    for node in cluster.replicas() {
        node.wait_caught_up_with(cluster.primary(), Duration::from_secs(30)).await?;
    }
    for node in cluster.nodes() {
        let have = ids_on(node, &tdb).await?;
        let gone = acked.iter().filter(|id| !have.contains(id)).count();
        if gone > 0 {
            missing.push(format!("{}: {gone}", node.name()));
        }
    }
    let c = &counts;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    eprintln!(
        "SOAK-RESULTS db={kind} seconds={} faults={} writes_acked={} writes_failed={} \
         acked_missing_on={:?} reads_ok={} reads_failed={} ryw_checked={} ryw_stale={} \
         ryw_failed={} retries={} replica_reads={} seed={seed}",
        started.elapsed().as_secs(),
        faults.len(),
        get(&c.writes_acked),
        get(&c.writes_failed),
        missing,
        get(&c.reads_ok),
        get(&c.reads_failed),
        get(&c.ryw_checked),
        get(&c.ryw_stale),
        get(&c.ryw_failed),
        db.stats().retries(),
        db.stats().replica_reads(),
    );
    eprintln!("soak: faults injected: {}", faults.join(", "));
    if !missing.is_empty() {
        bail!("acknowledged writes missing: {missing:?}");
    }
    if get(&c.ryw_stale) > 0 {
        bail!("{} reads after a write in the same task missed it", get(&c.ryw_stale));
    }
    if get(&c.reads_failed) > 0 {
        bail!("{} reads failed while the primary could serve them", get(&c.reads_failed));
    }
    Ok(())
}

async fn inject(node: &Node, fault: u64, hold: Duration) -> anyhow::Result<String> {
    let name = match fault {
        0 => {
            node.crash()?;
            tokio::time::sleep(hold).await;
            node.restart().await?;
            "sigkill+restart"
        }
        1 => {
            node.hang()?;
            tokio::time::sleep(hold).await;
            node.unhang()?;
            "sigstop+sigcont"
        }
        2 => {
            node.pause_replay().await?;
            tokio::time::sleep(hold).await;
            node.resume_replay().await?;
            "pause-replay"
        }
        3 => {
            node.stop()?;
            tokio::time::sleep(hold).await;
            node.restart().await?;
            "stop+restart"
        }
        _ => {
            node.set_apply_delay(Duration::from_secs(1)).await?;
            tokio::time::sleep(hold).await;
            node.clear_apply_delay().await?;
            "apply-delay"
        }
    };
    Ok(format!("{name}@{}", node.name()))
}

async fn worker(
    task: i64,
    db: RoutedConnection,
    stop: Arc<AtomicBool>,
    c: Arc<Counts>,
    acked: Arc<Mutex<Vec<i64>>>,
) {
    let mut n = 0_i64;
    let mut mine = 0_i64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let id = task * 1_000_000_000 + n;
        let insert = format!("INSERT INTO s (id, task, v) VALUES ({id}, {task}, 0)");
        match db.execute_raw(stmt(&db, insert)).await {
            Ok(_) => {
                c.writes_acked.fetch_add(1, Ordering::Relaxed);
                mine += 1;
                if let Ok(mut a) = acked.lock() {
                    a.push(id);
                }
                // Read it back: plain reads, no scope; the adapter must send them where the
                // write is visible.
                ryw(&db, &c, format!("SELECT v FROM s WHERE id = {id}"), 0).await;
                if n % 3 == 0 {
                    let update = format!("UPDATE s SET v = {n} WHERE id = {id}");
                    if db.execute_raw(stmt(&db, update)).await.is_ok() {
                        ryw(&db, &c, format!("SELECT v FROM s WHERE id = {id}"), n).await;
                    } else {
                        c.writes_failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if n % 5 == 0 {
                    // Never fewer of its own rows than it was told were written.
                    let count = format!("SELECT count(*) AS v FROM s WHERE task = {task}");
                    c.ryw_checked.fetch_add(1, Ordering::Relaxed);
                    match db.query_one_raw(stmt(&db, count)).await {
                        Ok(Some(row)) => {
                            if row.try_get::<i64>("", "v").is_ok_and(|v| v < mine) {
                                c.ryw_stale.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        _ => {
                            c.ryw_failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            Err(_) => {
                c.writes_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Plain reads in the writing task (they stick to the primary while it keeps writing).
        for _ in 0..3 {
            match db.query_one_raw(stmt(&db, "SELECT count(*) AS v FROM s".into())).await {
                Ok(_) => c.reads_ok.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    eprintln!("soak: read failed: {e}");
                    c.reads_failed.fetch_add(1, Ordering::Relaxed)
                }
            };
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn ryw(db: &RoutedConnection, c: &Counts, sql: String, expected: i64) {
    c.ryw_checked.fetch_add(1, Ordering::Relaxed);
    match db.query_one_raw(stmt(db, sql)).await {
        Ok(Some(row)) => {
            let v = row.try_get::<i32>("", "v").map(i64::from);
            if v.ok() != Some(expected) {
                c.ryw_stale.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(None) => {
            c.ryw_stale.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            eprintln!("soak: read-your-writes read failed: {e}");
            c.ryw_failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn ids_on(node: &Node, tdb: &TestDatabase) -> anyhow::Result<HashSet<i64>> {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&node.url_for(tdb.name())).await?;
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM s").fetch_all(&mut conn).await?;
    Ok(ids.into_iter().collect())
}
