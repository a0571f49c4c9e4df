//! On real servers: what the SQL text cannot show, the replica tells. User functions,
//! a procedure and views that write, called as reads through `RoutedConnection` next to other
//! traffic: no error reaches the caller, each shape is refused once (then run once on the
//! primary) and later calls go to the primary directly; with `OnReplicaRefusal::Fail` the
//! error names the function; a corpus of our own statements sees no routing error at all.

use std::time::Duration;

use futures_util::TryStreamExt;
use rstest::rstest;
use rwsplit_sea_orm::{OnReplicaRefusal, RoutedConnection, RoutingError, routing_error};
use rwsplit_testkit::{DbKind, TestDatabase};
use sea_orm::{AccessMode, ConnectionTrait, DbErr, Statement, StreamTrait, TransactionTrait};

use crate::support::{count, shared};

/// Objects that write behind a read's back: functions (SQL, PL/pgSQL with `INSERT`, `MERGE`,
/// DDL; MariaDB stored functions), a set-returning function, views over a writing function or
/// a write-list built-in, and a procedure (a `CALL`, classified as a write). Every call of
/// them adds one row to `t` (the view over `pg_current_xact_id()` excepted), so the row count
/// proves each ran once.
fn setup(kind: DbKind) -> &'static str {
    match kind {
        DbKind::MariaDb => {
            "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, src VARCHAR(64) NOT NULL); \
             CREATE TABLE m (k INT PRIMARY KEY, n INT NOT NULL); \
             CREATE TABLE bg (id INT PRIMARY KEY); \
             CREATE FUNCTION bump(tag VARCHAR(64)) RETURNS INT DETERMINISTIC MODIFIES SQL DATA \
             BEGIN INSERT INTO t (src) VALUES (tag); RETURN 1; END; \
             CREATE FUNCTION tally(key_ INT) RETURNS INT DETERMINISTIC MODIFIES SQL DATA \
             BEGIN INSERT INTO m VALUES (key_, 1) ON DUPLICATE KEY UPDATE n = n + 1; \
             INSERT INTO t (src) VALUES ('tally'); RETURN 1; END; \
             CREATE VIEW bumped AS SELECT bump('view') AS r; \
             CREATE PROCEDURE enroll(tag VARCHAR(64)) MODIFIES SQL DATA \
             INSERT INTO t (src) VALUES (tag)"
        }
        _ => {
            "CREATE TABLE t (id serial PRIMARY KEY, src text NOT NULL); \
             CREATE TABLE m (k int PRIMARY KEY, n int NOT NULL); \
             CREATE TABLE bg (id int PRIMARY KEY); \
             CREATE FUNCTION bump(tag text) RETURNS int LANGUAGE sql \
             AS $$ INSERT INTO t (src) VALUES (tag) RETURNING 1 $$; \
             CREATE FUNCTION note(tag text) RETURNS int LANGUAGE plpgsql \
             AS $$ BEGIN INSERT INTO t (src) VALUES (tag); RETURN 1; END $$; \
             CREATE FUNCTION tally(key_ int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN \
             MERGE INTO m USING (SELECT key_ AS k) s ON m.k = s.k \
             WHEN MATCHED THEN UPDATE SET n = m.n + 1 WHEN NOT MATCHED THEN INSERT VALUES (s.k, 1); \
             INSERT INTO t (src) VALUES ('tally'); RETURN 1; END $$; \
             CREATE FUNCTION make_table(name text) RETURNS int LANGUAGE plpgsql AS $$ BEGIN \
             EXECUTE format('CREATE TABLE IF NOT EXISTS %I (id int)', name); \
             INSERT INTO t (src) VALUES ('ddl'); RETURN 1; END $$; \
             CREATE FUNCTION made_rows() RETURNS SETOF int LANGUAGE plpgsql \
             AS $$ BEGIN INSERT INTO t (src) VALUES ('srf'); RETURN NEXT 1; END $$; \
             CREATE VIEW xact AS SELECT pg_current_xact_id()::text AS x; \
             CREATE VIEW bumped AS SELECT bump('view') AS r; \
             CREATE PROCEDURE enroll(tag text) LANGUAGE sql \
             AS $$ INSERT INTO t (src) VALUES (tag) $$; \
             CREATE FUNCTION slow_bump(tag text) RETURNS int LANGUAGE plpgsql \
             AS $$ BEGIN PERFORM pg_sleep(0.3); INSERT INTO t (src) VALUES (tag); RETURN 1; END $$"
        }
    }
}

