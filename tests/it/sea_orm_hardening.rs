//! On real servers: no write, lock or session read ever reaches a replica; a read a
//! replica was asked for refuses as a write fails instead of running on the primary; passwords
//! never show.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rstest::rstest;
use rwsplit_core::{Access, Classifier, Dialect};
use rwsplit_sea_orm::RoutedConnection;
use rwsplit_testkit::{Cluster, DbKind};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sqlx::{AnyConnection, Connection};

use tracing_subscriber::util::SubscriberInitExt;

use crate::support::{assert_replica_refused, count, own_cluster, shared};

/// Writes, locks and session-state reads that classifiers get wrong, or that any read/write
/// splitter must get right.
const PG_CORPUS: &[&str] = &[
    r#"EXPLAIN ("analyze") DELETE FROM t"#,
    r#"EXPLAIN (ANALYZE true) INSERT INTO t VALUES (1, 1)"#,
    // Session locks on distinct keys, or on pooled connections of the primary one would wait
    // for another forever.
    r#"SELECT U&"\0070g_advisory_lock"(41)"#,
    r#"SELECT "pg_advisory_xact_lock"(1)"#,
    "SELECT pg_advisory_lock(42)",
    "select/**/pg_try_advisory_lock(7)",
    "SELECT pg_catalog.pg_try_advisory_lock_shared(8)",
    "SELECT brin_summarize_new_values('t_brin')",
    "SELECT gin_clean_pending_list('t_brin')",
    "SELECT pg_replication_origin_create('rwsplit_corpus')",
    "SELECT pg_import_system_collations('pg_catalog')",
    "SELECT nextval('s')",
    "SELECT pg_catalog.setval('s', 10)",
    "SELECT set_config('search_path', 'public', false)",
    "SELECT pg_notify('c', 'x')",
    "SELECT txid_current()",
    "SELECT lo_create(0)",
    "SELECT * FROM t FOR UPDATE",
    "SELECT * FROM t FOR NO KEY UPDATE SKIP LOCKED",
    "SELECT id FROM t WHERE id = 1 FOR SHARE",
    "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
    "DELETE FROM t",
];

/// The same for MariaDB: `#`/`-- ` comments and `\r`, versioned comments, session reads.
const MARIA_CORPUS: &[&str] = &[
    "SELECT GET_LOCK('l', 0)",
    // A `#` or `-- ` comment ends at `\n` only: after `\r\n` the lock is code.
    "SELECT 1 # c\r\n, GET_LOCK('l', 0)",
    "SELECT 1 -- c\r\n, GET_LOCK('l', 0)",
    "SELECT /*M!999999 1, */ GET_LOCK('l', 0)",
    "SELECT /*!99999 GET_LOCK('l', 0), */ 1",
    // Executable comments are the SQL they contain, run on MariaDB ≥ 10.0 …
    "SELECT * FROM t /*M!100000 FOR UPDATE */",
    "SELECT * FROM t /*!50000 LOCK IN SHARE MODE */",
    "SELECT 1 /*M! , GET_LOCK('l', 0) */",
    "SELECT /*!40001 SQL_NO_CACHE */ @@session.sql_mode",
    // … and skipped as comments by other versions: what is left must read too.
    "/*!99999 EXPLAIN */ DELETE FROM t",
    // `INTO @v` sets a session variable on whichever server runs it.
    "SELECT id FROM t LIMIT 1 INTO @rwsplit_x",
    "SELECT 1 /*M!100000 INTO @rwsplit_y */",
    "SELECT RELEASE_LOCK('l')",
    "SELECT @@session.last_insert_id",
    "SELECT @@local.insert_id",
    "SELECT LAST_INSERT_ID()",
    "SELECT ROW_COUNT()",
    "SELECT FOUND_ROWS()",
    "SHOW WARNINGS",
    "SHOW SESSION STATUS",
    "SELECT NEXTVAL(s)",
    "SELECT * FROM t FOR UPDATE",
    "SELECT * FROM t LOCK IN SHARE MODE",
    "DELETE FROM t",
];

/// The marker that tags corpus statement `i` (leading comments never change a classification).
fn marked(i: usize, sql: &str) -> String {
    format!("/*rwc-{i}-*/ {sql}")
}

const CONTROL: &str = "/*rwctl*/ SELECT 1 AS one";

/// What replica `i`'s server received, as logged (PostgreSQL `log_statement = 'all'` into its
/// log file; MariaDB the general log in `mysql.general_log`).
async fn replica_received(cluster: &Cluster, i: usize) -> String {
    let node = &cluster.replicas()[i];
    match cluster.db() {
        DbKind::MariaDb => {
            let url = node.url().replacen("mysql://app@", "mysql://root@", 1);
            sqlx::any::install_default_drivers();
            let mut c = AnyConnection::connect(&url).await.expect("root connects to the replica");
            let rows: Vec<String> = sqlx::query_scalar(
                "SELECT CAST(argument AS CHAR) FROM mysql.general_log WHERE argument LIKE '%/*rw%'",
            )
            .fetch_all(&mut c)
            .await
            .expect("the general log is readable");
            rows.join("\n")
        }
        _ => std::fs::read_to_string(node.log_path()).expect("the replica's log is readable"),
    }
}

