//! SeaORM's own hooks for the statements the router runs on the user's behalf: the metric
//! callback ([`RoutedConnection::set_metric_callback`](crate::RoutedConnection::set_metric_callback)),
//! and SeaORM's `debug-print` line and `tracing-spans` span for writes the adapter sends
//! itself.
//!
//! Most statements still run through a node's SeaORM `DatabaseConnection`: reads, `BEGIN` and
//! every statement of a transaction (a SeaORM `DatabaseTransaction` keeps its pool's
//! callback), streams, writes on pools that are not sqlx pools. SeaORM reports those itself.
//! So once a callback is set, each node gets a second handle on each of its pools with a SeaORM
//! callback that forwards to [`Hooks`] (`Node::hook`), and the router runs the user's
//! statements on those; the adapter's own statements (position captures after writes,
//! catch-up waits, server checks) run on the plain handles and are not reported. Writes on
//! sqlx pools are sent in two steps by the adapter ([`sending`](crate::send::sending)), past
//! SeaORM's `DatabaseConnection`: for them this module does what SeaORM's would, with the same
//! [`Info`], log line and span.
//!
//! What is reported is what SeaORM reports: `execute`, `query_one`, `query_all` and streams
//! (timed from when the connection was taken to the statement's end, as SeaORM's `metric!`),
//! not `execute_unprepared` (SeaORM's drivers time no unprepared statement) nor `BEGIN`,
//! `COMMIT` and `ROLLBACK`. A statement whose future is dropped before it ends (a caller's
//! timeout; a read the router gives up on a replica the monitor marked down; a write whose
//! outcome is unknown) is not reported, as with SeaORM. A read that fails on one node and is
//! retried on the next is reported once per node it ran on.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwapOption;
use sea_orm::metric::Info;
use sea_orm::{DatabaseConnection, Statement};

use crate::product::Product;

