//! What the adapter tells operators: metrics through the [`metrics`] facade, and a `tracing`
//! span per statement.
//!
//! # Metrics
//!
//! Recorded through the [`metrics`](https://docs.rs/metrics) facade: install the exporter of
//! your choice (Prometheus, StatsD, OpenTelemetry …); without one, recording costs a few
//! dozen instructions and goes nowhere. Names and labels follow the OpenTelemetry
//! database-client conventions where one exists; exporters that do not allow dots (Prometheus)
//! replace them with `_`. Labels never carry credentials or SQL text: a node is its
//! `server.address` and `server.port`, a statement its first keyword (`db.operation.name`).
//!
//! | name | kind | labels | what |
//! | --- | --- | --- | --- |
//! | [`OPERATION_DURATION`] | histogram (s) | node, `db.system.name`, `db.operation.name`, `rwsplit.node.role`, `rwsplit.route.reason`, `rwsplit.access`, `error.type` on failure | each attempt's time on a node; its count is the statements each node served, by why they went there |
//! | [`ERRORS`] | counter | node, `rwsplit.node.role`, `error.type` | failed attempts, by class (`connection`, `backpressure`, `given_up`, `replica_refused`, `not_on_replica`, `read_only`, `statement`) |
//! | [`RETRIES`] | counter | node, `rwsplit.access` | statements moved on from this node: reads to the next candidate (`read`), writes never sent to a node that stopped being the primary, once, to the new primary (`write`) |
//! | [`REPLICA_REFUSALS`] | counter | node, `outcome` (`primary`, `failed`) | statements classified as reads that the replica refused because they write (a user function or view): run once on the primary, or the caller's error ([`OnReplicaRefusal`](crate::OnReplicaRefusal)) |
//! | [`READ_YOUR_WRITES`] | counter | `outcome` (`replica`, `waited`, `primary`) | where reads that had to see a write went |
//! | [`IN_FLIGHT`] | gauge | node | statements running on the node now |
//! | [`HEALTH`] | gauge | node | 0 up, 1 suspect, 2 down, 3 joining (added at run time, probed, not in rotation yet), 4 removed |
//! | [`FENCED`] | gauge | node | 1 while fenced |
//! | [`ROLE`] | gauge | node | 1 primary, 0 replica |
//! | [`LAG_BYTES`], [`LAG_SECONDS`] | gauge | node | a replica's replication lag (NaN while unknown: down, replay stopped, MariaDB bytes) |
//! | [`OBSERVATION_AGE`] | gauge (s) | node | since the node last answered a probe: how old its role, position and lag are |
//! | [`CONNECTION_COUNT`] | gauge | node, `db.client.connection.pool.name`, `db.client.connection.state` (`idle`, `used`) | pooled connections |
//! | [`CONNECTION_MAX`] | gauge | node, `db.client.connection.pool.name` | the pool's maximum size |
//! | [`CONNECTION_PENDING`] | gauge | node, `db.client.connection.pool.name` | statements waiting for a connection (in flight minus connections in use) |
//! | [`PROMOTIONS`] | counter | — | promotions the monitor followed |
//!
//! "node" is `server.address` and `server.port`; `db.client.connection.pool.name` is
//! `host:port/db` plus `/read` or `/write` (each node has a pool for reads and one for writes;
//! on the configured primary they are one pool, reported once as `write`). Gauges are sampled
//! by the monitor's clock (each probe interval), counters and histograms on each statement.
//!
//! ## Removed nodes
//!
//! The `metrics` facade cannot delete a series, so a node a topology source removes would keep
//! its last gauge values for as long as the exporter runs (a removed replica "up", with its last
//! lag and connections). Instead, rwsplit marks it gone: its [`HEALTH`] becomes
//! [`HEALTH_REMOVED`] (4) when it is removed, and once it has drained (its last statement
//! finished, its pools closed) every gauge of it is set once more, for the last time:
//! [`HEALTH`] 4, [`FENCED`] 0, [`ROLE`] 0, [`IN_FLIGHT`] 0, [`CONNECTION_PENDING`] 0,
//! [`CONNECTION_COUNT`] 0 for each pool and state, [`CONNECTION_MAX`] 0, and NaN for
//! [`LAG_BYTES`], [`LAG_SECONDS`] and [`OBSERVATION_AGE`] (where the node had those series).
//! The gauge sampler never touches a removed node again. A node that comes back at the same
//! address is a new node with the same labels: the sampler sets its series again once it is
//! probed (as joining, then as whatever it is).
//!
//! Such series then never change. Exporters that forget idle series drop them: with
//! `metrics-exporter-prometheus`,
//! `PrometheusBuilder::new().idle_timeout(MetricKindMask::GAUGE, Some(Duration::from_secs(300)))`
//! removes a gauge not updated for 5 minutes (pick a timeout well above the probe interval: the
//! sampler updates every live node's gauges each interval). Without an idle timeout they stay,
//! saying "removed".
//!
//! # Spans
//!
//! Every statement, stream and `BEGIN` runs in a span named `rwsplit.statement` (target
//! `rwsplit`, level INFO), a child of the caller's span, with the OpenTelemetry fields
//! `db.system.name`, `db.operation.name`, `server.address` and `server.port` (of the node that
//! ran it, recorded once known), plus `rwsplit.route.reason` (why it went there),
//! `rwsplit.consistency`, `rwsplit.node.role` and `rwsplit.attempt` (1 unless a read moved
//! on). Health changes, promotions followed and failovers are events of target `rwsplit`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::SharedString;
use rwsplit_core::{Consistency, Health, Role};
use sea_orm::DatabaseConnection;