/// The calls: (statement for call `i`, rows it adds to `t`, refused on a replica). Each is one
/// shape whatever `i` is.
fn calls(kind: DbKind, i: usize) -> Vec<(String, i64, bool)> {
    let mut v = vec![
        (format!("SELECT bump('b{i}') AS r"), 1, true),
        (format!("SELECT tally({}) AS r", i % 2), 1, true),
        ("SELECT r FROM bumped".to_owned(), 1, true),
        (format!("CALL enroll('p{i}')"), 1, false),
    ];
    if kind == DbKind::Postgres {
        v.extend([
            (format!("SELECT note('n{i}') AS r"), 1, true),
            (format!("SELECT make_table('made_{i}') AS r"), 1, true),
            ("SELECT * FROM made_rows() AS r".to_owned(), 1, true),
            ("SELECT x FROM xact".to_owned(), 0, true),
        ]);
    }
    v
}

async fn database(kind: DbKind, name: &str) -> TestDatabase {
    let cluster = shared(kind);
    let tdb = cluster.create_database(name).await.unwrap();
    // As the superuser: MariaDB with a binary log lets only it create a writing function.
    cluster.primary().execute(tdb.name(), setup(kind)).await.unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(20)).await.unwrap();
    tdb
}

async fn builder(tdb: &TestDatabase) -> rwsplit_sea_orm::RoutedConnectionBuilder {
    RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replicas(tdb.replica_urls())
        // Off: every read is eligible for a replica, so each shape's first call is refused
        // whatever ran before it (the read-your-writes test below has it on).
        .read_your_writes(false)
}

/// Writes and reads of other tasks, until `stop`: the traffic the refusals run among. Returns
/// how many statements ran; any error fails the test.
fn traffic(db: &RoutedConnection, lane: i64) -> tokio::task::JoinHandle<u64> {
    let db = db.clone();
    tokio::spawn(async move {
        let backend = db.get_database_backend();
        let mut ran = 0;
        for k in 0..60 {
            let id = lane * 1_000 + k;
            db.execute_unprepared(&format!("INSERT INTO bg (id) VALUES ({id})")).await.unwrap();
            let read = Statement::from_string(backend, "SELECT count(*) AS c FROM bg");
            db.query_one_raw(read).await.unwrap().expect("a count");
            ran += 2;
        }
        ran
    })
}

/// Each function, view and procedure, called four times with other values as reads, next to
/// four tasks of other traffic: 0 errors; each refused shape refused once (its first call, then
/// run once on the primary), later calls on the primary directly; every call ran exactly once.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writing_functions_and_views_called_as_reads_run_once_on_the_primary(#[case] kind: DbKind) {
    let tdb = database(kind, "refusals").await;
    let db = builder(&tdb).await.connect().await.unwrap();
    let backend = db.get_database_backend();
    let lanes: Vec<_> = (0..4).map(|lane| traffic(&db, lane)).collect();
    let (mut rows, mut shapes) = (0, 0);
    for i in 0..4 {
        for (sql, adds, refused) in calls(kind, i) {
            let out = db.query_all_raw(Statement::from_string(backend, sql.clone())).await;
            let out = out.unwrap_or_else(|e| panic!("{sql}: {e}"));
            if !sql.starts_with("CALL") {
                assert_eq!(out.len(), 1, "{sql}");
            }
            rows += adds;
            shapes += u64::from(refused && i == 0);
        }
        // Bound parameters: the same shape as the literal call, already learned.
        let stmt = Statement::from_sql_and_values(
            backend,
            if kind == DbKind::MariaDb { "SELECT bump(?) AS r" } else { "SELECT bump($1) AS r" },
            [format!("bound{i}").into()],
        );
        db.query_one_raw(stmt).await.unwrap().expect("a row");
        rows += 1;
    }
    let mut ran = 0;
    for lane in lanes {
        ran += lane.await.expect("the traffic ran without an error");
    }
    let stats = db.stats();
    assert_eq!(stats.replica_refusals(), shapes, "one refusal per shape: {stats:?}");
    assert_eq!(stats.learned_writes(), shapes);
    assert_eq!(count(&tdb.primary_url(), "t").await, Some(rows), "each call ran once");
    assert_eq!(count(&tdb.primary_url(), "bg").await, Some(4 * 60));
    assert!(stats.replica_reads() > 0 && ran == 4 * 120, "the traffic's reads used replicas");
}

