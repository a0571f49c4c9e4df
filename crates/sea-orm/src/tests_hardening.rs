//! Hardening against `MockDatabase`: refusals by read-only replicas, tokens from outside, and
//! durations at their maximum.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rstest::rstest;
use sea_orm::sqlx::error::{DatabaseError, ErrorKind};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, MockDatabase, RuntimeErr, Statement,
    Value,
};

use crate::{Error, RoutedConnection, RoutingError, routing_error};

/// A database error with a SQLSTATE, as a server would send it.
#[derive(Debug)]
struct Sqlstate(&'static str);

impl std::fmt::Display for Sqlstate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "server error {}", self.0)
    }
}

impl std::error::Error for Sqlstate {}

impl DatabaseError for Sqlstate {
    fn message(&self) -> &str {
        "cannot execute DELETE in a read-only transaction"
    }
    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self.0))
    }
    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }
    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }
    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

fn refusal(code: &'static str) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(sea_orm::sqlx::Error::Database(Box::new(
        Sqlstate(code),
    )))))
}

fn row() -> BTreeMap<&'static str, Value> {
    BTreeMap::from([("id", Value::Int(Some(1)))])
}

fn answering() -> DatabaseConnection {
    MockDatabase::new(DbBackend::Postgres)
        .append_query_results((0..4).map(|_| vec![row()]))
        .into_connection()
}

fn refusing(code: &'static str) -> DatabaseConnection {
    MockDatabase::new(DbBackend::Postgres).append_query_errors([refusal(code)]).into_connection()
}

fn statements(c: &DatabaseConnection) -> usize {
    c.clone().into_transaction_log().len()
}

/// A statement the classifier took for a read that a replica refuses as a write (a user
/// function that writes) runs once on the primary, as a write, and returns its result; its
/// shape is learned, so the next call of it, with other values, goes to the primary without a
/// refusal. A recovery conflict (40001) and a full server (53300) are retried as reads,
/// learning nothing.
#[rstest]
#[case::read_only_refusal("25006", true)]
#[case::recovery_conflict("40001", false)]
#[case::no_room_for_a_connection("53300", false)]
#[tokio::test]
async fn a_read_a_replica_refuses_as_a_write_runs_once_on_the_primary_and_is_learned(
    #[case] code: &'static str,
    #[case] refusal: bool,
) {
    let policy = crate::routing::Policy { read_your_writes: false, ..Default::default() };
    let db =
        RoutedConnection::from_connections_with(answering(), vec![refusing(code)], policy).unwrap();
    let read = Statement::from_string(DbBackend::Postgres, "SELECT bump('a') AS id");
    let row = db.query_one_raw(read).await.expect("served by the primary").expect("a row");
    assert_eq!(row.try_get::<i32>("", "id").unwrap(), 1);
    let stats = db.stats();
    assert_eq!(statements(db.primary()), 1);
    assert_eq!(stats.replica_refusals(), u64::from(refusal));
    assert_eq!(stats.learned_writes(), u64::from(refusal));
    assert_eq!(stats.retries(), u64::from(!refusal), "a refusal is not a read's retry");
    assert_eq!(stats.primary().writes(), u64::from(refusal), "run as a write");
    if refusal {
        // The same shape, other values: straight to the primary (the replica's mock has no
        // answer left, so a second try there would fail).
        let again = Statement::from_string(DbBackend::Postgres, "select bump('b') as id");
        db.query_one_raw(again).await.expect("served by the primary");
        assert_eq!(statements(db.primary()), 1, "(the log is drained when read)");
        assert_eq!(db.stats().replica_refusals(), 1, "no second refusal");
        assert_eq!(db.stats().primary().writes(), 2);
    }
}

