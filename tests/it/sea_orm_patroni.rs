//! `RoutedConnection` following a real Patroni cluster (the testkit's `PatroniCluster`) through
//! `.topology(PatroniSource)`: members added and removed without restarting the application,
//! `noloadbalance`, a planned switchover and a killed leader under load (a writer reading
//! back each acknowledged write, and readers). Each test prints a `PATRONI-ADAPTER-FIGURES`
//! line with what it measured.

use std::time::{Duration, Instant};

use rwsplit_sea_orm::advanced::PatroniSource;
use rwsplit_sea_orm::{Consistency, RoutedConfig, RoutedConnection};
use rwsplit_testkit::{MemberTags, PatroniCluster};
use sea_orm::{ConnectionTrait, Statement};

use crate::support::load::{Load, LoadConfig, Seen};
use crate::support::{count, eventually, require_itest};

/// The monitor's probe interval in these tests.
const PROBE: Duration = Duration::from_millis(200);
/// The source's poll interval in these tests.
const POLL: Duration = Duration::from_millis(500);
/// The application pools' acquire timeout in these tests (the switchover test keeps the
/// default).
const ACQUIRE: Duration = Duration::from_millis(500);

/// These tests run one at a time: each starts etcd, three Patronis and their PostgreSQLs and
/// measures timings under load, on a machine that also runs the rest of the suite. The stall
/// test of `own_sessions` takes it too: its readers and stalls, beside a switchover, slowed the
/// switchover's writes past the bound on two cores; so do the failover tests (`failover.rs`),
/// whose writer processes did the same.
pub(crate) static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn start(name: &str) -> PatroniCluster {
    require_itest();
    PatroniCluster::builder()
        .name(name)
        .members(3)
        .start()
        .await
        .unwrap_or_else(|e| panic!("a patroni cluster starts: {e}"))
}

/// A connection built from the leader's URL and the cluster's REST endpoints.
async fn connect(cluster: &PatroniCluster) -> RoutedConnection {
    connect_with(cluster, Some(ACQUIRE)).await
}

/// [`connect`], with the pools' acquire timeout `acquire` (`None`: the default, 5 s).
async fn connect_with(cluster: &PatroniCluster, acquire: Option<Duration>) -> RoutedConnection {
    let leader = cluster.wait_leader(Duration::from_secs(30)).await.expect("a leader");
    let primary = cluster.member(&leader).expect("the leader is a member").url();
    let source = PatroniSource::new(cluster.rest_urls()).expect("valid REST URLs");
    let builder = RoutedConnection::builder()
        .primary(primary)
        .topology(source.timeout(Duration::from_secs(2)))
        .topology_interval(POLL)
        .probe_interval(PROBE);
    let builder = match acquire {
        Some(acquire) => builder.acquire_timeout(acquire),
        None => builder,
    };
    builder.connect().await.expect("connects")
}

/// The testkit member's node name in the adapter's stats (`127.0.0.1:<port>/app`).
fn node_name(cluster: &PatroniCluster, member: &str) -> String {
    format!("127.0.0.1:{}/app", cluster.member(member).expect("a member").pg_port())
}

/// Nodes the router uses now (healthy in the adapter's stats).
fn up_nodes(db: &RoutedConnection) -> Vec<String> {
    db.stats()
        .nodes()
        .iter()
        .filter(|n| n.health() == rwsplit_sea_orm::advanced::Health::Up)
        .map(|n| n.name().to_owned())
        .collect()
}

fn reads_on(db: &RoutedConnection, name: &str) -> u64 {
    db.stats().node(name).map_or(0, |n| n.reads())
}

fn writes_on(db: &RoutedConnection, name: &str) -> u64 {
    db.stats().node(name).map_or(0, |n| n.writes())
}

fn select_one(db: &RoutedConnection) -> Statement {
    Statement::from_string(db.get_database_backend(), "SELECT 1 AS one")
}

/// Runs `n` plain reads; how many failed.
async fn reads(db: &RoutedConnection, n: usize) -> usize {
    let mut failed = 0;
    for _ in 0..n {
        // Each read in a task of its own, like requests: a task that reads back to back stays
        // on the replica of its last read until that read is bounded by a position sample
        // (monotonic reads, the default `Consistency::Session`).
        let db = db.clone();
        let read = tokio::spawn(async move { db.query_one_raw(select_one(&db)).await.is_err() });
        if read.await.expect("the read's task") {
            failed += 1;
        }
    }
    failed
}