/// A refused read ran as a write: the caller's next read sees what it wrote (read-your-writes,
/// on by default), each time in a fresh task whose first statement it is.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_refused_read_wrote_is_read_back_by_its_caller(#[case] kind: DbKind) {
    let tdb = database(kind, "refusals_ryw").await;
    let db = builder(&tdb).await.read_your_writes(true).connect().await.unwrap();
    for i in 0..10 {
        let db = db.clone();
        tokio::spawn(async move {
            let backend = db.get_database_backend();
            // A new shape each time (its alias), so each is refused and run on the primary.
            let call = format!("SELECT bump('ryw{i}') AS r{i}");
            db.query_one_raw(Statement::from_string(backend, call)).await.unwrap();
            let read = format!("SELECT count(*) AS c FROM t WHERE src = 'ryw{i}'");
            let row = db.query_one_raw(Statement::from_string(backend, read)).await.unwrap();
            let seen: i64 = row.unwrap().try_get("", "c").unwrap();
            assert_eq!(seen, 1, "call {i}: its own write is seen");
        })
        .await
        .unwrap();
    }
    let refusals = db.stats().replica_refusals();
    assert!(refusals >= 1, "the calls were refused by a replica first: {:?}", db.stats());
    assert_eq!(count(&tdb.primary_url(), "t").await, Some(10));
}

/// With `OnReplicaRefusal::Fail`: the refused call fails with `RoutingError::ReplicaRefused`
/// naming the function, no value, and never runs on the primary; the shape is learned, so the
/// next call goes to the primary and succeeds.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_fail_the_refusal_is_an_error_naming_the_function(#[case] kind: DbKind) {
    let tdb = database(kind, "refusals_fail").await;
    let db = builder(&tdb).await.on_replica_refusal(OnReplicaRefusal::Fail).connect().await;
    let db = db.unwrap();
    let backend = db.get_database_backend();
    let call = Statement::from_string(backend, "SELECT bump('secret-value') AS r");
    let err = db.query_one_raw(call).await.expect_err("refused, not moved");
    assert!(matches!(err, DbErr::Query(_)), "{err:?}");
    let Some(RoutingError::ReplicaRefused { statement, .. }) = routing_error(&err) else {
        panic!("not a replica's refusal: {err:?}")
    };
    assert_eq!(statement.as_deref(), Some("select bump ( ? ) as r "));
    let text = err.to_string();
    assert!(text.contains("bump") && !text.contains("secret-value"), "{text}");
    assert_eq!(count(&tdb.primary_url(), "t").await, Some(0), "never run on the primary");
    let again = Statement::from_string(backend, "SELECT bump('next') AS r");
    db.query_one_raw(again).await.expect("learned: the primary").expect("a row");
    assert_eq!(count(&tdb.primary_url(), "t").await, Some(1));
    assert_eq!(db.stats().replica_refusals(), 1);
}

