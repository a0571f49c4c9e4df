//! Automatic failover with a fleet: several application processes (`rwsplit-failover-writer`,
//! each its own `RoutedConnection` with `AutoFailover` on, given the replicas in its own order)
//! write through rwsplit and record every acknowledged write, a watcher writes to every server
//! every 100 ms as an ordinary client would, and one fault is injected. Each test prints one
//! `FAILOVER-FIGURES` line and asserts what the guide's high-availability chapter states:
//! - no acknowledged write is missing on the final primary (synchronous replication);
//! - at most one promotion per failure, across every process (0 where the failover is
//!   refused, and the line says why);
//! - never two servers acknowledging writes at once (the watcher's longest such run).
//!
//! `cargo xtask failover-matrix --runs N` repeats them and counts. Each runs alone among the
//! tests that time a switchover (`sea_orm_patroni::SERIAL`): its processes load the machine.

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rstest::rstest;
use rwsplit_testkit::{Cluster, DbKind, Node, TestDatabase};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::support::{exec, until};

const PROBE: Duration = Duration::from_millis(200);
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// The watcher's pace, and so the resolution of "two servers accepted writes at once".
const TICK: Duration = Duration::from_millis(100);

/// A cluster whose acknowledged writes are on a replica too (PostgreSQL `ANY 1 (*)`, MariaDB
/// lossless semi-sync with a timeout longer than any test), or one with asynchronous
/// replication.
async fn cluster(kind: DbKind, name: &str, synchronous: bool) -> Cluster {
    let _ = crate::support::shared(kind);
    let b = match synchronous {
        true => crate::faults::durable(kind, name),
        false => Cluster::builder().db(kind).name(name).replicas(2),
    };
    let cluster = b.start().await.unwrap_or_else(|e| panic!("a {kind} cluster: {e}"));
    if synchronous {
        crate::faults::semi_sync_held(&cluster, Duration::from_secs(600)).await;
    }
    cluster
}

/// The failover's settings for the writers.
#[derive(Debug, Clone, Copy)]
struct Settings {
    grace: Duration,
    deadline: Duration,
    retry: Duration,
}

const QUICK: Settings = Settings {
    grace: Duration::from_millis(1_000),
    deadline: Duration::from_secs(5),
    retry: Duration::from_millis(1_000),
};

/// The writer processes and what they acknowledged.
struct Fleet {
    children: Vec<Child>,
    readers: Vec<JoinHandle<u64>>,
    acked: Arc<Mutex<Vec<(i64, Instant)>>>,
}

