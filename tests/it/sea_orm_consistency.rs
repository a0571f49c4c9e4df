//! Read-your-writes by replication position, under real injected lag, on PostgreSQL and
//! MariaDB: the three scopes (the writing task, a `Session` carried across tasks, a token
//! carried as text to another connection — another process as far as the adapter knows), the
//! catch-up wait, the other consistency levels, and a token from before a failover.

use std::time::{Duration, Instant};

use rstest::rstest;
use rwsplit_sea_orm::{Consistency, RoutedConnection, Staleness};
use rwsplit_testkit::{Cluster, DbKind};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Set};
use sea_orm_migration::MigratorTrait;

use crate::blog::{author, migration::Migrator};
use crate::support::{eventually, own_cluster, served};

/// A cluster with the blog schema on every node, and a routed connection to it that probes
/// often (so replicas that have replayed a token are seen soon).
async fn setup(
    kind: DbKind,
    name: &str,
) -> (Cluster, rwsplit_testkit::TestDatabase, RoutedConnection) {
    let cluster = own_cluster(kind, name, 2).await;
    let tdb = cluster.create_database(name).await.unwrap();
    let db = connect(&tdb).await;
    Migrator::up(db.primary(), None).await.unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();
    (cluster, tdb, db)
}

/// [`setup`], with the monitor probing at its default interval (500 ms): a read's floor then
/// comes from the position feed a read on the primary asks for, not from a full probe.
async fn setup_default_probes(
    kind: DbKind,
    name: &str,
) -> (Cluster, rwsplit_testkit::TestDatabase, RoutedConnection) {
    let cluster = own_cluster(kind, name, 2).await;
    let tdb = cluster.create_database(name).await.unwrap();
    let db = RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replicas(tdb.replica_urls())
        .connect()
        .await
        .unwrap();
    Migrator::up(db.primary(), None).await.unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();
    (cluster, tdb, db)
}

async fn connect(tdb: &rwsplit_testkit::TestDatabase) -> RoutedConnection {
    RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replicas(tdb.replica_urls())
        .probe_interval(Duration::from_millis(100))
        .connect()
        .await
        .unwrap()
}

/// A connection to `primary` and `tdb`'s replicas whose monitor probes every 200 ms and gives a
/// probe 500 ms: faults are seen within a second.
async fn connect_watched(primary: String, tdb: &rwsplit_testkit::TestDatabase) -> RoutedConnection {
    RoutedConnection::builder()
        .primary(primary)
        .replicas(tdb.replica_urls())
        .monitor(
            rwsplit_sea_orm::advanced::MonitorConfig::default()
                .probe_interval(Duration::from_millis(200))
                .probe_timeout(Duration::from_millis(500)),
        )
        .connect()
        .await
        .unwrap()
}