/// Every corpus statement, sent through the read path of a `RoutedConnection` on real
/// replicas, is classified as a write and never reaches a replica: the replicas' own statement
/// logs are the witness. A control read proves the logs work.
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_replica_ever_receives_a_write_lock_or_session_read(#[case] kind: DbKind) {
    let (corpus, dialect) = match kind {
        DbKind::MariaDb => (MARIA_CORPUS, Dialect::MySql),
        _ => (PG_CORPUS, Dialect::Postgres),
    };
    // The pure check first, for a clear failure message.
    let classifier = Classifier::default();
    for sql in corpus {
        assert_eq!(classifier.classify(sql, dialect), Access::Write, "classified as a read: {sql}");
    }
    let cluster = match kind {
        DbKind::Postgres => {
            let _ = shared(kind); // the itest guard
            Cluster::builder()
                .db(kind)
                .name("corpus")
                .replicas(1)
                .setting("log_statement", "all")
                .start()
                .await
                .expect("a PostgreSQL cluster logging every statement starts")
        }
        _ => {
            let c = own_cluster(kind, "corpus", 1).await;
            c.replicas()[0]
                .execute("mysql", "SET GLOBAL log_output = 'TABLE'; SET GLOBAL general_log = 'ON'")
                .await
                .expect("the general log turns on");
            c
        }
    };
    let tdb = cluster.create_database("corpus").await.unwrap();
    let setup = match kind {
        DbKind::MariaDb => "CREATE TABLE t (id INT PRIMARY KEY, v INT); CREATE SEQUENCE s",
        _ => {
            "CREATE TABLE t (id int PRIMARY KEY, v int); CREATE SEQUENCE s; \
              CREATE INDEX t_brin ON t USING brin (v)"
        }
    };
    let db = RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replicas(tdb.replica_urls())
        .read_your_writes(false)
        .connect()
        .await
        .unwrap();
    db.primary().execute_unprepared(setup).await.unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(20)).await.unwrap();
    let backend = db.get_database_backend();
    for (i, sql) in corpus.iter().enumerate() {
        // Errors on the primary (a missing object, a statement the server rejects) are fine:
        // only where it went matters.
        let stmt = Statement::from_string(backend, marked(i, sql));
        let _ = tokio::time::timeout(Duration::from_secs(10), db.query_all_raw(stmt)).await;
    }
    for _ in 0..3 {
        db.query_all_raw(Statement::from_string(backend, CONTROL)).await.unwrap();
    }
    assert!(db.stats().replica_reads() >= 3, "the control reads ran on the replica");
    let log = replica_received(&cluster, 0).await;
    assert!(log.contains("/*rwctl*/"), "the replica's statement log works:\n{log}");
    let leaked: Vec<&str> = corpus
        .iter()
        .enumerate()
        .filter(|(i, _)| log.contains(&format!("/*rwc-{i}-*/")))
        .map(|(_, sql)| *sql)
        .collect();
    assert!(leaked.is_empty(), "the replica received {leaked:?}");
}

/// A read sent to a replica on purpose (`Target::Replica`) that the replica refuses as a write
/// (a user function the classifier cannot know writes) fails with the replica's refusal, and
/// the primary never runs it: the caller asked for the replica. (A read the router chose a
/// replica for runs once on the primary instead: `sea_orm_refusals`.)
#[rstest]
#[case::postgres(DbKind::Postgres)]
#[case::mariadb(DbKind::MariaDb)]
#[tokio::test]
async fn a_read_sent_to_a_replica_on_purpose_that_it_refuses_fails_and_never_reaches_the_primary(
    #[case] kind: DbKind,
) {
    let cluster = shared(kind);
    let tdb = cluster.create_database("refused").await.unwrap();
    let setup = match kind {
        DbKind::MariaDb => {
            "CREATE TABLE t (id INT); \
             CREATE FUNCTION bump() RETURNS INT DETERMINISTIC MODIFIES SQL DATA \
             BEGIN INSERT INTO t VALUES (1); RETURN 1; END"
        }
        _ => {
            "CREATE TABLE t (id int); \
             CREATE FUNCTION bump() RETURNS int LANGUAGE sql AS \
             'INSERT INTO t VALUES (1) RETURNING 1'"
        }
    };
    let db = RoutedConnection::builder()
        .primary(tdb.primary_url())
        .replicas(tdb.replica_urls())
        .read_your_writes(false)
        .connect()
        .await
        .unwrap();
    // As the superuser: MariaDB with a binary log lets only it create a writing function.
    cluster.primary().execute(tdb.name(), setup).await.unwrap();
    cluster.wait_caught_up(0, Duration::from_secs(20)).await.unwrap();
    let backend = db.get_database_backend();
    let call = db.query_one_raw(Statement::from_string(backend, "SELECT bump() AS b"));
    let err = RoutedConnection::scope(rwsplit_sea_orm::Target::Replica, call)
        .await
        .expect_err("a replica refuses it and it is not moved");
    assert_replica_refused(&err, kind);
    assert_eq!(count(&tdb.primary_url(), "t").await, Some(0), "the primary never ran it");
    assert_eq!(db.stats().primary().reads() + db.stats().primary().writes(), 0);
    assert_eq!((db.stats().retries(), db.stats().replica_refusals()), (0, 1));
}

