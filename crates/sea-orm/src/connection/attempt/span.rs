//! The attempt loop's telemetry, at its boundary: the statement's span (built only when a
//! subscriber listens) and what each plan and attempt records in it, and the `route` debug event
//! (an attempt's metric labels are its record's, `connection/record.rs`).

use std::fmt;

use crate::cluster::Plan;
use crate::nodes::registry::Node;
use crate::observe::telemetry;
use crate::routing::ctx::Ctx;
use crate::routing::plan::Planner;

/// The span one statement runs in (see [`crate::observe::telemetry`]): its node, route
/// reason and attempt number are recorded by [`attempt`].
pub(in crate::connection) fn statement_span(
    planner: &Planner,
    operation: &'static str,
    ctx: &Ctx<'_>,
) -> tracing::Span {
    if !traced() {
        // No subscriber listens at INFO: not even a disabled span is built (one atomic load;
        // `info_span!` would also consult the `log` bridge every time).
        return tracing::Span::none();
    }
    let level = ctx.consistency.unwrap_or(&planner.policy().consistency);
    tracing::info_span!(
        target: "rwsplit",
        "rwsplit.statement",
        db.system.name = planner.system_name(),
        db.operation.name = operation,
        server.address = tracing::field::Empty,
        server.port = tracing::field::Empty,
        rwsplit.route.reason = tracing::field::Empty,
        rwsplit.consistency = level.name(),
        rwsplit.node.role = tracing::field::Empty,
        rwsplit.attempt = tracing::field::Empty,
    )
}

/// Records `plan`'s route reason in the statement's span; returns whether any subscriber may
/// record it ([`traced`]). The span is fetched where it is used rather than held across the
/// attempts' awaits: a read's future stays smaller.
#[inline]
pub(super) fn route(plan: &Plan) -> bool {
    let traced = traced();
    if traced {
        let span = tracing::Span::current();
        if !span.is_disabled() {
            span.record("rwsplit.route.reason", plan.reason().code());
        }
    }
    traced
}

/// Records an attempt on `node` (the plan's primary or not, the statement's `tried`-th) in the
/// span if `traced`, and the `route` debug event.
#[inline]
pub(super) fn attempt(
    traced: bool,
    node: &Node,
    (on_primary, tried): (bool, usize),
    (plan, write, sql): (&Plan, bool, &str),
) {
    if traced {
        let span = tracing::Span::current();
        if !span.is_disabled() {
            span.record("server.address", &*node.labels().address);
            span.record("server.port", &*node.labels().port);
            span.record("rwsplit.node.role", telemetry::role_name(on_primary));
            span.record("rwsplit.attempt", tried);
        }
    }
    tracing::debug!(target: "rwsplit", node = %node.name(), reason = %plan.reason(), write, sql = %SqlHead(sql), "route");
}

/// Whether any tracing subscriber may record the statement span (INFO): when none does, the
/// statement paths build no span and record nothing.
#[inline]
pub(super) fn traced() -> bool {
    tracing::Level::INFO <= tracing::level_filters::LevelFilter::current()
}

/// The start of a statement, for debug events: enough to recognise it, bounded in size. The SQL
/// text carries bound parameters as placeholders, not values.
pub(super) struct SqlHead<'a>(pub(super) &'a str);

impl fmt::Display for SqlHead<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 80;
        let s = self.0.trim();
        if s.len() <= MAX {
            return f.write_str(s);
        }
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        write!(f, "{}…", &s[..end])
    }
}
