//! What the adapter tells operators: metrics through the [`metrics`] facade, and a `tracing`
//! span per statement.
//!
//! # Metrics
//!
//! Recorded through the [`metrics`](https://docs.rs/metrics) facade: install the exporter of
//! your choice (Prometheus, StatsD, OpenTelemetry …); without one, recording costs a few
//! dozen instructions and goes nowhere. Labels never carry credentials or SQL text: a node is
//! its `server.address` and `server.port`, a statement its first keyword (`db.operation.name`).
//!
//! **Names.** Each name is the one Prometheus scrapes, suffixes included, so every exporter
//! shows the same names without being configured for it: counters end in `_total`, a quantity
//! with a unit ends in its base unit (`_seconds`, `_bytes`), as Prometheus' naming guide and
//! OpenTelemetry's Prometheus mapping ask. Where OpenTelemetry's database-client conventions
//! name the metric, rwsplit uses that name as the mapping exports it:
//! `db_client_operation_duration_seconds` is `db.client.operation.duration` (unit `s`). The
//! metrics are described (`# HELP`) without a unit, so an exporter told to append units
//! (`set_enable_unit_suffix`) does not append a second one. Label names are OpenTelemetry's
//! attribute names (`server.address`); Prometheus exporters write them with `_`
//! (`server_address`).
//!
//! | name | kind | labels | what |
//! | --- | --- | --- | --- |
//! | [`OPERATION_DURATION`] `db_client_operation_duration_seconds` | histogram | node, `db.system.name`, `db.operation.name`, `rwsplit.node.role`, `rwsplit.route.reason`, `rwsplit.access`, `error.type` on failure | each attempt's time on a node; its count is the attempts each node served, by why they went there |
//! | [`ERRORS`] `rwsplit_errors_total` | counter | node, `rwsplit.node.role`, `error.type` | failed attempts, by class (`connection`, `backpressure`, `given_up`, `replica_refused`, `not_on_replica`, `read_only`, `statement`) |
//! | [`RETRIES`] `rwsplit_retries_total` | counter | node, `rwsplit.access` | statements moved on from this node: reads to the next candidate (`read`), writes never sent to a node that stopped being the primary, once, to the new primary (`write`) |
//! | [`HEDGES`] `rwsplit_hedged_reads_total` | counter | node, `outcome` (each of [`HEDGE_OUTCOMES`]) | reads this node left unanswered past its hedge delay, sent to another node too, counted once each when they end, by how: the first attempt answered first (`first`; the hedge is dropped), the hedge answered (`hedge`; the first attempt is dropped, or had failed), both failed (`failed`), or the caller gave the read up before either answered (`abandoned`). Their sum is the hedged reads (`Hedges::sent`), `hedge` is `Hedges::won`. A dropped attempt's connection is closed; PostgreSQL ends its statement itself (see `Hedges::lost`) |
//! | [`PASSOVERS`] `rwsplit_read_passovers_total` | counter | node | read attempts that passed this replica over for the plan's next node while it was silent, before the monitor's verdict (`Hedges::stalled_skips`) |
//! | [`REPLICA_REFUSALS`] `rwsplit_replica_refusals_total` | counter | node, `outcome` (`primary`, `failed`) | statements classified as reads that the replica refused because they write (a user function or view): run once on the primary, or the caller's error ([`OnReplicaRefusal`](crate::OnReplicaRefusal)) |
//! | [`READ_YOUR_WRITES`] `rwsplit_read_your_writes_total` | counter | `outcome` (`replica`, `waited`, `primary`) | where reads that had to see a write went |
//! | [`POSITION_READS`] `rwsplit_position_reads_total` | counter | `purpose` (`write`, `floor`) | reads of the primary's position sent to the primary, each attempt counted whatever its outcome (one round trip): a write's (its read-your-writes token), or a floor's (a bound of a read that ran on the primary, so that the scope's next read may use a replica); `Stats::read_your_writes()` counts the successful ones, `positions_captured` and `floors_read` |
//! | [`PROMOTIONS`] `rwsplit_promotions_total` | counter | — | promotions this process's monitor carried out (automatic failover) |
//! | [`PRIMARY_CHANGES`] `rwsplit_primary_changes_total` | counter | node | times the node became the primary in this process's view, having been seen as a replica: failovers and switchovers, whoever promoted it |
//! | [`NODE_STATE`] `rwsplit_node_state` | gauge (state set) | node, `state` (each of [`NODE_STATES`]) | 1 for the node's state, 0 for the others: `up`, `suspect` (recent failures, still routable), `down` (out of rotation), `joining` (added at run time, probed, not in rotation yet), `removed` |
//! | [`FENCED`] `rwsplit_node_fenced` | gauge | node | 1 while fenced |
//! | [`ROLE`] `rwsplit_node_primary` | gauge | node | 1 for the node with the primary role, 0 for the others |
//! | [`IN_FLIGHT`] `rwsplit_node_in_flight` | gauge | node | statements running on the node now |
//! | [`LAG_BYTES`] `rwsplit_replica_lag_bytes`, [`LAG_SECONDS`] `rwsplit_replica_lag_seconds` | gauge | node | a replica's replication lag (NaN while unknown: down, replay stopped, MariaDB bytes) |
//! | [`OBSERVATION_AGE`] `rwsplit_node_observation_age_seconds` | gauge | node | since the node last answered a probe: how old its role, position and lag are |
//! | [`CONNECTION_COUNT`] `db_client_connection_count` | gauge | node, `db.client.connection.pool.name`, `db.client.connection.state` (`idle`, `used`) | pooled connections |
//! | [`CONNECTION_MAX`] `db_client_connection_max` | gauge | node, `db.client.connection.pool.name` | the pool's maximum size |
//! | [`CONNECTION_PENDING`] `db_client_connection_pending_requests` | gauge | node | statements waiting for a pooled connection (in flight minus connections in use): back-pressure |
//!
//! "node" is `server.address` and `server.port`; `db.client.connection.pool.name` is
//! `host:port/db` plus `/read` or `/write` (each node has a pool for reads and one for writes;
//! on the configured primary they are one pool, reported once as `write`). Gauges are sampled
//! by the monitor's clock (each probe interval), counters and histograms on each statement.
//! A node's counters exist from its first sample on, at 0 (each error class for the role it
//! had then, both retry accesses, each hedge outcome, the passovers, both refusal outcomes,
//! the three read-your-writes outcomes and both position-read purposes), so a rate reads 0
//! rather than nothing before the first failure.
//!
//! Node health is a state set rather than one number, so that it aggregates over processes:
//! `max by (server_address, server_port, state) (rwsplit_node_state)` is 1 where some process
//! sees the node in that state, `sum by (…)` counts the processes that do.
//! [`CONNECTION_COUNT`] is OpenTelemetry's `db.client.connection.count` (an up-down counter,
//! semantic conventions 1.26 on) as OpenTelemetry's Prometheus exporters write it, so a
//! dashboard made for any OpenTelemetry database client reads it. Prometheus' linter
//! (`promtool check metrics`) flags it: its naming guide reserves `_count` for histograms and
//! summaries. That is the one finding the linter has on rwsplit's metrics, and the tests
//! allow exactly it; nothing in Prometheus' parsing or storage treats the name differently
//! (it was `db_client_connections_usage`, the conventions' name before 1.26).
//!
//! ## Route reasons
//!
//! `rwsplit.route.reason` (a label of [`OPERATION_DURATION`], and a span field) is a stable
//! `snake_case` code; the log lines that say where a statement went show the same reason in
//! words. The router's reasons:
//!
//! | code | the statement went … |
//! | --- | --- |
//! | `write` | to the primary: it writes, or could not be proven to read |
//! | `transaction` | to the primary: a transaction that may write is open (or read-only transactions stay on the primary) |
//! | `strong` | to the primary: `Consistency::Strong` |
//! | `primary_requested` | to the primary: a call or a `/*rwsplit:primary*/` hint asked for it |
//! | `rule` | to the primary: a routing rule sent the read there |
//! | `replica_requested` | to a replica: a call or hint asked for one, consistency notwithstanding |
//! | `node_requested` | to the node a call named |
//! | `balanced` | to a replica the balancer chose among the eligible ones |
//! | `caught_up` | to a replica known to have replayed the read's read-your-writes token |
//! | `await_catch_up` | to a replica after waiting for it to catch up with the token (else the primary) |
//! | `not_caught_up` | to the primary: no replica is known to have the token |
//! | `no_eligible_replica` | to the primary: no replica is eligible (down, lagging, excluded) |
//! | `primary_balanced` | to the primary, chosen by the balancer among the replicas (`PrimaryReads::Include`) |
//!
//! The adapter's own, decided before or after asking the router:
//!
//! | code | the statement went … |
//! | --- | --- |
//! | `execute`, `execute_unprepared` | to the primary: `execute`/`execute_unprepared` return no rows |
//! | `read_after_write` | to the primary: a read right after a write whose position is not known yet |
//! | `foreign_token` | to the primary: a read-your-writes token from another history than the primary's (after a failover) |
//! | `outside_bound` | to the primary: no replica within the staleness bound has the session's writes |
//! | `last_read_node` | to the node of the scope's previous read, or the primary (monotonic reads, no sample bounds that read yet) |
//! | `proven_replica` | to a replica that a catch-up wait proved to have the write a moment ago |
//! | `moved_to_new_primary` | to the new primary: a read given up on a deposed primary, run once more |
//! | `rerun_on_primary` | to the primary again: its connection broke, and the primary answered the monitor again |
//! | `refused_by_replica` | to the primary, as a write: a replica refused the read because it writes |
//!
//! ## Histogram buckets
//!
//! The `metrics` facade has no notion of buckets: the exporter chooses them. Without buckets
//! `metrics-exporter-prometheus` renders [`OPERATION_DURATION`] as a summary, whose quantiles
//! cannot be aggregated over processes and which has no `_bucket` series for
//! `histogram_quantile` (the p99 panel of `contrib/grafana/rwsplit.json` stays empty). Set
//! [`DURATION_BUCKETS`], made for database statements (100 µs to 10 s), where you install the
//! exporter, before `connect()`:
//!
//! ```
//! use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
//! use rwsplit_sea_orm::telemetry::{DURATION_BUCKETS, OPERATION_DURATION};
//!
//! let builder = PrometheusBuilder::new()
//!     .set_buckets_for_metric(Matcher::Full(OPERATION_DURATION.to_owned()), DURATION_BUCKETS)
//!     .expect("the buckets are not empty");
//! // In the application: `let handle = builder.install_recorder()?;` and serve
//! // `handle.render()` at `/metrics` (`examples/metrics.rs` does both).
//! # let _ = builder.build_recorder();
//! ```
//!
//! An OpenTelemetry SDK takes buckets as a view on the instrument
//! (`db_client_operation_duration_seconds`, explicit bucket histogram, the same boundaries).
//!
//! ## Several database clusters
//!
//! Nothing in a series names the database cluster: the dashboard and the alerting rules in
//! `contrib/` group by a `cluster` label when there is one. Give it as a target label in
//! Prometheus' scrape configuration, or, for a process that talks to one cluster, as the
//! exporter's global label (`PrometheusBuilder::add_global_label("cluster", "orders")`).
//!
//! ## Removed nodes
//!
//! The `metrics` facade cannot delete a series, so a node a topology source removes would keep
//! its last gauge values for as long as the exporter runs (a removed replica "up", with its last
//! lag and connections). Instead, rwsplit marks it gone: its [`NODE_STATE`] becomes `removed`
//! when it is removed, and once it has drained (its last statement finished, its pools closed)
//! every gauge of it is set once more, for the last time: [`NODE_STATE`] `removed`,
//! [`FENCED`] 0, [`ROLE`] 0, [`IN_FLIGHT`] 0, [`CONNECTION_PENDING`] 0, [`CONNECTION_COUNT`] 0
//! for each pool and state, [`CONNECTION_MAX`] 0, and NaN for [`LAG_BYTES`], [`LAG_SECONDS`]
//! and [`OBSERVATION_AGE`] (where the node had those series). The gauge sampler never touches
//! a removed node again. A node that comes back at the same address is a new node with the
//! same labels: the sampler sets its series again once it is probed (as joining, then as
//! whatever it is).
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
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use metrics::SharedString;
use rwsplit_core::{Health, Role};
use sea_orm::DatabaseConnection;