use crate::failure::Failure;

/// Histogram, seconds: each attempt's time on a node (OpenTelemetry's name).
pub const OPERATION_DURATION: &str = "db.client.operation.duration";
/// Counter: failed attempts on a node, by `error.type`.
pub const ERRORS: &str = "rwsplit.errors";
/// Counter: reads that failed on a node and moved on to the next candidate.
pub const RETRIES: &str = "rwsplit.retries";
/// Counter: statements classified as reads that a replica refused because they write, by
/// `outcome`: `primary` (run once on the primary) or `failed` (the caller's error).
pub const REPLICA_REFUSALS: &str = "rwsplit.replica_refusals";
/// Counter: where reads that had to see the caller's writes went, by `outcome`.
pub const READ_YOUR_WRITES: &str = "rwsplit.read_your_writes";
/// Gauge: statements running on a node now.
pub const IN_FLIGHT: &str = "rwsplit.node.in_flight";
/// Gauge: a node's health: [`HEALTH_UP`] (0), [`HEALTH_SUSPECT`] (1), [`HEALTH_DOWN`] (2),
/// [`HEALTH_JOINING`] (3), [`HEALTH_REMOVED`] (4).
pub const HEALTH: &str = "rwsplit.node.health";
/// [`HEALTH`] of a healthy node (`Health::Up`).
pub const HEALTH_UP: f64 = 0.0;
/// [`HEALTH`] of a node with recent failures, still routable (`Health::Suspect`).
pub const HEALTH_SUSPECT: f64 = 1.0;
/// [`HEALTH`] of a node out of rotation after repeated failures (`Health::Down`).
pub const HEALTH_DOWN: f64 = 2.0;
/// [`HEALTH`] of a node removed at run time (a topology source no longer lists it); set when it
/// is removed and, with its other gauges' "gone" values, once it has drained (see the module
/// docs, *Removed nodes*).
pub const HEALTH_REMOVED: f64 = 4.0;
/// [`HEALTH`] of a node a topology source added that has not entered rotation yet: probed,
/// waiting to be seen as the primary or as a replica caught up
/// ([`NodeStats::joining`](crate::NodeStats::joining)). Not a failure: `Stats` reports it
/// `Health::Down` with `joining()` true.
pub const HEALTH_JOINING: f64 = 3.0;
/// Gauge: 1 while a node is fenced.
pub const FENCED: &str = "rwsplit.node.fenced";
/// Gauge: 1 for the node that has the primary role, 0 for the others.
pub const ROLE: &str = "rwsplit.node.primary";
/// Gauge: a replica's replication lag in bytes.
pub const LAG_BYTES: &str = "rwsplit.replica.lag.bytes";
/// Gauge: a replica's replication lag in seconds.
pub const LAG_SECONDS: &str = "rwsplit.replica.lag.seconds";
/// Gauge, seconds: since the node last answered a probe.
pub const OBSERVATION_AGE: &str = "rwsplit.node.observation.age";
/// Gauge: pooled connections by state (OpenTelemetry's name).
pub const CONNECTION_COUNT: &str = "db.client.connection.count";
/// Gauge: a pool's maximum size (OpenTelemetry's name).
pub const CONNECTION_MAX: &str = "db.client.connection.max";
/// Gauge: statements waiting for a pooled connection (OpenTelemetry's name).
pub const CONNECTION_PENDING: &str = "db.client.connection.pending_requests";
/// Counter: promotions the monitor followed.
pub const PROMOTIONS: &str = "rwsplit.promotions";