impl Fleet {
    /// One writer process per order (each a permutation of the replicas' indices).
    async fn start(
        cluster: &Cluster,
        tdb: &TestDatabase,
        orders: &[[usize; 2]],
        settings: Settings,
    ) -> Fleet {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let mut children = Vec::new();
        let mut readers = Vec::new();
        let urls = tdb.replica_urls();
        for (writer, order) in orders.iter().enumerate() {
            let replicas: Vec<String> = order.iter().map(|&i| urls[i].clone()).collect();
            let addresses: Vec<String> = std::iter::once(cluster.primary())
                .chain(order.iter().map(|&i| &cluster.replicas()[i]))
                .map(Node::replication_address)
                .collect();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_rwsplit-failover-writer"));
            let var = |k: &str| format!("RWSPLIT_ITEST_FW_{k}");
            cmd.env(var("PRIMARY"), tdb.primary_url())
                .env(var("REPLICAS"), replicas.join(","))
                .env(var("ADDRESSES"), addresses.join(","))
                .env(var("WRITER"), (writer + 1).to_string())
                .env(var("TABLE"), "acks")
                .env(var("GRACE_MS"), settings.grace.as_millis().to_string())
                .env(var("DEADLINE_MS"), settings.deadline.as_millis().to_string())
                .env(var("RETRY_MS"), settings.retry.as_millis().to_string())
                .env(var("AFTER_FAILURES"), "2")
                .env(var("PROBE_MS"), PROBE.as_millis().to_string())
                .env(var("PROBE_TIMEOUT_MS"), PROBE_TIMEOUT.as_millis().to_string())
                // The failover's decisions, on the test's output.
                .env("RUST_LOG", "rwsplit=warn")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true);
            if cluster.db() == DbKind::MariaDb {
                // The application user may not promote; the testkit's root may.
                cmd.env(var("ADMIN"), "root:");
            }
            let mut child = cmd.spawn().expect("a writer process");
            let stdout = child.stdout.take().unwrap();
            let (ready, readied) = tokio::sync::oneshot::channel();
            let acked = Arc::clone(&acked);
            readers.push(tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                let mut ready = Some(ready);
                let mut promotions = 0;
                while let Ok(Some(line)) = lines.next_line().await {
                    if line == "READY" {
                        ready.take().map(|r| r.send(()));
                    } else if let Some(id) = line.strip_prefix("ACK ") {
                        acked.lock().unwrap().push((id.parse().unwrap(), Instant::now()));
                    } else if let Some(n) = line.strip_prefix("PROMOTIONS ") {
                        promotions = n.parse().unwrap();
                    } else if line == "END" {
                        break;
                    }
                }
                promotions
            }));
            tokio::time::timeout(Duration::from_secs(30), readied)
                .await
                .expect("the writer connects within 30 s")
                .expect("the writer says READY");
            children.push(child);
        }
        let fleet = Fleet { children, readers, acked };
        until("every writer acknowledged writes", || async {
            fleet.acked.lock().unwrap().len() > 20 * orders.len()
        })
        .await;
        fleet
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Waits until `n` more writes are acknowledged (after a fault: by the primary then).
    async fn acks_more(&self, n: usize) {
        let now = self.acked();
        until("writes acknowledged after the fault", || async { self.acked() > now + n }).await;
    }

    /// Stops every writer; returns the acknowledged ids and the promotions of all processes.
    async fn finish(mut self) -> (Vec<i64>, u64) {
        for c in &mut self.children {
            drop(c.stdin.take());
        }
        let mut promotions = 0;
        for r in self.readers {
            promotions += tokio::time::timeout(Duration::from_secs(30), r)
                .await
                .expect("the writer ends within 30 s of its stdin closing")
                .unwrap();
        }
        for mut c in self.children {
            if tokio::time::timeout(Duration::from_secs(10), c.wait()).await.is_err() {
                let _ = c.kill().await;
            }
        }
        let ids = self.acked.lock().unwrap().iter().map(|a| a.0).collect();
        (ids, promotions)
    }
}

/// A watcher on every server: every [`TICK`] it writes one row to each, on a fresh connection
/// as an ordinary client (the application's user, default commit settings), and notes which
/// acknowledged it within a second.
struct Watcher {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: JoinHandle<Vec<Vec<bool>>>,
}

impl Watcher {
    fn start(cluster: &Cluster, tdb: &TestDatabase) -> Watcher {
        let urls: Vec<String> = cluster.nodes().iter().map(|n| n.url_for(tdb.name())).collect();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut ticks = Vec::new();
            let mut n: i64 = 0;
            while !stopping.load(std::sync::atomic::Ordering::Acquire) {
                let next = tokio::time::Instant::now() + TICK;
                n += 1;
                let writes = urls.iter().enumerate().map(|(server, url)| {
                    let url = url.clone();
                    let sql = format!("INSERT INTO watch (server, tick) VALUES ({server}, {n})");
                    tokio::spawn(async move {
                        tokio::time::timeout(Duration::from_secs(1), async {
                            sqlx::any::install_default_drivers();
                            let mut c = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
                                .await
                                .ok()?;
                            exec(&mut c, &sql).await.ok()
                        })
                        .await
                        .ok()
                        .flatten()
                        .is_some()
                    })
                });
                let mut acked = Vec::new();
                for w in writes.collect::<Vec<_>>() {
                    acked.push(w.await.unwrap_or(false));
                }
                ticks.push(acked);
                tokio::time::sleep_until(next).await;
            }
            ticks
        });
        Watcher { stop, task }
    }

    /// The longest run of ticks in which two or more servers acknowledged the watcher's write.
    async fn finish(self) -> Duration {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        let ticks = self.task.await.unwrap();
        let (mut run, mut longest) = (0u32, 0u32);
        for t in &ticks {
            run = if t.iter().filter(|a| **a).count() >= 2 { run + 1 } else { 0 };
            longest = longest.max(run);
        }
        TICK * longest
    }
}