/// `stream_raw` (SeaORM's `.stream()`): a stream's statement runs when it is read, after the
/// call that made it returned, so a read's first row is read ahead: a writing function
/// streamed as a read is refused by the replica inside the router, runs once on the primary and
/// no error reaches the caller; a plain streamed read on a replica keeps every row, the first
/// included, and an empty one ends.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_read_that_writes_runs_once_on_the_primary(#[case] kind: DbKind) {
    let tdb = database(kind, "refusals_stream").await;
    let db = builder(&tdb).await.connect().await.unwrap();
    let backend = db.get_database_backend();
    for i in 0..3 {
        let call = Statement::from_string(backend, format!("SELECT bump('s{i}') AS r"));
        let stream = db.stream_raw(call).await.unwrap_or_else(|e| panic!("call {i}: {e}"));
        let rows: Vec<_> = stream.try_collect().await.unwrap_or_else(|e| panic!("call {i}: {e}"));
        assert_eq!(rows.len(), 1, "call {i}");
    }
    assert_eq!(count(&tdb.primary_url(), "t").await, Some(3), "each call ran once");
    let stats = db.stats();
    assert_eq!((stats.replica_refusals(), stats.learned_writes()), (1, 1), "{stats:?}");

    db.execute_unprepared("INSERT INTO bg (id) VALUES (1), (2), (3), (4), (5)").await.unwrap();
    shared(kind).wait_caught_up(0, Duration::from_secs(20)).await.unwrap();
    let reads = db.stats().replica_reads();
    let all = Statement::from_string(backend, "SELECT id FROM bg ORDER BY id");
    let rows: Vec<_> = db.stream_raw(all).await.unwrap().try_collect().await.unwrap();
    let ids: Vec<i32> = rows.iter().map(|r| r.try_get("", "id").unwrap()).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    let none = Statement::from_string(backend, "SELECT id FROM bg WHERE id < 0");
    let rows: Vec<_> = db.stream_raw(none).await.unwrap().try_collect().await.unwrap();
    assert!(rows.is_empty());
    assert_eq!(db.stats().replica_reads(), reads + 2, "both streamed reads ran on replicas");
}

/// The first calls of one shape from eight tasks at once, before any was refused: every call
/// succeeds and runs exactly once; the shape is learned once, and the calls after it are not
/// refused.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_calls_of_one_shape_at_once_all_succeed_and_run_once(#[case] kind: DbKind) {
    let tdb = database(kind, "refusals_at_once").await;
    let db = builder(&tdb).await.connect().await.unwrap();
    let calls = |round: usize| {
        (0..8)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move {
                    let sql = format!("SELECT bump('r{round}c{i}') AS r");
                    let call = Statement::from_string(db.get_database_backend(), sql);
                    db.query_one_raw(call).await.map(|row| row.is_some())
                })
            })
            .collect::<Vec<_>>()
    };
    for task in calls(0) {
        assert!(task.await.unwrap().unwrap(), "a row");
    }
    let refusals = db.stats().replica_refusals();
    assert!((1..=8).contains(&refusals), "{:?}", db.stats());
    assert_eq!(db.stats().learned_writes(), 1);
    assert_eq!(count(&tdb.primary_url(), "t").await, Some(8), "each call ran once");
    for task in calls(1) {
        assert!(task.await.unwrap().unwrap(), "a row");
    }
    assert_eq!(db.stats().replica_refusals(), refusals, "learned: no more refusals");
    assert_eq!(count(&tdb.primary_url(), "t").await, Some(16));
}

/// What one connection learned is the database's: another `RoutedConnection` to it in the
/// process (pools and settings of its own) sends the shape to the primary without a refusal;
/// a connection to another database of the same servers learns for itself.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shape_one_connection_learned_goes_to_the_primary_from_the_others(#[case] kind: DbKind) {
    let tdb = database(kind, "refusals_learned").await;
    let tenant = database(kind, "refusals_learned_tenant").await;
    let call = |db: &RoutedConnection, tag: &str| {
        let sql = format!("SELECT bump('{tag}') AS r");
        let stmt = Statement::from_string(db.get_database_backend(), sql);
        let db = db.clone();
        async move { db.query_one_raw(stmt).await.unwrap().expect("a row") }
    };
    let first = builder(&tdb).await.connect().await.unwrap();
    call(&first, "first").await;
    assert_eq!(first.stats().replica_refusals(), 1);
    let second = builder(&tdb).await.read_retries(2).connect().await.unwrap();
    call(&second, "second").await;
    assert_eq!(second.stats().replica_refusals(), 0, "learned by the first: {:?}", second.stats());
    assert_eq!(second.stats().learned_writes(), 1);
    assert_eq!(count(&tdb.primary_url(), "t").await, Some(2));
    let other = builder(&tenant).await.connect().await.unwrap();
    call(&other, "tenant").await;
    assert_eq!(other.stats().replica_refusals(), 1, "another database learns for itself");
}

