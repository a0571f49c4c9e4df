//! Fleet scale: what rwsplit's monitor costs each database server as application instances
//! grow.
//!
//! `cargo xtask bench fleet` runs it. It starts a PostgreSQL primary with two streaming replicas
//! (the testkit's containers by default, so each node's CPU is its own cgroup;
//! `RWSPLIT_TESTKIT_BACKEND=native` runs it on native processes, without server CPU), then, for each K
//! (`--ks 1,10,50,200` by default), K application instances two ways: K separate processes with
//! one `RoutedConnection` each, and one process with K `RoutedConnection`s (a multi-tenant app).
//! Each shape runs twice: idle (connections open, no statements), then under a
//! read-your-writes workload (each connection writes a row every 250 ms, `--ryw-every-ms` to
//! change it, and reads it back at once and 100 ms later; the row says what share of that pace
//! the machine carried: below 100 % it is saturated, and what it measures is the overload).
//! Over a
//! window (`--window-secs`, default 5) it reports, per node: the monitor's statements per second
//! (counted by the server: `pg_stat_statements`, statements naming `pg_is_in_recovery()`, which
//! every probe and position read does and the workload never does), all statements per
//! second, the server's CPU (% of one core), the monitor's connections (`application_name =
//! rwsplit-monitor`); per instance: client CPU; and in all: false Suspect/Down events (changes
//! of a node's role or health: the cluster stays healthy throughout),
//! failed probes, busy probes (timed out while the node answered the application, or refused
//! for lack of room: what the monitor excuses, and would have failed without the excuse),
//! stale reads, and the share of read-your-writes reads replicas served. False
//! changes, failed and busy probes are counted from each instance's start (its connections' first
//! probes included, while the rest of the fleet is still connecting) to the window's end and,
//! apart, in the window only (the steady state); the window ends for every instance at once.
//! On containers the instances run in a CPU cgroup of their own (see `ClientGroup`; root, or
//! a v2 root delegating `cpu`, is needed), so that together they weigh what the servers
//! together do; `--clients-in-root-cgroup` leaves them in the root group.
//! `--json PATH` writes the rows for `cargo xtask report`. `--plain` adds, for K processes, the
//! same read-your-writes workload on plain SeaORM connections to the primary (workload
//! `plain`): what the machine carries without rwsplit. `--acquire-timeout-secs N` sets the
//! instances' pool acquire timeout (rwsplit's default: 30 s on the primary, as sqlx's and so plain
//! SeaORM's; 5 s on a replica's read-only pool).
//! `--workloads idle,ryw` and `--shapes processes,one` choose what runs (default: all).
//! `--position-interval-ms N` sets the instances' position feed interval (0 turns it off: the
//! positions then come from the probes alone).
//! Beside the fleet an observer (`fleet observe`, at nice −10) asks each node `SELECT 1` every
//! 20 ms on a connection of its own; each failed probe is held against what it saw (did the
//! server answer nobody for most of the probe's wait, or only not the probe?) and against the
//! instance's own stalls (a task waking every 20 ms), and listed on stderr.
//! On containers the instances reach each node at its address on the cluster's client network
//! (`Node::direct_url`), as an application reaches its servers; `--docker-proxy` sends them
//! through the ports Docker publishes on 127.0.0.1 instead, whose userland proxy (one process
//! per port, copying every connection's bytes) is the bottleneck at 200 instances.
//! `RWSPLIT_BENCH_FLEET_LOG=1` has each instance log rwsplit's warnings on its stderr (a failed
//! probe says why it failed).
//! `--pgbouncer` puts a real PgBouncer in transaction pooling (the testkit's, on this machine)
//! in front of each replica, as a fleet of this size would run: the instances reach each
//! replica through it, declared `Pooling::Transaction`, monitor included, so a replica's
//! server holds PgBouncer's few connections instead of two per instance. The primary stays
//! direct (sqlx's writes need a session: see `Pooling`), and so does the observer, which watches
//! the servers themselves. A replica's monitor connections are then counted on the server as
//! those PgBouncer last lent to a monitor.
//!
//! An instance is this executable run as `fleet instance <connections> <idle|ryw> <id>
//! <primary-url> <replica-url>...`: it connects, prints `ready`, takes its counts at the
//! driver's first line on its standard input (the window begins), works until the second (it
//! ends) or the input closes, then prints one JSON line of what it counted, and keeps its
//! connections open until the input closes: the driver closes every instance's input once it has
//! read all their counts, so the fleet's teardown (every instance closing its connections at
//! once) falls outside every instance's window, one that read its end line late included.