/// Stops `replica` receiving from the primary, as a network cut would (clients still reach the
/// primary), keeping its replication settings as they were: PostgreSQL's `primary_conninfo`
/// points at a port nobody listens on; MariaDB's IO thread stops.
async fn cut_off(replica: &Node) {
    match replica.db() {
        DbKind::Postgres => {
            let mut c = crate::support::connect(&replica.url_for("postgres")).await;
            let conninfo: String = sqlx::query_scalar("SELECT current_setting('primary_conninfo')")
                .fetch_one(&mut c)
                .await
                .unwrap();
            let cut: Vec<String> = conninfo
                .split_whitespace()
                .map(|kv| if kv.starts_with("port=") { "port=1".to_owned() } else { kv.to_owned() })
                .collect();
            let set = format!(
                "ALTER SYSTEM SET primary_conninfo = '{}'",
                cut.join(" ").replace('\'', "''")
            );
            replica.execute("postgres", &set).await.unwrap();
            replica.execute("postgres", "SELECT pg_reload_conf()").await.unwrap();
        }
        _ => replica.execute("mysql", "STOP SLAVE IO_THREAD").await.unwrap(),
    }
}

async fn tables(cluster: &Cluster, tdb: &TestDatabase) {
    let mut c = crate::support::connect(&tdb.primary_url()).await;
    exec(&mut c, "CREATE TABLE acks (id BIGINT PRIMARY KEY, writer INT)").await.unwrap();
    exec(&mut c, "CREATE TABLE watch (server INT, tick BIGINT)").await.unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();
}

async fn ids_on(node: &Node, tdb: &TestDatabase) -> HashSet<i64> {
    let mut c = crate::support::connect(&node.url_for(tdb.name())).await;
    let rows: Vec<i64> = sqlx::query_scalar("SELECT id FROM acks").fetch_all(&mut c).await.unwrap();
    rows.into_iter().collect()
}

/// The replicas (by index) that are primaries now.
async fn promoted(cluster: &Cluster) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, r) in cluster.replicas().iter().enumerate() {
        if r.is_running() && matches!(r.is_replica().await, Ok(false)) {
            out.push(i);
        }
    }
    out
}

/// What a run found.
struct Figures {
    acked: usize,
    lost: usize,
    promotions: u64,
    dual: Duration,
    promoted: Vec<usize>,
}

/// Stops the fleet and the watcher, and counts what the final primary (the promoted replica,
/// else `fallback`) lacks of what was acknowledged.
async fn settle(
    fault: &str,
    kind: DbKind,
    cluster: &Cluster,
    tdb: &TestDatabase,
    fleet: Fleet,
    watcher: Watcher,
    fallback: &Node,
) -> Figures {
    let (acked, promotions) = fleet.finish().await;
    let dual = watcher.finish().await;
    let promoted = promoted(cluster).await;
    let last = match promoted.as_slice() {
        [one] => &cluster.replicas()[*one],
        _ => fallback,
    };
    let on = ids_on(last, tdb).await;
    let lost = acked.iter().filter(|id| !on.contains(id)).count();
    let f = Figures { acked: acked.len(), lost, promotions, dual, promoted };
    eprintln!(
        "FAILOVER-FIGURES db={kind} fault={fault} acked={} lost={} promotions={} \
         promoted_replicas={:?} two_accepting_ms={}",
        f.acked,
        f.lost,
        f.promotions,
        f.promoted,
        f.dual.as_millis()
    );
    f
}

/// The primary crashes (SIGKILL) with two or three writer processes, each given the replicas
/// in another order: one promotion in all, nothing acknowledged lost, never two primaries.
#[rstest]
#[case::postgres_two(DbKind::Postgres, &[[0, 1], [1, 0]])]
#[case::postgres_three(DbKind::Postgres, &[[1, 0], [0, 1], [1, 0]])]
#[case::mariadb_two(DbKind::MariaDb, &[[0, 1], [1, 0]])]
#[case::mariadb_three(DbKind::MariaDb, &[[1, 0], [0, 1], [1, 0]])]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_crash_with_a_fleet(#[case] kind: DbKind, #[case] orders: &[[usize; 2]]) {
    let _serial = crate::sea_orm_patroni::SERIAL.lock().await;
    let cluster = cluster(kind, "fo_crash", true).await;
    let tdb = cluster.create_database("fo_crash").await.unwrap();
    tables(&cluster, &tdb).await;
    let watcher = Watcher::start(&cluster, &tdb);
    let fleet = Fleet::start(&cluster, &tdb, orders, QUICK).await;
    // Writes in flight at every moment, for two seconds, then the crash among them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.primary().crash().unwrap();
    until("a replica promoted", || async { !promoted(&cluster).await.is_empty() }).await;
    fleet.acks_more(50).await;
    let fault = format!("crash-{}-processes", orders.len());
    let f = settle(&fault, kind, &cluster, &tdb, fleet, watcher, cluster.primary()).await;
    assert_eq!(f.lost, 0, "acknowledged writes lost");
    assert_eq!(f.promotions, 1, "one promotion across the fleet");
    assert_eq!(f.promoted.len(), 1, "one replica promoted");
    assert_eq!(f.dual, Duration::ZERO, "two servers acknowledged writes at once");
}