use crate::send::failure::Failure;

/// Histogram, seconds: each attempt's time on a node (OpenTelemetry's
/// `db.client.operation.duration`, as its Prometheus mapping names it). Its buckets are the
/// exporter's: set [`DURATION_BUCKETS`] (module docs, *Histogram buckets*).
pub const OPERATION_DURATION: &str = "db_client_operation_duration_seconds";
/// Counter: failed attempts on a node, by `error.type`.
pub const ERRORS: &str = "rwsplit_errors_total";
/// Counter: statements that moved on from a node, by `rwsplit.access`.
pub const RETRIES: &str = "rwsplit_retries_total";
/// Counter: statements classified as reads that a replica refused because they write, by
/// `outcome`: `primary` (run once on the primary) or `failed` (the caller's error).
pub const REPLICA_REFUSALS: &str = "rwsplit_replica_refusals_total";
/// Counter: reads hedged for want of an answer from a node, once each when they end, by
/// `outcome` (each of [`HEDGE_OUTCOMES`]).
pub const HEDGES: &str = "rwsplit_hedged_reads_total";
/// The `outcome` values of [`HEDGES`], one per hedged read: `first` (its first attempt
/// answered first), `hedge` (the hedge answered), `failed` (both failed), `abandoned` (the
/// caller gave it up before either answered).
pub const HEDGE_OUTCOMES: [&str; 4] = ["first", "hedge", "failed", "abandoned"];
/// Counter: read attempts that passed a silent replica over for the plan's next node.
pub const PASSOVERS: &str = "rwsplit_read_passovers_total";
/// Counter: where reads that had to see the caller's writes went, by `outcome`.
pub const READ_YOUR_WRITES: &str = "rwsplit_read_your_writes_total";
/// Counter: reads of the primary's position sent to the primary, by `purpose` (`write`,
/// `floor`).
pub const POSITION_READS: &str = "rwsplit_position_reads_total";
/// Counter: promotions this process's monitor carried out (automatic failover).
pub const PROMOTIONS: &str = "rwsplit_promotions_total";
/// Counter: times a node became the primary in this process's view, having been seen as a
/// replica (failovers and switchovers, whoever promoted it).
pub const PRIMARY_CHANGES: &str = "rwsplit_primary_changes_total";
/// Gauge, a state set: one series per node and `state` (each of [`NODE_STATES`]), 1 for the
/// state the node is in and 0 for the others.
pub const NODE_STATE: &str = "rwsplit_node_state";
/// The values of [`NODE_STATE`]'s `state` label: `up` (healthy), `suspect` (recent failures,
/// still routable), `down` (out of rotation after repeated failures), `joining` (a topology
/// source added it; probed, not in rotation yet: waiting to be seen as the primary or as a
/// replica caught up, see [`NodeStats::joining`](crate::NodeStats::joining)), `removed` (a
/// topology source no longer lists it; see the module docs, *Removed nodes*).
pub const NODE_STATES: [&str; 5] = ["up", "suspect", "down", "joining", "removed"];
/// Gauge: 1 while a node is fenced.
pub const FENCED: &str = "rwsplit_node_fenced";
/// Gauge: 1 for the node that has the primary role, 0 for the others.
pub const ROLE: &str = "rwsplit_node_primary";
/// Gauge: statements running on a node now.
pub const IN_FLIGHT: &str = "rwsplit_node_in_flight";
/// Gauge: a replica's replication lag in bytes.
pub const LAG_BYTES: &str = "rwsplit_replica_lag_bytes";
/// Gauge: a replica's replication lag in seconds.
pub const LAG_SECONDS: &str = "rwsplit_replica_lag_seconds";
/// Gauge, seconds: since the node last answered a probe.
pub const OBSERVATION_AGE: &str = "rwsplit_node_observation_age_seconds";
/// Gauge: pooled connections by `db.client.connection.state` (OpenTelemetry's
/// `db.client.connection.count`; see the module docs for Prometheus' linter on its name).
pub const CONNECTION_COUNT: &str = "db_client_connection_count";
/// Gauge: a pool's maximum size (OpenTelemetry's `db.client.connection.max`).
pub const CONNECTION_MAX: &str = "db_client_connection_max";
/// Gauge: statements waiting for a pooled connection (OpenTelemetry's
/// `db.client.connection.pending_requests`).
pub const CONNECTION_PENDING: &str = "db_client_connection_pending_requests";