use std::io::{BufRead, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rwsplit_sea_orm::RoutedConnection;
use rwsplit_sea_orm::advanced::MONITOR_APPLICATION;
use rwsplit_testkit::{BackendKind, Cluster, DbKind, Node};
use sea_orm::sqlx::{self, Connection, Row};
use sea_orm::{ConnectionTrait, Statement};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let result = match args.first().map(String::as_str) {
        Some("instance") => instance(&args[1..]),
        Some("observe") => observe(&args[1..]),
        _ => driver(&args),
    };
    if let Err(e) = result {
        eprintln!("fleet: {e}");
        std::process::exit(1);
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

// ---------------------------------------------------------------------------------------------
// An instance.

/// What one instance counted between `ready` and the end.
#[derive(Debug, Default, Clone, Copy)]
struct Counted {
    /// Role or health changes the monitor announced, summed over nodes.
    changes: u64,
    failed_probes: u64,
    /// Probes that timed out while the node answered the application, or were refused for
    /// lack of room: busy, not failed (`NodeStats::busy_probes`). What the monitor's excuses
    /// carry: a busy probe would have been a failed one without them.
    busy_probes: u64,
    reads: u64,
    replica_reads: u64,
    stale: u64,
    /// Instances that did not start or whose workload failed (driver side).
    failed_instances: u64,
    /// Of `changes` and `failed_probes`, those in the measured window (after every instance
    /// started and the counters settled), not while the fleet was connecting.
    window_changes: u64,
    window_failed_probes: u64,
    window_busy_probes: u64,
    /// Writes the workload made in the window.
    window_writes: u64,
    /// Writes the workload's pace asked for in the window, in thousandths (each instance's
    /// window from its own mark to its own end: the driver's lines reach the instances one by
    /// one).
    window_asked_milli: u64,
    /// How long the instance's window was (instance side).
    window_ms: u64,
    /// When these counts were taken (Unix time, ms; instance side).
    unix_ms: u64,
}

fn instance(args: &[String]) -> Res<()> {
    let [connections, workload, id, primary, replicas @ ..] = args else {
        return Err(
            "usage: fleet instance <connections> <idle|ryw|plain> <id> <primary> <replica>..."
                .into(),
        );
    };
    let connections: usize = connections.parse()?;
    // Every failed probe, with when and on which node, for the driver to hold against what the
    // observer saw of that server (see `Observed`).
    let failures = ProbeFailures::default();
    {
        use tracing_subscriber::Layer;
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        // What the instance's monitor logs (why a probe failed), on stderr with its id.
        let log = std::env::var_os("RWSPLIT_BENCH_FLEET_LOG").is_some().then(|| {
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(tracing_subscriber::EnvFilter::new("rwsplit=warn"))
        });
        // Events only: the statements' spans stay off, as they are without a subscriber.
        let only = tracing_subscriber::filter::filter_fn(|m| {
            m.is_event() && m.target() == "rwsplit" && *m.level() <= tracing::Level::DEBUG
        });
        tracing_subscriber::registry().with(failures.clone().with_filter(only)).with(log).init();
    }
    if !matches!(workload.as_str(), "idle" | "ryw" | "plain") {
        return Err(format!("unknown workload {workload:?}: idle, ryw or plain").into());
    }
    let id: i64 = id.parse()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        // How late this process's runtime runs its tasks: a task asking to wake every 20 ms
        // records each wake more than 50 ms late (Unix ms of the wake, ms late). A probe that
        // timed out while the instance itself was not running is the client's stall, not the
        // server's.
        let lags = Arc::new(std::sync::Mutex::new(Vec::<(u64, u64)>::new()));
        {
            let lags = Arc::clone(&lags);
            tokio::spawn(async move {
                loop {
                    let asked = Instant::now();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let late = asked.elapsed().saturating_sub(Duration::from_millis(20));
                    if late >= Duration::from_millis(50) {
                        let late = u64::try_from(late.as_millis()).unwrap_or(u64::MAX);
                        let mut l = lags.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        l.push((unix_ms(), late));
                    }
                }
            });
        }
        let mut dbs = Vec::with_capacity(connections);
        let mut plain = Vec::new();
        for _ in 0..connections {
            if workload == "plain" {
                // Plain SeaORM on the primary alone: the same workload without rwsplit, to tell
                // what the machine carries from what rwsplit adds.
                plain.push(sea_orm::Database::connect(primary.as_str()).await?);
                continue;
            }
            // `--pgbouncer`, passed down: the replicas are behind PgBouncer in transaction
            // pooling.
            let pooling = if std::env::var_os("FLEET_REPLICAS_PGBOUNCER").is_some() {
                rwsplit_sea_orm::Pooling::Transaction
            } else {
                rwsplit_sea_orm::Pooling::Direct
            };
            let mut b = RoutedConnection::builder().primary(primary.as_str()).replicas(
                replicas.iter().map(|u| rwsplit_sea_orm::Replica::new(u.as_str()).pooling(pooling)),
            );
            // `--position-interval-ms`, passed down: the monitor's position feed (0: off).
            let feed = std::env::var("FLEET_POSITION_INTERVAL_MS").ok().and_then(|s| s.parse().ok());
            if let Some(ms) = feed {
                let every = Duration::from_millis(ms);
                b = b.monitor(rwsplit_sea_orm::advanced::MonitorConfig::default().position_interval(every));
            }
            // `--acquire-timeout-secs`, passed down: the pools' acquire timeout (rwsplit's
            // defaults: 30 s where a pool writes, as plain SeaORM's, 5 s on replicas' reads).
            if let Some(secs) = std::env::var("FLEET_ACQUIRE_TIMEOUT_SECS").ok().and_then(|s| s.parse().ok()) {
                b = b.acquire_timeout(Duration::from_secs(secs));
            }
            let db = b.connect().await?;
            dbs.push(db);
        }
        println!("ready");
        std::io::stdout().flush()?;
        // The driver writes a line when its window begins and another when it ends.
        let (line_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<()>();
        std::thread::spawn(move || {
            let mut line = String::new();
            while std::io::stdin().lock().read_line(&mut line).is_ok_and(|n| n > 0) {
                line.clear();
                let _ = line_tx.send(());
            }
        });
        let stale = Arc::new(AtomicU64::new(0));
        let writes = Arc::new(AtomicU64::new(0));
        let every = std::env::var("FLEET_RYW_EVERY_MS").ok().and_then(|s| s.parse().ok());
        let every = Duration::from_millis(every.unwrap_or(DEFAULT_RYW_EVERY_MS));
        let (marked, ended);
        let mut failed_work: Option<String> = None;
        if workload == "idle" {
            (marked, ended) = window(&mut lines, &dbs, &writes).await;
        } else {
            let (halt, _) = tokio::sync::watch::channel(false);
            let mut tasks = Vec::new();
            let conns: Vec<Conn> = if workload == "plain" {
                plain.iter().cloned().map(Conn::Plain).collect()
            } else {
                dbs.iter().cloned().map(Conn::Routed).collect()
            };
            for (n, conn) in conns.into_iter().enumerate() {
                let base = (id * 1_000 + i64::try_from(n).unwrap_or(0)) * 1_000_000;
                let counts = (Arc::clone(&stale), Arc::clone(&writes));
                let task = ryw(conn, base, id, every, counts, halt.subscribe());
                tasks.push(tokio::spawn(task));
            }
            (marked, ended) = window(&mut lines, &dbs, &writes).await;
            let _ = halt.send(true);
            // A connection whose workload failed stopped there; the instance still reports what
            // it counted (its failed probes and false changes are what the row is about: an
            // instance that failed because its monitor marked a node down must not take them
            // with it), and says it failed.
            for t in tasks {
                let e = match t.await {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                };
                eprintln!("fleet: {e}");
                failed_work.get_or_insert(e);
            }
        }
        let stale = stale.load(Ordering::Relaxed);
        let after = totals(&dbs);
        // Each failed probe up to the window's end: [unix ms, node index, timeout ms or null,
        // ms the instance stalled, what it waited for (the event's `waited`) or null].
        let names: Vec<String> = dbs
            .first()
            .map(|db| db.stats().nodes().iter().map(|n| n.name().to_owned()).collect())
            .unwrap_or_default();
        let failed: Vec<serde_json::Value> = failures
            .taken()
            .into_iter()
            .filter(|f| f.unix_ms <= ended.unix_ms)
            .filter_map(|f| {
                let node = names.iter().position(|n| *n == f.node)?;
                // How long the instance itself did not run during the probe's wait: the late
                // wakes that ended in it, each cut to the part inside the wait.
                let waited = f.timeout_ms.unwrap_or(0);
                let from = f.unix_ms.saturating_sub(waited);
                let lags = lags.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let stalled: u64 = lags
                    .iter()
                    .filter(|&&(at, _)| at > from && at <= f.unix_ms)
                    .map(|&(at, late)| late.min(at - from))
                    .sum();
                Some(serde_json::json!([f.unix_ms, node, f.timeout_ms, stalled, f.waited]))
            })
            .collect();
        // From the connections' construction (the first probes included: a node a first probe
        // failed is a false change when it recovers, and its failure counts) to the window's
        // end, and in the window. Not after it: the fleet's teardown, every instance stopping
        // and closing its connections in the same second, is the benchmark's, not a fleet's
        // (the servers answer late then: probes of 200 instances time out in most runs).
        // Reads: all the workload made.
        println!(
            "{{\"failed\":{},\"changes\":{},\"failed_probes\":{},\"window_changes\":{},\"window_failed_probes\":{},\"busy_probes\":{},\"window_busy_probes\":{},\"reads\":{},\"replica_reads\":{},\"stale\":{stale},\"window_writes\":{},\"window_asked_milli\":{},\"window_from_ms\":{},\"failures\":{}}}",
            failed_work.is_some(),
            ended.changes,
            ended.failed_probes,
            ended.changes - marked.changes,
            ended.failed_probes - marked.failed_probes,
            ended.busy_probes,
            ended.busy_probes - marked.busy_probes,
            after.reads,
            after.replica_reads,
            ended.window_writes,
            // Per connection, one write per `every`.
            ended.window_ms * 1_000 * dbs.len().max(plain.len()) as u64
                / u64::try_from(every.as_millis()).unwrap_or(1).max(1),
            marked.unix_ms,
            serde_json::Value::Array(failed),
        );
        std::io::stdout().flush()?;
        // Connections kept open until the driver has every instance's counts (it closes the
        // input then): an instance that exits closes its connections, and 200 closing in the
        // same second slow the servers (see above) while an instance that read its end line
        // late is still counting.
        while lines.recv().await.is_some() {}
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    })
}

/// One connection of an instance's workload: rwsplit's, or plain SeaORM's on the primary.
#[derive(Clone)]
enum Conn {
    Routed(RoutedConnection),
    Plain(sea_orm::DatabaseConnection),
}

impl Conn {
    async fn execute(&self, sql: &str) -> Result<(), sea_orm::DbErr> {
        match self {
            Conn::Routed(c) => c.execute_unprepared(sql).await.map(drop),
            Conn::Plain(c) => c.execute_unprepared(sql).await.map(drop),
        }
    }

    async fn found(&self, sql: String) -> Result<bool, sea_orm::DbErr> {
        let row = match self {
            Conn::Routed(c) => {
                c.query_one_raw(Statement::from_string(c.get_database_backend(), sql)).await?
            }
            Conn::Plain(c) => {
                c.query_one_raw(Statement::from_string(c.get_database_backend(), sql)).await?
            }
        };
        Ok(row.is_some())
    }
}

/// One connection's read-your-writes workload (its own scope): every `every` (250 ms unless
/// `--ryw-every-ms`) a write and two reads of it, at once (a form's result page) and 100 ms
/// later (the next page); both must see the write. Counts stale reads and writes made.
async fn ryw(
    db: Conn,
    base: i64,
    id: i64,
    every: Duration,
    (stale, writes): (Arc<AtomicU64>, Arc<AtomicU64>),
    mut halted: tokio::sync::watch::Receiver<bool>,
) -> Result<(), sea_orm::DbErr> {
    let mut tick = tokio::time::interval(every);
    // A round that overran its turn (a saturated machine) is not made up for in a burst.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for round in 0.. {
        tokio::select! {
            _ = halted.changed() => break,
            _ = tick.tick() => {}
        }
        let key = base + round;
        db.execute(&format!("INSERT INTO fleet_t (id, owner) VALUES ({key}, {id})")).await?;
        writes.fetch_add(1, Ordering::Relaxed);
        for pause in [Duration::ZERO, Duration::from_millis(100)] {
            tokio::time::sleep(pause).await;
            if !db.found(format!("SELECT id FROM fleet_t WHERE id = {key}")).await? {
                stale.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

/// Waits for the driver's mark (a line on standard input: its window begins), then for the
/// window's end (a second line, or standard input closed); returns the counts at the mark (at
/// the end if no mark came) and at the end, with the writes the workload made in the window.
async fn window(
    lines: &mut tokio::sync::mpsc::UnboundedReceiver<()>,
    dbs: &[RoutedConnection],
    writes: &AtomicU64,
) -> (Counted, Counted) {
    let marked = lines.recv().await.is_some();
    let at = totals(dbs);
    let written = writes.load(Ordering::Relaxed);
    let began = Instant::now();
    if marked {
        let _ = lines.recv().await;
    }
    let mut end = totals(dbs);
    end.window_writes = writes.load(Ordering::Relaxed) - written;
    end.window_ms = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX);
    (at, end)
}

/// What the instance's connections count so far. Connections sharing a monitor report its
/// counts once each, so the monitor's counts are taken from the first connection only.
fn totals(dbs: &[RoutedConnection]) -> Counted {
    let mut c = Counted { unix_ms: unix_ms(), ..Counted::default() };
    for (i, db) in dbs.iter().enumerate() {
        let stats = db.stats();
        if i == 0 {
            for n in stats.nodes() {
                c.changes += n.changes();
                c.failed_probes += n.failed_probes();
                c.busy_probes += n.busy_probes();
            }
        }
        let ryw = stats.read_your_writes();
        c.reads += ryw.replica_reads + ryw.primary_reads;
        c.replica_reads += ryw.replica_reads;
    }
    c
}

/// Unix time in milliseconds: what the instances and the observer stamp, so the driver can
/// hold one process's instants against another's (one machine, one clock).
fn unix_ms() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One failed probe, as the monitor reported it (its `probe failed` event, target `rwsplit`).
#[derive(Debug, Clone)]
struct ProbeFailure {
    /// When the event came (Unix time, ms): when the probe stopped waiting.
    unix_ms: u64,
    /// The node's name (`host:port/database`).
    node: String,
    /// How long the probe waited, if it timed out.
    timeout_ms: Option<u64>,
    /// What it waited for, if it timed out: the event's `waited` (`"connect"`, a connection
    /// being opened; `"feed"`, a position-feed read handed to the probe; `"answer"`, the
    /// probe's query).
    waited: Option<String>,
}

/// A tracing layer keeping every failed probe the instance's monitor reports: the event carries
/// the node, the failure count and, for a timeout, how long the probe waited (`timeout_ms`).
#[derive(Debug, Clone, Default)]
struct ProbeFailures(Arc<std::sync::Mutex<Vec<ProbeFailure>>>);

impl ProbeFailures {
    fn taken(&self) -> Vec<ProbeFailure> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ProbeFailures {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        /// The fields of a `probe failed` event this layer reads.
        #[derive(Default)]
        struct Fields {
            node: Option<String>,
            failures: bool,
            timeout_ms: Option<u64>,
            waited: Option<String>,
        }
        impl tracing::field::Visit for Fields {
            fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
                match field.name() {
                    "failures" => self.failures = true,
                    "timeout_ms" => self.timeout_ms = Some(value),
                    _ => {}
                }
            }
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "waited" {
                    self.waited = Some(value.to_owned());
                }
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "node" {
                    self.node = Some(format!("{value:?}"));
                }
            }
        }
        let mut f = Fields::default();
        event.record(&mut f);
        if let (Some(node), true) = (f.node, f.failures) {
            let failure = ProbeFailure {
                unix_ms: unix_ms(),
                node,
                timeout_ms: f.timeout_ms,
                waited: f.waited,
            };
            self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(failure);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The observer.

/// How often the observer asks each node.
const OBSERVE_EVERY: Duration = Duration::from_millis(20);

/// An observer answer slower than this is kept (and reported); faster ones are only counted.
const OBSERVE_KEEP: Duration = Duration::from_millis(100);

/// The observer: `fleet observe <url>...`, run by the driver at nice −10 beside the instances.
/// On a connection of its own to each node (opened before the instances start) it sends
/// `SELECT 1` every 20 ms, the next once the last is answered, and stamps each in Unix ms. At
/// the end of its standard input it prints one JSON line: per node, the answers it counted, the
/// slowest, and every answer slower than 100 ms as `[sent, answered]` (an unanswered one with
/// the end's instant). It tells a server that did not answer anyone (an established
/// connection's trivial query waited too) from a probe that timed out while the server
/// answered others.
fn observe(urls: &[String]) -> Res<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let mut conns = Vec::with_capacity(urls.len());
        for url in urls {
            conns.push(sqlx::PgConnection::connect(url).await?);
        }
        println!("ready");
        std::io::stdout().flush()?;
        let (halt, _) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for mut conn in conns {
            let mut halted = halt.subscribe();
            tasks.push(tokio::spawn(async move {
                let (mut count, mut slowest, mut slow) = (0_u64, 0_u64, Vec::<[u64; 2]>::new());
                loop {
                    let sent = unix_ms();
                    let started = Instant::now();
                    let asked = sqlx::query("SELECT 1").execute(&mut conn);
                    tokio::select! {
                        r = asked => {
                            if r.is_err() {
                                break;
                            }
                        }
                        _ = halted.changed() => {
                            // Unanswered at the end: as slow as it has been so far.
                            if started.elapsed() >= OBSERVE_KEEP {
                                slow.push([sent, unix_ms()]);
                            }
                            break;
                        }
                    }
                    let took = started.elapsed();
                    count += 1;
                    slowest = slowest.max(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
                    if took >= OBSERVE_KEEP {
                        slow.push([sent, unix_ms()]);
                    }
                    let next = tokio::time::sleep(OBSERVE_EVERY.saturating_sub(took));
                    tokio::select! {
                        () = next => {}
                        _ = halted.changed() => break,
                    }
                }
                serde_json::json!({ "answers": count, "slowest_ms": slowest, "slow": slow })
            }));
        }
        // Until the driver closes its standard input.
        tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin().lock().read_line(&mut sink).is_ok_and(|n| n > 0) {
                sink.clear();
            }
        })
        .await?;
        let _ = halt.send(true);
        let mut nodes = Vec::new();
        for t in tasks {
            nodes.push(t.await?);
        }
        println!("{}", serde_json::Value::Array(nodes));
        std::io::stdout().flush()?;
        Ok(())
    })
}