/// The primary crashes and is back within the grace: no failover, nothing lost.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_not_for_a_primary_back_within_the_grace(#[case] kind: DbKind) {
    let _serial = crate::sea_orm_patroni::SERIAL.lock().await;
    let cluster = cluster(kind, "fo_restart", true).await;
    let tdb = cluster.create_database("fo_restart").await.unwrap();
    tables(&cluster, &tdb).await;
    let watcher = Watcher::start(&cluster, &tdb);
    let settings = Settings { grace: Duration::from_secs(10), ..QUICK };
    let fleet = Fleet::start(&cluster, &tdb, &[[0, 1], [1, 0]], settings).await;
    cluster.primary().crash().unwrap();
    let crashed = Instant::now();
    cluster.primary().restart().await.unwrap();
    let back = crashed.elapsed();
    fleet.acks_more(50).await;
    // Past the grace and the rest of an attempt.
    tokio::time::sleep(Duration::from_secs(12).saturating_sub(crashed.elapsed())).await;
    let f = settle("crash-restart", kind, &cluster, &tdb, fleet, watcher, cluster.primary()).await;
    eprintln!("crash-restart: the primary was back after {back:?}");
    assert_eq!((f.lost, f.promotions), (0, 0));
    assert!(f.promoted.is_empty());
    assert_eq!(f.dual, Duration::ZERO);
}

/// A replica is unreachable (frozen) when the primary crashes: it may be the most advanced, so
/// nothing is promoted while it is out; once it answers, the failover goes on and loses
/// nothing.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_waits_for_an_unreachable_replica(#[case] kind: DbKind) {
    let _serial = crate::sea_orm_patroni::SERIAL.lock().await;
    let cluster = cluster(kind, "fo_unreach", true).await;
    let tdb = cluster.create_database("fo_unreach").await.unwrap();
    tables(&cluster, &tdb).await;
    let watcher = Watcher::start(&cluster, &tdb);
    let fleet = Fleet::start(&cluster, &tdb, &[[0, 1], [1, 0]], QUICK).await;
    cluster.replicas()[1].hang().unwrap();
    cluster.primary().crash().unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let held = promoted(&cluster).await;
    cluster.replicas()[1].unhang().unwrap();
    assert!(held.is_empty(), "promoted {held:?} with a replica unreachable");
    until("a replica promoted once the other answers", || async {
        !promoted(&cluster).await.is_empty()
    })
    .await;
    fleet.acks_more(50).await;
    let f = settle("unreachable-replica", kind, &cluster, &tdb, fleet, watcher, cluster.primary())
        .await;
    assert_eq!((f.lost, f.promotions, f.promoted.len()), (0, 1, 1));
    assert_eq!(f.dual, Duration::ZERO);
}

/// The most advanced replica applies 8 s late (the other is cut off from the primary before
/// the crash, so only the late one has the last writes): the failover is abandoned before the
/// promotion while it has not applied what it received (the deadline is 5 s), and promotes it
/// once it has: nothing lost.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_waits_for_a_candidate_behind_in_applying(#[case] kind: DbKind) {
    let _serial = crate::sea_orm_patroni::SERIAL.lock().await;
    let cluster = cluster(kind, "fo_apply", true).await;
    let tdb = cluster.create_database("fo_apply").await.unwrap();
    tables(&cluster, &tdb).await;
    cluster.replicas()[0].set_apply_delay(Duration::from_secs(8)).await.unwrap();
    let watcher = Watcher::start(&cluster, &tdb);
    let fleet = Fleet::start(&cluster, &tdb, &[[0, 1], [1, 0]], QUICK).await;
    cut_off(&cluster.replicas()[1]).await;
    // Writes only the late replica has received, and has not applied.
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.primary().crash().unwrap();
    let crashed = Instant::now();
    until("a replica promoted", || async { !promoted(&cluster).await.is_empty() }).await;
    let took = crashed.elapsed();
    fleet.acks_more(50).await;
    let f = settle("apply-delay", kind, &cluster, &tdb, fleet, watcher, cluster.primary()).await;
    eprintln!("apply-delay: promoted {took:?} after the crash");
    assert_eq!((f.lost, f.promotions), (0, 1));
    assert_eq!(f.promoted, [0], "the most advanced replica, once it applied what it received");
    assert!(took >= Duration::from_secs(5), "promoted {took:?} after the crash, before it applied");
    assert_eq!(f.dual, Duration::ZERO);
}