/// Bucket boundaries (seconds) for [`OPERATION_DURATION`], made for database statements: from
/// 100 µs (a primary-key read on a nearby server) to 10 s, about 2.5× apart, and including
/// OpenTelemetry's advice for `db.client.operation.duration` (1 ms, 5 ms, 10 ms, 50 ms,
/// 100 ms, 500 ms, 1 s, 5 s, 10 s). 16 buckets: a quantile between two boundaries is
/// interpolated, so it is accurate to within the step between them.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Every metric's name, kind and description (the `# HELP` line), in the module docs' order.
pub(crate) const DESCRIPTIONS: &[(&str, Kind, &str)] = &[
    (
        OPERATION_DURATION,
        Kind::Histogram,
        "Time of each statement attempt on a database node, in seconds.",
    ),
    (ERRORS, Kind::Counter, "Failed statement attempts on a node, by error class."),
    (RETRIES, Kind::Counter, "Statements that moved on from a node to another one."),
    (
        HEDGES,
        Kind::Counter,
        "Reads hedged because the node left them unanswered, by how they ended.",
    ),
    (PASSOVERS, Kind::Counter, "Read attempts that passed a silent replica over."),
    (
        REPLICA_REFUSALS,
        Kind::Counter,
        "Statements classified as reads that a replica refused because they write.",
    ),
    (READ_YOUR_WRITES, Kind::Counter, "Reads that had to see a write, by where they went."),
    (
        POSITION_READS,
        Kind::Counter,
        "Reads of the primary's position sent to it, by purpose (write, floor).",
    ),
    (
        PROMOTIONS,
        Kind::Counter,
        "Promotions this process's monitor carried out (automatic failover).",
    ),
    (
        PRIMARY_CHANGES,
        Kind::Counter,
        "Times the node became the primary in this process's view, having been a replica.",
    ),
    (
        NODE_STATE,
        Kind::Gauge,
        "1 for the state the node is in (up, suspect, down, joining, removed), 0 for the others.",
    ),
    (FENCED, Kind::Gauge, "1 while the node is fenced."),
    (ROLE, Kind::Gauge, "1 for the node with the primary role, 0 for the others."),
    (IN_FLIGHT, Kind::Gauge, "Statements running on the node now."),
    (LAG_BYTES, Kind::Gauge, "Replication lag of a replica, in bytes (NaN while unknown)."),
    (LAG_SECONDS, Kind::Gauge, "Replication lag of a replica, in seconds (NaN while unknown)."),
    (OBSERVATION_AGE, Kind::Gauge, "Seconds since the node last answered a probe of the monitor."),
    (CONNECTION_COUNT, Kind::Gauge, "Pooled connections to the node, by state (idle, used)."),
    (CONNECTION_MAX, Kind::Gauge, "Maximum size of the node's connection pool."),
    (CONNECTION_PENDING, Kind::Gauge, "Statements waiting for a pooled connection to the node."),
];