/// What the observer saw of one node: the answers slower than [`OBSERVE_KEEP`], as
/// `(sent, answered)` in Unix ms.
#[derive(Debug, Clone, Default)]
struct Observed {
    answers: u64,
    slowest_ms: u64,
    slow: Vec<(u64, u64)>,
}

impl Observed {
    /// How long, within `[from, to]`, the observer's one query outstanding the longest there
    /// waited: if the server left an established connection's `SELECT 1` unanswered over most
    /// of a probe's wait, the probe timed out because the server answered nobody.
    fn unanswered_within(&self, from: u64, to: u64) -> u64 {
        self.slow
            .iter()
            .map(|&(sent, answered)| answered.min(to).saturating_sub(sent.max(from)))
            .max()
            .unwrap_or(0)
    }

    /// Stalls of at least `ms`: answers that took that long.
    fn stalls(&self, ms: u64) -> usize {
        self.slow.iter().filter(|(s, a)| a.saturating_sub(*s) >= ms).count()
    }
}

/// The observer process of one run.
struct Observer {
    child: Child,
}

impl Observer {
    /// Starts `fleet observe` at nice −10 (as root; otherwise `nice` says so and runs it at the
    /// usual priority) and waits for its connections.
    fn start(urls: &[String]) -> Res<Observer> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new("nice")
            .args(["-n", "-10"])
            .arg(exe)
            .arg("observe")
            .args(urls)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut line = String::new();
        let out = child.stdout.as_mut().ok_or("no stdout")?;
        std::io::BufReader::new(out).read_line(&mut line)?;
        if line.trim() != "ready" {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the observer could not connect to every node (its error is above)".into());
        }
        Ok(Observer { child })
    }

    /// Stops it and reads what it saw, node by node.
    fn finish(mut self) -> Res<Vec<Observed>> {
        drop(self.child.stdin.take());
        let mut line = String::new();
        let out = self.child.stdout.take().ok_or("no stdout")?;
        std::io::BufReader::new(out).read_line(&mut line)?;
        self.child.wait()?;
        let v: serde_json::Value = serde_json::from_str(line.trim())?;
        let nodes = v.as_array().ok_or("the observer printed no list")?;
        Ok(nodes
            .iter()
            .map(|n| Observed {
                answers: n["answers"].as_u64().unwrap_or(0),
                slowest_ms: n["slowest_ms"].as_u64().unwrap_or(0),
                slow: n["slow"]
                    .as_array()
                    .map(|a| {
                        a.iter().filter_map(|p| Some((p[0].as_u64()?, p[1].as_u64()?))).collect()
                    })
                    .unwrap_or_default(),
            })
            .collect())
    }
}