/// The primary freezes (SIGSTOP), is replaced, and thaws: the replicas' receivers time out,
/// one is promoted, and the thawed primary takes no acknowledged write from anyone
/// (PostgreSQL: no standby follows it, so its synchronous commits never return; MariaDB: the
/// promoting process makes it read-only when it answers).
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_freeze_and_thaw(#[case] kind: DbKind) {
    let _serial = crate::sea_orm_patroni::SERIAL.lock().await;
    let cluster = cluster(kind, "fo_freeze", true).await;
    let tdb = cluster.create_database("fo_freeze").await.unwrap();
    tables(&cluster, &tdb).await;
    let watcher = Watcher::start(&cluster, &tdb);
    let fleet = Fleet::start(&cluster, &tdb, &[[0, 1], [1, 0]], QUICK).await;
    cluster.primary().hang().unwrap();
    until("a replica promoted", || async { !promoted(&cluster).await.is_empty() }).await;
    cluster.primary().unhang().unwrap();
    fleet.acks_more(50).await;
    // The thawed primary answers for a while.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let old_ids = ids_on(cluster.primary(), &tdb).await;
    let f = settle("freeze-thaw", kind, &cluster, &tdb, fleet, watcher, cluster.primary()).await;
    assert_eq!((f.lost, f.promotions, f.promoted.len()), (0, 1, 1));
    assert_eq!(f.dual, Duration::ZERO);
    let new_ids = ids_on(&cluster.replicas()[f.promoted[0]], &tdb).await;
    let only_old: Vec<i64> = old_ids.difference(&new_ids).copied().collect();
    eprintln!("freeze-thaw: rows on the old primary only (never acknowledged): {}", only_old.len());
    if kind == DbKind::MariaDb {
        // The process that promoted makes it read-only; `SET GLOBAL read_only` waits for the
        // commits it holds, which wait for a semi-sync acknowledgement that never comes. So
        // either it is read-only, or it holds commits and acknowledges none.
        let root = cluster.primary().url_for("mysql").replace("//app@", "//root@");
        let mut c = crate::support::connect(&root).await;
        let ro: i64 =
            sqlx::query_scalar("SELECT @@global.read_only").fetch_one(&mut c).await.unwrap();
        let held = crate::support::global_status(&mut c, "RPL_SEMI_SYNC_MASTER_WAIT_SESSIONS");
        let held = held.await.unwrap_or(0);
        eprintln!("freeze-thaw: the deposed primary: read_only={ro}, commits held={held}");
        assert!(ro == 1 || held > 0, "the deposed primary is read-only or holds its commits");
    }
    // PostgreSQL's deposed primary still waits for a synchronous standby that never comes:
    // stopped here so the teardown does not wait on it.
    cluster.primary().crash().unwrap();
}