/// A metric's kind, for [`DESCRIPTIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Describes every metric to the recorder (the exporter's `# HELP` lines).
fn describe() {
    for &(name, kind, help) in DESCRIPTIONS {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, help),
        }
    }
}

/// A node's labels, built once: cloning them is a reference count, not a copy.
#[derive(Debug, Clone)]
pub(crate) struct NodeLabels {
    pub(crate) address: SharedString,
    pub(crate) port: SharedString,
    read_pool: SharedString,
    write_pool: SharedString,
    /// Whether its first sample registered its counters at 0 (and described the metrics).
    announced: Arc<AtomicBool>,
    /// The role its last sample saw: [`UNSEEN`], [`REPLICA`] or [`PRIMARY`].
    last_role: Arc<AtomicU8>,
}

/// [`NodeLabels::last_role`] before the first sample.
const UNSEEN: u8 = 0;
/// [`NodeLabels::last_role`]: a replica.
const REPLICA: u8 = 1;
/// [`NodeLabels::last_role`]: the primary.
const PRIMARY: u8 = 2;

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
            announced: Arc::new(AtomicBool::new(false)),
            last_role: Arc::new(AtomicU8::new(UNSEEN)),
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

/// A read hedged because `node` left it unanswered ended: one of [`HEDGE_OUTCOMES`].
pub(crate) fn hedge(node: &NodeLabels, outcome: &'static str) {
    metrics::counter!(
        HEDGES,
        "server.address" => node.address.clone(),
        "server.port" => node.port.clone(),
        "outcome" => outcome,
    )
    .increment(1);
}

