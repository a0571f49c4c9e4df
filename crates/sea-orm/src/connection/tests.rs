//! The one attempt loop and SeaORM's trait impls, against SeaORM's `MockDatabase` (one per
//! node): which node each call reached, what was retried, what the caller gets back.

use std::collections::BTreeMap;

use rstest::rstest;
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, MockDatabase,
    MockExecResult, RuntimeErr, Statement, StreamTrait, TransactionTrait, Value,
};

use rwsplit_core::NodeId;

use super::attempt::{Execute, QueryAll, QueryOne, Stream, Unprepared};
use super::statements::statement_in;
use crate::consistency::Purpose;
use crate::routing::Policy;
use crate::{
    Consistency, DownReason, Error, NotSentReason, RoutedConnection, RoutingError, UnknownReason,
    routing_error,
};

fn row() -> BTreeMap<&'static str, Value> {
    BTreeMap::from([("id", Value::Int(Some(1)))])
}

fn answering() -> DatabaseConnection {
    MockDatabase::new(DbBackend::Postgres)
        .append_query_results((0..8).map(|_| vec![row()]))
        .append_exec_results((0..8).map(|_| MockExecResult { last_insert_id: 1, rows_affected: 1 }))
        .into_connection()
}

/// A node whose first statement fails with `err`.
fn failing(err: DbErr) -> DatabaseConnection {
    MockDatabase::new(DbBackend::Postgres)
        .append_query_errors([err])
        .append_query_results((0..8).map(|_| vec![row()]))
        .into_connection()
}

fn broken() -> DbErr {
    DbErr::Conn(RuntimeErr::Internal("connection reset by peer".into()))
}

fn statements(c: &DatabaseConnection) -> usize {
    c.clone().into_transaction_log().len()
}

fn select() -> Statement {
    Statement::from_string(DbBackend::Postgres, "SELECT id FROM t")
}

/// A primary and replicas, read-your-writes off so the logs hold only routed statements.
fn routed(
    primary: DatabaseConnection,
    replicas: Vec<DatabaseConnection>,
    retries: u8,
) -> RoutedConnection {
    let policy = Policy { read_your_writes: false, read_retries: retries, ..Default::default() };
    RoutedConnection::from_connections_with(primary, replicas, policy).unwrap()
}

#[tokio::test]
async fn a_read_whose_replica_fails_moves_on_and_the_failure_is_counted() {
    let db = routed(answering(), vec![failing(broken())], 2);
    db.query_one_raw(select()).await.expect("retried on the primary");
    let stats = db.stats();
    assert_eq!(stats.retries(), 1);
    assert_eq!(stats.replicas()[0].failures(), 1);
    assert_eq!(stats.primary().reads(), 1);
    assert_eq!(statements(db.inner.primary_conn()), 1);
}

#[tokio::test]
async fn the_retry_budget_bounds_a_read() {
    let db = routed(answering(), vec![failing(broken())], 0);
    let err = db.query_one_raw(select()).await.expect_err("no retry allowed");
    assert!(matches!(err, DbErr::Conn(_)), "{err:?}");
    assert!(
        matches!(
            routing_error(&err),
            Some(RoutingError::NodeDown {
                node,
                attempts: 1,
                reason: DownReason::Unreachable,
                source: Some(DbErr::Conn(_)),
            }) if node == "replica 1"
        ),
        "{err:?}"
    );
    assert_eq!(statements(db.inner.primary_conn()), 0, "the primary was not tried");
    assert_eq!(db.stats().retries(), 0);
}

#[tokio::test]
async fn an_error_of_the_statement_itself_reaches_the_caller_unchanged_and_is_not_retried() {
    let syntax = DbErr::Query(RuntimeErr::Internal("syntax error at or near \"FORM\"".into()));
    let db = routed(answering(), vec![failing(syntax)], 2);
    let err = db.query_all_raw(select()).await.expect_err("not retried");
    assert!(
        matches!(err, DbErr::Query(RuntimeErr::Internal(ref m)) if m.contains("syntax")),
        "{err:?}"
    );
    assert_eq!(statements(db.inner.primary_conn()), 0);
    assert_eq!(db.stats().replicas()[0].failures(), 0, "not the node's failure");
}

#[tokio::test]
async fn a_failed_write_is_never_retried_and_says_so() {
    let primary =
        MockDatabase::new(DbBackend::Postgres).append_exec_errors([broken()]).into_connection();
    let db = routed(primary, vec![answering()], 2);
    let insert = Statement::from_string(DbBackend::Postgres, "INSERT INTO t (v) VALUES (1)");
    let err = db.execute_raw(insert).await.expect_err("the write failed");
    assert!(matches!(err, DbErr::Conn(_)), "{err:?}");
    let typed = routing_error(&err).expect("the adapter's error");
    assert!(
        matches!(
            typed,
            RoutingError::WriteOutcomeUnknown {
                reason: UnknownReason::ConnectionBroke,
                source: Some(DbErr::Conn(_)),
                ..
            }
        ),
        "{typed:?}"
    );
    assert!(typed.outcome_unknown() && !typed.is_retryable());
    assert_eq!(
        statements(db.inner.nodes.hold(NodeId::new(1)).unwrap().conn()),
        0,
        "nothing reached the replica"
    );
    assert_eq!(db.stats().retries(), 0);
}

