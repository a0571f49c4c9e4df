//! The load the fault tests run through each fault: one writer (each acknowledged write read
//! back in the same task, so read-your-writes is checked on every write) and readers at the
//! consistency levels a test asks for, counting what the application sees.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rwsplit_sea_orm::{Consistency, RoutedConnection};
use rwsplit_testkit::Cluster;
use sea_orm::{ConnectionTrait, Statement};

use crate::support::until;

/// What the application saw.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub(crate) reads_ok: u64,
    pub(crate) reads_failed: u64,
    pub(crate) read_errors: Vec<String>,
    pub(crate) read_latencies: Vec<Duration>,
    /// Bounded-staleness reads: when each started and the highest id it saw.
    pub(crate) bounded: Vec<(Instant, i64)>,
    /// Acknowledged writes: id and when the acknowledgement arrived.
    pub(crate) acked: Vec<(i64, Instant)>,
    pub(crate) writes_failed: u64,
    /// How long each write that failed with the adapter's own error took to fail.
    pub(crate) write_failures: Vec<Duration>,
    pub(crate) unclear_write_errors: Vec<String>,
    /// Writes still unanswered after the load's write timeout (outcome unknown).
    pub(crate) writes_timed_out: u64,
    pub(crate) ryw_checked: u64,
    pub(crate) ryw_stale: u64,
    pub(crate) ryw_failed: u64,
}

impl Seen {
    /// Bounded-staleness reads that missed a write acknowledged more than `allowance` before
    /// they started.
    pub(crate) fn bounded_stale(&self, allowance: Duration) -> usize {
        self.bounded
            .iter()
            .filter(|(start, max_seen)| {
                self.acked.iter().any(|(id, at)| *at + allowance < *start && id > max_seen)
            })
            .count()
    }

    /// The `p` quantile (0 ≤ p ≤ 1) of the successful reads' latencies.
    pub(crate) fn read_percentile(&self, p: f64) -> Duration {
        let mut v = self.read_latencies.clone();
        v.sort_unstable();
        if v.is_empty() {
            return Duration::ZERO;
        }
        let i = ((v.len() as f64 - 1.0) * p).round();
        // In range by construction: 0 ≤ i ≤ len - 1.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        v[i as usize]
    }
}

/// How a [`Load`] runs.
#[derive(Debug, Clone)]
pub(crate) struct LoadConfig {
    /// The table it creates and writes (`id BIGINT PRIMARY KEY, v VARCHAR(16)`).
    pub(crate) table: &'static str,
    /// One reader per entry, reading at that consistency.
    pub(crate) readers: Vec<Consistency>,
    /// The application's own bound on each write and its read-back (the adapter never cuts a
    /// write short); `None`: wait as long as it takes.
    pub(crate) write_timeout: Option<Duration>,
    /// After the first 500 ms, also wait for more than 50 acknowledged writes and 100 reads, so
    /// the figures stand for real traffic however busy the machine is.
    pub(crate) wait_for_progress: bool,
}

/// The writer and readers, running until [`Load::finish`].
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    pub(crate) seen: Arc<Mutex<Seen>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// `sql` for `db`'s backend.
pub(crate) fn stmt(db: &RoutedConnection, sql: String) -> Statement {
    Statement::from_string(db.get_database_backend(), sql)
}

/// A write error is clear when the adapter says what happened and where (a node failure, the
/// primary marked down, two primaries): one of its own typed errors, rather than a bare driver
/// error.
pub(crate) fn clear(err: &sea_orm::DbErr) -> bool {
    rwsplit_sea_orm::routing_error(err).is_some()
}

/// `fut` under `limit`, if any; `None` when it ran out.
async fn bounded<T>(limit: Option<Duration>, fut: impl Future<Output = T>) -> Option<T> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, fut).await.ok(),
        None => Some(fut.await),
    }
}

impl Load {
    /// Creates the table, waits until the replicas have it, starts the writer and readers and
    /// lets them run (see [`LoadConfig::wait_for_progress`]).
    pub(crate) async fn start(
        db: &RoutedConnection,
        cluster: &Cluster,
        config: LoadConfig,
    ) -> Load {
        Load::start_with(db, config, async {
            cluster
                .wait_caught_up(0, Duration::from_secs(10))
                .await
                .expect("replicas have the table");
        })
        .await
    }