// ---------------------------------------------------------------------------------------------
// The driver.

/// How the K instances are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// K processes, one connection each.
    Processes(usize),
    /// One process, K connections.
    OneProcess(usize),
}

impl Shape {
    fn k(self) -> usize {
        match self {
            Shape::Processes(k) | Shape::OneProcess(k) => k,
        }
    }

    fn label(self) -> String {
        match self {
            Shape::Processes(k) => format!("{k} processes"),
            Shape::OneProcess(k) => format!("1 process × {k}"),
        }
    }
}

/// One node's figures over a window.
#[derive(Debug, Clone)]
struct NodeRow {
    node: String,
    monitor_per_s: f64,
    all_per_s: f64,
    /// % of one core; `None` without a cgroup of its own.
    cpu_pct: Option<f64>,
    monitor_connections: i64,
}

/// One shape and workload's figures.
#[derive(Debug, Clone)]
struct Measured {
    shape: Shape,
    workload: &'static str,
    nodes: Vec<NodeRow>,
    /// Client CPU per instance, % of one core (mean over instances).
    client_cpu_pct: f64,
    counted: Counted,
    /// Of the writes the workload's pace asks for in the window, the share made (%): below
    /// 100 the machine could not carry the workload. `None` idle.
    pace_pct: Option<f64>,
    /// The failed probes held against the observer's view.
    attributed: Attributed,
}