/// Inside an explicit transaction (here a read-only one a replica runs) a refusal is the
/// caller's: the transaction's statements are its own, and nothing is run again elsewhere.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_an_explicit_transaction_a_refusal_is_the_callers(#[case] kind: DbKind) {
    let tdb = database(kind, "refusals_txn").await;
    let db = builder(&tdb).await.read_only_transactions_on_replicas(true).connect().await;
    let db = db.unwrap();
    let txn = db.begin_with_config(None, Some(AccessMode::ReadOnly)).await.unwrap();
    let call = Statement::from_string(db.get_database_backend(), "SELECT bump('txn') AS r");
    txn.query_one_raw(call).await.expect_err("a write in a read-only transaction");
    txn.rollback().await.unwrap();
    assert_eq!(count(&tdb.primary_url(), "t").await, Some(0), "not run again on the primary");
    assert_eq!(db.stats().replica_refusals(), 0, "the transaction's, not the router's");
}

/// The caller's deadline holds: a call refused after it has passed is not run on the primary
/// (here the function sleeps 300 ms before it writes, so the replica refuses it late and the
/// read is given up at the 150 ms deadline); within a deadline that leaves time, the refused
/// call runs once on the primary. PostgreSQL only: MariaDB opens (and so refuses) the tables a
/// statement's functions write before it runs any of it, so its refusal is never late, and a
/// write once sent is never cut short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_read_runs_on_the_primary_only_within_the_callers_deadline() {
    let kind = DbKind::Postgres;
    let tdb = database(kind, "refusals_deadline").await;
    let db = builder(&tdb).await.connect().await.unwrap();
    let backend = db.get_database_backend();
    let late = Statement::from_string(backend, "SELECT slow_bump('late') AS r");
    let short = RoutedConnection::deadline(Duration::from_millis(150), db.query_one_raw(late));
    short.await.expect_err("given up at the deadline");
    assert_eq!(db.stats().replica_refusals(), 0, "given up before the replica refused");
    let in_time = Statement::from_string(backend, "SELECT slow_bump('in time') AS r");
    let long = RoutedConnection::deadline(Duration::from_secs(10), db.query_one_raw(in_time));
    long.await.expect("refused, then run on the primary").expect("a row");
    assert_eq!(db.stats().replica_refusals(), 1);
    let rows = Statement::from_string(backend, "SELECT src FROM t");
    let on_primary = db.consistent(rwsplit_sea_orm::Consistency::Strong);
    let srcs: Vec<String> = on_primary
        .query_all_raw(rows)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get("", "src").unwrap())
        .collect();
    assert_eq!(srcs, ["in time"], "the late call never ran on the primary");
}