/// Log output captured from every thread of the test's runtime.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `shown` holds no piece (three characters or more) of `password`.
fn assert_no_secret(place: &str, shown: &str, password: &str) {
    for piece in password.split(['@', ':', ',', '#', '/', '?', '%']).filter(|p| p.len() > 2) {
        assert!(!shown.contains(piece), "{place} shows `{piece}` of the password:\n{shown}");
    }
}

fn encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("%{b:02X}") }
        })
        .collect()
}

/// Passwords with `@ : # / ? , %40` in every place a URL shows up: the builder's `Debug`, the
/// connection's `Debug` and stats, errors (a URL that cannot be parsed, an unreachable
/// replica), and everything logged at trace level by rwsplit, SeaORM and sqlx meanwhile. The
/// servers trust local connections, so any password connects.
#[tokio::test]
async fn passwords_never_show_anywhere() {
    let cluster = shared(DbKind::Postgres);
    let tdb = cluster.create_database("secrets").await.unwrap();
    crate::support::tracing_baseline();
    let logs = Logs::default();
    let writer = logs.clone();
    let guard = tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .set_default();
    let password = "Aqz@Bqx:Cqv#Dqw/Eqy?Fqj,Gqk%40Hqm";
    let with_pw = |url: String, pw: &str| url.replacen("postgres@", &format!("postgres:{pw}@"), 1);
    let mut shown = Vec::new();

    // A raw password with `#`, `/`, `?`: not a URL; the error says so without showing it.
    let err = RoutedConnection::builder()
        .primary(with_pw(tdb.primary_url(), password))
        .connect()
        .await
        .expect_err("an unencoded `#` is refused");
    assert!(matches!(err, rwsplit_sea_orm::Error::InvalidUrl { .. }), "{err}");
    shown.push(("invalid URL error", format!("{err} {err:?}")));

    // Encoded, with the primary unreachable: the error and its source chain.
    let enc = encode(password);
    let closed = {
        let l = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        l.local_addr().unwrap().port()
    };
    let dead = format!("postgres://postgres:{enc}@127.0.0.1:{closed}/secrets");
    let err = RoutedConnection::builder()
        .primary(dead.clone())
        .acquire_timeout(Duration::from_secs(1))
        .connect()
        .await
        .expect_err("the primary is unreachable");
    let mut chain = format!("{err} {err:?}");
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        chain.push_str(&format!(" {s} {s:?}"));
        source = s.source();
    }
    shown.push(("unreachable primary error", chain));

    // Percent-encoded, it connects; one replica is unreachable (a closed port).
    let builder = RoutedConnection::builder()
        .primary(with_pw(tdb.primary_url(), &enc))
        .replicas(tdb.replica_urls().into_iter().map(|u| with_pw(u, &enc)))
        .replica(dead)
        .acquire_timeout(Duration::from_secs(2));
    shown.push(("builder Debug", format!("{builder:?}")));
    let db = builder.connect().await.unwrap();
    db.execute_unprepared("CREATE TABLE t (id int)").await.unwrap();
    db.execute_unprepared("INSERT INTO t VALUES (1)").await.unwrap();
    let backend = DbBackend::Postgres;
    for _ in 0..4 {
        let _ = db.query_all_raw(Statement::from_string(backend, "SELECT id FROM t")).await;
    }
    let err = replica_read_error(&db).await;
    shown.push(("read error", err));
    shown.push(("connection Debug", format!("{db:?}")));
    shown.push(("stats", format!("{:?}", db.stats())));
    let names: Vec<String> = db.stats().nodes().iter().map(|n| n.name().to_owned()).collect();
    shown.push(("node names", names.join(" ")));
    drop(db);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The other tests of this binary read at the level they had before: `tracing` lowers its
    // level hint only when asked to look at the subscribers again.
    drop(guard);
    tracing::callsite::rebuild_interest_cache();
    let logged = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(logged.contains("TRACE") || logged.contains("DEBUG"), "tracing was captured");
    shown.push(("trace-level logs", logged));
    for (place, text) in &shown {
        assert_no_secret(place, text, password);
        assert_no_secret(place, text, &enc);
    }
}

/// A read that fails on a replica (the error names the node), as text.
async fn replica_read_error(db: &RoutedConnection) -> String {
    let sql = Statement::from_string(DbBackend::Postgres, "SELECT no_such_column FROM t");
    match db.replica().unwrap().query_all_raw(sql).await {
        Ok(_) => String::new(),
        Err(e) => format!("{e} {e:?}"),
    }
}
