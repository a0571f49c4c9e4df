//! rwsplit acts only on server sessions it opened (`docs/guide/operations.md`, *What rwsplit runs
//! on your servers*). Each test puts another client beside the application — a plain SeaORM
//! connection of the same database user, opened without rwsplit — and checks that nothing
//! rwsplit does reaches it.
//!
//! - Hedged reads under stalls: replica n1 stops for 300 ms every 900 ms (SIGSTOP, as a host
//!   under memory pressure or a noisy neighbour stalls it) while the application reads through
//!   `RoutedConnection` with default settings and the other client runs the very same statement
//!   text on n1, back to back. Reads waiting on n1 are hedged on n2 and their losing attempts
//!   dropped; none of the other client's statements may fail. Prints one
//!   `OWN-SESSIONS-FIGURES` line per database, with rwsplit's own losing attempts beside the
//!   other client's failures.
//! - Session settings: what rwsplit sets on its own sessions (read-only, and on PostgreSQL the
//!   client check that ends an abandoned statement) is not what another session of the same
//!   user sees.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rstest::rstest;
use rwsplit_sea_orm::RoutedConnection;
use rwsplit_testkit::DbKind;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};

use crate::support::{own_cluster, shared};

/// How long replica n1 stops each time, and how often.
const STALL: Duration = Duration::from_millis(300);
const PERIOD: Duration = Duration::from_millis(900);
/// How long the stall pattern runs.
const OVER: Duration = Duration::from_secs(15);
/// The application's concurrent readers (one task per read, as requests are).
const READERS: usize = 8;

/// The one statement text both clients run (prepared, as SeaORM runs an entity read).
fn read(backend: DbBackend, id: i32) -> Statement {
    let sql = match backend {
        DbBackend::Postgres => "SELECT v FROM shared_rows WHERE id = $1",
        _ => "SELECT v FROM shared_rows WHERE id = ?",
    };
    Statement::from_sql_and_values(backend, sql, [id.into()])
}

/// What one client saw.
#[derive(Debug, Default)]
struct Seen {
    ok: usize,
    failed: usize,
    /// The failures whose text says the server cancelled or interrupted the statement.
    cancelled: usize,
    first_error: Option<String>,
}

impl Seen {
    fn add(&mut self, r: Result<Option<sea_orm::QueryResult>, sea_orm::DbErr>) {
        match r {
            Ok(_) => self.ok += 1,
            Err(e) => {
                let text = e.to_string();
                self.failed += 1;
                if text.contains("canceling statement")
                    || text.contains("interrupted")
                    || text.contains("1317")
                    || text.contains("57014")
                {
                    self.cancelled += 1;
                }
                self.first_error.get_or_insert(text);
            }
        }
    }

    fn merge(&mut self, other: Seen) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.cancelled += other.cancelled;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// On PostgreSQL: sessions of n1's database the server ended because their client had gone
/// (`pg_stat_database.sessions_abandoned`, 14 and later).
async fn abandoned(url: &str) -> Option<i64> {
    let mut conn = crate::support::connect(url).await;
    sqlx::query_scalar::<_, i64>(
        "SELECT sessions_abandoned FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&mut conn)
    .await
    .ok()
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hedged_reads_under_stalls_never_reach_another_clients_statement(#[case] kind: DbKind) {
    // Not beside the Patroni tests, which time a switchover (see their `SERIAL`).
    let _heavy = crate::sea_orm_patroni::SERIAL.lock().await;
    let cluster = own_cluster(kind, "own_sessions", 2).await;
    let tdb = cluster.create_database("own_sessions").await.unwrap();
    {
        let setup = Database::connect(tdb.primary_url()).await.unwrap();
        setup
            .execute_unprepared("CREATE TABLE shared_rows (id INT PRIMARY KEY, v INT)")
            .await
            .unwrap();
        setup
            .execute_unprepared(
                "INSERT INTO shared_rows (id, v) VALUES (1, 1), (2, 2), (3, 3), (4, 4)",
            )
            .await
            .unwrap();
        setup.close().await.unwrap();
    }
    cluster.wait_caught_up(0, Duration::from_secs(10)).await.unwrap();
    let n1 = &cluster.replicas()[0];
    let n1_url = n1.url_for(tdb.name());
    let db = RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replicas(tdb.replica_urls())
        .connect()
        .await
        .expect("connects");
    // The other client: plain SeaORM straight to n1, the same user, not opened by rwsplit.
    let other = Database::connect(n1_url.as_str()).await.expect("the other client connects");
    let backend = db.get_database_backend();
    let before = if kind == DbKind::Postgres { abandoned(&n1_url).await } else { None };

    let stop = Arc::new(AtomicBool::new(false));
    let mut app = Vec::new();
    for r in 0..READERS {
        let (db, stop) = (db.clone(), Arc::clone(&stop));
        app.push(tokio::spawn(async move {
            let mut seen = Seen::default();
            let mut i = r;
            while !stop.load(Ordering::Relaxed) {
                let id = i32::try_from(i % 4).unwrap() + 1;
                let (db, stmt) = (db.clone(), read(backend, id));
                // A task per read, as a request is: no scope carries over.
                let r = tokio::spawn(async move { db.query_one_raw(stmt).await }).await.unwrap();
                seen.add(r);
                i += 1;
            }
            seen
        }));
    }
    let beside = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut seen = Seen::default();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                seen.add(other.query_one_raw(read(backend, (i % 4) + 1)).await);
                i += 1;
            }
            other.close().await.ok();
            seen
        })
    };
    let started = Instant::now();
    let mut stalls = 0;
    while started.elapsed() < OVER {
        tokio::time::sleep(PERIOD - STALL).await;
        n1.hang().unwrap();
        tokio::time::sleep(STALL).await;
        n1.unhang().unwrap();
        stalls += 1;
    }
    // The last losers have a moment to end on n1 before the counts are read.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut mine = Seen::default();
    for t in app {
        mine.merge(t.await.unwrap());
    }
    let theirs = beside.await.unwrap();
    let after = if kind == DbKind::Postgres { abandoned(&n1_url).await } else { None };
    let ended_by_n1 = before.zip(after).map(|(b, a)| a - b);
    let hedges = db.stats().hedges();
    eprintln!(
        "OWN-SESSIONS-FIGURES {kind}: {stalls} stalls of {STALL:?} every {PERIOD:?}; the other \
         client: {} statements, {} failed, {} cancelled; rwsplit: {} reads, {} failed, hedges \
         sent {}, won {}, losing attempts {} (sessions n1 ended for a client gone: {}), first \
         errors: other {:?}, rwsplit {:?}",
        theirs.ok + theirs.failed,
        theirs.failed,
        theirs.cancelled,
        mine.ok + mine.failed,
        mine.failed,
        hedges.sent,
        hedges.won,
        hedges.lost,
        ended_by_n1.map_or_else(|| "n/a".to_owned(), |n| n.to_string()),
        theirs.first_error,
        mine.first_error,
    );
    assert!(theirs.ok > 0, "the other client ran nothing: {theirs:?}");
    assert_eq!(theirs.failed, 0, "the other client's statements failed: {theirs:?}");
    assert_eq!(mine.failed, 0, "rwsplit's reads failed: {mine:?}");
    assert!(hedges.won >= 1 && hedges.lost >= 1, "the stalls left no read hedged: {hedges:?}");
    db.close().await.ok();
}