/// Waits (up to `max`) until `check` holds; how long that took, or a panic naming `what`.
async fn within(what: &str, max: Duration, mut check: impl FnMut() -> bool) -> Duration {
    eventually(max, || {
        let ok = check();
        async move { ok }
    })
    .await
    .unwrap_or_else(|| panic!("{what}: not within {max:?}"))
}

/// Waits until every member of `cluster` is a healthy node of `db`.
async fn all_in_rotation(cluster: &PatroniCluster, db: &RoutedConnection) {
    let names: Vec<String> =
        cluster.members().iter().map(|m| node_name(cluster, m.name())).collect();
    within("every member in rotation", Duration::from_secs(15), || {
        let up = up_nodes(db);
        names.iter().all(|n| up.contains(n))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_added_and_removed_by_patroni_follow_without_a_restart() {
    let _serial = SERIAL.lock().await;
    let cluster = start("pat-members").await;
    let db = connect(&cluster).await;
    all_in_rotation(&cluster, &db).await;

    // A member added by Patroni serves reads, the application untouched.
    let asked = Instant::now();
    let added = cluster.add_member(MemberTags::none()).await.expect("a member added");
    let patroni_add = asked.elapsed();
    let added_name = node_name(&cluster, &added);
    let streaming = Instant::now();
    let to_rotation = within("the new member in rotation", Duration::from_secs(15), || {
        up_nodes(&db).contains(&added_name)
    })
    .await;
    let mut failed = 0;
    let to_reads = {
        let started = Instant::now();
        while reads_on(&db, &added_name) == 0 {
            assert!(started.elapsed() < Duration::from_secs(10), "the new member got no read");
            failed += reads(&db, 10).await;
        }
        streaming.elapsed()
    };

    // A member added with `noloadbalance` joins but never serves a read.
    let quiet = cluster.add_member(MemberTags::none().noloadbalance(true)).await.expect("added");
    let quiet_name = node_name(&cluster, &quiet);
    within("the noloadbalance member probed", Duration::from_secs(15), || {
        up_nodes(&db).contains(&quiet_name)
    })
    .await;
    failed += reads(&db, 300).await;
    let quiet_reads = reads_on(&db, &quiet_name);
    assert_eq!(quiet_reads, 0, "a noloadbalance member served reads");

    // The tag set on a serving member at run time: no reads after the next poll.
    // Patroni publishes the new tags at its next HA loop; the source sees them at its next poll.
    let tagged = Instant::now();
    cluster.set_tags(&added, MemberTags::none().noloadbalance(true)).await.expect("tagged");
    // Three batches in a row without a read on it: one batch can skip a serving member by the
    // balancer's chance, three in a row (150 reads) practically cannot. A batch counts only if
    // the member could have served it: up, and no node passed over as stalled meanwhile (on a
    // busy machine a replica slow to answer is passed over for up to a second, longer than a
    // batch, and that is not the tag).
    let mut quiet_batches = 0;
    while quiet_batches < 3 {
        let before = reads_on(&db, &added_name);
        let skips = db.stats().hedges().stalled_skips;
        failed += reads(&db, 50).await;
        let could_serve =
            up_nodes(&db).contains(&added_name) && db.stats().hedges().stalled_skips == skips;
        let quiet = reads_on(&db, &added_name) == before;
        quiet_batches = if quiet && could_serve { quiet_batches + 1 } else { 0 };
        assert!(tagged.elapsed() < Duration::from_secs(15), "the tag never took effect");
    }
    let tag_effect = tagged.elapsed();
    let before = reads_on(&db, &added_name);
    failed += reads(&db, 300).await;
    assert_eq!(reads_on(&db, &added_name), before, "a member tagged noloadbalance still read");
    cluster.set_tags(&added, MemberTags::none()).await.expect("untagged");

    // A member removed: slow reads in flight on every replica finish (where its server stops
    // under them, they are retried elsewhere), and it leaves the adapter's nodes.
    let slow: Vec<_> = (0..6)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                let sql = Statement::from_string(
                    db.get_database_backend(),
                    "SELECT 1 AS one FROM pg_sleep(1)",
                );
                db.query_one_raw(sql).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let asked = Instant::now();
    cluster.remove_member(&added).await.expect("removed");
    let patroni_remove = asked.elapsed();
    let gone = within("the removed member gone from the adapter", POLL * 4, || {
        db.stats().node(&added_name).is_none()
    })
    .await;
    let mut slow_failed = 0;
    for r in slow {
        if r.await.expect("the task ran").is_err() {
            slow_failed += 1;
        }
    }
    failed += reads(&db, 100).await;
    assert!(db.stats().node(&added_name).is_none(), "the removed member came back");
    println!(
        "PATRONI-ADAPTER-FIGURES scenario=members patroni_add={patroni_add:?} \
         to_rotation_after_streaming={to_rotation:?} first_read_after_streaming={to_reads:?} \
         noloadbalance_reads={quiet_reads} tag_effect={tag_effect:?} patroni_remove={patroni_remove:?} \
         gone_after_removal={gone:?} in_flight_reads_failed={slow_failed} reads_failed={failed}"
    );
    // Within a poll and a few probes of streaming; a ban (5 s) for the probes it failed before
    // its server took connections would exceed it.
    let join_bound = POLL + PROBE * 3 + Duration::from_secs(1);
    assert!(to_rotation <= join_bound, "joined {to_rotation:?} after streaming > {join_bound:?}");
    assert_eq!(slow_failed, 0, "in-flight reads failed");
    assert_eq!(failed, 0, "reads failed");
}

/// The lag bound of the next test: 1 MiB, the figure HAProxy setups put in Patroni's
/// `GET /replica?lag=1MB` health check and this testkit's `maximum_lag_on_failover`.
const LAG_BOUND: u64 = 1 << 20;

/// Member `name`'s lag as Patroni reports it in `/cluster` (bytes), if it reports a number.
async fn patroni_lag(cluster: &PatroniCluster, name: &str) -> Option<u64> {
    let v = cluster.cluster_json().await.ok()?;
    let member = v["members"].as_array()?.iter().find(|m| m["name"] == name)?;
    member["lag"].as_u64()
}

/// Polls Patroni's lag of `name` until `check` holds (up to `max`): how long, and the figure.
async fn patroni_lag_until(
    cluster: &PatroniCluster,
    name: &str,
    max: Duration,
    check: impl Fn(u64) -> bool,
) -> (Duration, u64) {
    let started = Instant::now();
    loop {
        if let Some(lag) = patroni_lag(cluster, name).await.filter(|&l| check(l)) {
            return (started.elapsed(), lag);
        }
        assert!(started.elapsed() < max, "Patroni's lag of {name} not as expected within {max:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A member that falls behind (its WAL receiver frozen while the leader writes about 6 MiB)
/// is reported lagging by Patroni, leaves rwsplit's read rotation under a 1 MiB
/// `max_replica_lag`, and comes back once it has caught up; no read fails meanwhile.
///
/// rwsplit decides on its own measure (the leader's position minus the member's *replayed*
/// one, every probe), not on Patroni's (minus the *received* one, refreshed every
/// `loop_wait`): it is at least as strict and fresher, and this test shows both seeing the
/// same event.
///
/// The connection is configured the way an operator would, from environment variables
/// (`RoutedConfig::from_vars`, the same path as `from_env`): the topology source, the probe
/// interval and the lag bound all come from there, so this also checks that `RWSPLIT_TOPOLOGY_*`
/// and `RWSPLIT_MAX_REPLICA_LAG_BYTES` work end to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_patroni_reports_lagging_leaves_rotation_and_comes_back() {
    let _serial = SERIAL.lock().await;
    let cluster = start("pat-lag").await;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await.expect("a leader");
    let vars = [
        ("DATABASE_URL", cluster.member(&leader).expect("the leader is a member").url()),
        ("RWSPLIT_TOPOLOGY_PATRONI", cluster.rest_urls().join(",")),
        ("RWSPLIT_TOPOLOGY_INTERVAL", format!("{}ms", POLL.as_millis())),
        ("RWSPLIT_PROBE_INTERVAL", format!("{}ms", PROBE.as_millis())),
        ("RWSPLIT_MAX_REPLICA_LAG_BYTES", LAG_BOUND.to_string()),
    ];
    let config = RoutedConfig::from_vars(vars).expect("a valid configuration");
    let db = config.connect().await.expect("connects");
    all_in_rotation(&cluster, &db).await;
    let replicas: Vec<String> =
        cluster.members().iter().map(|m| m.name().to_owned()).filter(|n| *n != leader).collect();
    let (lagger, other) = (&replicas[0], &replicas[1]);
    let (lagger_node, other_node) = (node_name(&cluster, lagger), node_name(&cluster, other));

    // The writes go to the leader on a connection of their own: the routed connection's
    // read-your-writes would otherwise keep this task's reads off a replica that lacks them,
    // and the test would pass for the wrong reason.
    let leader_url = cluster.member(&leader).expect("the leader is a member").url();
    let mut writer = crate::support::connect(&leader_url).await;
    crate::support::exec(&mut writer, "CREATE TABLE lag_fill (id bigint, pad text)")
        .await
        .expect("table created");
    cluster.wait_caught_up(Duration::from_secs(20)).await.expect("replicas caught up");
    let mut failed = reads(&db, 200).await;
    assert!(reads_on(&db, &lagger_node) > 0, "the member served reads before it lagged");

    cluster.hold_streaming(lagger).expect("its WAL receiver frozen");
    crate::support::exec(
        &mut writer,
        "INSERT INTO lag_fill SELECT g, repeat('x', 200) FROM generate_series(1, 25000) g",
    )
    .await
    .expect("about 6 MiB of WAL written");
    let wrote = Instant::now();
    let node_lag = |db: &RoutedConnection| {
        db.stats().node(&lagger_node).and_then(|n| n.lag().bytes()).unwrap_or(0)
    };
    within("rwsplit measures the lag", Duration::from_secs(10), || node_lag(&db) > LAG_BOUND).await;
    let rwsplit_saw = wrote.elapsed();
    let (_, patroni_lagging) =
        patroni_lag_until(&cluster, lagger, Duration::from_secs(15), |l| l > LAG_BOUND).await;
    let patroni_saw = wrote.elapsed();
    let measured = node_lag(&db);
    // The fill lagged the other replica too, for as long as it took to replay it: the reads
    // below are counted once rwsplit has seen it back within the bound (under load that takes
    // longer than the reads do, and they would all have gone to the leader).
    within("the other replica back within the bound", Duration::from_secs(20), || {
        db.stats().node(&other_node).and_then(|n| n.lag().bytes()).is_some_and(|l| l <= LAG_BOUND)
    })
    .await;

    // The lagging member serves none of the reads; the fresh one serves some of a round of
    // 300: at most three rounds, each once rwsplit sees it within the bound (on a busy machine
    // a probe may fail, or a sample find it back over the bound, and it sits out a while).
    let (mut lagging_reads, mut other_reads) = (0, 0);
    for round in 0..3 {
        if round > 0 {
            within("the other replica back within the bound", Duration::from_secs(20), || {
                db.stats()
                    .node(&other_node)
                    .and_then(|n| n.lag().bytes())
                    .is_some_and(|l| l <= LAG_BOUND)
            })
            .await;
        }
        let (lagger_before, other_before) =
            (reads_on(&db, &lagger_node), reads_on(&db, &other_node));
        failed += reads(&db, 300).await;
        lagging_reads += reads_on(&db, &lagger_node) - lagger_before;
        other_reads = reads_on(&db, &other_node) - other_before;
        if other_reads > 0 {
            break;
        }
    }

    cluster.resume_streaming(lagger).expect("its WAL receiver continued");
    let resumed = Instant::now();
    let (patroni_caught_up, _) =
        patroni_lag_until(&cluster, lagger, Duration::from_secs(20), |l| l <= LAG_BOUND).await;
    let back = {
        let before = reads_on(&db, &lagger_node);
        while reads_on(&db, &lagger_node) == before {
            assert!(resumed.elapsed() < Duration::from_secs(20), "the member never came back");
            failed += reads(&db, 10).await;
        }
        resumed.elapsed()
    };
    println!(
        "PATRONI-ADAPTER-FIGURES scenario=lagging-member bound={LAG_BOUND} \
         patroni_lag={patroni_lagging} patroni_saw={patroni_saw:?} rwsplit_lag={measured} \
         rwsplit_out_of_rotation={rwsplit_saw:?} reads_on_lagging={lagging_reads}/300 \
         reads_on_other={other_reads}/300 patroni_caught_up={patroni_caught_up:?} \
         back_in_rotation={back:?} probe_interval={PROBE:?} reads_failed={failed}"
    );
    assert_eq!(lagging_reads, 0, "a member lagging past the bound served reads");
    assert!(other_reads > 0, "the fresh replica served the reads");
    assert_eq!(failed, 0, "reads failed");
}

/// Acknowledged writes not on `url` (the leader after the event).
async fn lost(seen: &Seen, url: &str, table: &str) -> usize {
    let mut missing = 0;
    let ids: Vec<i64> = seen.acked.iter().map(|(id, _)| *id).collect();
    for chunk in ids.chunks(500) {
        let list = chunk.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        let found = count(url, &format!("{table} WHERE id IN ({list})")).await.unwrap_or(0);
        missing += chunk.len().saturating_sub(usize::try_from(found).unwrap_or(0));
    }
    missing
}

fn load_config(table: &'static str) -> LoadConfig {
    LoadConfig {
        table,
        readers: vec![Consistency::Eventual, Consistency::Eventual],
        write_timeout: Some(Duration::from_secs(20)),
        wait_for_progress: true,
    }
}

/// Time from `from` until the first write acknowledged on `leader`'s node after it.
async fn writes_resume(
    db: &RoutedConnection,
    leader: &str,
    from: Instant,
    max: Duration,
) -> Duration {
    let before = writes_on(db, leader);
    within("writes on the new leader", max.saturating_sub(from.elapsed()), || {
        writes_on(db, leader) > before
    })
    .await;
    from.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_switchover_loses_no_write_and_writes_follow_the_new_leader() {
    let _serial = SERIAL.lock().await;
    crate::support::tracing_baseline();
    let cluster = start("pat-switch-load").await;
    // The default acquire timeout (5 s): a write already waiting for a connection to the old
    // leader when it steps down (its port refuses while it restarts as a replica) is given up
    // unsent once the monitor sees another leader, and runs there; it does not wait it out.
    let db = connect_with(&cluster, None).await;
    let table = "switch_load";
    let load = Load::start_with(&db, load_config(table), async {
        cluster.wait_caught_up(Duration::from_secs(20)).await.expect("replicas have the table");
    })
    .await;
    let old = cluster.leader().await.unwrap().expect("a leader");
    let candidate =
        cluster.members().into_iter().map(|m| m.name().to_owned()).find(|n| *n != old).unwrap();
    let asked = Instant::now();
    let new = cluster.switchover(Some(&candidate)).await.expect("switched over");
    let patroni = asked.elapsed();
    let new_name = node_name(&cluster, &new);
    let resumed = writes_resume(&db, &new_name, asked, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen = load.finish().await;
    let lost = lost(&seen, &cluster.member(&new).unwrap().url(), table).await;
    let after_patroni = resumed.saturating_sub(patroni);
    println!(
        "PATRONI-ADAPTER-FIGURES scenario=switchover patroni_switchover={patroni:?} \
         writes_resumed_on_new_leader={resumed:?} after_patroni={after_patroni:?} \
         probe_interval={PROBE:?} acked={} writes_lost={lost} writes_failed={} reads_ok={} \
         reads_failed={} ryw_stale={}",
        seen.acked.len(),
        seen.writes_failed,
        seen.reads_ok,
        seen.reads_failed,
        seen.ryw_stale,
    );
    assert_eq!(lost, 0, "acknowledged writes lost in a planned switchover");
    assert_eq!(seen.ryw_stale, 0, "a write not read back");
    // One probe interval, plus one for the jitter and the load's own round trips, plus a
    // margin for a busy machine; no acquire timeout (see above).
    let bound = PROBE * 2 + Duration::from_millis(1500);
    assert!(after_patroni <= bound, "{after_patroni:?} > {bound:?}");
}

async fn leader_killed(synchronous: bool) {
    let _serial = SERIAL.lock().await;
    let name = if synchronous { "pat-kill-sync" } else { "pat-kill-async" };
    let cluster = start(name).await;
    if synchronous {
        // Turned on once the cluster runs (Patroni 3.0.2 can fail its bootstrap with it on).
        cluster.set_synchronous(true).await.expect("synchronous mode on");
        cluster.wait_sync_standby(Duration::from_secs(30)).await.expect("a sync standby");
    }
    let db = connect(&cluster).await;
    let table = "kill_load";
    let load = Load::start_with(&db, load_config(table), async {
        cluster.wait_caught_up(Duration::from_secs(20)).await.expect("replicas have the table");
    })
    .await;
    let killed_at = Instant::now();
    let old = cluster.kill_leader().await.expect("killed");
    let last_ack_before = load.last_ack();
    let new = cluster.wait_writable(Duration::from_secs(60)).await.expect("a new leader");
    assert_ne!(new, old);
    let patroni = killed_at.elapsed();
    let new_name = node_name(&cluster, &new);
    let resumed = writes_resume(&db, &new_name, killed_at, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen = load.finish().await;
    let lost = lost(&seen, &cluster.member(&new).unwrap().url(), table).await;
    let window = last_ack_before.map_or(Duration::ZERO, |t| t.saturating_duration_since(killed_at));
    println!(
        "PATRONI-ADAPTER-FIGURES scenario=leader-killed synchronous={synchronous} \
         patroni_new_leader_writable={patroni:?} writes_resumed_on_new_leader={resumed:?} \
         after_patroni={:?} acked={} writes_lost={lost} writes_failed={} writes_timed_out={} \
         reads_ok={} reads_failed={} last_ack_after_kill={window:?}",
        resumed.saturating_sub(patroni),
        seen.acked.len(),
        seen.writes_failed,
        seen.writes_timed_out,
        seen.reads_ok,
        seen.reads_failed,
    );
    if synchronous {
        assert_eq!(lost, 0, "synchronous mode lost acknowledged writes");
    }
    assert!(resumed.saturating_sub(patroni) <= PROBE * 2 + Duration::from_secs(2), "{resumed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_followed_and_sync_mode_loses_nothing() {
    leader_killed(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_followed_and_the_async_loss_is_measured() {
    leader_killed(false).await;
}

/// A DNS name that resolves to the replicas (here `localhost`: 127.0.0.1, and ::1 where it
/// resolves, on which nothing listens so it never joins): each address a replica, added
/// without configuring it; the primary, which the name never lists, stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_source_adds_each_address_as_a_replica() {
    require_itest();
    let cluster = rwsplit_testkit::Cluster::builder()
        .name("dns-source")
        .replicas(1)
        .start()
        .await
        .expect("a cluster starts");
    let port = cluster.replicas()[0].port();
    let db = RoutedConnection::builder()
        .primary(cluster.primary_url())
        .topology(rwsplit_sea_orm::advanced::DnsSource::new(format!("localhost:{port}")))
        .topology_interval(POLL)
        .probe_interval(PROBE)
        .connect()
        .await
        .expect("connects");
    let replica = db
        .stats()
        .nodes()
        .iter()
        .map(|n| n.name().to_owned())
        .find(|n| n.starts_with(&format!("127.0.0.1:{port}/")))
        .expect("the replica's address became a node");
    let joined = within("the replica in rotation", Duration::from_secs(10), || {
        up_nodes(&db).contains(&replica)
    })
    .await;
    let failed = reads(&db, 50).await;
    let on_replica = reads_on(&db, &replica);
    println!(
        "PATRONI-ADAPTER-FIGURES scenario=dns joined={joined:?} reads_on_replica={on_replica}/50 \
         reads_failed={failed} nodes={:?}",
        db.stats().nodes().iter().map(|n| n.name().to_owned()).collect::<Vec<_>>()
    );
    assert!(on_replica > 0, "reads reached the replica found by name");
    assert_eq!(failed, 0);
    assert_eq!(db.stats().nodes()[0].role(), "primary", "the primary stays");
}