/// `--acquire-timeout-secs`: the instances' pool acquire timeout, passed to them in
/// `FLEET_ACQUIRE_TIMEOUT_SECS` (unset: rwsplit's defaults).
static ACQUIRE_TIMEOUT_SECS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// `--position-interval-ms`: the instances' position feed interval (0: off), passed to them in
/// `FLEET_POSITION_INTERVAL_MS` (unset: the default, 20 ms).
static POSITION_INTERVAL_MS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// `--pgbouncer`: the replicas are reached through PgBouncer in transaction pooling (the
/// instances are told in `FLEET_REPLICAS_PGBOUNCER`).
static PGBOUNCER: std::sync::OnceLock<()> = std::sync::OnceLock::new();

/// `--ryw-every-ms`: how often each connection of the read-your-writes workload writes, passed
/// to the instances in `FLEET_RYW_EVERY_MS`.
static RYW_EVERY_MS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// The read-your-writes workload's pace unless `--ryw-every-ms`: a write (and its two reads)
/// every 250 ms per connection.
const DEFAULT_RYW_EVERY_MS: u64 = 250;

fn driver(args: &[String]) -> Res<()> {
    let mut ks = vec![1, 10, 50, 200];
    let mut window = Duration::from_secs(5);
    let mut json: Option<std::path::PathBuf> = None;
    let mut plain = false;
    let mut docker_proxy = false;
    let mut root_cgroup = false;
    let mut workloads = vec!["idle".to_owned(), "ryw".to_owned()];
    let mut shapes = vec!["processes".to_owned(), "one".to_owned()];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--ks" => {
                ks = it
                    .next()
                    .ok_or("--ks needs a list")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--window-secs" => {
                window =
                    Duration::from_secs(it.next().ok_or("--window-secs needs a number")?.parse()?)
            }
            "--json" => json = Some(it.next().ok_or("--json needs a path")?.into()),
            "--plain" => plain = true,
            "--docker-proxy" => docker_proxy = true,
            "--pgbouncer" => {
                let _ = PGBOUNCER.set(());
            }
            "--clients-in-root-cgroup" => root_cgroup = true,
            "--workloads" => {
                let list = it.next().ok_or("--workloads needs a list (idle,ryw)")?;
                workloads = list.split(',').map(str::to_owned).collect();
                if let Some(w) = workloads.iter().find(|w| !["idle", "ryw"].contains(&w.as_str())) {
                    return Err(format!("unknown workload {w:?} (idle, ryw)").into());
                }
            }
            "--shapes" => {
                let list = it.next().ok_or("--shapes needs a list (processes,one)")?;
                shapes = list.split(',').map(str::to_owned).collect();
                if let Some(x) = shapes.iter().find(|x| !["processes", "one"].contains(&x.as_str()))
                {
                    return Err(format!("unknown shape {x:?} (processes, one)").into());
                }
            }
            "--ryw-every-ms" => {
                let ms: u64 = it.next().ok_or("--ryw-every-ms needs a number")?.parse()?;
                if ms == 0 {
                    return Err("--ryw-every-ms must be at least 1".into());
                }
                let _ = RYW_EVERY_MS.set(ms);
            }
            "--position-interval-ms" => {
                let ms: u64 = it.next().ok_or("--position-interval-ms needs a number")?.parse()?;
                let _ = POSITION_INTERVAL_MS.set(ms);
            }
            "--acquire-timeout-secs" => {
                let secs: u64 =
                    it.next().ok_or("--acquire-timeout-secs needs a number")?.parse()?;
                let _ = ACQUIRE_TIMEOUT_SECS.set(secs);
            }
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    // Containers unless native is asked for (the testkit's variable).
    let named = std::env::var("RWSPLIT_TESTKIT_BACKEND").ok();
    let backend = if named.as_deref() == Some("native") {
        BackendKind::Native
    } else {
        BackendKind::Containers
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    // The instances' own CPU group (see `ClientGroup`), on the containers backend: natively the
    // servers' processes are in the root group with the instances, each weighing as one.
    let group =
        (backend == BackendKind::Containers && !root_cgroup).then(ClientGroup::create).flatten();
    let rows = rt.block_on(async {
        let cluster = Cluster::builder()
            .db(DbKind::Postgres)
            .backend(backend)
            .name("fleet")
            .replicas(2)
            .setting("max_connections", "1200")
            .setting("shared_preload_libraries", "pg_stat_statements")
            .start()
            .await?;
        let tdb = cluster.create_database("fleet").await?;
        let mut setup = sqlx::PgConnection::connect(&tdb.primary_url()).await?;
        sqlx::query("CREATE TABLE fleet_t (id bigint PRIMARY KEY, owner bigint)")
            .execute(&mut setup)
            .await?;
        let mut counters = Vec::new();
        for (i, node) in cluster.nodes().iter().enumerate() {
            counters.push(NodeCounter::open(node, i == 0).await?);
        }
        let urls: Vec<String> =
            std::iter::once(tdb.primary_url()).chain(tdb.replica_urls()).collect();
        // The instances reach the containers directly (through the bridge), as an application
        // reaches its database servers, not through Docker's userland port proxy, unless asked.
        let urls = if docker_proxy {
            urls
        } else {
            urls.iter()
                .zip(cluster.nodes())
                .map(|(u, n)| n.direct_url(u))
                .collect::<Result<Vec<_>, _>>()?
        };
        // `--pgbouncer`: one PgBouncer per replica, on this machine, reaching its server through
        // the port the host publishes (its few server connections, not the fleet's, cross
        // Docker's proxy). The instances reach the replicas through them; the observer does not.
        let mut bouncers = Vec::new();
        let observed = urls.clone();
        let urls = if PGBOUNCER.get().is_some() {
            let mut through = vec![urls[0].clone()];
            for (node, url) in cluster.replicas().iter().zip(tdb.replica_urls()) {
                let bouncer = node.pgbouncer(rwsplit_testkit::PoolMode::Transaction).await?;
                through.push(bouncer.url(&url));
                bouncers.push(bouncer);
            }
            eprintln!("fleet: the replicas are reached through PgBouncer (transaction pooling)");
            through
        } else {
            urls
        };
        eprintln!("fleet: {backend:?} cluster up; window {window:?}");
        let mut rows = Vec::new();
        for &k in &ks {
            for shape in [Shape::Processes(k), Shape::OneProcess(k)] {
                if shape == Shape::OneProcess(1) {
                    continue; // the same as one process of one
                }
                let name = if matches!(shape, Shape::Processes(_)) { "processes" } else { "one" };
                if !shapes.iter().any(|s| s == name) {
                    continue;
                }
                let plain_too = plain && matches!(shape, Shape::Processes(_));
                for workload in ["idle", "ryw", "plain"] {
                    let wanted = workloads.iter().any(|w| w == workload);
                    if (workload == "plain" && !plain_too) || (workload != "plain" && !wanted) {
                        continue;
                    }
                    let row = run(
                        &cluster,
                        &mut counters,
                        (&urls, &observed),
                        shape,
                        workload,
                        window,
                        group.as_ref(),
                    )
                    .await?;
                    print_row(&row);
                    rows.push(row);
                }
            }
        }
        drop(counters);
        drop(bouncers);
        cluster.stop()?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(rows)
    })?;
    if let Some(path) = json {
        std::fs::write(&path, to_json(&rows))?;
        eprintln!("fleet: wrote {}", path.display());
    }
    Ok(())
}