/// A read attempt passed silent replica `node` over.
pub(crate) fn passover(node: &NodeLabels) {
    metrics::counter!(
        PASSOVERS,
        "server.address" => node.address.clone(),
        "server.port" => node.port.clone(),
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

/// A read of the primary's position was sent to it (each attempt: one retried on a checked
/// connection counts twice): for a write's token (`floor` false) or a floor.
pub(crate) fn position_read(floor: bool) {
    let purpose = if floor { "floor" } else { "write" };
    metrics::counter!(POSITION_READS, "purpose" => purpose).increment(1);
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

/// Sets a node's gauges; the node's first sample also describes the metrics and registers its
/// counters at 0 (module docs).
pub(crate) fn sample(s: &NodeSample<'_>, now: Instant) {
    if !s.labels.announced.swap(true, Ordering::Relaxed) {
        announce(s.labels, s.role == Role::Primary);
    }
    let (address, port) = (&s.labels.address, &s.labels.port);
    let gauge = |name: &'static str, v: f64| {
        metrics::gauge!(name, "server.address" => address.clone(), "server.port" => port.clone())
            .set(v);
    };
    node_state(s.labels, node_state_name(s.health, s.joining));
    let role = if s.role == Role::Primary { PRIMARY } else { REPLICA };
    if s.labels.last_role.swap(role, Ordering::Relaxed) == REPLICA && role == PRIMARY {
        metrics::counter!(
            PRIMARY_CHANGES,
            "server.address" => address.clone(),
            "server.port" => port.clone(),
        )
        .increment(1);
    }
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

/// A node was removed: its state gauge says so at once.
pub(crate) fn removing(labels: &NodeLabels) {
    node_state(labels, "removed");
}

/// Sets a node's [`NODE_STATE`] series: 1 for `state`, 0 for the others.
fn node_state(labels: &NodeLabels, state: &'static str) {
    for s in NODE_STATES {
        metrics::gauge!(
            NODE_STATE,
            "server.address" => labels.address.clone(),
            "server.port" => labels.port.clone(),
            "state" => s,
        )
        .set(if s == state { 1.0 } else { 0.0 });
    }
}

/// `error.type` of every failure class.
const ERROR_TYPES: [&str; 7] = [
    "connection",
    "backpressure",
    "given_up",
    "replica_refused",
    "not_on_replica",
    "read_only",
    "statement",
];

/// A node's first sample: the metrics' descriptions, and its counters at 0 so that their rates
/// read 0 before the first event (the error classes with the role it has now).
fn announce(labels: &NodeLabels, primary: bool) {
    describe();
    let (address, port) = (&labels.address, &labels.port);
    for kind in ERROR_TYPES {
        metrics::counter!(
            ERRORS,
            "server.address" => address.clone(),
            "server.port" => port.clone(),
            "rwsplit.node.role" => role_name(primary),
            "error.type" => kind,
        )
        .increment(0);
    }
    for access in ["read", "write"] {
        metrics::counter!(
            RETRIES,
            "server.address" => address.clone(),
            "server.port" => port.clone(),
            "rwsplit.access" => access,
        )
        .increment(0);
    }
    for outcome in HEDGE_OUTCOMES {
        metrics::counter!(
            HEDGES,
            "server.address" => address.clone(),
            "server.port" => port.clone(),
            "outcome" => outcome,
        )
        .increment(0);
    }
    metrics::counter!(PASSOVERS, "server.address" => address.clone(), "server.port" => port.clone())
        .increment(0);
    for outcome in ["primary", "failed"] {
        metrics::counter!(
            REPLICA_REFUSALS,
            "server.address" => address.clone(),
            "server.port" => port.clone(),
            "outcome" => outcome,
        )
        .increment(0);
    }
    for outcome in ["replica", "waited", "primary"] {
        metrics::counter!(READ_YOUR_WRITES, "outcome" => outcome).increment(0);
    }
    for purpose in ["write", "floor"] {
        metrics::counter!(POSITION_READS, "purpose" => purpose).increment(0);
    }
    metrics::counter!(PRIMARY_CHANGES, "server.address" => address.clone(), "server.port" => port.clone())
        .increment(0);
}

/// A removed node has drained: every gauge of it is set, for the last time, to a value that
/// says it is gone (module docs, *Removed nodes*).
pub(crate) fn removed(r: &RemovedNode<'_>) {
    let (address, port) = (&r.labels.address, &r.labels.port);
    let gauge = |name: &'static str, v: f64| {
        metrics::gauge!(name, "server.address" => address.clone(), "server.port" => port.clone())
            .set(v);
    };
    node_state(r.labels, "removed");
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

/// The [`NODE_STATE`] a live node is in.
pub(crate) fn node_state_name(health: Health, joining: bool) -> &'static str {
    match health {
        _ if joining => "joining",
        Health::Up => "up",
        Health::Suspect => "suspect",
        Health::Down => "down",
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

/// Whether any tracing subscriber may record the statement span (INFO): when none does, the
/// statement paths build no span and record nothing.
#[inline]
pub(crate) fn traced() -> bool {
    tracing::Level::INFO <= tracing::level_filters::LevelFilter::current()
}

/// The span one statement of `operation` runs in: its node, route reason and attempt number
/// are recorded by [`attempt_span`]. `named` gives its `db.system.name` and consistency level's
/// name, asked only if a subscriber listens.
pub(crate) fn statement_span(
    operation: &'static str,
    named: impl FnOnce() -> (&'static str, &'static str),
) -> tracing::Span {
    if !traced() {
        // No subscriber listens at INFO: not even a disabled span is built (one atomic load;
        // `info_span!` would also consult the `log` bridge every time).
        return tracing::Span::none();
    }
    let (system, level) = named();
    tracing::info_span!(
        target: "rwsplit",
        "rwsplit.statement",
        db.system.name = system,
        db.operation.name = operation,
        server.address = tracing::field::Empty,
        server.port = tracing::field::Empty,
        rwsplit.route.reason = tracing::field::Empty,
        rwsplit.consistency = level,
        rwsplit.node.role = tracing::field::Empty,
        rwsplit.attempt = tracing::field::Empty,
    )
}

/// Records a plan's route reason (its `code`, asked only if traced) in the statement's span;
/// returns whether any subscriber may record it ([`traced`]). The span is fetched where it is
/// used rather than held across the attempts' awaits: a read's future stays smaller.
#[inline]
pub(crate) fn route_span(code: impl FnOnce() -> &'static str) -> bool {
    let traced = traced();
    if traced {
        let span = tracing::Span::current();
        if !span.is_disabled() {
            span.record("rwsplit.route.reason", code());
        }
    }
    traced
}

/// An attempt, as the span and the `route` debug event record it: its node's labels and name,
/// whether it is the plan's primary, the statement's attempt number, the plan's route reason,
/// whether it writes, its SQL.
pub(crate) struct Attempt<'a, R> {
    pub(crate) labels: &'a NodeLabels,
    pub(crate) node: &'a str,
    pub(crate) on_primary: bool,
    pub(crate) tried: usize,
    pub(crate) reason: R,
    pub(crate) write: bool,
    pub(crate) sql: &'a str,
}

/// Records an attempt (`made`, asked only if someone listens) in the statement's span if
/// `traced`, and the `route` debug event.
#[inline]
pub(crate) fn attempt_span<'a, R: std::fmt::Display>(
    traced: bool,
    made: impl Fn() -> Attempt<'a, R>,
) {
    if traced {
        let span = tracing::Span::current();
        if !span.is_disabled() {
            let a = made();
            span.record("server.address", &*a.labels.address);
            span.record("server.port", &*a.labels.port);
            span.record("rwsplit.node.role", role_name(a.on_primary));
            span.record("rwsplit.attempt", a.tried);
        }
    }
    if tracing::enabled!(target: "rwsplit", tracing::Level::DEBUG) {
        let a = made();
        tracing::debug!(target: "rwsplit", node = %a.node, reason = %a.reason, write = a.write, sql = %SqlHead(a.sql), "route");
    }
}

/// The start of a statement, for debug events: enough to recognise it, bounded in size. The SQL
/// text carries bound parameters as placeholders, not values.
pub(crate) struct SqlHead<'a>(pub(crate) &'a str);

impl std::fmt::Display for SqlHead<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
        let state =
            |st: &str| format!("{{server_address=\"db-2\",server_port=\"5432\",state=\"{st}\"}}");
        for want in [
            format!("rwsplit_node_state{} 1", state("down")),
            format!("rwsplit_node_state{} 0", state("up")),
            format!("rwsplit_node_state{} 0", state("suspect")),
            format!("rwsplit_node_state{} 0", state("joining")),
            format!("rwsplit_node_state{} 0", state("removed")),
            format!("rwsplit_node_fenced{node} 1"),
            format!("rwsplit_node_primary{node} 0"),
            format!("rwsplit_node_in_flight{node} 2"),
            format!("rwsplit_replica_lag_bytes{node} 4096"),
            format!("rwsplit_replica_lag_seconds{node} 1.5"),
            format!("rwsplit_node_observation_age_seconds{node} 3"),
            // A mock has no pool: every statement in flight counts as waiting for none.
            format!("db_client_connection_pending_requests{node} 2"),
            // The first sample registers the node's counters at 0.
            "rwsplit_errors_total{server_address=\"db-2\",server_port=\"5432\",rwsplit_node_role=\"replica\",error_type=\"connection\"} 0".to_owned(),
            "rwsplit_retries_total{server_address=\"db-2\",server_port=\"5432\",rwsplit_access=\"read\"} 0".to_owned(),
            "rwsplit_replica_refusals_total{server_address=\"db-2\",server_port=\"5432\",outcome=\"primary\"} 0".to_owned(),
            "rwsplit_read_your_writes_total{outcome=\"waited\"} 0".to_owned(),
            "rwsplit_position_reads_total{purpose=\"write\"} 0".to_owned(),
            "rwsplit_position_reads_total{purpose=\"floor\"} 0".to_owned(),
            "# HELP rwsplit_node_state ".to_owned(),
        ] {
            assert!(text.contains(&want), "missing `{want}` in:\n{text}");
        }
    }

    /// A node seen as a replica and then as the primary counts one primary change; a node first
    /// seen as the primary counts none.
    #[test]
    fn a_replica_becoming_the_primary_counts_a_primary_change() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let pool = sea_orm::MockDatabase::new(sea_orm::DbBackend::Postgres).into_connection();
        let now = Instant::now();
        let (a, b) = (NodeLabels::of("db-1:5432/app"), NodeLabels::of("db-2:5432/app"));
        metrics::with_local_recorder(&recorder, || {
            for (labels, role) in
                [(&a, Role::Primary), (&b, Role::Replica), (&a, Role::Primary), (&b, Role::Primary)]
            {
                sample(
                    &NodeSample {
                        labels,
                        health: Health::Up,
                        joining: false,
                        fenced: false,
                        role,
                        lag_bytes: None,
                        lag_time: None,
                        last_seen: None,
                        in_flight: 0,
                        read_pool: None,
                        write_pool: &pool,
                    },
                    now,
                );
            }
        });
        let text = handle.render();
        let changes = |host: &str| {
            format!(
                "rwsplit_primary_changes_total{{server_address=\"{host}\",server_port=\"5432\"}}"
            )
        };
        assert!(text.contains(&format!("{} 0", changes("db-1"))), "{text}");
        assert!(text.contains(&format!("{} 1", changes("db-2"))), "{text}");
    }

    /// Each health, and joining, is one of the documented states.
    #[rstest]
    #[case(Health::Up, false, "up")]
    #[case(Health::Suspect, false, "suspect")]
    #[case(Health::Down, false, "down")]
    #[case(Health::Down, true, "joining")]
    #[case(Health::Up, true, "joining")]
    fn node_states(#[case] health: Health, #[case] joining: bool, #[case] state: &str) {
        assert_eq!(node_state_name(health, joining), state);
        assert!(NODE_STATES.contains(&state));
    }

    /// Prometheus' naming rules, checked on an exposition's families (`# TYPE` lines): what
    /// breaks them, one line per problem. The same rules as `tests/it/prometheus.rs` applies
    /// to a live application's whole `/metrics` (there with `promtool check metrics` too).
    fn naming_problems(exposition: &str) -> Vec<String> {
        let mut problems = Vec::new();
        for line in exposition.lines() {
            let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let mut bad = |why: &str| problems.push(format!("{name} ({kind}): {why}"));
            if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
                bad("not snake_case");
            }
            if !name.starts_with("rwsplit_") && !name.starts_with("db_client_") {
                bad("neither rwsplit_ nor OpenTelemetry's db_client_");
            }
            if (kind == "counter") != name.ends_with("_total") {
                bad("`_total` is for counters, and every counter ends with it");
            }
            if kind == "summary" {
                bad("a summary: its quantiles do not aggregate (set DURATION_BUCKETS)");
            }
            if kind == "histogram" && !(name.ends_with("_seconds") || name.ends_with("_bytes")) {
                bad("a histogram without its base unit");
            }
            // OpenTelemetry's `db.client.connection.count`, as its exporters write it: the one
            // name allowed the reserved suffix (module docs).
            if kind != "histogram" && kind != "summary" && name != CONNECTION_COUNT {
                for reserved in ["_count", "_sum", "_bucket"] {
                    if name.ends_with(reserved) {
                        bad("a suffix reserved for histograms and summaries");
                    }
                }
            }
            let unit = name.trim_end_matches("_total");
            let timed = ["duration", "age", "lag", "latency", "time"];
            if timed.iter().any(|w| unit.split('_').any(|part| part == *w))
                && !(unit.ends_with("_seconds") || unit.ends_with("_bytes"))
            {
                bad("a time or size without its base unit (`_seconds`, `_bytes`)");
            }
            for non_base in ["milliseconds", "microseconds", "ms", "us", "minutes", "kilobytes"] {
                if unit.split('_').any(|part| part == non_base) {
                    bad("not a base unit");
                }
            }
            if !exposition.contains(&format!("# HELP {name} ")) {
                bad("no HELP text");
            }
        }
        problems
    }

    /// Every metric, recorded once, as an exporter set up as the module docs say renders it:
    /// each follows the naming rules, and each in [`DESCRIPTIONS`] is there, of its kind.
    #[test]
    fn every_exported_name_follows_prometheus_naming() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(OPERATION_DURATION.to_owned()),
                DURATION_BUCKETS,
            )
            .unwrap()
            .build_recorder();
        let handle = recorder.handle();
        let pool = sea_orm::MockDatabase::new(sea_orm::DbBackend::Postgres).into_connection();
        let now = Instant::now();
        let labels = NodeLabels::of("db-2:5432/app");
        metrics::with_local_recorder(&recorder, || {
            sample(
                &NodeSample {
                    labels: &labels,
                    health: Health::Up,
                    joining: false,
                    fenced: false,
                    role: Role::Replica,
                    lag_bytes: Some(0),
                    lag_time: Some(Duration::ZERO),
                    last_seen: Some(now),
                    in_flight: 0,
                    read_pool: None,
                    write_pool: &pool,
                },
                now,
            );
            // The mock has no sqlx pool: its pool gauges directly.
            pool_gauges(&labels, &labels.read_pool, 1, 2, 10);
            let statement = Statement { system: "postgresql", operation: "SELECT" };
            let durations = Durations::default();
            let ms = Duration::from_millis(3);
            statement.attempt_done(&labels, &durations, false, "replica", false, ms, None);
            let failed = Some(Failure::Connection);
            statement.attempt_done(&labels, &durations, false, "replica", false, ms, failed);
            retry(&labels, false);
            replica_refusal(&labels, true);
            read_your_writes(Ryw::Waited);
            position_read(false);
            position_read(true);
            position_read(true);
            promotions(1);
            hedge(&labels, "hedge");
            passover(&labels);
        });
        let text = handle.render();
        assert_eq!(naming_problems(&text), Vec::<String>::new(), "in:\n{text}");
        let node = "server_address=\"db-2\",server_port=\"5432\"";
        for want in [
            format!(
                "db_client_connection_count{{{node},db_client_connection_pool_name=\"db-2:5432/app/read\",db_client_connection_state=\"idle\"}} 1"
            ),
            format!("rwsplit_hedged_reads_total{{{node},outcome=\"hedge\"}} 1"),
            format!("rwsplit_hedged_reads_total{{{node},outcome=\"first\"}} 0"),
            format!("rwsplit_read_passovers_total{{{node}}} 1"),
            "rwsplit_position_reads_total{purpose=\"write\"} 1".to_owned(),
            "rwsplit_position_reads_total{purpose=\"floor\"} 2".to_owned(),
        ] {
            assert!(text.contains(&want), "no `{want}` in:\n{text}");
        }
        for &(name, kind, _) in DESCRIPTIONS {
            let kind = match kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "no {kind} {name} in:\n{text}"
            );
        }
        assert!(text.contains("db_client_operation_duration_seconds_bucket{"), "{text}");
    }

    /// The rules catch badly formed names (a counter without `_total`, a unit left out, a
    /// gauge with a histogram's suffix), and let OpenTelemetry's `db_client_connection_count`
    /// be (the old `db_client_connections_usage` passed them too: it is gone for the name
    /// OpenTelemetry's exporters write).
    #[test]
    fn the_naming_rules_catch_the_old_names() {
        let old = "# TYPE rwsplit_errors counter\n# TYPE rwsplit_node_observation_age gauge\n\
                   # TYPE db_client_operation_duration summary\n# TYPE db_client_connection_sum gauge\n";
        assert_eq!(naming_problems(old).len(), 4 + 5, "{:#?}", naming_problems(old));
        let otel = "# HELP db_client_connection_count Pooled connections.\n\
                    # TYPE db_client_connection_count gauge\n";
        assert_eq!(naming_problems(otel), Vec::<String>::new());
    }
}