/// Our own corpus: reads of every kind, writes, and reads that write only behind a function or
/// view, in every place a read can call one (a CTE, a subquery, `CASE`, a `WHERE`, `VALUES`, a
/// join, a set-returning function), a table made by DDL a moment ago (the replica may not
/// have it yet), `EXPLAIN` of a writing call (which does not run it). Each runs through a
/// `RoutedConnection` and succeeds: 0 routing errors reach the caller.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_corpus_sees_no_routing_error(#[case] kind: DbKind) {
    let tdb = database(kind, "refusals_corpus").await;
    let db = builder(&tdb).await.connect().await.unwrap();
    let backend = db.get_database_backend();
    let common = [
        "SELECT 1 AS one",
        "SELECT count(*) AS c FROM t",
        "SELECT bump('c1') AS r",
        "SELECT bump('c2') AS r, 1 AS one",
        "SELECT r FROM bumped",
        "SELECT (SELECT bump('c3')) AS r",
        "SELECT CASE WHEN 1 = 1 THEN bump('c4') END AS r",
        "SELECT count(*) AS c FROM bg WHERE bump('c5') = 1",
        "SELECT tally(7) AS r",
        "SELECT tally(k) AS r FROM (SELECT 1 AS k UNION ALL SELECT 2) AS v",
        "SELECT count(*) AS c FROM m JOIN bumped ON bumped.r = 1",
        "INSERT INTO bg (id) VALUES (1)",
        "SELECT count(*) AS c FROM bg",
        "UPDATE bg SET id = 2 WHERE id = 1",
        "DELETE FROM bg WHERE id = 2",
        "SELECT bump('c6') AS r",
    ];
    let own: &[&str] = match kind {
        DbKind::MariaDb => &[
            "SHOW TABLES",
            "SELECT @@read_only AS ro",
            "EXPLAIN SELECT * FROM t WHERE id = 1",
            "SELECT GREATEST(bump('m1'), 0) AS r",
            "CALL enroll('m2')",
        ],
        _ => &[
            "WITH x AS (SELECT bump('c7') AS r) SELECT r FROM x",
            "VALUES (bump('c8'))",
            "SELECT ARRAY(SELECT note('c9')) AS r",
            "SELECT * FROM made_rows() AS r",
            "SELECT x FROM xact",
            "SELECT x, 2 AS two FROM xact",
            "SELECT make_table('corpus_made') AS r",
            "SELECT count(*) AS c FROM corpus_made",
            "EXPLAIN SELECT bump('not run')",
            "SHOW transaction_read_only",
            "SELECT pg_current_xact_id()::text AS x",
            "SELECT nextval(pg_get_serial_sequence('t', 'id')) AS n",
            "TABLE m",
            "CALL enroll('c10')",
        ],
    };
    let mut errors = Vec::new();
    for sql in common.iter().chain(own) {
        if let Err(e) = db.query_all_raw(Statement::from_string(backend, *sql)).await {
            errors.push(format!("{sql}: {e} (routing error: {:?})", routing_error(&e)));
        }
    }
    assert!(errors.is_empty(), "errors reached the caller:\n{}", errors.join("\n"));
    let stats = db.stats();
    assert!(stats.replica_refusals() >= 5, "the replicas refused the hidden writes: {stats:?}");
    assert!(stats.replica_reads() >= 3, "the plain reads used replicas: {stats:?}");
}

/// Functions an application might keep in PostgreSQL: five that only read (three left at
/// PostgreSQL's default volatility, `VOLATILE`, as most are) and three that write.
const CATALOG_SCHEMA: &str = "\
    CREATE TABLE t (id serial PRIMARY KEY, src text NOT NULL); \
    CREATE TABLE m (k int PRIMARY KEY, n int NOT NULL); \
    INSERT INTO t (src) SELECT 'seed' FROM generate_series(1, 20); \
    CREATE FUNCTION full_name(a text, b text) RETURNS text LANGUAGE sql AS $$ SELECT a || ' ' || b $$; \
    CREATE FUNCTION with_tax(p numeric) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$ SELECT p * 1.2 $$; \
    CREATE FUNCTION newer_than(k int) RETURNS bigint LANGUAGE sql STABLE \
      AS $$ SELECT count(*) FROM t WHERE id > k $$; \
    CREATE FUNCTION recent(n int) RETURNS SETOF t LANGUAGE sql \
      AS $$ SELECT * FROM t ORDER BY id DESC LIMIT n $$; \
    CREATE FUNCTION above(k int) RETURNS int LANGUAGE plpgsql \
      AS $$ BEGIN RETURN (SELECT count(*) FROM t WHERE id > k); END $$; \
    CREATE FUNCTION bump(tag text) RETURNS int LANGUAGE sql \
      AS $$ INSERT INTO t (src) VALUES (tag) RETURNING 1 $$; \
    CREATE FUNCTION note(tag text) RETURNS int LANGUAGE plpgsql \
      AS $$ BEGIN INSERT INTO t (src) VALUES (tag); RETURN 1; END $$; \
    CREATE FUNCTION tally(key_ int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN \
      INSERT INTO m VALUES (key_, 1) ON CONFLICT (k) DO UPDATE SET n = m.n + 1; RETURN 1; END $$";

