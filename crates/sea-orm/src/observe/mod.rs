//! What the adapter tells operators and the application about what it did, and what it
//! never shows.
//!
//! **Owns**: the metrics and the `tracing` span per statement (`telemetry.rs`, public at
//! the crate root as `telemetry`), SeaORM's own hooks for the statements the router runs (`hooks.rs`:
//! the metric callback, `debug-print`, `tracing-spans`), the connection's counters behind
//! [`Stats`](crate::Stats) and a plan's effects on them (`counters.rs`), and a node URL's
//! redaction (`redact.rs`: [`NodeUrl`](redact::NodeUrl)).
//!
//! **Offers**: metric recording and span helpers, [`Hooks`](hooks::Hooks),
//! [`Counters`](counters::Counters) and [`Effects`](counters::Effects), and the redacted
//! names every log line, error and stat uses.
//!
//! **May call**: `send/` (a failure's kind, for its metric label), `product/` (a URL's
//! scheme, SeaORM's `db.system`), the error modules, `rwsplit-core`, `rwsplit-monitor`'s
//! topology state. Never `nodes/`, `routing/`, `connection/` or `config/`, which record
//! through it: what a metric or counter needs comes in as arguments.

pub(crate) mod counters;
pub(crate) mod hooks;
pub(crate) mod redact;
pub mod telemetry;
