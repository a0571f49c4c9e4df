//! The hooks without a database: what reaches the callback, and (with the features) SeaORM's
//! span and log line for a write the adapter sends itself. A real cluster's statements are in
//! `tests/it/sea_orm_hooks.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rstest::rstest;
use sea_orm::{DbBackend, Statement, Value};

use super::*;

fn insert() -> Statement {
    Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO t (a) VALUES ($1)",
        [Value::from(7)],
    )
}

/// Which SeaORM method a test's call stands for.
#[derive(Debug, Clone, Copy)]
enum Method {
    Execute,
    Unprepared,
    QueryOne,
    QueryAll,
}

impl Method {
    fn of(self, stmt: &Statement) -> Call<'_> {
        match self {
            Method::Execute => Call::Execute(stmt),
            Method::Unprepared => Call::Unprepared(&stmt.sql),
            Method::QueryOne => Call::QueryOne(stmt),
            Method::QueryAll => Call::QueryAll(stmt),
        }
    }
}

/// What the callback saw: the SQL, the values and whether it failed, per report.
type Seen = Arc<Mutex<Vec<(String, Option<sea_orm::Values>, bool)>>>;

fn recording(hooks: &Hooks) -> Seen {
    let seen = Seen::default();
    let into = Arc::clone(&seen);
    hooks.set_metric(move |info| {
        let s = info.statement;
        into.lock().unwrap().push((s.sql.clone(), s.values.clone(), info.failed));
    });
    seen
}

/// The first word, case-insensitively, as SeaORM's `DbOperation::from_sql`.
#[rstest]
#[case("SELECT 1", "SELECT")]
#[case("  select * from t", "SELECT")]
#[case("INSERT INTO t VALUES (1)", "INSERT")]
#[case("update t set a = 1", "UPDATE")]
#[case("DELETE FROM t", "DELETE")]
#[case("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", "EXECUTE")]
#[case("CREATE TABLE t (a int)", "EXECUTE")]
#[case("", "EXECUTE")]
fn the_operation_is_the_first_word(#[case] sql: &str, #[case] op: &str) {
    assert_eq!(operation(sql), op);
}

/// SeaORM's name for the backend, not OpenTelemetry's (`mariadb`).
#[rstest]
#[case(DbBackend::Postgres, "postgresql")]
#[case(DbBackend::MySql, "mysql")]
#[case(DbBackend::Sqlite, "sqlite")]
fn the_system_is_seaorms(#[case] backend: DbBackend, #[case] name: &str) {
    assert_eq!(Product::of(backend).seaorm_system(), name);
}

#[test]
fn without_a_callback_nothing_is_timed_or_cloned() {
    let hooks = Hooks::default();
    let stmt = insert();
    assert!(!hooks.is_set());
    assert!(hooks.timing(&Call::Execute(&stmt)).is_none());
}

/// SeaORM reports `execute`, `query_one` and `query_all`, with the statement's values and
/// whether it failed; it times no `execute_unprepared`.
#[rstest]
#[case::execute(Method::Execute, true)]
#[case::query_one(Method::QueryOne, true)]
#[case::query_all(Method::QueryAll, true)]
#[case::unprepared(Method::Unprepared, false)]
fn a_timed_statement_reaches_the_callback_once(
    #[case] method: Method,
    #[case] reported: bool,
    #[values(false, true)] failed: bool,
) {
    let hooks = Hooks::default();
    let seen = recording(&hooks);
    let stmt = insert();
    let timing = hooks.timing(&method.of(&stmt));
    assert_eq!(timing.is_some(), reported);
    hooks.finish(timing, failed);
    let seen = seen.lock().unwrap().clone();
    if reported {
        assert_eq!(seen, vec![(stmt.sql.clone(), stmt.values.clone(), failed)]);
    } else {
        assert!(seen.is_empty(), "{seen:?}");
    }
}

/// The clock starts when the statement is sent (its connection taken), not when it was timed.
#[tokio::test(start_paused = true)]
async fn the_clock_starts_when_the_statement_is_sent() {
    let hooks = Hooks::default();
    let elapsed = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&elapsed);
    hooks.set_metric(move |info| into.lock().unwrap().push(info.elapsed));
    let stmt = insert();
    let mut timing = hooks.timing(&Call::Execute(&stmt)).expect("a callback is set");
    std::thread::sleep(Duration::from_millis(30)); // taking the connection
    timing.start();
    hooks.finish(Some(timing), false);
    let elapsed = elapsed.lock().unwrap().clone();
    assert_eq!(elapsed.len(), 1);
    assert!(elapsed[0] < Duration::from_millis(30), "{elapsed:?}");
}