/// With `OnReplicaRefusal::Fail` the refused read fails, naming the statement's shape (the
/// function, no value) and never reaches the primary; its shape is still learned, so the next
/// call goes to the primary.
#[tokio::test]
async fn with_fail_a_refused_read_fails_naming_its_shape_and_the_next_goes_to_the_primary() {
    let policy = crate::routing::Policy {
        read_your_writes: false,
        on_replica_refusal: crate::send::refusal::OnReplicaRefusal::Fail,
        ..Default::default()
    };
    let db = RoutedConnection::from_connections_with(answering(), vec![refusing("25006")], policy)
        .unwrap();
    let read = Statement::from_string(DbBackend::Postgres, "SELECT bump('secret') AS id");
    let e = db.query_one_raw(read).await.expect_err("refused, not run on the primary");
    assert!(matches!(e, DbErr::Query(_)), "SeaORM's variant as before: {e:?}");
    let Some(RoutingError::ReplicaRefused { node, sqlstate, statement, source }) =
        routing_error(&e)
    else {
        panic!("not a replica's refusal: {e:?}")
    };
    assert_eq!((node.as_str(), sqlstate.as_deref()), ("replica 1", Some("25006")));
    assert_eq!(statement.as_deref(), Some("select bump ( ? ) as id "));
    assert_eq!(crate::routing_error::sqlstate(source).as_deref(), Some("25006"));
    let text = e.to_string();
    assert!(text.contains("bump") && text.contains("25006") && !text.contains("secret"), "{text}");
    assert_eq!(statements(db.primary()), 0);
    assert_eq!(db.stats().replica_refusals(), 1);
    let again = Statement::from_string(DbBackend::Postgres, "SELECT bump('other') AS id");
    db.query_one_raw(again).await.expect("learned: the primary");
    assert_eq!(statements(db.primary()), 1);
    assert_eq!(db.stats().replica_refusals(), 1);
}

/// A new shape is logged once at WARN, target `rwsplit`, with the shape and no value.
#[tokio::test]
async fn a_refused_shape_is_logged_at_warn_without_values() {
    let (subscriber, logs) = capture(tracing::Level::TRACE);
    let _guard = tracing::subscriber::set_default(subscriber);
    let policy = crate::routing::Policy { read_your_writes: false, ..Default::default() };
    let db = RoutedConnection::from_connections_with(answering(), vec![refusing("25006")], policy)
        .unwrap();
    let sql = "SELECT bump('hunter2') AS id";
    db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await.unwrap();
    let text = logs.text();
    let warned: Vec<&str> = text.lines().filter(|l| l.contains(" WARN ")).collect();
    assert_eq!(warned.len(), 1, "{text}");
    let line = warned[0];
    assert!(line.contains("rwsplit") && line.contains("select bump ( ? ) as id"), "{line}");
    assert!(!line.contains("hunter2"), "{line}");
}

/// A tracing subscriber writing into a buffer.
pub(crate) fn capture(
    level: tracing::Level,
) -> (impl tracing::Subscriber + Send + Sync + 'static, Logs) {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_target(true)
        .with_writer(move || writer.clone())
        .finish();
    (subscriber, logs)
}