    /// [`Load::start`] on any cluster: `caught_up` waits until the replicas have the table.
    pub(crate) async fn start_with(
        db: &RoutedConnection,
        config: LoadConfig,
        caught_up: impl Future<Output = ()>,
    ) -> Load {
        let LoadConfig { table, readers, write_timeout, wait_for_progress } = config;
        db.execute_unprepared(&format!(
            "CREATE TABLE {table} (id BIGINT PRIMARY KEY, v VARCHAR(16))"
        ))
        .await
        .expect("the load's table");
        // The readers are other tasks: they may read from a replica at once.
        caught_up.await;
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut tasks = Vec::new();
        {
            let (db, stop, seen) = (db.clone(), stop.clone(), seen.clone());
            tasks.push(tokio::spawn(async move {
                let mut id = 0_i64;
                while !stop.load(Ordering::Relaxed) {
                    id += 1;
                    let sql = format!("INSERT INTO {table} (id, v) VALUES ({id}, 'x')");
                    let started = Instant::now();
                    match bounded(write_timeout, db.execute_raw(stmt(&db, sql))).await {
                        Some(Ok(_)) => {
                            seen.lock().unwrap().acked.push((id, Instant::now()));
                            // Read it back in the same task: it must be there.
                            let check = format!("SELECT id FROM {table} WHERE id = {id}");
                            let r =
                                bounded(write_timeout, db.query_one_raw(stmt(&db, check))).await;
                            let mut s = seen.lock().unwrap();
                            s.ryw_checked += 1;
                            match r {
                                Some(Ok(Some(_))) => {}
                                Some(Ok(None)) => s.ryw_stale += 1,
                                _ => s.ryw_failed += 1,
                            }
                        }
                        Some(Err(e)) => {
                            let mut s = seen.lock().unwrap();
                            s.writes_failed += 1;
                            if clear(&e) {
                                s.write_failures.push(started.elapsed());
                            } else if s.unclear_write_errors.len() < 5 {
                                s.unclear_write_errors.push(e.to_string());
                            }
                        }
                        None => seen.lock().unwrap().writes_timed_out += 1,
                    }
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            }));
        }
        for consistency in readers {
            let bounded = matches!(consistency, Consistency::BoundedStaleness(_));
            let (db, stop, seen) = (db.clone(), stop.clone(), seen.clone());
            tasks.push(tokio::spawn(async move {
                let view = db.consistent(consistency);
                let int = match db.get_database_backend() {
                    sea_orm::DbBackend::MySql => "SIGNED",
                    _ => "BIGINT",
                };
                let sql = format!("SELECT CAST(COALESCE(MAX(id), 0) AS {int}) AS m FROM {table}");
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let r = tokio::time::timeout(
                        Duration::from_secs(10),
                        view.query_one_raw(stmt(&db, sql.clone())),
                    )
                    .await;
                    {
                        let mut s = seen.lock().unwrap();
                        match r {
                            Ok(Ok(row)) => {
                                s.reads_ok += 1;
                                s.read_latencies.push(started.elapsed());
                                let max: i64 =
                                    row.and_then(|r| r.try_get("", "m").ok()).unwrap_or(0);
                                if bounded {
                                    s.bounded.push((started, max));
                                }
                            }
                            Ok(Err(e)) => {
                                s.reads_failed += 1;
                                if s.read_errors.len() < 5 {
                                    s.read_errors.push(e.to_string());
                                }
                            }
                            Err(_) => {
                                s.reads_failed += 1;
                                s.read_errors.push("no answer in 10 s".into());
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        if wait_for_progress {
            until("the load to get going", || async {
                let s = seen.lock().unwrap();
                s.acked.len() > 50 && s.reads_ok > 100
            })
            .await;
        }
        Load { stop, seen, tasks }
    }

    /// Stops the tasks and returns what they saw.
    pub(crate) async fn finish(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("a load task ends cleanly");
        }
        Arc::try_unwrap(self.seen).expect("no other owner").into_inner().unwrap()
    }

    /// When the latest write was acknowledged.
    pub(crate) fn last_ack(&self) -> Option<Instant> {
        self.seen.lock().unwrap().acked.last().map(|a| a.1)
    }
}
