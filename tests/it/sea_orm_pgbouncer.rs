//! Replicas behind a real PgBouncer (Debian's 1.18), in session and transaction pooling: their
//! sessions are read-only all the same, reads reach them, a misrouted write fails loudly, and
//! read-your-writes holds.

use std::time::Duration;

use futures_util::TryStreamExt;
use rstest::rstest;
use rwsplit_sea_orm::{Pooling, Replica, RoutedConnection};
use rwsplit_testkit::{DbKind, PoolMode};
use sea_orm::{
    AccessMode, ConnectOptions, ConnectionTrait, Database, DbBackend, Statement, StreamTrait,
    TransactionTrait,
};

use crate::support::{count, shared};

fn pooling(mode: PoolMode) -> Pooling {
    match mode {
        PoolMode::Session => Pooling::Session,
        _ => Pooling::Transaction,
    }
}

const SETUP: &str = "CREATE TABLE t (id int); \
    CREATE FUNCTION bump() RETURNS int LANGUAGE sql AS 'INSERT INTO t VALUES (1) RETURNING 1'";

fn is_read_only_refusal(e: &sea_orm::DbErr) -> bool {
    let text = e.to_string();
    text.contains("read-only transaction")
}

/// The enforcement itself, on a server that would take writes: PgBouncer in front of the
/// *primary*, a pool made read-only as the builder makes a replica's. Many tasks at once, so
/// that in transaction pooling statements land on different server connections.
#[rstest]
#[case::session(PoolMode::Session)]
#[case::transaction(PoolMode::Transaction)]
#[tokio::test]
async fn sessions_through_pgbouncer_are_read_only_on_a_writable_server(#[case] mode: PoolMode) {
    let cluster = shared(DbKind::Postgres);
    let tdb = cluster.create_database("pgb_ro").await.unwrap();
    cluster.primary().execute(tdb.name(), SETUP).await.unwrap();
    let bouncer = cluster.primary().pgbouncer(mode).await.unwrap();
    let mut opts = ConnectOptions::new(bouncer.url(&tdb.primary_url()));
    opts.max_connections(6);
    pooling(mode).make_read_only(&mut opts, DbBackend::Postgres);
    let pool = Database::connect(opts).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..24 {
        let pool = pool.clone();
        tasks.spawn(async move {
            let pg = DbBackend::Postgres;
            // A parameterised read (an unnamed prepared statement through PgBouncer).
            let row = pool
                .query_one_raw(Statement::from_sql_and_values(
                    pg,
                    "SELECT $1::int + 1 AS n",
                    [i.into()],
                ))
                .await
                .map_err(|e| format!("read {i}: {e}"))?
                .ok_or("no row")?;
            let n: i32 = row.try_get("", "n").map_err(|e| e.to_string())?;
            assert_eq!(n, i + 1);
            let hidden = pool.query_one_raw(Statement::from_string(pg, "SELECT bump()")).await;
            let plain = pool.execute_unprepared("INSERT INTO t VALUES (2)").await;
            match (hidden, plain) {
                (Err(a), Err(b)) if is_read_only_refusal(&a) && is_read_only_refusal(&b) => Ok(()),
                other => Err(format!("task {i}: a write was not refused read-only: {other:?}")),
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap_or_else(|e| panic!("{e}\n{}", bouncer.log_tail(20)));
    }
    assert_eq!(count(&tdb.primary_url(), "t").await, Some(0), "nothing was written");
}

/// The startup parameter the direct mode uses is refused by PgBouncer
/// 1.18, so a replica behind it must be declared with its pooling mode.
#[tokio::test]
async fn the_direct_mode_through_pgbouncer_is_refused_at_connect() {
    let cluster = shared(DbKind::Postgres);
    let bouncer = cluster.replicas()[0].pgbouncer(PoolMode::Session).await.unwrap();
    let mut opts = ConnectOptions::new(bouncer.url(&cluster.replicas()[0].url()));
    Pooling::Direct.make_read_only(&mut opts, DbBackend::Postgres);
    opts.connect_timeout(Duration::from_secs(5));
    let err = Database::connect(opts).await.expect_err("PgBouncer refuses `options`");
    assert!(err.to_string().contains("unsupported startup parameter"), "{err}");
}

/// The routed path: every replica behind its own PgBouncer. Reads (parameterised, streamed,
/// in a read-only transaction) reach the replicas, a statement classified as a read that writes
/// fails with the classification-bug error and never reaches the primary, and read-your-writes
/// sees each write.
#[rstest]
#[case::session(PoolMode::Session)]
#[case::transaction(PoolMode::Transaction)]
#[tokio::test]
async fn routed_reads_through_pgbouncer(#[case] mode: PoolMode) {
    let cluster = shared(DbKind::Postgres);
    let tdb = cluster.create_database("pgb_routed").await.unwrap();
    cluster.primary().execute(tdb.name(), SETUP).await.unwrap();
    let mut bouncers = Vec::new();
    for node in cluster.replicas() {
        bouncers.push(node.pgbouncer(mode).await.unwrap());
    }
    let replicas = bouncers
        .iter()
        .zip(tdb.replica_urls())
        .map(|(b, url)| Replica::new(b.url(&url)).pooling(pooling(mode)));
    let db = RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replicas(replicas)
        // Read-your-writes reads wait for a replica (a catch-up wait through PgBouncer too).
        .wait_for_replica(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(20)).await.unwrap();
    let pg = db.get_database_backend();
    let replica_ports: Vec<i32> = cluster.replicas().iter().map(|n| i32::from(n.port())).collect();

    // Reads reach the replicas (through PgBouncer: their URLs are PgBouncer's).
    for i in 0..20 {
        let stmt = Statement::from_sql_and_values(
            pg,
            "SELECT inet_server_port() AS port, $1::int AS i",
            [i.into()],
        );
        let row = RoutedConnection::scope(rwsplit_sea_orm::Target::Replica, db.query_one_raw(stmt))
            .await
            .unwrap()
            .unwrap();
        let port: i32 = row.try_get("", "port").unwrap();
        assert!(replica_ports.contains(&port), "read {i} ran on port {port}");
    }
    let stream: Vec<_> = db
        .stream_raw(Statement::from_string(pg, "SELECT generate_series(1, 50) AS n"))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(stream.len(), 50);
    let ro = db.begin_with_config(None, Some(AccessMode::ReadOnly)).await.unwrap();
    let row = ro.query_one_raw(Statement::from_string(pg, "SELECT pg_is_in_recovery() AS r")).await;
    ro.commit().await.unwrap();
    assert!(row.unwrap().unwrap().try_get::<bool>("", "r").unwrap(), "a replica served it");
    assert!(db.stats().replica_reads() >= 21, "{:?}", db.stats());

    // A read that writes: refused on the replica (through its PgBouncer), run once on the
    // primary as a write.
    let primary_writes = db.stats().primary().writes();
    let row = db.query_one_raw(Statement::from_string(pg, "SELECT bump() AS b")).await;
    assert_eq!(row.unwrap().unwrap().try_get::<i32>("", "b").unwrap(), 1);
    assert_eq!(count(&tdb.primary_url(), "t").await, Some(1), "the primary ran it once");
    assert_eq!(db.stats().primary().writes(), primary_writes + 1);
    assert_eq!(db.stats().replica_refusals(), 1);
    db.execute_unprepared("DELETE FROM t").await.unwrap();

    // Read-your-writes through PgBouncer: every write is seen by the next read.
    for i in 0..20 {
        db.execute_unprepared(&format!("INSERT INTO t VALUES ({i})")).await.unwrap();
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                pg,
                "SELECT count(*) AS c FROM t WHERE id = $1",
                [i.into()],
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get::<i64>("", "c").unwrap(), 1, "write {i} is seen");
    }
    let ryw = db.stats().read_your_writes();
    // Each read right after its write reads the position first (through PgBouncer), unless a
    // sample of the primary taken since bounds the write.
    assert!(ryw.positions_captured >= 10 && ryw.capture_failures == 0, "{ryw:?}");
    assert!(ryw.replica_reads > 0, "some were served by a replica through PgBouncer: {ryw:?}");
    // A read within a feed interval of the last one may stay on that replica, which has the
    // write (monotonic reads, the default `Session`): counted as a last-node read.
    assert!(ryw.replica_reads + ryw.primary_reads + ryw.last_node_reads >= 20, "{ryw:?}");
    drop(db);
    drop(bouncers);
}

/// Through transaction pooling: the monitor's probes are single statements in the
/// simple protocol, each its own transaction on the server connection PgBouncer lends it. The
/// replica's server connections are watched directly while a fast monitor probes through
/// PgBouncer: none of the monitor's is ever seen inside a transaction or running a frame's
/// `BEGIN`/`COMMIT; DEALLOCATE ALL` (which it was, framed: three round trips a probe, the
/// server connection held across the client's pauses between them), and its statements are the
/// probes themselves. No application traffic runs meanwhile.
#[tokio::test]
async fn the_monitor_probes_through_transaction_pooling_in_single_statements() {
    use sqlx::Row as _;
    let cluster = shared(DbKind::Postgres);
    let tdb = cluster.create_database("pgb_probes").await.unwrap();
    let replica = &cluster.replicas()[0];
    let bouncer = replica.pgbouncer(PoolMode::Transaction).await.unwrap();
    let through = bouncer.url(&tdb.replica_urls()[0]);
    let db = RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replica(Replica::new(through).pooling(Pooling::Transaction))
        .monitor(
            rwsplit_sea_orm::advanced::MonitorConfig::default()
                .probe_interval(Duration::from_millis(50))
                .idle_probe_interval(Duration::from_millis(50)),
        )
        .connect()
        .await
        .unwrap();
    // The replica itself, not through PgBouncer: the test database's sessions there are
    // PgBouncer's server connections, and only the monitor's statements start from now on.
    let mut watch = crate::support::connect(&tdb.replica_urls()[0]).await;
    let since: String =
        sqlx::query_scalar("SELECT clock_timestamp()::text").fetch_one(&mut watch).await.unwrap();
    let sample = format!(
        "SELECT state, query FROM pg_stat_activity WHERE datname = '{}' \
         AND pid <> pg_backend_pid() AND query_start > '{since}'::timestamptz",
        tdb.name()
    );
    let (mut seen, mut probes) = (std::collections::BTreeSet::new(), 0);
    let mut every = tokio::time::interval(Duration::from_millis(5));
    for _ in 0..400 {
        every.tick().await;
        for row in
            sqlx::query(sqlx::AssertSqlSafe(sample.as_str())).fetch_all(&mut watch).await.unwrap()
        {
            let state: Option<String> = row.try_get(0).unwrap();
            let query: Option<String> = row.try_get(1).unwrap();
            let (state, query) = (state.unwrap_or_default(), query.unwrap_or_default());
            probes += usize::from(query.contains("pg_is_in_recovery()"));
            let framed = ["BEGIN", "COMMIT", "DEALLOCATE"].iter().any(|f| query.starts_with(f));
            if framed || state.contains("in transaction") {
                seen.insert(format!("{state}: {query}"));
            }
        }
    }
    assert!(seen.is_empty(), "the monitor's server connections were framed: {seen:?}");
    assert!(probes > 0, "the monitor's probes were seen on the replica");
    let failed: u64 = db.stats().nodes().iter().map(|n| n.failed_probes()).sum();
    assert_eq!(failed, 0, "no probe failed through PgBouncer");
    drop(db);
    drop(bouncer);
}

/// Behind transaction pooling rwsplit shares the pooler's server connection with other clients
/// (here one server connection for all): another client's prepared statement there survives
/// rwsplit's reads, and rwsplit leaves none of its own behind. The framing deallocates only
/// what sqlx prepared in rwsplit's own transaction; no `DEALLOCATE ALL` (which would have
/// removed the other client's statement) is sent, watched on the server.
#[tokio::test]
async fn behind_transaction_pooling_only_what_rwsplit_prepared_is_deallocated() {
    use sqlx::{Connection as _, Executor as _, Row as _};
    let cluster = shared(DbKind::Postgres);
    let tdb = cluster.create_database("pgb_own").await.unwrap();
    let replica = &cluster.replicas()[0];
    let bouncer = replica.pgbouncer_with(PoolMode::Transaction, 1).await.unwrap();
    let through = bouncer.url(&tdb.replica_urls()[0]);
    // Another client of the same pooler, in the simple protocol (nothing of sqlx's own
    // prepared): a statement of its own on the one server connection.
    let mut other = sqlx::PgConnection::connect(&through).await.unwrap();
    other.execute("PREPARE theirs AS SELECT 42 AS answer").await.unwrap();
    // The replica's server, directly: everything sent to it from now on, sampled.
    let mut watch = crate::support::connect(&tdb.replica_urls()[0]).await;
    let since: String =
        sqlx::query_scalar("SELECT clock_timestamp()::text").fetch_one(&mut watch).await.unwrap();

    let db = RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replica(Replica::new(through).pooling(Pooling::Transaction))
        .connect()
        .await
        .unwrap();
    let pg = db.get_database_backend();
    let sample = format!(
        "SELECT query FROM pg_stat_activity WHERE datname = '{}' \
         AND pid <> pg_backend_pid() AND query_start > '{since}'::timestamptz",
        tdb.name()
    );
    let mut sent = std::collections::BTreeSet::new();
    for i in 0..30 {
        let stmt = Statement::from_sql_and_values(pg, "SELECT $1::int AS i", [i.into()]);
        let read =
            RoutedConnection::scope(rwsplit_sea_orm::Target::Replica, db.query_one_raw(stmt));
        assert_eq!(read.await.unwrap().unwrap().try_get::<i32>("", "i").unwrap(), i);
        for row in
            sqlx::query(sqlx::AssertSqlSafe(sample.as_str())).fetch_all(&mut watch).await.unwrap()
        {
            sent.insert(row.try_get::<Option<String>, _>(0).unwrap().unwrap_or_default());
        }
    }
    assert!(db.stats().replica_reads() >= 30, "{:?}", db.stats());
    drop(db);

    let rows =
        other.fetch_all("EXECUTE theirs").await.expect("the other client's statement is there");
    assert_eq!(rows[0].try_get::<i32, _>("answer").unwrap(), 42);
    let left: i64 = other
        .fetch_one("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'sqlx\\_s\\_%'")
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "rwsplit left no statement of its own on the server connection");
    let cleared: Vec<&String> = sent.iter().filter(|q| q.contains("DEALLOCATE ALL")).collect();
    assert!(cleared.is_empty(), "DEALLOCATE ALL sent: {cleared:?}");
    eprintln!("behind transaction pooling, rwsplit's statements on the server: {sent:?}");
    other.close().await.unwrap();
    drop(bouncer);
}

/// A read-only transaction routed to a replica behind transaction pooling runs inside the
/// read pool's frame as a savepoint: its `COMMIT` or rollback does not end the frame, so what
/// it prepared is deallocated by the frame's end on the server connection it was prepared on.
/// One server connection for all, so a statement left there would be seen by the other client
/// and collide with the next pooled connection's `sqlx_s_1` (which it did: "prepared statement
/// \"sqlx_s_1\" already exists"). A transaction asking for an isolation level the frame cannot
/// give (a savepoint keeps read committed) runs on the primary instead, and succeeds.
#[tokio::test]
async fn read_only_transactions_behind_transaction_pooling_leave_nothing_prepared() {
    use sqlx::{Connection as _, Executor as _, Row as _};
    let cluster = shared(DbKind::Postgres);
    let tdb = cluster.create_database("pgb_txn").await.unwrap();
    let replica = &cluster.replicas()[0];
    let bouncer = replica.pgbouncer_with(PoolMode::Transaction, 1).await.unwrap();
    let through = bouncer.url(&tdb.replica_urls()[0]);
    let mut other = sqlx::PgConnection::connect(&through).await.unwrap();
    let mut opts = ConnectOptions::new(through);
    opts.max_connections(4);
    let db = RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replica(Replica::new(opts).pooling(Pooling::Transaction))
        .connect()
        .await
        .unwrap();
    let pg = db.get_database_backend();
    let in_recovery = "SELECT pg_is_in_recovery() AS r, $1::int AS i";
    for round in 0..5 {
        // Committed, rolled back, and dropped unfinished: each prepares a statement.
        for end in ["commit", "rollback", "drop"] {
            let txn = db.begin_with_config(None, Some(AccessMode::ReadOnly)).await.unwrap();
            let stmt = Statement::from_sql_and_values(pg, in_recovery, [round.into()]);
            let row = txn.query_one_raw(stmt).await.unwrap().unwrap();
            assert!(row.try_get::<bool>("", "r").unwrap(), "round {round}: a replica served it");
            match end {
                "commit" => txn.commit().await.unwrap(),
                "rollback" => txn.rollback().await.unwrap(),
                _ => drop(txn),
            }
        }
        // Reads on every pooled connection at once: a new one's first statement is `sqlx_s_1`.
        let reads = (0..8).map(|i| {
            let stmt = Statement::from_sql_and_values(pg, "SELECT $1::int AS i", [i.into()]);
            RoutedConnection::scope(rwsplit_sea_orm::Target::Replica, db.query_one_raw(stmt))
        });
        for (i, read) in futures_util::future::join_all(reads).await.into_iter().enumerate() {
            let row = read.unwrap_or_else(|e| panic!("round {round}, read {i}: {e}")).unwrap();
            assert_eq!(row.try_get::<i32>("", "i").unwrap(), i32::try_from(i).unwrap());
        }
    }
    // Until every release's frame end has run (in sqlx's release task), then none is left.
    let mut left = -1;
    for _ in 0..50 {
        left = other
            .fetch_one("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'sqlx\\_s\\_%'")
            .await
            .unwrap()
            .get::<i64, _>(0);
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(left, 0, "statements left on the one server connection");

    // REPEATABLE READ cannot be set in the frame's savepoint: the primary runs it.
    let txn = db
        .begin_with_config(
            Some(sea_orm::IsolationLevel::RepeatableRead),
            Some(AccessMode::ReadOnly),
        )
        .await
        .unwrap();
    let stmt = Statement::from_sql_and_values(pg, in_recovery, [0.into()]);
    let row = txn.query_one_raw(stmt).await.unwrap().unwrap();
    assert!(!row.try_get::<bool>("", "r").unwrap(), "the primary ran it");
    txn.commit().await.unwrap();
    drop(db);
    other.close().await.unwrap();
    drop(bouncer);
}