/// Captured log output.
#[derive(Clone, Default)]
pub(crate) struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl Logs {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn tokens_of_another_backend_are_refused() {
    let db = RoutedConnection::from_connections(answering(), vec![answering()]).unwrap();
    let err = db.session_from("mariadb:1:0-1-5").unwrap_err();
    assert!(matches!(err, Error::InvalidToken { .. }), "{err}");
    assert!(err.to_string().contains("mariadb"), "{err}");
    assert!(db.session_from("pg:1:7:1:0-10").is_ok());
    let long = format!("pg:1:7:1:0-{}", "1".repeat(rwsplit_core::CausalToken::MAX_LEN));
    let err = db.session_from(&long).unwrap_err();
    assert!(err.to_string().len() < 400, "the error quotes only a snippet: {err}");
}

#[tokio::test]
async fn maximal_durations_do_not_panic() {
    let db = RoutedConnection::from_connections(answering(), vec![answering()]).unwrap();
    let read = Statement::from_string(DbBackend::Postgres, "SELECT id FROM t");
    RoutedConnection::deadline(Duration::MAX, db.query_one_raw(read.clone())).await.unwrap();
    db.wait_for_replica(Duration::MAX).query_one_raw(read.clone()).await.unwrap();
    let _config = rwsplit_monitor::MonitorConfig::default()
        .probe_timeout(Duration::MAX)
        .probe_interval(Duration::MAX)
        .probe_jitter(Duration::MAX)
        .position_interval(Duration::MAX);
    let _builder = RoutedConnection::builder()
        .wait_for_replica(Duration::MAX)
        .probe_interval(Duration::MAX)
        .acquire_timeout(Duration::MAX)
        .replica_read_timeout(Some(Duration::MAX));
}

/// A forged token far in the future does not send every read of its session to the primary
/// (after the full catch-up wait): the first read reads the primary's position and lowers the
/// token to it.
#[tokio::test]
async fn a_token_from_the_future_is_lowered_to_the_primarys_position() {
    let primary = crate::tests::pg_primary_answering_position(0, 4);
    let db = RoutedConnection::from_connections(primary, vec![answering()]).unwrap();
    // `Eventual`: no bound of what the read saw joins the token (these mocks answer no
    // further position query; `connection::tests` covers that bound).
    let session = db.session_from("pg:1:7:1:FFFFFFFF-FFFFFFFF").unwrap();
    let session = session.with_consistency(rwsplit_core::Consistency::Eventual);
    let read = Statement::from_string(DbBackend::Postgres, "SELECT id FROM t");
    session.query_one_raw(read).await.unwrap();
    let token = session.token().await.unwrap().unwrap();
    assert_eq!(token.to_string(), "pg:1:7:1:0-3000148");
}

/// If the primary cannot say where it is, a held token is used as it came: the read goes on.
#[tokio::test]
async fn a_held_token_is_used_as_it_came_when_the_primary_cannot_answer() {
    let primary = MockDatabase::new(DbBackend::Postgres)
        .append_query_errors([DbErr::Custom("position unavailable".into())])
        .append_query_results([vec![row()]])
        .into_connection();
    let db = RoutedConnection::from_connections(primary, vec![answering()]).unwrap();
    let forged = "pg:1:7:1:FFFFFFFF-FFFFFFFF";
    let session =
        db.session_from(forged).unwrap().with_consistency(rwsplit_core::Consistency::Eventual);
    let read = Statement::from_string(DbBackend::Postgres, "SELECT id FROM t");
    session.query_one_raw(read).await.unwrap();
    assert_eq!(session.token().await.unwrap().unwrap().to_string(), forged);
}

/// `db.replica()` is for calls that must not reach the primary: a replica's own connection
/// while one is in rotation, and an error naming each replica and why it is out when none is
/// (none configured, or every one fenced or down) — never the primary's connection.
#[tokio::test]
async fn replica_is_an_error_not_the_primary_when_no_replica_is_in_rotation() {
    let alone = RoutedConnection::from_connections(answering(), vec![]).unwrap();
    let err = alone.replica().expect_err("no replica configured");
    assert!(matches!(routing_error(&err), Some(RoutingError::NoNodeLeft { .. })), "{err}");
    assert!(!err.to_string().contains("error communicating"), "a decision: {err}");

    let db = RoutedConnection::from_connections(answering(), vec![answering()]).unwrap();
    let replica = db.replica().expect("a replica in rotation");
    assert!(!std::ptr::eq(replica, db.primary()), "the replica's own connection");
    let name = db.stats().nodes()[1].name().to_owned();
    db.fence(&name).unwrap();
    let err = db.replica().expect_err("its only replica fenced");
    let text = err.to_string();
    assert!(text.contains(&name) && text.contains("fenced"), "names the replica and why: {text}");
}