#[rstest]
#[case::read_only(Some(AccessMode::ReadOnly), (0, 1))]
#[case::read_write(Some(AccessMode::ReadWrite), (1, 0))]
#[case::default(None, (1, 0))]
#[tokio::test]
async fn transactions_begin_where_their_access_mode_allows(
    #[case] access: Option<AccessMode>,
    #[case] expected: (usize, usize),
) {
    let db = routed(answering(), vec![answering()], 2);
    let txn = db.begin_with_config(None, access).await.unwrap();
    txn.query_one_raw(select()).await.unwrap();
    txn.commit().await.unwrap();
    let got = (
        statements(db.inner.primary_conn()),
        statements(db.inner.nodes.hold(NodeId::new(1)).unwrap().conn()),
    );
    assert_eq!(got, expected, "{access:?}");
}

#[tokio::test]
async fn closure_transactions_run_and_commit_through_the_router() {
    let db = routed(answering(), vec![answering()], 2);
    let n = db
        .transaction::<_, u64, DbErr>(|txn| {
            Box::pin(async move {
                let insert =
                    Statement::from_string(DbBackend::Postgres, "INSERT INTO t VALUES (1)");
                Ok(txn.execute_raw(insert).await?.rows_affected())
            })
        })
        .await
        .unwrap();
    assert_eq!(n, 1);
    let ro = db
        .transaction_with_config::<_, usize, DbErr>(
            |txn| Box::pin(async move { Ok(txn.query_all_raw(select()).await?.len()) }),
            None,
            Some(AccessMode::ReadOnly),
        )
        .await
        .unwrap();
    assert_eq!(ro, 1);
    assert_eq!(statements(db.inner.primary_conn()), 1, "the read-write transaction");
    assert_eq!(
        statements(db.inner.nodes.hold(NodeId::new(1)).unwrap().conn()),
        1,
        "the read-only one"
    );
}

#[tokio::test]
async fn a_failed_closure_rolls_back_and_returns_its_own_error() {
    let db = routed(answering(), vec![answering()], 2);
    let r =
        db.transaction::<_, (), String>(|_| Box::pin(async { Err("no thanks".to_owned()) })).await;
    assert!(
        matches!(r, Err(sea_orm::TransactionError::Transaction(ref e)) if e == "no thanks"),
        "{r:?}"
    );
}

#[tokio::test]
async fn every_handle_routes_through_the_same_paths() {
    let db = routed(answering(), vec![answering()], 2);
    // The connection, a session, a per-call view, and streams.
    db.query_one_raw(select()).await.unwrap();
    db.session().query_all_raw(select()).await.unwrap();
    db.consistent(Consistency::Strong).query_one_raw(select()).await.unwrap();
    drop(db.stream_raw(select()).await.unwrap());
    db.execute_unprepared("SET application_name = 'x'").await.unwrap();
    let stats = db.stats();
    assert_eq!(stats.replicas()[0].reads(), 3, "connection, session, stream");
    assert_eq!(stats.primary().reads(), 1, "the strong read");
    assert_eq!(stats.primary().writes(), 1, "SET is not provably a read");
}

#[tokio::test]
async fn fencing_an_unknown_node_names_the_known_ones() {
    let db = routed(answering(), vec![answering()], 2);
    let err = db.fence("db-9:5432/app").expect_err("no such node");
    assert!(matches!(err, Error::UnknownNode { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("db-9:5432/app") && text.contains("primary"), "{text}");
}

/// Every span's fields (and its parent's name) as they were when it closed.
#[derive(Clone, Default)]
struct Spans(std::sync::Arc<std::sync::Mutex<Vec<BTreeMap<String, String>>>>);

struct Fields(BTreeMap<String, String>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}").trim_matches('"').to_owned());
    }
}

impl<S> tracing_subscriber::Layer<S> for Spans
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let span = ctx.span(id).expect("the span exists");
        let mut fields = Fields(BTreeMap::new());
        fields.0.insert("name".into(), span.name().into());
        if let Some(parent) = span.parent() {
            fields.0.insert("parent".into(), parent.name().into());
        }
        attrs.record(&mut fields);
        span.extensions_mut().insert(fields);
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let span = ctx.span(id).expect("the span exists");
        if let Some(fields) = span.extensions_mut().get_mut::<Fields>() {
            values.record(fields);
        }
    }

    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let span = ctx.span(&id).expect("the span exists");
        if let Some(fields) = span.extensions().get::<Fields>() {
            self.0.lock().unwrap().push(fields.0.clone());
        }
    }
}