/// Whether `read` returns the author `id` named `name`.
fn fresh(found: Result<Option<author::Model>, sea_orm::DbErr>, name: &str) -> bool {
    found.unwrap().is_some_and(|a| a.name == name)
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn the_writing_task_reads_its_write_and_replicas_serve_it_once_they_have_it(
    #[case] kind: DbKind,
) {
    let (cluster, _tdb, db) = setup(kind, "ryw_task").await;
    for r in cluster.replicas() {
        r.pause_replay().await.unwrap();
    }
    let task = tokio::spawn({
        let db = db.clone();
        async move {
            // On MariaDB, ActiveModel::insert is INSERT then SELECT by id through the same
            // handle: with both replicas frozen, that re-read must reach the primary.
            let mut stale = 0;
            let mut ids = Vec::new();
            for i in 0..10 {
                let name = format!("task-{i}");
                let (a, s) = served(&db, || {
                    author::ActiveModel { name: Set(name.clone()), ..Default::default() }
                        .insert(&db)
                })
                .await;
                let a = a.expect("insert returns the row it wrote");
                assert!(s.primary_only(), "{s:?}");
                let (found, s) = served(&db, || author::Entity::find_by_id(a.id).one(&db)).await;
                stale += usize::from(!fresh(found, &name));
                assert!(s.primary_only(), "no replica has the write: {s:?}");
                ids.push(a.id);
            }
            (stale, ids)
        }
    });
    let (stale, ids) = task.await.unwrap();
    assert_eq!(stale, 0, "stale reads in the writing task");

    // Another task has no token: it reads a replica, which has not replayed the writes.
    let other = db.clone();
    let last = *ids.last().unwrap();
    let seen = tokio::spawn(async move { author::Entity::find_by_id(last).one(&other).await })
        .await
        .unwrap();
    assert_eq!(seen.unwrap(), None, "a frozen replica cannot have the row: the lag is real");

    // Once replicas replay, the writing task's reads go to them: the token is exact, not a
    // time window that pins the primary.
    for r in cluster.replicas() {
        r.resume_replay().await.unwrap();
    }
    let (token, on_replica) = tokio::spawn({
        let db = db.clone();
        async move {
            author::ActiveModel { name: Set("after".into()), ..Default::default() }
                .insert(&db)
                .await
                .unwrap();
            let token = db.token().await.unwrap().expect("a token after a write");
            let took = eventually(Duration::from_secs(10), || {
                let db = db.clone();
                async move {
                    let (r, s) = served(&db, || author::Entity::find_by_id(last).one(&db)).await;
                    r.unwrap().is_some() && s.replicas_only()
                }
            })
            .await;
            (token, took)
        }
    })
    .await
    .unwrap();
    let took = on_replica.expect("the writer's reads return to replicas once they replay");
    eprintln!(
        "{kind}: token {token}; reads back on replicas {} ms after the write",
        took.as_millis()
    );
    // (Once every replica has replayed a task's token, the monitor drops it: those reads are
    // plain reads, not counted as token reads.)
    // The reads after the writes went to the primary as token reads. (A write's position is
    // read only while a replica could serve the next read: once the monitor measures the
    // paused replicas behind, the writes read none.)
    let ryw = db.stats().read_your_writes();
    assert!(ryw.primary_reads >= 10, "{ryw:?}");
}

/// Monotonic reads without pinning: a session's read on the primary (its write not
/// yet replayed anywhere) is bounded by the primary's next position sample, which the read asks
/// for as it ends, so the session's next read, 150 ms after the replicas resume, finds a replica
/// known to be that far and reads there, on its first try. The monitor probes at its default
/// interval (500 ms): the full probes alone would rarely bound the primary read and then show a
/// replica past it within those 150 ms.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn a_read_on_the_primary_does_not_keep_the_next_read_there(#[case] kind: DbKind) {
    let (cluster, _tdb, db) = setup_default_probes(kind, "floor_asked").await;
    let mut on_replica = 0;
    for i in 0..5 {
        // The replicas hold the write back: the session's read of it can only be the primary's.
        for r in cluster.replicas() {
            r.pause_replay().await.unwrap();
        }
        let (name, session) = (format!("floor-{i}"), db.session());
        let a = author::ActiveModel { name: Set(name.clone()), ..Default::default() }
            .insert(&session)
            .await
            .unwrap();
        let (found, s) = served(&db, || author::Entity::find_by_id(a.id).one(&session)).await;
        assert!(fresh(found, &name), "round {i}: the session's write");
        assert!(s.primary_only(), "round {i}: no replica has the write yet: {s:?}");
        for r in cluster.replicas() {
            r.resume_replay().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        let (found, s) = served(&db, || author::Entity::find_by_id(a.id).one(&session)).await;
        assert!(fresh(found, &name), "round {i}: the session's write, again");
        on_replica += usize::from(s.replicas_only());
    }
    assert_eq!(on_replica, 5, "each read after a read on the primary found a replica");
}

/// A read right after a read on the primary, before a sample of the primary bounds that read,
/// reads the primary's position first so that it may wait on a replica: a cost of the read on
/// the primary, counted as a floor read (`floors_read`), apart from the write's own position
/// read (`positions_captured`), which is at most one per write however the round goes.
/// PostgreSQL only: the counting is the same for both products, and a MariaDB replica whose
/// replay is stopped reports no lag (`Seconds_Behind_Master` is NULL), which the monitor soon
/// estimates past the wait, so the second read rightly goes to the primary with no floor read.
#[tokio::test]
async fn a_floor_read_is_counted_apart_from_the_writes_position_reads() {
    const ROUNDS: u64 = 10;
    let (cluster, _tdb, db) = setup_default_probes(DbKind::Postgres, "floor_counted").await;
    let mut floors = 0;
    for i in 0..ROUNDS {
        for r in cluster.replicas() {
            r.pause_replay().await.unwrap();
        }
        let (name, session) = (format!("floor-counted-{i}"), db.session());
        let start = db.stats().read_your_writes();
        let a = author::ActiveModel { name: Set(name.clone()), ..Default::default() }
            .insert(&session)
            .await
            .unwrap();
        let (found, s) = served(&db, || author::Entity::find_by_id(a.id).one(&session)).await;
        assert!(fresh(found, &name), "round {i}: the session's write");
        assert!(s.primary_only(), "round {i}: no replica has the write yet: {s:?}");
        // At once: no sample of the primary sent since that read ended is in yet.
        let before = db.stats().read_your_writes();
        let found = author::Entity::find_by_id(a.id).one(&session).await;
        let after = db.stats().read_your_writes();
        assert!(fresh(found, &name), "round {i}: the session's write, again");
        floors += after.floors_read - before.floors_read;
        let captured = after.positions_captured - start.positions_captured;
        assert!(captured <= 1, "round {i}: {captured} position reads for one write: {after:?}");
        for r in cluster.replicas() {
            r.resume_replay().await.unwrap();
        }
    }
    // A round whose second read comes after the monitor has seen the paused replicas further
    // behind than the wait sends it to the primary with no floor read: some rounds do.
    eprintln!("floor reads: {floors} of {ROUNDS}");
    assert!(floors >= 1, "the second reads read the primary's position first: {floors}");
}

/// A session writing one statement at a time keeps one connection to the primary (a fleet's
/// primary would hold one more backend per instance): the write is left to the primary's
/// samples 10 ms after it, with no position read, and its token asked for 100 ms later names
/// the primary (or carries a sample's position, or reads the position on the write's
/// connection back in the pool, not on a second one).
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn a_session_writing_one_statement_at_a_time_keeps_one_primary_connection(
    #[case] kind: DbKind,
) {
    let (_cluster, tdb, setup) = setup(kind, "capture_conn").await;
    drop(setup);
    // A connection of its own, after the migrations: its primary pool has opened nothing yet.
    let db = connect(&tdb).await;
    let session = db.session();
    for i in 0..10 {
        // One statement, no read back (MariaDB's `insert` reads its row back on the primary).
        let sql = format!("INSERT INTO author (name) VALUES ('own-{i}')");
        session.execute_unprepared(&sql).await.unwrap();
        // The pool has the write's connection back before the token is asked for.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(session.token().await.unwrap().is_some(), "a token after write {i}");
    }
    let ryw = db.stats().read_your_writes();
    assert!(ryw.positions_captured <= 10 && ryw.capture_failures == 0, "{ryw:?}");
    let opened = if kind == DbKind::Postgres {
        db.get_postgres_connection_pool().size()
    } else {
        db.get_mysql_connection_pool().size()
    };
    assert_eq!(opened, 1, "ten writes and their tokens on one connection");
}

/// A write's position costs one round trip on the primary, not two: it is read on a connection
/// idle in the primary's pool, which the pool hands out without its check (a ping before each
/// use, then the `before_acquire` hook, counted here). The session asks for its token right
/// after each write, as a web response does, while the write's own connection is still being
/// given back; a second connection, opened before and idle, serves the position read.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn a_writes_position_is_read_without_the_pools_check(#[case] kind: DbKind) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (_cluster, tdb, setup) = setup(kind, "capture_unchecked").await;
    drop(setup);
    let checked = Arc::new(AtomicUsize::new(0));
    let mut primary = sea_orm::ConnectOptions::new(tdb.primary_url());
    let count = Arc::clone(&checked);
    match kind {
        DbKind::Postgres => primary.map_sqlx_postgres_before_acquire(move |_, _| {
            count.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(true) })
        }),
        _ => primary.map_sqlx_mysql_before_acquire(move |_, _| {
            count.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(true) })
        }),
    };
    let db = RoutedConnection::builder()
        .primary(primary)
        .replicas(tdb.replica_urls())
        .probe_interval(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    // Two connections open, then idle (each given back and pinged).
    let one = || db.primary().execute_unprepared("SELECT 1");
    let (a, b) = tokio::join!(one(), one());
    a.unwrap();
    b.unwrap();
    let session = db.session();
    const WRITES: usize = 5;
    for i in 0..WRITES {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let before = checked.load(Ordering::SeqCst);
        let sql = format!("INSERT INTO author (name) VALUES ('unchecked-{i}')");
        session.execute_unprepared(&sql).await.unwrap();
        let wrote = checked.load(Ordering::SeqCst);
        assert!(session.token().await.unwrap().is_some(), "a token after write {i}");
        let after = checked.load(Ordering::SeqCst);
        assert_eq!(wrote - before, 1, "write {i}: the write's own connection, checked");
        assert_eq!(after, wrote, "write {i}: its position read on an idle connection, unchecked");
    }
    // One position read per token, unless the token came more than 10 ms after its write
    // (a loaded machine): the write was then left to the primary's samples, and the token
    // names the primary without a read.
    let ryw = db.stats().read_your_writes();
    let (read, failed) = (ryw.positions_captured, ryw.capture_failures);
    assert!(read >= 1 && read <= WRITES as u64 && failed == 0, "{ryw:?}");
    // Their time is counted: each read is a round trip on an idle connection of a local server.
    let mean = ryw.position_read_time / u32::try_from(read).unwrap();
    assert!(mean > Duration::ZERO && mean < Duration::from_millis(250), "{ryw:?}");
}