/// A node's labels, built once: cloning them is a reference count, not a copy.
#[derive(Debug, Clone)]
pub(crate) struct NodeLabels {
    pub(crate) address: SharedString,
    pub(crate) port: SharedString,
    read_pool: SharedString,
    write_pool: SharedString,
}

impl NodeLabels {
    /// From a node's name (`host:port/db`, `[v6]:port/db`, or a bare name for a connection
    /// given without a URL).
    pub(crate) fn of(name: &str) -> NodeLabels {
        let server = name.split('/').next().unwrap_or(name);
        let (address, port) = match server.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() && !host.ends_with(':') => {
                (host.trim_start_matches('[').trim_end_matches(']'), port)
            }
            _ => (server, ""),
        };
        let shared = |s: &str| SharedString::from(Arc::<str>::from(s));
        NodeLabels {
            address: shared(address),
            port: shared(port),
            read_pool: shared(&format!("{name}/read")),
            write_pool: shared(&format!("{name}/write")),
        }
    }
}

impl NodeLabels {
    /// Whether both name the same gauge series (address and port).
    pub(crate) fn same_series(&self, other: &NodeLabels) -> bool {
        self.address == other.address && self.port == other.port
    }
}

/// `rwsplit.node.role`.
pub(crate) fn role_name(primary: bool) -> &'static str {
    if primary { "primary" } else { "replica" }
}

/// `rwsplit.consistency`.
pub(crate) fn consistency_name(level: &Consistency) -> &'static str {
    match level {
        Consistency::Session => "session",
        Consistency::Eventual => "eventual",
        Consistency::BoundedStaleness(_) => "bounded_staleness",
        Consistency::ReadYourWrites(_) => "read_your_writes",
        Consistency::Strong => "strong",
        _ => "other",
    }
}

/// `error.type` for a failure class.
pub(crate) fn error_type(failure: Failure) -> &'static str {
    match failure {
        Failure::Connection => "connection",
        Failure::Backpressure => "backpressure",
        Failure::GivenUp => "given_up",
        Failure::ReplicaRefused => "replica_refused",
        Failure::NotOnReplica => "not_on_replica",
        Failure::ReadOnly => "read_only",
        Failure::Other => "statement",
    }
}

/// `db.operation.name`: the statement's first keyword, from a fixed list (anything else is
/// `OTHER`), so no SQL text reaches a label and the label's values stay few.
pub(crate) fn operation_name(sql: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "WITH",
        "VALUES",
        "TABLE",
        "SHOW",
        "EXPLAIN",
        "CALL",
        "DO",
        "BEGIN",
        "START",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT",
        "RELEASE",
        "SET",
        "RESET",
        "CREATE",
        "ALTER",
        "DROP",
        "TRUNCATE",
        "COPY",
        "LOCK",
        "REPLACE",
        "GRANT",
        "REVOKE",
        "ANALYZE",
        "VACUUM",
        "LISTEN",
        "NOTIFY",
        "PREPARE",
        "EXECUTE",
        "DEALLOCATE",
    ];
    let word = first_word(sql);
    KNOWN.iter().find(|k| k.eq_ignore_ascii_case(word)).copied().unwrap_or("OTHER")
}