/// The user's metric callback (boxed in a sized type: `arc-swap` holds only those).
struct Metric(Box<dyn Fn(&Info<'_>) + Send + Sync>);

/// The hooks a connection's nodes report to: one per [`RoutedConnection`](crate::RoutedConnection),
/// shared with the SeaORM callbacks installed on its nodes' pools.
#[derive(Default)]
pub(crate) struct Hooks {
    metric: ArcSwapOption<Metric>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks").field("metric", &self.is_set()).finish()
    }
}

impl Hooks {
    /// Sets the metric callback (replacing one set before).
    pub(crate) fn set_metric<F>(&self, callback: F)
    where
        F: Fn(&Info<'_>) + Send + Sync + 'static,
    {
        self.metric.store(Some(Arc::new(Metric(Box::new(callback)))));
    }

    /// Whether a metric callback is set.
    pub(crate) fn is_set(&self) -> bool {
        self.metric.load().is_some()
    }

    /// Reports one statement to the callback, if one is set.
    pub(crate) fn report(&self, info: &Info<'_>) {
        if let Some(m) = &*self.metric.load() {
            (m.0)(info);
        }
    }

    /// `pool`, a second handle on the same pool, whose SeaORM metric callback forwards here
    /// (pools SeaORM keeps no callback for, mocks and proxies, report nothing).
    pub(crate) fn hooked(self: &Arc<Self>, pool: &DatabaseConnection) -> DatabaseConnection {
        let mut hooked = pool.clone();
        let hooks = Arc::clone(self);
        hooked.set_metric_callback(move |info| hooks.report(info));
        hooked
    }

    /// The timing of `call`'s statement, if a callback is set and SeaORM would report it (a
    /// clone of the statement: it is moved into the query when sent).
    pub(crate) fn timing(&self, call: &Call<'_>) -> Option<Timing> {
        if !self.is_set() {
            return None;
        }
        call.reported().map(|stmt| Timing { stmt: stmt.clone(), start: Instant::now() })
    }

    /// Reports a statement timed by [`timing`](Self::timing) as ended now.
    pub(crate) fn finish(&self, timing: Option<Timing>, failed: bool) {
        if let Some(t) = timing {
            let info = Info { elapsed: t.start.elapsed(), statement: &t.stmt, failed };
            self.report(&info);
        }
    }
}

/// One statement being timed for the metric callback.
#[derive(Debug)]
pub(crate) struct Timing {
    stmt: Statement,
    start: Instant,
}

impl Timing {
    /// Starts the clock now (when the statement is sent, its connection taken: as SeaORM's
    /// `metric!`).
    pub(crate) fn start(&mut self) {
        self.start = Instant::now();
    }
}

/// The SeaORM `DatabaseConnection` method a write sent in two steps stands for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Call<'a> {
    /// `execute_raw`.
    Execute(&'a Statement),
    /// `execute_unprepared`.
    Unprepared(&'a str),
    /// `query_one_raw`.
    QueryOne(&'a Statement),
    /// `query_all_raw`.
    QueryAll(&'a Statement),
}

impl<'a> Call<'a> {
    /// The statement SeaORM reports to its metric callback (none for `execute_unprepared`).
    fn reported(&self) -> Option<&'a Statement> {
        match *self {
            Call::Execute(s) | Call::QueryOne(s) | Call::QueryAll(s) => Some(s),
            Call::Unprepared(_) => None,
        }
    }

    /// The SQL text.
    #[cfg_attr(not(feature = "tracing-spans"), allow(dead_code))]
    fn sql(&self) -> &'a str {
        match *self {
            Call::Execute(s) | Call::QueryOne(s) | Call::QueryAll(s) => &s.sql,
            Call::Unprepared(sql) => sql,
        }
    }
}

/// SeaORM's `debug-print` line for `call` (`tracing::debug!` of the statement, values
/// inlined, under the target of SeaORM's sqlx driver), with the feature on.
#[cfg(feature = "debug-print")]
pub(crate) fn debug_print(call: &Call<'_>, product: Product) {
    // The target is part of an event's static metadata: one call site per driver.
    macro_rules! print {
        ($target:literal) => {
            match *call {
                Call::Execute(s) | Call::QueryOne(s) | Call::QueryAll(s) => {
                    tracing::debug!(target: $target, "{}", s)
                }
                Call::Unprepared(sql) => tracing::debug!(target: $target, "{}", sql),
            }
        };
    }
    if product.on_seaorm_mysql_driver() {
        print!("sea_orm::driver::sqlx_mysql")
    } else {
        print!("sea_orm::driver::sqlx_postgres")
    }
}

/// Without SeaORM's `debug-print` feature (forwarded by this crate's), nothing.
#[cfg(not(feature = "debug-print"))]
pub(crate) fn debug_print(_call: &Call<'_>, _product: Product) {}

/// The operation SeaORM's spans name (its `DbOperation::from_sql`: the first word).
#[cfg_attr(not(any(test, feature = "tracing-spans")), allow(dead_code))]
pub(crate) fn operation(sql: &str) -> &'static str {
    let first = sql.split_whitespace().next().unwrap_or("");
    ["SELECT", "INSERT", "UPDATE", "DELETE"]
        .into_iter()
        .find(|op| first.eq_ignore_ascii_case(op))
        .unwrap_or("EXECUTE")
}

/// SeaORM's `tracing-spans` span for `call`: the name, target and fields SeaORM's
/// `DatabaseConnection` gives it (`sea_orm.execute`, `sea_orm.query_one` …; `db.statement`
/// recorded if the node's options say so, never for `execute_unprepared`).
#[cfg(feature = "tracing-spans")]
pub(crate) fn span(call: &Call<'_>, product: Product, record_stmt: bool) -> tracing::Span {
    // A span's name and target are static metadata: one call site per method.
    macro_rules! span {
        ($name:literal) => {
            tracing::info_span!(
                target: "sea_orm::database::db_connection",
                $name,
                otel.kind = "client",
                db.system = product.seaorm_system(),
                db.operation = %operation(call.sql()),
                db.statement = tracing::field::Empty,
                otel.status_code = tracing::field::Empty,
                exception.message = tracing::field::Empty,
            )
        };
    }
    let span = match call {
        Call::Execute(_) => span!("sea_orm.execute"),
        Call::Unprepared(_) => span!("sea_orm.execute_unprepared"),
        Call::QueryOne(_) => span!("sea_orm.query_one"),
        Call::QueryAll(_) => span!("sea_orm.query_all"),
    };
    if record_stmt && !matches!(call, Call::Unprepared(_)) {
        span.record("db.statement", call.sql());
    }
    span
}

/// SeaORM's span of a write sent in two steps: a `tracing` span with the `tracing-spans`
/// feature, none without.
#[cfg(feature = "tracing-spans")]
pub(crate) type Span = tracing::Span;

/// Without the `tracing-spans` feature there is no span (no value of this type).
#[cfg(not(feature = "tracing-spans"))]
#[derive(Debug)]
pub(crate) enum Span {}

/// SeaORM's span for `call` with the `tracing-spans` feature ([`span`]), else none.
pub(crate) fn seaorm_span(call: &Call<'_>, product: Product, record_stmt: bool) -> Option<Span> {
    #[cfg(feature = "tracing-spans")]
    return Some(span(call, product, record_stmt));
    #[cfg(not(feature = "tracing-spans"))]
    {
        let _ = (call, product, record_stmt);
        None
    }
}

/// Runs `f` inside `span`, if there is one.
pub(crate) fn in_scope<T>(span: Option<&Span>, f: impl FnOnce() -> T) -> T {
    match span {
        #[cfg(feature = "tracing-spans")]
        Some(span) => span.in_scope(f),
        #[cfg(not(feature = "tracing-spans"))]
        Some(never) => match *never {},
        None => f(),
    }
}

/// Runs `fut` inside `span`, if there is one (SeaORM's `with_db_span!`: the whole call, taking
/// the connection included).
pub(crate) async fn in_span_of<F: std::future::Future>(span: Option<&Span>, fut: F) -> F::Output {
    match span {
        #[cfg(feature = "tracing-spans")]
        Some(span) => tracing::Instrument::instrument(fut, span.clone()).await,
        #[cfg(not(feature = "tracing-spans"))]
        Some(never) => match *never {},
        None => fut.await,
    }
}

/// Records a call's outcome on its span, as SeaORM does (`otel.status_code`, and the error's
/// text as `exception.message`).
#[cfg(feature = "tracing-spans")]
pub(crate) fn record(span: &tracing::Span, error: Option<&sea_orm::DbErr>) {
    match error {
        None => {
            span.record("otel.status_code", "OK");
        }
        Some(e) => {
            span.record("otel.status_code", "ERROR");
            span.record("exception.message", tracing::field::display(e));
        }
    }
}

#[cfg(test)]
mod tests;
