//! Issue 14 regressions against `MockDatabase`: refusals by read-only replicas, tokens from
//! outside, and durations at their maximum.

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

/// A statement the classifier took for a read that a replica refuses as a write used to be
/// retried on the primary, counted as a read, with no read-your-writes position. It now fails,
/// saying why, and never reaches the primary; a recovery conflict (40001) is still retried.
#[rstest]
#[case::read_only_refusal("25006", false)]
#[case::recovery_conflict("40001", true)]
#[case::no_room_for_a_connection("53300", true)]
#[tokio::test]
async fn a_read_refused_as_a_write_is_not_retried_on_the_primary(
    #[case] code: &'static str,
    #[case] retried: bool,
) {
    let db = RoutedConnection::from_connections(answering(), vec![refusing(code)]).unwrap();
    let read = Statement::from_string(DbBackend::Postgres, "SELECT id FROM t");
    let result = db.query_one_raw(read).await;
    assert_eq!(statements(db.primary()), usize::from(retried), "{result:?}");
    assert_eq!(result.is_ok(), retried, "{result:?}");
    if let Err(e) = result {
        assert!(matches!(e, DbErr::Query(_)), "SeaORM's variant as before: {e:?}");
        let Some(RoutingError::ReplicaRefused { node, sqlstate, source }) = routing_error(&e)
        else {
            panic!("not a replica's refusal: {e:?}")
        };
        assert_eq!((node.as_str(), sqlstate.as_deref()), ("replica 1", Some(code)));
        // The replica's own error, with its SQLSTATE, behind the typed one.
        assert_eq!(crate::routing_error::sqlstate(source).as_deref(), Some(code));
        let text = e.to_string();
        assert!(text.contains("classification bug") && text.contains(code), "{text}");
    }
    assert_eq!(db.stats().retries(), u64::from(retried));
}

/// The refusal is logged at error level, target `rwsplit`.
#[test]
fn a_read_refused_as_a_write_is_logged_as_an_error() {
    let (subscriber, logs) = capture(tracing::Level::TRACE);
    tracing::subscriber::with_default(subscriber, || {
        crate::failure::misrouted(refusal("25006"), "db2:5432/app");
    });
    let text = logs.text();
    assert!(text.contains("ERROR") && text.contains("rwsplit"), "{text}");
    assert!(text.contains("classification bug") && text.contains("db2:5432/app"), "{text}");
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
        .timeout(Duration::MAX)
        .interval(Duration::MAX)
        .jitter(Duration::MAX)
        .position_interval(Duration::MAX);
    let _builder = RoutedConnection::builder()
        .wait_for_replica(Duration::MAX)
        .probe_interval(Duration::MAX)
        .acquire_timeout(Duration::MAX)
        .replica_read_timeout(Some(Duration::MAX));
}

/// A forged token far in the future used to send every read of its session to the primary
/// (after the full catch-up wait): the first read now reads the primary's position and lowers
/// the token to it.
#[tokio::test]
async fn a_token_from_the_future_is_lowered_to_the_primarys_position() {
    let primary = crate::tests::pg_primary_answering_position(0, 4);
    let db = RoutedConnection::from_connections(primary, vec![answering()]).unwrap();
    // `Eventual`: no bound of what the read saw joins the token (these mocks answer no
    // further position query; `connection::tests` covers that bound).
    let session = db.session_from("pg:1:7:1:FFFFFFFF-FFFFFFFF").unwrap();
    let session = session.with_consistency(crate::Consistency::Eventual);
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
    let session = db.session_from(forged).unwrap().with_consistency(crate::Consistency::Eventual);
    let read = Statement::from_string(DbBackend::Postgres, "SELECT id FROM t");
    session.query_one_raw(read).await.unwrap();
    assert_eq!(session.token().await.unwrap().unwrap().to_string(), forged);
}