/// The first word after whitespace and comments (at most 16 bytes are looked at per word).
fn first_word(sql: &str) -> &str {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, r)| r);
        } else {
            break;
        }
    }
    let end = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
    if end > 16 { "" } else { &rest[..end] }
}

/// What one statement's attempts record.
pub(crate) struct Statement {
    pub(crate) system: &'static str,
    pub(crate) operation: &'static str,
}

/// A node's [`OPERATION_DURATION`] handles for successful attempts, by label set: resolved
/// through the recorder once per operation, route reason, role and access, then recorded
/// into directly (a lookup of four words instead of building seven labels and having the
/// recorder hash them on every statement).
///
/// As with every `metrics` handle, a handle resolved before an exporter is installed records
/// nowhere: install the exporter before the connection serves statements (before
/// `connect()`).
#[derive(Debug, Default)]
pub(crate) struct Durations {
    handles: dashmap::DashMap<DurationKey, metrics::Histogram, foldhash::fast::RandomState>,
}

/// One label set of [`Durations`]: the static strings by address and length (each comes from
/// a fixed list; equal addresses and lengths are equal text), the role and the access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct DurationKey {
    operation: (usize, usize),
    reason: (usize, usize),
    primary: bool,
    write: bool,
}

/// At most this many label sets are kept per node (operations × reasons × role × access is
/// far below it in practice); past it samples are recorded without a kept handle.
const MAX_DURATION_HANDLES: usize = 1024;

impl Statement {
    /// One attempt on a node ended: one histogram sample (its count is the statements by node,
    /// route reason and access), and on failure one error count. `durations`: the node's kept
    /// handles.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn attempt_done(
        &self,
        node: &NodeLabels,
        durations: &Durations,
        primary: bool,
        reason: &'static str,
        write: bool,
        elapsed: Duration,
        failure: Option<Failure>,
    ) {
        let role = role_name(primary);
        let access = if write { "write" } else { "read" };
        let Some(f) = failure else {
            let key = DurationKey {
                operation: (self.operation.as_ptr() as usize, self.operation.len()),
                reason: (reason.as_ptr() as usize, reason.len()),
                primary,
                write,
            };
            if let Some(h) = durations.handles.get(&key) {
                h.record(elapsed.as_secs_f64());
                return;
            }
            let h = metrics::histogram!(
                OPERATION_DURATION,
                "db.system.name" => self.system,
                "db.operation.name" => self.operation,
                "server.address" => node.address.clone(),
                "server.port" => node.port.clone(),
                "rwsplit.node.role" => role,
                "rwsplit.route.reason" => reason,
                "rwsplit.access" => access,
            );
            h.record(elapsed.as_secs_f64());
            if durations.handles.len() < MAX_DURATION_HANDLES {
                durations.handles.insert(key, h);
            }
            return;
        };
        let kind = error_type(f);
        metrics::histogram!(
            OPERATION_DURATION,
            "db.system.name" => self.system,
            "db.operation.name" => self.operation,
            "server.address" => node.address.clone(),
            "server.port" => node.port.clone(),
            "rwsplit.node.role" => role,
            "rwsplit.route.reason" => reason,
            "rwsplit.access" => access,
            "error.type" => kind,
        )
        .record(elapsed.as_secs_f64());
        metrics::counter!(
            ERRORS,
            "server.address" => node.address.clone(),
            "server.port" => node.port.clone(),
            "rwsplit.node.role" => role,
            "error.type" => kind,
        )
        .increment(1);
    }
}