/// Runs `f` with a subscriber capturing spans; returns the `rwsplit.statement` spans.
async fn statement_spans<F: std::future::Future<Output = ()>>(
    f: F,
) -> Vec<BTreeMap<String, String>> {
    use tracing::Instrument;
    use tracing_subscriber::layer::SubscriberExt;
    // A global subscriber beside the scoped one: with a single dispatcher registered,
    // tracing-core caches a callsite's interest from whichever thread reaches it first, and a
    // sibling test's thread with no subscriber caches "never" (tokio-rs/tracing#3611).
    static BASELINE: std::sync::Once = std::sync::Once::new();
    BASELINE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    });
    let spans = Spans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    f.instrument(tracing::info_span!("caller")).await;
    let all = spans.0.lock().unwrap().clone();
    all.into_iter().filter(|s| s["name"] == "rwsplit.statement").collect()
}

#[tokio::test(flavor = "current_thread")]
async fn each_statement_runs_in_a_span_with_the_opentelemetry_fields() {
    let db = routed(answering(), vec![answering()], 2);
    let spans = statement_spans(async {
        db.query_one_raw(select()).await.unwrap();
    })
    .await;
    assert_eq!(spans.len(), 1, "{spans:?}");
    let s = &spans[0];
    assert_eq!(s["parent"], "caller", "a child of the caller's span");
    assert_eq!(s["db.system.name"], "postgresql");
    assert_eq!(s["db.operation.name"], "SELECT");
    assert_eq!(s["server.address"], "replica 1", "mock nodes are named, not addressed");
    assert_eq!(s["rwsplit.node.role"], "replica");
    assert_eq!(s["rwsplit.attempt"], "1");
    assert_eq!(s["rwsplit.consistency"], "session");
    assert!(!s["rwsplit.route.reason"].is_empty(), "{s:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_read_that_moved_on_reports_its_last_attempt_and_node() {
    let db = routed(answering(), vec![failing(broken())], 2);
    let spans = statement_spans(async {
        db.query_one_raw(select()).await.unwrap();
        let begin = db.begin().await.unwrap();
        begin.commit().await.unwrap();
    })
    .await;
    assert_eq!(spans.len(), 2, "{spans:?}");
    assert_eq!(spans[0]["rwsplit.attempt"], "2");
    assert_eq!(spans[0]["rwsplit.node.role"], "primary");
    assert_eq!(spans[0]["server.address"], "primary");
    assert_eq!(spans[1]["db.operation.name"], "BEGIN");
    assert_eq!(spans[1]["rwsplit.route.reason"], "transaction");
}

/// The process-wide Prometheus recorder of these tests (metrics are global).
fn prometheus() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("no other recorder in the unit tests")
    })
}

#[tokio::test]
async fn statements_errors_retries_and_latencies_are_recorded() {
    let handle = prometheus();
    let db = routed(answering(), vec![failing(broken())], 2);
    db.query_one_raw(select()).await.unwrap();
    let insert = Statement::from_string(DbBackend::Postgres, "INSERT INTO t VALUES (1)");
    db.execute_raw(insert).await.unwrap();
    let text = handle.render();
    for want in [
        "server_address=\"primary\",server_port=\"\",rwsplit_node_role=\"primary\",rwsplit_route_reason=\"execute\",rwsplit_access=\"write\"",
        "rwsplit_errors_total{server_address=\"replica 1\",server_port=\"\",rwsplit_node_role=\"replica\",error_type=\"connection\"}",
        "rwsplit_retries_total{server_address=\"replica 1\",server_port=\"\",rwsplit_access=\"read\"}",
        "db_client_operation_duration_seconds",
        "db_system_name=\"postgresql\",db_operation_name=\"INSERT\"",
    ] {
        assert!(text.contains(want), "missing `{want}` in:\n{text}");
    }
}

/// What the monitor reports after probing `node`: the primary, or a replica.
async fn probed(db: &RoutedConnection, node: NodeId, replica: bool) {
    let seen = crate::tests::pg_probe(!replica, "0/3000000", 0).await;
    db.inner.routing.state().observe(node, &seen, std::time::Instant::now());
}

/// A sqlx pool whose server refuses every connection (nothing listens on port 1): sqlx keeps
/// retrying until the acquire timeout, `acquire`.
async fn refusing(acquire: std::time::Duration) -> DatabaseConnection {
    let mut opts = sea_orm::ConnectOptions::new("postgres://app:secret@127.0.0.1:1/app");
    opts.connect_lazy(true).acquire_timeout(acquire).sqlx_logging(false);
    sea_orm::Database::connect(opts).await.expect("a lazy pool connects to nothing yet")
}

fn insert() -> Statement {
    Statement::from_string(DbBackend::Postgres, "INSERT INTO t (v) VALUES (1)")
}