/// What a session of the application's user sees of a setting, on the node behind `url`.
async fn setting(url: &str, kind: DbKind, name: &str) -> String {
    let mut conn = crate::support::connect(url).await;
    let sql = match kind {
        DbKind::MariaDb => format!(
            "SELECT LOWER(VARIABLE_VALUE) FROM information_schema.SESSION_VARIABLES \
             WHERE VARIABLE_NAME = UPPER('{name}')"
        ),
        _ => format!("SELECT current_setting('{name}')"),
    };
    sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).fetch_one(&mut conn).await.unwrap()
}

/// The settings rwsplit makes on its own replica sessions are its sessions' alone: while they
/// are open and in use, a session of the same user opened beside them sees the server's
/// defaults, and rwsplit's sessions see theirs.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_settings_stay_on_rwsplits_own_sessions(#[case] kind: DbKind) {
    let cluster = shared(kind);
    let tdb = cluster.create_database("own_settings").await.unwrap();
    let db = RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replicas(tdb.replica_urls())
        .connect()
        .await
        .expect("connects");
    let replica_url = cluster.replicas()[0].url_for(tdb.name());
    let (read_only, mine_ro, checked) = match kind {
        DbKind::MariaDb => ("tx_read_only", "on", None),
        _ => (
            "default_transaction_read_only",
            "on",
            Some(("client_connection_check_interval", "250ms")),
        ),
    };
    // rwsplit's sessions, on the replicas: their own settings (a read the primary served has
    // nothing to show here, so only replica reads are checked, and there must be some).
    let backend = db.get_database_backend();
    let on_replica = |name: &str| {
        // From a table on MariaDB: the classifier sends `@@` variables to the primary.
        let sql = match kind {
            DbKind::MariaDb => format!(
                "SELECT LOWER(VARIABLE_VALUE) AS v FROM information_schema.SESSION_VARIABLES \
                 WHERE VARIABLE_NAME = UPPER('{name}')"
            ),
            _ => format!("SELECT current_setting('{name}') AS v"),
        };
        let db = db.clone();
        async move {
            let before = db.stats().replica_reads();
            let row = db.query_one_raw(Statement::from_string(backend, sql)).await.unwrap();
            let v: String = row.unwrap().try_get("", "v").unwrap();
            (db.stats().replica_reads() > before).then_some(v)
        }
    };
    let mut checked_on_replicas = 0;
    for _ in 0..8 {
        if let Some(v) = on_replica(read_only).await {
            assert_eq!(v, mine_ro, "rwsplit's replica session is read-only");
            checked_on_replicas += 1;
        }
        if let Some((name, value)) = checked
            && let Some(v) = on_replica(name).await
        {
            assert_eq!(
                v, value,
                "rwsplit's replica sessions end a statement whose client has gone"
            );
        }
    }
    assert!(checked_on_replicas > 0, "no read reached a replica: {:?}", db.stats());
    // Another session of the same user, beside them, on the same replica: the defaults.
    let theirs = setting(&replica_url, kind, read_only).await;
    assert_ne!(theirs, mine_ro, "another session of the same user is not made read-only");
    if let Some((name, _)) = checked {
        assert_eq!(setting(&replica_url, kind, name).await, "0", "nor given rwsplit's check");
    }
    db.close().await.ok();
}