/// A statement moved on from `node`: a read to its next candidate, or a write (`write`) that
/// was never sent to a new primary.
pub(crate) fn retry(node: &NodeLabels, write: bool) {
    metrics::counter!(
        RETRIES,
        "server.address" => node.address.clone(),
        "server.port" => node.port.clone(),
        "rwsplit.access" => if write { "write" } else { "read" },
    )
    .increment(1);
}

/// A replica refused a read because it writes; `rerun`: it runs once on the primary.
pub(crate) fn replica_refusal(node: &NodeLabels, rerun: bool) {
    metrics::counter!(
        REPLICA_REFUSALS,
        "server.address" => node.address.clone(),
        "server.port" => node.port.clone(),
        "outcome" => if rerun { "primary" } else { "failed" },
    )
    .increment(1);
}

/// Where a read that had to see a write went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ryw {
    /// A replica that had already replayed the write.
    Replica,
    /// A replica, after waiting for it to catch up.
    Waited,
    /// The primary.
    Primary,
}

pub(crate) fn read_your_writes(outcome: Ryw) {
    let outcome = match outcome {
        Ryw::Replica => "replica",
        Ryw::Waited => "waited",
        Ryw::Primary => "primary",
    };
    metrics::counter!(READ_YOUR_WRITES, "outcome" => outcome).increment(1);
}

/// One node's figures at one instant, for the gauges.
pub(crate) struct NodeSample<'a> {
    pub(crate) labels: &'a NodeLabels,
    pub(crate) health: Health,
    /// Added at run time and not in rotation yet (then `health` is `Down`).
    pub(crate) joining: bool,
    pub(crate) fenced: bool,
    pub(crate) role: Role,
    pub(crate) lag_bytes: Option<u64>,
    pub(crate) lag_time: Option<Duration>,
    pub(crate) last_seen: Option<Instant>,
    pub(crate) in_flight: u32,
    /// The read pool (`None`: the node has one pool, `write`).
    pub(crate) read_pool: Option<&'a DatabaseConnection>,
    pub(crate) write_pool: &'a DatabaseConnection,
}

/// Sets a node's gauges.
pub(crate) fn sample(s: &NodeSample<'_>, now: Instant) {
    let (address, port) = (&s.labels.address, &s.labels.port);
    let gauge = |name: &'static str, v: f64| {
        metrics::gauge!(name, "server.address" => address.clone(), "server.port" => port.clone())
            .set(v);
    };
    gauge(HEALTH, health_value(s.health, s.joining));
    gauge(FENCED, if s.fenced { 1.0 } else { 0.0 });
    gauge(ROLE, if s.role == Role::Primary { 1.0 } else { 0.0 });
    gauge(IN_FLIGHT, f64::from(s.in_flight));
    if let Some(seen) = s.last_seen {
        gauge(OBSERVATION_AGE, now.saturating_duration_since(seen).as_secs_f64());
    }
    if s.role != Role::Primary {
        // An unknown lag (the node does not answer, its replay is stopped) is NaN, not the
        // last value: a stale 0 would claim a dead replica is caught up. Precision is not a
        // concern for a lag gauge.
        #[allow(clippy::cast_precision_loss)]
        gauge(LAG_BYTES, s.lag_bytes.map_or(f64::NAN, |b| b as f64));
        gauge(LAG_SECONDS, s.lag_time.map_or(f64::NAN, |t| t.as_secs_f64()));
    }
    let mut used_total = 0u32;
    let pools = [(s.read_pool, &s.labels.read_pool), (Some(s.write_pool), &s.labels.write_pool)];
    for (pool, name) in pools {
        let Some(stats) = pool.and_then(pool_stats) else { continue };
        let used = stats.size.saturating_sub(stats.idle);
        used_total += used;
        pool_gauges(s.labels, name, stats.idle, used, stats.max);
    }
    metrics::gauge!(
        CONNECTION_PENDING,
        "server.address" => address.clone(),
        "server.port" => port.clone(),
    )
    .set(f64::from(s.in_flight.saturating_sub(used_total)));
}