/// The write waits for a connection to the old primary (its port refuses) when the monitor sees
/// another node promoted: given up at once — it was never sent — and run on the new primary,
/// long before the pool's acquire timeout. The same when the old primary is seen as a replica,
/// or when it is marked down and another node is the primary.
#[rstest]
#[case::another_node_promoted(false, false)]
#[case::old_primary_now_a_replica(true, false)]
#[case::old_primary_marked_down(false, true)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waiting_for_a_connection_follows_a_new_primary(
    #[case] old_seen_as_replica: bool,
    #[case] old_marked_down: bool,
) {
    let acquire = std::time::Duration::from_secs(30);
    let db = routed(refusing(acquire).await, vec![answering()], 2);
    let write = tokio::spawn({
        let db = db.clone();
        async move {
            let started = std::time::Instant::now();
            (db.execute_raw(insert()).await, started.elapsed())
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    probed(&db, NodeId::new(1), false).await;
    if old_seen_as_replica {
        probed(&db, NodeId::new(0), true).await;
    }
    if old_marked_down {
        for _ in 0..5 {
            let refused = Err(rwsplit_monitor::ProbeError::refused("connection refused"));
            db.inner.routing.state().observe(NodeId::new(0), &refused, std::time::Instant::now());
        }
    }
    let (result, took) = write.await.unwrap();
    let exec = result.expect("retried on the new primary");
    assert_eq!(exec.rows_affected(), 1);
    assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
    let new_primary = db.inner.nodes.hold(NodeId::new(1)).unwrap().writer().clone();
    let log = new_primary.into_transaction_log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(log[0].statements()[0].sql.starts_with("INSERT"), "{log:?}");
    assert_eq!(db.stats().nodes()[1].writes(), 1);
    assert_eq!(db.stats().retries(), 1, "the move to the new primary is counted");
}

/// A primary that stays the primary is waited for up to the pool's acquire timeout; the write
/// then fails saying it was not sent, and is not retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_primary_stays_is_not_retried_and_says_it_was_not_sent() {
    let acquire = std::time::Duration::from_millis(300);
    let db = routed(refusing(acquire).await, vec![answering()], 2);
    let err = db.execute_raw(insert()).await.expect_err("no connection in time");
    let typed = routing_error(&err).expect("the adapter's error");
    assert!(matches!(typed, RoutingError::Backpressure { .. }), "{typed:?}");
    assert!(typed.is_retryable() && !typed.outcome_unknown(), "{typed:?}");
    let replica = db.inner.nodes.hold(NodeId::new(1)).unwrap().writer().clone();
    assert_eq!(statements(&replica), 0, "nothing reached the replica");
    assert_eq!(db.stats().retries(), 0, "not retried");
}

/// Without a new primary to go to, a write given up on a primary marked down fails at once,
/// saying it was not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_a_primary_marked_down_with_no_successor_fails_unsent() {
    let db = routed(refusing(std::time::Duration::from_secs(30)).await, vec![answering()], 2);
    let write = tokio::spawn({
        let db = db.clone();
        async move { db.execute_raw(insert()).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    for _ in 0..5 {
        let refused = Err(rwsplit_monitor::ProbeError::refused("connection refused"));
        db.inner.routing.state().observe(NodeId::new(0), &refused, std::time::Instant::now());
    }
    let err = tokio::time::timeout(std::time::Duration::from_secs(2), write)
        .await
        .expect("given up at once")
        .unwrap()
        .expect_err("no primary to write to");
    assert!(
        matches!(
            routing_error(&err),
            Some(RoutingError::WriteNotSent {
                reason: NotSentReason::PrimaryDown,
                source: None,
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(statements(db.inner.nodes.hold(NodeId::new(1)).unwrap().writer()), 0);
}

/// A read on the primary (pinned there) waiting on a node that stops being the primary is given
/// up there and runs on the new primary, long before the pool's acquire timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_on_the_primary_follows_a_new_primary() {
    let db = routed(refusing(std::time::Duration::from_secs(30)).await, vec![answering()], 2);
    let read = tokio::spawn({
        let db = db.clone();
        async move {
            let started = std::time::Instant::now();
            let row = RoutedConnection::scope(rwsplit_core::Target::Primary, async {
                db.query_one_raw(select()).await
            })
            .await;
            (row, started.elapsed())
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    probed(&db, NodeId::new(1), false).await;
    let (row, took) = read.await.unwrap();
    assert!(row.expect("read on the new primary").is_some());
    assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
    assert_eq!(db.stats().nodes()[1].reads(), 1);
    assert_eq!(db.stats().retries(), 1);
    let log = db.inner.nodes.hold(NodeId::new(1)).unwrap().conn().clone().into_transaction_log();
    assert_eq!(log[0].statements()[0].sql, select().sql, "the read itself, not an empty one");
}

/// A replica read that is not hedged waits on its node's standing without a timer: a change
/// of the node's health that does not take it down (suspect) is seen and the read goes on
/// waiting; the monitor marking it down ends the read there at once, and it moves on to the
/// primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_read_is_given_up_when_its_node_is_marked_down_and_not_before() {
    let policy = Policy { read_your_writes: false, hedged_reads: false, ..Default::default() };
    let replica = refusing(std::time::Duration::from_secs(30)).await;
    let db = RoutedConnection::from_connections_with(answering(), vec![replica], policy).unwrap();
    let read = tokio::spawn({
        let db = db.clone();
        async move {
            let started = std::time::Instant::now();
            (db.query_one_raw(select()).await, started.elapsed())
        }
    });
    let refused = Err(rwsplit_monitor::ProbeError::refused("connection refused"));
    let state = db.inner.routing.state();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let replica = NodeId::new(1);
    let before = state.changes(replica);
    state.observe(replica, &refused, std::time::Instant::now());
    assert_eq!(state.health(replica), rwsplit_core::Health::Suspect);
    assert!(state.changes(replica) > before, "suspect is announced");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!read.is_finished(), "a suspect replica's read goes on");
    while state.health(replica) != rwsplit_core::Health::Down {
        state.observe(replica, &refused, std::time::Instant::now());
    }
    let (row, took) = read.await.unwrap();
    assert!(row.expect("read on the primary").is_some());
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
    assert_eq!(db.stats().retries(), 1);
    assert_eq!(db.stats().primary().reads(), 1);
}

/// A replica read still unanswered after its hedge delay (a replica that answers nothing:
/// its pool waits 30 s for a connection) is sent to the plan's next node too, which answers;
/// later reads pass the replica over until it answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_replica_read_is_hedged_and_the_replica_passed_over() {
    let handle = prometheus();
    let db = routed(answering(), vec![refusing(std::time::Duration::from_secs(30)).await], 2);
    let started = std::time::Instant::now();
    let row = db.query_one_raw(select()).await.expect("answered by the hedge");
    let took = started.elapsed();
    assert!(row.is_some());
    // Nothing is known of the replica's pace (no probe, no answer): the longest hedge delay.
    let delay = crate::hedge::pace::HEDGE_CAP;
    let most = delay + std::time::Duration::from_millis(100);
    assert!(took >= delay && took < most, "took {took:?}: the hedge delay, then the primary");
    let floor = crate::hedge::pace::HEDGE_FLOOR;
    let hedges = db.stats().hedges();
    assert_eq!((hedges.sent, hedges.won), (1, 1), "{hedges:?}");
    assert_eq!(db.stats().primary().reads(), 1);
    // The replica left a read unanswered: the next read goes to the primary at once.
    let started = std::time::Instant::now();
    db.query_one_raw(select()).await.unwrap();
    assert!(started.elapsed() < floor, "passed over, not waited on");
    assert_eq!(db.stats().hedges().stalled_skips, 1);
    assert_eq!(db.stats().primary().reads(), 2);
    // The metrics say the same: one hedged read, ended by its hedge; one passover. (The
    // recorder is the process's: other tests' mock replicas are named alike, so at least.)
    let text = handle.render();
    let count = |series: &str| {
        let line = text.lines().find(|l| l.starts_with(series));
        line.and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).unwrap_or(0.0)
    };
    let node = "server_address=\"replica 1\",server_port=\"\"";
    assert!(
        count(&format!("rwsplit_hedged_reads_total{{{node},outcome=\"hedge\"}}")) >= 1.0,
        "{text}"
    );
    assert!(count(&format!("rwsplit_read_passovers_total{{{node}}}")) >= 1.0, "{text}");
    assert!(!text.contains("outcome=\"passed_over\""), "{text}");
}

/// The read path's budget: a statement's future — what SeaORM's `async_trait` moves, whole, into the
/// box it makes of every call — stays under 2 KB, for a read and for a write. The write path
/// (taking a connection, sending, watching the primary), the position capture after a write and
/// the catch-up wait are boxed apart, only when they run. Before they were (f557c7a) a read's
/// future was 19,072 bytes and copying it was most of the router's cost per read.
#[tokio::test]
async fn statement_futures_stay_small() {
    const BUDGET: usize = 2048;
    let db = routed(answering(), vec![answering()], 2);
    let ctx = crate::routing::Ctx::default();
    let insert = Statement::from_string(DbBackend::Postgres, "INSERT INTO t VALUES (1)");
    let sizes = [
        ("query_one", std::mem::size_of_val(&statement_in(&db.inner, QueryOne(select()), ctx))),
        ("query_all", std::mem::size_of_val(&statement_in(&db.inner, QueryAll(select()), ctx))),
        ("stream", std::mem::size_of_val(&statement_in(&db.inner, Stream(select()), ctx))),
        ("execute", std::mem::size_of_val(&statement_in(&db.inner, Execute(insert.clone()), ctx))),
        (
            "execute_unprepared",
            std::mem::size_of_val(&statement_in(&db.inner, Unprepared(&insert.sql), ctx)),
        ),
    ];
    for (call, size) in sizes {
        println!("{call}: {size} bytes");
        assert!(size <= BUDGET, "{call}'s future is {size} bytes, over the {BUDGET}-byte budget");
    }
}

/// Setting a metric callback hooks every node's pools, the primary lent out since the start
/// included; a node a topology source adds later is hooked as it is installed; none is before
/// a callback is set (the adapter's own statements always run on the plain pools).
#[tokio::test]
async fn a_metric_callback_hooks_every_node_and_those_added_later() {
    use crate::nodes::Node;
    let mut db = routed(answering(), vec![answering()], 2);
    let early = super::add_node(
        &db,
        Node::new("replica 2".to_owned(), answering()),
        None,
        Default::default(),
    )
    .unwrap();
    let hooked = |db: &RoutedConnection| -> Vec<(NodeId, bool)> {
        let mut hooked = Vec::new();
        db.inner.nodes.each(|i, n| hooked.push((i, n.is_hooked())));
        hooked
    };
    assert_eq!(hooked(&db), [(NodeId::new(0), false), (NodeId::new(1), false), (early, false)]);
    db.set_metric_callback(|_| {});
    assert_eq!(hooked(&db), [(NodeId::new(0), true), (NodeId::new(1), true), (early, true)]);
    assert!(db.inner.with_primary(|n| n.is_hooked()), "the primary lent out since the start");
    let later = super::add_node(
        &db,
        Node::new("replica 3".to_owned(), answering()),
        None,
        Default::default(),
    )
    .unwrap();
    assert!(db.inner.nodes.hold(later).unwrap().is_hooked(), "a node added later reports too");
    // The pools handed out are the hooked ones from now on.
    let primary = db.inner.nodes.hold(NodeId::new(0)).unwrap();
    assert!(std::ptr::eq(db.primary(), primary.user_writer()));
    assert!(!std::ptr::eq(db.primary(), primary.writer()));
}

/// A plan names nodes by id. One made before a replica was removed and its index given to a
/// newer node (the next generation) never runs on that newer node: its candidate is gone, and
/// the read moves on to the primary. A plan made after it reaches the newcomer.
#[tokio::test]
async fn a_plan_made_before_an_index_was_reused_never_runs_on_the_new_node() {
    use rwsplit_core::{Access, RouteContext};
    let db = routed(answering(), vec![answering()], 2);
    let old_plan = db
        .inner
        .routing
        .route(&RouteContext::for_access(Access::Read, std::time::Instant::now()))
        .unwrap();
    assert_eq!(old_plan.first(), NodeId::new(1), "the read is planned for the replica");
    let replica = db.inner.nodes.hold(NodeId::new(1)).unwrap().conn().clone();
    assert!(super::remove_node(&db, NodeId::new(1)));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let newcomer = answering();
    let id = super::add_node(
        &db,
        crate::nodes::Node::new("replica 9".to_owned(), newcomer.clone()),
        None,
        Default::default(),
    );
    let id = id.expect("index 1 drained and free");
    assert_eq!(id, NodeId::with_generation(1, 1));
    // The newcomer joins: the monitor's state sees it caught up (no monitor runs on mocks).
    probed(&db, NodeId::new(0), false).await;
    probed(&db, id, true).await;
    assert!(db.inner.routing.state().snapshot().node(id).is_some(), "in rotation");

    let mut work = super::attempt::QueryOne(select());
    let (row, served_by) =
        super::attempt::attempt(&db.inner, &old_plan, &mut work, &crate::consistency::Scope::Task)
            .await
            .expect("served elsewhere");
    assert!(row.is_some());
    assert_eq!(served_by, NodeId::new(0), "the old plan's replica is gone: the primary served");
    assert_eq!(statements(&newcomer), 0, "the old plan never reached the new node");
    assert_eq!(statements(&replica), 0, "nor the removed one");

    let new_plan = db
        .inner
        .routing
        .route(&RouteContext::for_access(Access::Read, std::time::Instant::now()))
        .unwrap();
    assert_eq!(new_plan.first(), id);
    db.query_one_raw(select()).await.unwrap();
    assert_eq!(statements(&newcomer), 1, "a plan made after the reuse reaches it");
}

/// Monotonic reads without a monitor (mock nodes: no position is ever sampled, so no bound of
/// what a read saw is ever known): a scope's reads stay on the node of its last read, and
/// move only to the primary (at or past every replica), where they stay; `Eventual` reads are
/// balanced as before. The bound's resolution by samples is the itests' (real replication).
#[tokio::test]
async fn without_a_bound_a_scope_reads_again_where_it_last_read() {
    // Primary at once: a caller that waits would read the primary's position to bound a read
    // made there (`Io::PrimaryFloor`), which these mocks cannot answer.
    let policy = Policy {
        consistency: rwsplit_core::Consistency::Session,
        wait_for_replica: None,
        ..Policy::default()
    };
    let (p, r1, r2) = (answering(), answering(), answering());
    let db =
        RoutedConnection::from_connections_with(p.clone(), vec![r1.clone(), r2.clone()], policy)
            .unwrap();
    let session = db.session();
    for _ in 0..4 {
        session.query_one_raw(select()).await.unwrap();
    }
    let served = (statements(&p), statements(&r1), statements(&r2));
    assert!(served == (0, 4, 0) || served == (0, 0, 4), "one replica serves them all: {served:?}");
    assert_eq!(db.stats().read_your_writes().last_node_reads, 3);

    // The same reads without monotonic reads are spread over both replicas.
    let eventual = db.session().with_consistency(rwsplit_core::Consistency::Eventual);
    for _ in 0..4 {
        eventual.query_one_raw(select()).await.unwrap();
    }
    // (Each look at a mock's log takes what it holds.)
    let (r1_now, r2_now) = (statements(&r1), statements(&r2));
    assert!(r1_now > 0 && r2_now > 0, "balanced: {r1_now} and {r2_now}");

    // The last read's replica leaves rotation: the next read goes to the primary, and the
    // one after stays there (the primary's own bound is not known either).
    let last = if served.1 == 4 { NodeId::new(1) } else { NodeId::new(2) };
    db.inner.routing.ban(last);
    session.query_one_raw(select()).await.unwrap();
    session.query_one_raw(select()).await.unwrap();
    assert_eq!(statements(&p), 2, "both on the primary");
}

/// Writes-follow-reads: a session that only read exports a token bounding what it read. With
/// no monitor sample, that is the replica it read on, by name: no wait, no statement anywhere.
/// Resumed, its reads go to that replica again (its replay only moves forward).
#[tokio::test]
async fn a_session_that_read_exports_the_replica_it_read_on() {
    let primary = answering();
    let policy = Policy { consistency: rwsplit_core::Consistency::Session, ..Policy::default() };
    let (r1, r2) = (answering(), answering());
    let db = RoutedConnection::from_connections_with(
        primary.clone(),
        vec![r1.clone(), r2.clone()],
        policy,
    )
    .unwrap();
    let session = db.session();
    assert_eq!(session.token().await.unwrap(), None, "nothing read, nothing written");
    session.query_one_raw(select()).await.unwrap();
    // (Each look at a mock's log takes what it holds.)
    let on_r1 = (statements(&r1), statements(&r2)) == (1, 0);
    let (name, other) = if on_r1 { ("replica 1", &r2) } else { ("replica 2", &r1) };
    let token = session.token().await.unwrap().expect("a bound of the read");
    assert_eq!(token.read_on(), Some(name));
    assert_eq!(token.position(), None);
    assert_eq!(statements(&primary), 0, "exporting it asked the primary nothing");
    // Resumed (as another process would), its reads stay on that replica.
    let resumed = db.session_from(&token.to_string()).unwrap();
    for _ in 0..3 {
        resumed.query_one_raw(select()).await.unwrap();
    }
    let (on_it, elsewhere) = if on_r1 { (&r1, other) } else { (&r2, other) };
    assert_eq!((statements(on_it), statements(elsewhere), statements(&primary)), (3, 0, 0));
    assert_eq!(resumed.token().await.unwrap(), Some(token), "the same token: nothing to resend");
    // A name this connection does not know is bounded by the primary's position instead.
    assert!(db.session_from("pg:@elsewhere:5432/app").is_ok());
}

/// One statement looks at the live topology once: the plan's snapshot, which the executor works
/// from (a write's check that its primary is not marked down included). Its watch looks at its
/// node's standing only while it waits on the node: a write once between its two steps (after
/// its connection is taken, before it is sent: `sending::in_steps`), a read on the primary once
/// as it starts; a read on a replica that answers at once, never.
#[rstest]
#[case::a_read(select(), false, 0)]
#[case::a_read_in_a_read_your_writes_scope(select(), true, 0)]
#[case::a_write_returning_rows(insert(), false, 1)]
#[tokio::test]
async fn a_statement_looks_at_the_topology_once(
    #[case] stmt: Statement,
    #[case] read_your_writes: bool,
    #[case] watch: usize,
) {
    let policy = Policy { read_your_writes, ..Default::default() };
    let db = RoutedConnection::from_connections_with(answering(), vec![answering()], policy)
        .expect("two mock nodes");
    let looks = |before: (usize, usize)| {
        let now = db.inner.routing.looks();
        (now.0 - before.0, now.1 - before.1)
    };
    for _ in 0..2 {
        let before = db.inner.routing.looks();
        db.query_one_raw(stmt.clone()).await.expect("answered");
        assert_eq!(looks(before), (1, watch), "{}", stmt.sql);
    }
    // `execute` runs on the primary whatever its SQL: the watch looks once there too.
    let before = db.inner.routing.looks();
    db.execute_raw(stmt.clone()).await.expect("executed");
    assert_eq!(looks(before), (1, 1), "execute: {}", stmt.sql);
}

/// A plan for `target` (a read), made now.
fn read_plan(db: &RoutedConnection, target: rwsplit_core::Target) -> crate::cluster::Plan {
    use rwsplit_core::{Access, RouteContext};
    let ctx = RouteContext::for_access(Access::Read, std::time::Instant::now()).with_target(target);
    db.inner.routing.route(&ctx).unwrap()
}

/// A plan whose every candidate was skipped fails naming each and why: removed since it was
/// planned, or a catch-up wait that did not see the session's writes there.
#[rstest]
#[case::removed(false, "replica 1 (removed from the connection, draining), primary (removed")]
#[case::not_caught_up(
    true,
    "replica 1 (did not replay the session's writes within 50ms (wait_for_replica)), primary \
     (removed from the connection, draining)"
)]
#[tokio::test]
async fn a_plan_with_no_node_left_names_each_candidate_and_why(
    #[case] wait: bool,
    #[case] says: &str,
) {
    use crate::{NodeOut, OutReason};
    let db = routed(answering(), vec![answering(), answering()], 2);
    let mut plan = read_plan(&db, rwsplit_core::Target::Node(NodeId::new(1)));
    assert_eq!(plan.iter().collect::<Vec<_>>(), [NodeId::new(1), NodeId::new(0)]);
    // The primary, the plan's last resort, is removed in both cases.
    assert!(super::remove_node(&db, NodeId::new(0)));
    let waited = std::time::Duration::from_millis(50);
    let why = if wait {
        // The mock's row has no LSN: the wait fails, and the replica is skipped.
        let lsn: rwsplit_core::Lsn = "0/16B3748".parse().unwrap();
        let token = rwsplit_core::CausalToken::new(rwsplit_core::PgPosition::new(7, 1, lsn));
        plan = plan.with_wait(token, waited);
        OutReason::NotCaughtUp { waited }
    } else {
        assert!(super::remove_node(&db, NodeId::new(1)));
        OutReason::Removed
    };
    let mut work = super::attempt::QueryOne(select());
    let err =
        super::attempt::attempt(&db.inner, &plan, &mut work, &crate::consistency::Scope::Task)
            .await
            .expect_err("no node left");
    let Some(RoutingError::NoNodeLeft { nodes }) = routing_error(&err) else { panic!("{err:?}") };
    assert_eq!(
        nodes,
        &[NodeOut::new("replica 1", why), NodeOut::new("primary", OutReason::Removed)]
    );
    assert!(
        err.to_string().contains(&format!(
            "no node left to run the statement on: every candidate was skipped: {says}"
        )),
        "{err}"
    );
}

/// Reads `node`'s position now (coalesced with reads of it under way), as read-your-writes
/// does after a write.
async fn capture(
    db: &RoutedConnection,
    node: NodeId,
) -> Result<rwsplit_core::CausalToken, sea_orm::DbErr> {
    let inner = &db.inner;
    inner.causality.capture(&inner.routing, &inner.writable(), node, Purpose::Write).await
}

/// A position read on a node removed since fails naming the node by its name, which the
/// registry keeps for the last node removed at each index; an id it never had, by its id.
#[tokio::test]
async fn a_removed_node_is_named_by_its_address() {
    let db = routed(answering(), vec![answering()], 2);
    assert!(super::remove_node(&db, NodeId::new(1)));
    let err = capture(&db, NodeId::new(1)).await.expect_err("removed");
    assert!(
        matches!(routing_error(&err), Some(RoutingError::NodeRemoved { node }) if node == "replica 1"),
        "{err:?}"
    );
    assert!(err.to_string().contains("replica 1 was removed from the connection"), "{err}");
    let never = NodeId::with_generation(1, 7);
    let err = capture(&db, never).await.expect_err("never there");
    assert!(
        matches!(routing_error(&err), Some(RoutingError::NodeRemoved { node }) if *node == format!("node {never}")),
        "{err:?}"
    );
}

/// A position the server returns unreadable names the node it was read on.
#[tokio::test]
async fn an_unreadable_position_names_its_node() {
    // The mock's rows hold no position.
    let db = routed(answering(), vec![answering()], 2);
    let err = capture(&db, NodeId::new(0)).await.expect_err("unreadable");
    assert!(
        matches!(
            routing_error(&err),
            Some(RoutingError::PositionUnreadable { node: Some(n), .. }) if n == "primary"
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("unreadable replication position on primary: "), "{err}");
}