/// Would the catalog help? A catalog-fed router would send every call of a
/// `VOLATILE` user function to the primary (PostgreSQL refuses writes only inside `STABLE` and
/// `IMMUTABLE` ones); it is simulated exactly by a classifier given those names, read from
/// `pg_proc` as the monitor would. Measured on a real cluster against the refusal alone: the
/// share of read-only calls the replicas serve (precision), refusals (the first-call cost) and
/// errors. The figures are printed (`--nocapture`); the test holds what the choice
/// rests on: the refusal alone loses no read and lets no error through, the catalog loses the
/// reads of every function left `VOLATILE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_would_cost_reads_that_the_refusal_keeps() {
    let cluster = shared(DbKind::Postgres);
    let tdb = cluster.create_database("refusals_catalog").await.unwrap();
    cluster.primary().execute(tdb.name(), CATALOG_SCHEMA).await.unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(20)).await.unwrap();
    let volatile: Vec<String> = {
        let mut c = crate::support::connect(&tdb.primary_url()).await;
        sqlx::query_scalar(
            "SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname = 'public' AND p.provolatile = 'v' ORDER BY 1",
        )
        .fetch_all(&mut c)
        .await
        .unwrap()
    };
    assert_eq!(volatile, ["above", "bump", "full_name", "note", "recent", "tally"]);
    let reads = |i: usize| {
        [
            format!("SELECT full_name('a{i}', 'b') AS r"),
            format!("SELECT with_tax({i}) AS r"),
            format!("SELECT newer_than({i}) AS r"),
            format!("SELECT id FROM recent({}) AS r", i % 5 + 1),
            format!("SELECT above({i}) AS r"),
        ]
    };
    let writes = |i: usize| {
        [
            format!("SELECT bump('w{i}') AS r"),
            format!("SELECT note('w{i}') AS r"),
            format!("SELECT tally({}) AS r", i % 3),
        ]
    };
    let mut lines = Vec::new();
    let mut served = Vec::new();
    for catalog in [false, true] {
        let mut b = builder(&tdb).await;
        if catalog {
            b = b.classifier(rwsplit_core::Classifier::default().with_write_functions(&volatile));
        }
        let db = b.connect().await.unwrap();
        let backend = db.get_database_backend();
        // Warm pools on every node, so a first call's time is the refusal's, not a connect's.
        for _ in 0..6 {
            db.query_all_raw(Statement::from_string(backend, "SELECT 1 AS one")).await.unwrap();
        }
        db.execute_unprepared("UPDATE m SET n = n WHERE false").await.unwrap();
        let (mut errors, mut first, mut later) = (0, Vec::new(), Vec::new());
        for i in 0..20 {
            for sql in writes(i) {
                let started = std::time::Instant::now();
                errors += usize::from(
                    db.query_all_raw(Statement::from_string(backend, sql)).await.is_err(),
                );
                if i == 0 { &mut first } else { &mut later }.push(started.elapsed());
            }
        }
        let before = db.stats().replica_reads();
        for i in 0..20 {
            for sql in reads(i) {
                errors += usize::from(
                    db.query_all_raw(Statement::from_string(backend, sql)).await.is_err(),
                );
            }
        }
        let on_replicas = db.stats().replica_reads() - before;
        let refusals = db.stats().replica_refusals();
        later.sort();
        let median = later[later.len() / 2];
        let first_mean = first.iter().sum::<Duration>() / 3;
        lines.push(format!(
            "{}: read-only calls on replicas {on_replicas} of 100, refusals {refusals}, errors {errors}; \
             a writing call's first {first_mean:.2?} (mean of 3), later ones {median:.2?} (median of 57)",
            if catalog { "with the catalog (VOLATILE user functions)" } else { "refusal alone" },
        ));
        served.push((on_replicas, refusals, errors));
    }
    eprintln!("catalog comparison:\n{}", lines.join("\n"));
    let [(alone, refused, alone_errors), (catalog, catalog_refused, catalog_errors)] = served[..]
    else {
        unreachable!()
    };
    assert_eq!((alone, refused, alone_errors), (100, 3, 0), "{lines:?}");
    assert_eq!((catalog, catalog_refused, catalog_errors), (40, 0, 0), "{lines:?}");
}