/// Asynchronous replication, the replicas cut off from the primary while the writers go on,
/// then the primary dies. A candidate that lacks more than the bound (1 MiB of WAL, 1,000
/// transactions; here 8,000 and 1,500 writes) is not promoted: writes stop rather than lose
/// more. One that lacks less (300 writes) is promoted, and what is lost is within the bound:
/// at most the writes acknowledged after the cut.
#[rstest]
#[case::postgres_past_the_bound(DbKind::Postgres, 8_000, 0)]
#[case::mariadb_past_the_bound(DbKind::MariaDb, 1_500, 0)]
#[case::postgres_within_the_bound(DbKind::Postgres, 300, 1)]
#[case::mariadb_within_the_bound(DbKind::MariaDb, 300, 1)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_under_async_replication_is_bounded(
    #[case] kind: DbKind,
    #[case] after_cut: usize,
    #[case] promotions: u64,
) {
    let _serial = crate::sea_orm_patroni::SERIAL.lock().await;
    let cluster = cluster(kind, "fo_async", false).await;
    let tdb = cluster.create_database("fo_async").await.unwrap();
    tables(&cluster, &tdb).await;
    let watcher = Watcher::start(&cluster, &tdb);
    let fleet = Fleet::start(&cluster, &tdb, &[[0, 1], [1, 0]], QUICK).await;
    // Counted from before the cut: a write in flight while it happens is after it.
    let at_cut = fleet.acked();
    for r in cluster.replicas() {
        cut_off(r).await;
    }
    let written = crate::support::eventually(Duration::from_secs(90), || async {
        fleet.acked() > at_cut + after_cut
    });
    assert!(written.await.is_some(), "{after_cut} writes acknowledged after the cut");
    cluster.primary().crash().unwrap();
    // The acknowledgements on their way from the writers when it died.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let at_crash = fleet.acked();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let held = promoted(&cluster).await;
    if held.is_empty() {
        // Back, so that what it acknowledged can be counted: all of it is there.
        cluster.primary().restart().await.unwrap();
    }
    let fault = if promotions == 0 { "async-past-the-bound" } else { "async-within-the-bound" };
    let f = settle(fault, kind, &cluster, &tdb, fleet, watcher, cluster.primary()).await;
    eprintln!(
        "{fault}: {} writes acknowledged between the cut and the crash, {} lost",
        at_crash - at_cut,
        f.lost
    );
    assert_eq!(f.promotions, promotions);
    assert_eq!(held.len(), usize::try_from(promotions).unwrap(), "promoted {held:?}");
    assert!(f.lost <= at_crash - at_cut, "lost more than was written after the cut");
    if kind == DbKind::MariaDb {
        assert!(f.lost <= 1_000, "lost more than max_lag_transactions");
    }
    assert_eq!(f.dual, Duration::ZERO);
}

/// PostgreSQL: the most advanced replica's replay is blocked by a recovery conflict (a query
/// there holds a lock the primary's `DROP TABLE` needs, with `max_standby_streaming_delay =
/// -1`), so a promotion would not finish. The failover is abandoned before the promotion is
/// sent, nothing is fenced or undone; once the query ends and replay catches up, it promotes
/// that replica and loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_waits_while_replay_is_blocked_on_postgres() {
    let kind = DbKind::Postgres;
    let _serial = crate::sea_orm_patroni::SERIAL.lock().await;
    let cluster = cluster(kind, "fo_conflict", true).await;
    let tdb = cluster.create_database("fo_conflict").await.unwrap();
    tables(&cluster, &tdb).await;
    let late = &cluster.replicas()[0];
    late.execute("postgres", "ALTER SYSTEM SET max_standby_streaming_delay = -1").await.unwrap();
    late.execute("postgres", "SELECT pg_reload_conf()").await.unwrap();
    let mut c = crate::support::connect(&tdb.primary_url()).await;
    exec(&mut c, "CREATE TABLE blocker (id INT)").await.unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();
    // A reader on the replica holds the table; the primary drops it: replay waits for the
    // reader, and with it everything after.
    let mut reader = crate::support::connect(&late.url_for(tdb.name())).await;
    exec(&mut reader, "BEGIN ISOLATION LEVEL REPEATABLE READ").await.unwrap();
    exec(&mut reader, "SELECT count(*) FROM blocker").await.unwrap();
    let watcher = Watcher::start(&cluster, &tdb);
    let fleet = Fleet::start(&cluster, &tdb, &[[0, 1], [1, 0]], QUICK).await;
    cut_off(&cluster.replicas()[1]).await;
    exec(&mut c, "DROP TABLE blocker").await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.primary().crash().unwrap();
    // Past several attempts' deadlines (5 s each): nothing promoted.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let held = promoted(&cluster).await;
    exec(&mut reader, "COMMIT").await.unwrap();
    assert!(held.is_empty(), "promoted {held:?} while replay was blocked");
    until("a replica promoted once replay caught up", || async {
        !promoted(&cluster).await.is_empty()
    })
    .await;
    fleet.acks_more(50).await;
    let f = settle("replay-blocked", kind, &cluster, &tdb, fleet, watcher, cluster.primary()).await;
    assert_eq!((f.lost, f.promotions), (0, 1));
    assert_eq!(f.promoted, [0]);
    assert_eq!(f.dual, Duration::ZERO);
}