/// What a task's scope (read-your-writes without the web layer) reads of a write's position,
/// with the replicas current and with every replica further behind than a read waits
/// (PostgreSQL 200 ms, MariaDB its delay's whole second; another client writing beside keeps
/// them behind): at most one position read per write, by the task's first read after it
/// (the task a write is left to 10 ms after it reads none: the write is left to the primary's
/// samples, and the test's read 20 ms after it reads the position first unless a sample
/// already bounds the write), a few more at most, none that no read could use while the
/// replicas are behind, and no read misses its task's write.
#[rstest]
#[case::postgres(DbKind::Postgres, Duration::from_millis(200))]
#[case::mariadb(DbKind::MariaDb, Duration::from_secs(1))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_reads_at_most_one_position_per_write_and_no_read_is_stale(
    #[case] kind: DbKind,
    #[case] delay: Duration,
) {
    const PAIRS: u64 = 20;
    let (cluster, tdb, db) = setup(kind, "task_write_cost").await;
    // `PAIRS` tasks, one after another, each writing, pausing past the moment its write's
    // position is left to a task of its own, and reading its write: (position reads from the
    // write to the read, position reads by the reads, stale reads).
    let pairs = |tag: &'static str| {
        let db = db.clone();
        async move {
            let read = || db.stats().read_your_writes().positions_captured;
            let (mut writes, mut reads, mut stale) = (0, 0, 0);
            for i in 0..PAIRS {
                let name = format!("{tag}-{i}");
                let task = db.clone();
                let before = read();
                let (write, by_read, is_stale) = tokio::spawn(async move {
                    let db = task;
                    let read = || db.stats().read_your_writes().positions_captured;
                    let a = author::ActiveModel { name: Set(name.clone()), ..Default::default() }
                        .insert(&db)
                        .await
                        .unwrap();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let before_read = read();
                    let found = author::Entity::find_by_id(a.id).one(&db).await;
                    (before_read, read() - before_read, !fresh(found, &name))
                })
                .await
                .unwrap();
                writes += write - before;
                reads += by_read;
                stale += usize::from(is_stale);
            }
            (writes, reads, stale)
        }
    };
    let (current, reads_current, stale_current) = pairs("current").await;
    for r in cluster.replicas() {
        r.set_apply_delay(delay).await.unwrap();
    }
    // Another client keeps writing: the replicas stay behind between this test's pairs.
    let beside = crate::support::writer_beside(&tdb.primary_url()).await;
    // Writes until the monitor has seen both replicas further behind than a read waits.
    crate::support::write_until_replicas_behind(&db, || {
        let db = db.clone();
        async move {
            let warm = author::ActiveModel { name: Set("warm".into()), ..Default::default() };
            warm.insert(&db).await.unwrap();
        }
    })
    .await;
    let (late, reads_late, stale_late) = pairs("late").await;
    drop(beside);
    eprintln!(
        "TASK-WRITE-COST {kind} position reads per write: {:.2} with replicas current, {:.2} \
         with replicas behind (per read: {:.2} and {:.2}); stale reads {stale_current} and \
         {stale_late}",
        current as f64 / PAIRS as f64,
        late as f64 / PAIRS as f64,
        reads_current as f64 / PAIRS as f64,
        reads_late as f64 / PAIRS as f64,
    );
    assert_eq!((stale_current, stale_late), (0, 0), "no read misses its write: {:?}", db.stats());
    // One position read per write, by the task's first read after it (MariaDB's `insert`
    // reads its row back, within the write's window), and a few more: a read reads the
    // primary's position only to leave the primary after a read there that no sample bounds
    // yet (on the primary while the monitor judges no replica near).
    for (writes, reads) in [(current, reads_current), (late, reads_late)] {
        assert!(writes <= PAIRS && writes + reads <= PAIRS + PAIRS / 4, "{writes} and {reads}");
    }
    // Replicas behind: none that no read could use yet (the read goes to the primary).
    assert!(late <= PAIRS / 4, "replicas behind: positions no read could use: {late}");
    for r in cluster.replicas() {
        r.clear_apply_delay().await.unwrap();
    }
}

/// A write no read follows costs the primary no position read: tasks that each write once and
/// end (a request's handler without the web layer, a job's step) leave their writes to the
/// primary's samples 10 ms after each (the task a write is left to reads none while the monitor
/// samples positions). A task that reads its write later still sees it, with at most one
/// position read: its read reads the position first, or finds the write bounded by a sample of
/// the primary taken since.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_no_read_follows_reads_no_position(#[case] kind: DbKind) {
    use sea_orm::{ColumnTrait, QueryFilter};
    const WRITES: usize = 10;
    let (_cluster, _tdb, db) = setup(kind, "write_alone").await;
    let captured = || db.stats().read_your_writes().positions_captured;
    let before = captured();
    for i in 0..WRITES {
        let task = db.clone();
        // One statement, no read back (MariaDB's `insert` reads its row back).
        let sql = format!("INSERT INTO author (name) VALUES ('alone-{i}')");
        tokio::spawn(async move { task.execute_unprepared(&sql).await.unwrap() }).await.unwrap();
    }
    // Well past the moment each write was left to a task of its own.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ryw = db.stats().read_your_writes();
    assert_eq!(captured() - before, 0, "no read followed the writes: {ryw:?}");

    let task = db.clone();
    let (found, by_read) = tokio::spawn(async move {
        let db = task;
        let read = || db.stats().read_your_writes().positions_captured;
        db.execute_unprepared("INSERT INTO author (name) VALUES ('alone-read')").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let before = read();
        let found = author::Entity::find().filter(author::Column::Name.eq("alone-read")).one(&db);
        (found.await, read() - before)
    })
    .await
    .unwrap();
    assert!(fresh(found, "alone-read"), "the task's read after a pause sees its write");
    assert!(by_read <= 1, "at most one position read, by the read: {by_read}");
}

/// Runs `pairs` write→read pairs in each of the three scopes while every replica applies with
/// `delay`, and counts stale reads and reads served by replicas.
#[rstest]
#[case::postgres(DbKind::Postgres, Duration::from_millis(200), 15)]
#[case::mariadb(DbKind::MariaDb, Duration::from_secs(1), 5)]
#[tokio::test]
async fn no_read_is_stale_in_any_scope_while_replicas_lag(
    #[case] kind: DbKind,
    #[case] delay: Duration,
    #[case] pairs: usize,
) {
    let (cluster, tdb, db) = setup(kind, "ryw_scopes").await;
    for r in cluster.replicas() {
        r.set_apply_delay(delay).await.unwrap();
    }
    // Another connection: another process as far as the adapter is concerned.
    let elsewhere = connect(&tdb).await;
    let mut stale = [0usize; 3];
    for i in 0..pairs {
        // 1. The task scope: write and read in one task.
        let name = format!("t{i}");
        stale[0] += tokio::spawn({
            let db = db.clone();
            async move {
                let a = author::ActiveModel { name: Set(name.clone()), ..Default::default() }
                    .insert(&db)
                    .await
                    .unwrap();
                usize::from(!fresh(author::Entity::find_by_id(a.id).one(&db).await, &name))
            }
        })
        .await
        .unwrap();

        // 2. A session: the write in one task, the read in another.
        let session = db.session();
        let name = format!("s{i}");
        let id = tokio::spawn({
            let (session, name) = (session.clone(), name.clone());
            async move {
                author::ActiveModel { name: Set(name), ..Default::default() }
                    .insert(&session)
                    .await
                    .unwrap()
                    .id
            }
        })
        .await
        .unwrap();
        stale[1] += tokio::spawn(async move {
            usize::from(!fresh(author::Entity::find_by_id(id).one(&session).await, &name))
        })
        .await
        .unwrap();

        // 3. A token as text, resumed on the other connection.
        let session = db.session();
        let name = format!("x{i}");
        let a = author::ActiveModel { name: Set(name.clone()), ..Default::default() }
            .insert(&session)
            .await
            .unwrap();
        let text = session.token().await.unwrap().unwrap().to_string();
        let there = elsewhere.session_from(&text).unwrap();
        stale[2] += usize::from(!fresh(author::Entity::find_by_id(a.id).one(&there).await, &name));
    }
    let plain = tokio::spawn({
        let other = db.clone();
        async move {
            // A task without a token reads a replica, which has not applied the last write:
            // the lag is real.
            author::Entity::find().all(&other).await.unwrap().len()
        }
    })
    .await
    .unwrap();
    let on_primary = author::Entity::find().all(db.primary()).await.unwrap().len();
    let ryw = db.stats().read_your_writes();
    let ryw_elsewhere = elsewhere.stats().read_your_writes();
    eprintln!(
        "{kind} delay {delay:?}: stale reads task/session/text = {stale:?}; replica saw {plain} of {on_primary} rows; {ryw:?}; elsewhere {ryw_elsewhere:?}"
    );
    assert_eq!(stale, [0, 0, 0], "stale reads per scope (task, session, text token)");
    assert!(plain < on_primary, "the replicas lag: {plain} of {on_primary} rows");
    // Each resumed token was used: a position (read with it on a replica or the primary), or —
    // a write whose position was left unread while no replica could serve a read — the primary
    // by name (read there: a last-node read).
    assert!(
        ryw_elsewhere.primary_reads + ryw_elsewhere.replica_reads + ryw_elsewhere.last_node_reads
            >= pairs as u64,
        "{ryw_elsewhere:?}"
    );

    // The same token read after the delay (and a probe) goes to a replica.
    let session = db.session();
    let name = "later".to_owned();
    let a = author::ActiveModel { name: Set(name.clone()), ..Default::default() }
        .insert(&session)
        .await
        .unwrap();
    tokio::time::sleep(delay + Duration::from_millis(400)).await;
    let took = eventually(Duration::from_secs(10), || {
        let session = session.clone();
        let db = db.clone();
        let name = name.clone();
        async move {
            let (r, s) = served(&db, || author::Entity::find_by_id(a.id).one(&session)).await;
            fresh(r, &name) && s.replicas_only()
        }
    })
    .await;
    assert!(took.is_some(), "a replica that has replayed the token serves the session");
    for r in cluster.replicas() {
        r.clear_apply_delay().await.unwrap();
    }
}