/// What a removed node's gauges need: which series it had.
pub(crate) struct RemovedNode<'a> {
    pub(crate) labels: &'a NodeLabels,
    /// Whether it had the primary role when removed (then it has no lag series).
    pub(crate) was_primary: bool,
    /// Whether it ever answered a probe (else it has no observation-age series).
    pub(crate) observed: bool,
    /// The read pool (`None`: the node has one pool, `write`).
    pub(crate) read_pool: Option<&'a DatabaseConnection>,
    pub(crate) write_pool: &'a DatabaseConnection,
}

/// A node was removed: its health gauge says so at once.
pub(crate) fn removing(labels: &NodeLabels) {
    metrics::gauge!(
        HEALTH,
        "server.address" => labels.address.clone(),
        "server.port" => labels.port.clone(),
    )
    .set(HEALTH_REMOVED);
}

/// A removed node has drained: every gauge of it is set, for the last time, to a value that
/// says it is gone (module docs, *Removed nodes*).
pub(crate) fn removed(r: &RemovedNode<'_>) {
    let (address, port) = (&r.labels.address, &r.labels.port);
    let gauge = |name: &'static str, v: f64| {
        metrics::gauge!(name, "server.address" => address.clone(), "server.port" => port.clone())
            .set(v);
    };
    gauge(HEALTH, HEALTH_REMOVED);
    gauge(FENCED, 0.0);
    gauge(ROLE, 0.0);
    gauge(IN_FLIGHT, 0.0);
    gauge(CONNECTION_PENDING, 0.0);
    if r.observed {
        gauge(OBSERVATION_AGE, f64::NAN);
    }
    if !r.was_primary {
        gauge(LAG_BYTES, f64::NAN);
        gauge(LAG_SECONDS, f64::NAN);
    }
    let pools = [(r.read_pool, &r.labels.read_pool), (Some(r.write_pool), &r.labels.write_pool)];
    for (pool, name) in pools {
        // Only pools the sampler reported (sqlx pools; closed ones still say what they are).
        if pool.and_then(pool_stats).is_none() {
            continue;
        }
        pool_gauges(r.labels, name, 0, 0, 0);
    }
}

/// Sets pool `pool`'s connection gauges of a node: idle and used connections, and the maximum.
fn pool_gauges(labels: &NodeLabels, pool: &SharedString, idle: u32, used: u32, max: u32) {
    for (state, v) in [("idle", idle), ("used", used)] {
        metrics::gauge!(
            CONNECTION_COUNT,
            "server.address" => labels.address.clone(),
            "server.port" => labels.port.clone(),
            "db.client.connection.pool.name" => pool.clone(),
            "db.client.connection.state" => state,
        )
        .set(f64::from(v));
    }
    metrics::gauge!(
        CONNECTION_MAX,
        "server.address" => labels.address.clone(),
        "server.port" => labels.port.clone(),
        "db.client.connection.pool.name" => pool.clone(),
    )
    .set(f64::from(max));
}

/// The [`HEALTH`] gauge's value.
pub(crate) fn health_value(health: Health, joining: bool) -> f64 {
    match health {
        _ if joining => HEALTH_JOINING,
        Health::Up => HEALTH_UP,
        Health::Suspect => HEALTH_SUSPECT,
        Health::Down => HEALTH_DOWN,
    }
}

/// Promotions followed since the connection was built.
pub(crate) fn promotions(total: u64) {
    metrics::counter!(PROMOTIONS).absolute(total);
}

/// A sqlx pool's figures.
struct PoolStats {
    size: u32,
    idle: u32,
    max: u32,
}