#[test]
fn a_new_callback_replaces_the_old_one() {
    let hooks = Hooks::default();
    let first = recording(&hooks);
    let second = recording(&hooks);
    let stmt = insert();
    hooks.finish(hooks.timing(&Call::Execute(&stmt)), false);
    assert!(first.lock().unwrap().is_empty());
    assert_eq!(second.lock().unwrap().len(), 1);
}

/// Spans and events as a subscriber sees them (name or target, then fields).
#[cfg(any(feature = "tracing-spans", feature = "debug-print"))]
mod captured {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    pub(super) type Record = BTreeMap<String, String>;

    #[derive(Clone, Default)]
    pub(super) struct Captured(pub(super) Arc<Mutex<Vec<Record>>>);

    struct Fields<'a>(&'a mut Record);

    impl tracing::field::Visit for Fields<'_> {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            let text = format!("{value:?}");
            self.0.insert(field.name().to_owned(), text.trim_matches('"').to_owned());
        }
        fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
            self.0.insert(field.name().to_owned(), value.to_owned());
        }
    }

    impl<S> tracing_subscriber::Layer<S> for Captured
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            id: &tracing::span::Id,
            ctx: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let mut fields = Record::new();
            fields.insert("span".into(), attrs.metadata().name().into());
            fields.insert("target".into(), attrs.metadata().target().into());
            attrs.record(&mut Fields(&mut fields));
            if let Some(span) = ctx.span(id) {
                span.extensions_mut().insert(fields);
            }
        }

        fn on_record(
            &self,
            id: &tracing::span::Id,
            values: &tracing::span::Record<'_>,
            ctx: tracing_subscriber::layer::Context<'_, S>,
        ) {
            if let Some(span) = ctx.span(id)
                && let Some(fields) = span.extensions_mut().get_mut::<Record>()
            {
                values.record(&mut Fields(fields));
            }
        }

        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let mut fields = Record::new();
            fields.insert("event".into(), event.metadata().level().to_string());
            fields.insert("target".into(), event.metadata().target().into());
            event.record(&mut Fields(&mut fields));
            self.0.lock().unwrap().push(fields);
        }

        fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
            if let Some(span) = ctx.span(&id)
                && let Some(fields) = span.extensions().get::<Record>()
            {
                self.0.lock().unwrap().push(fields.clone());
            }
        }
    }

    /// Runs `f` under a subscriber that captures everything at debug level and up.
    pub(super) fn capture(f: impl FnOnce()) -> Vec<Record> {
        use tracing_subscriber::layer::SubscriberExt;
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(captured.clone());
        tracing::subscriber::with_default(subscriber, || {
            // Interest is cached per call site, maybe from a thread with no subscriber.
            tracing::callsite::rebuild_interest_cache();
            f();
        });
        captured.0.lock().unwrap().clone()
    }
}

/// SeaORM's span for a write the adapter sends itself: its name, target and fields, the
/// statement recorded unless the node's options say not to, and the outcome.
#[cfg(feature = "tracing-spans")]
#[rstest]
#[case::execute_failed(Method::Execute, "sea_orm.execute", true, true)]
#[case::query_one(Method::QueryOne, "sea_orm.query_one", true, false)]
#[case::query_all_unrecorded(Method::QueryAll, "sea_orm.query_all", false, false)]
#[case::unprepared(Method::Unprepared, "sea_orm.execute_unprepared", true, false)]
fn a_sent_write_gets_seaorms_span(
    #[case] method: Method,
    #[case] name: &str,
    #[case] record_stmt: bool,
    #[case] failed: bool,
) {
    let stmt = insert();
    let err = sea_orm::DbErr::Custom("duplicate key".into());
    let call = method.of(&stmt);
    let got = captured::capture(|| {
        let span = span(&call, Product::POSTGRES, record_stmt);
        record(&span, failed.then_some(&err));
    });
    let spans: Vec<_> = got.iter().filter(|r| r.contains_key("span")).collect();
    assert_eq!(spans.len(), 1, "{got:?}");
    let s = spans[0];
    assert_eq!(s["span"], name);
    assert_eq!(s["target"], "sea_orm::database::db_connection");
    assert_eq!(s["otel.kind"], "client");
    assert_eq!(s["db.system"], "postgresql");
    assert_eq!(s["db.operation"], "INSERT");
    // SeaORM never records an unprepared statement's text.
    let recorded = record_stmt && !matches!(call, Call::Unprepared(_));
    assert_eq!(s.get("db.statement").map(String::as_str), recorded.then_some(stmt.sql.as_str()));
    assert_eq!(s["otel.status_code"], if failed { "ERROR" } else { "OK" });
    assert_eq!(
        s.get("exception.message").map(String::as_str),
        failed.then_some("Custom Error: duplicate key")
    );
}