#[rstest]
#[case::postgres(DbKind::Postgres, Duration::from_millis(300))]
#[case::mariadb(DbKind::MariaDb, Duration::from_secs(1))]
#[tokio::test]
async fn a_read_may_wait_for_a_replica_to_catch_up(#[case] kind: DbKind, #[case] delay: Duration) {
    let (cluster, _tdb, db) = setup(kind, "ryw_wait").await;
    for r in cluster.replicas() {
        r.set_apply_delay(delay).await.unwrap();
    }
    // Let the monitor see the replicas' positions with the delay in force.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let session = db.session();
    let a = author::ActiveModel { name: Set("waited".into()), ..Default::default() }
        .insert(&session)
        .await
        .unwrap();
    // (On MariaDB `insert` reads its row back after its own catch-up wait, which the replicas'
    // delay makes time out or skip.)
    let before = db.stats().read_your_writes();
    let started = Instant::now();
    let waiting = session.wait_for_replica(Duration::from_secs(10));
    let (found, s) = served(&db, || author::Entity::find_by_id(a.id).one(&waiting)).await;
    let waited = started.elapsed();
    assert!(fresh(found, "waited"), "the waited-for replica has the row");
    assert!(s.replicas_only(), "served by the replica it waited on: {s:?}");
    let ryw = db.stats().read_your_writes();
    let counted = (ryw.waits - before.waits, ryw.wait_timeouts - before.wait_timeouts);
    assert_eq!(counted, (1, 0), "{ryw:?}");
    eprintln!(
        "{kind}: waited {} ms for a replica applying with {delay:?} delay",
        waited.as_millis()
    );

    // A wait that cannot succeed in time ends on the primary, still fresh. (Given a moment
    // first: on MariaDB `insert` reads its row back on the primary, and that read's floor — the
    // primary's next position sample, asked for as the read ends — must be known for the next
    // read to wait on a replica; a read planned before it comes waits for the floor instead, up
    // to its own 20 ms, and then reads the primary without a catch-up wait.)
    let b = author::ActiveModel { name: Set("hurried".into()), ..Default::default() }
        .insert(&session)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let hurried = session.wait_for_replica(Duration::from_millis(20));
    let before = db.stats().read_your_writes();
    let (found, s) = served(&db, || author::Entity::find_by_id(b.id).one(&hurried)).await;
    assert!(fresh(found, "hurried"));
    assert!(s.primary_only(), "{s:?}");
    // Either it waited and timed out, or — the monitor measuring the replicas further behind
    // than 20 ms — it went to the primary without waiting.
    let after = db.stats().read_your_writes();
    assert_eq!(after.waits - before.waits, after.wait_timeouts - before.wait_timeouts, "{after:?}");
    for r in cluster.replicas() {
        r.clear_apply_delay().await.unwrap();
    }
}

/// A catch-up wait on a replica that hangs (or died) and is not marked down yet ends at the
/// wait's `max`, connection included, and the read goes to the primary, rather than waiting on
/// the replica's pool or its frozen server for the pool's acquire timeout (5 s on a killed
/// replica) or until the monitor marks it down.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn a_wait_on_a_replica_that_hangs_ends_at_its_max(#[case] kind: DbKind) {
    let (cluster, _tdb, db) = setup(kind, "ryw_wait_hung").await;
    for r in cluster.replicas() {
        r.pause_replay().await.unwrap();
    }
    // Let the monitor see the replicas behind, so the read below waits on one of them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let session = db.session();
    let a = author::ActiveModel { name: Set("hung".into()), ..Default::default() }
        .insert(&session)
        .await
        .unwrap();
    for r in cluster.replicas() {
        r.hang().unwrap();
    }
    // (On MariaDB `insert` reads its row back, after its own catch-up wait on a replica.)
    let before = db.stats().read_your_writes();
    let started = Instant::now();
    // Longer than the replicas are known to lag (else the read goes to the primary at once,
    // without a wait to test).
    let hurried = session.wait_for_replica(Duration::from_secs(1));
    let found = author::Entity::find_by_id(a.id).one(&hurried).await;
    let took = started.elapsed();
    for r in cluster.replicas() {
        r.unhang().unwrap();
    }
    assert!(fresh(found, "hung"), "read on the primary, fresh");
    assert!(took < Duration::from_millis(2_000), "the wait took {took:?}, its max is 1 s");
    let ryw = db.stats().read_your_writes();
    let waited = (ryw.waits - before.waits, ryw.wait_timeouts - before.wait_timeouts);
    assert_eq!(waited, (1, 1), "{ryw:?}");
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn strong_and_bounded_staleness_per_call_and_as_default(#[case] kind: DbKind) {
    let (cluster, tdb, db) = setup(kind, "levels").await;
    cluster.replicas()[0].pause_replay().await.unwrap();
    author::ActiveModel { name: Set("x".into()), ..Default::default() }
        .insert(db.primary())
        .await
        .unwrap();
    // Replica 1 is frozen and now behind; replica 2 catches up. Wait until the monitor says so.
    let bound = Consistency::BoundedStaleness(Staleness::time(Duration::from_millis(500)));
    let seen = eventually(Duration::from_secs(10), || {
        let db = db.clone();
        async move {
            let s = db.stats();
            let within = |n: &rwsplit_sea_orm::NodeStats| {
                n.lag().time().is_some_and(|t| t <= Duration::from_millis(500))
            };
            !within(&s.replicas()[0]) && within(&s.replicas()[1])
        }
    })
    .await;
    assert!(seen.is_some(), "the monitor sees one replica behind: {:?}", db.stats());
    tokio::time::sleep(Duration::from_millis(600)).await;

    let bounded = db.consistent(bound);
    let strong = db.consistent(Consistency::Strong);
    for _ in 0..6 {
        let (r, s) = served(&db, || author::Entity::find().all(&bounded)).await;
        assert_eq!(r.unwrap().len(), 1, "bounded reads see the row");
        assert_eq!(s.replica_reads, 1, "{s:?}");
        let (r, s) = served(&db, || author::Entity::find().all(&strong)).await;
        r.unwrap();
        assert!(s.primary_only(), "strong: {s:?}");
    }
    let stats = db.stats();
    assert_eq!(stats.replicas()[0].reads(), 0, "the frozen replica is out of bounds");

    // The same levels as a connection's default.
    let strong = RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replicas(tdb.replica_urls())
        .consistency(Consistency::Strong)
        .connect()
        .await
        .unwrap();
    let (_, s) = served(&strong, || author::Entity::find().all(&strong)).await;
    assert!(s.primary_only(), "{s:?}");
    // …and eventual per call over a strong default.
    let eventual = strong.consistent(Consistency::Eventual);
    let (_, s) = served(&strong, || author::Entity::find().all(&eventual)).await;
    assert_eq!(s.replica_reads, 1, "{s:?}");
    cluster.replicas()[0].resume_replay().await.unwrap();
}