/// Starts the instances of `shape`, waits for them to be ready, measures one window, stops them.
async fn run(
    cluster: &Cluster,
    counters: &mut [NodeCounter],
    (urls, observed): (&[String], &[String]),
    shape: Shape,
    workload: &'static str,
    window: Duration,
    group: Option<&ClientGroup>,
) -> Res<Measured> {
    let exe = std::env::current_exe()?;
    // Beside the fleet from before its start to its window's end (see `observe`).
    let observer = tokio::task::block_in_place(|| Observer::start(observed))?;
    let (processes, per_process) = match shape {
        Shape::Processes(k) => (k, 1),
        Shape::OneProcess(k) => (1, k),
    };
    let mut children: Vec<Child> = Vec::with_capacity(processes);
    for _ in 0..processes {
        let child = Command::new(&exe)
            .arg("instance")
            .arg(per_process.to_string())
            .arg(workload)
            .arg(NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed).to_string())
            .args(urls)
            .envs(ACQUIRE_TIMEOUT_SECS.get().map(|s| ("FLEET_ACQUIRE_TIMEOUT_SECS", s.to_string())))
            .envs(RYW_EVERY_MS.get().map(|ms| ("FLEET_RYW_EVERY_MS", ms.to_string())))
            .envs(PGBOUNCER.get().map(|_| ("FLEET_REPLICAS_PGBOUNCER", "1")))
            .envs(
                POSITION_INTERVAL_MS.get().map(|ms| ("FLEET_POSITION_INTERVAL_MS", ms.to_string())),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        if let Some(group) = group
            && let Err(e) = group.add(child.id())
        {
            eprintln!("fleet: instance {} left in the root cgroup: {e}", child.id());
        }
        children.push(child);
    }
    // Ready: each prints one line once connected (first probes done).
    let mut outputs = Vec::with_capacity(children.len());
    for c in &mut children {
        let out = c.stdout.take().ok_or("no stdout")?;
        let mut out = std::io::BufReader::new(out);
        let mut line = String::new();
        tokio::task::block_in_place(|| out.read_line(&mut line))?;
        // One that could not connect (its error is on stderr) counts as failed, and the run
        // goes on: a saturated machine is what the benchmark is there to show.
        outputs.push((line.trim() == "ready").then_some(out));
    }
    // The first probes and connection setup are behind us; let the counters settle (1 s:
    // PostgreSQL flushes a backend's statistics at most once a second). Idle, also wait out
    // the default idle interval (2 s): a new connection counts as a use, and the window
    // measures the idle pace an application settles into. Under the workload, also its first
    // seconds: each instance's first reads open its replica pools (lazy), 200 connections per
    // replica in the same second, which the start's count (from each instance's construction)
    // includes and the steady state does not.
    let settle = 3;
    tokio::time::sleep(Duration::from_secs(settle)).await;
    // The window begins: each instance takes its counts again (what happens from here on is
    // the steady state, apart from the fleet's start).
    let window_from = unix_ms();
    for c in &mut children {
        if let Some(stdin) = c.stdin.as_mut() {
            // One that failed to start has exited; it is counted as failed below.
            let _ = stdin.write_all(b"mark\n").and_then(|()| stdin.flush());
        }
    }
    let before = snapshot(cluster, counters).await?;
    let began = utc_clock();
    let cpu_before: Vec<u64> = children.iter().map(|c| process_ticks(c.id())).collect();
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let after = snapshot(cluster, counters).await?;
    // When, for reading the instances' logs (`RWSPLIT_BENCH_FLEET_LOG`) against the window.
    eprintln!("fleet: {} {workload} window {began}–{} UTC", shape.label(), utc_clock());
    let cpu_after: Vec<u64> = children.iter().map(|c| process_ticks(c.id())).collect();
    let secs = started.elapsed().as_secs_f64();
    let mut monitor_connections = Vec::new();
    for c in counters.iter_mut() {
        monitor_connections.push(c.monitor_connections().await?);
    }
    // The window ends for every instance at once: each stops its workload, takes its counts
    // and prints them (what the fleet does while the driver reads the instances one by one is
    // not the fleet's steady state: the first read must not leave the last 199 working on).
    for c in &mut children {
        if let Some(stdin) = c.stdin.as_mut() {
            let _ = stdin.write_all(b"end\n").and_then(|()| stdin.flush());
        }
    }
    let window_to = unix_ms();
    let observed = tokio::task::block_in_place(|| observer.finish())?;
    let mut failures = Vec::new();
    // Read each one's counts, every instance still connected (each keeps its connections
    // until its input closes: the fleet's teardown, below, is outside every instance's
    // window, however late it read its end line).
    let mut counted = Counted::default();
    let mut ended = Vec::with_capacity(children.len());
    for (mut c, out) in children.into_iter().zip(outputs) {
        let mut line = String::new();
        if let Some(mut out) = out {
            tokio::task::block_in_place(|| out.read_line(&mut line))?;
        }
        // No counts: it failed to start (on stderr).
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line.trim()) else {
            counted.failed_instances += 1;
            let _ = c.kill();
            ended.push(c);
            continue;
        };
        // A statement of its workload failed (on stderr): failed, and its counts still count.
        if v.get("failed").and_then(serde_json::Value::as_bool) == Some(true) {
            counted.failed_instances += 1;
        }
        let get = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        counted.changes += get("changes");
        counted.failed_probes += get("failed_probes");
        counted.window_changes += get("window_changes");
        counted.window_failed_probes += get("window_failed_probes");
        counted.busy_probes += get("busy_probes");
        counted.window_busy_probes += get("window_busy_probes");
        counted.reads += get("reads");
        counted.replica_reads += get("replica_reads");
        counted.stale += get("stale");
        counted.window_writes += get("window_writes");
        counted.window_asked_milli += get("window_asked_milli");
        // The instance's own mark: what it counted in its window.
        let marked = get("window_from_ms");
        for f in v.get("failures").and_then(serde_json::Value::as_array).into_iter().flatten() {
            if let (Some(at), Some(node)) = (f[0].as_u64(), f[1].as_u64()) {
                let node = usize::try_from(node).unwrap_or(usize::MAX);
                let in_window = at >= marked;
                let client_stalled_ms = f[3].as_u64().unwrap_or(0);
                failures.push(Failed {
                    at,
                    node,
                    timeout_ms: f[2].as_u64(),
                    waited: f[4].as_str().map(str::to_owned),
                    in_window,
                    client_stalled_ms,
                });
            }
        }
        ended.push(c);
    }
    // Then the teardown: every input closed, every instance exits.
    for c in &mut ended {
        drop(c.stdin.take());
    }
    for mut c in ended {
        tokio::task::block_in_place(|| c.wait())?;
    }
    let ticks: u64 = cpu_after.iter().zip(&cpu_before).map(|(a, b)| a.saturating_sub(*b)).sum();
    // Linux reports process times in USER_HZ, 100 per second on every mainstream platform.
    let client_cpu_pct = ticks as f64 / 100.0 / secs / shape.k() as f64 * 100.0;
    let nodes = cluster
        .nodes()
        .iter()
        .zip(before.iter().zip(&after))
        .zip(monitor_connections)
        .map(|((node, (b, a)), conns)| NodeRow {
            node: node.name().to_owned(),
            monitor_per_s: (a.monitor - b.monitor) as f64 / secs,
            all_per_s: (a.all - b.all) as f64 / secs,
            cpu_pct: match (a.cpu, b.cpu) {
                (Some(a), Some(b)) => Some(a.saturating_sub(b).as_secs_f64() / secs * 100.0),
                _ => None,
            },
            monitor_connections: conns,
        })
        .collect();
    // Instances that failed made no writes and asked for none: their failure is counted apart.
    let asked = counted.window_asked_milli as f64 / 1_000.0;
    let pace_pct =
        (workload != "idle" && asked > 0.0).then(|| counted.window_writes as f64 * 100.0 / asked);
    let attributed = Attributed::of(&failures, &observed, window_from, window_to);
    Ok(Measured { shape, workload, nodes, client_cpu_pct, counted, pace_pct, attributed })
}

