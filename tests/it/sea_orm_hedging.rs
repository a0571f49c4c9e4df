//! A hedged read's losing attempt ends on its own server, and nothing is sent to cancel it: a
//! replica that answers one read slowly (a sleep only that server takes) leaves the read
//! unanswered past its hedge delay; the hedge on another node answers first, the first attempt
//! is dropped and its connection closed. On PostgreSQL the slow replica ends that session's
//! statement by itself (`client_connection_check_interval`, which rwsplit sets on its own
//! replica sessions), asserted on that server: the statement would otherwise sleep on for ten
//! seconds. On MariaDB, which has no such check, the statement runs to its end; rwsplit sends
//! no `KILL`, since finding the statement would mean picking a session by its text. Prints one
//! `HEDGE-LOSER-FIGURES` line per database.

use std::time::{Duration, Instant};

use rstest::rstest;
use rwsplit_sea_orm::RoutedConnection;
use rwsplit_testkit::DbKind;
use sea_orm::{ConnectionTrait, Statement};
use sqlx::Connection;

use crate::support::shared;

/// How long the slow replica sleeps in the read; PostgreSQL must end it long before.
const SLEEP_S: u32 = 10;
/// By when the losing statement must be gone from the slow PostgreSQL replica, from the read's
/// answer (the client check runs every 250 ms).
const GONE_WITHIN: Duration = Duration::from_secs(3);

/// Whether a read now runs straight on the node's pool, whose connection a dropped attempt
/// closes ([`rwsplit_sea_orm`]'s direct path): not while any subscriber listens at `trace`
/// level (then reads go through SeaORM's `DatabaseConnection`, which keeps the connection and
/// lets the statement run to its end). Another test of this binary installs one for a few
/// seconds (`passwords_never_show_anywhere`). `tracing` lowers its level hint only when asked
/// to look at the subscribers again, not when one is dropped: this asks. With no subscriber
/// at all the hint is `trace` (nothing says otherwise), so the test installs the suite's
/// baseline one first ([`crate::support::tracing_baseline`], `RUST_LOG` or errors only).
fn reads_go_direct() -> bool {
    tracing::callsite::rebuild_interest_cache();
    tracing_subscriber::filter::LevelFilter::current()
        < tracing_subscriber::filter::LevelFilter::TRACE
}

#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hedged_reads_losing_statement_ends_on_its_own_server(#[case] kind: DbKind) {
    crate::support::tracing_baseline();
    let cluster = shared(kind);
    let tdb = cluster.create_database("hedge_cancel").await.unwrap();
    let db = RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replicas(tdb.replica_urls())
        .connect()
        .await
        .expect("connects");
    let slow = &cluster.replicas()[0];
    let port = slow.port();
    let backend = db.get_database_backend();
    let mut on_slow = crate::support::connect(&slow.url_for(tdb.name())).await;
    let mut slowest = Duration::ZERO;
    // Rounds, each with a text of its own, until one ran wholly on the direct path: the other
    // test's subscriber lives for seconds, under load for tens of seconds.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut round = 0;
    while Instant::now() < deadline {
        if !reads_go_direct() {
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        round += 1;
        // Slow on that one server only: every node runs the same text, which sleeps where the
        // server's port is the slow replica's.
        let sql = match kind {
            DbKind::MariaDb => {
                format!("SELECT SLEEP(IF(@@global.port = {port}, {SLEEP_S}, 0)) AS v{round}")
            }
            _ => format!(
                "SELECT {round} AS v FROM pg_sleep(CASE WHEN current_setting('port') = \
                 '{port}' THEN {SLEEP_S} ELSE 0 END)"
            ),
        };
        // One read at a time (so the loser is the only such statement on the slow server),
        // until one was hedged and its hedge won.
        let won = db.stats().hedges().won;
        let mut answered = None;
        for _ in 0..40 {
            let started = Instant::now();
            db.query_one_raw(Statement::from_string(backend, sql.clone()))
                .await
                .expect("the read is answered")
                .expect("one row");
            slowest = slowest.max(started.elapsed());
            if db.stats().hedges().won > won {
                answered = Some(Instant::now());
                break;
            }
        }
        let answered = answered.unwrap_or_else(|| panic!("no read was hedged: {:?}", db.stats()));
        assert!(slowest < Duration::from_secs(1), "a read took {slowest:?}");
        if !reads_go_direct() {
            continue;
        }
        // The losing statement, on the slow server.
        let running = match kind {
            DbKind::MariaDb => format!(
                "SELECT CAST(COUNT(*) AS SIGNED) FROM information_schema.PROCESSLIST \
                 WHERE ID <> CONNECTION_ID() AND INFO LIKE 'SELECT SLEEP(%) AS v{round}'"
            ),
            _ => format!(
                "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() \
                 AND datname = current_database() AND query LIKE 'SELECT {round} AS v FROM pg_sleep(%'"
            ),
        };
        // Polled: nothing on the server announces a statement's end to another session.
        let gone = loop {
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(running.clone()))
                .fetch_one(&mut on_slow)
                .await
                .unwrap();
            if n == 0 {
                break Some(answered.elapsed());
            }
            if answered.elapsed() > GONE_WITHIN {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let hedges = db.stats().hedges();
        eprintln!(
            "HEDGE-LOSER-FIGURES {kind}: round {round}; slowest read {slowest:?}; losing \
             statement gone {gone:?} after the read's answer; {hedges:?}"
        );
        if kind == DbKind::Postgres {
            assert!(
                gone.is_some(),
                "the losing statement still runs on the slow replica: {hedges:?}"
            );
        }
        assert!(hedges.lost >= 1, "counted: {hedges:?}");
        on_slow.close().await.ok();
        return;
    }
    panic!("no round ran with reads on the direct path in 90 s (a trace-level subscriber stayed)");
}