#[tokio::test]
async fn a_token_from_before_a_failover_is_never_satisfied_by_the_new_history() {
    let (cluster, _tdb, db) = setup(DbKind::Postgres, "ryw_failover").await;
    let session = db.session();
    let a = author::ActiveModel { name: Set("before".into()), ..Default::default() }
        .insert(&session)
        .await
        .unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();
    // A token holding the write's position (while the monitor sees the replicas too far
    // behind for a read to wait on, as on a loaded machine, the token names the primary
    // instead of reading one: asked again until they are within reach).
    let asked = Instant::now();
    let old = loop {
        let token = session.token().await.unwrap().unwrap();
        if token.position().is_some() || asked.elapsed() > Duration::from_secs(10) {
            break token;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(old.position().is_some(), "the token holds the write's position: {old:?}");
    // Fail over: the old primary stops, replica 1 is promoted onto a new timeline and replica 2
    // follows it.
    cluster.primary().stop().unwrap();
    cluster.replicas()[0].promote().await.unwrap();
    cluster.replicas()[1].follow(&cluster.replicas()[0]).await.unwrap();
    // The promotion is followed once node 1 is the one primary: the stopped old primary's
    // position feed fails and its next probe runs at once, finding nothing there; node 1's
    // feed finds it promoted and its next probe runs at once too.
    let followed = eventually(Duration::from_secs(20), || {
        let db = db.clone();
        async move {
            let stats = db.stats();
            let primary = |i: usize| stats.nodes()[i].current_role() == rwsplit_core::Role::Primary;
            !primary(0) && primary(1) && !primary(2)
        }
    })
    .await;
    assert!(followed.is_some(), "the promotion is followed: {:?}", db.stats());
    // The replica following the new primary has replayed past the old token's LSN, on another
    // timeline (it may still report the old one until its WAL receiver has switched): it must
    // not count.
    let old_reader = db.session_from(&old.to_string()).unwrap();
    let reads = |db: &RoutedConnection| -> Vec<u64> {
        db.stats().nodes().iter().map(rwsplit_sea_orm::NodeStats::reads).collect()
    };
    for i in 0..5 {
        let before = reads(&db);
        let found = author::Entity::find_by_id(a.id).one(&old_reader).await;
        assert!(fresh(found, "before"), "the write replicated before the failover");
        let after = reads(&db);
        assert_eq!(after[0], before[0], "never from the old primary: {before:?} → {after:?}");
        if i == 0 {
            // Node 1 is the promoted primary; node 2 follows it on the new timeline.
            assert_eq!(
                after[1] - before[1],
                1,
                "read from the new primary: {before:?} → {after:?}"
            );
            assert_eq!(after[2], before[2], "never from the follower: {before:?} → {after:?}");
        }
        // Later reads carry a position of the new history: the follower may serve them once it
        // has replayed it there, and what they find is checked above.
    }
    // The first read found the token foreign (later ones carry the new primary's position,
    // read when the held token was checked, or the bound of a read there).
    assert!(db.stats().read_your_writes().foreign_tokens >= 1);
}

/// A primary that stops: killed, or frozen (SIGSTOP: its port still accepts connections, nothing
/// answers; from the application, like being cut off from it).
#[derive(Debug, Clone, Copy)]
enum Stops {
    Killed,
    Frozen,
}

/// Bounded staleness is a bound on time. The primary stops and nothing is promoted.
/// A replica that had everything the primary was last seen writing serves bounded reads only
/// until the bound has passed since that last sighting, which came before the primary stopped:
/// no bounded read that starts a bound after that is served by a replica (its measured lag,
/// "0 behind" while the primary's last observation stands, proves nothing). Reads with nowhere
/// provable to go fail with a typed error, not a pool's timeout: at once on a killed primary,
/// and on a frozen one (which holds a read it was sent) once the monitor has marked it down;
/// after that at once too. Eventual reads go on from the replicas throughout, and so do session
/// reads (the default level) whose last read before the stop was on a replica: its floor is a
/// replica's position, which the live replicas prove without the primary. (A session whose last
/// read was on the primary, stopped before the monitor sampled it again, cannot prove any
/// replica has what it read: docs/CONSISTENCY.md, limits.)
#[rstest]
#[case::postgres_killed(DbKind::Postgres, Stops::Killed)]
#[case::postgres_frozen(DbKind::Postgres, Stops::Frozen)]
#[case::mariadb_killed(DbKind::MariaDb, Stops::Killed)]
#[case::mariadb_frozen(DbKind::MariaDb, Stops::Frozen)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_bounded_read_is_served_past_its_bound_after_the_primary_stops(
    #[case] kind: DbKind,
    #[case] stops: Stops,
) {
    let (cluster, _tdb, db) = setup(kind, "bounded_stop").await;
    author::ActiveModel { name: Set("x".into()), ..Default::default() }.insert(&db).await.unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();
    let bound = Duration::from_millis(1_000);
    let level = Consistency::BoundedStaleness(Staleness::time(bound));
    let bounded = db.consistent(level.clone());
    let eventual = db.consistent(Consistency::Eventual);
    // The replicas serve bounded reads once the monitor has seen them with the write, and this
    // task's session reads once the monitor has bounded its last read (on MariaDB, `insert`
    // reads the row back from the primary).
    let on_replicas = eventually(Duration::from_secs(10), || {
        let (db, level) = (db.clone(), level.clone());
        async move {
            let bounded = db.consistent(level);
            served(&db, || author::Entity::find().all(&bounded)).await.1.replica_reads == 1
                && served(&db, || author::Entity::find().all(&db)).await.1.replica_reads == 1
        }
    })
    .await;
    assert!(on_replicas.is_some(), "bounded reads reach a replica: {:?}", db.stats());

    match stops {
        Stops::Killed => cluster.primary().crash().unwrap(),
        Stops::Frozen => cluster.primary().hang().unwrap(),
    }
    let stopped = Instant::now();
    let (mut within, mut past, mut failed, mut eventual_failed, mut session_failed) =
        (Vec::new(), Vec::new(), Vec::new(), 0, 0);
    // At least 4 bounds, and until a read that started past the bound has failed (a frozen
    // primary holds the first such read until the monitor marks it down), at most 15 s.
    let past_bound_failed =
        |failed: &[(Duration, Duration)]| failed.iter().any(|(s, _)| *s >= bound);
    while (stopped.elapsed() < bound * 4 || !past_bound_failed(&failed))
        && stopped.elapsed() < Duration::from_secs(15)
    {
        let started = Instant::now();
        let (read, s) = served(&db, || author::Entity::find().all(&bounded)).await;
        let since = started - stopped;
        match read {
            Ok(rows) => {
                assert_eq!(rows.len(), 1);
                if s.replica_reads == 1 && since >= bound {
                    past.push(since);
                } else if s.replica_reads == 1 {
                    within.push(since);
                }
            }
            Err(e) => {
                assert!(rwsplit_sea_orm::routing_error(&e).is_some(), "a typed error: {e}");
                failed.push((since, started.elapsed()));
            }
        }
        let (read, s) = served(&db, || author::Entity::find().all(&eventual)).await;
        eventual_failed += usize::from(read.is_err() || s.replica_reads != 1);
        let (read, s) = served(&db, || author::Entity::find().all(&db)).await;
        session_failed += usize::from(read.is_err() || s.replica_reads != 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if matches!(stops, Stops::Frozen) {
        cluster.primary().unhang().unwrap();
    }
    let slowest = failed.iter().map(|(_, took)| *took).max().unwrap_or_default();
    eprintln!(
        "{kind} primary {stops:?}, bound {bound:?}: bounded reads on replicas {} (last started \
         {:?} after), past the bound {}, failed {} (first started {:?} after, slowest {slowest:?}); \
         eventual reads failed {eventual_failed}, session reads failed {session_failed}",
        within.len(),
        within.last(),
        past.len(),
        failed.len(),
        failed.first().map(|(since, _)| since),
    );
    assert!(past.is_empty(), "bounded reads served by a replica past the bound: {past:?}");
    assert!(!within.is_empty(), "the replicas had every write: they serve within the bound");
    assert!(
        past_bound_failed(&failed),
        "past the bound, with the primary stopped, no node can prove it: {failed:?}"
    );
    // Fast: a read on a killed primary is refused at once, not after its pool's 5 s acquire
    // timeout; one on a frozen primary is given up when the monitor marks it down (3 probes of
    // 1 s timeout at 100 ms intervals: about 3.3 s after it froze), not held until another
    // node is promoted (here: never).
    let limit = match stops {
        Stops::Killed => Duration::from_secs(2),
        Stops::Frozen => Duration::from_secs(10),
    };
    assert!(slowest < limit, "reads that cannot be proven fail fast: {failed:?}");
    assert_eq!(eventual_failed, 0, "eventual reads need no primary");
    assert_eq!(session_failed, 0, "session reads bounded on a replica need no primary");
}

/// How a reader reaches the database in [`one_reader_never_sees_a_value_go_down`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    /// The `RoutedConnection` itself, from one task (the task's scope).
    Connection,
    /// One `Session`, each read from a new task.
    Session,
    /// A chain of tokens: each read in a session resumed from the previous read's token, on
    /// two connections in turn (two processes as far as the adapter knows): a web request
    /// chain. Reads may wait up to 50 ms for a replica to be seen at the token.
    TokenChain,
    /// `Consistency::Eventual`: no monotonic reads (the control: it does go back in time).
    Eventual,
}

/// The counter's value, read through `handle`.
async fn counter<C: sea_orm::ConnectionTrait>(handle: &C) -> i64 {
    counter_or_err(handle).await.unwrap()
}

/// Monotonic reads: a writer increments a counter every 10 ms on the primary; one
/// replica applies at once, the other `delay` late; one reader reads it `READS` times, 10 ms
/// apart, through rwsplit. Through a `RoutedConnection`, a `Session` and a token chain it
/// never sees the value go down, and replicas still serve most reads; at `Eventual` (the
/// control) it does go down — the test would catch the violation.
#[rstest]
#[case::postgres(DbKind::Postgres, Duration::from_millis(300))]
#[case::mariadb(DbKind::MariaDb, Duration::from_secs(1))]
#[tokio::test]
async fn one_reader_never_sees_a_value_go_down(#[case] kind: DbKind, #[case] delay: Duration) {
    const READS: usize = 150;
    let cluster = own_cluster(kind, "monotonic", 2).await;
    let tdb = cluster.create_database("monotonic").await.unwrap();
    let mut w = crate::support::connect(&tdb.primary_url()).await;
    crate::support::exec(&mut w, "CREATE TABLE counter (id INT PRIMARY KEY, v BIGINT NOT NULL)")
        .await
        .unwrap();
    crate::support::exec(&mut w, "INSERT INTO counter VALUES (1, 0)").await.unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();
    cluster.replicas()[1].set_apply_delay(delay).await.unwrap();
    let session_level = || {
        RoutedConnection::builder()
            .primary(tdb.primary_url())
            .replicas(tdb.replica_urls())
            .probe_interval(Duration::from_millis(100))
            .consistency(Consistency::Session)
            .connect()
    };
    let db = session_level().await.unwrap();
    let elsewhere = session_level().await.unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn({
        let stop = std::sync::Arc::clone(&stop);
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                crate::support::exec(&mut w, "UPDATE counter SET v = v + 1 WHERE id = 1")
                    .await
                    .unwrap();
            }
        }
    });
    // Let the lag build up: the late replica is `delay` behind.
    tokio::time::sleep(delay + Duration::from_millis(300)).await;

    let mut report = Vec::new();
    for reader in [Reader::Connection, Reader::Session, Reader::TokenChain, Reader::Eventual] {
        let before = (db.stats().replica_reads(), elsewhere.stats().replica_reads());
        let (db2, elsewhere2) = (db.clone(), elsewhere.clone());
        let seen: Vec<i64> = tokio::spawn(async move {
            let (db, elsewhere) = (db2, elsewhere2);
            let mut seen = Vec::with_capacity(READS);
            let session = db.session();
            let mut token = String::new();
            for i in 0..READS {
                let v = match reader {
                    Reader::Connection => counter(&db).await,
                    Reader::Eventual => counter(&db.consistent(Consistency::Eventual)).await,
                    Reader::Session => {
                        let s = session.clone();
                        tokio::spawn(async move { counter(&s).await }).await.unwrap()
                    }
                    Reader::TokenChain => {
                        let on = if i % 2 == 0 { &db } else { &elsewhere };
                        let s = on.session_from(&token).unwrap();
                        // The other process's monitor may not have sampled the replica as far
                        // as this token yet (10 ms after the last read): wait for it a little
                        // rather than read the primary.
                        let v = counter(&s.wait_for_replica(Duration::from_millis(50))).await;
                        token = s.token().await.unwrap().expect("a token after a read").to_string();
                        v
                    }
                };
                seen.push(v);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            seen
        })
        .await
        .unwrap();
        let after = (db.stats().replica_reads(), elsewhere.stats().replica_reads());
        let on_replicas = (after.0 - before.0) + (after.1 - before.1);
        let mut high = i64::MIN;
        let (mut back, mut worst) = (0, 0);
        for &v in &seen {
            if v < high {
                back += 1;
                worst = worst.max(high - v);
            }
            high = high.max(v);
        }
        report.push((reader, back, worst, on_replicas));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    eprintln!(
        "{kind}, replicas 0 and {delay:?} behind, {READS} reads each: (reader, reads that went back, worst by, on replicas) = {report:?}; {:?}",
        db.stats().read_your_writes()
    );
    for &(reader, back, worst, on_replicas) in &report {
        if reader == Reader::Eventual {
            assert!(back > 0, "the control goes back in time (else the test proves nothing)");
            continue;
        }
        assert_eq!((back, worst), (0, 0), "{reader:?}: reads that went back in time");
        assert!(
            on_replicas >= (READS as u64) * 8 / 10,
            "{reader:?}: replicas served {on_replicas} of {READS}"
        );
    }
    cluster.replicas()[1].clear_apply_delay().await.unwrap();
}

/// What one reader of [`reads_survive_a_switchover`] saw.
#[derive(Debug, Default)]
struct Through {
    reads: usize,
    on_replicas: usize,
    failed: usize,
    /// Failed although some node could prove the bound both when the read started and when it
    /// failed (bounded readers only).
    failed_while_provable: usize,
    /// Reads that returned a value below one this reader had already seen.
    back: usize,
}

/// Whether some node could serve a read bounded by `bound` now: the one primary, up, or a
/// replica not down that is provably within the bound (what the router checks).
fn provable(db: &RoutedConnection, bound: Duration) -> bool {
    use rwsplit_sea_orm::advanced::{Health, Role};
    let now = Instant::now();
    let stats = db.stats();
    let primaries = stats.nodes().iter().filter(|n| n.current_role() == Role::Primary).count();
    stats.nodes().iter().any(|n| match (n.current_role(), n.health()) {
        (Role::Primary, h) => primaries == 1 && h == Health::Up,
        (_, Health::Down) => false,
        _ => n.lag().staleness_at(now).is_some_and(|s| s <= bound),
    })
}

/// Reads through a switchover: the primary stops, replica 1 is promoted, replica 2 follows it,
/// under a writer (through rwsplit, every 10 ms) and three readers (every 5 ms): the default
/// (`Session`, the task's scope, which wrote a row of its own first), `Eventual`, and bounded by
/// 1 s. No eventual or session read fails (neither guarantee needs a primary: a replica that has
/// the scope's writes and reads, or the new primary, serves them); a bounded read fails only while
/// no node can prove the bound; the session reader never sees the counter go down; writes resume
/// within a probe interval of the new primary accepting them.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_survive_a_switchover(#[case] kind: DbKind) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    const PROBE: Duration = Duration::from_millis(200);
    const BOUND: Duration = Duration::from_secs(1);
    let cluster = own_cluster(kind, "switchover", 2).await;
    let tdb = cluster.create_database("switchover").await.unwrap();
    let mut w = crate::support::connect(&tdb.primary_url()).await;
    crate::support::exec(&mut w, "CREATE TABLE counter (id INT PRIMARY KEY, v BIGINT NOT NULL)")
        .await
        .unwrap();
    crate::support::exec(&mut w, "INSERT INTO counter VALUES (1, 0)").await.unwrap();
    crate::support::exec(&mut w, "CREATE TABLE own (id INT PRIMARY KEY)").await.unwrap();
    drop(w);
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();
    let db = RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replicas(tdb.replica_urls())
        .monitor(
            rwsplit_sea_orm::advanced::MonitorConfig::default()
                .probe_interval(PROBE)
                .probe_timeout(PROBE * 5 / 2),
        )
        .connect()
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let writer = tokio::spawn({
        let (db, stop, acked) = (db.clone(), Arc::clone(&stop), Arc::clone(&acked));
        async move {
            let sql = "UPDATE counter SET v = v + 1 WHERE id = 1";
            while !stop.load(Ordering::Relaxed) {
                let stmt = sea_orm::Statement::from_string(db.get_database_backend(), sql);
                let r = tokio::time::timeout(
                    Duration::from_secs(2),
                    sea_orm::ConnectionTrait::execute_raw(&db, stmt),
                )
                .await;
                if matches!(r, Ok(Ok(_))) {
                    acked.lock().unwrap().push(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    let levels = [
        Consistency::Session,
        Consistency::Eventual,
        Consistency::BoundedStaleness(Staleness::time(BOUND)),
    ];
    let readers: Vec<_> = levels
        .iter()
        .cloned()
        .map(|level| {
            let (db, stop) = (db.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let bounded = matches!(level, Consistency::BoundedStaleness(_));
                let handle = db.consistent(level.clone());
                if level == Consistency::Session {
                    // A row of the session's own: its reads carry a token of the old primary's
                    // history, which the new primary's cannot be compared with.
                    let own = "INSERT INTO own VALUES (1)";
                    let stmt = sea_orm::Statement::from_string(db.get_database_backend(), own);
                    sea_orm::ConnectionTrait::execute_raw(&handle, stmt).await.unwrap();
                }
                let mut t = Through::default();
                let mut high = i64::MIN;
                while !stop.load(Ordering::Relaxed) {
                    let before = bounded && provable(&db, BOUND);
                    let replica_reads = db.stats().replica_reads();
                    let sql = sea_orm::Statement::from_string(
                        db.get_database_backend(),
                        "SELECT v FROM counter WHERE id = 1",
                    );
                    let r = sea_orm::ConnectionTrait::query_one_raw(&handle, sql).await;
                    t.reads += 1;
                    match r {
                        Ok(Some(row)) => {
                            let v = row.try_get::<i64>("", "v").unwrap();
                            t.back += usize::from(v < high);
                            high = high.max(v);
                            t.on_replicas +=
                                usize::from(db.stats().replica_reads() > replica_reads);
                        }
                        Ok(None) => panic!("the counter's row is gone"),
                        Err(e) => {
                            t.failed += 1;
                            if before && provable(&db, BOUND) {
                                t.failed_while_provable += 1;
                                eprintln!("{kind}: a bounded read failed while provable: {e}");
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                t
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let (primary, n1, n2) = (cluster.primary(), &cluster.replicas()[0], &cluster.replicas()[1]);
    let began = Instant::now();
    primary.stop().unwrap();
    n1.promote().await.unwrap();
    let writable = Instant::now();
    n2.follow(n1).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let mut through = Vec::new();
    for r in readers {
        through.push(r.await.unwrap());
    }
    let resumed = acked.lock().unwrap().iter().find(|at| **at > writable).map(|at| *at - writable);
    eprintln!(
        "{kind}: switchover (stop, promote) took {} ms; writes resumed {resumed:?} after the new primary accepted them; session {:?}; eventual {:?}; bounded {:?}; {:?}",
        (writable - began).as_millis(),
        through[0],
        through[1],
        through[2],
        db.stats().read_your_writes(),
    );
    let [session, eventual, bounded] = &through[..] else { unreachable!() };
    assert_eq!(eventual.failed, 0, "eventual reads need no primary: {eventual:?}");
    assert_eq!(session.failed, 0, "session reads need no primary: {session:?}");
    assert_eq!(session.back, 0, "the session went back in time: {session:?}");
    assert_eq!(bounded.failed_while_provable, 0, "bounded reads failed while provable");
    assert!(session.reads > 300 && eventual.reads > 300, "the readers kept reading");
    let resumed = resumed.expect("writes resumed on the new primary");
    // The new primary is seen by its next probe, which starts within an interval and, on a
    // busy machine, may take up to its timeout before its answer counts.
    assert!(resumed <= PROBE + PROBE * 5 / 2, "writes resumed after {resumed:?}");
}

/// A strong read (the primary alone) whose connection the server ends mid-statement runs once
/// more where the monitor's verdict says, instead of failing at once: before the monitor knew
/// anything, the read had nowhere else to go.
/// - `switchover`: the primary stops (its fast shutdown ends every backend), and replica 1 is
///   promoted 300 ms later: the read runs once more on the new primary.
/// - `terminated`: the read's session is ended on a primary that stays up
///   (`pg_terminate_backend`; MariaDB's `KILL`, which shuts the session's socket: the driver
///   sees the connection closed): the read runs once more there, once the primary has answered
///   the monitor since.
///
/// Before 740cb72 the first three cases failed (the fault timeline's writer saw the first as a
/// failed read-back).
#[rstest]
#[case::postgres_switchover(DbKind::Postgres, true)]
#[case::mariadb_switchover(DbKind::MariaDb, true)]
#[case::postgres_terminated(DbKind::Postgres, false)]
#[case::mariadb_terminated(DbKind::MariaDb, false)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_whose_primary_connection_breaks_runs_once_more_where_the_monitor_says(
    #[case] kind: DbKind,
    #[case] switchover: bool,
) {
    let cluster = own_cluster(kind, "lostread", 2).await;
    let tdb = cluster.create_database("lostread").await.unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();
    let db = connect_watched(tdb.primary_url(), &tdb).await;
    let name = |port: u16| format!("127.0.0.1:{port}/{}", tdb.name());
    let (old, new) = (name(cluster.primary().port()), name(cluster.replicas()[0].port()));
    let reads = |node: &str| db.stats().node(node).map_or(0, |n| n.reads());
    let sleep = if kind == DbKind::Postgres { "SELECT pg_sleep(1.5)" } else { "SELECT SLEEP(1.5)" };
    let sleep = sea_orm::Statement::from_string(db.get_database_backend(), sleep);
    let (old_before, new_before) = (reads(&old), reads(&new));
    let read = tokio::spawn({
        let db = db.clone();
        async move {
            let started = Instant::now();
            let r = db.consistent(Consistency::Strong).query_one_raw(sleep).await;
            (r, started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    if switchover {
        cluster.primary().stop().unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster.replicas()[0].promote().await.unwrap();
    } else if kind == DbKind::Postgres {
        let mut admin = crate::support::connect(&tdb.primary_url()).await;
        let kill = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                    WHERE query LIKE 'SELECT pg_sleep(1.5)%' AND pid <> pg_backend_pid()";
        let killed: Vec<bool> = sqlx::query_scalar(kill).fetch_all(&mut admin).await.unwrap();
        assert_eq!(killed, vec![true], "the read's backend was terminated");
    } else {
        let mut admin = crate::support::connect(&tdb.primary_url()).await;
        let find = "SELECT CAST(id AS SIGNED) FROM information_schema.processlist \
                    WHERE info LIKE 'SELECT SLEEP(1.5)%' AND id <> CONNECTION_ID()";
        let ids: Vec<i64> = sqlx::query_scalar(find).fetch_all(&mut admin).await.unwrap();
        assert_eq!(ids.len(), 1, "one session runs the read: {ids:?}");
        crate::support::exec(&mut admin, &format!("KILL {}", ids[0])).await.unwrap();
    }
    let (r, took) = read.await.unwrap();
    let (old_reads, new_reads) = (reads(&old) - old_before, reads(&new) - new_before);
    eprintln!(
        "{kind}: read with its primary connection broken ({}) took {} ms: {:?}; served on the \
         old primary {old_reads}, on the new {new_reads}",
        if switchover { "switchover" } else { "terminated" },
        took.as_millis(),
        r.as_ref().map(|_| "ok"),
    );
    r.expect("the read ran once more and succeeded").expect("a row");
    if switchover {
        assert_eq!((old_reads, new_reads), (0, 1), "once more, on the new primary");
    } else {
        assert_eq!((old_reads, new_reads), (1, 0), "once more, on the same primary");
    }
    // 0.4 s before the fault, the promotion 0.3 s after it, the sleep again (1.5 s).
    assert!(took < Duration::from_secs(5), "the read took {took:?}");
}

/// Bounded staleness under a partition: the application is cut from a primary that
/// keeps taking writes from other clients, and the replicas are cut from it too (every path
/// through a testkit proxy, black-holed at once). The primary is alive and writing; nothing
/// tells the application so. A bounded read (1 s) may be served only while a node provably
/// has every write older than the bound: no read that succeeded may miss a write acknowledged
/// more than the bound before it started. Checked against the writes themselves (a counter the
/// outside writer increments), not the monitor's view.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_bounded_read_is_served_past_its_bound_when_cut_from_a_writing_primary(
    #[case] kind: DbKind,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    const BOUND: Duration = Duration::from_secs(1);
    let cluster = own_cluster(kind, "partition", 2).await;
    let tdb = cluster.create_database("partition").await.unwrap();
    let mut w = crate::support::connect(&tdb.primary_url()).await;
    crate::support::exec(&mut w, "CREATE TABLE counter (id INT PRIMARY KEY, v BIGINT NOT NULL)")
        .await
        .unwrap();
    crate::support::exec(&mut w, "INSERT INTO counter VALUES (1, 0)").await.unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();
    let primary = cluster.primary();
    // Every path to the primary through a proxy: the application's, and each replica's
    // replication link.
    let app_path = primary.delay_clients(Duration::ZERO, Duration::ZERO).await.unwrap();
    let mut links = Vec::new();
    for r in cluster.replicas() {
        links.push(r.delay_replication(primary, Duration::ZERO, Duration::ZERO).await.unwrap());
    }
    let db = connect_watched(app_path.url(&tdb.primary_url()), &tdb).await;

    // The outside writer: directly to the primary, never cut. Value `n` acknowledged at `at`.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(i64, Instant)>>> = Arc::default();
    let writer = tokio::spawn({
        let (stop, acked) = (Arc::clone(&stop), Arc::clone(&acked));
        async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                crate::support::exec(&mut w, "UPDATE counter SET v = v + 1 WHERE id = 1")
                    .await
                    .unwrap();
                n += 1;
                acked.lock().unwrap().push((n, Instant::now()));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    // The bounded reader: (started, value) of each read served.
    let served_reads: Arc<Mutex<Vec<(Instant, i64)>>> = Arc::default();
    let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let reader = tokio::spawn({
        let (db, stop, served_reads, failed) =
            (db.clone(), Arc::clone(&stop), Arc::clone(&served_reads), Arc::clone(&failed));
        async move {
            let bounded = db.consistent(Consistency::BoundedStaleness(Staleness::time(BOUND)));
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let read = tokio::time::timeout(Duration::from_secs(3), counter_or_err(&bounded));
                match read.await {
                    Ok(Ok(v)) => served_reads.lock().unwrap().push((started, v)),
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let cut = Instant::now();
    app_path.blackhole(true);
    for link in &links {
        link.blackhole(true);
    }
    tokio::time::sleep(BOUND * 3).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    reader.await.unwrap();

    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let reads = std::mem::take(&mut *served_reads.lock().unwrap());
    // A read missed write `n` if it returned less than `n` though `n` was acknowledged more
    // than the bound before the read started.
    let past_bound = reads
        .iter()
        .filter(|(started, v)| acked.iter().any(|(n, at)| *at + BOUND < *started && n > v))
        .count();
    let after_cut = reads.iter().filter(|(s, _)| *s > cut).count();
    let last_served = reads.iter().map(|(s, _)| *s).filter(|s| *s > cut).max();
    eprintln!(
        "{kind}: {} bounded reads served ({after_cut} started after the cut, the last {:?} after it), {} failed, {past_bound} past the bound; {} writes acknowledged",
        reads.len(),
        last_served.map(|s| s - cut),
        failed.load(Ordering::Relaxed),
        acked.len(),
    );
    assert!(reads.len() > 100, "bounded reads were served before the cut");
    assert!(acked.iter().any(|(_, at)| *at > cut + BOUND * 2), "the primary kept taking writes");
    assert_eq!(past_bound, 0, "bounded reads were served past their bound");
    assert!(failed.load(Ordering::Relaxed) > 0, "reads with nowhere provable to go failed");
    for (r, link) in cluster.replicas().iter().zip(&links) {
        link.blackhole(false);
        r.follow(primary).await.unwrap();
    }
}

/// The counter's value through `handle`, or the error.
async fn counter_or_err<C: sea_orm::ConnectionTrait>(handle: &C) -> Result<i64, sea_orm::DbErr> {
    let sql = sea_orm::Statement::from_string(
        handle.get_database_backend(),
        "SELECT v FROM counter WHERE id = 1",
    );
    let row = handle.query_one_raw(sql).await?.expect("the counter's row");
    Ok(row.try_get::<i64>("", "v").unwrap())
}