/// The failed probes held against what the observer saw of their servers.
#[derive(Debug, Clone, Default)]
struct Attributed {
    /// Timeouts during which the server left the observer's own query unanswered for at least
    /// three quarters of the probe's timeout: it answered nobody (all, and in the window).
    unanswering: (u64, u64),
    /// Timeouts while the observer's queries were answered: the probe alone was slow.
    answering: (u64, u64),
    /// Failures that were not timeouts (refused, reset, an error).
    other: (u64, u64),
    /// Per node: the observer's slowest answer (ms), and its answers that took at least the
    /// configured probe timeout (all, and in the window).
    slowest_ms: Vec<u64>,
    stalls: Vec<(usize, usize)>,
    /// The observer's answers per node (0: it saw nothing and attributes nothing).
    answers: Vec<u64>,
    /// One line per failed probe.
    detail: Vec<String>,
}

/// A failed probe an instance reported: when (Unix ms), the node's index, how long it waited
/// if it timed out.
#[derive(Debug, Clone)]
struct Failed {
    at: u64,
    node: usize,
    timeout_ms: Option<u64>,
    /// What it waited for, if it timed out (see [`ProbeFailure::waited`]).
    waited: Option<String>,
    /// After the instance's own mark.
    in_window: bool,
    /// How long, of the probe's wait, the instance's own runtime was not running its tasks.
    client_stalled_ms: u64,
}

/// How much earlier than its stamp a probe's wait is looked at: an instance stamps a failure
/// when it runs, late on a loaded machine.
const STAMP_SLACK_MS: u64 = 500;

impl Attributed {
    fn of(failures: &[Failed], observed: &[Observed], from: u64, to: u64) -> Attributed {
        let mut a = Attributed::default();
        let timeout = rwsplit_sea_orm::advanced::MonitorConfig::default().probe_timeout_value();
        let timeout = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        for f in failures {
            let in_window = u64::from(f.in_window);
            let node = observed.get(f.node);
            let seen = match (f.timeout_ms, node) {
                (Some(waited), Some(o)) => {
                    Some(o.unanswered_within(f.at.saturating_sub(waited + STAMP_SLACK_MS), f.at))
                }
                _ => None,
            };
            let slot = match (f.timeout_ms, seen) {
                (Some(waited), Some(seen)) if seen * 4 >= waited * 3 => &mut a.unanswering,
                (Some(_), _) => &mut a.answering,
                (None, _) => &mut a.other,
            };
            // Where each failure was, for reading against the servers' logs and the observer.
            let at = i128::from(f.at) - i128::from(from);
            a.detail.push(format!(
                "n{} at {:+.3} s from the window's start: {}, the observer's longest wait then {} ms, the instance itself stalled {} ms of it",
                f.node,
                at as f64 / 1_000.0,
                f.timeout_ms.map_or("not a timeout".to_owned(), |w| {
                    let what = match f.waited.as_deref() {
                        Some("connect") => "a connection",
                        Some("feed") => "a feed read's answer handed to it",
                        _ => "an answer",
                    };
                    format!("timed out after {w} ms waiting for {what}")
                }),
                seen.map_or("–".to_owned(), |s| s.to_string()),
                f.client_stalled_ms,
            ));
            slot.0 += 1;
            slot.1 += in_window;
        }
        for o in observed {
            a.slowest_ms.push(o.slowest_ms);
            a.answers.push(o.answers);
            let in_window = Observed {
                slow: o.slow.iter().copied().filter(|&(s, _)| s >= from && s <= to).collect(),
                ..Observed::default()
            };
            a.stalls.push((o.stalls(timeout), in_window.stalls(timeout)));
        }
        a
    }
}

/// Distinct ids for the instances of one run (their rows' keys derive from them).
static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(1);

/// utime + stime of process `pid`, in clock ticks (0 if it cannot be read).
fn process_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0 };
    // Fields after the command name, which is parenthesised and may hold spaces.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name and state.
    let get = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// A superuser connection to one node's `postgres` database, reading its counters.
struct NodeCounter {
    conn: sqlx::PgConnection,
}

/// One node's counters at an instant.
#[derive(Debug, Clone, Copy)]
struct Sample {
    monitor: i64,
    all: i64,
    cpu: Option<Duration>,
}