fn pool_stats(conn: &DatabaseConnection) -> Option<PoolStats> {
    use sea_orm::DatabaseConnectionType as T;
    let idle = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    match &conn.inner {
        #[cfg(feature = "postgres")]
        T::SqlxPostgresPoolConnection(_) => {
            let p = conn.get_postgres_connection_pool();
            Some(PoolStats {
                size: p.size(),
                idle: idle(p.num_idle()),
                max: p.options().get_max_connections(),
            })
        }
        #[cfg(feature = "mysql")]
        T::SqlxMySqlPoolConnection(_) => {
            let p = conn.get_mysql_connection_pool();
            Some(PoolStats {
                size: p.size(),
                idle: idle(p.num_idle()),
                max: p.options().get_max_connections(),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::select("SELECT 1", "SELECT")]
    #[case::lowercase("  select * from t", "SELECT")]
    #[case::comments("/* app */ -- x\n UPDATE t SET v = 1", "UPDATE")]
    #[case::hint("/*rwsplit:primary*/ SELECT 1", "SELECT")]
    #[case::cte("WITH x AS (SELECT 1) SELECT * FROM x", "WITH")]
    #[case::unknown("FROBNICATE now", "OTHER")]
    #[case::long_word("SELECTSELECTSELECTSELECT 1", "OTHER")]
    #[case::empty("", "OTHER")]
    #[case::unterminated_comment("/* SELECT", "OTHER")]
    #[case::paren("(SELECT 1)", "OTHER")]
    fn the_operation_is_the_first_keyword_from_a_fixed_list(
        #[case] sql: &str,
        #[case] expected: &str,
    ) {
        assert_eq!(operation_name(sql), expected);
    }

    #[rstest]
    #[case::host_port_db("db-1:5432/app", "db-1", "5432")]
    #[case::no_port("db-1/app", "db-1", "")]
    #[case::ipv6("[::1]:5432/app", "::1", "5432")]
    #[case::bare("replica 1", "replica 1", "")]
    fn node_labels_split_the_name(#[case] name: &str, #[case] address: &str, #[case] port: &str) {
        let l = NodeLabels::of(name);
        assert_eq!((&*l.address, &*l.port), (address, port));
    }

    #[test]
    fn a_sample_sets_every_gauge_of_a_replica() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let pool = sea_orm::MockDatabase::new(sea_orm::DbBackend::Postgres).into_connection();
        let now = Instant::now();
        metrics::with_local_recorder(&recorder, || {
            sample(
                &NodeSample {
                    labels: &NodeLabels::of("db-2:5432/app"),
                    health: Health::Down,
                    joining: false,
                    fenced: true,
                    role: Role::Replica,
                    lag_bytes: Some(4096),
                    lag_time: Some(Duration::from_millis(1500)),
                    last_seen: Some(now - Duration::from_secs(3)),
                    in_flight: 2,
                    read_pool: None,
                    write_pool: &pool,
                },
                now,
            );
        });
        let text = handle.render();
        let node = "{server_address=\"db-2\",server_port=\"5432\"}";
        for want in [
            format!("rwsplit_node_health{node} 2"),
            format!("rwsplit_node_fenced{node} 1"),
            format!("rwsplit_node_primary{node} 0"),
            format!("rwsplit_node_in_flight{node} 2"),
            format!("rwsplit_replica_lag_bytes{node} 4096"),
            format!("rwsplit_replica_lag_seconds{node} 1.5"),
            format!("rwsplit_node_observation_age{node} 3"),
            // A mock has no pool: every statement in flight counts as waiting for none.
            format!("db_client_connection_pending_requests{node} 2"),
        ] {
            assert!(text.contains(&want), "missing `{want}` in:\n{text}");
        }
    }

    /// Each health, and joining, has its own documented value.
    #[rstest]
    #[case(Health::Up, false, 0.0)]
    #[case(Health::Suspect, false, 1.0)]
    #[case(Health::Down, false, 2.0)]
    #[case(Health::Down, true, 3.0)]
    #[case(Health::Up, true, 3.0)]
    fn health_gauge_values(#[case] health: Health, #[case] joining: bool, #[case] value: f64) {
        assert_eq!(health_value(health, joining), value);
    }
}