/// SeaORM's `debug-print` line: the statement with its values inlined, at debug level, under
/// the target of SeaORM's sqlx driver for the backend.
#[cfg(feature = "debug-print")]
#[rstest]
#[case(DbBackend::Postgres, "sea_orm::driver::sqlx_postgres")]
#[case(DbBackend::MySql, "sea_orm::driver::sqlx_mysql")]
fn a_sent_write_is_printed_as_seaorms_driver_prints_it(
    #[case] backend: DbBackend,
    #[case] target: &str,
) {
    let stmt = insert();
    let got = captured::capture(|| debug_print(&Call::Execute(&stmt), Product::of(backend)));
    let events: Vec<_> = got.iter().filter(|r| r.contains_key("event")).collect();
    assert_eq!(events.len(), 1, "{got:?}");
    assert_eq!(events[0]["event"], "DEBUG");
    assert_eq!(events[0]["target"], target);
    assert_eq!(events[0]["message"], "INSERT INTO t (a) VALUES (7)");
}

/// The wiring in the attempt loop, on a real sqlx pool whose server refuses (no database
/// needed): a write taken in two steps gets SeaORM's span inside `rwsplit.statement` and its
/// log line before the connection is taken; it was never sent, so the metric callback hears
/// nothing (as SeaORM's, which times only what it sent) and the span ends in error.
#[cfg(all(feature = "tracing-spans", feature = "debug-print", feature = "postgres"))]
#[tokio::test(flavor = "current_thread")]
async fn a_write_that_cannot_be_sent_is_spanned_and_printed_but_not_timed() {
    use sea_orm::ConnectionTrait;
    use tracing_subscriber::layer::SubscriberExt;

    let mut opts = sea_orm::ConnectOptions::new("postgres://app@127.0.0.1:1/app");
    opts.connect_lazy(true).acquire_timeout(Duration::from_millis(300));
    let pool = sea_orm::Database::connect(opts).await.unwrap();
    let mut db = crate::connection::RoutedConnection::from_connections(pool, Vec::new()).unwrap();
    let seen = recording_info(&mut db);

    let captured = captured::Captured::default();
    let subscriber = tracing_subscriber::registry().with(captured.clone());
    let guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    db.execute_raw(insert()).await.expect_err("nothing listens on port 1");
    drop(guard);

    assert!(seen.lock().unwrap().is_empty(), "not sent, not timed");
    let got = captured.0.lock().unwrap().clone();
    let span: Vec<_> =
        got.iter().filter(|r| r.get("span").is_some_and(|s| s == "sea_orm.execute")).collect();
    assert_eq!(span.len(), 1, "{got:?}");
    assert_eq!(span[0]["db.operation"], "INSERT");
    assert_eq!(span[0]["db.statement"], insert().sql);
    assert_eq!(span[0]["otel.status_code"], "ERROR");
    let printed: Vec<_> = got
        .iter()
        .filter(|r| r.get("target").is_some_and(|t| t == "sea_orm::driver::sqlx_postgres"))
        .collect();
    assert_eq!(printed.len(), 1, "{got:?}");
    assert_eq!(printed[0]["message"], "INSERT INTO t (a) VALUES (7)");
    // Inside the router's own span, as SeaORM's spans of reads are.
    let order: Vec<&str> = got.iter().filter_map(|r| r.get("span").map(String::as_str)).collect();
    assert_eq!(order, ["sea_orm.execute", "rwsplit.statement"], "closed inner first: {got:?}");
}

/// Records what reaches `db`'s metric callback.
#[cfg(all(feature = "tracing-spans", feature = "debug-print", feature = "postgres"))]
fn recording_info(db: &mut crate::connection::RoutedConnection) -> Seen {
    let seen = Seen::default();
    let into = Arc::clone(&seen);
    db.set_metric_callback(move |info| {
        let s = info.statement;
        into.lock().unwrap().push((s.sql.clone(), s.values.clone(), info.failed));
    });
    seen
}