impl NodeCounter {
    async fn open(node: &Node, primary: bool) -> Res<NodeCounter> {
        let mut conn = sqlx::PgConnection::connect(&node.url()).await?;
        if primary {
            sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                .execute(&mut conn)
                .await?;
        } else {
            // Replayed from the primary.
            let deadline = Instant::now() + Duration::from_secs(30);
            while sqlx::query("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
                .fetch_optional(&mut conn)
                .await?
                .is_none()
            {
                if Instant::now() > deadline {
                    return Err("pg_stat_statements never reached a replica".into());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(NodeCounter { conn })
    }

    async fn sample(&mut self, node: &Node) -> Res<Sample> {
        let row = sqlx::query(
            "SELECT coalesce(sum(calls) FILTER (WHERE query LIKE '%pg_is_in_recovery()%'), 0)::bigint AS monitor, \
                    coalesce(sum(calls), 0)::bigint AS all_ \
             FROM pg_stat_statements WHERE query NOT LIKE '%FROM pg_stat_statements%' \
               AND query NOT LIKE '%pg_stat_activity%'",
        )
        .fetch_one(&mut self.conn)
        .await?;
        Ok(Sample { monitor: row.get("monitor"), all: row.get("all_"), cpu: node.cpu_time() })
    }

    async fn monitor_connections(&mut self) -> Res<i64> {
        Ok(sqlx::query("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1")
            .bind(MONITOR_APPLICATION)
            .fetch_one(&mut self.conn)
            .await?
            .get("n"))
    }
}

async fn snapshot(cluster: &Cluster, counters: &mut [NodeCounter]) -> Res<Vec<Sample>> {
    let mut out = Vec::new();
    for (node, c) in cluster.nodes().iter().zip(counters.iter_mut()) {
        out.push(c.sample(node).await?);
    }
    Ok(out)
}

fn print_row(r: &Measured) {
    let k = r.shape.k() as f64;
    println!(
        "{:<18} {:<5} | {} | client CPU {:.2} %/instance | false changes {} ({} in the window) | failed probes {} ({} in the window) | busy probes {} ({} in the window) | reads {} ({:.1} % on replicas) | stale {} | failed instances {}{}",
        if PGBOUNCER.get().is_some() {
            format!("{}, replicas via PgBouncer", r.shape.label())
        } else {
            r.shape.label()
        },
        r.workload,
        r.nodes
            .iter()
            .map(|n| format!(
                "{}: monitor {:.1}/s ({:.2}/s per instance), all {:.1}/s, CPU {}, {} monitor conns",
                n.node,
                n.monitor_per_s,
                n.monitor_per_s / k,
                n.all_per_s,
                n.cpu_pct.map_or("n/a".to_owned(), |c| format!("{c:.1} %")),
                n.monitor_connections
            ))
            .collect::<Vec<_>>()
            .join("; "),
        r.client_cpu_pct,
        r.counted.changes,
        r.counted.window_changes,
        r.counted.failed_probes,
        r.counted.window_failed_probes,
        r.counted.busy_probes,
        r.counted.window_busy_probes,
        r.counted.reads,
        if r.counted.reads == 0 {
            0.0
        } else {
            r.counted.replica_reads as f64 * 100.0 / r.counted.reads as f64
        },
        r.counted.stale,
        r.counted.failed_instances,
        r.pace_pct.map_or(String::new(), |p| format!(
            " | {} writes in the window, {p:.0} % of the workload's pace",
            r.counted.window_writes
        )),
    );
    let a = &r.attributed;
    println!(
        "{:<24} observer (SELECT 1 every 20 ms per node): slowest {} ms; answers ≥ the probe timeout {} ({} in the window) | failed probes: {} ({}) timed out while the server answered no one, {} ({}) while it answered the observer, {} ({}) not timeouts",
        "",
        a.slowest_ms.iter().map(u64::to_string).collect::<Vec<_>>().join(" / "),
        a.stalls.iter().map(|s| s.0.to_string()).collect::<Vec<_>>().join(" / "),
        a.stalls.iter().map(|s| s.1.to_string()).collect::<Vec<_>>().join(" / "),
        a.unanswering.0,
        a.unanswering.1,
        a.answering.0,
        a.answering.1,
        a.other.0,
        a.other.1,
    );
    let mut detail = a.detail.clone();
    detail.sort();
    for line in detail.iter().take(40) {
        eprintln!("fleet: failed probe: {line}");
    }
    if detail.len() > 40 {
        eprintln!("fleet: failed probe: … and {} more", detail.len() - 40);
    }
}

fn to_json(rows: &[Measured]) -> String {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "shape": match r.shape { Shape::Processes(_) => "processes", Shape::OneProcess(_) => "one_process" },
                "k": r.shape.k(),
                "workload": r.workload,
                "client_cpu_pct": r.client_cpu_pct,
                "false_changes": r.counted.changes,
                "failed_probes": r.counted.failed_probes,
                "window_false_changes": r.counted.window_changes,
                "window_failed_probes": r.counted.window_failed_probes,
                "busy_probes": r.counted.busy_probes,
                "window_busy_probes": r.counted.window_busy_probes,
                "reads": r.counted.reads,
                "replica_reads": r.counted.replica_reads,
                "stale": r.counted.stale,
                "failed_instances": r.counted.failed_instances,
                "window_writes": r.counted.window_writes,
                "pace_pct": r.pace_pct,
                "failed_probes_unanswering": r.attributed.unanswering.0,
                "failed_probes_answering": r.attributed.answering.0,
                "failed_probes_other": r.attributed.other.0,
                "window_failed_probes_answering": r.attributed.answering.1,
                "nodes": r.nodes.iter().map(|n| serde_json::json!({
                    "node": n.node,
                    "monitor_per_s": n.monitor_per_s,
                    "all_per_s": n.all_per_s,
                    "cpu_pct": n.cpu_pct,
                    "monitor_connections": n.monitor_connections,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::to_string_pretty(&rows).unwrap_or_default()
}

/// The time of day, UTC, to the second (`HH:MM:SS`): what the instances' logs stamp.
fn utc_clock() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let t = now.map_or(0, |d| d.as_secs()) % 86_400;
    format!("{:02}:{:02}:{:02}", t / 3_600, t / 60 % 60, t % 60)
}

/// A CPU cgroup of their own for the instances, beside the servers' containers.
///
/// On one machine the application instances and the database servers share its cores, and the
/// kernel divides them between cgroups before processes: Docker puts every container under one
/// group (`/docker`, weight 1024 on cgroup v1), and processes outside any group each weigh as
/// much as that whole group. 200 busy instances left in the root group would take ~200/201 of
/// the machine from the three servers together whenever they all want it, and the servers would
/// stall for seconds because of where the benchmark put its clients, not because of anything a
/// fleet does (its application and database machines are not one machine). In a group of
/// their own the instances together weigh as much as the servers together, as two machines'
/// worth would. `--clients-in-root-cgroup` leaves them where they start, for comparison.
struct ClientGroup {
    dir: std::path::PathBuf,
}

impl ClientGroup {
    /// Makes the group (cgroup v1's `cpu` hierarchy, or v2 with the `cpu` controller
    /// delegated to the root's children); `None`, saying why, where that cannot be done (not
    /// root, no cgroup filesystem).
    fn create() -> Option<ClientGroup> {
        let name = format!("rwsplit-fleet-{}", std::process::id());
        let v1 = std::path::Path::new("/sys/fs/cgroup/cpu");
        let root = if v1.join("cpu.shares").is_file() {
            v1.to_path_buf()
        } else {
            let v2 = std::path::Path::new("/sys/fs/cgroup");
            let delegated = std::fs::read_to_string(v2.join("cgroup.subtree_control"))
                .is_ok_and(|c| c.split_whitespace().any(|c| c == "cpu"));
            if !delegated {
                eprintln!(
                    "fleet: no CPU cgroup for the instances (no cgroup v1 cpu hierarchy, and v2's root does not delegate cpu): they share the root group with every process"
                );
                return None;
            }
            v2.to_path_buf()
        };
        let dir = root.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => Some(ClientGroup { dir }),
            Err(e) => {
                eprintln!(
                    "fleet: no CPU cgroup for the instances ({}: {e}): they share the root group",
                    dir.display()
                );
                None
            }
        }
    }

    /// Moves process `pid` into the group.
    fn add(&self, pid: u32) -> std::io::Result<()> {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
    }
}

impl Drop for ClientGroup {
    fn drop(&mut self) {
        // Empty by now (its processes have exited); an error leaves an empty group behind.
        let _ = std::fs::remove_dir(&self.dir);
    }
}
